//! The syscall layer: the only crate in bulkhead allowed to contain `unsafe`.
//!
//! rustix covers most of what the runtime needs with safe wrappers; this crate
//! adds the calls it lacks (fork-like clone with `CLONE_PARENT`, `close_range`,
//! `setns`/`unshare` by raw flags, `mount(2)` with raw flag words, `execve`,
//! credential changes, `bpf(2)` for cgroup device programs) and keeps each
//! `unsafe` block small and justified.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod bpf;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod entry;
pub mod exe;
pub mod fault;
pub mod profile;
pub mod seccomp;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn path_cstring(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn str_cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Reads a whole procfs, sysfs or cgroupfs file. These report a size of 0:
/// `fs::read_to_string` would `statx` and `lseek` for a size hint, then
/// read in 32-byte steps; plain reads into a 4 KiB buffer take it in one or
/// two calls (open, read, read, close).
pub fn read_pseudo_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize(n * 2, 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Result of a fork-like call, seen from one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(i32),
}

/// `clone(2)` without a new stack, i.e. fork with extra flags.
///
/// Used with `CLONE_PARENT` so that the container init becomes a child of the
/// runtime's own parent side, and with namespace flags.
///
/// # Safety
/// The caller must be single-threaded: the child continues with a copy of the
/// address space in which only the calling thread exists.
pub unsafe fn clone_fork(flags: u64) -> io::Result<Forked> {
    // SAFETY: a raw clone with a NULL stack behaves like fork(2); the caller
    // guarantees there are no other threads whose locks could be held.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD as u64) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match cvt_long(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Set once this process (or the parent it was forked from, which copies the
/// flag) has been seen single-threaded.
static SEEN_SINGLE_THREADED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// [`clone_fork`] for callers outside this crate: refuses when the process
/// has other threads, which is the one condition that makes a fork-like
/// clone unsound here. Where /proc cannot answer (a child that has entered a
/// container's mount namespace, whose procfs does not show it), the answer
/// recorded before is used: a fork of a single-threaded process that starts
/// no thread stays single-threaded, and bulkhead never starts one.
pub fn fork(flags: u64) -> io::Result<Forked> {
    use std::sync::atomic::Ordering;
    let single = match threads() {
        Some(n) => n == 1,
        None => SEEN_SINGLE_THREADED.load(Ordering::SeqCst),
    };
    if !single {
        return Err(io::Error::other(
            "refusing to fork: the process has (or may have) more than one thread",
        ));
    }
    SEEN_SINGLE_THREADED.store(true, Ordering::SeqCst);
    // SAFETY: checked just above that this is the only thread.
    unsafe { clone_fork(flags) }
}

/// This process's thread count: procfs gives `/proc/self/task` a link count
/// of 2 plus the number of threads, so one `statx` answers (reading
/// `/proc/self/status` made the kernel format 60 lines for one number).
fn threads() -> Option<usize> {
    let st = rustix::fs::stat("/proc/self/task").ok()?;
    usize::try_from(st.st_nlink).ok()?.checked_sub(2)
}

/// `unshare(2)` with raw `CLONE_NEW*` flags.
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: unshare only changes this process's namespace membership; the
    // runtime calls it from a single-threaded child.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `setns(2)` into the namespace behind `fd`; `nstype` 0 accepts any type.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: the fd is borrowed and valid for the duration of the call.
    cvt(unsafe { libc::setns(fd.as_raw_fd(), nstype) }).map(drop)
}

/// `mount(2)` with raw `MS_*` flags, as the OCI mount options are parsed into.
pub fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let src = source.map(str_cstring).transpose()?;
    let tgt = path_cstring(target)?;
    let fst = fstype.map(str_cstring).transpose()?;
    let dat = data
        .filter(|d| !d.is_empty())
        .map(str_cstring)
        .transpose()?;
    // SAFETY: every pointer is either NULL or a NUL-terminated string that
    // outlives the call.
    let ret = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            fst.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags as libc::c_ulong,
            dat.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    };
    cvt(ret).map(drop)
}

/// `umount2(2)`.
pub fn umount2(target: &Path, flags: i32) -> io::Result<()> {
    let tgt = path_cstring(target)?;
    // SAFETY: tgt is a valid C string for the duration of the call.
    cvt(unsafe { libc::umount2(tgt.as_ptr(), flags) }).map(drop)
}

