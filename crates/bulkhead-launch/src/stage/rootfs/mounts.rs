//! One `mounts[]` entry, mounted onto a destination resolved inside the root.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bulkhead_cgroups::CgroupSet;
use bulkhead_spec::plan::{MountPlan, NsKind, Plan};
use pathrs::Handle;
use pathrs::flags::OpenFlags;

use super::{Rootfs, fd_path};
use crate::stage::StageError;

/// Flags a remount may carry; everything else in `flags` is for the
/// initial mount only.
const REMOUNT_MASK: u64 = libc::MS_RDONLY
    | libc::MS_NOSUID
    | libc::MS_NODEV
    | libc::MS_NOEXEC
    | libc::MS_NOATIME
    | libc::MS_NODIRATIME
    | libc::MS_RELATIME
    | libc::MS_STRICTATIME
    | bulkhead_spec::mountopt::MS_NOSYMFOLLOW;

fn perm(mode: u32) -> std::fs::Permissions {
    std::fs::Permissions::from_mode(mode)
}

/// Create (or find) the destination: a directory, or a file for a bind mount
/// of a non-directory.
fn destination(rootfs: &Rootfs, dest: &Path, want_dir: bool) -> Result<Handle, StageError> {
    if want_dir {
        return super::mkdir_all(&rootfs.root, dest, 0o755)
            .map_err(StageError::sys("create destination"));
    }
    if let Ok(h) = super::lookup(&rootfs.root, dest, true) {
        return Ok(h);
    }
    if let Some(parent) = dest.parent() {
        super::mkdir_all(&rootfs.root, parent, 0o755)
            .map_err(StageError::sys("create destination directory"))?;
    }
    rootfs
        .root
        .create_file(
            dest,
            OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
            &perm(0o644),
        )
        .map_err(StageError::sys("create destination file"))?;
    rootfs
        .root
        .resolve(dest)
        .map_err(StageError::sys("resolve destination"))
}

/// A /proc or /sys destination that is a symlink or not a directory is how
/// LSM-label and procfs-write redirections start: refuse it.
fn refuse_odd_proc_dest(rootfs: &Rootfs, dest: &Path) -> Result<(), StageError> {
    if let Ok(h) = super::lookup(&rootfs.root, dest, false) {
        let st = rustix::fs::fstat(h.as_fd()).map_err(StageError::sys("stat destination"))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFDIR {
            return Err(StageError::msg(
                "destination",
                "must be a directory, not a symlink or file, for proc and sysfs mounts",
            ));
        }
    }
    Ok(())
}

/// Mount flags that a user namespace may not clear on a bind mount of a host
/// mount; they have to be repeated on remount or the kernel says EPERM.
fn locked_flags(source: &str) -> u64 {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::statvfs(source) else {
        return 0;
    };
    let f = st.f_flag;
    let mut out = 0;
    for (sv, ms) in [
        (F::RDONLY, libc::MS_RDONLY),
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(sv) {
            out |= ms;
        }
    }
    out
}

