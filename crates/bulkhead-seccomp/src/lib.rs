//! seccomp: compile the runtime-spec `linux.seccomp` section into a classic
//! BPF program, using libseccomp for the rule matching and a small stub of
//! our own in front of it so that syscalls newer than the profile fail with
//! ENOSYS (letting libc fall back, e.g. from clone3 to clone).
//!
//! Loading is done elsewhere ([`bulkhead_sys::seccomp::load_filter`]) with the
//! [`Compiled::flags`] computed here, so libseccomp's own load path (and its
//! filter attributes such as TSYNC or LOG) is never used.

#![forbid(unsafe_code)]

pub mod learn;
mod stub;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek};

use bulkhead_sys::seccomp::{self as sys, flag};
use libseccomp::error::SeccompError as ScmpError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

mod cache;
pub use cache::{compile_cached, lookup as lookup_cached, remember as remember_compiled};

/// Real Linux syscalls (up to 6.18) that libseccomp 2.5.4's table lacks:
/// profiles may name them; they are skipped with a warning rather than
/// treated as typos.
const NEWER_THAN_LIBSECCOMP: &[&str] = &[
    "statmount",
    "listmount",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "mseal",
    "setxattrat",
    "getxattrat",
    "listxattrat",
    "removexattrat",
    "open_tree_attr",
    "file_getattr",
    "file_setattr",
    "uretprobe",
];

/// A profile compiled for the running architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// `struct sock_filter` array, native endian, 8 bytes per instruction.
    pub bpf: Vec<u8>,
    /// `SECCOMP_FILTER_FLAG_*` to pass to seccomp(2).
    pub flags: u32,
    /// The profile uses SCMP_ACT_NOTIFY: `flags` contains
    /// `SECCOMP_FILTER_FLAG_NEW_LISTENER` and loading returns a listener fd.
    pub notify: bool,
    /// Things skipped or adjusted on the way (unknown syscall names, flags
    /// that cannot apply), one sentence each, for the caller to log.
    pub warnings: Vec<String>,
}

/// Why a profile could not be compiled; each variant names the entry.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("defaultAction: SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyDefault,
    #[error("{entry}: SCMP_ACT_NOTIFY cannot be used for the write syscall")]
    NotifyWrite { entry: String },
    #[error("{entry}: argument index {index} is out of range (a syscall has arguments 0 to 5)")]
    ArgIndex { entry: String, index: usize },
    #[error("{entry}: errno value {value} is out of range (at most 65535)")]
    ErrnoRange { entry: String, value: u32 },
    #[error("{entry}: {action} takes no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)")]
    ErrnoNotSupported { entry: String, action: String },
    #[error("{entry}: empty syscall name")]
    EmptyName { entry: String },
    #[error("{entry}: unknown syscall {name:?} (not a syscall on any architecture)")]
    UnknownSyscall { entry: String, name: String },
    #[error("{entry}: libseccomp could not {what}: {source}")]
    Libseccomp {
        entry: String,
        what: &'static str,
        #[source]
        source: ScmpError,
    },
    #[error("filter: could not export the bpf program: {0}")]
    Export(#[source] io::Error),
    #[error("filter: {len} instructions exceed the kernel limit of {max}")]
    TooLarge { len: usize, max: usize },
}

fn scmp(entry: impl Into<String>, what: &'static str) -> impl FnOnce(ScmpError) -> SeccompError {
    let entry = entry.into();
    move |source| SeccompError::Libseccomp {
        entry,
        what,
        source,
    }
}

