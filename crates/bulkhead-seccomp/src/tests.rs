//! Two kinds of tests: the compiled program run through a small classic-BPF
//! interpreter (any architecture, any syscall number), and the program
//! loaded into the kernel in a helper process (this test binary re-executed
//! with a scenario name), checking syscall results from inside it.

use super::*;
use serde_json::json;
use std::process::{Command, ExitStatus, Stdio};

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile parses")
}

// ---------------------------------------------------------------------------
// A classic-BPF interpreter over struct seccomp_data, enough for what
// libseccomp and the stub emit.

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_KILL_THREAD: u32 = 0;
const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;

fn errno(e: i32) -> u32 {
    SECCOMP_RET_ERRNO | e as u32
}

fn native_audit() -> u32 {
    let spec = spec_arch(ScmpArch::native()).expect("native arch in table");
    stub::audit_arch(spec as u32).0
}

fn run(bpf: &[u8], audit: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&audit.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    let insns: Vec<(u16, u8, u8, u32)> = bpf
        .chunks_exact(8)
        .map(|c| {
            (
                u16::from_ne_bytes([c[0], c[1]]),
                c[2],
                c[3],
                u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            )
        })
        .collect();
    let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
    let mut pc = 0usize;
    loop {
        let (code, jt, jf, k) = insns[pc];
        pc += 1;
        let jump = |cond: bool| if cond { jt as usize } else { jf as usize };
        match code {
            0x20 => {
                let o = k as usize;
                a = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
            }
            0x00 => a = k,
            0x01 => x = k,
            0x60 => a = mem[k as usize],
            0x61 => x = mem[k as usize],
            0x02 => mem[k as usize] = a,
            0x03 => mem[k as usize] = x,
            0x04 => a = a.wrapping_add(k),
            0x14 => a = a.wrapping_sub(k),
            0x54 => a &= k,
            0x44 => a |= k,
            0x5c => a &= x,
            0x07 => x = a,
            0x87 => a = x,
            0x05 => pc += k as usize,
            0x15 => pc += jump(a == k),
            0x25 => pc += jump(a > k),
            0x35 => pc += jump(a >= k),
            0x45 => pc += jump(a & k != 0),
            0x1d => pc += jump(a == x),
            0x2d => pc += jump(a > x),
            0x3d => pc += jump(a >= x),
            0x4d => pc += jump(a & x != 0),
            0x06 => return k,
            0x16 => return a,
            other => panic!("bpf interpreter: unhandled opcode {other:#x} at {}", pc - 1),
        }
    }
}

fn nr(name: &str) -> u32 {
    ScmpSyscall::from_name(name).unwrap().as_raw_syscall() as u32
}

#[cfg(target_arch = "x86_64")]
fn arch_nr(name: &str, arch: ScmpArch) -> u32 {
    ScmpSyscall::from_name_by_arch(name, arch)
        .unwrap()
        .as_raw_syscall() as u32
}

fn eval(c: &Compiled, name: &str, args: [u64; 6]) -> u32 {
    run(&c.bpf, native_audit(), nr(name), args)
}

// ---------------------------------------------------------------------------
// Compilation, checked by interpretation.