pub(super) fn mount_one(
    rootfs: &Rootfs,
    plan: &Plan,
    m: &MountPlan,
    cgroups: &CgroupSet,
    idmapped: Option<&std::os::fd::OwnedFd>,
) -> Result<(), StageError> {
    let dest = &m.destination;
    let flags = m.options.flags;
    if m.fstype == "cgroup" || m.fstype == "cgroup2" {
        return mount_cgroup(rootfs, plan, m, cgroups);
    }
    if m.fstype == "proc" || m.fstype == "sysfs" {
        refuse_odd_proc_dest(rootfs, dest)?;
    }
    if m.is_bind() {
        let src = m.source.as_deref().unwrap_or_default();
        let meta =
            std::fs::metadata(src).map_err(|e| StageError::msg("source", format!("{src}: {e}")))?;
        let h = destination(rootfs, dest, meta.is_dir())?;
        if let Some(tree) = idmapped {
            // Made and flagged by stage 0; only moved into place here.
            rustix::mount::move_mount(
                tree.as_fd(),
                "",
                h.as_fd(),
                "",
                rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                    | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
            .map_err(StageError::sys("move idmapped mount"))?;
            return propagate(rootfs, m);
        }
        bulkhead_sys::mount(
            Some(src),
            &fd_path(&h),
            None,
            libc::MS_BIND | (flags & libc::MS_REC),
            None,
        )
        .map_err(StageError::sys(format!("bind {src}")))?;
        let mut re = flags & REMOUNT_MASK;
        if re != 0 {
            if rootfs.in_userns {
                let locked = locked_flags(src);
                re |= locked & !(libc::MS_NOATIME | libc::MS_NODIRATIME | libc::MS_RELATIME);
                if re & (libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME) == 0 {
                    re |= locked & (libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_NODIRATIME);
                }
            }
            remount_bind(rootfs, dest, re, "remount with options")?;
        }
        if rootfs.rootless && flags & libc::MS_REC != 0 {
            host_cgroupfs_read_only(rootfs)?;
        }
    } else {
        let h = destination(rootfs, dest, true)?;
        // tmpcopyup: keep the covered directory open by fd, so its contents can
        // be copied into the new tmpfs without looking anything up by name.
        let covered = if m.options.tmpcopyup && m.fstype == "tmpfs" {
            Some(
                super::open_dir(&h)
                    .map_err(StageError::sys("tmpcopyup: open covered directory"))?,
            )
        } else {
            None
        };
        let source = m.source.clone().unwrap_or_else(|| m.fstype.clone());
        let labelled = crate::stage::lsm::with_mount_label(
            &m.fstype,
            &m.options.data,
            plan.mount_label.as_deref(),
        );
        // Overlay in a user namespace cannot write trusted.* xattrs; the
        // kernel asks for userxattr (user.overlay.*) there.
        let labelled = if m.fstype == "overlay"
            && rootfs.in_userns
            && !labelled.split(',').any(|o| o == "userxattr")
        {
            if labelled.is_empty() {
                "userxattr".to_string()
            } else {
                format!("{labelled},userxattr")
            }
        } else {
            labelled
        };
        let data = labelled.as_str();
        let fs_flags = flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        let res = bulkhead_sys::mount(
            Some(&source),
            &fd_path(&h),
            Some(&m.fstype),
            fs_flags,
            Some(data),
        );
        match res {
            Ok(()) => {}
            // Without their own network (sysfs) or ipc (mqueue) namespace a
            // user namespace may not mount these fresh: bind the host's, as
            // runc does, read-only-ness and other flags kept.
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    && ((m.fstype == "sysfs" && !plan.creates(NsKind::Network))
                        || (m.fstype == "mqueue" && !plan.creates(NsKind::Ipc))) =>
            {
                let host = if m.fstype == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                bulkhead_sys::mount(
                    Some(host),
                    &fd_path(&h),
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .map_err(StageError::sys(format!("bind {host}")))?;
                let mut re = (flags & REMOUNT_MASK) | locked_flags(host);
                if rootfs.rootless && m.fstype == "sysfs" {
                    // The host's own sysfs: never writable from a rootless container.
                    re |= libc::MS_RDONLY;
                }
                remount_bind(rootfs, dest, re, format!("remount {host}"))?;
                if rootfs.rootless {
                    host_cgroupfs_read_only(rootfs)?;
                }
            }
            Err(e) => {
                return Err(StageError::msg(
                    "mount",
                    format!(
                        "{} ({}): {e}",
                        m.fstype,
                        if data.is_empty() { "-" } else { data }
                    ),
                ));
            }
        }
        if let Some(src) = covered {
            let top = reresolve(rootfs, dest)?;
            let dst = super::open_dir(&top).map_err(StageError::sys("tmpcopyup: open tmpfs"))?;
            super::copyup::copy_tree(src.as_fd(), dst.as_fd())
                .map_err(StageError::sys("tmpcopyup"))?;
        }
    }
    propagate(rootfs, m)
}

/// Rootless: a `/sys/fs/cgroup` that came in with a bind of the host's /sys
/// (the rootless config's rbind, or sysfs without a network namespace) holds
/// the host's cgroup mounts, writable wherever the user was delegated a
/// cgroup; make that whole tree read-only (CVE-2023-25809) right away, before
/// a later mount covers it (the container's root could unmount that one).
pub(super) fn host_cgroupfs_read_only(rootfs: &Rootfs) -> Result<(), StageError> {
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    let Ok(h) = rootfs.root.resolve("/sys/fs/cgroup") else {
        return Ok(());
    };
    let Ok(st) = rustix::fs::fstatfs(h.as_fd()) else {
        return Ok(());
    };
    // Still sysfs: nothing is mounted there.
    if st.f_type == SYSFS_MAGIC {
        return Ok(());
    }
    match bulkhead_sys::mount_setattr(h.as_fd(), true, bulkhead_sys::mount_attr::RDONLY, 0, None) {
        // EINVAL: the directory is inside a mount, not the root of one.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map_err(StageError::sys("make /sys/fs/cgroup read-only")),
    }
}

/// Recursive attributes and propagation, applied to the mount now on top
/// of the destination.
fn propagate(rootfs: &Rootfs, m: &MountPlan) -> Result<(), StageError> {
    let dest = &m.destination;
    if m.options.rec_attr_set != 0 || m.options.rec_attr_clr != 0 {
        let top = reresolve(rootfs, dest)?;
        bulkhead_sys::mount_setattr(
            top.as_fd(),
            true,
            m.options.rec_attr_set,
            m.options.rec_attr_clr,
            None,
        )
        .map_err(StageError::sys("set recursive mount attributes"))?;
    }
    for p in &m.options.propagation {
        let top = reresolve(rootfs, dest)?;
        bulkhead_sys::mount(None, &fd_path(&top), None, *p, None)
            .map_err(StageError::sys("set propagation"))?;
    }
    Ok(())
}

/// Remount the bind mount now on top of `dest` with `flags` (ro, nosuid…).
fn remount_bind(
    rootfs: &Rootfs,
    dest: &Path,
    flags: u64,
    step: impl Into<String>,
) -> Result<(), StageError> {
    let top = reresolve(rootfs, dest)?;
    bulkhead_sys::mount(
        None,
        &fd_path(&top),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | flags,
        None,
    )
    .map_err(StageError::sys(step))
}

/// After mounting, the destination fd still names the covered directory;
/// resolve again to reach the new mount on top.
fn reresolve(rootfs: &Rootfs, dest: &Path) -> Result<Handle, StageError> {
    rootfs
        .root
        .resolve(dest)
        .map_err(StageError::sys("resolve mounted destination"))
}

/// `/sys/fs/cgroup`: a tmpfs holding a bind mount of the container's own
/// cgroup in every hierarchy (v1/hybrid), or the v2 cgroup directly.
fn mount_cgroup(
    rootfs: &Rootfs,
    plan: &Plan,
    m: &MountPlan,
    cgroups: &CgroupSet,
) -> Result<(), StageError> {
    let dest = &m.destination;
    // Rootless: never writable, whatever the config asks (CVE-2023-25809).
    let ro = m.options.flags & libc::MS_RDONLY != 0 || rootfs.rootless;
    let base = m.options.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    let h = destination(rootfs, dest, true)?;
    let v2_only = cgroups.dirs.len() == 1 && cgroups.dirs[0].v2 && cgroups.dirs[0].name.is_empty();
    if v2_only || m.fstype == "cgroup2" {
        if plan.creates(NsKind::Cgroup) {
            return bulkhead_sys::mount(
                Some("cgroup2"),
                &fd_path(&h),
                Some("cgroup2"),
                base | if ro { libc::MS_RDONLY } else { 0 },
                None,
            )
            .map_err(StageError::sys("mount cgroup2"));
        }
        let Some(d) = cgroups.dirs.iter().find(|d| d.v2) else {
            return Ok(());
        };
        return bind_ro(rootfs, &d.path, &fd_path(&h), dest, base, ro);
    }
    bulkhead_sys::mount(
        Some("tmpfs"),
        &fd_path(&h),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .map_err(StageError::sys("mount tmpfs for cgroups"))?;
    // The tmpfs was mounted just now, in a mount namespace nothing else has
    // entered yet: its directories are made and reached below its own fd,
    // one `mkdirat` and two `openat` each, instead of resolving every path
    // from the container's root again (about 40 syscalls less here).
    let tmp = reresolve(rootfs, dest)?;
    let below = |name: &str| -> Result<Handle, StageError> {
        let fd = rustix::fs::openat(
            &tmp,
            name,
            rustix::fs::OFlags::PATH
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(StageError::sys(format!("open {}/{name}", dest.display())))?;
        Ok(Handle::from_fd(fd))
    };
    for d in &cgroups.dirs {
        if d.name.is_empty() {
            continue;
        }
        let sub: PathBuf = dest.join(&d.name);
        if d.name.contains('/') || d.name == "." || d.name == ".." {
            let sh = destination(rootfs, &sub, true)?;
            bind_ro(rootfs, &d.path, &fd_path(&sh), &sub, base, ro)?;
        } else {
            rustix::fs::mkdirat(
                &tmp,
                d.name.as_str(),
                rustix::fs::Mode::from_raw_mode(0o755),
            )
            .map_err(StageError::sys(format!("create {}", sub.display())))?;
            let sh = below(&d.name)?;
            bulkhead_sys::mount(
                Some(&d.path.to_string_lossy()),
                &fd_path(&sh),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )
            .map_err(StageError::sys(format!("bind {}", d.path.display())))?;
            let mut re = base | if ro { libc::MS_RDONLY } else { 0 };
            if rootfs.in_userns {
                re |= locked_flags(&d.path.to_string_lossy());
            }
            let top = below(&d.name)?;
            bulkhead_sys::mount(
                None,
                &fd_path(&top),
                None,
                libc::MS_REMOUNT | libc::MS_BIND | re,
                None,
            )
            .map_err(StageError::sys(format!("remount {}", sub.display())))?;
        }
        // Comounted controllers ("cpu,cpuacct") are also reachable by each name.
        if d.name.contains(',') {
            for c in d.name.split(',') {
                let _ = rootfs.root.create(
                    dest.join(c),
                    &pathrs::InodeType::Symlink(PathBuf::from(&d.name)),
                );
            }
        }
    }
    if ro {
        remount_bind(
            rootfs,
            dest,
            libc::MS_RDONLY | base,
            "remount cgroup tmpfs read-only",
        )?;
    }
    Ok(())
}

fn bind_ro(
    rootfs: &Rootfs,
    src: &Path,
    target: &Path,
    dest: &Path,
    base: u64,
    ro: bool,
) -> Result<(), StageError> {
    bulkhead_sys::mount(
        Some(&src.to_string_lossy()),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(StageError::sys(format!("bind {}", src.display())))?;
    let mut re = base | if ro { libc::MS_RDONLY } else { 0 };
    if rootfs.in_userns {
        re |= locked_flags(&src.to_string_lossy());
    }
    remount_bind(rootfs, dest, re, format!("remount {}", dest.display()))
}