/// Linux syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// Every `SCMP_ARCH_*` the runtime-spec names, with libseccomp's token.
const ARCHES: &[(Arch, ScmpArch, &str)] = &[
    (Arch::ScmpArchX86, ScmpArch::X86, "SCMP_ARCH_X86"),
    (Arch::ScmpArchX86_64, ScmpArch::X8664, "SCMP_ARCH_X86_64"),
    (Arch::ScmpArchX32, ScmpArch::X32, "SCMP_ARCH_X32"),
    (Arch::ScmpArchArm, ScmpArch::Arm, "SCMP_ARCH_ARM"),
    (
        Arch::ScmpArchAarch64,
        ScmpArch::Aarch64,
        "SCMP_ARCH_AARCH64",
    ),
    (Arch::ScmpArchMips, ScmpArch::Mips, "SCMP_ARCH_MIPS"),
    (Arch::ScmpArchMips64, ScmpArch::Mips64, "SCMP_ARCH_MIPS64"),
    (
        Arch::ScmpArchMips64n32,
        ScmpArch::Mips64N32,
        "SCMP_ARCH_MIPS64N32",
    ),
    (Arch::ScmpArchMipsel, ScmpArch::Mipsel, "SCMP_ARCH_MIPSEL"),
    (
        Arch::ScmpArchMipsel64,
        ScmpArch::Mipsel64,
        "SCMP_ARCH_MIPSEL64",
    ),
    (
        Arch::ScmpArchMipsel64n32,
        ScmpArch::Mipsel64N32,
        "SCMP_ARCH_MIPSEL64N32",
    ),
    (Arch::ScmpArchPpc, ScmpArch::Ppc, "SCMP_ARCH_PPC"),
    (Arch::ScmpArchPpc64, ScmpArch::Ppc64, "SCMP_ARCH_PPC64"),
    (
        Arch::ScmpArchPpc64le,
        ScmpArch::Ppc64Le,
        "SCMP_ARCH_PPC64LE",
    ),
    (Arch::ScmpArchS390, ScmpArch::S390, "SCMP_ARCH_S390"),
    (Arch::ScmpArchS390x, ScmpArch::S390X, "SCMP_ARCH_S390X"),
    (Arch::ScmpArchParisc, ScmpArch::Parisc, "SCMP_ARCH_PARISC"),
    (
        Arch::ScmpArchParisc64,
        ScmpArch::Parisc64,
        "SCMP_ARCH_PARISC64",
    ),
    (
        Arch::ScmpArchRiscv64,
        ScmpArch::Riscv64,
        "SCMP_ARCH_RISCV64",
    ),
    (
        Arch::ScmpArchLoongarch64,
        ScmpArch::Loongarch64,
        "SCMP_ARCH_LOONGARCH64",
    ),
    (Arch::ScmpArchM68k, ScmpArch::M68k, "SCMP_ARCH_M68K"),
    (Arch::ScmpArchSh, ScmpArch::Sh, "SCMP_ARCH_SH"),
    (Arch::ScmpArchSheb, ScmpArch::Sheb, "SCMP_ARCH_SHEB"),
];

fn arch_name(a: Arch) -> &'static str {
    ARCHES
        .iter()
        .find(|(o, _, _)| *o == a)
        .map_or("SCMP_ARCH_NATIVE", |(_, _, n)| n)
}

/// The spec's arch for a libseccomp arch (never `Native`).
fn spec_arch(a: ScmpArch) -> Option<Arch> {
    ARCHES.iter().find(|(_, s, _)| *s == a).map(|(o, _, _)| *o)
}

fn scmp_arch(a: Arch) -> ScmpArch {
    match a {
        Arch::ScmpArchNative => ScmpArch::native(),
        other => ARCHES
            .iter()
            .find(|(o, _, _)| *o == other)
            .map(|(_, s, _)| *s)
            .unwrap_or(ScmpArch::native()),
    }
}

fn library_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "(unknown version)".to_owned(),
    }
}

fn errno_value(entry: impl FnOnce() -> String, v: Option<u32>) -> Result<u16, SeccompError> {
    let v = v.unwrap_or(libc::EPERM as u32);
    u16::try_from(v).map_err(|_| SeccompError::ErrnoRange {
        entry: entry(),
        value: v,
    })
}

/// The libseccomp action for a spec action. KILL kills the thread (as the
/// kernel's historical SECCOMP_RET_KILL did); ERRNO and TRACE without an
/// explicit value use EPERM.
fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    entry: impl FnOnce() -> String,
) -> Result<ScmpAction, SeccompError> {
    // "When the action doesn't support an errno, the runtime MUST print an
    // error and fail" (config-linux.md, seccomp).
    if errno_ret.is_some()
        && !matches!(
            a,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    {
        return Err(SeccompError::ErrnoNotSupported {
            entry: entry(),
            action: serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{a:?}")),
        });
    }
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            ScmpAction::Errno(errno_value(entry, errno_ret)?.into())
        }
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno_value(entry, errno_ret)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn condition(arg: &LinuxSeccompArg) -> ScmpArgCompare {
    // The spec's `value` is libseccomp's first datum (the mask for
    // MASKED_EQ) and `valueTwo` the second (the value the masked argument
    // must equal).
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return ScmpArgCompare::new(
                arg.index() as u32,
                ScmpCompareOp::MaskedEqual(arg.value()),
                arg.value_two().unwrap_or(0),
            );
        }
    };
    ScmpArgCompare::new(arg.index() as u32, op, arg.value())
}

