//! `bulkhead sandbox [OPTIONS] [--image REF | --rootfs DIR] [--] CMD…`: run
//! a command hardened by default, with docker-like flags.
//!
//! A sandbox is an ordinary OCI container made from a generated config
//! ([`bulkhead_spec::sandbox::build`]), so it goes through exactly the same
//! plan, lifecycle and setup stages as `create`/`start`, and lives in the
//! same state store (`list`, `kill`, `exec`, `ps` work on it). Its bundle
//! (config, empty root, log) is the sandbox directory
//! `/var/lib/bulkhead/sandboxes/<name>`: not under the 0700 state root,
//! because the container's root is an unprivileged host id that must reach
//! its root directory. Run by an unprivileged user (rootless), it is
//! `$XDG_RUNTIME_DIR/bulkhead-sandboxes/<name>`, next to the state root
//! `$XDG_RUNTIME_DIR/bulkhead`: both go away together at logout, and
//! container root is the caller, so 0700 is enough.

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bulkhead_lifecycle::{CreateOptions, LifecycleError, Store};
use bulkhead_spec::sandbox::{
    self as spec, ID_RANGE, NetworkMode, Profile, RootSource, SandboxOptions, options,
};

pub mod attach;
pub mod image;
pub mod learn;
pub mod monitor;
pub mod verbs;

/// Host directories that make up the embedded default root.
const HOST_DIRS: [&str; 8] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "opt",
];

/// What of the host's /etc the default root shows: what programs need to
/// run (loader cache, alternatives, certificates, time zone, name-service
/// and terminal configuration), not the host's accounts, names, sub-id
/// ranges, machine id or daemon configuration. passwd, group and hosts
/// are the sandbox's own.
const ETC_SHARED: [&str; 27] = [
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "environment",
    "gai.conf",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "magic",
    "magic.mime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "profile.d",
    "protocols",
    "python3",
    "services",
    "shells",
    "ssl",
    "terminfo",
    "timezone",
];

/// The default root's accounts: root, nobody, and the tty group devpts
/// uses.
const SANDBOX_PASSWD: &str = "root:x:0:0:root:/tmp:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
const SANDBOX_GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";
const SANDBOX_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Where root's sandbox directories live.
pub const SANDBOX_BASE: &str = "/var/lib/bulkhead/sandboxes";
/// Where a rootless caller's live, under `$XDG_RUNTIME_DIR`.
pub const ROOTLESS_SANDBOX_DIR: &str = "bulkhead-sandboxes";
/// The detached sandbox's stdout and stderr, in its directory.
pub const LOG_FILE: &str = "sandbox.log";
/// The state root the sandbox's container lives in, in its directory: `rm`
/// removes a directory whose container is gone only for that store.
pub const STATE_ROOT_FILE: &str = "state-root";