/// `MOUNT_ATTR_*` bits for [`mount_setattr`].
pub mod mount_attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const NODIRATIME: u64 = 0x80;
    pub const IDMAP: u64 = 0x10_0000;
    pub const NOSYMFOLLOW: u64 = 0x20_0000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` on the mount at `dirfd` (AT_EMPTY_PATH), optionally
/// recursive. `userns` is the user namespace for `MOUNT_ATTR_IDMAP`.
pub fn mount_setattr(
    dirfd: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: userns.map_or(0, |f| f.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: attr is a properly laid out struct mount_attr living across the
    // call; the path is an empty C string used with AT_EMPTY_PATH.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    cvt_long(ret).map(drop)
}

/// `open_tree(2)`: returns a new fd for the mount at `dirfd`/`path`.
pub fn open_tree(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: path is a valid C string; the kernel returns a new fd or -1.
    let ret =
        unsafe { libc::syscall(libc::SYS_open_tree, dirfd.as_raw_fd(), path.as_ptr(), flags) };
    let fd = cvt_long(ret)? as RawFd;
    // SAFETY: the kernel just handed us ownership of this new fd.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `move_mount(2)` of a detached tree (`from`, AT_EMPTY_PATH) onto `to`.
pub fn move_mount_to_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: both fds are valid; both paths are empty C strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    cvt_long(ret).map(drop)
}

/// Mark every fd >= `first` close-on-exec (`close_range(CLOSE_RANGE_CLOEXEC)`).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOEXEC only sets flags on this process's fds.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    cvt_long(ret).map(drop)
}

/// Mark every fd >= `first` close-on-exec one by one (fcntl), for when
/// close_range is not available or not allowed.
pub fn cloexec_each_from(first: RawFd) -> io::Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds.into_iter().filter(|fd| *fd >= first) {
        // SAFETY: fcntl on an fd number only changes its flags; a stale
        // number (the read_dir fd itself) gives EBADF, which is fine.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 {
            // SAFETY: as above.
            unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// Clear close-on-exec on one fd (for `--preserve-fds`).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a caller-provided fd number only changes its flags.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) }).map(drop)
}

/// `dup3(old, new, 0)`: place `old` at fd number `new` (for stdio setup).
pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    if old == new {
        return clear_cloexec(new);
    }
    // SAFETY: dup3 on fd numbers; it atomically replaces `new` if open.
    cvt(unsafe { libc::dup3(old, new, 0) }).map(drop)
}

/// `setgroups(2)` for this process (single-threaded at this point).
pub fn setgroups(gids: &[u32]) -> io::Result<()> {
    // SAFETY: the slice is valid for gids.len() elements of gid_t (u32).
    cvt(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) }).map(drop)
}

/// `setresgid(2)` with all three ids set to `gid`.
pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain credential syscall.
    cvt(unsafe { libc::setresgid(gid, gid, gid) }).map(drop)
}

/// `setresuid(2)` with all three ids set to `uid`.
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain credential syscall.
    cvt(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

/// `personality(2)`; `query` with 0xffffffff returns the current value.
pub fn personality(persona: u64) -> io::Result<i32> {
    // SAFETY: personality takes a plain integer.
    cvt(unsafe { libc::personality(persona as libc::c_ulong) })
}

/// `umask(2)`.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) as u32 }
}

/// `sethostname(2)` / `setdomainname(2)`.
pub fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    cvt(unsafe { libc::setdomainname(name.as_ptr() as *const libc::c_char, name.len()) }).map(drop)
}

/// `execve(2)`; only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    ev.push(std::ptr::null());
    profile::flush();
    // SAFETY: argv/envp are NULL-terminated arrays of pointers to C strings
    // that all outlive the call.
    unsafe { libc::execve(path.as_ptr(), av.as_ptr(), ev.as_ptr()) };
    io::Error::last_os_error()
}

/// `_exit(2)`: leave a forked child without running the parent's destructors
/// or flushing buffers it shares with the parent.
pub fn exit_now(code: i32) -> ! {
    profile::flush();
    // SAFETY: _exit never returns and touches no userspace state.
    unsafe { libc::_exit(code) }
}

/// Wait status of a child, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    /// Shell convention: 128 + signal for a signalled process.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// `waitpid(pid, 0)`, retrying on EINTR, until the child exits or is killed.
pub fn wait_exit(pid: i32) -> io::Result<ExitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if libc::WIFEXITED(status) {
            return Ok(ExitStatus::Exited(libc::WEXITSTATUS(status)));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(ExitStatus::Signaled(libc::WTERMSIG(status)));
        }
    }
}

/// Send `sig` to `pid` (plain kill(2); callers that fear pid reuse use pidfds).
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: the pidfd is valid; info is NULL (kernel fills in the default).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null_mut::<libc::siginfo_t>(),
            0,
        )
    };
    cvt_long(ret).map(drop)
}

/// Install `handler` for `sig` with SA_RESTART (used to forward signals in
/// foreground `run`). The handler must be async-signal-safe.
pub fn set_signal_handler(sig: i32, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid starting point; the handler is an
    // extern "C" fn with the expected signature.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        cvt(libc::sigaction(sig, &sa, std::ptr::null_mut())).map(drop)
    }
}

/// Reset every signal disposition to default and unblock all signals, so the
/// container process does not inherit the runtime's (or caller's) signal state.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_DFL is always valid for catchable signals.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set is valid to pass to sigprocmask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)`.
pub fn ioprio_set(class: u32, level: u32) -> io::Result<()> {
    let prio = (class << 13) | level;
    // SAFETY: plain integer syscall on the calling process.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, prio) };
    cvt_long(ret).map(drop)
}

