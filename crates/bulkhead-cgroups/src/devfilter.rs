//! `linux.resources.devices` as a cgroup2 device program: the eBPF
//! instructions of a `BPF_PROG_TYPE_CGROUP_DEVICE` program, generated here
//! without libbpf or a compiler. Loading and attaching is done by
//! `bulkhead_sys::bpf`.
//!
//! The kernel runs the program on every device access by a task of the
//! cgroup (open, mknod) with a pointer to
//!
//! ```text
//! struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; };
//! ```
//!
//! where `access_type` is `(access << 16) | type`, type 1 = block,
//! 2 = char, access bits 1 = mknod, 2 = read, 4 = write. A return value of
//! 1 allows the access, 0 denies it (EPERM).
//!
//! Semantics (those of the OCI rule list as a v1 device cgroup reads it, and
//! as runc and crun emulate it): the last rule that matches decides; when no
//! rule matches, access is denied (the v1 path starts with `devices.deny a`
//! too). A rule matches when its type is `a` or the device's type (`u` is a
//! char device), its major and minor are absent/negative (any) or equal, and
//! the access asked for is a subset of the rule's (`rwm` when absent).
//!
//! The generated code walks the rules from last to first, one block per
//! rule: the fields that must match are folded without branches into a
//! scratch register (`type ^ t | major ^ M | minor ^ m | access & ~a`, zero
//! when the rule matches), then one conditional jump past `r0 = allow;
//! exit`. A run of neighbouring rules that differ only in a minor below 32
//! (the standard nodes 1:3, 1:5, ... all allowed alike) is one block that
//! tests the minor against a bit mask. A rule that matches everything ends
//! the program (anything after it could never run, and the verifier refuses
//! unreachable code); otherwise the program ends with `r0 = 0; exit`.
//!
//! Why this shape: the verifier walks every branch, and a register compared
//! by a jump carries what the jump taught it (`type == 2`) into the next
//! rule, so states stop matching and each rule is verified again for every
//! way of reaching it (quadratic: 300 µs for the 13 rules of a default
//! container, over 1 ms for 30). The input registers here are never
//! compared, the scratch registers are dead at each block's start, and a
//! block has a single branch: every path into a block is the same state and
//! the verifier prunes it, so loading costs a few µs per block.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::CgroupError;
use crate::resources::invalid;

/// `BPF_DEVCG_DEV_BLOCK`.
pub const DEV_BLOCK: u32 = 1;
/// `BPF_DEVCG_DEV_CHAR`.
pub const DEV_CHAR: u32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`.
pub const ACC_MKNOD: u32 = 1;
/// `BPF_DEVCG_ACC_READ`.
pub const ACC_READ: u32 = 2;
/// `BPF_DEVCG_ACC_WRITE`.
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes the kernel reads, in host byte order (the register
    /// nibbles are a bitfield whose order follows the byte order).
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0xf)
        } else {
            (self.dst << 4) | (self.src & 0xf)
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

impl Insn {
    /// The inverse of [`Insn::to_bytes`]: one instruction as the kernel
    /// stores it (e.g. read back with `bulkhead_sys::bpf::prog_xlated`).
    pub fn from_bytes(b: [u8; 8]) -> Insn {
        let (dst, src) = if cfg!(target_endian = "little") {
            (b[1] & 0xf, b[1] >> 4)
        } else {
            (b[1] >> 4, b[1] & 0xf)
        };
        Insn {
            code: b[0],
            dst,
            src,
            off: i16::from_ne_bytes([b[2], b[3]]),
            imm: i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Concatenated [`Insn::to_bytes`], as `bulkhead_sys::bpf` loads it.
pub fn encode(prog: &[Insn]) -> Vec<u8> {
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

/// Opcodes (class | op | source) of the instructions the generator uses.
pub(crate) mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W` (`BPF_W` is 0): `dst = *(u32 *)(src + off)`.
    pub const LDX_W: u8 = 0x01 | 0x60;
    /// `BPF_ALU | BPF_AND | BPF_K`: `w_dst &= imm` (upper half zeroed).
    pub const AND32_K: u8 = 0x04 | 0x50;
    /// `BPF_ALU | BPF_RSH | BPF_K`: `w_dst >>= imm`.
    pub const RSH32_K: u8 = 0x04 | 0x70;
    /// `BPF_ALU | BPF_OR | BPF_X`: `w_dst |= w_src`.
    pub const OR32_X: u8 = 0x04 | 0x40 | 0x08;
    /// `BPF_ALU | BPF_RSH | BPF_X`: `w_dst >>= w_src` (the amount taken mod 32).
    pub const RSH32_X: u8 = 0x04 | 0x70 | 0x08;
    /// `BPF_ALU | BPF_XOR | BPF_K`: `w_dst ^= imm`.
    pub const XOR32_K: u8 = 0x04 | 0xa0;
    /// `BPF_ALU | BPF_MOV | BPF_K`: `w_dst = imm` (upper half zeroed).
    pub const MOV32_K: u8 = 0x04 | 0xb0;
    /// `BPF_ALU | BPF_MOV | BPF_X`: `w_dst = w_src` (upper half zeroed).
    pub const MOV32_X: u8 = 0x04 | 0xb0 | 0x08;
    /// `BPF_ALU64 | BPF_MOV | BPF_K`: `dst = imm`.
    pub const MOV64_K: u8 = 0x07 | 0xb0;
    /// `BPF_JMP32 | BPF_JNE | BPF_K`: `if w_dst != imm goto +off`.
    pub const JNE32_K: u8 = 0x06 | 0x50;
    /// `BPF_JMP | BPF_EXIT`.
    pub const EXIT: u8 = 0x05 | 0x90;
}

