//! The profile is data: these tests keep it well-formed, free of
//! redundant rules, and faithful to what it promises to refuse.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction};

/// What the default profile promises to refuse (outright, or allowed only
/// with the argument values named by a conditional rule: clone without
/// namespace flags, personality with the safe values).
const MUST_BLOCK: &[&str] = &[
    "unshare",
    "setns",
    "clone3",
    "add_key",
    "keyctl",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "perf_event_open",
    "bpf",
    "open_by_handle_at",
    "name_to_handle_at",
    "mount",
    "umount",
    "umount2",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "pivot_root",
    "chroot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "nfsservctl",
    "iopl",
    "ioperm",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vm86",
    "vm86old",
    "sethostname",
    "setdomainname",
    "fanotify_init",
    "vmsplice",
    "personality",
    "clone",
];

/// Allowed only under argument conditions.
const CONDITIONAL: &[&str] = &["clone", "personality"];

fn parsed(arch: &str) -> LinuxSeccomp {
    serde_json::from_value(seccomp_for(arch)).expect("profile parses as linux.seccomp")
}

/// (name, action, errnoRet, args) of every emitted OCI rule.
fn rule_keys(v: &Value) -> Vec<(String, String, Option<u64>, Option<String>)> {
    let mut out = Vec::new();
    for r in v["syscalls"].as_array().unwrap() {
        for n in r["names"].as_array().unwrap() {
            out.push((
                n.as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
                r["errnoRet"].as_u64(),
                r.get("args").map(|a| a.to_string()),
            ));
        }
    }
    out
}

