//! The typed messages exchanged between the runtime (stage 0) and the
//! processes it forks (stage 1: namespace setup, stage 2: container init).
//!
//! One SOCK_SEQPACKET socketpair carries JSON messages; a packet is one
//! message, so no framing is needed and a dead peer reads as EOF.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: carry on (ids are mapped, cgroups joined, hooks ran).
    Go,
    /// Stage 1 → parent: the host pid of the container init.
    InitPid(i32),
    /// Init → parent: mounts are done; run prestart and createRuntime hooks.
    RunCreateRuntimeHooks,
    /// Init → parent: set up and blocked before exec.
    Ready,
    /// Either way: setup failed, with the reason.
    Error(String),
}

#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> io::Result<(Channel, Channel)> {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl std::os::fd::AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Channel {
    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        rustix::net::send(self.fd.as_fd(), &bytes, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// Receive one message; EOF (peer gone) is an error naming that.
    pub fn recv(&self) -> io::Result<Msg> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rustix::net::recv(self.fd.as_fd(), &mut buf, RecvFlags::empty()) {
                Ok((0, _)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "setup process exited without reporting",
                    ));
                }
                Ok((n, _)) => {
                    return serde_json::from_slice(&buf[..n]).map_err(io::Error::other);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