/// docker's exit codes for failures of the runtime itself.
pub const EXIT_RUNTIME: i32 = 125;
pub const EXIT_CANNOT_EXEC: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// restricted (default), baseline (Docker's defaults) or privileged.
    #[arg(long, default_value = "restricted")]
    profile: String,
    /// Same as --profile privileged.
    #[arg(long)]
    privileged: bool,
    /// Run an image (OCI layout, OCI archive or docker-archive).
    #[arg(long, conflicts_with = "rootfs")]
    image: Option<String>,
    /// Use DIR as the root filesystem instead of the host's directories.
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Bind a host path: HOST:CONTAINER[:ro|rw].
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    volumes: Vec<String>,
    /// Mount a tmpfs: CONTAINER[:OPTIONS].
    #[arg(long, value_name = "CONTAINER[:OPTS]")]
    tmpfs: Vec<String>,
    /// Set K=V, or pass K from this environment.
    #[arg(short = 'e', long = "env", value_name = "K=V|K")]
    env: Vec<String>,
    /// Working directory inside the sandbox.
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// uid[:gid] or name[:group].
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Replace the image's entrypoint ("" clears it).
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit, e.g. 64m or 1g (0: none).
    #[arg(short = 'm', long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// CPU limit in CPUs, e.g. 0.5.
    #[arg(long)]
    cpus: Option<String>,
    /// Maximum number of processes (0 or -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// The cgroup to run in, as `linux.cgroupsPath` PATH/NAME. Rootless:
    /// limits are enforced only with a delegated PATH (docs/rootless.md).
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<String>,
    /// Read-only root filesystem (--read-only=false for a writable one).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    read_only: Option<bool>,
    /// Add a capability (NET_ADMIN, CAP_NET_ADMIN or ALL).
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long)]
    cap_drop: Vec<String>,
    /// no-new-privileges[=false], seccomp=unconfined|default|FILE,
    /// landlock=on|off, unmask=ALL.
    #[arg(long)]
    security_opt: Vec<String>,
    /// User namespace: private (container root is an unprivileged host id)
    /// or host.
    #[arg(long)]
    userns: Option<String>,
    /// Host name inside (default: sandbox).
    #[arg(long)]
    hostname: Option<String>,
    /// none (own namespace, loopback only; the default), host, the name of
    /// a bridge network (`bulkhead network create`), or, rootless, pasta
    /// (the default with -p) or slirp4netns.
    #[arg(long)]
    network: Option<String>,
    /// Publish a port of a bridge-networked sandbox:
    /// [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOSTPORT:PORT")]
    publish: Vec<String>,
    /// Let this sandbox and container NAME, on the same bridge network,
    /// reach each other (on a network without --allow-intra); NAME (and
    /// ALIAS) resolve through /etc/hosts.
    #[arg(long = "link", value_name = "NAME[:ALIAS]")]
    link: Vec<String>,
    /// Give the command a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Keep stdin open (otherwise it reads /dev/null).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Remove the sandbox when it exits (the default in the foreground).
    #[arg(long)]
    rm: bool,
    /// Run in the background; see `bulkhead logs/stop/rm/wait`.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Rotate a detached sandbox's log at this size (one previous part is
    /// kept); -1: never [default: 10m].
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    log_max_size: Option<String>,
    /// Record the syscalls the command makes and write the smallest
    /// seccomp profile that runs it to FILE (use it with
    /// --security-opt seccomp=FILE). See docs/audit.md.
    #[arg(long, value_name = "FILE", conflicts_with = "detach")]
    learn: Option<PathBuf>,
    /// The sandbox's name (its container id).
    #[arg(long)]
    name: Option<String>,
    /// Print the OCI config that would run, and exit.
    #[arg(long)]
    print_spec: bool,
    #[command(flatten)]
    image_opts: image::ImageArgs,
    /// The command and its arguments (after `--` when it starts with `-`).
    #[arg(trailing_var_arg = true, num_args = 1.., value_name = "CMD")]
    command: Vec<String>,
}

impl SandboxArgs {
    /// `--network`, or its default: none, except that a rootless sandbox
    /// that publishes ports gets pasta.
    fn network(&self) -> &str {
        match &self.network {
            Some(n) => n,
            None if !self.publish.is_empty() && !rustix::process::geteuid().is_root() => "pasta",
            None => "none",
        }
    }
}

/// A failure with the exit code it maps to.
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        let error = e.into();
        Failure {
            code: exit_code_of(&error),
            error,
        }
    }
}

/// 126/127 when the command itself could not be run, else 125. The stage
/// that looks the program up reports as `exec: "<arg0>": <reason>`.
fn exit_code_of(e: &anyhow::Error) -> i32 {
    let launch_text = e
        .chain()
        .find_map(|c| match c.downcast_ref::<LifecycleError>() {
            Some(LifecycleError::Launch(l)) => Some(l.to_string()),
            _ => None,
        });
    match launch_text {
        Some(t) if t.contains("exec: \"") => {
            if t.contains("not found in $PATH") || t.contains("no such file or directory") {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_EXEC
            }
        }
        _ => EXIT_RUNTIME,
    }
}