// Registers: r1 holds the context on entry, r0 the return value.
const R0: u8 = 0;
const R1: u8 = 1;
/// Access bits the device is opened with.
const R_ACCESS: u8 = 2;
/// Device type.
const R_TYPE: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;
/// Scratch: non-zero when the block's rule does not match.
const R_MISS: u8 = 6;
/// Scratch: one term of [`R_MISS`].
const R_TERM: u8 = 7;
/// Scratch: a shift amount.
const R_SHIFT: u8 = 8;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// A device rule reduced to what the program compares; `None` is "any".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub typ: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits, never 0.
    pub access: u32,
}

impl Rule {
    /// Whether the rule matches every access to every device.
    fn matches_all(&self) -> bool {
        self.typ.is_none() && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }
}

/// Check one OCI rule and reduce it: type `p` is refused (fifos are not
/// devices the cgroup controls), access may only hold `r`, `w` and `m`
/// (absent or empty: `rwm`), major and minor must fit the kernel's 32-bit
/// numbers (negative: any).
pub(crate) fn parse_rule(rule: &LinuxDeviceCgroup) -> Result<Rule, String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DEV_BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
        LinuxDeviceType::P => return Err("type \"p\" (fifo) cannot be controlled".into()),
    };
    let num = |what: &str, n: Option<i64>| match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| format!("{what} {n} is out of range (at most {})", u32::MAX)),
    };
    let mut access = 0;
    match rule.access().as_deref() {
        None | Some("") => access = ACC_ALL,
        Some(a) => {
            for c in a.chars() {
                access |= match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => {
                        return Err(format!("invalid access {a:?}: only r, w and m are allowed"));
                    }
                };
            }
        }
    }
    Ok(Rule {
        allow: rule.allow(),
        typ,
        major: num("major", rule.major())?,
        minor: num("minor", rule.minor())?,
        access,
    })
}

/// The program for `rules` (see the module docs). Errors name the rule
/// (`linux.resources.devices[i]`).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let parsed = rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            parse_rule(r).map_err(|e| invalid(format!("linux.resources.devices[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(generate(&parsed))
}

/// What a block compares the minor with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Minor {
    Any,
    One(u32),
    /// Bit `m` set for every minor `m` (all below 32) the block matches.
    Mask(u32),
}

/// One block of the program: a rule, or a run of rules merged by minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    allow: bool,
    typ: Option<u32>,
    major: Option<u32>,
    minor: Minor,
    access: u32,
}

impl Block {
    fn of(r: &Rule) -> Block {
        Block {
            allow: r.allow,
            typ: r.typ,
            major: r.major,
            minor: r.minor.map_or(Minor::Any, Minor::One),
            access: r.access,
        }
    }

