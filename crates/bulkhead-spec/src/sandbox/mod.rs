//! `bulkhead sandbox`: docker-like options and a profile → an OCI config.
//!
//! Pure like the rest of this crate: the caller looks at the host (which
//! host directories exist, whether a volume source exists, the container's
//! passwd file, an image's config) and passes what it found; [`build`]
//! only decides. The config it returns goes through the normal validated
//! [`crate::plan::Plan`], exactly like a user's `config.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use thiserror::Error;

use crate::landlock;
use crate::passwd;
use crate::profile as hardened;

pub mod options;
pub mod profile;
#[cfg(test)]
mod tests;

pub use options::{NetworkMode, SecurityOpt, Tmpfs, Volume};
pub use profile::Profile;

/// Marks a container as a sandbox; the value is the profile name.
pub const ANNOTATION: &str = "io.bulkhead.sandbox";
/// The signal `bulkhead stop` sends first (an image's `StopSignal`).
pub const STOP_SIGNAL_ANNOTATION: &str = "io.bulkhead.sandbox.stop-signal";
/// Ids in the sandbox's user namespace: container 0..65536 → base..base+65536.
pub const ID_RANGE: u32 = 65_536;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Error)]
pub enum SandboxError {
    /// A flag (or the image config field standing in for it) is wrong.
    #[error("{flag}: {reason}")]
    Flag { flag: String, reason: String },
    #[error(
        "no command given: pass one after the options (bulkhead sandbox -- sh -c 'id') or use an image with a Cmd or Entrypoint"
    )]
    NoCommand,
    #[error("--user {spec:?}: {source}")]
    User {
        spec: String,
        source: passwd::UserError,
    },
}

impl SandboxError {
    pub fn flag(flag: &str, reason: impl Into<String>) -> SandboxError {
        SandboxError::Flag {
            flag: flag.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where the root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RootSource {
    /// An empty root with the host's /usr, /etc, libraries… bound read-only.
    #[default]
    HostDirs,
    /// `--rootfs DIR`.
    Dir(PathBuf),
    /// `--image REF`, prepared by `bulkhead-image`.
    Image(String),
}

/// The parts of an OCI image config a sandbox uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
}

/// An unprivileged caller's sandbox: container root is the caller's own
/// uid and gid, and, when the caller has sub-ids (and the newuidmap
/// helpers), container ids 1.. are the first `count` of them, as rootless
/// podman maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rootless {
    pub uid: u32,
    pub gid: u32,
    /// (first sub-uid, first sub-gid, how many).
    pub sub_ids: Option<(u32, u32, u32)>,
}

impl Rootless {
    /// How many container ids (0 and up) are mapped.
    pub fn mapped(&self) -> u32 {
        1 + self.sub_ids.map_or(0, |(_, _, n)| n.min(ID_RANGE))
    }

    /// The uid and gid maps, as (container id, host id, size) triples:
    /// what the sandbox's user namespace gets, and what a rootless image is
    /// unpacked under, so the layers' owners are the ones it sees.
    pub fn id_maps(&self) -> [Vec<(u32, u32, u32)>; 2] {
        let one = |own: u32, sub: Option<u32>| {
            let mut m = vec![(0, own, 1)];
            if let (Some(start), Some((_, _, n))) = (sub, self.sub_ids) {
                m.push((1, start, n.min(ID_RANGE)));
            }
            m
        };
        [
            one(self.uid, self.sub_ids.map(|s| s.0)),
            one(self.gid, self.sub_ids.map(|s| s.1)),
        ]
    }