/// Runs `bulkhead sandbox`; errors are printed here, as they decide the
/// exit code.
pub fn main(store: &Store, a: &SandboxArgs) -> i32 {
    match run(store, a) {
        Ok(code) => code,
        Err(f) => {
            let msg = super::error_text(&f.error);
            tracing::debug!("{msg}");
            eprintln!("bulkhead sandbox: {msg}");
            f.code
        }
    }
}

/// The directory holding the sandbox directories of `store`'s user.
pub fn sandbox_base(store: &Store) -> Result<PathBuf> {
    if !store.rootless {
        return Ok(PathBuf::from(SANDBOX_BASE));
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d).join(ROOTLESS_SANDBOX_DIR)),
        _ => bail!(
            "XDG_RUNTIME_DIR is not set: a rootless sandbox keeps its directory in \
             $XDG_RUNTIME_DIR/{ROOTLESS_SANDBOX_DIR}; set it to a directory you own (mode 0700, \
             e.g. /run/user/{})",
            rustix::process::getuid().as_raw()
        ),
    }
}

/// Removes a sandbox's directory after releasing whatever its root holds.
pub fn remove_dir(dir: &Path) -> Result<()> {
    image::release(dir)?;
    if image::has_rootless_root(dir) && !rustix::process::geteuid().is_root() {
        // Sub-id-owned files need the user namespace; without it (a
        // process that cannot fork, e.g. with --learn's threads) a plain
        // removal still works when the container wrote nothing as a sub-id.
        match image::remove_rootless(dir) {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::debug!("{e:#}");
                image::open_own_dirs(dir);
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove sandbox dir {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A fresh name like docker's short ids.
fn generated_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("sandbox-{:x}{:08x}", std::process::id(), nanos)
}

/// Container root maps to an unprivileged host range of 65536 ids from 2^30
/// up, one range per sandbox: the first slot (from this process's pid on)
/// that no container in the store maps already.
fn pick_id_base(store: &Store) -> u32 {
    let used: Vec<u32> = store
        .ids()
        .iter()
        .filter_map(|id| store.load(id).ok())
        .filter_map(|r| {
            r.spec
                .linux()
                .as_ref()
                .and_then(|l| l.uid_mappings().clone())
                .and_then(|m| m.first().map(|m| m.host_id()))
        })
        .collect();
    let slots = 16_384;
    let start = std::process::id() % slots;
    (0..slots)
        .map(|i| (1 << 30) + ((start + i) % slots) * ID_RANGE)
        .find(|b| !used.contains(b))
        .unwrap_or((1 << 30) + start * ID_RANGE)
}

/// Reads a file of the container's root (e.g. `etc/passwd`) without
/// following symlinks out of it.
fn read_in_root(root: &Path, path: &str) -> Option<String> {
    use std::io::Read;
    let r = pathrs::Root::open(root).ok()?;
    let handle = r.resolve(path).ok()?;
    let mut f: File = handle.reopen(pathrs::flags::OpenFlags::O_RDONLY).ok()?;
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    Some(s)
}

/// The capabilities in this process's bounding set (root may lack some,
/// e.g. CAP_SYS_RESOURCE in some VMs and containers).
fn own_bounding_set() -> Option<Vec<String>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(
        bulkhead_spec::caps::ALL
            .iter()
            .filter(|(_, n)| mask & (1u64 << n) != 0)
            .map(|(name, _)| name.to_string())
            .collect(),
    )
}

/// An unprivileged caller: what cannot work is refused naming its flag,
/// and the user namespace maps the caller (and its sub-ids, if any).
fn rootless_options(a: &SandboxArgs, o: &mut SandboxOptions) -> Result<()> {
    if o.userns == Some(false) {
        bail!("--userns host: a rootless sandbox always has its own user namespace");
    }
    if !matches!(a.network(), "none" | "host" | "pasta" | "slirp4netns") {
        bail!(
            "--network {}: bridge networks need root; a rootless sandbox has --network none \
             (its own namespace with loopback), host, pasta or slirp4netns",
            a.network()
        );
    }
    let limits = [
        ("--memory", a.memory.is_some()),
        ("--pids-limit", a.pids_limit.is_some()),
        ("--cpus", a.cpus.is_some()),
    ];
    let asked: Vec<&str> = limits.iter().filter(|l| l.1).map(|l| l.0).collect();
    if a.cgroup_parent.is_none() && !asked.is_empty() {
        // As podman: said, not refused.
        eprintln!(
            "bulkhead sandbox: warning: {} not enforced: a rootless sandbox has no cgroup \
             unless given a delegated one with --cgroup-parent (docs/rootless.md)",
            asked.join(", ")
        );
    }
    o.rootless = Some(image::own_rootless());
    Ok(())
}

/// Flags → [`SandboxOptions`] (root not decided yet).
fn options_from(a: &SandboxArgs) -> Result<SandboxOptions> {
    let mut o = SandboxOptions {
        profile: if a.privileged {
            Profile::Privileged
        } else {
            a.profile.parse()?
        },
        command: a.command.clone(),
        entrypoint: a.entrypoint.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        // A bridge network is a private namespace, set up by the CLI.
        network: match a.network() {
            "none" | "host" => a.network().parse::<NetworkMode>()?,
            _ => NetworkMode::None,
        },
        read_only: a.read_only,
        tty: a.tty,
        term: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
        host_caps: own_bounding_set(),
        ..Default::default()
    };
    for v in &a.volumes {
        let mut vol: spec::Volume = v.parse()?;
        let src = std::path::absolute(&vol.source)
            .with_context(|| format!("--volume {v:?}: resolve host path"))?;
        if let Err(e) = std::fs::metadata(&src) {
            bail!("--volume {v:?}: host path {}: {e}", src.display());
        }
        vol.source = src;
        o.volumes.push(vol);
    }
    for t in &a.tmpfs {
        o.tmpfs.push(t.parse()?);
    }
    for e in &a.env {
        if let Some(kv) = options::env(e, |k| std::env::var(k).ok())? {
            o.env.push(kv);
        }
    }
    if let Some(m) = &a.memory {
        o.memory = Some(options::memory(m)?);
    }
    if let Some(c) = &a.cpus {
        o.cpus = options::cpus(c)?;
    }
    if let Some(p) = &a.pids_limit {
        o.pids_limit = Some(options::pids_limit(p)?);
    }
    for c in &a.cap_add {
        o.cap_add.push(options::capability("--cap-add", c)?);
    }
    for c in &a.cap_drop {
        o.cap_drop.push(options::capability("--cap-drop", c)?);
    }
    for s in &a.security_opt {
        match options::security_opt(s)? {
            Ok(opt) => o.security_opts.push(opt),
            Err(path) => {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("--security-opt {s:?}: read {}", path.display()))?;
                let v: serde_json::Value = serde_json::from_slice(&bytes).with_context(|| {
                    format!("--security-opt {s:?}: {} is not JSON", path.display())
                })?;
                o.security_opts.push(spec::SecurityOpt::SeccompProfile(v));
            }
        }
    }
    o.userns = match a.userns.as_deref() {
        None => None,
        Some("private" | "auto") => Some(true),
        Some("host") => Some(false),
        Some(u) => bail!("--userns: {u:?} is not supported (expected private or host)"),
    };
    Ok(o)
}

fn run(store: &Store, a: &SandboxArgs) -> Result<i32, Failure> {
    if a.log_max_size.is_some() && !a.detach {
        return Err(anyhow!(
            "--log-max-size: only a detached sandbox (-d) keeps a log; in the foreground its \
             output is yours"
        )
        .into());
    }
    let log_max = match &a.log_max_size {
        Some(s) => options::log_max_size(s)?,
        None => Some(monitor::DEFAULT_LOG_MAX),
    };
    let mut o = options_from(a)?;
    if store.rootless {
        rootless_options(a, &mut o)?;
    }
    let name = a.name.clone().unwrap_or_else(generated_name);
    bulkhead_spec::id::validate(&name).map_err(|e| anyhow!("--name: {e}"))?;
    if store.load(&name).is_ok() {
        return Err(anyhow!("--name: a container named {name:?} already exists").into());
    }
    let net = super::network::for_sandbox(store, a.network(), &name, &a.publish, &a.link)?;
    let base = sandbox_base(store)?;
    let dir = base.join(&name);
    o.cgroups_path = a
        .cgroup_parent
        .as_ref()
        .map(|p| format!("{}/{name}", p.trim_end_matches('/')));
    if o.rootless.is_none() {
        o.id_map_base = pick_id_base(store);
    }
    let userns = spec::effective(&o).userns;

    if a.print_spec {
        // The spec as it would run, without creating anything.
        o.root = match (&a.image, &a.rootfs) {
            (Some(i), _) => RootSource::Image(i.clone()),
            (_, Some(d)) => RootSource::Dir(std::path::absolute(d)?),
            _ => RootSource::HostDirs,
        };
        o.rootfs = match &o.root {
            RootSource::Dir(d) => d.clone(),
            _ => dir.join("rootfs"),
        };
        if o.root == RootSource::HostDirs {
            o.root_binds = host_binds(a.network());
            host_etc(&mut o, &dir, a.network(), false)?;
        }
        if let Some(reference) = &a.image {
            let store_dir = if store.rootless {
                a.image_opts.rootless_store_dir()?
            } else {
                a.image_opts.store_dir()
            };
            let (config, in_store) = image::inspect(reference, &store_dir)?;
            o.image = Some(config);
            if let Some(img) = &in_store {
                let read = |p: &str| {
                    img.read_file(p, 1 << 20)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                };
                o.passwd = read("etc/passwd");
                o.group = read("etc/group");
                if o.rootless.is_some() {
                    let ov = dir.join("overlay");
                    let data = bulkhead_image::overlay_options(
                        img,
                        &ov.join("upper"),
                        &ov.join("work"),
                        &o.rootfs,
                    )
                    .with_context(|| format!("--image {reference:?}"))?;
                    o.root_overlay = Some(data.split(',').map(String::from).collect());
                }
            }
        }
        let cfg = spec::build(&o)?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&cfg).map_err(anyhow::Error::from)?
        )?;
        return Ok(0);
    }

    let mode = if store.rootless { 0o700 } else { 0o711 };
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(&base)
        .with_context(|| format!("create {}", base.display()))?;
    // create (not create_dir_all): never reuse or follow an existing path.
    match DirBuilder::new().mode(mode).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(anyhow!(
                "--name {name:?}: {} exists (left by an earlier sandbox? `bulkhead rm {name}` removes it)",
                dir.display()
            )
            .into());
        }
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context(format!("create sandbox dir {}", dir.display()))
                .into());
        }
    }
    let result = in_dir(store, a, o, &name, &dir, userns, net, log_max);
    let keep = a.detach && matches!(result, Ok(0));
    if !keep && let Err(e) = remove_dir(&dir) {
        tracing::warn!("{e:#}");
    }
    result
}