#[test]
fn every_action_maps_to_its_return_value() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES},
            {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["getgid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["geteuid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getegid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["getpgrp"], "action": "SCMP_ACT_TRACE"},
            {"names": ["getsid"], "action": "SCMP_ACT_LOG"},
            {"names": ["gettid"], "action": "SCMP_ACT_NOTIFY"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
        ]
    })))
    .unwrap();
    let z = [0; 6];
    assert_eq!(eval(&c, "getcwd", z), errno(libc::EACCES));
    assert_eq!(eval(&c, "chdir", z), errno(libc::EPERM));
    assert_eq!(eval(&c, "getppid", z), SECCOMP_RET_KILL_THREAD);
    assert_eq!(eval(&c, "getuid", z), SECCOMP_RET_KILL_THREAD);
    assert_eq!(eval(&c, "getgid", z), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(eval(&c, "geteuid", z), SECCOMP_RET_TRAP);
    assert_eq!(eval(&c, "getegid", z), SECCOMP_RET_TRACE | 7);
    assert_eq!(
        eval(&c, "getpgrp", z),
        SECCOMP_RET_TRACE | libc::EPERM as u32
    );
    assert_eq!(eval(&c, "getsid", z), SECCOMP_RET_LOG);
    assert_eq!(eval(&c, "gettid", z), SECCOMP_RET_USER_NOTIF);
    assert_eq!(eval(&c, "getpid", z), SECCOMP_RET_ALLOW);
    assert_eq!(eval(&c, "read", z), SECCOMP_RET_ALLOW);
    assert!(c.notify);
    assert_eq!(c.flags, flag::NEW_LISTENER);
    // Default ALLOW: no stub, unknown numbers go to the default.
    assert_eq!(run(&c.bpf, native_audit(), 1000, z), SECCOMP_RET_ALLOW);
}

#[test]
fn default_errno_ret_and_default_kill() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EXDEV,
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(eval(&c, "read", [0; 6]), errno(libc::EXDEV));
    assert_eq!(eval(&c, "getpid", [0; 6]), SECCOMP_RET_ALLOW);

    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(eval(&c, "read", [0; 6]), errno(libc::EPERM));

    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_KILL",
        "syscalls": [{"names": ["close"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(eval(&c, "close", [0; 6]), SECCOMP_RET_ALLOW);
    assert!(nr("read") < nr("close"));
    assert_eq!(eval(&c, "read", [0; 6]), SECCOMP_RET_KILL_THREAD);
}

#[test]
fn all_seven_operators() {
    let ops = [
        (
            "SCMP_CMP_NE",
            10u64,
            None,
            &[(9u64, true), (10, false), (11, true)][..],
        ),
        (
            "SCMP_CMP_LT",
            10,
            None,
            &[(9, true), (10, false), (11, false)],
        ),
        (
            "SCMP_CMP_LE",
            10,
            None,
            &[(9, true), (10, true), (11, false)],
        ),
        (
            "SCMP_CMP_EQ",
            10,
            None,
            &[(9, false), (10, true), (11, false)],
        ),
        (
            "SCMP_CMP_GE",
            10,
            None,
            &[(9, false), (10, true), (11, true)],
        ),
        (
            "SCMP_CMP_GT",
            10,
            None,
            &[(9, false), (10, false), (11, true)],
        ),
        (
            "SCMP_CMP_MASKED_EQ",
            0xff00,
            Some(0x1200u64),
            &[
                (0x1234, true),
                (0x12ff, true),
                (0x1334, false),
                (0x34, false),
            ],
        ),
    ];
    for (op, value, value_two, cases) in ops {
        let mut arg = json!({"index": 2, "value": value, "op": op});
        if let Some(v2) = value_two {
            arg["valueTwo"] = json!(v2);
        }
        let c = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]
        })))
        .unwrap();
        for &(a2, hit) in cases {
            let want = if hit {
                errno(libc::EPERM)
            } else {
                SECCOMP_RET_ALLOW
            };
            assert_eq!(
                eval(&c, "ioctl", [0, 0, a2, 0, 0, 0]),
                want,
                "{op} with {a2:#x}"
            );
        }
        // 64-bit values: the high word takes part.
        if op == "SCMP_CMP_EQ" {
            assert_eq!(
                eval(&c, "ioctl", [0, 0, (1 << 32) | 10, 0, 0, 0]),
                SECCOMP_RET_ALLOW
            );
        }
    }
}

