//! A small seccomp user-notification agent: the other end of
//! `linux.seccomp.listenerPath`.
//!
//! It listens on a unix socket; the runtime connects once per container
//! process and sends the container process state (JSON) with the seccomp
//! listener fd (SCM_RIGHTS). For every notified syscall the agent prints one
//! JSON line and answers: by default it lets the syscall continue; with
//! `--errno N` it fails it with errno N instead.
//!
//!     bulkhead-notify-agent /run/agent.sock [--errno 95]
#![forbid(unsafe_code)]

use std::io::IoSliceMut;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

fn usage() -> ! {
    eprintln!("usage: bulkhead-notify-agent SOCKET [--errno N]");
    std::process::exit(2)
}

/// One connection: the state JSON and the listener fd.
fn receive(stream: &std::os::unix::net::UnixStream) -> std::io::Result<(String, OwnedFd)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let state = String::from_utf8_lossy(&buf[..r.bytes]).into_owned();
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok((state, fd));
        }
    }
    Err(std::io::Error::other("no listener fd in the message"))
}

/// Answer notifications until the container process is gone.
fn serve(id: String, fd: OwnedFd, errno: Option<i32>) {
    loop {
        let req = match ScmpNotifReq::receive(fd.as_raw_fd()) {
            Ok(r) => r,
            // The filtered process exited: its listener reports an error.
            Err(_) => return,
        };
        let name = req
            .data
            .syscall
            .get_name_by_arch(req.data.arch)
            .unwrap_or_else(|_| "?".into());
        let line = serde_json::json!({
            "container": id, "pid": req.pid, "syscall": name, "args": req.data.args,
        });
        let _ = writeln!(std::io::stdout().lock(), "{line}");
        let resp = match errno {
            Some(e) => ScmpNotifResp::new_error(req.id, -e, ScmpNotifRespFlags::empty()),
            None => ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()),
        };
        if resp.respond(fd.as_raw_fd()).is_err() {
            return;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let socket = args.next().unwrap_or_else(|| usage());
    let mut errno = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--errno" => {
                errno = Some(
                    args.next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            _ => usage(),
        }
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap_or_else(|e| {
        eprintln!("bulkhead-notify-agent: bind {socket}: {e}");
        std::process::exit(1)
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        match receive(&stream) {
            Ok((state, fd)) => {
                let id = serde_json::from_str::<serde_json::Value>(&state)
                    .ok()
                    .and_then(|v| v["state"]["id"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                let _ = writeln!(std::io::stdout().lock(), "{state}");
                std::thread::spawn(move || serve(id, fd, errno));
            }
            Err(e) => eprintln!("bulkhead-notify-agent: {e}"),
        }
    }
}