    fn map(maps: &[(u32, u32, u32)]) -> Value {
        json!(
            maps.iter()
                .map(|(c, h, n)| json!({"containerID": c, "hostID": h, "size": n}))
                .collect::<Vec<_>>()
        )
    }
}

/// Everything `bulkhead sandbox` was asked for. `None` means "the
/// profile's default".
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    pub profile: Profile,
    pub root: RootSource,
    /// The directory that becomes `root.path`.
    pub rootfs: PathBuf,
    /// With [`RootSource::HostDirs`]: host directories bound read-only at
    /// the same path.
    pub root_binds: Vec<PathBuf>,
    pub image: Option<ImageConfig>,
    /// Rootless `--image`: the overlayfs options (`lowerdir=…`,
    /// `upperdir=…`, `workdir=…`) of the root, mounted by the container at
    /// `/` inside its own user namespace (root prepares image roots itself,
    /// idmapped).
    pub root_overlay: Option<Vec<String>>,
    /// `--entrypoint`: `Some("")` clears the image's.
    pub entrypoint: Option<String>,
    pub command: Vec<String>,
    /// `K=V` entries, already resolved from `-e K`.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// The container's /etc/passwd and /etc/group, to resolve user names.
    pub passwd: Option<String>,
    pub group: Option<String>,
    pub volumes: Vec<Volume>,
    pub tmpfs: Vec<Tmpfs>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// `Some(None)`: the flag asked for no limit.
    pub memory: Option<Option<u64>>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<Option<i64>>,
    pub read_only: Option<bool>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub security_opts: Vec<SecurityOpt>,
    /// `--userns private|host`.
    pub userns: Option<bool>,
    pub tty: bool,
    /// First host id of the user namespace's range.
    pub id_map_base: u32,
    /// `TERM` passed on (the caller's, or xterm).
    pub term: Option<String>,
    /// The capabilities the runtime itself holds (its bounding set): what
    /// "all capabilities" means (`privileged`, `--cap-add ALL`), as a
    /// container cannot get more than its runtime has. None: every known one.
    pub host_caps: Option<Vec<String>>,
    /// Run by an unprivileged user: always a user namespace, no idmapped
    /// volumes, cgroups only through `cgroups_path`.
    pub rootless: Option<Rootless>,
    /// `--cgroup-parent`: the container's `linux.cgroupsPath`. Rootless, the
    /// limits are written only with it (a delegated cgroup).
    pub cgroups_path: Option<String>,
}

/// The effective switches after flags were applied to the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub userns: bool,
    pub read_only: bool,
    pub no_new_privileges: bool,
    pub landlock: bool,
    pub masked: bool,
    /// None: unconfined.
    pub seccomp: Option<Value>,
    pub capabilities: Vec<String>,
}

pub fn effective(o: &SandboxOptions) -> Effective {
    let d = o.profile.defaults();
    let mut e = Effective {
        // An unprivileged user gets nothing done without one.
        userns: o.rootless.is_some() || o.userns.unwrap_or(d.userns),
        read_only: o.read_only.unwrap_or(d.read_only),
        no_new_privileges: d.no_new_privileges,
        landlock: d.landlock,
        masked: d.masked,
        seccomp: d.seccomp.then(hardened::default_seccomp),
        capabilities: capabilities(&d.capabilities, &o.cap_add, &o.cap_drop, &all_caps(o)),
    };
    for s in &o.security_opts {
        match s {
            SecurityOpt::NoNewPrivileges(v) => e.no_new_privileges = *v,
            SecurityOpt::SeccompUnconfined => e.seccomp = None,
            SecurityOpt::SeccompDefault => e.seccomp = Some(hardened::default_seccomp()),
            SecurityOpt::SeccompProfile(v) => e.seccomp = Some(v.clone()),
            SecurityOpt::Landlock(v) => e.landlock = *v,
            SecurityOpt::UnmaskAll => e.masked = false,
        }
    }
    e
}

fn all_caps(o: &SandboxOptions) -> Vec<String> {
    o.host_caps.clone().unwrap_or_else(|| {
        crate::caps::ALL
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    })
}

