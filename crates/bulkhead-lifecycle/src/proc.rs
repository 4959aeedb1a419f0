//! Liveness and signalling of a container init that is not our child: by
//! pid plus start time, and through pidfds so a recycled pid is never hit.

use std::io;
use std::os::fd::AsFd;

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags};

/// Fields of /proc/<pid>/stat that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub start_time: u64,
}

pub fn stat(pid: i32) -> Option<ProcStat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // starttime is field 22 overall, i.e. the 20th after "state".
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|s| s.start_time)
}

/// Alive and still the same process; a zombie waiting for its reaper counts
/// as stopped.
pub fn alive(pid: i32, start: u64) -> bool {
    match stat(pid) {
        Some(s) => s.state != 'Z' && s.state != 'X' && (start == 0 || s.start_time == start),
        None => false,
    }
}

pub(crate) fn pidfd(pid: i32, start: u64) -> io::Result<std::os::fd::OwnedFd> {
    let p = Pid::from_raw(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    let fd = rustix::process::pidfd_open(p, PidfdFlags::empty())?;
    // Checked after opening: from here the fd pins this exact process.
    if !alive(pid, start) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(fd)
}

pub fn signal(pid: i32, start: u64, sig: i32) -> io::Result<()> {
    let fd = pidfd(pid, start)?;
    bulkhead_sys::pidfd_send_signal(fd.as_fd(), sig)
}

/// SIGKILL the init and wait for it to exit (the pidfd turns readable), with
/// no sleeping in between.
pub fn kill_and_wait(pid: i32, start: u64) -> io::Result<()> {
    let fd = match pidfd(pid, start) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    };
    match bulkhead_sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    loop {
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