#[test]
fn args_on_different_indexes_all_must_hold() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 42, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
        ]}]
    })))
    .unwrap();
    assert_eq!(eval(&c, "kill", [42, 9, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(eval(&c, "kill", [42, 15, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
    assert_eq!(eval(&c, "kill", [41, 9, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn repeated_index_becomes_separate_rules() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
        ]}]
    })))
    .unwrap();
    assert_eq!(eval(&c, "personality", [0; 6]), SECCOMP_RET_ALLOW);
    assert_eq!(
        eval(&c, "personality", [8, 0, 0, 0, 0, 0]),
        SECCOMP_RET_ALLOW
    );
    assert_eq!(
        eval(&c, "personality", [1, 0, 0, 0, 0, 0]),
        errno(libc::EPERM)
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("syscalls[0]: "));
}

#[test]
fn newer_syscall_skipped_with_warning() {
    // Real syscalls that libseccomp 2.5.4 does not know: skipped, not errors.
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["read", "mseal", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["listmount"], "action": "SCMP_ACT_ALLOW"},
        ]
    })))
    .unwrap();
    assert_eq!(
        c.warnings,
        vec![
            "syscalls[1].names[1]: unknown syscall \"mseal\", skipped".to_owned(),
            "syscalls[2].names[0]: unknown syscall \"listmount\", skipped".to_owned(),
        ]
    );
    assert_eq!(eval(&c, "read", [0; 6]), SECCOMP_RET_ALLOW);
    assert_eq!(eval(&c, "write", [0; 6]), SECCOMP_RET_ALLOW);
}

#[test]
fn name_no_kernel_has_is_an_error_naming_the_entry() {
    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["read", "opne"], "action": "SCMP_ACT_ALLOW"},
        ]
    })))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("syscalls[1].names[1]") && e.contains("opne"),
        "{e}"
    );
}

#[test]
fn arg_index_six_rejected_naming_the_entry() {
    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"},
            ]},
        ]
    })))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "syscalls[1].args[1]: argument index 6 is out of range (a syscall has arguments 0 to 5)"
    );
}

#[test]
fn malformed_profiles_rejected() {
    let e = compile(&profile(json!({"defaultAction": "SCMP_ACT_NOTIFY"}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
    );

    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall"
    );

    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]
    })))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "syscalls[0].errnoRet: errno value 70000 is out of range (at most 65535)"
    );

    // An errno on an action that has none is an error (config-linux.md:
    // "the runtime MUST print an error and fail").
    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 5}]
    })))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
    );
    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "defaultErrnoRet": 1,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "defaultErrnoRet: SCMP_ACT_ALLOW takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"
    );

    let e = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap_err();
    assert_eq!(e.to_string(), "syscalls[0].names[1]: empty syscall name");

    // Unknown action and operator names never reach us.
    assert!(
        serde_json::from_value::<LinuxSeccomp>(json!({"defaultAction": "SCMP_ACT_NOPE"})).is_err()
    );
}

#[test]
fn rule_equal_to_default_is_dropped_silently() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EBADF},
        ]
    })))
    .unwrap();
    assert!(c.warnings.is_empty());
    assert_eq!(eval(&c, "read", [0; 6]), errno(libc::EPERM));
    assert_eq!(eval(&c, "close", [0; 6]), errno(libc::EBADF));
}

#[test]
fn flags_word() {
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    assert_eq!(c.flags, flag::TSYNC | flag::LOG | flag::SPEC_ALLOW);
    assert!(!c.notify);
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("WAIT_KILLABLE_RECV"));

    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap();
    assert_eq!(
        c.flags,
        flag::TSYNC | flag::TSYNC_ESRCH | flag::NEW_LISTENER | flag::WAIT_KILLABLE_RECV
    );
    assert!(c.notify);
}

// ---------------------------------------------------------------------------
// The ENOSYS stub.

const X32_BIT: u32 = 0x4000_0000;
const AUDIT_X86_64: u32 = 0xc000_003e;
const AUDIT_I386: u32 = 0x4000_0003;

