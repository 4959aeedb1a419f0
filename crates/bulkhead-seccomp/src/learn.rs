//! Learning a profile: turn a container's seccomp profile into one that
//! notifies (SCMP_ACT_NOTIFY) every syscall it would let through, record
//! what is notified, and cut the profile down to that.
//!
//! One filter, not two: stacking the configured filter with a second
//! "notify everything" filter would give the same result (the kernel takes
//! the most severe action of all filters, and KILL, TRAP and ERRNO rank above
//! USER_NOTIF, which ranks above LOG and ALLOW), but turning the allow rules
//! of the one filter into notify rules costs one filter and keeps argument
//! conditions exact. What the profile refuses stays refused and is never
//! recorded; what it lets through is recorded and then continues.
//!
//! Used by `sandbox --learn` (a thread of the sandbox records) and by
//! `create/run --learn-seccomp` / the [`ANNOTATION`] (a recorder process,
//! [`serve`]).

use std::collections::BTreeSet;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use libseccomp::{ScmpArch, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use rustix::event::{PollFd, PollFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{Value, json};

/// Asks an OCI run to learn its profile: the absolute path of the file to
/// write when the container exits.
pub const ANNOTATION: &str = "io.bulkhead.seccomp.learn";

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
const LOG: &str = "SCMP_ACT_LOG";
const NOTIFY: &str = "SCMP_ACT_NOTIFY";

/// Why learning cannot start or finish; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(
        "{what}: the profile already uses a seccomp listener (listenerPath or SCMP_ACT_NOTIFY): learning needs its own"
    )]
    HasListener { what: String },
    #[error("{what}: {path}: {reason}")]
    Path {
        what: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LearnError {
    let what = what.into();
    move |source| LearnError::Io { what, source }
}

/// An action that lets the syscall run.
fn passes(action: &Value) -> bool {
    action == ALLOW || action == LOG
}

fn rule_names(r: &Value) -> impl Iterator<Item = &str> {
    r["names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Every syscall name any rule of `base` mentions.
fn named(base: &Value) -> BTreeSet<String> {
    base["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| rule_names(r).map(str::to_string))
        .collect()
}

/// Every syscall of the running architecture libseccomp knows.
fn native_syscalls() -> BTreeSet<String> {
    let arch = ScmpArch::native();
    (0..1024)
        .filter_map(|nr| ScmpSyscall::from(nr).get_name_by_arch(arch).ok())
        .collect()
}

/// The profile to run while learning: `base` (None: the container has no
/// profile) with every syscall it lets through notifying, except
/// [`RUNTIME`]'s. A default action that lets syscalls through cannot notify
/// (the kernel would notify the runtime's own last syscalls too), so the
/// syscalls it would cover get explicit notify rules instead.
pub fn learning_profile(
    base: Option<&Value>,
    sock: &Path,
    what: &str,
) -> Result<Value, LearnError> {
    let empty = json!({"defaultAction": ALLOW});
    let base = base.unwrap_or(&empty);
    let has_listener = base.get("listenerPath").is_some_and(|p| !p.is_null())
        || base["defaultAction"] == NOTIFY
        || base["syscalls"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["action"] == NOTIFY);
    if has_listener {
        return Err(LearnError::HasListener { what: what.into() });
    }
    let mut p = base.clone();
    let mut rules = Vec::new();
    for r in base["syscalls"].as_array().into_iter().flatten() {
        if !passes(&r["action"]) {
            rules.push(r.clone());
            continue;
        }
        let (keep, notify): (Vec<&str>, Vec<&str>) =
            rule_names(r).partition(|n| RUNTIME.contains(n));
        for (names, action) in [
            (keep, r["action"].as_str().unwrap_or(ALLOW)),
            (notify, NOTIFY),
        ] {
            if !names.is_empty() {
                let mut r = r.clone();
                r["names"] = json!(names);
                r["action"] = json!(action);
                rules.push(r);
            }
        }
    }
    if passes(&base["defaultAction"]) {
        let named = named(base);
        let rest: Vec<String> = native_syscalls()
            .into_iter()
            .filter(|n| !named.contains(n) && !RUNTIME.contains(&n.as_str()))
            .collect();
        rules.push(json!({"names": rest, "action": NOTIFY}));
    }
    p["syscalls"] = json!(rules);
    p["listenerPath"] = json!(sock);
    Ok(p)
}

/// How the learning run ended: `exit_code` is the workload's (128+N when
/// a signal N ended it), None when nobody could tell.
pub fn learned_profile(
    base: Option<&Value>,
    seen: &BTreeSet<String>,
    exit_code: Option<i32>,
) -> Value {
    let empty = json!({"defaultAction": ALLOW});
    let base = base.unwrap_or(&empty);
    let mut p = base.clone();
    let keep = |n: &str| seen.contains(n) || RUNTIME.contains(&n);
    let mut rules: Vec<Value> = base["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            if !passes(&r["action"]) {
                return Some(r.clone());
            }
            let names: Vec<&str> = rule_names(r).filter(|n| keep(n)).collect();
            (!names.is_empty()).then(|| {
                let mut r = r.clone();
                r["names"] = json!(names);
                r
            })
        })
        .collect();
    if passes(&base["defaultAction"]) {
        // What the default let through becomes explicit; the rest is refused.
        let named = named(base);
        let mut allow: BTreeSet<String> = seen
            .iter()
            .filter(|n| !named.contains(*n))
            .cloned()
            .collect();
        allow.extend(
            RUNTIME
                .iter()
                .filter(|n| !named.contains(**n))
                .map(|n| n.to_string()),
        );
        if !allow.is_empty() {
            rules.push(json!({"names": allow, "action": ALLOW}));
        }
        p["defaultAction"] = json!("SCMP_ACT_ERRNO");
        p["defaultErrnoRet"] = json!(libc::EPERM);
    }
    p["syscalls"] = json!(rules);
    if let Some(o) = p.as_object_mut() {
        o.remove("listenerPath");
        o.remove("listenerMetadata");
        // Not an OCI field (ignored by runtimes): how the profile came about.
        o.insert(
            "x-bulkhead-learned".into(),
            json!({"complete": exit_code == Some(0), "exitCode": exit_code, "syscalls": seen}),
        );
    }
    p
}

/// The root-owned directory an annotation may name files beneath (besides
/// the bundle directory). Only root creates it: `mkdir -m 0700`.
pub const LEARNED_DIR: &str = "/var/lib/bulkhead/learned";

/// The most of an existing file read to tell whether a learning run wrote
/// it (a learned profile is a few KiB).
const MAX_EXISTING: u64 = 4 << 20;

/// Where a learning run may write its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confine {
    /// `--learn-seccomp FILE` / `sandbox --learn FILE`: the runtime's own
    /// caller chose FILE; its directory is found as the caller spelled it.
    Caller,
    /// The annotation, written by whoever wrote the config (a pod author):
    /// a file directly in this bundle directory, or beneath [`LEARNED_DIR`]
    /// reached without any symlink.
    Bundle(PathBuf),
}

/// The directory of `out` (opened as `confine` allows) and its file name.
fn open_output_dir(
    out: &Path,
    confine: &Confine,
    what: &str,
) -> Result<(OwnedFd, std::ffi::OsString), LearnError> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let bad = |reason: String| LearnError::Path {
        what: what.into(),
        path: out.into(),
        reason,
    };
    if !out.is_absolute() {
        return Err(bad("is not an absolute path".into()));
    }
    // `..` would make a lexical check below say nothing about the file.
    if out
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad("has a `..` component".into()));
    }
    let (Some(name), Some(parent)) = (out.file_name(), out.parent()) else {
        return Err(bad("does not name a file".into()));
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let missing = |e: rustix::io::Errno| {
        bad(format!(
            "its directory does not exist or cannot be opened ({})",
            std::io::Error::from(e)
        ))
    };
    let dir = match confine {
        Confine::Caller => rustix::fs::open(parent, dir_flags, Mode::empty()).map_err(missing)?,
        Confine::Bundle(bundle) => {
            if parent == bundle.as_path() {
                rustix::fs::open(parent, dir_flags, Mode::empty()).map_err(missing)?
            } else if let Ok(rest) = parent.strip_prefix(LEARNED_DIR) {
                let root =
                    rustix::fs::open(LEARNED_DIR, dir_flags | OFlags::NOFOLLOW, Mode::empty())
                        .map_err(missing)?;
                if rest.as_os_str().is_empty() {
                    root
                } else {
                    rustix::fs::openat2(
                        &root,
                        rest,
                        dir_flags,
                        Mode::empty(),
                        ResolveFlags::BENEATH
                            | ResolveFlags::NO_SYMLINKS
                            | ResolveFlags::NO_MAGICLINKS
                            | ResolveFlags::NO_XDEV,
                    )
                    .map_err(|e| {
                        bad(format!(
                            "cannot be reached beneath {LEARNED_DIR} without symlinks ({})",
                            std::io::Error::from(e)
                        ))
                    })?
                }
            } else {
                return Err(bad(format!(
                    "must name a file directly in the bundle directory ({}) or beneath {LEARNED_DIR}",
                    bundle.display()
                )));
            }
        }
    };
    Ok((dir, name.to_os_string()))
}

