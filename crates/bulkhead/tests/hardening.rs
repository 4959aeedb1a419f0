//! The hardened default profile, seen from inside containers: the config
//! `bulkhead spec` writes (seccomp allow-list, minimal capabilities,
//! no_new_privs) and `bulkhead sandbox`. bulkhead-only: `runc spec` writes
//! no seccomp profile.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{Bundle, PROBE, is_runc, rt};
use serde_json::{Value, json};

/// The config `bulkhead spec` writes, with the root at the shared test
/// rootfs and no terminal.
fn spec_bundle() -> Bundle {
    let d = common::open_tempdir();
    let state = d.path().join("state");
    rt(&state, &["spec", "--bundle", d.path().to_str().unwrap()]).ok();
    let text = std::fs::read_to_string(d.path().join("config.json")).expect("config.json");
    let mut spec: Value = serde_json::from_str(&text).expect("spec JSON");
    assert!(
        spec["linux"]["seccomp"].is_object(),
        "spec wrote no seccomp profile"
    );
    Bundle::new().json_patch(move |c| {
        spec["root"]["path"] = c["root"]["path"].clone();
        spec["process"]["terminal"] = json!(false);
        *c = spec;
    })
}

fn add_caps(b: Bundle, caps: &[&str]) -> Bundle {
    b.json_patch(|c| {
        for set in ["bounding", "effective", "permitted"] {
            let list = c["process"]["capabilities"][set].as_array_mut().unwrap();
            list.extend(caps.iter().map(|s| json!(s)));
        }
    })
}

/// Runs `probe syscall NAME ARGS…` for every call in one container and
/// returns the results in order, keyed by "NAME ARGS".
fn syscalls(b: Bundle, calls: &[&str]) -> BTreeMap<String, Value> {
    let script: String = calls
        .iter()
        .map(|c| format!("{PROBE} syscall {c}\n"))
        .collect();
    let out = b.sh(&script).run();
    out.ok();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {out}")))
        .collect();
    assert_eq!(lines.len(), calls.len(), "{out}");
    calls.iter().map(|c| c.to_string()).zip(lines).collect()
}

/// Calls the profile refuses, with arguments the kernel itself would answer
/// without EPERM once it holds the capabilities (EFAULT, EBADF, EINVAL, or
/// success) and whose success would be harmless.
const REFUSED_REACHABLE: &[&str] = &[
    "unshare 0x10000000", // CLONE_NEWUSER
    "unshare 0x20000",    // CLONE_NEWNS
    "setns -1 0",
    "clone 0x10000211", // NEWUSER|FS|SIGCHLD: EINVAL if reached
    "keyctl 0 -3 0",    // KEYCTL_GET_KEYRING_ID, session keyring
    "add_key 0 0 0 0 0",
    "request_key 0 0 0 0",
    "io_uring_setup 1 0",
    "io_uring_enter -1 0 0 0 0 0",
    "io_uring_register -1 0 0 0",
    "userfaultfd 0x80001", // UFFD_USER_MODE_ONLY|O_CLOEXEC
    "perf_event_open 0 0 -1 -1 0",
    "bpf 9999 0 0",
    "open_by_handle_at -1 0 0",
    "name_to_handle_at -100 0 0 0 0",
    "mount 0 0 0 0 0",
    "umount2 0 0",
    "pivot_root 0 0",
    "chroot 0",
    "fsopen 0 0",
    "fsconfig -1 0 0 0 0",
    "fsmount -1 0 0",
    "fspick -1 0 0",
    "move_mount -1 0 -1 0 0",
    "open_tree -1 0 0",
    "mount_setattr -1 0 0 0 0",
    "personality 0x0040000", // ADDR_NO_RANDOMIZE
    "ptrace 0x4242 0 0 0",   // bad request: ESRCH if reached
    "process_vm_readv 1 0 0 0 0 0",
    "kcmp 0 0 0 0 0",
    "pidfd_getfd -1 0 0",
    "sethostname 0 0x10000", // too long: EINVAL if reached
    "fanotify_init 0 0",
    "vmsplice -1 0 0 0",
];

