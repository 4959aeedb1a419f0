//! Which devices a container may open or create, decided the way the
//! kernel decides: by the cgroup v1 `devices.list` (an allowlist) and by
//! every cgroup v2 device program that runs for the process's cgroup
//! (`BPF_PROG_TYPE_CGROUP_DEVICE`; all must allow). A program is evaluated
//! with a small interpreter of the eBPF subset such programs use (context
//! loads, ALU, conditional jumps, exit) on a fixed set of probe devices,
//! so programs made by any runtime (bulkhead, runc, crun, systemd) are
//! judged by what they do, not by who made them.

use bulkhead_cgroups::devfilter::{ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR, Insn};
use serde::Serialize;

/// What failed while reading or evaluating a device program.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DevProgError {
    #[error("program {id}: instruction {pc}: unsupported opcode {code:#04x}")]
    Opcode { id: u32, pc: usize, code: u8 },
    #[error("program {id}: instruction {pc}: {what}")]
    Invalid { id: u32, pc: usize, what: String },
    #[error("program {id}: more than {max} steps")]
    TooLong { id: u32, max: usize },
}

/// One device access checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceCheck {
    /// `/dev/mem`, or "any char device" for the wildcard probes.
    pub device: String,
    /// As a device rule: `c 1:1 rw`, `b *:* m`.
    pub rule: String,
    pub allowed: bool,
}

/// The device cgroup's verdict on the probe devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct DeviceAccess {
    /// Who decides, e.g. "cgroup v1 devices.list", "cgroup v2 device
    /// programs 12, 13" (both when both apply).
    pub by: String,
    pub checks: Vec<DeviceCheck>,
}

impl DeviceAccess {
    pub fn allows(&self, device: &str) -> bool {
        self.checks.iter().any(|c| c.device == device && c.allowed)
    }
}

/// `(device, kind, major, minor, access)`; None = any number.
type Probe = (&'static str, char, Option<u32>, Option<u32>, u32);

const RW: u32 = ACC_READ | ACC_WRITE;
const RWM: u32 = RW | ACC_MKNOD;

/// The devices every audit asks about.
pub const PROBES: &[Probe] = &[
    ("/dev/mem", 'c', Some(1), Some(1), RW),
    ("/dev/kmem", 'c', Some(1), Some(2), RW),
    ("/dev/port", 'c', Some(1), Some(4), RW),
    ("/dev/sda", 'b', Some(8), Some(0), RW),
    ("/dev/kmsg", 'c', Some(1), Some(11), RW),
    ("/dev/fuse", 'c', Some(10), Some(229), RW),
    ("mknod of any char device", 'c', None, None, ACC_MKNOD),
    ("mknod of any block device", 'b', None, None, ACC_MKNOD),
    ("any char device", 'c', None, None, RWM),
    ("any block device", 'b', None, None, RWM),
];

/// Numbers standing for "any": a wildcard probe is allowed only if all of
/// these are (a rule for one specific device does not make it "any").
const SAMPLES: &[(u32, u32)] = &[(1, 1), (8, 0), (250, 7), (4094, 1_048_575)];

fn access_text(a: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn num_text(n: Option<u32>) -> String {
    n.map_or("*".into(), |n| n.to_string())
}

/// Runs `decide(kind, major, minor, access)` on every probe (wildcards on
/// every sample). `decide` returns None when it cannot tell: then so does
/// this.
pub fn check(
    by: String,
    mut decide: impl FnMut(char, u32, u32, u32) -> Option<bool>,
) -> Option<DeviceAccess> {
    let mut checks = Vec::new();
    for &(device, kind, major, minor, access) in PROBES {
        let allowed = match (major, minor) {
            (Some(ma), Some(mi)) => decide(kind, ma, mi, access)?,
            _ => {
                let mut all = true;
                for &(ma, mi) in SAMPLES {
                    all &= decide(kind, major.unwrap_or(ma), minor.unwrap_or(mi), access)?;
                }
                all
            }
        };
        checks.push(DeviceCheck {
            device: device.into(),
            rule: format!(
                "{kind} {}:{} {}",
                num_text(major),
                num_text(minor),
                access_text(access)
            ),
            allowed,
        });
    }
    Some(DeviceAccess { by, checks })
}

/// Whether a cgroup v1 `devices.list` (the allowlist the kernel prints:
/// `TYPE MAJOR:MINOR ACCESS`, `*` for any) allows the access.
pub fn v1_allows(list: &str, kind: char, major: u32, minor: u32, access: u32) -> bool {
    list.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let [t, nums, acc] = f[..] else {
            return false;
        };
        let Some((ma, mi)) = nums.split_once(':') else {
            return false;
        };
        let num_ok = |s: &str, n: u32| s == "*" || s.parse::<u32>() == Ok(n);
        let mut bits = 0;
        for c in acc.chars() {
            bits |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            };
        }
        (t == "a" || t.starts_with(kind))
            && num_ok(ma, major)
            && num_ok(mi, minor)
            && access & !bits == 0
    })
}