    /// Take `r` into this block when both have the same verdict, type,
    /// major and access, and each names one minor below 32. Which of two
    /// neighbours with the same verdict matches first does not matter, so
    /// the merged block decides as the rules did.
    fn absorb(&mut self, r: &Rule) -> bool {
        let bit = |m: Minor| match m {
            Minor::One(m) if m < 32 => Some(1u32 << m),
            Minor::Mask(b) => Some(b),
            _ => None,
        };
        let (Some(mine), Some(theirs)) =
            (bit(self.minor), r.minor.and_then(|m| bit(Minor::One(m))))
        else {
            return false;
        };
        let same = self.allow == r.allow
            && self.typ.is_some()
            && self.typ == r.typ
            && self.major.is_some()
            && self.major == r.major
            && self.access == r.access;
        if same {
            self.minor = Minor::Mask(mine | theirs);
        }
        same
    }

    /// Instructions leaving in [`R_MISS`] a value that is zero exactly when
    /// the block matches; empty when it matches every device (then only
    /// the access can differ, and that is a term too unless it is `rwm`).
    fn miss(&self) -> Vec<Insn> {
        let mut p = Vec::new();
        let term = |p: &mut Vec<Insn>, mut code: Vec<Insn>| {
            if p.is_empty() {
                // The first term is computed straight into R_MISS.
                for i in &mut code {
                    for r in [&mut i.dst, &mut i.src] {
                        if *r == R_TERM {
                            *r = R_MISS;
                        }
                    }
                }
                p.extend(code);
            } else {
                p.extend(code);
                p.push(ins(op::OR32_X, R_MISS, R_TERM, 0, 0));
            }
        };
        let differs = |reg: u8, v: u32| {
            vec![
                ins(op::MOV32_X, R_TERM, reg, 0, 0),
                ins(op::XOR32_K, R_TERM, 0, 0, v as i32),
            ]
        };
        if let Some(t) = self.typ {
            term(&mut p, differs(R_TYPE, t));
        }
        if self.access != ACC_ALL {
            // Any requested bit outside the rule's access.
            term(
                &mut p,
                vec![
                    ins(op::MOV32_X, R_TERM, R_ACCESS, 0, 0),
                    ins(op::AND32_K, R_TERM, 0, 0, (!self.access & ACC_ALL) as i32),
                ],
            );
        }
        if let Some(m) = self.major {
            term(&mut p, differs(R_MAJOR, m));
        }
        match self.minor {
            Minor::Any => {}
            Minor::One(m) => term(&mut p, differs(R_MINOR, m)),
            Minor::Mask(mask) => {
                // Minors of 32 and above are outside the mask.
                term(
                    &mut p,
                    vec![
                        ins(op::MOV32_X, R_TERM, R_MINOR, 0, 0),
                        ins(op::RSH32_K, R_TERM, 0, 0, 5),
                    ],
                );
                // !((mask >> (minor & 31)) & 1)
                term(
                    &mut p,
                    vec![
                        ins(op::MOV32_X, R_SHIFT, R_MINOR, 0, 0),
                        ins(op::AND32_K, R_SHIFT, 0, 0, 31),
                        ins(op::MOV32_K, R_TERM, 0, 0, mask as i32),
                        ins(op::RSH32_X, R_TERM, R_SHIFT, 0, 0),
                        ins(op::AND32_K, R_TERM, 0, 0, 1),
                        ins(op::XOR32_K, R_TERM, 0, 0, 1),
                    ],
                );
            }
        }
        p
    }
}