fn whitelist(default: &str, names: &[&str], archs: &[&str]) -> Compiled {
    compile(&profile(json!({
        "defaultAction": default,
        "architectures": archs,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap()
}

#[test]
fn stub_gives_enosys_above_the_highest_named_syscall() {
    let c = whitelist("SCMP_ACT_ERRNO", &["read", "getpid", "pidfd_open"], &[]);
    let max = nr("pidfd_open");
    let a = native_audit();
    assert_eq!(run(&c.bpf, a, max, [0; 6]), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c.bpf, a, max - 1, [0; 6]), errno(libc::EPERM));
    assert_eq!(run(&c.bpf, a, max + 1, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(run(&c.bpf, a, 1000, [0; 6]), errno(libc::ENOSYS));
    assert_eq!(eval(&c, "read", [0; 6]), SECCOMP_RET_ALLOW);
    assert_eq!(eval(&c, "close", [0; 6]), errno(libc::EPERM));
}

#[test]
fn stub_for_kill_and_trap_defaults_but_not_permissive_ones() {
    for d in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"] {
        let c = whitelist(d, &["read"], &[]);
        assert_eq!(
            run(&c.bpf, native_audit(), 1000, [0; 6]),
            errno(libc::ENOSYS),
            "{d}"
        );
    }
    for (d, want) in [
        ("SCMP_ACT_LOG", SECCOMP_RET_LOG),
        ("SCMP_ACT_TRACE", SECCOMP_RET_TRACE | libc::EPERM as u32),
    ] {
        let c = whitelist(d, &["read"], &[]);
        assert_eq!(run(&c.bpf, native_audit(), 1000, [0; 6]), want, "{d}");
    }
    // A default that already answers ENOSYS needs no stub.
    let c = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::ENOSYS,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    let plain = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EPERM,
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert!(c.bpf.len() < plain.bpf.len());
    assert_eq!(
        run(&c.bpf, native_audit(), 1000, [0; 6]),
        errno(libc::ENOSYS)
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn stub_per_architecture_on_x86_64() {
    let c = whitelist(
        "SCMP_ACT_ERRNO",
        &["read", "getpid", "pidfd_open"],
        &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    );
    let x86_max = arch_nr("pidfd_open", ScmpArch::X86);
    let x32_max = arch_nr("pidfd_open", ScmpArch::X32);
    assert!(
        x32_max & X32_BIT != 0,
        "libseccomp x32 numbers carry the x32 bit"
    );
    let x32_read = arch_nr("read", ScmpArch::X32);
    let z = [0; 6];

    // i386
    assert_eq!(run(&c.bpf, AUDIT_I386, x86_max, z), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c.bpf, AUDIT_I386, x86_max + 1, z), errno(libc::ENOSYS));
    assert_eq!(run(&c.bpf, AUDIT_I386, 3, z), SECCOMP_RET_ALLOW); // read on i386
    assert_eq!(run(&c.bpf, AUDIT_I386, 6, z), errno(libc::EPERM)); // close on i386
    // x32
    assert_eq!(run(&c.bpf, AUDIT_X86_64, x32_read, z), SECCOMP_RET_ALLOW);
    assert_eq!(
        run(&c.bpf, AUDIT_X86_64, x32_max + 1, z),
        errno(libc::ENOSYS)
    );
    assert_eq!(
        run(&c.bpf, AUDIT_X86_64, X32_BIT | 3, z),
        errno(libc::EPERM)
    );
    // x86_64
    assert_eq!(run(&c.bpf, AUDIT_X86_64, 0, z), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c.bpf, AUDIT_X86_64, 434, z), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c.bpf, AUDIT_X86_64, 435, z), errno(libc::ENOSYS));
    assert_eq!(run(&c.bpf, AUDIT_X86_64, 3, z), errno(libc::EPERM));

    // Without x32 in the profile its calls stay libseccomp's business (bad
    // arch action, kill), not ENOSYS.
    let c = whitelist("SCMP_ACT_ERRNO", &["read", "pidfd_open"], &[]);
    assert_eq!(
        run(&c.bpf, AUDIT_X86_64, x32_max + 1, z),
        SECCOMP_RET_KILL_THREAD
    );
    assert_eq!(run(&c.bpf, AUDIT_X86_64, 435, z), errno(libc::ENOSYS));
    // An architecture not in the filter at all: bad arch action.
    assert_eq!(run(&c.bpf, AUDIT_I386, 3, z), SECCOMP_RET_KILL_THREAD);
}

/// Names of the native syscalls numbered `0..=last` that libseccomp knows.
fn native_names(last: i32) -> Vec<(i32, String)> {
    (0..=last)
        .filter_map(|nr| Some((nr, ScmpSyscall::from(nr).get_name().ok()?)))
        .collect()
}

#[test]
fn long_profile_uses_the_binary_tree_correctly() {
    let names = native_names(500);
    assert!(names.len() > 300);
    // One rule per name (well over 32 rules): even numbers allowed.
    let rules: Vec<_> = names
        .iter()
        .filter(|(nr, _)| nr % 2 == 0)
        .map(|(_, n)| json!({"names": [n], "action": "SCMP_ACT_ALLOW"}))
        .collect();
    let c = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}),
    ))
    .unwrap();
    let max = names
        .iter()
        .filter(|(nr, _)| nr % 2 == 0)
        .map(|&(nr, _)| nr)
        .max()
        .unwrap();
    for &(nr, _) in &names {
        let want = if nr % 2 == 0 {
            SECCOMP_RET_ALLOW
        } else if nr < max {
            errno(libc::EPERM)
        } else {
            errno(libc::ENOSYS)
        };
        assert_eq!(
            run(&c.bpf, native_audit(), nr as u32, [0; 6]),
            want,
            "nr {nr}"
        );
    }
}