/// Everything after the sandbox directory exists; the caller removes it
/// unless a detached sandbox started.
#[allow(clippy::too_many_arguments)]
fn in_dir(
    store: &Store,
    a: &SandboxArgs,
    mut o: SandboxOptions,
    name: &str,
    dir: &Path,
    userns: bool,
    net: Option<super::network::Plan>,
    log_max: Option<u64>,
) -> Result<i32, Failure> {
    // Rootless, container root is the caller, who owns the directory.
    let idmap = (userns && o.rootless.is_none()).then_some(o.id_map_base);
    let mut rootless_image = None;
    if let (Some(reference), Some(r)) = (&a.image, &o.rootless) {
        let prepared = image::prepare_rootless(reference, dir, r, &a.image_opts)?;
        o.root = RootSource::Image(reference.clone());
        o.rootfs = prepared.rootfs;
        o.root_overlay = Some(prepared.overlay);
        o.image = Some(prepared.config);
        rootless_image = Some(prepared.image);
    } else if let Some(reference) = &a.image {
        let prepared = image::prepare(reference, dir, idmap, &a.image_opts)?;
        o.root = RootSource::Image(reference.clone());
        o.rootfs = prepared.rootfs;
        o.image = Some(prepared.config);
    } else if let Some(d) = &a.rootfs {
        let d = std::path::absolute(d).context("--rootfs")?;
        if !d.is_dir() {
            return Err(anyhow!("--rootfs: {} is not a directory", d.display()).into());
        }
        o.root = RootSource::Dir(d.clone());
        o.rootfs = d;
    } else {
        o.root = RootSource::HostDirs;
        o.rootfs = host_root(dir, idmap)?;
        o.root_binds = host_binds(a.network());
        host_etc(&mut o, dir, a.network(), true)?;
    }
    let wants_names = |s: &Option<String>| {
        s.as_deref()
            .is_some_and(|u| u.split(':').any(|p| p.parse::<u32>().is_err()))
    };
    if wants_names(&o.user) || wants_names(&o.image.as_ref().and_then(|i| i.user.clone())) {
        if o.root == RootSource::HostDirs {
            o.passwd = Some(SANDBOX_PASSWD.to_string());
            o.group = Some(SANDBOX_GROUP.to_string());
        } else if let Some(img) = &rootless_image {
            // Not mounted yet (the container mounts it): read the layers.
            let read = |p: &str| {
                img.read_file(p, 1 << 20)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            };
            o.passwd = read("etc/passwd");
            o.group = read("etc/group");
        } else {
            o.passwd = read_in_root(&o.rootfs, "etc/passwd");
            o.group = read_in_root(&o.rootfs, "etc/group");
        }
    }
    let hostname = o.hostname.clone().unwrap_or_else(|| "sandbox".into());
    let (bridge, usernet) = match net {
        Some(super::network::Plan::Bridge(plan)) => {
            let (n, volumes) = super::network::SandboxNet::prepare(store, plan, dir)?;
            o.volumes.extend(volumes);
            (Some(n), None)
        }
        Some(super::network::Plan::User(u)) => {
            o.volumes.extend(u.prepare(dir, &hostname)?);
            (None, Some(u))
        }
        None => (None, None),
    };

    let mut cfg = spec::build(&o)?;
    let learner = match &a.learn {
        Some(out) => Some((learn::prepare(&mut cfg, dir)?, learn::output_path(out)?)),
        None => None,
    };
    let before_start = |pid: i32| {
        if let Some((l, _)) = &learner {
            l.start();
        }
        if let Some(u) = &usernet {
            u.attach(store, name, pid)?;
        }
        match &bridge {
            Some(n) => n.attach(store, name, &hostname, pid),
            None => Ok(()),
        }
    };
    // After the root: an image root wants an empty directory.
    let state_root = std::path::absolute(&store.root).context("--root")?;
    std::fs::write(
        dir.join(STATE_ROOT_FILE),
        state_root.as_os_str().as_encoded_bytes(),
    )
    .context("record the state root")?;
    // Only for root: -e values may be secrets.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join("config.json"))
        .context("create config.json")?;
    serde_json::to_writer_pretty(&mut f, &cfg)
        .map_err(anyhow::Error::from)
        .context("write config.json")?;
    // Closed here: a detached sandbox's monitor is forked below and would
    // keep it open for the sandbox's life.
    drop(f);
    let opts = CreateOptions {
        bundle: dir.to_path_buf(),
        ..Default::default()
    };
    if a.detach {
        let mopts = monitor::MonitorOptions {
            rm: a.rm,
            tty: a.tty,
            log_max,
        };
        monitor::start(store, name, dir, &opts, &before_start, mopts)?;
        outln!("{name}")?;
        return Ok(0);
    }
    let _stdin = if a.interactive || a.tty {
        None
    } else {
        Some(Redirect::stdin_null()?)
    };
    let code = super::run_with(store, name, &opts, false, false, &before_start)?;
    if let Some((learner, out)) = learner {
        learner.finish(code, &out)?;
    }
    Ok(code)
}