/// Whether `name` in `dir` may be replaced: absent, or a regular file a
/// learning run wrote (a JSON object with "x-bulkhead-learned"). Never
/// followed: a symlink there is refused.
fn may_replace(dir: &OwnedFd, name: &std::ffi::OsStr) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags};
    let fd = match rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(rustix::io::Errno::LOOP) => return Err("is a symlink".into()),
        Err(e) => {
            return Err(format!(
                "exists and cannot be read ({})",
                std::io::Error::from(e)
            ));
        }
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| std::io::Error::from(e).to_string())?;
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    let not_ours = || "exists and was not written by a learning run: remove it first".to_string();
    if !regular || st.st_size as u64 > MAX_EXISTING {
        return Err(not_ours());
    }
    let mut text = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_EXISTING)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    match serde_json::from_slice::<Value>(&text) {
        Ok(v) if v.get("x-bulkhead-learned").is_some() => Ok(()),
        _ => Err(not_ours()),
    }
}

/// A new file next to the output, created (never opened through a
/// symlink or over an existing file) in `dir`.
fn create_temp(
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    kind: &str,
) -> std::io::Result<(OwnedFd, String)> {
    use rustix::fs::{Mode, OFlags};
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let tmp = format!(
        ".{}.{}.{}.{kind}",
        name.to_string_lossy(),
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let fd = rustix::fs::openat(
        dir,
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    Ok((fd, tmp))
}

/// Checks, before anything runs, that `out` may be written as `confine`
/// allows: its directory opens, the file is absent or a learned profile,
/// and a file can be created next to it. Returns `out` made absolute.
pub fn check_output(out: &Path, confine: &Confine, what: &str) -> Result<PathBuf, LearnError> {
    let out = std::path::absolute(out).map_err(io_err(what))?;
    let (dir, name) = open_output_dir(&out, confine, what)?;
    let bad = |reason: String| LearnError::Path {
        what: what.into(),
        path: out.clone(),
        reason,
    };
    may_replace(&dir, &name).map_err(bad)?;
    let (_, tmp) = create_temp(&dir, &name, "probe")
        .map_err(|e| bad(format!("cannot create a file in its directory ({e})")))?;
    let _ = rustix::fs::unlinkat(&dir, &tmp, rustix::fs::AtFlags::empty());
    Ok(out)
}

/// Writes `profile` to `out` by rename in its directory, opened as
/// `confine` allows (a reader never sees half of it; what is at `out` is
/// replaced only if a learning run wrote it, and never followed).
pub fn write_profile(out: &Path, confine: &Confine, profile: &Value) -> Result<(), LearnError> {
    let what = format!("write {}", out.display());
    let (dir, name) = open_output_dir(out, confine, &what)?;
    may_replace(&dir, &name).map_err(|reason| LearnError::Path {
        what: what.clone(),
        path: out.into(),
        reason,
    })?;
    let text = serde_json::to_string_pretty(profile).unwrap_or_default() + "\n";
    let (fd, tmp) = create_temp(&dir, &name, "tmp").map_err(io_err(what.as_str()))?;
    let written = std::io::Write::write_all(&mut std::fs::File::from(fd), text.as_bytes())
        .and_then(|()| rustix::fs::renameat(&dir, &tmp, &dir, &name).map_err(Into::into));
    written.map_err(|e| {
        let _ = rustix::fs::unlinkat(&dir, &tmp, rustix::fs::AtFlags::empty());
        io_err(what.as_str())(e)
    })
}

/// The output file of a learning run chosen by the runtime's caller.
pub fn output_path(p: &Path, what: &str) -> Result<PathBuf, LearnError> {
    check_output(p, &Confine::Caller, what)
}

/// One connection from the runtime: the process state JSON and the
/// listener fd (SCM_RIGHTS), as `linux.seccomp.listenerPath` receives them.
pub fn receive(stream: &UnixStream) -> std::io::Result<(Value, OwnedFd)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        stream.as_fd(),
        &mut [IoSliceMut::new(&mut buf)],
        &mut anc,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let state = serde_json::from_slice(&buf[..r.bytes]).unwrap_or(Value::Null);
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok((state, fd));
        }
    }
    Err(std::io::Error::other("no listener fd in the message"))
}

