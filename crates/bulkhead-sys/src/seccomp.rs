//! `seccomp(2)`: installing a compiled classic-BPF program and asking the
//! kernel which filter flags and return actions it understands.
//!
//! The program itself is produced elsewhere (bulkhead-seccomp); here it is
//! only a byte string of `struct sock_filter` entries in host byte order.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// `SECCOMP_FILTER_FLAG_*` bits for the `flags` argument of [`load_filter`].
pub mod flag {
    pub const TSYNC: u32 = 1 << 0;
    pub const LOG: u32 = 1 << 1;
    pub const SPEC_ALLOW: u32 = 1 << 2;
    pub const NEW_LISTENER: u32 = 1 << 3;
    pub const TSYNC_ESRCH: u32 = 1 << 4;
    pub const WAIT_KILLABLE_RECV: u32 = 1 << 5;
}

/// Size of one `struct sock_filter` (u16 code, u8 jt, u8 jf, u32 k).
pub const INSN_LEN: usize = 8;

/// The kernel's `BPF_MAXINSNS`: longest program a single filter may have.
pub const MAX_INSNS: usize = 4096;

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_GET_ACTION_AVAIL: libc::c_uint = 2;

/// Decode the byte string into properly aligned `sock_filter` entries.
fn decode(bpf: &[u8]) -> io::Result<Vec<libc::sock_filter>> {
    if bpf.is_empty() || !bpf.len().is_multiple_of(INSN_LEN) || bpf.len() / INSN_LEN > MAX_INSNS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(bpf
        .chunks_exact(INSN_LEN)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

fn raw_seccomp(op: libc::c_uint, flags: libc::c_uint, arg: *const libc::c_void) -> libc::c_long {
    // SAFETY: seccomp(2) only reads `arg` (a sock_fprog or a u32, or NULL for
    // probing, where the kernel answers EFAULT); callers pass pointers to
    // values that live across the call.
    unsafe { libc::syscall(libc::SYS_seccomp, op, flags, arg) }
}

/// Load a compiled program with `seccomp(SECCOMP_SET_MODE_FILTER, flags,
/// &prog)`; returns the notify listener fd when `flags` contain
/// [`flag::NEW_LISTENER`].
///
/// The caller must already have set no_new_privs or hold CAP_SYS_ADMIN, or
/// the kernel answers EACCES. Without [`flag::TSYNC`] the filter applies to
/// the calling thread only (and to the children it creates afterwards).
pub fn load_filter(bpf: &[u8], flags: u32) -> io::Result<Option<OwnedFd>> {
    let insns = decode(bpf)?;
    let prog = libc::sock_fprog {
        len: insns.len() as libc::c_ushort,
        filter: insns.as_ptr() as *mut libc::sock_filter,
    };
    let ret = raw_seccomp(
        SECCOMP_SET_MODE_FILTER,
        flags,
        &prog as *const libc::sock_fprog as *const libc::c_void,
    );
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(insns);
    if flags & flag::NEW_LISTENER != 0 {
        // SAFETY: with NEW_LISTENER a successful call returns a new fd that
        // nothing else owns yet.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
    } else {
        Ok(None)
    }
}

/// Whether the running kernel accepts this combination of filter flags.
///
/// Probes with a NULL program: the kernel checks the flags first (EINVAL for
/// unknown or contradictory ones) and only then reads the program (EFAULT),
/// so nothing is ever installed.
pub fn filter_flags_supported(flags: u32) -> bool {
    let ret = raw_seccomp(SECCOMP_SET_MODE_FILTER, flags, std::ptr::null());
    ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// Whether the running kernel knows the `SECCOMP_RET_*` action `action`
/// (`SECCOMP_GET_ACTION_AVAIL`).
pub fn action_available(action: u32) -> bool {
    raw_seccomp(
        SECCOMP_GET_ACTION_AVAIL,
        0,
        &action as *const u32 as *const libc::c_void,
    ) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&code.to_ne_bytes());
        b[2] = jt;
        b[3] = jf;
        b[4..8].copy_from_slice(&k.to_ne_bytes());
        b
    }

    /// `if nr == sysno { return ret } else { allow }`.
    fn one_rule(sysno: libc::c_long, ret: u32) -> Vec<u8> {
        [
            insn(LD_W_ABS, 0, 0, 0),
            insn(JEQ_K, 0, 1, sysno as u32),
            insn(RET_K, 0, 0, ret),
            insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ]
        .concat()
    }

    /// Run `f` in a forked child after setting no_new_privs; returns the
    /// child's exit status (the child exits with `f`'s return value).
    fn in_child(f: impl FnOnce() -> i32) -> crate::ExitStatus {
        // SAFETY: the child only makes raw syscalls and small allocations
        // (glibc resets its malloc locks in the child) before `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
        if pid == 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            if r != 0 {
                crate::exit_now(100);
            }
            crate::exit_now(f());
        }
        crate::wait_exit(pid).unwrap()
    }

    #[test]
    fn errno_rule_applies_in_child() {
        let prog = one_rule(
            libc::SYS_getcwd,
            libc::SECCOMP_RET_ERRNO | libc::EACCES as u32,
        );
        let st = in_child(|| {
            if load_filter(&prog, 0).is_err() {
                return 1;
            }
            match crate::getcwd_bytes() {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                _ => return 2,
            }
            // SAFETY: getpid cannot fail.
            if unsafe { libc::getpid() } <= 0 {
                return 3;
            }
            0
        });
        assert_eq!(st, crate::ExitStatus::Exited(0));
    }

    #[test]
    fn new_listener_returns_fd() {
        let prog = one_rule(libc::SYS_getppid, libc::SECCOMP_RET_USER_NOTIF);
        let st = in_child(|| match load_filter(&prog, flag::NEW_LISTENER) {
            Ok(Some(fd)) => {
                // SAFETY: F_GETFD on an fd we own.
                if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) } < 0 {
                    return 2;
                }
                0
            }
            Ok(None) => 3,
            Err(_) => 1,
        });
        assert_eq!(st, crate::ExitStatus::Exited(0));
    }

    #[test]
    fn without_listener_flag_no_fd() {
        let prog = one_rule(libc::SYS_getppid, libc::SECCOMP_RET_ERRNO | 1);
        let st = in_child(|| match load_filter(&prog, 0) {
            Ok(None) => 0,
            Ok(Some(_)) => 2,
            Err(_) => 1,
        });
        assert_eq!(st, crate::ExitStatus::Exited(0));
    }

    #[test]
    fn malformed_programs_rejected_before_the_kernel() {
        for bad in [
            &[][..],
            &[0u8; 7][..],
            &vec![0u8; (MAX_INSNS + 1) * INSN_LEN][..],
        ] {
            let e = load_filter(bad, 0).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn probes() {
        assert!(filter_flags_supported(0));
        assert!(filter_flags_supported(flag::TSYNC));
        assert!(!filter_flags_supported(1 << 31));
        // WAIT_KILLABLE_RECV alone is refused by kernels that know it.
        assert!(!filter_flags_supported(flag::WAIT_KILLABLE_RECV));
        assert!(action_available(libc::SECCOMP_RET_ALLOW));
        assert!(action_available(libc::SECCOMP_RET_KILL_PROCESS));
        assert!(!action_available(0x7ff8_0000));
    }
}
