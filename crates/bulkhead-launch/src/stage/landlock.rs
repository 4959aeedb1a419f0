//! Landlock: the `io.bulkhead.landlock` annotation (a bulkhead extension,
//! see docs/landlock.md) turned into a Landlock domain for the init, which
//! the container program inherits across execve.
//!
//! Runs after the whole filesystem is in place (rule paths are container
//! paths, resolved after pivot_root) and before the credentials change:
//! `landlock_restrict_self` needs CAP_SYS_ADMIN or no_new_privs, and the
//! init must not turn no_new_privs on when the config leaves it off.

use std::os::fd::OwnedFd;
use std::path::Path;

use bulkhead_spec::landlock::{FS_FILE_RIGHTS, LandlockPlan, fs_right_names};
use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, LandlockStatus, NetPort, PathBeneath,
    RestrictSelf, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use super::StageError;

/// The running kernel's Landlock ABI, `None` without Landlock. Asked through
/// the landlock crate without restricting anything.
pub fn kernel_abi() -> Option<u32> {
    let status = RestrictSelf::default().no_new_privs(false).apply().ok()?;
    match status.landlock {
        LandlockStatus::Available {
            effective_abi,
            kernel_abi,
        } => Some(kernel_abi.map_or(effective_abi as u32, |k| k as u32)),
        _ => None,
    }
}

fn policy_error(e: bulkhead_spec::landlock::LandlockError) -> StageError {
    let field = e.field().to_string();
    let text = e.to_string();
    let reason = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text);
    StageError::msg(field, reason)
}

/// Opens a rule's path inside the container. Magic links (/proc/*/fd/…)
/// are refused: a rule must name a container path, not one of our fds.
fn open_rule_path(field: &str, path: &Path) -> Result<(OwnedFd, bool), StageError> {
    let fd = rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| {
        StageError::msg(
            format!("{field}.path"),
            format!("{} cannot be opened in the container: {e}", path.display()),
        )
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| {
        StageError::msg(format!("{field}.path"), format!("{}: {e}", path.display()))
    })?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    Ok((fd, is_dir))
}

fn unknown_bits(field: &str, bits: u64) -> StageError {
    StageError::msg(
        field.to_string(),
        format!("access mask {bits:#x} has rights the landlock crate does not know"),
    )
}

fn fs_flags(field: &str, bits: u64) -> Result<BitFlags<AccessFs>, StageError> {
    BitFlags::from_bits(bits).map_err(|_| unknown_bits(field, bits))
}

fn net_flags(field: &str, bits: u64) -> Result<BitFlags<AccessNet>, StageError> {
    BitFlags::from_bits(bits).map_err(|_| unknown_bits(field, bits))
}

/// Build the policy's ruleset and restrict this process with it.
pub fn apply(plan: &LandlockPlan) -> Result<(), StageError> {
    let root = bulkhead_spec::landlock::field_root();
    let resolved = plan
        .resolve(kernel_abi().unwrap_or(0))
        .map_err(policy_error)?;

    // Every path is opened even when the kernel cannot enforce anything
    // (best effort without Landlock): a missing path is always an error.
    let mut path_rules = Vec::new();
    for r in &resolved.fs_rules {
        let (fd, is_dir) = open_rule_path(&r.field, &r.path)?;
        let access = if is_dir {
            r.access
        } else {
            let dir_only = r.explicit & !FS_FILE_RIGHTS;
            if dir_only != 0 {
                return Err(StageError::msg(
                    format!("{}.access", r.field),
                    format!(
                        "{} is not a directory, and {} only apply beneath a directory",
                        r.path.display(),
                        fs_right_names(dir_only).join(", ")
                    ),
                ));
            }
            r.access & FS_FILE_RIGHTS
        };
        if access != 0 {
            path_rules.push((r.field.as_str(), fd, access));
        }
    }
    if resolved.is_empty() {
        return Ok(());
    }

    // Everything passed on is within the kernel's ABI (resolve() made sure),
    // so any downgrade by the crate would be a bug: ask for hard errors.
    let err = |field: &str| {
        let field = field.to_string();
        move |e: landlock::RulesetError| StageError::msg(field, e.to_string())
    };
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if resolved.handled_fs != 0 {
        ruleset = ruleset
            .handle_access(fs_flags(&root, resolved.handled_fs)?)
            .map_err(err(&root))?;
    }
    if resolved.handled_net != 0 {
        ruleset = ruleset
            .handle_access(net_flags(&root, resolved.handled_net)?)
            .map_err(err(&root))?;
    }
    let mut created = ruleset.create().map_err(err(&root))?;
    for (field, fd, access) in path_rules {
        created = created
            .add_rule(PathBeneath::new(fd, fs_flags(field, access)?))
            .map_err(err(field))?;
    }
    let net_field = format!("{root}.network");
    for (port, access) in &resolved.net_rules {
        created = created
            .add_rule(NetPort::new(*port, net_flags(&net_field, *access)?))
            .map_err(err(&net_field))?;
    }
    let status = created
        .no_new_privs(false)
        .restrict_self()
        .map_err(err(&root))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(StageError::msg(
            root,
            format!(
                "the kernel did not enforce the ruleset ({:?})",
                status.ruleset
            ),
        ));
    }
    Ok(())
}