/// `sched_setaffinity(0, cpus)`.
pub fn set_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET bounds-checks via the macro.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c >= libc::CPU_SETSIZE as usize {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            libc::CPU_SET(c, &mut set);
        }
        cvt(libc::sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        ))
        .map(drop)
    }
}

/// `sched_setscheduler(0, policy, prio)` (the runtime-spec subset without
/// sched_setattr's deadline fields).
pub fn set_scheduler(policy: i32, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: param is a valid struct for the call.
    cvt(unsafe { libc::sched_setscheduler(0, policy, &param) }).map(drop)
}

/// `pivot_root(new_root, put_old)` on paths.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let n = path_cstring(new_root)?;
    let o = path_cstring(put_old)?;
    // SAFETY: both are valid C strings.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    cvt_long(ret).map(drop)
}

/// `chroot(2)`.
pub fn chroot(path: &Path) -> io::Result<()> {
    let p = path_cstring(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::chroot(p.as_ptr()) }).map(drop)
}

/// `getcwd(3)` as raw bytes, so that "(unreachable)/..." prefixes are visible.
pub fn getcwd_bytes() -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf is writable for its length; the kernel NUL-terminates.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    let n = cvt_long(ret)? as usize;
    buf.truncate(n.saturating_sub(1));
    Ok(buf)
}

/// Whether the calling process has any thread besides itself; forks and
/// namespace changes below assume it does not.
pub fn is_single_threaded() -> bool {
    threads() == Some(1)
}

/// `setrlimit(2)` by raw resource number.
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit struct for the call.
    cvt(unsafe { libc::setrlimit(resource as libc::__rlimit_resource_t, &lim) }).map(drop)
}

/// `setpriority(PRIO_PROCESS, 0, nice)`.
pub fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain integer syscall on the calling process.
    cvt(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }).map(drop)
}

/// Capability operations by raw capability number (the OCI names map to
/// numbers in bulkhead-spec; rustix only offers a closed enum).
pub mod caps {
    use super::{cvt, io};

    /// The highest capability number the running kernel knows, found by
    /// asking the bounding set (EINVAL past the last one): a binary search
    /// of 6 prctl calls instead of reading /proc/sys/kernel/cap_last_cap,
    /// which needs a trusted procfs.
    pub fn last_cap() -> u32 {
        let known = |cap: u32| {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) >= 0 }
        };
        // Invariant: `lo` is known (CAP_CHOWN, 0, always is), `hi` is not.
        let (mut lo, mut hi) = (0u32, 64u32);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if known(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Drop `cap` from the bounding set (needs CAP_SETPCAP).
    pub fn bounding_drop(cap: u32) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        cvt(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }).map(drop)
    }

    /// Raise `cap` in the ambient set.
    pub fn ambient_raise(cap: u32) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        cvt(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        })
        .map(drop)
    }

    /// Clear the whole ambient set.
    pub fn ambient_clear() -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        cvt(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        })
        .map(drop)
    }

    /// Keep permitted capabilities across a change away from uid 0.
    pub fn set_keepcaps(keep: bool) -> io::Result<()> {
        // SAFETY: prctl with integer arguments only.
        cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, keep as libc::c_ulong, 0, 0, 0) }).map(drop)
    }

    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }

    /// Set effective, permitted and inheritable sets (64-bit masks).
    pub fn set(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
        const V3: u32 = 0x2008_0522;
        let mut hdr = Header {
            version: V3,
            pid: 0,
        };
        let lo = |v: u64| v as u32;
        let hi = |v: u64| (v >> 32) as u32;
        let data = [
            Data {
                effective: lo(effective),
                permitted: lo(permitted),
                inheritable: lo(inheritable),
            },
            Data {
                effective: hi(effective),
                permitted: hi(permitted),
                inheritable: hi(inheritable),
            },
        ];
        // SAFETY: header and a two-element data array as capset(2) v3 expects.
        let ret =
            unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) };
        super::cvt_long(ret).map(drop)
    }
}