/// One notified syscall, already answered (continued).
pub struct Seen {
    pub name: Option<String>,
    /// The notifying thread, in our pid namespace.
    pub tid: u32,
    pub args: [u64; 6],
}

/// Receives one notification on `fd`, lets the syscall continue and says
/// what it was. None when the notification vanished (its process died).
pub fn answer_one(fd: &OwnedFd) -> Option<Seen> {
    let req = ScmpNotifReq::receive(fd.as_raw_fd()).ok()?;
    let name = req.data.syscall.get_name_by_arch(req.data.arch).ok();
    let resp = ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty());
    // The process may be gone (killed) by now: nothing to answer.
    let _ = resp.respond(fd.as_raw_fd());
    Some(Seen {
        name,
        tid: req.pid,
        args: req.data.args,
    })
}

/// The thread group (process) of thread `tid`.
fn tgid(tid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The exit status of zombie `pid` (field 52 of /proc/PID/stat), as a
/// shell would show it. None once reaped.
fn zombie_status(pid: u32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    if f.first() != Some(&"Z") {
        return None;
    }
    let status: i32 = f.get(49)?.parse().ok()?;
    Some(if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    })
}

/// The recorder of an OCI run: accepts the runtime's connections on
/// `listener` (the init's, then any exec process's), answers and records
/// their notifications, and writes the learned profile to `out` when the
/// init exits (again later if processes that outlived it add syscalls).
/// Returns once no process uses a recorded filter any more; or, before any
/// connection, when `control` reaches EOF (the create that started us is
/// over without a container).
pub fn serve(
    listener: &UnixListener,
    control: &mut impl ReadFd,
    base: Option<&Value>,
    out: &Path,
    confine: &Confine,
) -> Result<(), LearnError> {
    let mut seen = BTreeSet::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut init: Option<(u32, Option<OwnedFd>)> = None;
    let mut exit: Option<i32> = None;
    let mut control_open = true;
    let mut written: Option<usize> = None;
    loop {
        // Done once the init has exited (or cannot be watched) and no
        // process uses a recorded filter any more.
        if init.as_ref().is_some_and(|(_, p)| p.is_none()) && fds.is_empty() {
            if written != Some(seen.len()) {
                write_profile(out, confine, &learned_profile(base, &seen, exit))?;
            }
            return Ok(());
        }
        let mut pfds = vec![PollFd::new(listener, PollFlags::IN)];
        if control_open {
            pfds.push(PollFd::from_borrowed_fd(control.fd(), PollFlags::IN));
        }
        let has_pidfd = match init.as_ref().and_then(|(_, p)| p.as_ref()) {
            Some(p) => {
                pfds.push(PollFd::new(p, PollFlags::IN));
                true
            }
            None => false,
        };
        let first_fd = pfds.len();
        pfds.extend(fds.iter().map(|f| PollFd::new(f, PollFlags::IN)));
        match rustix::event::poll(&mut pfds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(io_err("poll")(e.into())),
        }
        let revents: Vec<PollFlags> = pfds.iter().map(|p| p.revents()).collect();
        drop(pfds);
        let mut i = 0;
        if revents[i].contains(PollFlags::IN)
            && let Ok((stream, _)) = listener.accept()
            && let Ok((state, fd)) = receive(&stream)
        {
            if init.is_none() {
                let pid = state["pid"].as_u64().unwrap_or(0) as u32;
                let pidfd = rustix::process::Pid::from_raw(pid as i32).and_then(|p| {
                    rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
                });
                init = Some((pid, pidfd));
            }
            fds.push(fd);
        }
        i += 1;
        if control_open {
            if !revents[i].is_empty() {
                let mut b = [0u8; 64];
                if matches!(control.read(&mut b), Ok(0) | Err(_)) {
                    control_open = false;
                    if init.is_none() {
                        return Ok(());
                    }
                }
            }
            i += 1;
        }
        if has_pidfd {
            if !revents[i].is_empty()
                && let Some((pid, p)) = init.as_mut()
            {
                *p = None;
                if exit.is_none() {
                    exit = zombie_status(*pid);
                }
                write_profile(out, confine, &learned_profile(base, &seen, exit))?;
                written = Some(seen.len());
            }
            i += 1;
        }
        debug_assert_eq!(i, first_fd);
        let mut gone = Vec::new();
        for (k, ev) in revents[first_fd..].iter().enumerate() {
            if ev.contains(PollFlags::IN) {
                if let Some(s) = answer_one(&fds[k]) {
                    let init_pid = init.as_ref().map(|(p, _)| *p);
                    if s.name.as_deref() == Some("exit_group")
                        && init_pid.is_some()
                        && (Some(s.tid) == init_pid || tgid(s.tid) == init_pid)
                    {
                        exit = Some((s.args[0] & 0xff) as i32);
                    }
                    if let Some(n) = s.name {
                        seen.insert(n);
                    }
                }
            } else if !ev.is_empty() {
                // POLLHUP: no process uses this filter any more.
                gone.push(k);
            }
        }
        for k in gone.into_iter().rev() {
            fds.remove(k);
        }
    }
}

