//! `bulkhead attach NAME`: the terminal of a `sandbox -d -t`, held by its
//! monitor, which serves it on `attach.sock` in the sandbox directory
//! (0600, so only the sandbox's owner connects).
//!
//! The monitor copies the terminal's output to every attached client (and
//! always to the log), then the exit code once the init is reaped; clients
//! send input bytes or a new window size. Both directions are frames: a
//! kind byte, a big-endian u16 length, the payload. A client that does not keep up is dropped rather than stall
//! the container. The client detaches on ctrl-p ctrl-q (docker's keys) or
//! the `--detach-keys` given, and otherwise ends when the terminal does,
//! with the sandbox's exit code.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{LifecycleError, Status, Store};
use rustix::event::{PollFd, PollFlags};

/// The monitor's socket, in the sandbox directory.
pub const SOCKET: &str = "attach.sock";

const DATA: u8 = 0;
const RESIZE: u8 = 1;
const EXIT: u8 = 2;
/// `--detach-keys` when not given: ctrl-p ctrl-q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// `path` for bind/connect however long the sandbox directory's path is
/// (sun_path holds 108 bytes): through an O_PATH fd of the directory.
fn short_path(dir: &Path) -> Result<(OwnedFd, String)> {
    let d = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open {}", dir.display()))?;
    let p = format!("/proc/self/fd/{}/{SOCKET}", d.as_raw_fd());
    Ok((d, p))
}

/// The monitor's side: the listener and its clients.
pub struct Server {
    listener: UnixListener,
    clients: Vec<Client>,
}

struct Client {
    stream: UnixStream,
    /// Bytes of an incomplete frame.
    pending: Vec<u8>,
}

impl Server {
    /// Listens on the sandbox directory's socket (created 0600).
    pub fn listen(dir: &Path) -> Result<Server> {
        let (_d, path) = short_path(dir)?;
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
        let listener = UnixListener::bind(&path);
        rustix::process::umask(old);
        let listener = listener.with_context(|| format!("bind {}", dir.join(SOCKET).display()))?;
        listener.set_nonblocking(true)?;
        Ok(Server {
            listener,
            clients: Vec::new(),
        })
    }

    /// The fds to poll: the listener, then each client.
    pub fn poll_fds(&self) -> Vec<BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd())
            .chain(self.clients.iter().map(|c| c.stream.as_fd()))
            .collect()
    }

    /// Handles what poll reported for [`Server::poll_fds`] (same order):
    /// accepts clients and passes their input and sizes to `master`.
    pub fn service(&mut self, ready: &[PollFlags], master: BorrowedFd<'_>) {
        if ready.first().is_some_and(|r| r.contains(PollFlags::IN)) {
            while let Ok((stream, _)) = self.listener.accept() {
                if stream.set_nonblocking(true).is_ok() {
                    self.clients.push(Client {
                        stream,
                        pending: Vec::new(),
                    });
                }
            }
        }
        let mut keep = Vec::with_capacity(self.clients.len());
        let flags: Vec<PollFlags> = ready.iter().skip(1).copied().collect();
        for (i, mut c) in std::mem::take(&mut self.clients).into_iter().enumerate() {
            let r = flags.get(i).copied().unwrap_or(PollFlags::empty());
            if r.is_empty() || c.input(master) {
                keep.push(c);
            }
        }
        self.clients = keep;
    }

    /// Copies terminal output to every client; drops those that cannot
    /// take it now.
    pub fn broadcast(&mut self, data: &[u8]) {
        for chunk in data.chunks(u16::MAX as usize) {
            let f = frame(DATA, chunk);
            self.clients.retain_mut(|c| c.stream.write_all(&f).is_ok());
        }
    }

    /// Tells every client how the sandbox ended (the shell's number).
    pub fn finish(&mut self, code: i32) {
        let f = frame(EXIT, &code.to_be_bytes());
        for c in &mut self.clients {
            // Blocking for this last, small frame, but never for long.
            let _ = c.stream.set_nonblocking(false);
            let _ = c.stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = c.stream.write_all(&f);
        }
    }
}