/// Bring the loopback interface up in the current network namespace; a new
/// network namespace starts with `lo` down.
pub fn loopback_up() -> io::Result<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain data; the name is NUL-terminated within IFNAMSIZ.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        cvt(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}

/// Close every fd >= `first` except those in `keep`, so a forked child
/// holds nothing of the runtime's (locks, sockets, directories).
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> io::Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: closing an fd number we do not otherwise use; a stale
            // number (the read_dir fd itself) just gives EBADF.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// Close every fd >= `first` that lacks close-on-exec: those came with the
/// process across execve from whoever started it (every fd this program
/// opens itself is close-on-exec and owned by some value, so they are left
/// alone). For a daemon that must not keep its caller's pipes open.
pub fn close_inherited_fds(first: RawFd) -> io::Result<()> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    for fd in fds {
        if fd < first {
            continue;
        }
        // SAFETY: F_GETFD reads flags only; a closed number gives EBADF.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            // SAFETY: no value of this program owns an fd without
            // close-on-exec (see above), so nothing closes it again.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)`: a new, named session keyring.
pub fn join_session_keyring(name: &str) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    let n = str_cstring(name)?;
    // SAFETY: n is a valid C string for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, n.as_ptr()) };
    cvt_long(ret).map(drop)
}

/// A user namespace holding `uid_map` and `gid_map` (in `/proc/PID/uid_map`
/// syntax, e.g. `"0 100000 65536\n"`), kept only as an fd: for
/// `MOUNT_ATTR_IDMAP`. Safe to call from a multi-threaded process: the
/// child made for it runs no Rust code, only `pause(2)` until it is killed.
/// Writing the maps of a child needs CAP_SETUID/CAP_SETGID over it (root).
pub fn userns_fd(uid_map: &str, gid_map: &str) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: a raw clone with a NULL stack behaves like fork(2). The child
    // is a copy of this thread alone and must not touch locks other threads
    // may hold (allocator, stdio): it only loops on the pause and _exit
    // system calls, which take no locks.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    let pid = cvt_long(ret)? as i32;
    if pid == 0 {
        loop {
            // SAFETY: pause takes no arguments; the parent kills us.
            unsafe { libc::pause() };
        }
    }
    let res = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
        let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok(std::os::fd::OwnedFd::from(f))
    })();
    // Our own unreaped child: the pid cannot have been reused.
    let _ = kill(pid, libc::SIGKILL);
    let _ = wait_exit(pid);
    res
}

#[cfg(test)]
mod tests {
    /// The thread count from the link count of /proc/self/task agrees with
    /// /proc/self/status, also once a thread more runs (retried: the test
    /// harness may start or end threads between the two reads).
    #[test]
    fn thread_count_matches_status() {
        let status = || {
            std::fs::read_to_string("/proc/self/status")
                .expect("procfs")
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Threads:")
                        .map(|v| v.trim().parse().expect("count"))
                })
                .expect("Threads line")
        };
        let agree = || (0..50).any(|_| super::threads() == Some(status()));
        assert!(agree(), "threads() never agreed with /proc/self/status");
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv().ok());
        assert!(agree(), "with one thread more");
        drop(tx);
        t.join().expect("thread");
    }

    #[test]
    fn last_cap_matches_procfs() {
        let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").expect("procfs");
        let want: u32 = text.trim().parse().expect("a number");
        assert_eq!(super::caps::last_cap(), want);
    }
}