/// The control pipe of [`serve`]: readable, pollable.
pub trait ReadFd: Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl ReadFd for std::io::Stdin {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
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
        let p = learning_profile(Some(&base()), Path::new("/d/learn.sock"), "x").unwrap();
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
        // The learning profile compiles.
        let oci: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
        assert!(crate::compile(&oci).unwrap().notify);
    }

    #[test]
    fn a_profile_with_a_listener_is_refused() {
        let mut b = base();
        b["listenerPath"] = json!("/run/agent.sock");
        let e = learning_profile(Some(&b), Path::new("/d/l.sock"), "--learn-seccomp").unwrap_err();
        assert!(e.to_string().contains("--learn-seccomp"), "{e}");
    }

    #[test]
    fn learned_profile_keeps_only_what_was_seen() {
        let seen: BTreeSet<String> = ["read", "getpid"].iter().map(|s| s.to_string()).collect();
        let p = learned_profile(Some(&base()), &seen, Some(0));
        assert_eq!(
            p["syscalls"],
            json!([
                {"names": ["read", "write", "getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ])
        );
        assert_eq!(p["x-bulkhead-learned"]["complete"], true);
        assert!(p.get("listenerPath").is_none());
        let p = learned_profile(Some(&base()), &seen, Some(2));
        assert_eq!(p["x-bulkhead-learned"]["complete"], false);
        let p = learned_profile(Some(&base()), &seen, None);
        assert_eq!(p["x-bulkhead-learned"]["complete"], false);
        assert!(p["x-bulkhead-learned"]["exitCode"].is_null());
        // The learned profile is a valid OCI seccomp object.
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
    }

    #[test]
    fn without_a_profile_everything_but_the_runtime_notifies_and_the_rest_is_refused_after() {
        let p = learning_profile(None, Path::new("/d/l.sock"), "x").unwrap();
        assert_eq!(p["defaultAction"], ALLOW);
        let notify = p["syscalls"][0]["names"].to_string();
        assert!(
            notify.contains("\"getpid\"") && notify.contains("\"exit_group\""),
            "{notify}"
        );
        assert!(!notify.contains("\"write\""), "{notify}");
        let oci: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
        crate::compile(&oci).unwrap();

        let seen: BTreeSet<String> = ["read", "execve"].iter().map(|s| s.to_string()).collect();
        let p = learned_profile(None, &seen, Some(0));
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        let allow = p["syscalls"][0]["names"].to_string();
        assert!(
            allow.contains("\"execve\"") && allow.contains("\"write\""),
            "{allow}"
        );
        assert!(!allow.contains("\"getpid\""), "{allow}");
        let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(p).unwrap();
    }

    #[test]
    fn a_deny_list_keeps_its_denials_and_refuses_what_was_not_seen() {
        let b = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO"}]});
        let p = learning_profile(Some(&b), Path::new("/d/l.sock"), "x").unwrap();
        assert_eq!(p["syscalls"][0], b["syscalls"][0]);
        assert!(!p["syscalls"][1]["names"].to_string().contains("keyctl"));
        let seen: BTreeSet<String> = ["getpid".to_string()].into();
        let p = learned_profile(Some(&b), &seen, Some(0));
        assert_eq!(p["syscalls"][0], b["syscalls"][0]);
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(p["syscalls"][1]["names"].to_string().contains("getpid"));
    }
}