/// The context a device program sees: `access_type = access << 16 | type`,
/// `major`, `minor` (struct bpf_cgroup_dev_ctx).
pub fn context(kind: char, major: u32, minor: u32, access: u32) -> [u8; 12] {
    let typ = if kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
    let mut c = [0u8; 12];
    c[0..4].copy_from_slice(&((access << 16) | typ).to_ne_bytes());
    c[4..8].copy_from_slice(&major.to_ne_bytes());
    c[8..12].copy_from_slice(&minor.to_ne_bytes());
    c
}

/// The instructions of a program read back from the kernel.
pub fn decode(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Uninit,
    Scalar(u64),
    /// A pointer into the context, at this byte offset.
    Ctx(i64),
}

const MAX_STEPS: usize = 100_000;

/// Runs program `id` on `ctx`; returns its r0 (1 allows, 0 denies).
pub fn run(id: u32, prog: &[Insn], ctx: &[u8; 12]) -> Result<u64, DevProgError> {
    let mut reg = [Val::Uninit; 11];
    reg[1] = Val::Ctx(0);
    let mut pc = 0usize;
    let invalid = |pc: usize, what: &str| DevProgError::Invalid {
        id,
        pc,
        what: what.into(),
    };
    for _ in 0..MAX_STEPS {
        let i = *prog.get(pc).ok_or_else(|| invalid(pc, "past the end"))?;
        let (d, s) = (i.dst as usize, i.src as usize);
        if d > 10 || s > 10 {
            return Err(invalid(pc, "bad register"));
        }
        let scalar = |v: Val| match v {
            Val::Scalar(x) => Ok(x),
            _ => Err(invalid(pc, "not a number")),
        };
        let class = i.code & 0x07;
        let x_src = i.code & 0x08 != 0;
        let op = i.code & 0xf0;
        let mut next = pc + 1;
        match class {
            // BPF_LD | BPF_IMM | BPF_DW: a 64-bit constant in two slots.
            0x00 if i.code == 0x18 && s == 0 => {
                let hi = prog
                    .get(pc + 1)
                    .ok_or_else(|| invalid(pc, "truncated ld_imm64"))?;
                reg[d] = Val::Scalar((i.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32));
                next = pc + 2;
            }
            // BPF_LDX | BPF_MEM: only from the context.
            0x01 if i.code & 0xe0 == 0x60 => {
                let Val::Ctx(base) = reg[s] else {
                    return Err(invalid(pc, "load from something else than the context"));
                };
                let size = match i.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    _ => 8,
                };
                let at = base.saturating_add(i64::from(i.off));
                if at < 0 || at as usize + size > ctx.len() {
                    return Err(invalid(pc, "context access out of range"));
                }
                let mut b = [0u8; 8];
                let at = at as usize;
                if cfg!(target_endian = "little") {
                    b[..size].copy_from_slice(&ctx[at..at + size]);
                    reg[d] = Val::Scalar(u64::from_le_bytes(b));
                } else {
                    b[8 - size..].copy_from_slice(&ctx[at..at + size]);
                    reg[d] = Val::Scalar(u64::from_be_bytes(b));
                }
            }
            // BPF_ALU (32-bit) and BPF_ALU64.
            0x04 | 0x07 => {
                let wide = class == 0x07;
                let src = if x_src {
                    reg[s]
                } else {
                    Val::Scalar(i.imm as i64 as u64)
                };
                // Pointer moves and offsets (r6 = r1; r6 += 4).
                match (op, reg[d], src) {
                    (0xb0, _, Val::Ctx(o)) if wide => {
                        reg[d] = Val::Ctx(o);
                        pc = next;
                        continue;
                    }
                    (0x00 | 0x10, Val::Ctx(o), Val::Scalar(v)) if wide => {
                        // The program is the kernel's, but whoever attached it
                        // chose the offsets: no overflow panics here.
                        let v = v as i64;
                        let o = if op == 0 {
                            o.checked_add(v)
                        } else {
                            o.checked_sub(v)
                        };
                        reg[d] = Val::Ctx(o.ok_or_else(|| invalid(pc, "pointer out of range"))?);
                        pc = next;
                        continue;
                    }
                    _ => {}
                }
                let b = scalar(src)?;
                let a = if op == 0xb0 { 0 } else { scalar(reg[d])? };
                let r = if wide {
                    alu64(op, a, b).ok_or(DevProgError::Opcode {
                        id,
                        pc,
                        code: i.code,
                    })?
                } else {
                    u64::from(alu32(op, a as u32, b as u32).ok_or(DevProgError::Opcode {
                        id,
                        pc,
                        code: i.code,
                    })?)
                };
                reg[d] = Val::Scalar(r);
            }
            // BPF_JMP and BPF_JMP32.
            0x05 | 0x06 => {
                let wide = class == 0x05;
                match op {
                    0x90 if wide => return scalar(reg[0]),
                    0x00 => {
                        // JMP32 | JA ("gotol") takes its offset from imm.
                        let off = if wide {
                            i64::from(i.off)
                        } else {
                            i64::from(i.imm)
                        };
                        next = jump(pc, off, prog.len())
                            .ok_or_else(|| invalid(pc, "jump out of range"))?;
                    }
                    0x10..=0x70 | 0xa0..=0xd0 => {
                        let a = scalar(reg[d])?;
                        let b = if x_src {
                            scalar(reg[s])?
                        } else {
                            i.imm as i64 as u64
                        };
                        let taken = if wide {
                            cmp(op, a, b, a as i64, b as i64)
                        } else {
                            cmp(
                                op,
                                u64::from(a as u32),
                                u64::from(b as u32),
                                i64::from(a as i32),
                                i64::from(b as i32),
                            )
                        }
                        .ok_or(DevProgError::Opcode {
                            id,
                            pc,
                            code: i.code,
                        })?;
                        if taken {
                            next = jump(pc, i64::from(i.off), prog.len())
                                .ok_or_else(|| invalid(pc, "jump out of range"))?;
                        }
                    }
                    // CALL, EXIT in JMP32, and what is not a jump.
                    _ => {
                        return Err(DevProgError::Opcode {
                            id,
                            pc,
                            code: i.code,
                        });
                    }
                }
            }
            _ => {
                return Err(DevProgError::Opcode {
                    id,
                    pc,
                    code: i.code,
                });
            }
        }
        pc = next;
    }
    Err(DevProgError::TooLong { id, max: MAX_STEPS })
}

