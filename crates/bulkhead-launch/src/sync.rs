//! The typed messages exchanged between the runtime (stage 0) and the
//! processes it forks (stage 1: namespace setup, stage 2: container init).
//!
//! One SOCK_SEQPACKET socketpair carries JSON messages; a packet is one
//! message, so no framing is needed and a dead peer reads as EOF.

use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    /// Parent → child: carry on (ids are mapped, cgroups joined, hooks ran).
    Go,
    /// Stage 1 → parent: the host pid of the container init.
    InitPid(i32),
    /// Init → parent: mounts are done; run prestart and createRuntime hooks.
    RunCreateRuntimeHooks,
    /// Init (or exec process) → parent: the seccomp notify listener fd is
    /// attached (SCM_RIGHTS), to be handed to `linux.seccomp.listenerPath`.
    SeccompListener,
    /// Init → parent: set up and blocked before exec.
    Ready,
    /// Either way: setup failed, with the reason.
    Error(String),
}

/// Longest error text sent over the socket (packets are read into 64 KiB).
const MAX_ERROR: usize = 4096;

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
        // An error text quoting a hostile config could exceed one packet:
        // keep the start, which names the field.
        if let Msg::Error(text) = msg
            && text.len() > MAX_ERROR
        {
            let mut cut = MAX_ERROR;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            return self.send(&Msg::Error(format!("{}…", &text[..cut])));
        }
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        rustix::net::send(self.fd.as_fd(), &bytes, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// Send a message with one fd attached. sendmsg, never write(2): a
    /// seccomp profile may notify on write, and the agent does not have the
    /// listener yet.
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> io::Result<()> {
        let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = SendAncillaryBuffer::new(&mut space);
        anc.push(SendAncillaryMessage::ScmRights(&fds));
        rustix::net::sendmsg(
            self.fd.as_fd(),
            &[IoSlice::new(&bytes)],
            &mut anc,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Receive one message; EOF (peer gone) is an error naming that.
    pub fn recv(&self) -> io::Result<Msg> {
        self.recv_with_fd().map(|(m, _)| m)
    }

    /// Receive one message and the fd attached to it, if any.
    pub fn recv_with_fd(&self) -> io::Result<(Msg, Option<OwnedFd>)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let mut space =
                [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut anc = RecvAncillaryBuffer::new(&mut space);
            match rustix::net::recvmsg(
                self.fd.as_fd(),
                &mut [IoSliceMut::new(&mut buf)],
                &mut anc,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(r) if r.bytes == 0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "setup process exited without reporting",
                    ));
                }
                Ok(r) => {
                    let mut fd = None;
                    for m in anc.drain() {
                        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
                            fd = fds.next();
                        }
                    }
                    let msg = serde_json::from_slice(&buf[..r.bytes]).map_err(io::Error::other)?;
                    return Ok((msg, fd));
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
