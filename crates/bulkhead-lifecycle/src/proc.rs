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
    let path = format!("/proc/{pid}/stat");
    let s = bulkhead_sys::read_pseudo_file(std::path::Path::new(&path)).ok()?;
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

fn pid_ns(pid: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|m| m.ino())
}

/// The processes of a container that has no cgroup (rootless without
/// delegation): everything in the init's pid namespace when it has its own,
/// else the init and its descendants. Sorted host pids.
pub fn without_cgroup(init: i32) -> Vec<i32> {
    let all: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let theirs = pid_ns(&init.to_string());
    let mut out: Vec<i32> = if theirs.is_some() && theirs != pid_ns("self") {
        all.into_iter()
            .filter(|p| pid_ns(&p.to_string()) == theirs)
            .collect()
    } else {
        let ppid = |p: i32| -> Option<i32> {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            s[s.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
        };
        let parents: Vec<(i32, Option<i32>)> = all.iter().map(|&p| (p, ppid(p))).collect();
        let mut tree = vec![init];
        let mut i = 0;
        while i < tree.len() {
            let parent = tree[i];
            tree.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == Some(parent))
                    .map(|(p, _)| *p),
            );
            i += 1;
        }
        tree
    };
    out.sort_unstable();
    out.dedup();
    out
}