pub(crate) fn generate(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        ins(op::LDX_W, R_TYPE, R1, 0, 0),
        ins(op::AND32_K, R_TYPE, 0, 0, 0xffff),
        ins(op::LDX_W, R_ACCESS, R1, 0, 0),
        ins(op::RSH32_K, R_ACCESS, 0, 0, 16),
        ins(op::LDX_W, R_MAJOR, R1, 4, 0),
        ins(op::LDX_W, R_MINOR, R1, 8, 0),
    ];
    // Last rule first; a rule matching everything ends the walk.
    let mut blocks: Vec<Block> = Vec::new();
    let mut ends = false;
    for rule in rules.iter().rev() {
        if rule.matches_all() {
            blocks.push(Block::of(rule));
            ends = true;
            break;
        }
        if !blocks.last_mut().is_some_and(|b| b.absorb(rule)) {
            blocks.push(Block::of(rule));
        }
    }
    for b in &blocks {
        let miss = b.miss();
        if !miss.is_empty() {
            p.extend(miss);
            // Not matched: skip the two-instruction verdict.
            p.push(ins(op::JNE32_K, R_MISS, 0, 2, 0));
        }
        p.push(ins(op::MOV64_K, R0, 0, 0, i32::from(b.allow)));
        p.push(ins(op::EXIT, 0, 0, 0, 0));
    }
    if !ends {
        p.push(ins(op::MOV64_K, R0, 0, 0, 0));
        p.push(ins(op::EXIT, 0, 0, 0, 0));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// A tiny interpreter for exactly the instructions the generator
    /// emits, with the checks the kernel's verifier would make on them:
    /// jumps forward and in range, r0 written before exit, the context
    /// read only as u32 at offsets 0, 4, 8, no unknown opcode.
    fn run(prog: &[Insn], ctx: [u32; 3]) -> u64 {
        let mut reg = [0u64; 11];
        let mut init = [false; 11];
        init[1] = true;
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps <= prog.len(), "program loops");
            let i = *prog.get(pc).expect("fell off the end of the program");
            let (d, s) = (i.dst as usize, i.src as usize);
            assert!(d < 11 && s < 11);
            let mut next = pc + 1;
            let jump = |cond: bool| -> usize {
                assert!(i.off >= 0, "backward jump at {pc}");
                let t = pc + 1 + i.off as usize;
                assert!(t < prog.len(), "jump out of range at {pc}");
                if cond { t } else { pc + 1 }
            };
            match i.code {
                op::LDX_W => {
                    assert_eq!(s, 1, "load from something else than the context");
                    assert!(matches!(i.off, 0 | 4 | 8), "bad context offset {}", i.off);
                    reg[d] = u64::from(ctx[i.off as usize / 4]);
                    init[d] = true;
                }
                op::AND32_K => {
                    assert!(init[d]);
                    reg[d] = u64::from(reg[d] as u32 & i.imm as u32);
                }
                op::RSH32_K => {
                    assert!(init[d]);
                    reg[d] = u64::from((reg[d] as u32) >> (i.imm as u32));
                }
                op::MOV64_K => {
                    reg[d] = i.imm as i64 as u64;
                    init[d] = true;
                }
                op::MOV32_K => {
                    reg[d] = u64::from(i.imm as u32);
                    init[d] = true;
                }
                op::MOV32_X => {
                    assert!(init[s], "read of an unset register at {pc}");
                    reg[d] = u64::from(reg[s] as u32);
                    init[d] = true;
                }
                op::XOR32_K => {
                    assert!(init[d]);
                    reg[d] = u64::from(reg[d] as u32 ^ i.imm as u32);
                }
                op::OR32_X => {
                    assert!(init[d] && init[s]);
                    reg[d] = u64::from(reg[d] as u32 | reg[s] as u32);
                }
                op::RSH32_X => {
                    assert!(init[d] && init[s]);
                    // The kernel takes the amount mod 32; the generator
                    // masks it first, so anything larger is a bug here.
                    assert!(reg[s] < 32, "unmasked shift amount at {pc}");
                    reg[d] = u64::from((reg[d] as u32) >> reg[s]);
                }
                op::JNE32_K => {
                    assert!(init[d]);
                    next = jump(reg[d] as u32 != i.imm as u32);
                }
                op::EXIT => {
                    assert!(init[0], "exit without a return value");
                    return reg[0];
                }
                c => panic!("unknown opcode {c:#x} at {pc}"),
            }
            pc = next;
        }
    }

    /// Every instruction can be reached (the verifier refuses dead code).
    fn all_reachable(prog: &[Insn]) -> bool {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            let i = prog[pc];
            match i.code {
                op::EXIT => {}
                op::JNE32_K => {
                    todo.push(pc + 1);
                    todo.push(pc + 1 + i.off as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        seen.iter().all(|&s| s)
    }

    /// The rule list read directly: last match wins, default deny.
    fn reference(rules: &[Rule], typ: u32, major: u32, minor: u32, access: u32) -> bool {
        for r in rules.iter().rev() {
            let hit = r.typ.is_none_or(|t| t == typ)
                && r.major.is_none_or(|m| m == major)
                && r.minor.is_none_or(|m| m == minor)
                && access & !r.access == 0;
            if hit {
                return r.allow;
            }
        }
        false
    }

    fn ctx(typ: u32, major: u32, minor: u32, access: u32) -> [u32; 3] {
        [(access << 16) | typ, major, minor]
    }

    fn oci(
        allow: bool,
        typ: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    const MAJORS: [u32; 7] = [0, 1, 5, 136, 4095, 0x8000_0000, u32::MAX];
    const MINORS: [u32; 10] = [0, 3, 5, 9, 31, 32, 35, 255, 0xfffff, u32::MAX];

    /// Every (type, major, minor, access) of the grid gives the reference
    /// verdict.
    fn check(rules: &[Rule]) {
        let prog = generate(rules);
        assert!(all_reachable(&prog), "dead code for {rules:?}");
        for typ in [DEV_BLOCK, DEV_CHAR] {
            for major in MAJORS {
                for minor in MINORS {
                    for access in 1..=ACC_ALL {
                        let want = reference(rules, typ, major, minor, access);
                        let got = run(&prog, ctx(typ, major, minor, access));
                        assert_eq!(
                            got,
                            u64::from(want),
                            "type {typ} {major}:{minor} access {access:#b} with {rules:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn runtime_default_list() {
        use LinuxDeviceType::*;
        // A container's usual list: deny all, the runtime's defaults, one
        // explicit device, and a late deny that must win over an allow.
        let mut rules = vec![oci(false, A, None, None, "rwm")];
        rules.push(oci(true, C, None, None, "m"));
        rules.push(oci(true, B, None, None, "m"));
        for (ma, mi) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            rules.push(oci(true, C, Some(ma), Some(mi), "rwm"));
        }
        rules.push(oci(true, C, Some(136), None, "rwm"));
        rules.push(oci(true, B, Some(8), Some(0), "r"));
        rules.push(oci(false, C, Some(1), Some(9), "w"));
        let prog = program(&rules).unwrap();
        let parsed: Vec<Rule> = rules.iter().map(|r| parse_rule(r).unwrap()).collect();
        check(&parsed);

        let verdict = |t, ma, mi, acc| run(&prog, ctx(t, ma, mi, acc));
        assert_eq!(verdict(DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE), 1); // /dev/null
        assert_eq!(verdict(DEV_CHAR, 1, 9, ACC_READ), 1); // /dev/urandom read
        assert_eq!(verdict(DEV_CHAR, 1, 9, ACC_WRITE), 0); // ... write denied later
        assert_eq!(verdict(DEV_CHAR, 136, 4, ACC_READ), 1); // a pty
        assert_eq!(verdict(DEV_BLOCK, 8, 0, ACC_READ), 1);
        assert_eq!(verdict(DEV_BLOCK, 8, 0, ACC_WRITE), 0);
        assert_eq!(verdict(DEV_BLOCK, 8, 1, ACC_MKNOD), 1); // mknod of anything
        assert_eq!(verdict(DEV_BLOCK, 8, 1, ACC_READ), 0);
        assert_eq!(verdict(DEV_CHAR, 10, 200, ACC_READ), 0);
    }

    #[test]
    fn wildcards_and_shortcuts() {
        use LinuxDeviceType::*;
        // Allow-all at the end: one verdict, nothing after it.
        let prog = program(&[
            oci(false, A, None, None, "rwm"),
            oci(true, A, None, None, "rwm"),
        ])
        .unwrap();
        assert_eq!(prog.len(), 6 + 2);
        assert!(all_reachable(&prog));
        // No rules: deny everything.
        let prog = program(&[]).unwrap();
        assert_eq!(run(&prog, ctx(DEV_CHAR, 1, 3, ACC_READ)), 0);
        // Negative numbers and a missing access are wildcards.
        let r = parse_rule(
            &LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .major(-1)
                .build()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            r,
            Rule {
                allow: true,
                typ: None,
                major: None,
                minor: None,
                access: ACC_ALL
            }
        );
        assert!(r.matches_all());
        // `u` is a char device.
        assert_eq!(
            parse_rule(&oci(true, U, Some(4), Some(1), "r"))
                .unwrap()
                .typ,
            Some(DEV_CHAR)
        );
    }

    #[test]
    fn refused_rules_name_the_field() {
        use LinuxDeviceType::*;
        for bad in [
            oci(true, P, None, None, "rwm"),
            oci(true, C, Some(1), Some(3), "rwx"),
            oci(true, C, Some(1 << 32), Some(3), "r"),
            oci(true, C, Some(1), Some(i64::MAX), "r"),
        ] {
            let msg = program(&[oci(false, A, None, None, "rwm"), bad])
                .unwrap_err()
                .to_string();
            assert!(msg.starts_with("linux.resources.devices[1]: "), "{msg}");
        }
    }

    #[test]
    fn encoding() {
        let i = ins(op::JNE32_K, R_MAJOR, 0, 3, 136);
        let b = i.to_bytes();
        assert_eq!(b[0], 0x56);
        if cfg!(target_endian = "little") {
            assert_eq!(b, [0x56, 0x04, 3, 0, 136, 0, 0, 0]);
        }
        assert_eq!(ins(op::LDX_W, R_TYPE, R1, 8, 0).to_bytes()[..4], {
            let mut e = [0x61, 0, 0, 0];
            e[1] = if cfg!(target_endian = "little") {
                0x13
            } else {
                0x31
            };
            e[2..4].copy_from_slice(&8i16.to_ne_bytes());
            e
        });
        assert_eq!(encode(&[i, i]).len(), 16);
        assert_eq!(op::EXIT, 0x95);
        assert_eq!(op::MOV64_K, 0xb7);
        assert_eq!(op::MOV32_X, 0xbc);
        assert_eq!(op::OR32_X, 0x4c);
        assert_eq!(op::RSH32_X, 0x7c);
    }

    /// xorshift64*: deterministic pseudo-random rule lists.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn one_in(&mut self, n: u64) -> bool {
            self.next().is_multiple_of(n)
        }
        fn pick<T: Copy>(&mut self, from: &[T]) -> T {
            from[(self.next() % from.len() as u64) as usize]
        }
    }

    #[test]
    fn random_rule_lists_match_the_reference() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..1500 {
            let n = (rng.next() % 9) as usize;
            let mut rules = Vec::with_capacity(n + 1);
            // Usually the list starts with deny-all, as runtimes send it.
            if !rng.one_in(4) {
                rules.push(Rule {
                    allow: false,
                    typ: None,
                    major: None,
                    minor: None,
                    access: ACC_ALL,
                });
            }
            for _ in 0..n {
                let any = |rng: &mut Rng, v: &[u32]| {
                    if rng.one_in(3) {
                        None
                    } else {
                        Some(rng.pick(v))
                    }
                };
                rules.push(Rule {
                    allow: !rng.one_in(3),
                    typ: any(&mut rng, &[DEV_BLOCK, DEV_CHAR]),
                    major: any(&mut rng, &MAJORS),
                    minor: any(&mut rng, &MINORS),
                    // Mostly full access; every subset appears.
                    access: if rng.one_in(2) {
                        ACC_ALL
                    } else {
                        1 + (rng.next() % 7) as u32
                    },
                });
            }
            check(&rules);
        }
    }

    /// Neighbouring rules that differ in a small minor share a block, and
    /// the merged program still decides like the list (the grid includes
    /// minors 31, 32, 35 around the mask's end).
    #[test]
    fn neighbouring_minors_merge() {
        let branches = |p: &[Insn]| p.iter().filter(|i| i.code == op::JNE32_K).count();
        let char_rule = |allow, major, minor| Rule {
            allow,
            typ: Some(DEV_CHAR),
            major: Some(major),
            minor: Some(minor),
            access: ACC_ALL,
        };
        let deny_all = Rule {
            allow: false,
            typ: None,
            major: None,
            minor: None,
            access: ACC_ALL,
        };
        // deny all, 1:{3,5,7,8,9}, 5:{0,1,2}: one block per major.
        let mut rules = vec![deny_all];
        rules.extend([3, 5, 7, 8, 9].map(|m| char_rule(true, 1, m)));
        rules.extend([0, 1, 2].map(|m| char_rule(true, 5, m)));
        assert_eq!(branches(&generate(&rules)), 2);
        check(&rules);
        // A deny between them splits the run; a minor of 32 is not merged.
        rules.insert(3, char_rule(false, 1, 9));
        rules.push(char_rule(true, 5, 32));
        assert_eq!(branches(&generate(&rules)), 5);
        check(&rules);

        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..1500 {
            let n = 1 + (rng.next() % 10) as usize;
            let mut rules = vec![deny_all];
            for _ in 0..n {
                let mut r = char_rule(!rng.one_in(4), rng.pick(&[1, 5]), rng.pick(&MINORS[..7]));
                if rng.one_in(4) {
                    r.typ = Some(DEV_BLOCK);
                }
                if rng.one_in(4) {
                    r.access = 1 + (rng.next() % 7) as u32;
                }
                rules.push(r);
            }
            check(&rules);
        }
    }
}