/// Compile `s` for the running architecture plus the ones it lists.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    let mut warnings = Vec::new();

    let default_action = s.default_action();
    if default_action == LinuxSeccompAction::ScmpActNotify {
        return Err(SeccompError::NotifyDefault);
    }
    let default = action(default_action, s.default_errno_ret(), || {
        "defaultErrnoRet".to_owned()
    })?;

    let mut ctx =
        ScmpFilterContext::new(default).map_err(scmp("defaultAction", "create a filter"))?;
    // The runtime sets no_new_privs itself when the config asks for it.
    ctx.set_ctl_nnp(false)
        .map_err(scmp("filter", "clear the no_new_privs attribute"))?;

    // Architectures: the native one is always in the filter.
    let mut arches = vec![ScmpArch::native()];
    for (i, &a) in s.architectures().iter().flatten().enumerate() {
        let sa = scmp_arch(a);
        if let Err(e) = ctx.add_arch(sa) {
            // Leaving it out is safe: calls made under an architecture the
            // filter lacks get libseccomp's bad-arch action (kill).
            let why = if e.errno() == Some(libseccomp::error::SeccompErrno::EDOM) {
                "its byte order differs from the native architecture".to_owned()
            } else {
                format!("libseccomp {} does not support it", library_version())
            };
            warnings.push(format!(
                "architectures[{i}]: {} left out of the filter ({why}); its syscalls will be killed",
                arch_name(a)
            ));
            continue;
        }
        if !arches.contains(&sa) {
            arches.push(sa);
        }
    }

    let rules = s.syscalls().as_deref().unwrap_or_default();
    // Binary-tree dispatch keeps long profiles (the usual allow lists) fast;
    // libseccomp <= 2.5.4 misbehaves with it on tiny filters, so only for
    // longer ones. Failing to set it only costs speed.
    if rules.len() > 32 {
        let _ = ctx.set_ctl_optimize(2);
    }

    let mut notify = false;
    for (i, rule) in rules.iter().enumerate() {
        let act = action(rule.action(), rule.errno_ret(), || {
            format!("syscalls[{i}].errnoRet")
        })?;
        if act == ScmpAction::Notify {
            notify = true;
        }

        let args = rule.args().as_deref().unwrap_or_default();
        let mut per_index = [0usize; MAX_ARGS];
        for (k, arg) in args.iter().enumerate() {
            let index = arg.index();
            if index >= MAX_ARGS {
                return Err(SeccompError::ArgIndex {
                    entry: format!("syscalls[{i}].args[{k}]"),
                    index,
                });
            }
            per_index[index] += 1;
        }
        let conds: Vec<ScmpArgCompare> = args.iter().map(condition).collect();
        // Conditions on distinct arguments must all hold (one rule). When
        // one argument is compared more than once, libseccomp cannot put
        // the comparisons into one rule; like runc, add one rule per
        // condition, so that any of them matches.
        let split = per_index.iter().any(|&n| n > 1);
        if split {
            warnings.push(format!(
                "syscalls[{i}]: several conditions on the same argument, each added as its own rule (any one matches)"
            ));
        }

        if rule.names().is_empty() {
            warnings.push(format!("syscalls[{i}]: no names, rule ignored"));
        }
        for (j, name) in rule.names().iter().enumerate() {
            let entry = || format!("syscalls[{i}].names[{j}]");
            if name.is_empty() {
                return Err(SeccompError::EmptyName { entry: entry() });
            }
            if act == ScmpAction::Notify && name == "write" {
                return Err(SeccompError::NotifyWrite { entry: entry() });
            }
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                // A real syscall newer than libseccomp's table is skipped (the
                // ENOSYS stub covers it); a name no kernel has is a mistake.
                if !NEWER_THAN_LIBSECCOMP.contains(&name.as_str()) {
                    return Err(SeccompError::UnknownSyscall {
                        entry: entry(),
                        name: name.clone(),
                    });
                }
                warnings.push(format!("{}: unknown syscall {name:?}, skipped", entry()));
                continue;
            };
            if act == default {
                // Redundant with the default action (and refused by
                // libseccomp): nothing to add.
                continue;
            }
            if conds.is_empty() {
                ctx.add_rule(act, sc)
                    .map_err(scmp(entry(), "add the rule"))?;
            } else if split {
                for c in &conds {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c))
                        .map_err(scmp(entry(), "add the rule"))?;
                }
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
                    .map_err(scmp(entry(), "add the rule"))?;
            }
        }
    }

    // Filter flags.
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags |= flag::TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags |= flag::LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags |= flag::SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                if notify {
                    flags |= flag::WAIT_KILLABLE_RECV;
                } else {
                    // The kernel refuses it without a listener.
                    warnings.push(
                        "flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored, no rule uses SCMP_ACT_NOTIFY"
                            .to_owned(),
                    );
                }
            }
        }
    }
    if notify {
        flags |= flag::NEW_LISTENER;
        if flags & flag::TSYNC != 0 {
            // TSYNC reports failure as a thread id and NEW_LISTENER success
            // as an fd; the kernel only takes both with TSYNC_ESRCH.
            flags |= flag::TSYNC_ESRCH;
        }
    }

    let filter = export(&ctx)?;

    // The ENOSYS stub, for profiles that refuse what they do not name.
    let needs_stub = match default {
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_) | ScmpAction::Notify => false,
        ScmpAction::Errno(e) => e != libc::ENOSYS,
        // KILL_THREAD, KILL_PROCESS, TRAP.
        _ => true,
    };
    let mut bpf = Vec::new();
    if needs_stub {
        let mut max: BTreeMap<u32, stub::Limit> = BTreeMap::new();
        for &a in &arches {
            let Some(spec) = spec_arch(a) else { continue };
            let highest = rules
                .iter()
                .flat_map(|r| r.names())
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
                .map(ScmpSyscall::as_raw_syscall)
                .filter(|&nr| nr >= 0)
                .max();
            let Some(highest) = highest else {
                warnings.push(format!(
                    "architectures: no syscall of the profile is known on {}, no ENOSYS fallback for it",
                    arch_name(spec)
                ));
                continue;
            };
            let (audit, kind) = stub::audit_arch(spec as u32);
            let limit = max.entry(audit).or_insert(stub::Limit {
                audit,
                ..Default::default()
            });
            match kind {
                stub::Kind::X32 => limit.x32 = Some(highest as u32),
                stub::Kind::Plain => limit.max = Some(highest as u32),
            }
            limit.multiplexed_zero = matches!(spec, Arch::ScmpArchS390 | Arch::ScmpArchS390x);
        }
        bpf = stub::generate(max.values());
    }
    bpf.extend_from_slice(&filter);

    let len = bpf.len() / sys::INSN_LEN;
    if len > sys::MAX_INSNS {
        return Err(SeccompError::TooLarge {
            len,
            max: sys::MAX_INSNS,
        });
    }

    Ok(Compiled {
        bpf,
        flags,
        notify,
        warnings,
    })
}