/// Refused calls that must never reach the kernel in a test, even with
/// capabilities (machine-wide effects): checked under the profile only.
const REFUSED_DANGEROUS: &[&str] = &[
    "kexec_load 0 0 0 0",
    "init_module 0 0 0",
    "finit_module -1 0 0",
    "delete_module 0 0",
    "reboot 0 0 0 0",
    "swapon 0 0",
    "swapoff 0",
    "acct 0",
    "syslog 10 0 0",
    "settimeofday 0 0",
    "clock_settime 0 0",
    "adjtimex 0",
    "clock_adjtime 0 0",
    "setdomainname 0 0x10000",
    "quotactl 0 0 0 0",
    "lookup_dcookie 0 0 0",
];

#[cfg(target_arch = "x86_64")]
const REFUSED_X86: &[&str] = &["iopl 0", "ioperm 0 0 0", "modify_ldt 0 0 0"];
#[cfg(not(target_arch = "x86_64"))]
const REFUSED_X86: &[&str] = &[];

#[track_caller]
fn assert_errno(results: &BTreeMap<String, Value>, call: &str, errno: i32) {
    let r = &results[call];
    assert_eq!(r["ok"], false, "{call} succeeded: {r}");
    assert_eq!(r["errno"], errno, "{call}: {r}");
}

#[test]
fn spec_config_is_confined() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let r = spec_bundle().probe_result(&["report"]);
    let st = &r["status"];
    assert_eq!(st["Seccomp"], "2", "{st}");
    assert_eq!(st["NoNewPrivs"], "1", "{st}");
    let want: u64 = bulkhead_spec::profile::DEFAULT_CAPABILITIES
        .iter()
        .map(|c| 1u64 << bulkhead_spec::caps::from_name(c).unwrap())
        .sum();
    assert_eq!(
        want, 0x4fb,
        "CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE"
    );
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let v = u64::from_str_radix(st[set].as_str().unwrap(), 16).unwrap();
        assert_eq!(v, want, "{set}: {st}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(
            u64::from_str_radix(st[set].as_str().unwrap(), 16).unwrap(),
            0,
            "{st}"
        );
    }
}

#[test]
fn spec_profile_refuses_escape_syscalls() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let calls: Vec<&str> = REFUSED_REACHABLE
        .iter()
        .chain(REFUSED_DANGEROUS)
        .chain(REFUSED_X86)
        .copied()
        .collect();
    let results = syscalls(spec_bundle(), &calls);
    for c in &calls {
        assert_errno(&results, c, libc::EPERM);
    }
}

#[test]
fn the_profile_not_the_capabilities_does_the_refusing() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let caps = [
        "CAP_SYS_ADMIN",
        "CAP_DAC_READ_SEARCH",
        "CAP_SYS_PTRACE",
        "CAP_SYS_CHROOT",
        "CAP_BPF",
        "CAP_PERFMON",
    ];
    // With the capabilities that would let these calls through the
    // kernel's own checks, the profile still refuses every one…
    let results = syscalls(add_caps(spec_bundle(), &caps), REFUSED_REACHABLE);
    for c in REFUSED_REACHABLE {
        assert_errno(&results, c, libc::EPERM);
    }
    // …while the same container without the profile reaches the kernel.
    let bare = add_caps(spec_bundle(), &caps).json_patch(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    let results = syscalls(bare, REFUSED_REACHABLE);
    for c in REFUSED_REACHABLE {
        let r = &results[*c];
        assert_ne!(
            r["errno"],
            libc::EPERM,
            "{c} is refused by the kernel, not the profile: {r}"
        );
    }
}

#[test]
fn unprivileged_user_namespace_is_refused() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let out = spec_bundle()
        .user(1000, 1000, &[])
        .sh("unshare -U true; echo rc=$?; unshare -r -n true; echo rc2=$?")
        .run();
    out.ok();
    assert!(out.stdout.contains("rc=1"), "{out}");
    assert!(out.stdout.contains("rc2=1"), "{out}");
    assert!(
        out.stderr
            .to_lowercase()
            .contains("operation not permitted"),
        "{out}"
    );
}

