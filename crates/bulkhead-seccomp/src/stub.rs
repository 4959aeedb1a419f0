//! The ENOSYS stub put in front of libseccomp's program.
//!
//! A profile whose default action refuses (ERRNO, KILL, TRAP) would also
//! refuse syscalls newer than the profile itself, and with EPERM or a kill
//! instead of ENOSYS libc cannot tell "not allowed" from "not there" and
//! does not fall back (clone3 → clone, faccessat2 → faccessat, ...). So for
//! each architecture in the filter we take the highest syscall number the
//! profile names and answer ENOSYS for anything above it, before the real
//! filter runs.
//!
//! Layout (all jumps forward, conditional ones at most a few instructions;
//! the final jump into the filter uses `ja` with its 32-bit offset):
//!
//! ```text
//!   ld  [arch]
//!   per architecture:
//!     jeq AUDIT_ARCH, 0, <next architecture>
//!     ld  [nr]
//!     ...compare nr with the highest known number...
//!     ret ERRNO(ENOSYS)
//!     ja  <filter>
//!   <libseccomp's program>
//! ```
//!
//! libseccomp's program reloads what it needs, so the accumulator can be
//! left in any state when we fall through into it.

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// libseccomp's made-up token for x32; the kernel reports x32 syscalls as
/// AUDIT_ARCH_X86_64 with this bit set in the number.
const SCMP_ARCH_X32: u32 = 0x4000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Which numbering a libseccomp architecture uses under its audit arch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
    X32,
}

/// The kernel's AUDIT_ARCH value for a libseccomp arch token.
pub(crate) fn audit_arch(token: u32) -> (u32, Kind) {
    if token == SCMP_ARCH_X32 {
        (AUDIT_ARCH_X86_64, Kind::X32)
    } else {
        // Every other SCMP_ARCH_* token is the AUDIT_ARCH_* value itself.
        (token, Kind::Plain)
    }
}

/// Highest known syscall numbers for one audit architecture.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    pub audit: u32,
    /// For the arch's own numbering.
    pub max: Option<u32>,
    /// For x32 numbers (with the x32 bit) under AUDIT_ARCH_X86_64.
    pub x32: Option<u32>,
    /// s390(x): unknown "large" syscalls arrive as number 0 (the old
    /// multiplexer), which must get ENOSYS as well.
    pub multiplexed_zero: bool,
}

#[derive(Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
    /// `ja` whose offset is filled in to land on the first filter insn.
    to_filter: bool,
}

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn {
        code,
        jt,
        jf,
        k,
        to_filter: false,
    }
}

const TO_FILTER: Insn = Insn {
    code: JA,
    jt: 0,
    jf: 0,
    k: 0,
    to_filter: true,
};
const ENOSYS: Insn = op(RET_K, 0, 0, RET_ENOSYS);

/// The comparisons after `ld [nr]`, ending in `ret ENOSYS; ja filter`.
fn body(l: &Limit) -> Option<Vec<Insn>> {
    let x86 = l.audit == AUDIT_ARCH_X86_64;
    let mut b = Vec::new();
    match (l.max, l.x32) {
        (Some(max), Some(x32)) if x86 => {
            b.push(op(JSET_K, 0, 1, X32_SYSCALL_BIT));
            b.push(op(JGT_K, 1, 2, x32));
            b.push(op(JGT_K, 0, 1, max));
        }
        (Some(max), None) => {
            if x86 {
                // x32 calls are libseccomp's business (bad arch action).
                b.push(op(JSET_K, 2, 0, X32_SYSCALL_BIT));
            } else if l.multiplexed_zero {
                b.push(op(JEQ_K, 1, 0, 0));
            }
            b.push(op(JGT_K, 0, 1, max));
        }
        (None, Some(x32)) if x86 => {
            b.push(op(JSET_K, 0, 2, X32_SYSCALL_BIT));
            b.push(op(JGT_K, 0, 1, x32));
        }
        _ => return None,
    }
    b.push(ENOSYS);
    b.push(TO_FILTER);
    Some(b)
}

/// Encode as `struct sock_filter` entries in host byte order.
fn encode(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for (i, ins) in insns.iter().enumerate() {
        let k = if ins.to_filter {
            (insns.len() - i - 1) as u32
        } else {
            ins.k
        };
        out.extend_from_slice(&ins.code.to_ne_bytes());
        out.push(ins.jt);
        out.push(ins.jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    out
}

/// The stub for these architectures, or nothing if none has a limit.
pub(crate) fn generate<'a>(limits: impl IntoIterator<Item = &'a Limit>) -> Vec<u8> {
    let mut insns = vec![op(LD_W_ABS, 0, 0, OFF_ARCH)];
    for l in limits {
        let Some(b) = body(l) else { continue };
        // Skip the load and the body when the arch differs.
        insns.push(op(JEQ_K, 0, (b.len() + 1) as u8, l.audit));
        insns.push(op(LD_W_ABS, 0, 0, OFF_NR));
        insns.extend(b);
    }
    if insns.len() == 1 {
        return Vec::new();
    }
    encode(&insns)
}
