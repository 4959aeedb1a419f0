//! /dev: the default device nodes, `linux.devices`, and the std symlinks.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bulkhead_spec::plan::{DevicePlan, Plan};
use pathrs::InodeType;

use super::{Rootfs, fd_path};
use crate::stage::StageError;

/// The devices every container gets, as runc and crun give them.
fn defaults() -> Vec<DevicePlan> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| DevicePlan {
        path: PathBuf::from(p),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

pub(super) fn create_devices(rootfs: &Rootfs, plan: &Plan) -> Result<(), StageError> {
    let mut all = defaults();
    all.retain(|d| !plan.devices.iter().any(|c| c.path == d.path));
    all.extend(plan.devices.iter().cloned());
    // Modes in the config are exact: no umask applied to them.
    let old = bulkhead_sys::umask(0);
    let res = all.iter().try_for_each(|d| create_one(rootfs, d));
    bulkhead_sys::umask(old);
    res
}

fn create_one(rootfs: &Rootfs, d: &DevicePlan) -> Result<(), StageError> {
    let step = format!("device {}", d.path.display());
    if let Some(parent) = d.path.parent() {
        super::mkdir_all(&rootfs.root, parent, 0o755).map_err(StageError::sys(step.clone()))?;
    }
    if rootfs.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node onto
        // an empty file instead.
        if super::lookup(&rootfs.root, &d.path, false).is_err() {
            rootfs
                .root
                .create_file(
                    &d.path,
                    pathrs::flags::OpenFlags::O_RDONLY | pathrs::flags::OpenFlags::O_CLOEXEC,
                    &std::fs::Permissions::from_mode(0o644),
                )
                .map_err(StageError::sys(step.clone()))?;
        }
        let h = rootfs
            .root
            .resolve_nofollow(&d.path)
            .map_err(StageError::sys(step.clone()))?;
        return bulkhead_sys::mount(
            Some(&d.path.to_string_lossy()),
            &fd_path(&h),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(StageError::sys(format!("{step}: bind from host")));
    }
    if super::lookup(&rootfs.root, &d.path, false).is_ok() {
        rootfs
            .root
            .remove_file(&d.path)
            .map_err(StageError::sys(format!("{step}: replace existing")))?;
    }
    let perm = std::fs::Permissions::from_mode(d.mode);
    let dev = rustix::fs::makedev(d.major as u32, d.minor as u32);
    let kind = match d.kind {
        libc::S_IFBLK => InodeType::BlockDevice(perm, dev),
        libc::S_IFIFO => InodeType::Fifo(perm),
        _ => InodeType::CharacterDevice(perm, dev),
    };
    rootfs
        .root
        .create(&d.path, &kind)
        .map_err(StageError::sys(step.clone()))?;
    let h = rootfs
        .root
        .resolve_nofollow(&d.path)
        .map_err(StageError::sys(step.clone()))?;
    rustix::fs::chownat(
        h.as_fd(),
        "",
        Some(rustix::fs::Uid::from_raw(d.uid)),
        Some(rustix::fs::Gid::from_raw(d.gid)),
        rustix::fs::AtFlags::EMPTY_PATH,
    )
    .map_err(StageError::sys(format!("{step}: chown")))
}

pub(super) fn create_symlinks(rootfs: &Rootfs, plan: &Plan) -> Result<(), StageError> {
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    if plan
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev/pts"))
    {
        links.push(("/dev/ptmx", "pts/ptmx"));
    }
    for (link, target) in links {
        // An existing /dev/ptmx device node (from a host-like /dev) is replaced
        // so that it points at the container's own devpts instance.
        if link == "/dev/ptmx" && super::lookup(&rootfs.root, Path::new(link), false).is_ok() {
            let _ = rootfs.root.remove_file(link);
        }
        match rootfs
            .root
            .create(link, &InodeType::Symlink(PathBuf::from(target)))
        {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    pathrs::error::ErrorKind::OsError(Some(libc::EEXIST))
                ) => {}
            Err(e) => return Err(StageError::msg(format!("symlink {link}"), e.to_string())),
        }
    }
    Ok(())
}
