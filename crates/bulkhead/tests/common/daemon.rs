//! Helpers for tests that run a private daemon (containerd, dockerd).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// SIGTERM a test's daemon, give it `grace` to exit, then SIGKILL it.
pub fn stop_daemon(daemon: &mut Child, grace: Duration) {
    if let Some(pid) = rustix::process::Pid::from_raw(daemon.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = daemon.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// Lazily unmounts whatever a daemon left mounted under `dir`, innermost
/// first; returns the mount points it found.
pub fn unmount_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut left: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.contains(&needle))
        .map(str::to_string)
        .collect();
    left.reverse();
    for m in &left {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    left
}
