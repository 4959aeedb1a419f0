//! `sandbox --learn FILE`: record the syscalls a workload makes and write
//! the smallest seccomp profile that lets it run again.
//!
//! While learning, every rule of the sandbox's profile that allows a
//! syscall notifies instead (SCMP_ACT_NOTIFY, listener at
//! `<sandbox dir>/learn.sock`); a thread of this process records each one
//! and lets it continue. What the profile refuses stays refused, so the
//! learned profile is the base profile with its allow rules cut down to
//! the syscalls seen (argument conditions kept), plus [`RUNTIME`].

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use bulkhead_seccomp::learn;
use rustix::event::{PollFd, PollFlags};
use serde_json::Value;

pub struct Learner {
    base: Value,
    seen: Arc<Mutex<BTreeSet<String>>>,
    /// Until [`Learner::start`]: the runtime refuses to fork its container
    /// from a process with threads, so the recorder starts after `create`
    /// (the listener fd waits in the socket's backlog meanwhile, and the
    /// init's first notified syscall waits for the recorder).
    listener: Mutex<Option<UnixListener>>,
}

/// Turns `cfg`'s seccomp profile into the learning one and starts the
/// recorder on `<dir>/learn.sock`.
pub fn prepare(cfg: &mut Value, dir: &Path) -> Result<Learner> {
    let base = cfg["linux"]["seccomp"].clone();
    if !base.is_object() {
        return Err(anyhow!(
            "--learn: no seccomp profile to learn within (seccomp=unconfined or --profile privileged)"
        ));
    }
    // Without no_new_privs the runtime loads the filter before it drops
    // privileges, and those steps would wait on a recorder that does not
    // have the listener yet.
    if cfg["process"]["noNewPrivileges"] != true {
        return Err(anyhow!(
            "--learn: needs no-new-privileges (as in the restricted profile): without it the filter is loaded before the runtime's last setup steps"
        ));
    }
    let sock = dir.join("learn.sock");
    cfg["linux"]["seccomp"] = learn::learning_profile(Some(&base), &sock, "--learn")?;
    let listener =
        UnixListener::bind(&sock).with_context(|| format!("--learn: bind {}", sock.display()))?;
    Ok(Learner {
        base,
        seen: Arc::default(),
        listener: Mutex::new(Some(listener)),
    })
}

impl Learner {
    /// Starts the recorder thread (once; after the container is created).
    pub fn start(&self) {
        let Some(listener) = self.listener.lock().ok().and_then(|mut l| l.take()) else {
            return;
        };
        let seen = self.seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match learn::receive(&stream) {
                    Ok((_, fd)) => {
                        let seen = seen.clone();
                        std::thread::spawn(move || record(fd, &seen));
                    }
                    Err(e) => tracing::warn!("--learn: {e}"),
                }
            }
        });
    }

    /// Writes the profile learned so far to `out`; says so when the
    /// workload failed (the profile is then partial).
    pub fn finish(self, exit_code: i32, out: &Path) -> Result<()> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let p = learn::learned_profile(Some(&self.base), &seen, Some(exit_code));
        learn::write_profile(out, &learn::Confine::Caller, &p).context("--learn")?;
        if exit_code == 0 {
            eprintln!(
                "bulkhead sandbox: learned {} syscalls into {}",
                seen.len(),
                out.display()
            );
        } else {
            eprintln!(
                "bulkhead sandbox: the workload exited with {exit_code}: {} holds a PARTIAL profile ({} syscalls seen so far)",
                out.display(),
                seen.len()
            );
        }
        Ok(())
    }
}

/// Records and continues every notified syscall until no process uses
/// the filter any more (the listener then reports POLLHUP).
fn record(fd: OwnedFd, seen: &Mutex<BTreeSet<String>>) {
    loop {
        let mut pfd = [PollFd::new(&fd, PollFlags::IN)];
        if rustix::event::poll(&mut pfd, None).is_err() {
            return;
        }
        let ev = pfd[0].revents();
        if !ev.contains(PollFlags::IN) {
            return;
        }
        if let Some(name) = learn::answer_one(&fd).and_then(|s| s.name)
            && let Ok(mut s) = seen.lock()
        {
            s.insert(name);
        }
    }
}

/// `--learn FILE` resolved before the sandbox changes anything.
pub fn output_path(p: &Path) -> Result<PathBuf> {
    Ok(learn::output_path(p, "--learn")?)
}
