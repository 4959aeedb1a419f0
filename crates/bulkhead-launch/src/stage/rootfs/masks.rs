//! After pivot_root: masked paths, read-only paths, the read-only root and
//! the root's propagation. Mounts here use the new mount API on verified
//! fds, so no path through the container's /proc is ever trusted.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use bulkhead_spec::plan::Plan;
use pathrs::Root;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, fsconfig_create,
    fsconfig_set_string, fsmount, fsopen, move_mount, open_tree,
};

use crate::stage::StageError;

fn missing(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// `/dev/null` as the container sees it, verified to be the real 1:3 char
/// device before anything is masked with it (CVE-2025-31133 class).
fn verified_dev_null(root: &Root) -> Result<OwnedFd, StageError> {
    let h = root
        .resolve_nofollow("/dev/null")
        .map_err(StageError::sys("maskedPaths: /dev/null"))?;
    let st =
        rustix::fs::fstat(h.as_fd()).map_err(StageError::sys("maskedPaths: stat /dev/null"))?;
    let dev = st.st_rdev;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || rustix::fs::major(dev) != 1
        || rustix::fs::minor(dev) != 3
    {
        return Err(StageError::msg(
            "maskedPaths",
            "/dev/null in the container is not the null device (1:3)",
        ));
    }
    Ok(h.into())
}

/// A detached copy of the mount at `src` (recursive or not).
fn clone_tree(src: impl AsFd, recursive: bool) -> rustix::io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    open_tree(src, "", flags)
}

/// Attach a detached mount on top of `target`.
fn move_onto(tree: impl AsFd, target: impl AsFd) -> rustix::io::Result<()> {
    move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

fn bind_fd_onto(src: impl AsFd, target: impl AsFd, recursive: bool) -> rustix::io::Result<()> {
    move_onto(clone_tree(src, recursive)?, target)
}

fn ro_tmpfs_onto(target: impl AsFd) -> rustix::io::Result<()> {
    let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), "size", "0")?;
    fsconfig_set_string(fs.as_fd(), "mode", "0755")?;
    fsconfig_create(fs.as_fd())?;
    let mnt = fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )?;
    move_onto(mnt, target)
}

pub(super) fn apply(plan: &Plan) -> Result<(), StageError> {
    let root = Root::open("/").map_err(StageError::sys("open container root"))?;
    let mut null: Option<OwnedFd> = None;
    for p in &plan.masked_paths {
        let step = format!("maskedPaths {}", p.display());
        let h = match super::lookup(&root, p, false) {
            Ok(h) => h,
            Err(e) if missing(&e) => continue,
            Err(e) => return Err(StageError::msg(step, e.to_string())),
        };
        let st = rustix::fs::fstat(h.as_fd()).map_err(StageError::sys(step.clone()))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            ro_tmpfs_onto(h.as_fd()).map_err(StageError::sys(step))?;
        } else {
            if null.is_none() {
                null = Some(verified_dev_null(&root)?);
            }
            let n = null.as_ref().map(|n| n.as_fd()).expect("set above");
            bind_fd_onto(n, h.as_fd(), false).map_err(StageError::sys(step))?;
        }
    }
    for p in &plan.readonly_paths {
        let step = format!("readonlyPaths {}", p.display());
        let h = match super::lookup(&root, p, true) {
            Ok(h) => h,
            Err(e) if missing(&e) => continue,
            Err(e) => return Err(StageError::msg(step, e.to_string())),
        };
        make_readonly(h.as_fd(), true).map_err(StageError::sys(step))?;
    }
    if plan.root_readonly {
        let h = root
            .resolve("/")
            .map_err(StageError::sys("root.readonly"))?;
        bulkhead_sys::mount_setattr(h.as_fd(), false, bulkhead_sys::mount_attr::RDONLY, 0, None)
            .map_err(StageError::sys("root.readonly"))?;
    }
    if let Some(p) = plan.rootfs_propagation {
        bulkhead_sys::mount(None, Path::new("/"), None, p, None)
            .map_err(StageError::sys("linux.rootfsPropagation"))?;
    }
    Ok(())
}

/// Bind a path onto itself and make that mount read-only. mount_setattr only
/// adds RDONLY, so flags the host locked (nosuid, nodev…) stay as they are.
fn make_readonly(target: impl AsFd, recursive: bool) -> rustix::io::Result<()> {
    let tree = clone_tree(target.as_fd(), recursive)?;
    bulkhead_sys::mount_setattr(
        tree.as_fd(),
        recursive,
        bulkhead_sys::mount_attr::RDONLY,
        0,
        None,
    )
    .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::INVAL))?;
    move_onto(tree, target)
}
