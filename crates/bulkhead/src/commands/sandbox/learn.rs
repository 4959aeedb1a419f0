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
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{Value, json};

/// Syscalls the runtime itself makes between loading the filter and
/// handing its listener over (notifying them would wait for a listener
/// nobody has yet), and `write`, which may never notify (the runtime
/// reports errors with it). They stay allowed while learning, and every
/// learned profile keeps them: the runtime needs them to start anything.
pub const RUNTIME: &[&str] = &[
    "write",
    "sendmsg",
    "sendto",
    "fcntl",
    "brk",
    "mmap",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    "rt_sigprocmask",
    "close",
];

const ALLOW: &str = "SCMP_ACT_ALLOW";

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
    cfg["linux"]["seccomp"] = learning_profile(&base, &sock);
    let listener =
        UnixListener::bind(&sock).with_context(|| format!("--learn: bind {}", sock.display()))?;
    Ok(Learner {
        base,
        seen: Arc::default(),
        listener: Mutex::new(Some(listener)),
    })
}

/// The base profile with each allow rule split: RUNTIME names stay
/// allowed, the rest notify.
pub fn learning_profile(base: &Value, sock: &Path) -> Value {
    let mut p = base.clone();
    let mut rules = Vec::new();
    for r in base["syscalls"].as_array().into_iter().flatten() {
        if r["action"] != ALLOW {
            rules.push(r.clone());
            continue;
        }
        let names: Vec<&str> = r["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let (keep, notify): (Vec<&str>, Vec<&str>) =
            names.into_iter().partition(|n| RUNTIME.contains(n));
        for (names, action) in [(keep, ALLOW), (notify, "SCMP_ACT_NOTIFY")] {
            if !names.is_empty() {
                let mut r = r.clone();
                r["names"] = json!(names);
                r["action"] = json!(action);
                rules.push(r);
            }
        }
    }
    p["syscalls"] = json!(rules);
    p["listenerPath"] = json!(sock);
    p
}

/// The base profile with its allow rules cut down to `seen` (+ RUNTIME).
pub fn learned_profile(base: &Value, seen: &BTreeSet<String>, exit_code: i32) -> Value {
    let mut p = base.clone();
    let keep = |n: &str| seen.contains(n) || RUNTIME.contains(&n);
    let rules: Vec<Value> = base["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            if r["action"] != ALLOW {
                return Some(r.clone());
            }
            let names: Vec<&str> = r["names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|n| keep(n))
                .collect();
            (!names.is_empty()).then(|| {
                let mut r = r.clone();
                r["names"] = json!(names);
                r
            })
        })
        .collect();
    p["syscalls"] = json!(rules);
    if let Some(o) = p.as_object_mut() {
        o.remove("listenerPath");
        o.remove("listenerMetadata");
        // Not an OCI field (ignored by runtimes): how the profile came about.
        o.insert(
            "x-bulkhead-learned".into(),
            json!({"complete": exit_code == 0, "exitCode": exit_code, "syscalls": seen}),
        );
    }
    p
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
                match receive_fd(&stream) {
                    Ok(fd) => {
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
        let p = learned_profile(&self.base, &seen, exit_code);
        let text = serde_json::to_string_pretty(&p)? + "\n";
        std::fs::write(out, text).with_context(|| format!("--learn: write {}", out.display()))?;
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

/// The listener fd from the runtime's message (state JSON + SCM_RIGHTS).
fn receive_fd(stream: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(std::io::Error::other("no listener fd in the message"))
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
        let Ok(req) = ScmpNotifReq::receive(fd.as_raw_fd()) else {
            continue;
        };
        if let Ok(name) = req.data.syscall.get_name_by_arch(req.data.arch)
            && let Ok(mut s) = seen.lock()
        {
            s.insert(name);
        }
        let resp = ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty());
        // The process may be gone (killed) by now: nothing to answer.
        let _ = resp.respond(fd.as_raw_fd());
    }
}

/// `--learn FILE` resolved before the sandbox changes anything.
pub fn output_path(p: &Path) -> Result<PathBuf> {
    let p = std::path::absolute(p).context("--learn")?;
    match p.parent() {
        Some(d) if d.is_dir() => Ok(p),
        _ => Err(anyhow!(
            "--learn {}: its directory does not exist",
            p.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "clone", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        })
    }

    #[test]
    fn learning_profile_notifies_what_was_allowed() {
        let p = learning_profile(&base(), Path::new("/d/learn.sock"));
        assert_eq!(p["listenerPath"], "/d/learn.sock");
        assert_eq!(
            p["syscalls"],
            json!([
                {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["read", "clone", "getpid"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["personality"], "action": "SCMP_ACT_NOTIFY",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ])
        );
    }

    #[test]
    fn learned_profile_keeps_only_what_was_seen() {
        let seen: BTreeSet<String> = ["read", "getpid"].iter().map(|s| s.to_string()).collect();
        let p = learned_profile(&base(), &seen, 0);
        assert_eq!(
            p["syscalls"],
            json!([
                {"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ])
        );
        assert_eq!(p["x-bulkhead-learned"]["complete"], true);
        assert!(p.get("listenerPath").is_none());
        let p = learned_profile(&base(), &seen, 2);
        assert_eq!(p["x-bulkhead-learned"]["complete"], false);
        // The learned profile is a valid OCI seccomp object.
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
    }
}