/// Docker's rules: `--cap-drop ALL` empties the set, `--cap-add ALL` fills
/// it with `all`, then single drops and adds apply. `ALL` in `base` stands
/// for `all` too.
fn capabilities(base: &[String], add: &[String], drop: &[String], all: &[String]) -> Vec<String> {
    let mut set: Vec<String> = if base.iter().any(|c| c == "ALL") {
        all.to_vec()
    } else {
        base.to_vec()
    };
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    }
    if add.iter().any(|c| c == "ALL") {
        set = all.to_vec();
    }
    set.retain(|c| !drop.contains(c));
    for c in add.iter().filter(|c| *c != "ALL") {
        if !set.contains(c) {
            set.push(c.clone());
        }
    }
    // Kernel order, so the printed spec is stable.
    set.sort_by_key(|c| crate::caps::from_name(c).unwrap_or(u32::MAX));
    set
}

fn env_key(kv: &str) -> &str {
    kv.split_once('=').map_or(kv, |(k, _)| k)
}

/// Later entries replace earlier ones with the same name, in place.
fn merge_env(layers: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for kv in layers.iter().flat_map(|l| l.iter()) {
        match out.iter_mut().find(|e| env_key(e) == env_key(kv)) {
            Some(slot) => *slot = kv.clone(),
            None => out.push(kv.clone()),
        }
    }
    out
}

/// The program and its arguments, by docker's rules: `--entrypoint`
/// replaces the image's Entrypoint and drops its Cmd; command arguments
/// replace Cmd.
fn args(o: &SandboxOptions) -> Result<Vec<String>, SandboxError> {
    let image = o.image.clone().unwrap_or_default();
    let entrypoint = match &o.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => image.entrypoint,
    };
    let cmd = if !o.command.is_empty() {
        o.command.clone()
    } else if o.entrypoint.is_some() {
        Vec::new()
    } else {
        image.cmd
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(SandboxError::NoCommand);
    }
    Ok(all)
}

fn user(o: &SandboxOptions, userns: bool) -> Result<(u32, u32, Vec<u32>), SandboxError> {
    let (spec, flag) = match (&o.user, o.image.as_ref().and_then(|i| i.user.clone())) {
        (Some(u), _) => (u.clone(), "--user"),
        (None, Some(u)) if !u.is_empty() => (u, "image config User"),
        _ => return Ok((0, 0, Vec::new())),
    };
    let pw = passwd::parse_passwd(o.passwd.as_deref().unwrap_or(""));
    let gr = passwd::parse_group(o.group.as_deref().unwrap_or(""));
    let u = passwd::resolve_spec(&spec, &[], &pw, &gr).map_err(|source| match flag {
        "--user" => SandboxError::User {
            spec: spec.clone(),
            source,
        },
        _ => SandboxError::flag(flag, format!("{spec:?}: {source}")),
    })?;
    if userns {
        let mapped = o.rootless.map_or(ID_RANGE, |r| r.mapped());
        let hint = match o.rootless {
            Some(r) if r.sub_ids.is_none() => {
                "a rootless sandbox without sub-ids (/etc/subuid, /etc/subgid and newuidmap) maps only container root, your own uid"
            }
            Some(_) => "a rootless sandbox maps only your uid and your sub-ids",
            None => "use --userns host to run with host ids",
        };
        for id in std::iter::once(u.uid)
            .chain([u.gid])
            .chain(u.sgids.iter().copied())
        {
            if id >= mapped {
                return Err(SandboxError::flag(
                    flag,
                    format!(
                        "{spec:?}: id {id} is outside the sandbox's user namespace (0-{}); {hint}",
                        mapped - 1
                    ),
                ));
            }
        }
    }
    Ok((u.uid, u.gid, u.sgids))
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Builds the OCI config for `o`.
/// A host name (RFC 1123 labels): it goes into the sandbox's /etc/hosts,
/// where a newline or blank would add entries of the caller's choosing.
pub fn check_hostname(h: &str) -> Result<(), SandboxError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if h.len() > 64 || !h.split('.').all(label_ok) {
        return Err(SandboxError::Flag {
            flag: format!("--hostname {h:?}"),
            reason: "not a host name (dot-separated labels of letters, digits and '-', at most 64 bytes)"
                .into(),
        });
    }
    Ok(())
}

