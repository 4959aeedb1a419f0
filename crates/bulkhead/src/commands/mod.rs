//! One function per subcommand; each turns flags into lifecycle calls.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{CreateOptions, Store};

use crate::{Cmd, CreateArgs};

pub mod audit;
pub mod events;
pub mod exec;
pub mod learn;
pub mod network;
pub mod sandbox;
mod tty;
pub mod update;

pub struct Ctx {
    /// The state root, or why there is no default one.
    pub root: Result<PathBuf, bulkhead_lifecycle::rootless::RootlessError>,
    pub systemd_cgroup: bool,
    pub rootless: bool,
}

impl Ctx {
    fn store(&self) -> Result<Store> {
        match &self.root {
            Ok(r) => Ok(Store::new(r.clone()).rootless(self.rootless)),
            Err(e) => bail!("{e}"),
        }
    }
}

fn create_opts(ctx: &Ctx, a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        systemd_cgroup: ctx.systemd_cgroup,
        learn_seccomp: a.learn_seccomp.clone(),
    }
}

pub fn dispatch(ctx: &Ctx, cmd: Cmd) -> Result<i32> {
    // These need no state root (audit only for a container id).
    match cmd {
        Cmd::Spec { bundle, rootless } => {
            spec(&bundle, rootless)?;
            return Ok(0);
        }
        Cmd::Features => {
            features()?;
            return Ok(0);
        }
        Cmd::Audit(args) => return audit::run(ctx, &args),
        Cmd::LearnRecorder(args) => {
            learn::recorder(&args)?;
            return Ok(0);
        }
        _ => {}
    }
    let store = ctx.store()?;
    match cmd {
        Cmd::Create { args, id } => {
            store.create(&id, &create_opts(ctx, &args))?;
        }
        Cmd::Start { id } => store.start(&id)?,
        Cmd::Run {
            args,
            detach,
            keep,
            no_subreaper: _,
            id,
        } => return run(&store, &id, &create_opts(ctx, &args), detach, keep),
        Cmd::State { id } => {
            let rec = store.load(&id)?;
            outln!("{}", serde_json::to_string_pretty(&store.view(&rec))?)?;
        }
        Cmd::Kill { all, id, signal } => {
            let sig = match signal.as_deref() {
                None => libc::SIGTERM,
                Some(s) => bulkhead_spec::signal::parse(s)?,
            };
            store.kill(&id, sig, all)?;
        }
        Cmd::Delete { force, id } => delete(&store, &id, force)?,
        Cmd::List { format, quiet } => list(&store, &format, quiet)?,
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => ps(&store, &id, &format, &ps_args)?,
        Cmd::Pause { id } => store.pause(&id)?,
        Cmd::Resume { id } => store.resume(&id)?,
        Cmd::Spec { .. } | Cmd::Features | Cmd::Audit(_) | Cmd::LearnRecorder(_) => {
            unreachable!("handled above")
        }
        Cmd::Sandbox(args) => return Ok(sandbox::main(&store, &args)),
        Cmd::Logs { follow, name } => sandbox::verbs::logs(&store, &name, follow)?,
        Cmd::Stop { time, name } => sandbox::verbs::stop(&store, &name, time)?,
        Cmd::Rm { force, names } => {
            for n in &names {
                sandbox::verbs::rm(&store, n, force)?;
            }
        }
        Cmd::Attach {
            no_stdin,
            detach_keys,
            name,
        } => {
            return sandbox::attach::attach(&store, &name, no_stdin, &detach_keys);
        }
        Cmd::Wait { names } => sandbox::verbs::wait(&store, &names)?,
        Cmd::Inspect { names } => sandbox::verbs::inspect(&store, &names)?,
        Cmd::Exec(args) => return exec::run(&store, &args),
        Cmd::Update(args) => update::run(&store, &args)?,
        Cmd::Events(args) => events::run(&store, &args)?,
        Cmd::Network(cmd) => network::dispatch(&store, &cmd)?,
    }
    Ok(0)
}

/// An error and its causes on one line, each cause once (several error
/// types already print their source).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
    }
    msg
}

/// The init's pid for the signal forwarder of a foreground `run`.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    if pid > 0 {
        let _ = bulkhead_sys::kill(pid, sig);
    }
}

/// Create, start and (in the foreground) wait for the init, then delete.
/// The init is our child, so waiting on its pid cannot miss its exit however
/// quickly it happens.
pub(crate) fn run(
    store: &Store,
    id: &str,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
) -> Result<i32> {
    run_with(store, id, opts, detach, keep, &|_| Ok(()))
}

/// Deletes a container and releases what it held outside the container
/// itself (its network addresses, veths and published ports).
pub(crate) fn delete(store: &Store, id: &str, force: bool) -> Result<()> {
    store.delete(id, force)?;
    network::release(store, id)
}

