//! `exec`: a new process in a running container, confined exactly like its
//! init (same namespaces, cgroups, seccomp, capabilities rules).
//!
//! Stage 0 (the runtime) forks stage 1 and places it in the container's
//! cgroups. Stage 1 joins every namespace of the init at once with
//! `setns(pidfd, flags)` (the kernel orders the user namespace first), then
//! forks the process with `CLONE_PARENT` so the pid and time namespaces apply
//! to it. That process runs the same security and exec stages as the init.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use bulkhead_cgroups::CgroupSet;
use bulkhead_spec::plan::{NsKind, Plan, ProcessPlan};
use bulkhead_sys::Forked;

use crate::choreography::child_main;
use crate::stage::{self, StageError};
use crate::sync::{self, Channel, Msg};
use crate::{LaunchError, io_err};

#[derive(Debug)]
pub struct ExecRequest<'a> {
    /// The container's plan: namespaces, seccomp and the rest of the
    /// confinement the new process shares with the init.
    pub plan: &'a Plan,
    pub process: &'a ProcessPlan,
    /// A pidfd of the container init, opened after checking its start time.
    pub init: BorrowedFd<'a>,
    pub init_pid: i32,
    pub cgroups: &'a CgroupSet,
    /// `--cgroup`: a sub-cgroup (relative to the container's) to join.
    pub sub_cgroup: Option<&'a str>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
    /// The container's state, for the seccomp notify agent.
    pub hook_state: crate::hooks::HookState,
    /// Where compiled seccomp filters are cached (None: compile every time).
    pub seccomp_cache: Option<&'a Path>,
}

fn ns_inode(pid: &str, kind: NsKind) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{}", kind.proc_name()))
        .ok()
        .map(|m| m.ino())
}

/// Start the process; returns its host pid once it has exec'd the program
/// (so a missing program or bad user is reported here, not lost, and the
/// pid names the program when the caller reads it).
pub fn exec_process(req: &ExecRequest<'_>) -> Result<i32, LaunchError> {
    // Join every namespace in which the init differs from us.
    let init = req.init_pid.to_string();
    let flags = NsKind::ALL
        .iter()
        .filter(|k| {
            let theirs = ns_inode(&init, **k);
            theirs.is_some() && theirs != ns_inode("self", **k)
        })
        .fold(0, |acc, k| acc | k.clone_flag());
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
    let console = match req.console_socket {
        Some(p) => Some(
            UnixStream::connect(p).map_err(io_err(format!("--console-socket {}", p.display())))?,
        ),
        None => None,
    };
    // The init's root, to enter after the namespaces: the same as the mount
    // namespace's root for a pivoted container, but not for one that was
    // chrooted (--no-pivot, or no mount namespace of its own).
    let root = std::fs::File::open(format!("/proc/{}/root", req.init_pid))
        .map_err(io_err("open the container's root"))?;
    let (parent, child) = sync::pair().map_err(io_err("socketpair"))?;
    // The process's end survives its execve only inside a --preserve-fds
    // range; otherwise stage 0 waits for that execve to close it.
    let exec_closes_channel = child.as_raw_fd() >= 3 + req.preserve_fds as RawFd;
    match bulkhead_sys::fork(0).map_err(io_err("fork"))? {
        Forked::Child => {
            drop(parent);
            child_main(&child, || {
                stage1(req, &child, flags, console, seccomp.as_ref(), &root)
            })
        }
        Forked::Parent(pid) => {
            drop(child);
            drop(console);
            let pid = stage0(req, pid, &parent, exec_closes_channel)?;
            if let (Some(s), Some(c), Some(dir)) = (&req.plan.seccomp, &seccomp, req.seccomp_cache)
            {
                bulkhead_seccomp::remember_compiled(s, dir, c);
            }
            Ok(pid)
        }
    }
}

