//! Fault injection for the crash-consistency tests (`tests/faults.rs`).
//!
//! Debug builds only: `BULKHEAD_FAULT=<point>[=kill|hang|exit|pause]` makes
//! the process that reaches the named [`point`] SIGKILL itself (`kill`, the
//! default), print `bulkhead: fault point <point> reached` to stderr and block
//! forever (`hang`: the test then kills whichever process it likes), `_exit`
//! with 137 without running any cleanup (`exit`: for points inside a
//! container init, where a signal to itself would be ignored as pid 1), or
//! sleep 2 s and go on (`pause`: widens a window so that a test sees what
//! another process does meanwhile). Release builds compile every point to
//! nothing.

/// Marks a step after which the host's state has changed (a directory, a
/// cgroup, a process, a mount). Costs one environment lookup in debug builds.
#[inline(always)]
pub fn point(name: &str) {
    #[cfg(debug_assertions)]
    imp::point(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

#[cfg(debug_assertions)]
mod imp {
    use std::io::Write;

    pub(super) fn point(name: &str) {
        let Some(spec) = std::env::var_os("BULKHEAD_FAULT") else {
            return;
        };
        let spec = spec.to_string_lossy();
        let (want, action) = spec.split_once('=').unwrap_or((&spec, "kill"));
        if want != name {
            return;
        }
        let _ = writeln!(std::io::stderr(), "bulkhead: fault point {name} reached");
        match action {
            "hang" => loop {
                let _ = rustix::thread::nanosleep(&rustix::thread::Timespec {
                    tv_sec: 3600,
                    tv_nsec: 0,
                });
            },
            "exit" => crate::exit_now(137),
            "pause" => {
                let _ = rustix::thread::nanosleep(&rustix::thread::Timespec {
                    tv_sec: 2,
                    tv_nsec: 0,
                });
            }
            _ => {
                let _ = crate::kill(std::process::id() as i32, libc::SIGKILL);
                crate::exit_now(137)
            }
        }
    }
}
