//! Root filesystem: everything between "a new mount namespace" and "the
//! container's `/`" — mounts, devices, pivot_root, masked and read-only paths.
//!
//! Every path inside the root is resolved through file descriptors with
//! pathrs (openat2 `RESOLVE_IN_ROOT`), never by following names in a tree the
//! image controls; mounts target the verified fd (`/proc/self/fd/N` of the
//! host's procfs before pivot_root, the new mount API after it).

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

use bulkhead_cgroups::CgroupSet;
use bulkhead_spec::plan::{NsKind, Plan, ProcessPlan};
use pathrs::Root;

use super::StageError;

mod copyup;
mod dev;
mod masks;
mod mounts;

/// The container's root filesystem while it is being prepared.
pub struct Rootfs {
    pub root: Root,
    pub path: PathBuf,
    /// Inside a user namespace: device nodes are bind-mounted, not created,
    /// and flags locked by the host mount must be kept on remounts.
    pub in_userns: bool,
}

/// Path of a verified fd, as the host procfs shows it (valid before pivot_root).
pub(crate) fn fd_path(fd: impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

pub fn prepare(
    plan: &Plan,
    process: &ProcessPlan,
    cgroups: &CgroupSet,
    trees: &crate::idmap::IdmapTrees,
) -> Result<Rootfs, StageError> {
    if !plan.creates(NsKind::Mount) {
        return Err(StageError::msg(
            "linux.namespaces",
            "a new mount namespace is required to set up the root filesystem",
        ));
    }
    crate::stage::lsm::check_mount_label(plan.mount_label.as_deref())?;
    // Nothing mounted from here on may propagate back to the host.
    let prop = plan
        .rootfs_propagation
        .unwrap_or(libc::MS_SLAVE | libc::MS_REC);
    bulkhead_sys::mount(None, Path::new("/"), None, prop, None)
        .map_err(StageError::sys("make / private to the container"))?;
    make_parent_private(&plan.rootfs)?;
    // pivot_root needs the new root to be a mount point.
    bulkhead_sys::mount(
        Some(&plan.rootfs.to_string_lossy()),
        &plan.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(StageError::sys(format!(
        "root.path {}",
        plan.rootfs.display()
    )))?;
    let root = Root::open(&plan.rootfs).map_err(StageError::sys(format!(
        "root.path {}",
        plan.rootfs.display()
    )))?;
    let rootfs = Rootfs {
        root,
        path: plan.rootfs.clone(),
        in_userns: plan.ns(NsKind::User).is_some(),
    };
    for (i, m) in plan.mounts.iter().enumerate() {
        mounts::mount_one(&rootfs, plan, m, cgroups, trees.get(i)).map_err(|e| {
            StageError::msg(format!("mounts[{i}] {}", m.destination.display()), e.reason)
        })?;
    }
    if !plan
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev") && m.is_bind())
    {
        dev::create_devices(&rootfs, plan)?;
        dev::create_symlinks(&rootfs, plan)?;
    }
    // runc creates a missing cwd; do the same, inside the root, by fd.
    if rootfs.root.resolve(&process.cwd).is_err() {
        let _ = rootfs.root.mkdir_all(
            &process.cwd,
            &std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
    }
    Ok(rootfs)
}

/// pivot_root refuses a new root whose parent mount is shared.
fn make_parent_private(rootfs: &Path) -> Result<(), StageError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(StageError::sys("read mountinfo"))?;
    let mut best: Option<&str> = None;
    for line in info.lines() {
        let Some(mp) = line.split(' ').nth(4) else {
            continue;
        };
        let mp_path = Path::new(mp);
        if rootfs.starts_with(mp_path) && best.is_none_or(|b| mp.len() > b.len()) {
            best = Some(mp);
        }
        let _ = mp_path;
    }
    if let Some(mp) = best {
        let is_shared = info
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(mp))
            .any(|l| l.contains(" shared:"));
        if is_shared {
            bulkhead_sys::mount(None, Path::new(mp), None, libc::MS_PRIVATE, None)
                .map_err(StageError::sys(format!("make {mp} private")))?;
        }
    }
    Ok(())
}

/// Switch to the container's root and detach the host's.
pub fn pivot(plan: &Plan, rootfs: Rootfs, no_pivot: bool) -> Result<(), StageError> {
    rustix::process::fchdir(rootfs.root.as_fd()).map_err(StageError::sys("chdir to rootfs"))?;
    drop(rootfs);
    let dot = Path::new(".");
    if no_pivot {
        bulkhead_sys::mount(Some("."), Path::new("/"), None, libc::MS_MOVE, None)
            .map_err(StageError::sys("move rootfs to / (--no-pivot)"))?;
        bulkhead_sys::chroot(dot).map_err(StageError::sys("chroot"))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one; it
        // is then detached without ever being reachable by path.
        bulkhead_sys::pivot_root(dot, dot).map_err(StageError::sys("pivot_root"))?;
        bulkhead_sys::mount(None, dot, None, libc::MS_SLAVE | libc::MS_REC, None)
            .map_err(StageError::sys("make old root a slave"))?;
        bulkhead_sys::umount2(dot, libc::MNT_DETACH).map_err(StageError::sys("detach old root"))?;
    }
    rustix::process::chdir("/").map_err(StageError::sys("chdir /"))?;
    let _ = plan;
    Ok(())
}

/// After pivot_root: masked and read-only paths, the read-only root, and the
/// root's propagation.
pub fn finish(plan: &Plan) -> Result<(), StageError> {
    masks::apply(plan)
}