/// libseccomp (2.5) exports only to a file descriptor: use a memfd.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    let fd = rustix::fs::memfd_create("bulkhead-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| SeccompError::Export(e.into()))?;
    let mut file = File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| SeccompError::Export(io::Error::other(e)))?;
    let mut out = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut out))
        .map_err(SeccompError::Export)?;
    if out.is_empty() || !out.len().is_multiple_of(sys::INSN_LEN) {
        return Err(SeccompError::Export(io::Error::other(format!(
            "libseccomp produced {} bytes, not a whole number of instructions",
            out.len()
        ))));
    }
    Ok(out)
}

/// Action names this runtime understands (for `features`).
pub fn supported_actions() -> Vec<&'static str> {
    vec![
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ]
}

/// `SCMP_ARCH_*` names the linked libseccomp can build filters for.
pub fn supported_archs() -> Vec<&'static str> {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Allow) else {
        return Vec::new();
    };
    ARCHES
        .iter()
        .filter(|(_, a, _)| ctx.add_arch(*a).is_ok())
        .map(|(_, _, n)| *n)
        .collect()
}

/// `SECCOMP_FILTER_FLAG_*` names from the runtime-spec that the running
/// kernel accepts.
pub fn supported_flags() -> Vec<&'static str> {
    [
        ("SECCOMP_FILTER_FLAG_TSYNC", flag::TSYNC),
        ("SECCOMP_FILTER_FLAG_LOG", flag::LOG),
        ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", flag::SPEC_ALLOW),
        (
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
            flag::WAIT_KILLABLE_RECV | flag::NEW_LISTENER,
        ),
    ]
    .into_iter()
    .filter(|&(_, f)| sys::filter_flags_supported(f))
    .map(|(n, _)| n)
    .collect()
}

#[cfg(test)]
mod tests;
