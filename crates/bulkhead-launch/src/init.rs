//! Stage 2: the container init. This file is the one place where the setup
//! order can be read top to bottom; each step lives in `stage/`.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::stage::{self, StageError};
use crate::sync::{Channel, Msg};
use crate::{LaunchRequest, hooks};

/// Runs in the forked init; never returns.
pub(crate) fn run(
    req: &LaunchRequest<'_>,
    ch: &Channel,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
    trees: &crate::idmap::IdmapTrees,
) -> ! {
    let exec = match setup(req, ch, console, seccomp, trees) {
        Ok(r) => r,
        Err(e) => {
            let _ = ch.send(&Msg::Error(e.to_string()));
            bulkhead_sys::exit_now(1);
        }
    };
    bulkhead_sys::fault::point("init.before-ready");
    if ch.send(&Msg::Ready).is_err() {
        bulkhead_sys::exit_now(1);
    }
    // Blocked here between `create` and `start`; `start` writes one byte.
    // The fifo fd is close-on-exec, so it is gone once the program runs.
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(req.exec_fifo, &mut byte) {
            Ok(1) => break,
            Err(rustix::io::Errno::INTR) => continue,
            _ => bulkhead_sys::exit_now(1),
        }
    }
    if let Err(e) = hooks::run_all(
        "startContainer",
        &req.plan.hooks.start_container,
        &req.hook_state.json("running", 1),
    ) {
        eprintln!("bulkhead: {e}");
        bulkhead_sys::exit_now(1);
    }
    exec.run()
}

/// The stage list, in execution order.
fn setup(
    req: &LaunchRequest<'_>,
    ch: &Channel,
    console: Option<UnixStream>,
    seccomp: Option<&bulkhead_seccomp::Compiled>,
    trees: &crate::idmap::IdmapTrees,
) -> Result<stage::exec::Exec, StageError> {
    let plan = req.plan;
    let process = req.process;
    match ch.recv().map_err(StageError::sys("sync"))? {
        Msg::Go => {}
        m => return Err(StageError::msg("sync", format!("unexpected {m:?}"))),
    }

    // A new session, so a terminal can become the controlling tty and the
    // container is detached from the caller's job control.
    rustix::process::setsid().map_err(StageError::sys("setsid"))?;

    // 1. namespaces: created or joined by stage 1; finish what they hold.
    stage::namespaces::set_names(plan)?;
    if req.new_keyring {
        stage::namespaces::session_keyring(req.id)?;
    }
    bulkhead_sys::fault::point("init.namespaces");

    // 2. root filesystem, before pivot_root: mounts, devices, the terminal.
    let root = stage::rootfs::prepare(plan, process, req.cgroups, trees, req.rootless)?;
    bulkhead_sys::fault::point("init.mounts");
    ch.send(&Msg::RunCreateRuntimeHooks)
        .map_err(StageError::sys("sync"))?;
    match ch.recv().map_err(StageError::sys("sync"))? {
        Msg::Go => {}
        m => return Err(StageError::msg("sync", format!("unexpected {m:?}"))),
    }
    hooks::run_all(
        "createContainer",
        &plan.hooks.create_container,
        &req.hook_state.json("created", 1),
    )
    .map_err(|e| StageError::msg("hooks", e.to_string()))?;
    if process.terminal {
        stage::console::setup(&root, process, console)?;
    }
    stage::rootfs::pivot(plan, root, req.no_pivot)?;
    stage::rootfs::finish(plan)?;
    stage::namespaces::sysctl(plan)?;
    bulkhead_sys::fault::point("init.pivot");

    // 3. cgroups: stage 0 placed this process before it existed (stage 1 was
    //    placed before it forked), so there is nothing left to do here.

    // 4. security: process attributes, then credentials and capabilities.
    //    Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, so it
    //    goes in before the capabilities are dropped; with it, as late as
    //    possible so the filter constrains the container, not our setup.
    stage::exec::enter_cwd(process)?;
    let early = !process.no_new_privileges;
    //    A notify listener goes to stage 0 (then to listenerPath) as soon as
    //    the filter is loaded: the steps after it may notify.
    let mut hand_over = |fd: OwnedFd| {
        ch.send_fd(&Msg::SeccompListener, fd.as_fd())
            .map_err(StageError::sys("linux.seccomp: send the listener"))
    };
    stage::security::apply(plan, process, seccomp.filter(|_| early), &mut hand_over)?;
    bulkhead_sys::fault::point("init.security");

    // 5. exec: resolve the program as the final user, and
    //    mark every fd but stdio and --preserve-fds close-on-exec.
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