#[test]
fn parses_into_oci_seccomp_for_both_families() {
    let s = parsed("x86_64");
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(s.default_errno_ret(), Some(libc::EPERM as u32));
    assert_eq!(
        s.architectures().as_deref().unwrap(),
        [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    );
    let s = parsed("aarch64");
    assert_eq!(
        s.architectures().as_deref().unwrap(),
        [Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    );
    assert!(s.syscalls().as_ref().unwrap().len() > 20);
    // Other hosts: native only.
    assert!(
        parsed("riscv64")
            .architectures()
            .as_deref()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn comments_are_stripped_and_entries_documented() {
    let text = default_seccomp().to_string();
    assert!(
        !text.contains("\"why\""),
        "comments leaked into the OCI JSON"
    );
    assert!(!text.contains("\"about\""));
    let src = source();
    for (i, e) in src.entries.iter().enumerate() {
        assert!(
            e.why.trim().len() >= 20,
            "entries[{i}] lacks a real comment"
        );
        assert!(!e.names.is_empty(), "entries[{i}] names nothing");
        let unique: BTreeSet<_> = e.names.iter().collect();
        assert_eq!(unique.len(), e.names.len(), "entries[{i}] repeats a name");
        match e.action {
            Kind::Errno => {
                let n = e.errno_ret.expect("errno entries give errnoRet");
                // Equal to the default, the compiler would drop the rule.
                assert_ne!(
                    n, src.default_errno_ret,
                    "entries[{i}]: errnoRet is the default"
                );
            }
            Kind::Allow | Kind::Deny => {
                assert!(
                    e.errno_ret.is_none(),
                    "entries[{i}]: errnoRet on a non-errno entry"
                )
            }
        }
        if e.action == Kind::Deny {
            assert!(
                e.when.is_empty(),
                "entries[{i}]: deny entries are unconditional"
            );
        }
    }
}

#[test]
fn compiles_for_the_running_host() {
    let c = bulkhead_seccomp::compile(&parsed(std::env::consts::ARCH)).expect("compiles");
    assert!(!c.bpf.is_empty());
    assert!(!c.notify);
    // Names unknown to an older libseccomp are skipped (and then fall under
    // the ENOSYS stub); nothing else may be reported.
    for w in &c.warnings {
        assert!(w.contains("unknown syscall"), "unexpected warning: {w}");
    }
    // The other family compiles too (as foreign arches next to the native one).
    let other = if std::env::consts::ARCH == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    bulkhead_seccomp::compile(&parsed(other)).expect("compiles");
}

#[test]
fn no_redundant_rules() {
    let v = default_seccomp();
    let keys = rule_keys(&v);
    let mut seen = BTreeSet::new();
    for k in &keys {
        assert!(seen.insert(k.clone()), "{k:?} appears in two rules");
    }
    // A name allowed unconditionally has no other rule: another allow
    // would be redundant, and libseccomp lets the unconditional rule win
    // over a conditional one with another action (that one would be dead).
    let unconditional: BTreeSet<&str> = keys
        .iter()
        .filter(|(_, a, _, args)| a == "SCMP_ACT_ALLOW" && args.is_none())
        .map(|(n, ..)| n.as_str())
        .collect();
    for (n, _, _, args) in &keys {
        if args.is_some() {
            assert!(
                !unconditional.contains(n.as_str()),
                "{n}: also allowed unconditionally"
            );
        }
    }
    // Documented refusals are listed once and never allowed outright.
    let mut denied = BTreeMap::new();
    for (i, e) in source().entries.iter().enumerate() {
        if e.action != Kind::Deny {
            continue;
        }
        for n in &e.names {
            if let Some(j) = denied.insert(n.clone(), i) {
                panic!("{n} is denied by entries[{j}] and entries[{i}]");
            }
            assert!(
                !unconditional.contains(n.as_str()),
                "{n} is both denied and allowed"
            );
        }
    }
}

#[test]
fn must_block_list_is_honoured_and_documented() {
    let v = default_seccomp();
    let keys = rule_keys(&v);
    let src = source();
    let denied: BTreeSet<&str> = src
        .entries
        .iter()
        .filter(|e| e.action == Kind::Deny)
        .flat_map(|e| e.names.iter().map(String::as_str))
        .collect();
    for &name in MUST_BLOCK {
        let rules: Vec<_> = keys.iter().filter(|(n, ..)| n == name).collect();
        for (_, action, _, args) in &rules {
            if action == "SCMP_ACT_ALLOW" {
                assert!(CONDITIONAL.contains(&name), "{name} is allowed");
                assert!(args.is_some(), "{name} is allowed unconditionally");
            }
        }
        // Either documented as refused, or given its own rule.
        assert!(
            denied.contains(name) || !rules.is_empty(),
            "{name} is refused only by omission: add it to a deny entry"
        );
    }
    // clone3 answers ENOSYS so that libc falls back to clone.
    assert!(keys.contains(&(
        "clone3".into(),
        "SCMP_ACT_ERRNO".into(),
        Some(libc::ENOSYS as u64),
        None
    )));
}

#[test]
fn capabilities_and_paths() {
    let caps = default_capabilities();
    assert_eq!(caps.len(), 8);
    for c in &caps {
        assert!(
            crate::caps::from_name(c).is_ok(),
            "{c} is not a capability name"
        );
    }
    for dropped in [
        "CAP_SYS_ADMIN",
        "CAP_NET_RAW",
        "CAP_MKNOD",
        "CAP_SYS_CHROOT",
        "CAP_SETFCAP",
    ] {
        assert!(!caps.iter().any(|c| c == dropped));
    }
    // At least podman's lists (its read-only /proc/asound is masked here).
    let masked = default_masked_paths();
    for p in [
        "/proc/acpi",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/fs/selinux",
        "/sys/dev/block",
        "/sys/devices/virtual/powercap",
    ] {
        assert!(masked.iter().any(|m| m == p), "{p} not masked");
    }
    let ro = default_readonly_paths();
    for p in [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ] {
        assert!(ro.iter().any(|m| m == p), "{p} not read-only");
    }
    assert!(masked.iter().any(|m| m == "/proc/asound"));
}
