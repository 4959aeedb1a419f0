//! Least privilege for the init: process attributes, then credentials and
//! capabilities in the order the kernel's rules require.

use std::io::Write;
use std::os::fd::OwnedFd;

use bulkhead_spec::plan::{Plan, ProcessPlan};
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use super::StageError;

fn procfs() -> Result<ProcfsHandle, StageError> {
    ProcfsHandle::new().map_err(StageError::sys("open procfs"))
}

/// `hand_over` receives the notify listener of an early filter at once:
/// the credential steps after it may notify, and must find a listener.
pub fn apply(
    plan: &Plan,
    p: &ProcessPlan,
    early_seccomp: Option<&bulkhead_seccomp::Compiled>,
    hand_over: &mut dyn FnMut(OwnedFd) -> Result<(), StageError>,
) -> Result<(), StageError> {
    for r in &p.rlimits {
        bulkhead_sys::setrlimit(r.resource, r.soft, r.hard).map_err(|e| {
            StageError::msg(
                "process.rlimits",
                format!("setting rlimit type {}: {e}", r.resource),
            )
        })?;
    }
    if let Some(adj) = p.oom_score_adj {
        let mut f = procfs()?
            .open(
                ProcfsBase::ProcSelf,
                "oom_score_adj",
                pathrs::flags::OpenFlags::O_WRONLY,
            )
            .map_err(StageError::sys("process.oomScoreAdj"))?;
        f.write_all(adj.to_string().as_bytes())
            .map_err(StageError::sys("process.oomScoreAdj"))?;
    }
    if let Some(persona) = plan.personality {
        bulkhead_sys::personality(persona).map_err(StageError::sys("linux.personality"))?;
    }
    if let Some((class, level)) = p.io_priority {
        bulkhead_sys::ioprio_set(class, level).map_err(StageError::sys("process.ioPriority"))?;
    }
    if let Some(s) = p.scheduler {
        bulkhead_sys::set_scheduler(s.policy, s.priority)
            .map_err(StageError::sys("process.scheduler"))?;
        if s.nice != 0 {
            bulkhead_sys::set_nice(s.nice).map_err(StageError::sys("process.scheduler.nice"))?;
        }
    }
    if let Some(cpus) = &p.cpu_affinity_final {
        bulkhead_sys::set_affinity(cpus)
            .map_err(StageError::sys("process.execCPUAffinity.final"))?;
    }
    super::lsm::apply(p)?;
    if p.no_new_privileges {
        rustix::thread::set_no_new_privs(true)
            .map_err(StageError::sys("process.noNewPrivileges"))?;
    }
    // Landlock: after the filesystem is complete, before seccomp (which
    // could block its syscalls) and while CAP_SYS_ADMIN is still held.
    if let Some(policy) = &plan.landlock {
        super::landlock::apply(policy)?;
    }
    // Probed before an early filter is loaded: profiles written for runc
    // (allow-lists with an EPERM default) may refuse prctl's bounding-set read.
    let last_cap = bulkhead_sys::caps::last_cap();
    if let Some(fd) = early_seccomp.map(load_seccomp).transpose()?.flatten() {
        hand_over(fd)?;
    }
    credentials(p, last_cap)?;
    bulkhead_sys::umask(p.umask.unwrap_or(0o022));
    Ok(())
}

/// Load the compiled filter; returns the notify listener fd when the profile
/// uses SCMP_ACT_NOTIFY.
pub fn load_seccomp(s: &bulkhead_seccomp::Compiled) -> Result<Option<OwnedFd>, StageError> {
    bulkhead_sys::seccomp::load_filter(&s.bpf, s.flags)
        .map_err(StageError::sys("linux.seccomp: load filter"))
}

/// Names the requested capabilities the runtime itself does not hold (a
/// host whose root lacks some, like CAP_SYS_RESOURCE under some sandboxes):
/// nobody can grant those, and the bare EPERM does not say which.
fn caps_we_lack(wanted: u64) -> String {
    let held = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    let Some(held) = held else {
        return String::new();
    };
    let missing: Vec<String> = (0..64)
        .filter(|&c| wanted & !held & (1u64 << c) != 0)
        .map(|c| bulkhead_spec::caps::name(c).map_or_else(|| format!("cap {c}"), str::to_string))
        .collect();
    if missing.is_empty() {
        String::new()
    } else {
        format!(" ({} not held by the runtime itself)", missing.join(", "))
    }
}

/// Bounding set first (needs CAP_SETPCAP), then ids with the permitted set
/// kept across setuid, then the final sets, then ambient.
fn credentials(p: &ProcessPlan, last_cap: u32) -> Result<(), StageError> {
    if let Some(c) = &p.caps {
        for cap in 0..=last_cap {
            if !c.bounding.contains(cap) {
                bulkhead_sys::caps::bounding_drop(cap).map_err(|e| {
                    StageError::msg("process.capabilities.bounding", format!("drop {cap}: {e}"))
                })?;
            }
        }
        bulkhead_sys::caps::set_keepcaps(true).map_err(StageError::sys("keep capabilities"))?;
    }
    match bulkhead_sys::setgroups(&p.additional_gids) {
        Ok(()) => {}
        // A user namespace with setgroups denied: only an empty list is possible.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && p.additional_gids.is_empty() => {}
        Err(e) => {
            return Err(StageError::msg(
                "process.user.additionalGids",
                e.to_string(),
            ));
        }
    }
    bulkhead_sys::setresgid(p.gid)
        .map_err(|e| StageError::msg("process.user.gid", format!("setresgid({}): {e}", p.gid)))?;
    bulkhead_sys::setresuid(p.uid)
        .map_err(|e| StageError::msg("process.user.uid", format!("setresuid({}): {e}", p.uid)))?;
    if let Some(c) = &p.caps {
        bulkhead_sys::caps::set_keepcaps(false).map_err(StageError::sys("keep capabilities"))?;
        bulkhead_sys::caps::set(c.effective.0, c.permitted.0, c.inheritable.0).map_err(|e| {
            StageError::msg(
                "process.capabilities",
                format!("unable to apply caps: {e}{}", caps_we_lack(c.permitted.0)),
            )
        })?;
        bulkhead_sys::caps::ambient_clear()
            .map_err(StageError::sys("process.capabilities.ambient"))?;
        // The kernel only lets a capability be ambient if it is permitted and
        // inheritable; configs (runc's own template) often list ambient caps
        // that are not inheritable, and runtimes skip those.
        for cap in 0..64 {
            if c.ambient.contains(cap) && c.permitted.contains(cap) && c.inheritable.contains(cap) {
                bulkhead_sys::caps::ambient_raise(cap).map_err(|e| {
                    StageError::msg(
                        "process.capabilities.ambient",
                        format!("raise {cap} (it must also be permitted and inheritable): {e}"),
                    )
                })?;
            }
        }
    }
    Ok(())
}
