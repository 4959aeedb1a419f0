//! `bulkhead-probe`: a small helper that runs inside test containers and
//! reports what it sees as JSON on stdout.
//!
//! Subcommands:
//!
//! * `report` – one JSON object describing the process (ids, caps, namespaces,
//!   rlimits, fds, mounts, …).
//! * `write PATH [DATA]`, `read PATH`, `stat PATH`, `ls PATH`,
//!   `mknod PATH c|b MAJ MIN`, `exec-check PATH` – one JSON object with an
//!   `ok` flag, and `errno`/`error` on failure.
//! * `exit N`, `sleep SECONDS`, `signal-wait` – process control helpers.
//! * `syscall NAME [ARG…]` – issue one raw syscall from a fixed table with
//!   integer arguments (decimal, negative, or `0x` hex; missing ones are 0)
//!   and report `{"syscall", "ok", "ret", "errno"}`, to check what a seccomp
//!   profile lets through.
//! * `alloc MB [HOLD_SECONDS]` – allocate MB MiB of anonymous memory and
//!   touch every page (so it is really charged), print `{"ok":true,"mb":MB}`
//!   and keep it for HOLD_SECONDS (default 0).
//!
//! Everything is read through `/proc` or safe `rustix` wrappers; the only
//! `unsafe` is the signal handler installation for `signal-wait` and the raw
//! call of `syscall`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::process::ExitCode;

use rustix::fs::{Dir, FileType, Mode, OFlags};
use rustix::process::Resource;
use serde_json::{Map, Value, json};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match argv.as_slice() {
        ["report"] | [] => emit(&report()),
        ["write", path] => emit(&write_file(path, b"probe\n")),
        ["write", path, data] => emit(&write_file(path, data.as_bytes())),
        ["read", path] => emit(&read_file(path)),
        ["stat", path] => emit(&stat_path(path)),
        ["ls", path] => emit(&list_dir(path)),
        ["mknod", path, kind, major, minor] => emit(&make_node(path, kind, major, minor)),
        ["exec-check", path] => emit(&exec_check(path)),
        ["exit", code] => {
            let code: u8 = code.parse().unwrap_or(255);
            ExitCode::from(code)
        }
        ["sleep", secs] => {
            let secs: f64 = secs.parse().unwrap_or(3600.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            ExitCode::SUCCESS
        }
        ["signal-wait"] => signal_wait(),
        ["syscall", name, rest @ ..] => match raw_syscall(name, rest) {
            Some(v) => emit(&v),
            None => {
                eprintln!("syscall: unknown name {name:?} or bad argument (at most 6 integers)");
                ExitCode::from(2)
            }
        },
        ["alloc", mb] => alloc(mb, None),
        ["alloc", mb, hold] => alloc(mb, Some(hold)),
        _ => {
            eprintln!(
                "usage: bulkhead-probe report | write PATH [DATA] | read PATH | stat PATH | \
                 ls PATH | mknod PATH c|b MAJ MIN | exec-check PATH | exit N | sleep SECS | signal-wait | \
                 syscall NAME [ARG...] | alloc MB [HOLD_SECS]"
            );
            ExitCode::from(2)
        }
    }
}

/// Allocate and touch `mb` MiB, page by page, then hold it.
fn alloc(mb: &str, hold: Option<&&str>) -> ExitCode {
    let Ok(mb) = mb.parse::<usize>() else {
        return emit(&json!({"ok": false, "errno": 22, "error": "MB must be a number"}));
    };
    let hold: f64 = hold.and_then(|h| h.parse().ok()).unwrap_or(0.0);
    let len = mb << 20;
    let mut mem: Vec<u8> = Vec::new();
    if mem.try_reserve_exact(len).is_err() {
        return emit(&json!({"ok": false, "errno": 12, "error": "cannot reserve memory"}));
    }
    mem.resize(len, 0);
    for i in (0..len).step_by(4096) {
        mem[i] = 1;
    }
    // Keep the pages live and observable.
    let touched = mem.iter().step_by(4096).filter(|&&b| b == 1).count();
    let code = emit(&json!({"ok": true, "mb": mb, "pages": touched}));
    std::thread::sleep(std::time::Duration::from_secs_f64(hold));
    drop(mem);
    code
}

