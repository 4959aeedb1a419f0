//! Stage 0 (the runtime process) and stage 1 (namespace setup), which the
//! common case skips: stage 0 then clones the init itself.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use bulkhead_spec::plan::{IdMap, NsKind};
use bulkhead_sys::Forked;

use crate::subid::MapWriter;
use crate::sync::{self, Channel, Msg};
use crate::{LaunchError, LaunchRequest, hooks, init, io_err};

/// Kills and reaps a child unless disarmed: every early return of stage 0
/// leaves no process behind.
struct ChildGuard(Option<i32>);

impl ChildGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = bulkhead_sys::kill(pid, libc::SIGKILL);
            let _ = bulkhead_sys::wait_exit(pid);
        }
    }
}

/// Namespaces to join, opened before anything forks so that a bad path is
/// reported by the runtime itself, naming the field.
struct Joins(Vec<(NsKind, OwnedFd)>);

fn open_joins(req: &LaunchRequest<'_>) -> Result<Joins, LaunchError> {
    let mut out = Vec::new();
    for (i, ns) in req.plan.namespaces.iter().enumerate() {
        if let Some(path) = &ns.path {
            let f = File::open(path).map_err(io_err(format!(
                "linux.namespaces[{i}].path: {}",
                path.display()
            )))?;
            const NSFS_MAGIC: i64 = 0x6e73_6673;
            let is_ns = rustix::fs::fstatfs(&f).is_ok_and(|s| s.f_type == NSFS_MAGIC);
            if !is_ns {
                return Err(LaunchError::Setup(format!(
                    "linux.namespaces[{i}].path: {} is not a namespace file",
                    path.display()
                )));
            }
            out.push((ns.kind, OwnedFd::from(f)));
        }
    }
    Ok(Joins(out))
}

/// Create the container init; returns its host pid once it is fully set up
/// and blocked before exec.
pub fn launch(req: &LaunchRequest<'_>) -> Result<i32, LaunchError> {
    let joins = open_joins(req)?;
    // Compiled here, outside the sensitive child; the init only loads bytes.
    let seccomp = match &req.plan.seccomp {
        Some(s) => Some(
            match req
                .seccomp_cache
                .and_then(|d| bulkhead_seccomp::lookup_cached(s, d))
            {
                Some(c) => c,
                None => bulkhead_seccomp::compile(s)?,
            },
        ),
        None => None,
    };
    if let Some(c) = &seccomp {
        for w in &c.warnings {
            tracing::warn!("linux.seccomp: {w}");
        }
        let has_listener = req
            .plan
            .seccomp
            .as_ref()
            .is_some_and(|s| s.listener_path().is_some());
        if c.notify && !has_listener {
            return Err(LaunchError::Setup(
                "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY".into(),
            ));
        }
    }
    let console = match req.console_socket {
        Some(p) => Some(
            UnixStream::connect(p).map_err(io_err(format!("--console-socket {}", p.display())))?,
        ),
        None => None,
    };
    // Host root (or root of the namespace we run in) writes any map itself;
    // an unprivileged caller needs its own ids only, or the setuid helpers.
    let writer = if !req.plan.creates(NsKind::User) || rustix::process::geteuid().is_root() {
        MapWriter::Privileged
    } else {
        crate::subid::writer(&req.plan.uid_mappings, &req.plan.gid_mappings).map_err(Box::new)?
    };
    let trees = crate::idmap::prepare(req.plan)?;
    let (parent, child) = sync::pair().map_err(io_err("socketpair"))?;
    // The init straight from stage 0 when nothing needs stage 1 in between.
    let direct = direct_flags(req.plan, &joins);
    let flags = match direct {
        Some(flags) => flags,
        None if req.plan.creates(NsKind::User) => libc::CLONE_NEWUSER as u64,
        None => 0,
    };
    let what = if direct.is_some() {
        "clone the container init"
    } else {
        "clone stage 1"
    };
    match bulkhead_sys::fork(flags).map_err(io_err(what))? {
        Forked::Child => {
            drop(parent);
            if direct.is_some() {
                direct_init(req, &child, &joins, console, seccomp.as_ref(), &trees)
            }
            child_main(&child, || {
                stage1(req, &child, &joins, console, seccomp.as_ref(), &trees)
            })
        }
        Forked::Parent(pid) => {
            drop(child);
            drop(console);
            drop(joins);
            drop(trees);
            let first = if direct.is_some() {
                Stage1::None(pid)
            } else {
                Stage1::Forked(pid)
            };
            let pid = stage0(req, first, &parent, &writer)?;
            // Cached only once it has served a container that came up.
            if let (Some(s), Some(c), Some(dir)) = (&req.plan.seccomp, &seccomp, req.seccomp_cache)
            {
                bulkhead_seccomp::remember_compiled(s, dir, c);
            }
            Ok(pid)
        }
    }
}