#[cfg(target_endian = "little")]
#[test]
fn foreign_byte_order_arch_left_out_with_warning() {
    let c = whitelist("SCMP_ACT_ERRNO", &["read"], &["SCMP_ARCH_S390X"]);
    assert_eq!(
        c.warnings,
        vec![
            "architectures[0]: SCMP_ARCH_S390X left out of the filter (its byte order differs from the native architecture); its syscalls will be killed"
                .to_owned()
        ]
    );
    assert_eq!(eval(&c, "read", [0; 6]), SECCOMP_RET_ALLOW);
    assert_eq!(run(&c.bpf, 0x8000_0016, 3, [0; 6]), SECCOMP_RET_KILL_THREAD);
}

#[test]
fn native_arch_listed_explicitly_is_harmless() {
    let c = whitelist("SCMP_ACT_ERRNO", &["read"], &["SCMP_ARCH_NATIVE"]);
    assert_eq!(eval(&c, "read", [0; 6]), SECCOMP_RET_ALLOW);
}

#[test]
fn features_lists() {
    assert_eq!(supported_actions().len(), 9);
    let archs = supported_archs();
    assert!(archs.contains(&"SCMP_ARCH_X86_64"));
    assert!(archs.contains(&"SCMP_ARCH_AARCH64"));
    let flags = supported_flags();
    assert!(flags.contains(&"SECCOMP_FILTER_FLAG_TSYNC"));
    assert!(flags.contains(&"SECCOMP_FILTER_FLAG_LOG"));
}

// ---------------------------------------------------------------------------
// In the kernel, in a helper process.

const SCENARIO: &str = "BULKHEAD_SECCOMP_TEST_SCENARIO";

/// Re-run this test binary, entering only [`scenario_child`].
fn in_child(name: &str) -> ExitStatus {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tests::scenario_child",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(SCENARIO, name)
        .stdout(Stdio::null())
        .status()
        .unwrap()
}

/// Exit code of a scenario that passed; the test harness itself never
/// exits with it, so a child that did not run the scenario cannot pass.
const PASSED: i32 = 42;

fn assert_child_ok(name: &str) {
    let st = in_child(name);
    assert_eq!(st.code(), Some(PASSED), "scenario {name}: {st}");
}

/// Entered in the helper process only; elsewhere an empty test.
#[test]
fn scenario_child() {
    let Ok(name) = std::env::var(SCENARIO) else {
        return;
    };
    let code = match scenario(&name) {
        Ok(()) => PASSED,
        Err(code) => code,
    };
    bulkhead_sys::exit_now(code);
}