/// The host directories bound into the default root (merged-/usr
/// symlinks such as `bin -> usr/bin` are recreated instead).
fn host_binds(network: &str) -> Vec<PathBuf> {
    let mut binds: Vec<PathBuf> = HOST_DIRS
        .iter()
        .map(|d| Path::new("/").join(d))
        .filter(|h| std::fs::symlink_metadata(h).is_ok_and(|m| m.is_dir()))
        .collect();
    let host_net: &[&str] = if network == "host" {
        &["hosts", "resolv.conf"]
    } else {
        &[]
    };
    binds.extend(
        ETC_SHARED
            .iter()
            .chain(host_net)
            .map(|e| Path::new("/etc").join(e))
            // Followed: a symlink (os-release) is bound as what it names.
            .filter(|p| p.exists()),
    );
    binds
}

/// The default root's own /etc/passwd, /etc/group and (unless a network
/// brings its own or the host's is shared) /etc/hosts, written into the
/// sandbox directory and bound read-only.
fn host_etc(o: &mut SandboxOptions, dir: &Path, network: &str, write: bool) -> Result<()> {
    let etc = dir.join("etc");
    let mut files = vec![("passwd", SANDBOX_PASSWD), ("group", SANDBOX_GROUP)];
    if network == "none" {
        files.push(("hosts", SANDBOX_HOSTS));
    }
    if write {
        std::fs::create_dir(&etc).with_context(|| format!("create {}", etc.display()))?;
    }
    for (name, text) in files {
        let source = etc.join(name);
        if write {
            std::fs::write(&source, text).with_context(|| format!("write {}", source.display()))?;
        }
        o.volumes.push(spec::Volume {
            source,
            destination: Path::new("/etc").join(name),
            readonly: true,
        });
    }
    Ok(())
}