/// Body of a forked setup process: run `f`, report its error to stage 0,
/// and leave without running anything of the parent's (no destructors).
pub(crate) fn child_main(ch: &Channel, f: impl FnOnce() -> Result<(), String>) -> ! {
    let code = match f() {
        Ok(()) => 0,
        Err(e) => {
            let _ = ch.send(&Msg::Error(e));
            1
        }
    };
    bulkhead_sys::exit_now(code)
}

/// The namespaces a container creates, as flags for one `clone` that makes
/// the init directly, without stage 1 (as crun does), when nothing needs an
/// intermediate process: no namespace to join (setns of a pid namespace only
/// applies to children), no user namespace (its maps come between its
/// creation and the creation of the namespaces it owns), no time offsets
/// (written before any process enters the namespace), no time namespace
/// (`unshare` puts only children into one; clone takes it through clone3
/// only). The cgroup namespace
/// is left out: the init creates it once stage 0 has placed it in its
/// cgroups, so that it is rooted there.
fn direct_flags(plan: &bulkhead_spec::plan::Plan, joins: &Joins) -> Option<u64> {
    let simple =
        joins.0.is_empty() && plan.ns(NsKind::User).is_none() && plan.ns(NsKind::Time).is_none();
    simple.then(|| {
        plan.namespaces
            .iter()
            .filter(|n| n.kind != NsKind::Cgroup)
            .fold(0u64, |acc, n| acc | n.kind.clone_flag() as u64)
    })
}

/// The process stage 0 forked: stage 1, which forks the init, or the init
/// itself (see [`direct_flags`]).
#[derive(Clone, Copy)]
enum Stage1 {
    Forked(i32),
    None(i32),
}

fn stage0(
    req: &LaunchRequest<'_>,
    first: Stage1,
    ch: &Channel,
    writer: &MapWriter,
) -> Result<i32, LaunchError> {
    let (Stage1::Forked(stage1_pid) | Stage1::None(stage1_pid)) = first;
    let mut s1 = ChildGuard(Some(stage1_pid));
    bulkhead_sys::fault::point("create.clone");
    // Placed before stage 1 runs any container setup, so the cgroup
    // namespace it creates is rooted at the container's cgroup.
    req.cgroups.place_init(stage1_pid, req.place_resources)?;
    if req.plan.creates(NsKind::User) {
        match writer {
            MapWriter::Helpers {
                newuidmap,
                newgidmap,
            } => {
                crate::subid::run_helper(newuidmap, stage1_pid, &req.plan.uid_mappings)
                    .map_err(Box::new)?;
                crate::subid::run_helper(newgidmap, stage1_pid, &req.plan.gid_mappings)
                    .map_err(Box::new)?;
            }
            MapWriter::OwnIds => {
                // The kernel takes an unprivileged gid_map only once
                // setgroups is denied for good in the namespace.
                deny_setgroups(stage1_pid)?;
                write_id_maps(stage1_pid, &req.plan.uid_mappings, &req.plan.gid_mappings)?;
            }
            MapWriter::Privileged => {
                write_id_maps(stage1_pid, &req.plan.uid_mappings, &req.plan.gid_mappings)?;
            }
        }
    }
    bulkhead_sys::fault::point("create.stage1-placed");
    ch.send(&Msg::Go).map_err(io_err("sync"))?;
    let init_pid = match first {
        Stage1::None(pid) => pid,
        Stage1::Forked(_) => match ch
            .recv()
            .map_err(io_err("waiting for the container init"))?
        {
            Msg::InitPid(p) => p,
            Msg::Error(e) => return Err(LaunchError::Setup(e)),
            m => return Err(LaunchError::Protocol(format!("unexpected {m:?}"))),
        },
    };
    s1.disarm();
    let mut init = ChildGuard(Some(init_pid));
    if let Stage1::Forked(pid) = first {
        let _ = bulkhead_sys::wait_exit(pid);
    }
    bulkhead_sys::fault::point("create.init-forked");
    // Its network namespace exists and nothing runs in it yet: devices
    // arrive before any hook or the container's own setup sees it. On a
    // later failure the init dies with its namespace, which gives physical
    // devices back to the host and destroys virtual ones (as in runc).
    move_net_devices(req.plan, init_pid)?;
    bulkhead_sys::fault::point("create.netdevices");
    // The init shares stage 1's end of the socket: it may only speak once
    // stage 1's InitPid has been read, or the two would interleave.
    ch.send(&Msg::Go).map_err(io_err("sync"))?;
    loop {
        match ch.recv_with_fd().map_err(|e| init_lost(req.plan, e))? {
            (Msg::SeccompListener, Some(fd)) => {
                let state = req.hook_state.json("creating", init_pid);
                crate::notify::hand_over(req.plan, &state, init_pid, fd)?;
            }
            (Msg::RunCreateRuntimeHooks, _) => {
                // prestart (the deprecated hook of the old lifecycle, run at
                // start then) sees "created", as crun and the runtime-tools
                // suite expect; createRuntime sees "creating", as in runc.
                let prestart = req.hook_state.json("created", init_pid);
                hooks::run_all("prestart", &req.plan.hooks.prestart, &prestart)?;
                let state = req.hook_state.json("creating", init_pid);
                hooks::run_all("createRuntime", &req.plan.hooks.create_runtime, &state)?;
                ch.send(&Msg::Go).map_err(io_err("sync"))?;
            }
            (Msg::Ready, _) => break,
            (Msg::Error(e), _) => return Err(LaunchError::Setup(e)),
            (m, _) => return Err(LaunchError::Protocol(format!("unexpected {m:?}"))),
        }
    }
    init.disarm();
    Ok(init_pid)
}