fn jump(pc: usize, off: i64, len: usize) -> Option<usize> {
    let t = pc as i64 + 1 + off;
    (0..len as i64).contains(&t).then_some(t as usize)
}

fn alu64(op: u8, a: u64, b: u64) -> Option<u64> {
    Some(match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a << (b & 63),
        0x70 => a >> (b & 63),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        0xb0 => b,
        0xc0 => ((a as i64) >> (b & 63)) as u64,
        _ => return None,
    })
}

fn alu32(op: u8, a: u32, b: u32) -> Option<u32> {
    Some(match op {
        0x00 => a.wrapping_add(b),
        0x10 => a.wrapping_sub(b),
        0x20 => a.wrapping_mul(b),
        0x30 => a.checked_div(b).unwrap_or(0),
        0x40 => a | b,
        0x50 => a & b,
        0x60 => a << (b & 31),
        0x70 => a >> (b & 31),
        0x80 => a.wrapping_neg(),
        0x90 => a.checked_rem(b).unwrap_or(a),
        0xa0 => a ^ b,
        0xb0 => b,
        0xc0 => ((a as i32) >> (b & 31)) as u32,
        _ => return None,
    })
}

fn cmp(op: u8, a: u64, b: u64, sa: i64, sb: i64) -> Option<bool> {
    Some(match op {
        0x10 => a == b,
        0x20 => a > b,
        0x30 => a >= b,
        0x40 => a & b != 0,
        0x50 => a != b,
        0x60 => sa > sb,
        0x70 => sa >= sb,
        0xa0 => a < b,
        0xb0 => a <= b,
        0xc0 => sa < sb,
        0xd0 => sa <= sb,
        _ => return None,
    })
}