fn os_err<T>(r: io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn rust_err<T>(r: rustix::io::Result<T>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error())
}

fn check(cond: bool, code: i32) -> Result<(), i32> {
    if cond { Ok(()) } else { Err(code) }
}

/// Compile, set no_new_privs, load. Diagnostics go to stderr before the
/// filter is in place; after it, results are reported by exit code only.
fn load(p: serde_json::Value) -> Result<(Compiled, Option<std::os::fd::OwnedFd>), i32> {
    let c = compile(&profile(p)).map_err(|e| {
        eprintln!("compile: {e}");
        90
    })?;
    // No core files from the SIGSYS scenarios.
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    rustix::thread::set_no_new_privs(true).map_err(|_| 91)?;
    let fd = bulkhead_sys::seccomp::load_filter(&c.bpf, c.flags).map_err(|e| {
        eprintln!("load: {e}");
        92
    })?;
    Ok((c, fd))
}

fn scenario(name: &str) -> Result<(), i32> {
    match name {
        "getcwd_eacces" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]
            }))?;
            check(
                os_err(bulkhead_sys::getcwd_bytes()) == Some(libc::EACCES),
                1,
            )?;
            check(std::process::id() > 0, 2)
        }
        "personality_arg" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": ["exit_group", "exit"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]},
                ]
            }))?;
            check(bulkhead_sys::personality(0xffff_ffff).is_ok(), 1)?;
            check(os_err(bulkhead_sys::personality(0)) == Some(libc::EPERM), 2)
        }
        "args_and" => {
            let me = std::process::id() as u64;
            load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                    "args": [
                        {"index": 0, "value": me, "op": "SCMP_CMP_EQ"},
                        {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                    ]}]
            }))?;
            check(
                os_err(bulkhead_sys::kill(me as i32, 0)) == Some(libc::EXDEV),
                1,
            )?;
            check(bulkhead_sys::kill(me as i32, libc::SIGCONT).is_ok(), 2)?;
            check(bulkhead_sys::kill(1, 0).is_ok(), 3)
        }
        "operators" => {
            // getpriority(PRIO_PROCESS, who): the filter runs before the
            // kernel looks the process up, so EXDEV means "rule matched",
            // anything else that it did not.
            let me = std::process::id() as u64;
            load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                     "args": [{"index": 1, "value": 0xff, "op": "SCMP_CMP_MASKED_EQ", "valueTwo": 0x11}]},
                    {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                     "args": [{"index": 1, "value": me, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["getpriority"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV,
                     "args": [{"index": 1, "value": 0x7000_0000u64, "op": "SCMP_CMP_GT"}]},
                ]
            }))?;
            let matched = |who: u32| {
                let pid = rustix::process::Pid::from_raw(who as i32);
                rust_err(rustix::process::getpriority_process(pid)) == Some(libc::EXDEV)
            };
            check(matched(me as u32), 1)?;
            check(matched(0x2211), 2)?;
            check(!matched(0x2212), 3)?;
            check(matched(0x7000_0001), 4)?;
            check(!matched(1), 5)
        }
        "kill_process" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_KILL_PROCESS"}]
            }))?;
            let _ = bulkhead_sys::getcwd_bytes();
            Err(1)
        }
        "notify" => {
            let (c, fd) = load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]
            }))?;
            check(c.notify, 1)?;
            let fd = fd.ok_or(2)?;
            // A thread created now inherits the filter; its getppid waits
            // for our answer.
            let t =
                std::thread::spawn(|| rustix::process::getppid().map(|p| p.as_raw_nonzero().get()));
            use std::os::fd::AsRawFd;
            let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).map_err(|_| 3)?;
            check(
                req.data.syscall == ScmpSyscall::from_name("getppid").unwrap(),
                4,
            )?;
            libseccomp::ScmpNotifResp::new_val(
                req.id,
                4242,
                libseccomp::ScmpNotifRespFlags::empty(),
            )
            .respond(fd.as_raw_fd())
            .map_err(|_| 5)?;
            check(t.join().map_err(|_| 6)? == Some(4242), 7)
        }
        "enosys" => {
            load(json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": ["exit_group", "getpid"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["pidfd_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EXDEV},
                ]
            }))?;
            check(std::process::id() > 0, 1)?;
            let me = rustix::process::getpid();
            check(
                rust_err(rustix::process::pidfd_open(
                    me,
                    rustix::process::PidfdFlags::empty(),
                )) == Some(libc::EXDEV),
                2,
            )?;
            // close_range (436) is above pidfd_open (434): unknown to the
            // profile, so ENOSYS rather than the default EPERM.
            check(
                os_err(bulkhead_sys::cloexec_from(1000)) == Some(libc::ENOSYS),
                3,
            )?;
            check(
                os_err(bulkhead_sys::personality(0xffff_ffff)) == Some(libc::EPERM),
                4,
            )
        }
        "enosys_kill_default" => {
            load(json!({
                "defaultAction": "SCMP_ACT_KILL_PROCESS",
                "syscalls": [{"names": ["exit_group", "getpid", "pidfd_open"], "action": "SCMP_ACT_ALLOW"}]
            }))?;
            check(
                os_err(bulkhead_sys::cloexec_from(1000)) == Some(libc::ENOSYS),
                1,
            )
        }
        "tsync_flags" => {
            // A thread that exists before the load gets the filter too.
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || {
                rx.recv().unwrap();
                os_err(bulkhead_sys::getcwd_bytes())
            });
            let (c, fd) = load(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]
            }))?;
            check(
                c.flags == flag::TSYNC | flag::LOG | flag::SPEC_ALLOW && fd.is_none(),
                1,
            )?;
            tx.send(()).map_err(|_| 2)?;
            check(t.join().map_err(|_| 3)? == Some(libc::EACCES), 4)
        }
        "long_allowlist" => {
            // Everything up to pidfd_open except getcwd: the test binary
            // keeps working (threads, allocation) under a long filter.
            let limit = ScmpSyscall::from_name("pidfd_open")
                .unwrap()
                .as_raw_syscall();
            let rules: Vec<_> = native_names(limit)
                .into_iter()
                .filter(|(_, n)| n != "getcwd")
                .map(|(_, n)| json!({"names": [n], "action": "SCMP_ACT_ALLOW"}))
                .collect();
            load(
                json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": libc::EXDEV, "syscalls": rules}),
            )?;
            check(os_err(bulkhead_sys::getcwd_bytes()) == Some(libc::EXDEV), 1)?;
            let t = std::thread::spawn(|| vec![7u8; 1 << 20].len());
            check(t.join().map_err(|_| 2)? == 1 << 20, 3)?;
            check(
                os_err(bulkhead_sys::cloexec_from(1000)) == Some(libc::ENOSYS),
                4,
            )
        }
        _ => Err(99),
    }
}

#[test]
fn kernel_errno_rule() {
    assert_child_ok("getcwd_eacces");
}

#[test]
fn kernel_arg_filter() {
    assert_child_ok("personality_arg");
}

#[test]
fn kernel_args_on_one_rule_are_and() {
    assert_child_ok("args_and");
}

#[test]
fn kernel_operators() {
    assert_child_ok("operators");
}

#[test]
fn kernel_kill_process_is_sigsys() {
    use std::os::unix::process::ExitStatusExt;
    let st = in_child("kill_process");
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st}");
}

#[test]
fn kernel_notify_listener() {
    assert_child_ok("notify");
}

#[test]
fn kernel_enosys_stub() {
    assert_child_ok("enosys");
}

#[test]
fn kernel_enosys_stub_with_kill_default() {
    assert_child_ok("enosys_kill_default");
}

#[test]
fn kernel_long_allowlist() {
    assert_child_ok("long_allowlist");
}

#[test]
fn kernel_tsync_and_flags() {
    assert_child_ok("tsync_flags");
}