#[test]
fn argument_filters() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let calls = [
        "clone3 0 0",              // ENOSYS: libc falls back to clone
        "personality 0xffffffff",  // query: allowed
        "personality 8",           // PER_LINUX32: allowed
        "personality 0x40008",     // LINUX32|ADDR_NO_RANDOMIZE: refused
        "personality 0x100000000", // 0 in the low bits only: refused
        "ioctl 0 0x5412 0",        // TIOCSTI: EIO
        "ioctl 0 0x100005412 0",   // same after the kernel's truncation
        "ioctl 0 0x5401 0",        // TCGETS on /dev/null: reaches the kernel
        "socket 16 3 9",           // AF_NETLINK, NETLINK_AUDIT: EINVAL
        "socket 16 3 0",           // AF_NETLINK, NETLINK_ROUTE: fine
        "socket 2 1 0",            // AF_INET stream: fine
    ];
    let r = syscalls(spec_bundle(), &calls);
    assert_errno(&r, "clone3 0 0", libc::ENOSYS);
    assert_eq!(r["personality 0xffffffff"]["ok"], true, "{r:?}");
    assert_eq!(r["personality 8"]["ok"], true, "{r:?}");
    assert_errno(&r, "personality 0x40008", libc::EPERM);
    assert_errno(&r, "personality 0x100000000", libc::EPERM);
    assert_errno(&r, "ioctl 0 0x5412 0", libc::EIO);
    assert_errno(&r, "ioctl 0 0x100005412 0", libc::EIO);
    assert_errno(&r, "ioctl 0 0x5401 0", libc::ENOTTY);
    assert_errno(&r, "socket 16 3 9", libc::EINVAL);
    assert_eq!(r["socket 16 3 0"]["ok"], true, "{r:?}");
    assert_eq!(r["socket 2 1 0"]["ok"], true, "{r:?}");
}

#[test]
fn ordinary_work_still_runs() {
    require_root!();
    skip_if!(is_runc(), "runc spec writes no seccomp profile");
    let out = spec_bundle()
        .mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "size=1m"])
        .sh("set -e
             ls / >/dev/null
             cat /etc/passwd | grep -q '^root:'
             echo hello > /tmp/f && test \"$(cat /tmp/f)\" = hello
             mkdir /tmp/d && mv /tmp/f /tmp/d/g && ln -s d/g /tmp/l && cat /tmp/l >/dev/null
             chown 1000:1000 /tmp/d/g && chmod 640 /tmp/d/g
             (sleep 0.1 &) ; wait
             ps >/dev/null
             x=$(echo a | sed s/a/b/) && test \"$x\" = b
             date >/dev/null; id -u; uname -r >/dev/null
             su tester -s /bin/sh -c 'id -u' || echo su-failed
             echo done")
        .run();
    out.ok();
    assert!(out.stdout.contains("done"), "{out}");
    assert!(out.stdout.contains("1000"), "setuid via su: {out}");
    assert!(!out.stdout.contains("su-failed"), "{out}");
}

#[test]
fn sandbox_is_confined() {
    require_root!();
    skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    let root = common::open_tempdir();
    let out = rt(
        root.path(),
        &[
            "sandbox",
            "--",
            "sh",
            "-c",
            "grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; \
             unshare -U true 2>/dev/null; echo unshare=$?; echo ok > /tmp/x && cat /tmp/x",
        ],
    );
    out.ok();
    let field = |k: &str| {
        out.stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{k}:"))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {k} in {out}"))
    };
    assert_eq!(field("Seccomp"), "2", "{out}");
    assert_eq!(field("NoNewPrivs"), "1", "{out}");
    assert_eq!(field("CapEff"), "0000000000000000", "{out}");
    assert!(out.stdout.contains("unshare=1"), "{out}");
    assert!(out.stdout.contains("ok"), "{out}");
}