/// [`run`], with `before_start(pid)` called between create and start (a
/// sandbox's network is set up there, in the init's namespaces).
pub(crate) fn run_with(
    store: &Store,
    id: &str,
    opts: &CreateOptions,
    detach: bool,
    keep: bool,
    before_start: &dyn Fn(i32) -> Result<()>,
) -> Result<i32> {
    // A terminal in the foreground without a console socket: receive the pty
    // ourselves and relay it.
    let console = if !detach && opts.console_socket.is_none() && wants_terminal(&opts.bundle) {
        Some(tty::Console::listen(&store.root, id)?)
    } else {
        None
    };
    let mut own = CreateOptions {
        console_socket: console.as_ref().map(|c| c.path()),
        ..opts.clone()
    };
    if console.is_none() {
        own.console_socket = opts.console_socket.clone();
    }
    let pid = store.create(id, &own)?;
    let master = match console.as_ref().map(|c| c.receive()).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = delete(store, id, true);
            return Err(e);
        }
    };
    drop(console);
    if let Err(e) = before_start(pid) {
        let _ = delete(store, id, true);
        return Err(e);
    }
    if let Err(e) = store.start(id) {
        let _ = delete(store, id, true);
        return Err(e.into());
    }
    if detach {
        return Ok(0);
    }
    let code = wait_foreground(pid, master.as_ref())?;
    // A learning run's profile is on disk when `run` returns.
    store.wait_learning(id);
    if !keep {
        delete(store, id, true)?;
    }
    Ok(code)
}

/// Wait for a process we forked (the init or an exec process), relaying its
/// terminal if we hold the master and forwarding signals to it.
pub(crate) fn wait_foreground(pid: i32, master: Option<&std::os::fd::OwnedFd>) -> Result<i32> {
    FORWARD_TO.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
    ] {
        bulkhead_sys::set_signal_handler(sig, forward).context("install signal forwarding")?;
    }
    if let Some(m) = master {
        tty::relay(m)?;
    }
    let status = bulkhead_sys::wait_exit(pid).context("wait for the process")?;
    FORWARD_TO.store(0, Ordering::Relaxed);
    Ok(status.code())
}

/// Whether the bundle's process asks for a terminal (read before create, so
/// the relay can be set up; create validates the config fully).
fn wants_terminal(bundle: &std::path::Path) -> bool {
    // Only this one field is deserialized: the rest is skipped, not built
    // into a Value tree (that was a fifth of `run`'s own instructions).
    #[derive(serde::Deserialize)]
    struct Config {
        process: Option<Process>,
    }
    #[derive(serde::Deserialize)]
    struct Process {
        #[serde(default)]
        terminal: bool,
    }
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Config>(&b).ok())
        .and_then(|c| c.process)
        .is_some_and(|p| p.terminal)
}

fn list(store: &Store, format: &str, quiet: bool) -> Result<()> {
    let views: Vec<_> = store
        .ids()
        .iter()
        .filter_map(|id| match store.load(id) {
            Ok(r) => Some(r),
            // Never a half-read entry; say why it is missing instead.
            Err(e) => {
                eprintln!("bulkhead: list: skipping {id}: {e} (`delete --force {id}` removes it)");
                None
            }
        })
        .map(|r| store.view(&r))
        .collect();
    let mut out = std::io::stdout().lock();
    if quiet {
        for v in &views {
            writeln!(out, "{}", v.id)?;
        }
        return Ok(());
    }
    match format {
        "json" => writeln!(out, "{}", serde_json::to_string(&views)?)?,
        "table" => {
            let rows: Vec<[String; 6]> = views
                .iter()
                .map(|v| {
                    [
                        v.id.clone(),
                        v.pid.to_string(),
                        sandbox::verbs::status_text(v.status, v.exit.as_ref()),
                        v.bundle.display().to_string(),
                        v.created.clone(),
                        if v.owner.is_empty() {
                            "root".into()
                        } else {
                            v.owner.clone()
                        },
                    ]
                })
                .collect();
            let head = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = [0usize; 6];
            for r in std::iter::once(&head).chain(rows.iter()) {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                writeln!(out, "{}", line.join("   ").trim_end())?;
            }
        }
        f => bail!("--format: unknown format {f:?} (expected table or json)"),
    }
    Ok(())
}

fn ps(store: &Store, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let rec = store.load(id)?;
    let pids = store.pids(&rec)?;
    match format {
        "json" => outln!("{}", serde_json::to_string(&pids)?)?,
        "table" => {
            let args = if ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let Some(header) = lines.next() else {
                return Ok(());
            };
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            outln!("{header}")?;
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                    && pids.contains(&p)
                {
                    outln!("{l}")?;
                }
            }
        }
        f => bail!("--format: unknown format {f:?} (expected table or json)"),
    }
    Ok(())
}

fn spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    let ids = rootless.then(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    });
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let v = bulkhead_spec::template::default_spec(ids);
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

fn features() -> Result<()> {
    let landlock_abi = bulkhead_launch::stage::landlock::kernel_abi();
    let support = bulkhead_spec::features::Support {
        seccomp: true,
        seccomp_actions: strings(bulkhead_seccomp::supported_actions()),
        seccomp_archs: strings(bulkhead_seccomp::supported_archs()),
        seccomp_supported_flags: strings(bulkhead_seccomp::supported_flags()),
        apparmor: std::path::Path::new("/sys/kernel/security/apparmor").exists(),
        selinux: std::path::Path::new("/sys/fs/selinux/enforce").exists(),
        cgroup_v1: true,
        cgroup_v2: true,
        // The driver is there; whether systemd runs is checked at create.
        systemd: true,
        idmap: true,
        landlock: landlock_abi.is_some(),
        landlock_abi,
        ..Default::default()
    };
    outln!(
        "{}",
        serde_json::to_string_pretty(&bulkhead_spec::features::features(&support))?
    )?;
    Ok(())
}

fn strings(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(String::from).collect()
}