fn emit(v: &Value) -> ExitCode {
    let mut out = io::stdout().lock();
    let text = serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}

fn io_err(e: &io::Error) -> Value {
    json!({
        "ok": false,
        "errno": e.raw_os_error().unwrap_or(0),
        "error": e.to_string(),
    })
}

fn errno_err(e: rustix::io::Errno) -> Value {
    io_err(&io::Error::from(e))
}

// ---------------------------------------------------------------- report --

fn report() -> Value {
    // The fd list comes first so nothing else we open can show up in it.
    let fds = open_fds();
    let status = proc_status();
    let ids = |key: &str| -> Vec<u64> {
        status
            .get(key)
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let uids = ids("Uid");
    let gids = ids("Gid");
    let groups = ids("Groups");
    let umask = status
        .get("Umask")
        .and_then(|s| u32::from_str_radix(s.trim(), 8).ok());

    let uname = rustix::system::uname();
    let lossy = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();

    let mut status_fields = Map::new();
    for key in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ] {
        status_fields.insert(
            key.to_string(),
            status
                .get(key)
                .map_or(Value::Null, |v| Value::from(v.trim())),
        );
    }

    let mut ns = Map::new();
    for name in [
        "cgroup",
        "ipc",
        "mnt",
        "net",
        "pid",
        "pid_for_children",
        "time",
        "time_for_children",
        "user",
        "uts",
    ] {
        let ino = fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|m| Value::from(m.ino()))
            .unwrap_or(Value::Null);
        ns.insert(name.to_string(), ino);
    }

    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();

    let ttyname = |fd: RawFd| -> Value {
        let borrowed = match fd {
            0 => rustix::stdio::stdin(),
            1 => rustix::stdio::stdout(),
            _ => rustix::stdio::stderr(),
        };
        if !rustix::termios::isatty(borrowed) {
            return Value::Null;
        }
        match rustix::termios::ttyname(borrowed, Vec::new()) {
            Ok(name) => Value::from(name.to_string_lossy().into_owned()),
            Err(_) => fs::read_link(format!("/proc/self/fd/{fd}"))
                .map(|p| Value::from(p.to_string_lossy().into_owned()))
                .unwrap_or(Value::Null),
        }
    };

    let cpus: Vec<usize> = match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&i| set.is_set(i))
            .collect(),
        Err(_) => Vec::new(),
    };

    let personality = read_trim("/proc/self/personality")
        .and_then(|s| u64::from_str_radix(&s, 16).ok())
        .map_or(Value::Null, Value::from);

    json!({
        "pid": rustix::process::getpid().as_raw_nonzero().get(),
        "ppid": rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()),
        "uid": uids.first(),
        "euid": uids.get(1),
        "suid": uids.get(2),
        "fsuid": uids.get(3),
        "gid": gids.first(),
        "egid": gids.get(1),
        "sgid": gids.get(2),
        "fsgid": gids.get(3),
        "groups": groups,
        "umask": umask,
        "cwd": std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).ok(),
        "env": env,
        "hostname": lossy(uname.nodename()),
        "domainname": lossy(uname.domainname()),
        "status": status_fields,
        "ns": ns,
        "uid_map": read_string("/proc/self/uid_map"),
        "gid_map": read_string("/proc/self/gid_map"),
        "setgroups": read_trim("/proc/self/setgroups"),
        "rlimits": rlimits(),
        "oom_score_adj": read_trim("/proc/self/oom_score_adj").and_then(|s| s.parse::<i64>().ok()),
        "personality": personality,
        "no_new_privs": status.get("NoNewPrivs").map(|s| s.trim() == "1"),
        "fds": fds,
        "ttyname": {
            "stdin": ttyname(0),
            "stdout": ttyname(1),
            "stderr": ttyname(2),
        },
        "mountinfo": read_lines("/proc/self/mountinfo"),
        "cgroup": read_lines("/proc/self/cgroup"),
        "cpus": cpus,
    })
}

fn read_string(path: &str) -> Option<String> {
    fs::read_to_string(path).ok()
}