fn move_net_devices(plan: &bulkhead_spec::plan::Plan, init_pid: i32) -> Result<(), LaunchError> {
    if plan.net_devices.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{init_pid}/ns/net");
    let netns = File::open(&path).map_err(io_err(format!("linux.netDevices: open {path}")))?;
    let moves: Vec<_> = plan
        .net_devices
        .iter()
        .map(|d| bulkhead_net::netdev::Move {
            host: d.host.clone(),
            name: d.name.clone(),
        })
        .collect();
    bulkhead_net::netdev::move_into(netns.as_fd(), &moves)?;
    Ok(())
}

/// The init went away without a word. With a seccomp profile loaded before
/// exec the likeliest reason is a refused syscall (the runtime's own
/// sendmsg, read or execve); say so rather than just "EOF".
pub(crate) fn init_lost(plan: &bulkhead_spec::plan::Plan, e: std::io::Error) -> LaunchError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof && plan.seccomp.is_some() {
        return LaunchError::Setup(
            "the container process died during setup without reporting; linux.seccomp may \
             refuse a syscall the runtime needs before exec (sendmsg, read, execve)"
                .into(),
        );
    }
    io_err("waiting for the container init")(e)
}

/// Write uid_map and gid_map of a process in a new user namespace: by root
/// in the parent namespace (any maps), or by the unprivileged owner (its
/// own ids only).
/// An unprivileged gid_map needs setgroups denied in the namespace first.
pub(crate) fn deny_setgroups(pid: i32) -> Result<(), LaunchError> {
    write_proc_file(pid, "setgroups", "deny")
}

pub(crate) fn write_id_maps(pid: i32, uids: &[IdMap], gids: &[IdMap]) -> Result<(), LaunchError> {
    let render = |maps: &[IdMap]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect::<String>()
    };
    write_proc_file(pid, "uid_map", &render(uids))?;
    write_proc_file(pid, "gid_map", &render(gids))
}

/// Write `/proc/<pid>/<file>` in one write (the kernel wants whole maps).
fn write_proc_file(pid: i32, file: &str, content: &str) -> Result<(), LaunchError> {
    let procfs = pathrs::procfs::ProcfsHandle::new()
        .map_err(|e| LaunchError::Setup(format!("open procfs: {e}")))?;
    let mut f = procfs
        .open(
            pathrs::procfs::ProcfsBase::ProcPid(pid as u32),
            file,
            pathrs::flags::OpenFlags::O_WRONLY,
        )
        .map_err(|e| LaunchError::Setup(format!("open /proc/{pid}/{file}: {e}")))?;
    f.write_all(content.as_bytes()).map_err(io_err(format!(
        "write {file} ({})",
        content.trim().replace('\n', ", ")
    )))
}

