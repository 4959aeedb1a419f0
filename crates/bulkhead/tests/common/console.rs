//! `--console-socket` receiver and pty helpers for terminal tests.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use tempfile::TempDir;

/// What one connection to the console socket delivered.
pub struct Received {
    pub fds: Vec<OwnedFd>,
    pub payload: Vec<u8>,
}

/// A listening unix socket; a thread accepts one connection and collects
/// every fd passed with SCM_RIGHTS until the peer closes it.
pub struct ConsoleSocket {
    _dir: TempDir,
    path: PathBuf,
    handle: Option<JoinHandle<io::Result<Received>>>,
}

impl ConsoleSocket {
    pub fn new() -> Self {
        let dir = super::open_tempdir();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind console socket");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let handle = std::thread::spawn(move || accept_and_receive(listener));
        ConsoleSocket {
            _dir: dir,
            path,
            handle: Some(handle),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the connection to finish and returns what was received.
    #[track_caller]
    pub fn received(mut self) -> Received {
        let handle = self.handle.take().expect("already received");
        handle
            .join()
            .expect("console socket thread panicked")
            .unwrap_or_else(|e| panic!("console socket: {e}"))
    }

    /// Exactly one fd must have been sent; returns it.
    #[track_caller]
    pub fn master(self) -> OwnedFd {
        let mut r = self.received();
        assert_eq!(
            r.fds.len(),
            1,
            "expected exactly one fd over the console socket, got {}",
            r.fds.len()
        );
        r.fds.pop().expect("one fd")
    }
}

impl Default for ConsoleSocket {
    fn default() -> Self {
        Self::new()
    }
}

fn accept_and_receive(listener: UnixListener) -> io::Result<Received> {
    let deadline = Instant::now() + super::cmd_timeout();
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nobody connected to the console socket",
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(super::cmd_timeout()))?;
    let mut fds = Vec::new();
    let mut payload = Vec::new();
    loop {
        let mut data = [0u8; 4096];
        // Room for several fds so that extra ones are seen, not truncated.
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(8))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut data)];
        let msg = rustix::net::recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
        let mut got_fds = false;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                for fd in it {
                    fds.push(fd);
                    got_fds = true;
                }
            }
        }
        payload.extend_from_slice(&data[..msg.bytes]);
        if msg.bytes == 0 && !got_fds {
            break;
        }
    }
    Ok(Received { fds, payload })
}

/// Reads from a pty master on a thread; collects output until a pattern
/// shows up or the slave side is gone.
pub struct PtyReader {
    rx: mpsc::Receiver<Vec<u8>>,
    pub buf: Vec<u8>,
    eof: bool,
}

impl PtyReader {
    pub fn new(master: &OwnedFd) -> Self {
        let mut f = File::from(master.try_clone().expect("dup master"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            loop {
                match f.read(&mut chunk) {
                    // EIO: every slave fd is closed.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(chunk[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        PtyReader {
            rx,
            buf: Vec::new(),
            eof: false,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Waits until the collected output contains `needle`; returns the text.
    #[track_caller]
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.text().contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !self.eof,
                "pty output never contained {needle:?}; got {:?}",
                self.text()
            );
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.buf.extend_from_slice(&chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
        self.text()
    }

    /// Collects output until the slave side is closed (or `timeout`).
    pub fn read_to_end(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.buf.extend_from_slice(&chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => self.eof = true,
            }
        }
        self.text()
    }
}

/// Writes `data` to the pty master.
pub fn pty_write(master: &OwnedFd, data: &str) {
    let mut f = File::from(master.try_clone().expect("dup master"));
    f.write_all(data.as_bytes()).expect("write to pty master");
}