fn read_trim(path: &str) -> Option<String> {
    read_string(path).map(|s| s.trim().to_string())
}

fn read_lines(path: &str) -> Vec<String> {
    read_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

fn proc_status() -> BTreeMap<String, String> {
    read_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Lists the open fds, leaving out the one used to read `/proc/self/fd`.
fn open_fds() -> Value {
    let dirfd = match rustix::fs::open(
        "/proc/self/fd",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return errno_err(e),
    };
    let own = dirfd.as_raw_fd();
    let dir = match Dir::new(dirfd) {
        Ok(d) => d,
        Err(e) => return errno_err(e),
    };
    let mut fds: Vec<(RawFd, String)> = Vec::new();
    for entry in dir {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(fd) = name.parse::<RawFd>() else {
            continue;
        };
        if fd == own {
            continue;
        }
        let target = fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        fds.push((fd, target));
    }
    fds.sort();
    Value::Array(
        fds.into_iter()
            .map(|(fd, target)| json!({"fd": fd, "target": target}))
            .collect(),
    )
}

fn rlimits() -> Value {
    let all = [
        ("RLIMIT_CPU", Resource::Cpu),
        ("RLIMIT_FSIZE", Resource::Fsize),
        ("RLIMIT_DATA", Resource::Data),
        ("RLIMIT_STACK", Resource::Stack),
        ("RLIMIT_CORE", Resource::Core),
        ("RLIMIT_RSS", Resource::Rss),
        ("RLIMIT_NPROC", Resource::Nproc),
        ("RLIMIT_NOFILE", Resource::Nofile),
        ("RLIMIT_MEMLOCK", Resource::Memlock),
        ("RLIMIT_AS", Resource::As),
        ("RLIMIT_LOCKS", Resource::Locks),
        ("RLIMIT_SIGPENDING", Resource::Sigpending),
        ("RLIMIT_MSGQUEUE", Resource::Msgqueue),
        ("RLIMIT_NICE", Resource::Nice),
        ("RLIMIT_RTPRIO", Resource::Rtprio),
        ("RLIMIT_RTTIME", Resource::Rttime),
    ];
    let mut map = Map::new();
    for (name, res) in all {
        let lim = rustix::process::getrlimit(res);
        // `None` means RLIM_INFINITY.
        let soft = lim.current.unwrap_or(u64::MAX);
        let hard = lim.maximum.unwrap_or(u64::MAX);
        map.insert(name.to_string(), json!({"soft": soft, "hard": hard}));
    }
    Value::Object(map)
}

// ------------------------------------------------------ file operations --

fn write_file(path: &str, data: &[u8]) -> Value {
    let res = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data));
    match res {
        Ok(()) => json!({"ok": true}),
        Err(e) => io_err(&e),
    }
}

fn read_file(path: &str) -> Value {
    match fs::read(path) {
        Ok(data) => json!({
            "ok": true,
            "len": data.len(),
            "data": String::from_utf8_lossy(&data),
        }),
        Err(e) => io_err(&e),
    }
}

fn stat_path(path: &str) -> Value {
    let st = match rustix::fs::lstat(path) {
        Ok(st) => st,
        Err(e) => return errno_err(e),
    };
    let ft = FileType::from_raw_mode(st.st_mode);
    let kind = match ft {
        FileType::RegularFile => "file",
        FileType::Directory => "dir",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "char",
        FileType::BlockDevice => "block",
        FileType::Unknown => "unknown",
    };
    let target = if ft == FileType::Symlink {
        fs::read_link(path)
            .map(|p| Value::from(p.to_string_lossy().into_owned()))
            .unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    // Cross-check the file type with std so a broken mapping is noticed.
    let std_is_char = fs::symlink_metadata(path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false);
    json!({
        "ok": true,
        "type": kind,
        "mode": st.st_mode & 0o7777,
        "major": rustix::fs::major(st.st_rdev),
        "minor": rustix::fs::minor(st.st_rdev),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size,
        "ino": st.st_ino,
        "target": target,
        "is_char": std_is_char,
    })
}

fn list_dir(path: &str) -> Value {
    match fs::read_dir(path) {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            json!({"ok": true, "entries": names})
        }
        Err(e) => io_err(&e),
    }
}