/// Whether every program allows the access (the kernel's rule for several
/// programs on a cgroup and its ancestors).
pub fn programs_allow(
    progs: &[(u32, Vec<Insn>)],
    kind: char,
    major: u32,
    minor: u32,
    access: u32,
) -> Result<bool, DevProgError> {
    let ctx = context(kind, major, minor, access);
    for (id, p) in progs {
        if run(*id, p, &ctx)? & 1 == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_cgroups::devfilter;
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

    fn rule(
        allow: bool,
        t: LinuxDeviceType,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(t)
            .access(a);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn access_of(rules: &[LinuxDeviceCgroup]) -> DeviceAccess {
        let prog = devfilter::program(rules).unwrap();
        // Through the kernel's byte format and back.
        let prog = decode(&devfilter::encode(&prog));
        let progs = vec![(7, prog)];
        check("test".into(), |k, ma, mi, a| {
            programs_allow(&progs, k, ma, mi, a).ok()
        })
        .unwrap()
    }

    fn allowed(a: &DeviceAccess) -> Vec<&str> {
        a.checks
            .iter()
            .filter(|c| c.allowed)
            .map(|c| c.device.as_str())
            .collect()
    }

    #[test]
    fn bulkhead_programs_evaluate_like_their_rules() {
        use LinuxDeviceType::*;
        let strict = [
            rule(false, A, None, None, "rwm"),
            rule(true, C, None, None, "m"),
            rule(true, B, None, None, "m"),
            rule(true, C, Some(1), Some(3), "rwm"),
            rule(true, C, Some(136), None, "rwm"),
        ];
        let a = access_of(&strict);
        assert_eq!(
            allowed(&a),
            ["mknod of any char device", "mknod of any block device"]
        );
        let weak = [
            rule(false, A, None, None, "rwm"),
            rule(true, C, Some(1), Some(1), "rw"),
            rule(true, B, Some(8), None, "rw"),
            rule(true, C, Some(10), Some(229), "rwm"),
        ];
        assert_eq!(
            allowed(&access_of(&weak)),
            ["/dev/mem", "/dev/sda", "/dev/fuse"]
        );
        let all = [rule(true, A, None, None, "rwm")];
        assert_eq!(allowed(&access_of(&all)).len(), PROBES.len());
        // A later deny wins over an earlier allow.
        let later = [
            rule(true, A, None, None, "rwm"),
            rule(false, C, Some(1), Some(1), "rwm"),
        ];
        let a = access_of(&later);
        assert!(!a.allows("/dev/mem") && a.allows("/dev/kmem") && !a.allows("any char device"));
    }

    #[test]
    fn v1_lists() {
        let list = "c 1:3 rwm\nc *:* m\nb 8:* rw\n";
        let a = check("v1".into(), |k, ma, mi, acc| {
            Some(v1_allows(list, k, ma, mi, acc))
        })
        .unwrap();
        assert_eq!(allowed(&a), ["/dev/sda", "mknod of any char device"]);
        assert!(v1_allows("a *:* rwm", 'b', 8, 0, RWM));
        assert!(!v1_allows("c 1:1 r", 'c', 1, 1, RW));
    }

    #[test]
    fn other_instruction_shapes() {
        // runc/crun style: 64-bit moves and jumps, a pointer copy of r1,
        // narrow loads: allow only c 1:11.
        let ins = |code, dst, src, off, imm| Insn {
            code,
            dst,
            src,
            off,
            imm,
        };
        let prog = vec![
            ins(0xbf, 6, 1, 0, 0),  // r6 = r1
            ins(0x69, 2, 6, 0, 0),  // r2 = *(u16 *)(r6 + 0)   (type)
            ins(0x61, 4, 6, 4, 0),  // r4 = *(u32 *)(r6 + 4)
            ins(0x61, 5, 6, 8, 0),  // r5 = *(u32 *)(r6 + 8)
            ins(0x55, 2, 0, 4, 2),  // if r2 != 2 goto deny
            ins(0x55, 4, 0, 3, 1),  // if r4 != 1 goto deny
            ins(0x55, 5, 0, 2, 11), // if r5 != 11 goto deny
            ins(0xb7, 0, 0, 0, 1),  // r0 = 1
            ins(0x95, 0, 0, 0, 0),  // exit
            ins(0xb4, 0, 0, 0, 0),  // deny: w0 = 0
            ins(0x95, 0, 0, 0, 0),
        ];
        let progs = vec![(1, prog)];
        let a = check("t".into(), |k, ma, mi, acc| {
            programs_allow(&progs, k, ma, mi, acc).ok()
        })
        .unwrap();
        assert_eq!(allowed(&a), ["/dev/kmsg"]);
        // Several programs: all must allow.
        let deny = vec![ins(0xb7, 0, 0, 0, 0), ins(0x95, 0, 0, 0, 0)];
        let both = vec![progs[0].clone(), (2, deny)];
        assert!(!programs_allow(&both, 'c', 1, 11, RW).unwrap());
        // Unknown instructions and runaway programs are errors, not verdicts.
        let call = vec![ins(0x85, 0, 0, 0, 1), ins(0x95, 0, 0, 0, 0)];
        assert!(matches!(
            run(3, &call, &context('c', 1, 1, RW)),
            Err(DevProgError::Opcode { code: 0x85, .. })
        ));
        let stack = vec![ins(0x61, 0, 10, -4, 0), ins(0x95, 0, 0, 0, 0)];
        assert!(run(4, &stack, &context('c', 1, 1, RW)).is_err());
        let lp = vec![ins(0x05, 0, 0, -1, 0)];
        assert!(run(5, &lp, &context('c', 1, 1, RW)).is_err());
        // Crafted pointer arithmetic: errors, never an overflow panic.
        let big = |op| {
            vec![
                ins(0x18, 2, 0, 0, -1), // r2 = i64::MAX (ld_imm64)
                ins(0x00, 0, 0, 0, i32::MAX),
                ins(op, 1, 2, 0, 0), // r1 op= r2 (twice)
                ins(op, 1, 2, 0, 0),
                ins(0x07, 1, 0, 0, 4), // r1 += 4
                ins(0x61, 0, 1, i16::MAX, 0),
                ins(0x95, 0, 0, 0, 0),
            ]
        };
        for op in [0x0f, 0x1f] {
            assert!(run(6, &big(op), &context('c', 1, 1, RW)).is_err());
        }
        let far = vec![ins(0x61, 0, 1, i16::MIN, 0), ins(0x95, 0, 0, 0, 0)];
        assert!(run(7, &far, &context('c', 1, 1, RW)).is_err());
    }
}