/// Stage 1: enter the namespaces, then fork the init into the ones that only
/// apply to children (pid, time).
fn stage1(
    req: &LaunchRequest<'_>,
    ch: &Channel,
    joins: &Joins,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
    trees: &crate::idmap::IdmapTrees,
) -> Result<(), String> {
    first_steps(req, ch, joins, console.as_ref(), trees)?;
    let plan = req.plan;
    // Joining a user namespace first gives the capabilities needed to join
    // the namespaces it owns.
    for (kind, fd) in joins.0.iter().filter(|(k, _)| *k == NsKind::User) {
        bulkhead_sys::setns(fd.as_fd(), kind.clone_flag())
            .map_err(|e| format!("join {} namespace: {e}", kind.proc_name()))?;
    }
    if plan.ns(NsKind::User).is_some() {
        become_root_in_userns(plan)?;
    }
    for (kind, fd) in joins.0.iter().filter(|(k, _)| *k != NsKind::User) {
        bulkhead_sys::setns(fd.as_fd(), kind.clone_flag())
            .map_err(|e| format!("join {} namespace: {e}", kind.proc_name()))?;
    }
    let flags = plan
        .namespaces
        .iter()
        .filter(|n| n.path.is_none() && n.kind != NsKind::User)
        .fold(0, |acc, n| acc | n.kind.clone_flag());
    if flags != 0 {
        bulkhead_sys::unshare(flags).map_err(|e| format!("create namespaces: {e}"))?;
    }
    if !plan.time_offsets.is_empty() {
        write_time_offsets(&plan.time_offsets)?;
    }
    match bulkhead_sys::fork(libc::CLONE_PARENT as u64) {
        Err(e) => Err(format!("fork container init: {e}")),
        Ok(Forked::Child) => init::run(req, ch, console, seccomp, trees),
        Ok(Forked::Parent(pid)) => ch.send(&Msg::InitPid(pid)).map_err(|e| e.to_string()),
    }
}

/// The init made by stage 0's own clone (see [`direct_flags`]): what stage 1
/// would have done first, then the init's setup.
fn direct_init(
    req: &LaunchRequest<'_>,
    ch: &Channel,
    joins: &Joins,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
    trees: &crate::idmap::IdmapTrees,
) -> ! {
    let before = || -> Result<(), String> {
        first_steps(req, ch, joins, console.as_ref(), trees)?;
        if req.plan.creates(NsKind::Cgroup) {
            bulkhead_sys::unshare(libc::CLONE_NEWCGROUP)
                .map_err(|e| format!("create namespaces: {e}"))?;
        }
        Ok(())
    };
    if let Err(e) = before() {
        let _ = ch.send(&Msg::Error(e));
        bulkhead_sys::exit_now(1);
    }
    init::run(req, ch, console, seccomp, trees)
}

/// The first steps of stage 1 or of a directly cloned init: keep only what
/// the init needs (stdio, the caller's --preserve-fds, the fds handed over on
/// purpose; anything else the runtime had open, the state lock above all,
/// must not live on in the container), then wait for stage 0's go (it has
/// placed us in the cgroups and written any id maps).
fn first_steps(
    req: &LaunchRequest<'_>,
    ch: &Channel,
    joins: &Joins,
    console: Option<&UnixStream>,
    trees: &crate::idmap::IdmapTrees,
) -> Result<(), String> {
    let mut keep: Vec<RawFd> = vec![ch.as_raw_fd(), req.exec_fifo.as_raw_fd()];
    keep.extend(joins.0.iter().map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(console.iter().map(|c| c.as_raw_fd()));
    keep.extend(trees.0.iter().flatten().map(|t| t.as_raw_fd()));
    keep.extend(3..3 + req.preserve_fds as RawFd);
    bulkhead_sys::close_fds_except(3, &keep).map_err(|e| format!("close fds: {e}"))?;
    match ch.recv().map_err(|e| e.to_string())? {
        Msg::Go => Ok(()),
        m => Err(format!("internal: unexpected {m:?}")),
    }
}

/// In a user namespace, act as its root (when mapped) so that setup runs with
/// the namespace's full privileges and files are created as container root.
fn become_root_in_userns(plan: &bulkhead_spec::plan::Plan) -> Result<(), String> {
    let joined = plan.ns(NsKind::User).is_some_and(|n| n.path.is_some());
    let maps_root = |m: &[IdMap]| m.iter().any(|m| m.container_id == 0);
    if joined || (maps_root(&plan.uid_mappings) && maps_root(&plan.gid_mappings)) {
        bulkhead_sys::setresgid(0).map_err(|e| format!("setresgid(0) in user namespace: {e}"))?;
        bulkhead_sys::setresuid(0).map_err(|e| format!("setresuid(0) in user namespace: {e}"))?;
    }
    Ok(())
}

fn write_time_offsets(offsets: &[(String, i64, u32)]) -> Result<(), String> {
    let procfs = pathrs::procfs::ProcfsHandle::new().map_err(|e| format!("open procfs: {e}"))?;
    let mut f = procfs
        .open(
            pathrs::procfs::ProcfsBase::ProcSelf,
            "timens_offsets",
            pathrs::flags::OpenFlags::O_WRONLY,
        )
        .map_err(|e| format!("open timens_offsets: {e}"))?;
    let text: String = offsets
        .iter()
        .map(|(clock, s, ns)| format!("{clock} {s} {ns}\n"))
        .collect();
    f.write_all(text.as_bytes())
        .map_err(|e| format!("linux.timeOffsets: write timens_offsets: {e}"))
}