impl Client {
    /// Reads what is there; false when the client is gone.
    fn input(&mut self, master: BorrowedFd<'_>) -> bool {
        let mut buf = [0u8; 4096];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        self.pending.extend_from_slice(&buf[..n]);
        while let Some((kind, body)) = next_frame(&mut self.pending) {
            match kind {
                DATA => {
                    // Input the container does not read now is dropped, not
                    // waited for.
                    let _ = rustix::io::write(master, &body);
                }
                RESIZE if body.len() == 4 => {
                    let ws = rustix::termios::Winsize {
                        ws_row: u16::from_be_bytes([body[0], body[1]]),
                        ws_col: u16::from_be_bytes([body[2], body[3]]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(master, ws);
                }
                _ => return false,
            }
        }
        true
    }
}

/// Takes one whole frame off the front of `pending`, if there is one.
fn next_frame(pending: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if pending.len() < 3 {
        return None;
    }
    let len = u16::from_be_bytes([pending[1], pending[2]]) as usize;
    if pending.len() < 3 + len {
        return None;
    }
    let kind = pending[0];
    let body = pending[3..3 + len].to_vec();
    pending.drain(..3 + len);
    Some((kind, body))
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(3 + body.len());
    f.push(kind);
    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Set by SIGWINCH while attached.
static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::Relaxed);
}

fn send_size(sock: &mut UnixStream) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(rustix::stdio::stdout()) {
        let mut b = ws.ws_row.to_be_bytes().to_vec();
        b.extend_from_slice(&ws.ws_col.to_be_bytes());
        let _ = sock.write_all(&frame(RESIZE, &b));
    }
}

/// `--detach-keys`, podman's and docker's syntax: comma-separated keys, each
/// a single character or `ctrl-` and one of a-z, `@`, `[`, `\`, `]`, `^`,
/// `_`; the bytes a terminal sends for them. Empty: never detach.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|key| {
            let byte = match key.strip_prefix("ctrl-") {
                Some(c) if c.len() == 1 => match c.as_bytes()[0].to_ascii_lowercase() {
                    l @ b'a'..=b'z' => Some(l - b'a' + 1),
                    b'@' => Some(0),
                    b'[' => Some(0x1b),
                    b'\\' => Some(0x1c),
                    b']' => Some(0x1d),
                    b'^' => Some(0x1e),
                    b'_' => Some(0x1f),
                    _ => None,
                },
                Some(_) => None,
                // One printable character stands for itself.
                None if key.len() == 1 && key.as_bytes()[0].is_ascii_graphic() => {
                    Some(key.as_bytes()[0])
                }
                None => None,
            };
            byte.with_context(|| {
                format!(
                    "--detach-keys {spec:?}: unknown key {key:?} (a character, or ctrl- and one of a-z @ [ \\ ] ^ _)"
                )
            })
        })
        .collect()
}

/// Finds the detach sequence `keys` in `input`, carrying a partial match
/// over to the next read in `held`: the bytes to send, and whether to
/// detach. Held bytes that turn out not to start the sequence are sent.
fn scan_detach(keys: &[u8], held: &mut Vec<u8>, input: &[u8]) -> (Vec<u8>, bool) {
    if keys.is_empty() {
        return (input.to_vec(), false);
    }
    let mut out = Vec::with_capacity(input.len() + held.len());
    for &b in input {
        held.push(b);
        // Keep the longest tail that may still become the sequence.
        let start = (0..held.len())
            .find(|&i| keys.starts_with(&held[i..]))
            .unwrap_or(held.len());
        out.extend(held.drain(..start));
        if held.as_slice() == keys {
            held.clear();
            return (out, true);
        }
    }
    (out, false)
}