pub fn build(o: &SandboxOptions) -> Result<Value, SandboxError> {
    if let Some(h) = &o.hostname {
        check_hostname(h)?;
    }
    let d = o.profile.defaults();
    let e = effective(o);
    let args = args(o)?;
    let (uid, gid, sgids) = user(o, e.userns)?;
    let image = o.image.clone().unwrap_or_default();
    let host_root = o.root == RootSource::HostDirs;

    // Environment: defaults, then the image's, then -e.
    let mut base_env = vec![DEFAULT_PATH.to_string()];
    base_env.push(format!(
        "TERM={}",
        o.term.clone().unwrap_or_else(|| "xterm".into())
    ));
    if host_root {
        // The host's /root is not there: the writable tmpfs is home.
        base_env.push("HOME=/tmp".into());
    }
    let env = merge_env(&[&base_env, &image.env, &o.env]);

    let cwd = o
        .workdir
        .clone()
        .map(|w| (w, "--workdir"))
        .or_else(|| {
            image
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .map(|w| (w, "image config WorkingDir"))
        })
        .unwrap_or_else(|| {
            (
                if host_root { "/tmp" } else { "/" }.to_string(),
                "--workdir",
            )
        });
    if !cwd.0.starts_with('/') {
        return Err(SandboxError::flag(
            cwd.1,
            format!("{:?} must be an absolute path", cwd.0),
        ));
    }

    // Mounts. A writable /tmp and /run come as tmpfs whenever the root
    // itself cannot hold them.
    let map = json!([{"containerID": 0, "hostID": o.id_map_base, "size": ID_RANGE}]);
    let (uid_map, gid_map) = match &o.rootless {
        Some(r) => {
            let [u, g] = r.id_maps();
            (Rootless::map(&u), Rootless::map(&g))
        }
        None => (map.clone(), map.clone()),
    };
    // gid 5 (tty) exists only with sub-ids.
    let pts_gid = match o.rootless {
        Some(r) if r.mapped() <= 5 => None,
        _ => Some("gid=5"),
    };
    let mut pts_opts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    pts_opts.extend(pts_gid);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": pts_opts}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
    ];
    if let Some(opts) = &o.root_overlay {
        mounts.insert(
            0,
            json!({"destination": "/", "type": "overlay", "source": "overlay", "options": opts}),
        );
    }
    let sys_ro = if d.sysfs_writable { "rw" } else { "ro" };
    if e.userns && o.network == NetworkMode::Host {
        // sysfs can only be mounted by the owner of the network namespace.
        mounts.push(
            json!({"destination": "/sys", "type": "bind", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", sys_ro]}),
        );
    } else {
        mounts.push(
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", sys_ro]}),
        );
    }
    let mut dests: Vec<PathBuf> = Vec::new();
    for v in &o.volumes {
        if dests.contains(&v.destination) {
            return Err(SandboxError::flag(
                "--volume",
                format!("duplicate mount point {}", v.destination.display()),
            ));
        }
        dests.push(v.destination.clone());
    }
    for t in &o.tmpfs {
        if dests.contains(&t.destination) {
            return Err(SandboxError::flag(
                "--tmpfs",
                format!("duplicate mount point {}", t.destination.display()),
            ));
        }
        dests.push(t.destination.clone());
    }
    let mut writable: Vec<PathBuf> = Vec::new();
    if e.read_only || host_root {
        for (dst, opts) in [
            (
                "/tmp",
                json!(["nosuid", "nodev", "mode=1777", "size=65536k"]),
            ),
            (
                "/run",
                json!(["nosuid", "nodev", "noexec", "mode=755", "size=16384k"]),
            ),
        ] {
            if !dests.iter().any(|p| p == Path::new(dst)) {
                mounts.push(
                    json!({"destination": dst, "type": "tmpfs", "source": "tmpfs",
                                   "options": opts}),
                );
                writable.push(PathBuf::from(dst));
            }
        }
    }
    for b in &o.root_binds {
        mounts.push(json!({"destination": b, "type": "bind", "source": b,
            "options": ["rbind", "ro", "nosuid", "nodev"]}));
    }
    for v in &o.volumes {
        let mut m = json!({"destination": v.destination, "type": "bind", "source": v.source,
            "options": ["rbind", "nosuid", "nodev", if v.readonly { "ro" } else { "rw" }]});
        if e.userns && o.rootless.is_none() {
            // Idmapped: host ids show up as the same ids inside, so host
            // root's files are root's in the sandbox and new files are
            // written as host ids, not as the sandbox's high range.
            // (Rootless cannot idmap: a volume is bound as is, and the
            // caller's files are container root's.)
            m["uidMappings"] = map.clone();
            m["gidMappings"] = map.clone();
        }
        mounts.push(m);
        if !v.readonly {
            writable.push(v.destination.clone());
        }
    }
    for t in &o.tmpfs {
        let mut opts = vec![
            "nosuid".to_string(),
            "nodev".into(),
            "noexec".into(),
            "mode=1777".into(),
            "size=65536k".into(),
        ];
        opts.extend(t.options.iter().cloned());
        mounts.push(
            json!({"destination": t.destination, "type": "tmpfs", "source": "tmpfs",
                           "options": opts}),
        );
        writable.push(t.destination.clone());
    }

    let mut namespaces = vec![];
    if e.userns {
        namespaces.push(json!({"type": "user"}));
    }
    for t in ["pid", "ipc", "uts", "mount", "cgroup"] {
        namespaces.push(json!({ "type": t }));
    }
    if o.network == NetworkMode::None {
        namespaces.push(json!({"type": "network"}));
    }

    let mut resources = json!({});
    let pids = o.pids_limit.unwrap_or(d.pids_limit);
    if let Some(p) = pids {
        resources["pids"] = json!({ "limit": p });
    }
    if let Some(m) = o.memory.unwrap_or(d.memory) {
        resources["memory"] = json!({ "limit": m });
    }
    if let Some(c) = o.cpus {
        let period: u64 = 100_000;
        resources["cpu"] = json!({"quota": (c * period as f64).round() as i64, "period": period});
    }
    resources["devices"] = json!([{ "allow": d.all_devices, "access": "rwm" }]);

    let caps = &e.capabilities;
    let mut process = json!({
        "terminal": o.tty,
        "user": {"uid": uid, "gid": gid},
        "args": args,
        "env": env,
        "cwd": cwd.0,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": e.no_new_privileges
    });
    if !sgids.is_empty() {
        process["user"]["additionalGids"] = json!(sgids);
    }
    if let Some(n) = d.nofile {
        process["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": n, "hard": n}]);
    }

    let mut linux = json!({ "namespaces": namespaces });
    // Rootless, limits only go with a (delegated) cgroup the caller named:
    // elsewhere they could not be enforced.
    if o.rootless.is_none() || o.cgroups_path.is_some() {
        if o.rootless.is_some() {
            // Device rules need host privileges; the user namespace
            // forbids mknod anyway.
            resources.as_object_mut().map(|r| r.remove("devices"));
        }
        linux["resources"] = resources;
    }
    if let Some(p) = &o.cgroups_path {
        linux["cgroupsPath"] = json!(p);
    }
    if e.userns {
        linux["uidMappings"] = uid_map;
        linux["gidMappings"] = gid_map;
    }
    if e.masked {
        let mut masked = hardened::default_masked_paths();
        if o.profile == Profile::Restricted {
            // Security, debug, tracing and mm interfaces no sandboxed
            // command needs.
            masked.push("/sys/kernel".into());
        }
        linux["maskedPaths"] = json!(masked);
        linux["readonlyPaths"] = json!(hardened::default_readonly_paths());
    }
    if let Some(s) = &e.seccomp {
        let mut s = s.clone();
        if o.profile == Profile::Restricted
            && !o
                .security_opts
                .iter()
                .any(|x| matches!(x, SecurityOpt::SeccompProfile(_)))
        {
            no_setid_files(&mut s);
        }
        linux["seccomp"] = s;
    }

    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION.to_string(), o.profile.name().to_string());
    if let Some(s) = image.stop_signal.filter(|s| !s.is_empty()) {
        crate::signal::parse(&s)
            .map_err(|err| SandboxError::flag("image config StopSignal", err.to_string()))?;
        annotations.insert(STOP_SIGNAL_ANNOTATION.to_string(), s);
    }
    if e.landlock {
        annotations.insert(
            landlock::ANNOTATION.to_string(),
            landlock_policy(e.read_only, &writable).to_string(),
        );
    }

    Ok(json!({
        "ociVersion": crate::template::OCI_VERSION,
        "root": {"path": path_str(&o.rootfs), "readonly": e.read_only},
        "hostname": o.hostname.clone().unwrap_or_else(|| "sandbox".into()),
        "process": process,
        "mounts": mounts,
        "linux": linux,
        "annotations": annotations,
    }))
}

