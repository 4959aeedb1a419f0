//! The monitor of a detached sandbox (`sandbox -d`), like podman's conmon
//! but inside the bulkhead binary: a forked process that outlives the CLI,
//! is the parent of the container's init, reaps it and records how it
//! ended, copies its output into the size-capped log, and removes the
//! sandbox afterwards with `--rm`.
//!
//! Create and start happen *in* the monitor. The init is forked with
//! `CLONE_PARENT` and so becomes the child of whoever runs create; a
//! subreaper only inherits orphans of its descendants, and the CLI exits, so
//! the only process that can reap the init for sure is the one that created
//! it. The CLI waits on a pipe for the monitor's report (the same error text
//! and exit code as a foreground create, after the monitor has undone what
//! it made) and prints the name only once the sandbox runs.
//!
//! The monitor is a session leader of its own (no terminal signals), a child
//! subreaper, has `/` as its working directory and `/dev/null` as stdio, and
//! closes whatever fds its caller passed it: it keeps nothing of the host
//! open that could pin a mount or a caller's pipe, and the container gets
//! none of its fds (stage 1 closes every fd it does not hand on). It holds
//! an flock on `monitor.pid` in the sandbox directory for its whole life, so
//! the verbs can tell a live monitor from a dead one without trusting pids.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bulkhead_lifecycle::{CreateOptions, Exit, Store};
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, WaitOptions};
use serde::{Deserialize, Serialize};

use super::{Failure, LOG_FILE, attach};

/// The monitor's pid, in the sandbox directory; locked while it lives.
pub const MONITOR_FILE: &str = "monitor.pid";
/// `wait` holds a shared lock on it while it waits: with `--rm` the monitor
/// removes the sandbox only once the waiters have read the exit code.
pub const WAIT_LOCK: &str = "wait.lock";
/// The log's previous part, once it reached its size cap.
pub const ROTATED_LOG: &str = "sandbox.log.1";
/// `--log-max-size` default: docker's `local` driver and podman's k8s-file
/// users commonly cap at 10-20 MiB; with one rotated part a sandbox keeps
/// at most 20 MiB of output.
pub const DEFAULT_LOG_MAX: u64 = 10 << 20;

/// What the monitor does besides reaping.
#[derive(Debug, Clone, Copy)]
pub struct MonitorOptions {
    /// Remove the sandbox once the init has exited (`-d --rm`).
    pub rm: bool,
    /// The init has a terminal: the monitor holds the pty master.
    pub tty: bool,
    /// Rotate the log at this many bytes (None: never).
    pub log_max: Option<u64>,
}

/// The monitor's one message to the CLI.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    /// The init's pid once started; absent on failure.
    pid: Option<i32>,
    /// The CLI's exit code and message on failure.
    code: i32,
    error: Option<String>,
}

/// Starts the monitor, which creates and starts sandbox `name` and then
/// watches it; returns once the sandbox runs (or with the failure the
/// monitor reported, after it removed what it had made).
pub fn start(
    store: &Store,
    name: &str,
    dir: &Path,
    opts: &CreateOptions,
    before_start: &dyn Fn(i32) -> Result<()>,
    mopts: MonitorOptions,
) -> Result<(), Failure> {
    let log = Log::create(dir, mopts.log_max)?;
    let (report_r, report_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context("create the monitor's pipe")?;
    match bulkhead_sys::fork(0).context("fork the monitor")? {
        bulkhead_sys::Forked::Child => {
            drop(report_r);
            // Never unwind back into the CLI's code from here.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                monitor(store, name, dir, opts, before_start, mopts, log, report_w)
            }))
            .unwrap_or(101);
            bulkhead_sys::exit_now(code)
        }
        bulkhead_sys::Forked::Parent(child) => {
            drop(report_w);
            drop(log);
            let mut text = String::new();
            let read = File::from(report_r).read_to_string(&mut text);
            let report: Option<Report> = serde_json::from_str(&text).ok();
            match report {
                Some(Report { pid: Some(_), .. }) => Ok(()),
                Some(Report {
                    code,
                    error: Some(e),
                    ..
                }) => {
                    // It is exiting: reap it rather than leave a zombie.
                    let _ = bulkhead_sys::wait_exit(child);
                    Err(Failure {
                        code,
                        error: anyhow!(e),
                    })
                }
                _ => {
                    // Died before a report (killed): undo what it may have made.
                    let _ = bulkhead_sys::wait_exit(child);
                    let _ = crate::commands::delete(store, name, true);
                    Err(anyhow!(
                        "the sandbox monitor exited before the sandbox started{}",
                        read.err().map(|e| format!(" ({e})")).unwrap_or_default()
                    )
                    .into())
                }
            }
        }
    }
}