/// `attach [--no-stdin] [--detach-keys KEYS] NAME`: returns the exit code
/// to leave with (the sandbox's once its terminal ends, 0 on detach).
pub fn attach(store: &Store, name: &str, no_stdin: bool, detach_keys: &str) -> Result<i32> {
    let keys = parse_detach_keys(detach_keys)?;
    let (rec, dir) = super::verbs::sandbox(store, name, "attach")?;
    if !rec
        .spec
        .process()
        .as_ref()
        .is_some_and(|p| p.terminal().unwrap_or(false))
    {
        bail!(
            "attach: sandbox {name:?} has no terminal (started without -t); `bulkhead logs -f {name}` shows its output"
        );
    }
    if store.status(&rec) == Status::Stopped {
        bail!("attach: sandbox {name:?} has stopped");
    }
    let (_d, path) = short_path(&dir)?;
    let mut sock = UnixStream::connect(&path).with_context(|| {
        format!(
            "attach: connect to {} (is its monitor running?)",
            dir.join(SOCKET).display()
        )
    })?;
    bulkhead_sys::set_signal_handler(libc::SIGWINCH, on_winch).context("handle SIGWINCH")?;
    send_size(&mut sock);
    let _raw = super::super::tty::RawMode::enter();
    let stdin = rustix::stdio::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut stdin_open = !no_stdin;
    let mut held = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut pending = Vec::new();
    let mut exit = None;
    loop {
        let mut fds = vec![PollFd::new(&sock, PollFlags::IN)];
        if stdin_open {
            fds.push(PollFd::new(&stdin, PollFlags::IN));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {
                if RESIZED.swap(false, Ordering::Relaxed) {
                    send_size(&mut sock);
                }
                continue;
            }
            Err(e) => return Err(e).context("poll"),
        }
        let s = fds[0].revents();
        let i = fds
            .get(1)
            .map(|f| f.revents())
            .unwrap_or(PollFlags::empty());
        if s.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
            let n = sock.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some((kind, body)) = next_frame(&mut pending) {
                match kind {
                    DATA => stdout.write_all(&body)?,
                    EXIT if body.len() == 4 => {
                        exit = Some(i32::from_be_bytes([body[0], body[1], body[2], body[3]]));
                    }
                    _ => {}
                }
            }
            stdout.flush()?;
        }
        if i.intersects(PollFlags::IN | PollFlags::HUP) {
            match rustix::io::read(stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let (send, detach) = scan_detach(&keys, &mut held, &buf[..n]);
                    if !send.is_empty() && sock.write_all(&frame(DATA, &send)).is_err() {
                        break;
                    }
                    if detach {
                        drop(_raw);
                        eprintln!("\r\nbulkhead attach: detached from {name}");
                        return Ok(0);
                    }
                }
            }
        }
    }
    drop(_raw);
    if let Some(code) = exit {
        return Ok(code);
    }
    // The monitor went without saying (killed): the recorded code, if any.
    for _ in 0..200 {
        // Asked first: once it has exited, the record is final.
        let monitor_left = !super::monitor::running(&dir);
        match store.load(name) {
            Ok(r) => {
                if let Some(e) = r.exit {
                    return Ok(e.code());
                }
            }
            Err(LifecycleError::NotExist(_)) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
        if monitor_left {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        let keys = parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap();
        assert_eq!(keys, [0x10, 0x11]);
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&keys, &mut held, b"ab"),
            (b"ab".to_vec(), false)
        );
        assert_eq!(
            scan_detach(&keys, &mut held, b"x\x10\x11y"),
            (b"x".to_vec(), true)
        );
        // Split across reads.
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&keys, &mut held, b"a\x10"),
            (b"a".to_vec(), false)
        );
        assert_eq!(scan_detach(&keys, &mut held, b"\x11"), (vec![], true));
        // ctrl-p then something else: both go through.
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&keys, &mut held, b"\x10z"),
            (b"\x10z".to_vec(), false)
        );
        // No keys: nothing detaches, everything goes through.
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&[], &mut held, b"\x10\x11"),
            (b"\x10\x11".to_vec(), false)
        );
    }

    #[test]
    fn longer_and_overlapping_detach_keys() {
        let keys = parse_detach_keys("ctrl-a,ctrl-a,d").unwrap();
        assert_eq!(keys, [1, 1, b'd']);
        // A third ctrl-a: the first one goes through, the last two may
        // still start the sequence.
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&keys, &mut held, b"\x01\x01\x01"),
            (b"\x01".to_vec(), false)
        );
        assert_eq!(scan_detach(&keys, &mut held, b"d"), (vec![], true));
        let mut held = Vec::new();
        assert_eq!(
            scan_detach(&keys, &mut held, b"\x01\x01x"),
            (b"\x01\x01x".to_vec(), false)
        );
        assert!(held.is_empty());
    }

    #[test]
    fn detach_key_syntax() {
        assert_eq!(parse_detach_keys("ctrl-a,d").unwrap(), [1, b'd']);
        assert_eq!(
            parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,ctrl-Z").unwrap(),
            [0, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x1a]
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        for bad in [
            "ctrl-1",
            "ctrl-",
            "ctrl-ab",
            "esc",
            "ctrl-p,",
            ",",
            " ",
            "ctrl-p,,ctrl-q",
        ] {
            let e = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(e.starts_with("--detach-keys"), "{bad:?}: {e}");
        }
        let e = parse_detach_keys("ctrl-p,ctrl-1").unwrap_err().to_string();
        assert!(e.contains("\"ctrl-1\""), "{e}");
    }

    #[test]
    fn frames() {
        assert_eq!(frame(DATA, b"hi"), vec![0, 0, 2, b'h', b'i']);
        let mut p = frame(DATA, b"hi");
        p.extend_from_slice(&frame(EXIT, &7i32.to_be_bytes())[..4]);
        assert_eq!(next_frame(&mut p), Some((DATA, b"hi".to_vec())));
        // Incomplete: stays pending.
        assert_eq!(next_frame(&mut p), None);
        p.extend_from_slice(&[0, 0, 7]);
        assert_eq!(
            next_frame(&mut p),
            Some((EXIT, 7i32.to_be_bytes().to_vec()))
        );
        assert!(p.is_empty());
    }
}
