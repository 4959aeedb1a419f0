//! Seccomp user notification: the listener fd of a container process goes
//! to the agent at `linux.seccomp.listenerPath`, with the container process
//! state, as the runtime-spec describes (one message on a SOCK_STREAM unix
//! socket: the state JSON as data, the fd as SCM_RIGHTS).

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

use bulkhead_spec::plan::Plan;
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::{LaunchError, io_err};

/// Send `fd` (the listener of process `pid`) to the plan's listenerPath.
/// `state` is the container state JSON.
pub(crate) fn hand_over(
    plan: &Plan,
    state: &str,
    pid: i32,
    fd: OwnedFd,
) -> Result<(), LaunchError> {
    let Some(seccomp) = &plan.seccomp else {
        return Err(LaunchError::Protocol(
            "listener fd without a seccomp profile".into(),
        ));
    };
    let Some(path) = seccomp.listener_path() else {
        return Err(LaunchError::Setup(
            "linux.seccomp.listenerPath: required when a rule uses SCMP_ACT_NOTIFY".into(),
        ));
    };
    let state: serde_json::Value = serde_json::from_str(state).unwrap_or_default();
    let msg = serde_json::json!({
        "ociVersion": plan.oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": seccomp.listener_metadata().clone().unwrap_or_default(),
        "state": state,
    });
    let stream = UnixStream::connect(path).map_err(io_err(format!(
        "linux.seccomp.listenerPath {}",
        path.display()
    )))?;
    let bytes = msg.to_string().into_bytes();
    let fds = [fd.as_fd()];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        stream.as_fd(),
        &[IoSlice::new(&bytes)],
        &mut anc,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| io_err("send seccomp listener")(e.into()))?;
    Ok(())
}