fn stage0(
    req: &ExecRequest<'_>,
    stage1: i32,
    ch: &Channel,
    exec_closes_channel: bool,
) -> Result<i32, LaunchError> {
    let kill = |pid: i32| {
        let _ = bulkhead_sys::kill(pid, libc::SIGKILL);
        let _ = bulkhead_sys::wait_exit(pid);
    };
    let placed = match req.sub_cgroup {
        None => req.cgroups.add_pid(stage1),
        Some(sub) => req.cgroups.add_pid_to(sub, stage1),
    };
    if let Err(e) = placed {
        kill(stage1);
        return Err(e.into());
    }
    bulkhead_sys::fault::point("exec.placed");
    if let Err(e) = ch.send(&Msg::Go) {
        kill(stage1);
        return Err(io_err("sync")(e));
    }
    let pid = match ch.recv() {
        Ok(Msg::InitPid(p)) => p,
        Ok(Msg::Error(e)) => {
            let _ = bulkhead_sys::wait_exit(stage1);
            return Err(LaunchError::Setup(e));
        }
        Ok(m) => {
            kill(stage1);
            return Err(LaunchError::Protocol(format!("unexpected {m:?}")));
        }
        Err(e) => {
            kill(stage1);
            return Err(io_err("waiting for the exec process")(e));
        }
    };
    let _ = bulkhead_sys::wait_exit(stage1);
    bulkhead_sys::fault::point("exec.forked");
    // See choreography::stage0: the process may only speak after InitPid.
    if let Err(e) = ch.send(&Msg::Go) {
        kill(pid);
        return Err(io_err("sync")(e));
    }
    loop {
        match ch.recv_with_fd() {
            Ok((Msg::Ready, _)) if exec_closes_channel => break,
            Ok((Msg::Ready, _)) => return Ok(pid),
            Ok((Msg::SeccompListener, Some(fd))) => {
                let state = req.hook_state.json("running", req.init_pid);
                if let Err(e) = crate::notify::hand_over(req.plan, &state, pid, fd) {
                    kill(pid);
                    return Err(e);
                }
            }
            Ok((Msg::Error(e), _)) => {
                let _ = bulkhead_sys::wait_exit(pid);
                return Err(LaunchError::Setup(e));
            }
            Err(e) => {
                kill(pid);
                return Err(crate::choreography::init_lost(req.plan, e));
            }
            other => {
                kill(pid);
                return Err(LaunchError::Protocol(format!("unexpected {other:?}")));
            }
        }
    }
    // Ready comes just before execve, and the process's end of the channel
    // is close-on-exec: EOF says the program runs (or that execve failed and
    // the process, like a shell, reported it on stderr and exits 127/126; or
    // that it died). Returning only then, the pid file never names a process
    // still in the runtime's code, and a caller acting on our return (a
    // containerd shim reads the pid file and opens the exec's fifos) finds
    // the program running. runc returns just before execve, but its own
    // exit takes longer than that execve; ours does not.
    match ch.recv() {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(pid),
        Ok(m) => {
            kill(pid);
            Err(LaunchError::Protocol(format!("unexpected {m:?}")))
        }
        Err(e) => {
            kill(pid);
            Err(io_err("waiting for the exec process to exec")(e))
        }
    }
}

fn stage1(
    req: &ExecRequest<'_>,
    ch: &Channel,
    flags: i32,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
    root: &std::fs::File,
) -> Result<(), String> {
    // Nothing of the runtime's but what the process needs crosses over.
    let mut keep: Vec<RawFd> = vec![ch.as_raw_fd(), req.init.as_raw_fd(), root.as_raw_fd()];
    keep.extend(console.iter().map(|c| c.as_raw_fd()));
    keep.extend(3..3 + req.preserve_fds as RawFd);
    bulkhead_sys::close_fds_except(3, &keep).map_err(|e| format!("close fds: {e}"))?;
    match ch.recv().map_err(|e| e.to_string())? {
        Msg::Go => {}
        m => return Err(format!("internal: unexpected {m:?}")),
    }
    if flags != 0 {
        bulkhead_sys::setns(req.init.as_fd(), flags)
            .map_err(|e| format!("join the container's namespaces: {e}"))?;
    }
    rustix::process::fchdir(root).map_err(|e| format!("enter the container's root: {e}"))?;
    bulkhead_sys::chroot(std::path::Path::new("."))
        .map_err(|e| format!("enter the container's root: {e}"))?;
    rustix::process::chdir("/").map_err(|e| format!("enter the container's root: {e}"))?;
    match bulkhead_sys::fork(libc::CLONE_PARENT as u64) {
        Err(e) => Err(format!("fork exec process: {e}")),
        Ok(Forked::Parent(pid)) => ch.send(&Msg::InitPid(pid)).map_err(|e| e.to_string()),
        Ok(Forked::Child) => {
            if !matches!(ch.recv(), Ok(Msg::Go)) {
                bulkhead_sys::exit_now(1);
            }
            let res = setup(req, ch, console, seccomp);
            match res {
                Ok(exec) => {
                    bulkhead_sys::fault::point("exec.before-ready");
                    if ch.send(&Msg::Ready).is_err() {
                        bulkhead_sys::exit_now(1);
                    }
                    bulkhead_sys::fault::point("exec.after-ready");
                    exec.run()
                }
                Err(e) => {
                    let _ = ch.send(&Msg::Error(e.to_string()));
                    bulkhead_sys::exit_now(1)
                }
            }
        }
    }
}

/// The exec process's own stage list: terminal, then the init's security
/// and exec stages in the same order.
fn setup(
    req: &ExecRequest<'_>,
    ch: &Channel,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
) -> Result<stage::exec::Exec, StageError> {
    let process = req.process;
    if process.terminal {
        let socket = stage::console::require_socket(console)?;
        rustix::process::setsid().map_err(StageError::sys("setsid"))?;
        let root = pathrs::Root::open("/").map_err(StageError::sys("terminal: open root"))?;
        let (master, slave) = stage::console::open_pty(&root, process)?;
        stage::console::attach(master, slave, &socket)?;
    }
    stage::exec::enter_cwd(process)?;
    let early = !process.no_new_privileges;
    // The listener goes to the parent as soon as the filter is loaded.
    let mut hand_over = |fd: std::os::fd::OwnedFd| {
        ch.send_fd(&Msg::SeccompListener, fd.as_fd())
            .map_err(StageError::sys("linux.seccomp: send the listener"))
    };
    stage::security::apply(req.plan, process, seccomp.filter(|_| early), &mut hand_over)?;
    let exec = stage::exec::prepare(process, req.preserve_fds)?;
    if let Some(fd) = seccomp
        .filter(|_| !early)
        .map(stage::security::load_seccomp)
        .transpose()?
        .flatten()
    {
        hand_over(fd)?;
    }
    Ok(exec)
}