/// The monitor process; returns its exit code.
#[allow(clippy::too_many_arguments)]
fn monitor(
    store: &Store,
    name: &str,
    dir: &Path,
    opts: &CreateOptions,
    before_start: &dyn Fn(i32) -> Result<()>,
    mopts: MonitorOptions,
    mut log: Log,
    report_w: OwnedFd,
) -> i32 {
    let report = |r: &Report| {
        let text = serde_json::to_string(r).unwrap_or_default();
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            match rustix::io::write(&report_w, rest) {
                Ok(n) => rest = &rest[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
    };
    let (pid, source, mut server) = match setup(store, name, dir, opts, before_start, mopts) {
        Ok(v) => v,
        Err(f) => {
            report(&Report {
                pid: None,
                code: f.code,
                error: Some(crate::commands::error_text(&f.error)),
            });
            return 1;
        }
    };
    report(&Report {
        pid: Some(pid),
        code: 0,
        error: None,
    });
    drop(report_w);
    let status = watch(pid, &source, &mut log, server.as_mut());
    if let Some(mut s) = server.take() {
        let _ = std::fs::remove_file(dir.join(attach::SOCKET));
        if let Ok(st) = &status {
            s.finish(st.code());
        }
    }
    drop(source);
    match status {
        Ok(status) => {
            if let Err(e) = store.record_exit(name, pid, &Exit::now(status)) {
                log.note(&format!("cannot record the exit status: {e}"));
            }
        }
        Err(e) => log.note(&format!("lost track of the init: {e:#}")),
    }
    if mopts.rm {
        drop(log);
        let _readers_done = waiters_done(dir, Duration::from_secs(10));
        // The same removal as `rm -f`; a failure leaves it for `rm -f`.
        let res = crate::commands::delete(store, name, true).and_then(|()| super::remove_dir(dir));
        if let Err(e) = res {
            let mut log = Log::reopen(dir);
            log.note(&format!("--rm: {e:#}"));
            return 1;
        }
    }
    0
}

/// Everything up to a started sandbox: detach from the caller, take the
/// monitor lock, create and start with the container's output on a pipe
/// (or a terminal) of ours. A failure has been undone when this returns.
fn setup(
    store: &Store,
    name: &str,
    dir: &Path,
    opts: &CreateOptions,
    before_start: &dyn Fn(i32) -> Result<()>,
    mopts: MonitorOptions,
) -> Result<(i32, OwnedFd, Option<attach::Server>), Failure> {
    rustix::process::setsid().context("setsid")?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .context("become a child subreaper")?;
    std::env::set_current_dir("/").context("chdir /")?;
    bulkhead_sys::close_inherited_fds(3).context("close inherited fds")?;
    let lock = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join(MONITOR_FILE))
        .with_context(|| format!("create {}", dir.join(MONITOR_FILE).display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .context("lock the monitor file")?;
    (&lock)
        .write_all(std::process::id().to_string().as_bytes())
        .context("write the monitor file")?;
    // Held until the process is gone; the kernel drops the lock then.
    std::mem::forget(lock);
    File::create(dir.join(WAIT_LOCK)).context("create the wait lock")?;

    // The init inherits our fds 0-2: /dev/null in, our pipe out. Diagnostics
    // of create (warnings) land in the log, as they did before.
    let null = File::open("/dev/null").context("open /dev/null")?;
    let (out_r, out_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("create the log pipe")?;
    rustix::stdio::dup2_stdin(&null).context("stdin")?;
    rustix::stdio::dup2_stdout(&out_w).context("stdout")?;
    rustix::stdio::dup2_stderr(&out_w).context("stderr")?;
    drop(out_w);

    let console = if mopts.tty {
        Some(crate::commands::tty::Console::listen(&store.root, name)?)
    } else {
        None
    };
    let own = CreateOptions {
        console_socket: console.as_ref().map(|c| c.path()),
        ..opts.clone()
    };
    let started = (|| -> Result<(i32, Option<OwnedFd>), Failure> {
        let pid = store.create(name, &own)?;
        let undo = |e: anyhow::Error| {
            let _ = crate::commands::delete(store, name, true);
            Failure::from(e)
        };
        let master = console
            .as_ref()
            .map(|c| c.receive())
            .transpose()
            .map_err(undo)?;
        drop(console);
        before_start(pid).map_err(undo)?;
        store.start(name).map_err(|e| undo(e.into()))?;
        Ok((pid, master))
    })();
    // Our copies of the pipe's write end go: EOF comes once the container's
    // processes are gone.
    let _ = rustix::stdio::dup2_stdout(&null);
    let _ = rustix::stdio::dup2_stderr(&null);
    let (pid, master) = started?;
    let (source, server) = match master {
        Some(m) => {
            // Nobody sized it: a classic terminal.
            if rustix::termios::tcgetwinsize(&m).is_ok_and(|w| w.ws_row == 0) {
                let ws = rustix::termios::Winsize {
                    ws_row: 24,
                    ws_col: 80,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let _ = rustix::termios::tcsetwinsize(&m, ws);
            }
            // Input from clients is dropped, not waited for, when the
            // container does not read it.
            let flags = rustix::fs::fcntl_getfl(&m).context("master flags")?;
            rustix::fs::fcntl_setfl(&m, flags | rustix::fs::OFlags::NONBLOCK)
                .context("master flags")?;
            let server = attach::Server::listen(dir).map_err(|e| {
                let _ = crate::commands::delete(store, name, true);
                Failure::from(e)
            })?;
            (m, Some(server))
        }
        None => (out_r, None),
    };
    Ok((pid, source, server))
}

/// Copies `source` into the log until the init has exited and its output
/// has ended; reaps every child (a subreaper adopts orphans) and returns how
/// the init ended.
fn watch(
    pid: i32,
    source: &OwnedFd,
    log: &mut Log,
    mut server: Option<&mut attach::Server>,
) -> Result<bulkhead_sys::ExitStatus> {
    let p = Pid::from_raw(pid).ok_or_else(|| anyhow!("bad pid {pid}"))?;
    let pidfd = rustix::process::pidfd_open(p, PidfdFlags::empty()).context("pidfd_open")?;
    let mut status = None;
    let mut open = true;
    let mut buf = vec![0u8; 64 * 1024];
    // Once the init is gone, its output ends at once (its pid namespace
    // dies with it); a process that kept the pipe (none should) is not
    // waited for long.
    let mut deadline: Option<Instant> = None;
    loop {
        if status.is_none() {
            status = reap(pid)?;
            if status.is_some() {
                deadline = Some(Instant::now() + Duration::from_secs(5));
            }
        }
        if !open && status.is_some() {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let mut fds = Vec::with_capacity(4);
        if open {
            fds.push(PollFd::new(source, PollFlags::IN));
        }
        if status.is_none() {
            fds.push(PollFd::new(&pidfd, PollFlags::IN));
        }
        let first_client = fds.len();
        let client_fds = match (&server, open) {
            (Some(s), true) => s.poll_fds(),
            _ => Vec::new(),
        };
        fds.extend(client_fds.iter().map(|f| PollFd::new(f, PollFlags::IN)));
        let timeout = rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        let ready = open
            && fds[0]
                .revents()
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
        let client_ready: Vec<PollFlags> =
            fds[first_client..].iter().map(|f| f.revents()).collect();
        drop(fds);
        drop(client_fds);
        if ready {
            match rustix::io::read(source, &mut buf) {
                Ok(0) => open = false,
                Ok(n) => {
                    log.write(&buf[..n]);
                    if let Some(s) = server.as_deref_mut() {
                        s.broadcast(&buf[..n]);
                    }
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                // A pty master reads EIO once no slave is left.
                Err(_) => open = false,
            }
        }
        if let Some(s) = server.as_deref_mut()
            && !client_ready.is_empty()
        {
            s.service(&client_ready, source.as_fd());
        }
    }
    status.ok_or_else(|| anyhow!("the init was not reaped"))
}

/// Reaps every child that has exited; the init's status if it was one.
fn reap(init: i32) -> Result<Option<bulkhead_sys::ExitStatus>> {
    let mut found = None;
    loop {
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((p, st))) => {
                if p.as_raw_nonzero().get() == init {
                    found = match (st.exit_status(), st.terminating_signal()) {
                        (Some(c), _) => Some(bulkhead_sys::ExitStatus::Exited(c)),
                        (_, Some(s)) => Some(bulkhead_sys::ExitStatus::Signaled(s)),
                        _ => None,
                    };
                }
            }
            Ok(None) | Err(rustix::io::Errno::CHILD) => return Ok(found),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("wait"),
        }
    }
}

/// The sandbox's log: `sandbox.log`, renamed to `sandbox.log.1` (replacing
/// the previous part) when it reaches its cap. Write errors drop output
/// rather than stall the container.
pub struct Log {
    dir: PathBuf,
    file: Option<File>,
    size: u64,
    max: Option<u64>,
}

impl Log {
    /// A new, empty log (the name must not exist).
    fn create(dir: &Path, max: Option<u64>) -> Result<Log> {
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("create {}", path.display()))?;
        Ok(Log {
            dir: dir.to_path_buf(),
            file: Some(file),
            size: 0,
            max,
        })
    }

    /// The existing log, to append a note to.
    fn reopen(dir: &Path) -> Log {
        Log {
            dir: dir.to_path_buf(),
            file: OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(dir.join(LOG_FILE))
                .ok(),
            size: 0,
            max: None,
        }
    }

    /// Appends `data`, rotating at the cap; a part is cut after its last
    /// full line when there is one.
    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let mut n = data.len();
            if let Some(max) = self.max {
                if self.size >= max {
                    self.rotate();
                }
                let room = (max - self.size.min(max)) as usize;
                if n > room {
                    n = match data[..room].iter().rposition(|&b| b == b'\n') {
                        Some(i) => i + 1,
                        // No whole line fits: it starts the next part,
                        // unless this one is empty (then it is split).
                        None if self.size > 0 => 0,
                        None => room,
                    };
                    if n == 0 {
                        self.rotate();
                        continue;
                    }
                }
            }
            if let Some(f) = &mut self.file {
                let _ = f.write_all(&data[..n]);
            }
            self.size += n as u64;
            data = &data[n..];
        }
    }

    fn rotate(&mut self) {
        let path = self.dir.join(LOG_FILE);
        let _ = std::fs::rename(&path, self.dir.join(ROTATED_LOG));
        // Never through a symlink put where the log was.
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .ok();
        self.size = 0;
    }

    /// A line of the monitor's own in the log.
    fn note(&mut self, msg: &str) {
        let line = format!("bulkhead monitor: {msg}\n");
        if let Some(f) = &mut self.file {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Waits (up to `timeout`) until no `wait` holds the wait lock; the lock
/// is then held by the returned file, so a `wait` that comes later finds
/// the removal under way.
fn waiters_done(dir: &Path, timeout: Duration) -> Option<File> {
    let f = File::open(dir.join(WAIT_LOCK)).ok()?;
    let start = Instant::now();
    let op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    while rustix::fs::flock(&f, op).is_err() {
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(f)
}

/// A `wait` on the sandbox in `dir`: holds off a `--rm` removal (up to 10
/// s) until dropped. None when the removal is already under way.
pub fn waiting(dir: &Path) -> Option<File> {
    let f = File::open(dir.join(WAIT_LOCK)).ok()?;
    let op = rustix::fs::FlockOperation::NonBlockingLockShared;
    rustix::fs::flock(&f, op).ok()?;
    Some(f)
}

/// Whether sandbox directory `dir` has a live monitor (it holds the lock).
pub fn running(dir: &Path) -> bool {
    let Ok(f) = File::open(dir.join(MONITOR_FILE)) else {
        return false;
    };
    let op = rustix::fs::FlockOperation::NonBlockingLockShared;
    rustix::fs::flock(&f, op) == Err(rustix::io::Errno::WOULDBLOCK)
}

/// The pid the monitor of `dir` wrote, if it still runs.
pub fn pid(dir: &Path) -> Option<i32> {
    if !running(dir) {
        return None;
    }
    std::fs::read_to_string(dir.join(MONITOR_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Waits (up to `timeout`) for the monitor of `dir` to finish once its
/// container is gone, then SIGKILLs one that is stuck, so the directory can
/// be removed. Returns once the process has exited, not just dropped its
/// lock.
pub fn wait_gone(dir: &Path, timeout: Duration) -> Result<()> {
    let Some(pid) = std::fs::read_to_string(dir.join(MONITOR_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return Ok(());
    };
    let p = Pid::from_raw(pid).ok_or_else(|| anyhow!("bad monitor pid {pid}"))?;
    // The pidfd pins the process; it is ours if the lock is still held after.
    let Ok(fd) = rustix::process::pidfd_open(p, PidfdFlags::empty()) else {
        return Ok(());
    };
    let exited = |ms: i64| {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let t = rustix::time::Timespec {
            tv_sec: ms / 1000,
            tv_nsec: (ms % 1000) * 1_000_000,
        };
        matches!(rustix::event::poll(&mut fds, Some(&t)), Ok(n) if n > 0)
    };
    if !running(dir) {
        // The kernel drops the lock when it closes an exiting monitor's
        // files, after its memory is gone and before the process has
        // exited: a pid without a command line is the monitor on its way
        // out (a live process that reused the pid has one).
        if exiting(pid) {
            let _ = exited(1000);
        }
        return Ok(());
    }
    if exited(timeout.as_millis() as i64) {
        return Ok(());
    }
    tracing::warn!("the monitor ({pid}) did not exit; killing it");
    let _ = bulkhead_sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
    if !exited(5000) {
        bail!("the monitor ({pid}) of {} does not exit", dir.display());
    }
    Ok(())
}

/// Whether `pid` is a process whose memory is gone: one that is exiting
/// (or a zombie, or a kernel thread).
fn exiting(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max: Option<u64>) -> (tempfile::TempDir, Log) {
        let d = tempfile::tempdir().unwrap();
        let l = Log::create(d.path(), max).unwrap();
        (d, l)
    }

    fn read(d: &Path, f: &str) -> String {
        std::fs::read_to_string(d.join(f)).unwrap_or_default()
    }

    #[test]
    fn rotates_at_the_cap_on_line_boundaries() {
        let (d, mut l) = log(Some(10));
        l.write(b"aaaa\nbbbb\ncccc\n");
        // "aaaa\nbbbb\n" is exactly 10 bytes; the next line starts a new part.
        assert_eq!(read(d.path(), ROTATED_LOG), "aaaa\nbbbb\n");
        assert_eq!(read(d.path(), LOG_FILE), "cccc\n");
        l.write(b"dd\n");
        l.write(b"eeeeee\n");
        // "cccc\ndd\n" + "eeeeee\n" is over 10: the whole line moves on.
        assert_eq!(read(d.path(), ROTATED_LOG), "cccc\ndd\n");
        assert_eq!(read(d.path(), LOG_FILE), "eeeeee\n");
    }

    #[test]
    fn a_line_longer_than_the_cap_is_split() {
        let (d, mut l) = log(Some(4));
        l.write(b"0123456789");
        assert_eq!(read(d.path(), ROTATED_LOG), "4567");
        assert_eq!(read(d.path(), LOG_FILE), "89");
        for f in [LOG_FILE, ROTATED_LOG] {
            assert!(std::fs::metadata(d.path().join(f)).unwrap().len() <= 4);
        }
    }

    #[test]
    fn no_cap_never_rotates() {
        let (d, mut l) = log(None);
        l.write(&[b'x'; 100_000]);
        assert_eq!(read(d.path(), LOG_FILE).len(), 100_000);
        assert!(!d.path().join(ROTATED_LOG).exists());
    }

    /// `wait_gone` tells a monitor on its way out (no memory left, so no
    /// command line) from a live process that reused its pid.
    #[test]
    fn exiting_is_a_process_without_memory() {
        assert!(!exiting(std::process::id() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !exiting(pid) {
            assert!(std::time::Instant::now() < deadline, "true did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
}