fn make_node(path: &str, kind: &str, major: &str, minor: &str) -> Value {
    let ft = match kind {
        "c" | "u" => FileType::CharacterDevice,
        "b" => FileType::BlockDevice,
        "p" => FileType::Fifo,
        _ => return json!({"ok": false, "errno": 22, "error": "type must be c, b or p"}),
    };
    let (Ok(maj), Ok(min)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return json!({"ok": false, "errno": 22, "error": "bad major/minor"});
    };
    match rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        ft,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(maj, min),
    ) {
        Ok(()) => json!({"ok": true}),
        Err(e) => errno_err(e),
    }
}

fn exec_check(path: &str) -> Value {
    match rustix::fs::access(path, rustix::fs::Access::EXEC_OK) {
        Ok(()) => json!({"ok": true}),
        Err(e) => errno_err(e),
    }
}

// -------------------------------------------------------------- syscall --

/// The syscalls `syscall NAME` knows: the ones a seccomp profile is tested
/// on. Nothing here can hand the probe a second thread of execution or
/// replace it (no fork/vfork/execve; the tests give clone only flag
/// combinations the kernel refuses).
const SYSCALLS: &[(&str, libc::c_long)] = &[
    ("getpid", libc::SYS_getpid),
    ("uname", libc::SYS_uname),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("clone", libc::SYS_clone),
    ("clone3", libc::SYS_clone3),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("bpf", libc::SYS_bpf),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("personality", libc::SYS_personality),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("kcmp", libc::SYS_kcmp),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kexec_load", libc::SYS_kexec_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("acct", libc::SYS_acct),
    ("syslog", libc::SYS_syslog),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("adjtimex", libc::SYS_adjtimex),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("quotactl", libc::SYS_quotactl),
    ("lookup_dcookie", libc::SYS_lookup_dcookie),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("vmsplice", libc::SYS_vmsplice),
    ("socket", libc::SYS_socket),
    ("ioctl", libc::SYS_ioctl),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("modify_ldt", libc::SYS_modify_ldt),
];

fn parse_arg(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x") {
        u64::from_str_radix(hex, 16).ok()
    } else if s.starts_with('-') {
        s.parse::<i64>().ok().map(|v| v as u64)
    } else {
        s.parse().ok()
    }
}

fn raw_syscall(name: &str, args: &[&str]) -> Option<Value> {
    let &(_, nr) = SYSCALLS.iter().find(|(n, _)| *n == name)?;
    if args.len() > 6 {
        return None;
    }
    let mut a = [0u64; 6];
    for (slot, s) in a.iter_mut().zip(args) {
        *slot = parse_arg(s)?;
    }
    // SAFETY: a raw syscall with integer arguments taken from our own
    // command line. The kernel validates every user pointer (EFAULT); the
    // tests pass 0 (NULL) or plain integers for pointer arguments, so no
    // call writes into this process's memory. The table holds no call that
    // forks, execs or maps memory, and clone is only given flag sets the
    // kernel rejects, so the probe's state stays intact whatever happens.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    let errno = if ret == -1 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    Some(json!({"syscall": name, "ok": ret != -1, "ret": ret, "errno": errno}))
}

// -------------------------------------------------------------- signals --

extern "C" fn on_signal(sig: libc::c_int) {
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs handlers for the usual termination signals (so that even as pid
/// 1 of a pid namespace the signals are delivered), prints a ready line and
/// waits; the process exits with 128+signal when one arrives.
fn signal_wait() -> ExitCode {
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        // SAFETY: an all-zero `sigaction` is a valid value (empty mask, no
        // flags); we then set a handler that only calls `_exit`.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = handler as usize;
        // SAFETY: `sa` is fully initialised and outlives the call; passing a
        // null old-action pointer is allowed.
        let rc = unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
        if rc != 0 {
            eprintln!("sigaction({sig}) failed: {}", io::Error::last_os_error());
            return ExitCode::from(4);
        }
    }
    let _ = emit(&json!({"ready": true, "pid": rustix::process::getpid().as_raw_nonzero().get()}));
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
