//! Foreground `run` of a process with a terminal and no `--console-socket`:
//! the runtime receives the pty master itself and relays it to its own stdio
//! (what `runc run` does for a config made by `spec`).

use std::io::IoSliceMut;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::termios::{OptionalActions, Termios};

/// A private console socket for one foreground run.
pub struct Console {
    listener: UnixListener,
    dir: PathBuf,
}

impl Console {
    pub fn listen(root: &Path, id: &str) -> Result<Console> {
        std::fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let dir = root.join(format!(".console-{id}-{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let listener = UnixListener::bind(dir.join("sock"))
            .with_context(|| format!("bind console socket in {}", dir.display()))?;
        Ok(Console { listener, dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The pty master the init sent during `create`.
    pub fn receive(&self) -> Result<OwnedFd> {
        let (stream, _) = self
            .listener
            .accept()
            .context("accept console connection")?;
        let mut buf = [0u8; 4096];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        rustix::net::recvmsg(
            stream.as_fd(),
            &mut [IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        )
        .context("receive pty master")?;
        for msg in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg
                && let Some(fd) = fds.next()
            {
                return Ok(fd);
            }
        }
        bail!("console socket: no pty master received")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Puts the caller's terminal in raw mode while relaying, and back after.
pub(crate) struct RawMode(Option<Termios>);

impl RawMode {
    pub(crate) fn enter() -> RawMode {
        let stdin = rustix::stdio::stdin();
        let Ok(saved) = rustix::termios::tcgetattr(stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(stdin, OptionalActions::Now, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, t);
        }
    }
}

fn copy_once(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match rustix::io::read(from, &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match rustix::io::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Relay stdin → master and master → stdout until the container's side of
/// the terminal is gone.
pub fn relay(master: &OwnedFd) -> Result<()> {
    if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdout()) {
        let _ = rustix::termios::tcsetwinsize(master, ws);
    }
    let _raw = RawMode::enter();
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut stdin_open = true;
    loop {
        let mut fds = vec![PollFd::new(master, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("poll terminal"),
        }
        let m = fds[0].revents();
        let s = fds
            .get(1)
            .map(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if m.intersects(PollFlags::IN) {
            if !copy_once(master.as_fd(), stdout) {
                break;
            }
        } else if m.intersects(PollFlags::HUP | PollFlags::ERR) {
            break;
        }
        if s.intersects(PollFlags::IN | PollFlags::HUP) && !copy_once(stdin, master.as_fd()) {
            stdin_open = false;
        }
    }
    Ok(())
}