/// Syscalls that set a file's mode, with the index of their mode argument.
const MODE_SETTERS: [(&str, u32); 6] = [
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("fchmodat2", 2),
    ("creat", 1),
    ("mknod", 1),
];
const MODE_SETTERS_AT: [(&str, u32); 1] = [("mknodat", 2)];
/// open-like calls: (name, flags index, mode index).
const OPENERS: [(&str, u32, u32); 2] = [("open", 1, 2), ("openat", 2, 3)];

/// `restricted`: no setuid or setgid bits on any file. Through an idmapped
/// rw volume, container root's files are host root's, so a setuid file
/// made in the sandbox would be a setuid-root program on the host. The
/// mode-setting syscalls are allowed only without S_ISUID/S_ISGID, open
/// only when it creates nothing or without those bits, and openat2 (whose
/// mode seccomp cannot see) reports ENOSYS so that callers fall back to
/// openat.
fn no_setid_files(seccomp: &mut Value) {
    let setid = u64::from(libc::S_ISUID | libc::S_ISGID);
    let creating = (libc::O_CREAT | (libc::O_TMPFILE & !libc::O_DIRECTORY)) as u64;
    let masked_zero = |index: u32, mask: u64| json!({"index": index, "value": mask, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"});
    let guarded: Vec<&str> = MODE_SETTERS
        .iter()
        .chain(MODE_SETTERS_AT.iter())
        .map(|(n, _)| *n)
        .chain(OPENERS.iter().map(|(n, _, _)| *n))
        .chain(["openat2"])
        .collect();
    let Some(rules) = seccomp["syscalls"].as_array_mut() else {
        return;
    };
    for r in rules.iter_mut() {
        if let Some(names) = r["names"].as_array_mut() {
            names.retain(|n| !n.as_str().is_some_and(|n| guarded.contains(&n)));
        }
    }
    rules.retain(|r| r["names"].as_array().is_none_or(|n| !n.is_empty()));
    for (name, idx) in MODE_SETTERS.iter().chain(MODE_SETTERS_AT.iter()) {
        rules.push(json!({"names": [name], "action": "SCMP_ACT_ALLOW",
                          "args": [masked_zero(*idx, setid)]}));
    }
    for (name, flags, mode) in OPENERS {
        rules.push(json!({"names": [name], "action": "SCMP_ACT_ALLOW",
                          "args": [masked_zero(flags, creating)]}));
        rules.push(json!({"names": [name], "action": "SCMP_ACT_ALLOW",
                          "args": [masked_zero(mode, setid)]}));
    }
    rules.push(json!({"names": ["openat2"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": libc::ENOSYS}));
}

/// Landlock: everything readable and executable, writes only beneath the
/// writable mounts and /dev (the null device, terminals, shm). Best effort,
/// so that a kernel without Landlock still runs the sandbox with every
/// other layer.
fn landlock_policy(read_only: bool, writable: &[PathBuf]) -> Value {
    let mut root_access = vec!["read", "execute"];
    if !read_only {
        root_access.push("write");
    }
    let mut rules = vec![json!({"path": "/", "access": root_access})];
    if read_only {
        rules.push(json!({"path": "/dev", "access": ["write"]}));
        for w in writable {
            rules.push(json!({"path": path_str(w), "access": ["write"]}));
        }
    }
    json!({"mode": "best-effort", "filesystem": rules})
}