/// The empty root of the default host root: owned by container root (an
/// unprivileged host id with a user namespace), which creates the mount
/// points in it, with the host's merged-/usr symlinks.
fn host_root(dir: &Path, idmap: Option<u32>) -> Result<PathBuf> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir(&rootfs).with_context(|| format!("create {}", rootfs.display()))?;
    for d in HOST_DIRS {
        let host = Path::new("/").join(d);
        if let Ok(m) = std::fs::symlink_metadata(&host)
            && m.file_type().is_symlink()
        {
            let target = std::fs::read_link(&host)?;
            std::os::unix::fs::symlink(target, rootfs.join(d))?;
        }
    }
    if let Some(base) = idmap {
        std::os::unix::fs::chown(&rootfs, Some(base), Some(base))
            .with_context(|| format!("chown {}", rootfs.display()))?;
    }
    Ok(rootfs)
}

/// Points one of fds 0-2 elsewhere until dropped.
struct Redirect {
    fd: i32,
    saved: OwnedFd,
}

impl Redirect {
    fn stdin_null() -> Result<Redirect> {
        let null = File::open("/dev/null").context("open /dev/null")?;
        Redirect::new(0, null.into())
    }

    fn new(fd: i32, to: OwnedFd) -> Result<Redirect> {
        let saved = rustix::io::fcntl_dupfd_cloexec(std_fd(fd), 3).context("save stdio")?;
        dup2_std(fd, &to).context("redirect stdio")?;
        Ok(Redirect { fd, saved })
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        let _ = dup2_std(self.fd, &self.saved);
    }
}

fn std_fd(fd: i32) -> rustix::fd::BorrowedFd<'static> {
    match fd {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        _ => rustix::stdio::stderr(),
    }
}

fn dup2_std(fd: i32, to: &OwnedFd) -> rustix::io::Result<()> {
    match fd {
        0 => rustix::stdio::dup2_stdin(to),
        1 => rustix::stdio::dup2_stdout(to),
        _ => rustix::stdio::dup2_stderr(to),
    }
}
