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
use pathrs::error::ErrorKind;
use pathrs::{Handle, Root};
use rustix::fs::OFlags;

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
    /// and flags locked by the host mount must be kept on remounts. Also
    /// true when rootless in a namespace someone else made (rootless podman).
    pub in_userns: bool,
    /// Without host privileges: the host's cgroup filesystem is only ever
    /// visible read-only (a delegated cgroup is writable by the container's
    /// root, CVE-2023-25809).
    pub rootless: bool,
}

/// Path of a verified fd, as the host procfs shows it (valid before pivot_root).
pub(crate) fn fd_path(fd: impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// `Root::resolve` (`follow`) or `resolve_nofollow` for a path that may
/// well be missing: the same single openat2(`RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS`), but a miss is one syscall, where pathrs spends
/// eight more to name the root in its error (read back through procfs).
/// Kernels without openat2, and lookups that keep racing a rename (EAGAIN),
/// go to pathrs.
pub(crate) fn lookup(root: &Root, path: &Path, follow: bool) -> std::io::Result<Handle> {
    use rustix::fs::ResolveFlags;
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    for _ in 0..4 {
        match rustix::fs::openat2(
            root,
            path,
            flags,
            rustix::fs::Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => return Ok(Handle::from_fd(fd)),
            Err(rustix::io::Errno::AGAIN) => continue,
            Err(rustix::io::Errno::NOSYS) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let res = if follow {
        root.resolve(path)
    } else {
        root.resolve_nofollow(path)
    };
    res.map_err(|e| match e.kind() {
        ErrorKind::OsError(Some(errno)) => std::io::Error::from_raw_os_error(errno),
        _ => std::io::Error::other(e),
    })
}

/// `Root::mkdir_all`, without its procfs round trip where it is not needed.
///
/// pathrs re-opens the deepest existing directory through
/// `/proc/thread-self/fd` and verifies that procfs first: about 60 syscalls
/// per call, 25 calls per container. Here an existing directory (resolved
/// in the root, as pathrs does) is used as it is, and a missing one is made
/// below its parent, found the same way: `mkdirat` never follows a symlink,
/// and the `O_NOFOLLOW | O_DIRECTORY` open refuses anything swapped in.
/// Anything else (a file in the way, a `..` to create) goes to pathrs, for
/// its checks and its error.
pub(crate) fn mkdir_all(root: &Root, path: &Path, mode: u32) -> std::io::Result<Handle> {
    use std::os::unix::fs::PermissionsExt;
    let slow = || {
        root.mkdir_all(path, &std::fs::Permissions::from_mode(mode))
            .map_err(std::io::Error::other)
    };
    match lookup(root, path, true) {
        Ok(h) => {
            let st = rustix::fs::fstat(&h)?;
            return if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                Ok(h)
            } else {
                slow()
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return slow(),
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return slow();
    };
    let dir = mkdir_all(root, parent, mode)?;
    match rustix::fs::mkdirat(&dir, name, rustix::fs::Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = rustix::fs::openat(
        &dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(Handle::from_fd(fd))
}

/// A readable fd of a directory handle (O_PATH), opened as "." below it
/// rather than re-opened through procfs as `Handle::reopen` does.
pub(crate) fn open_dir(h: impl AsFd) -> std::io::Result<std::os::fd::OwnedFd> {
    Ok(rustix::fs::openat(
        h,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?)
}

pub fn prepare(
    plan: &Plan,
    process: &ProcessPlan,
    cgroups: &CgroupSet,
    trees: &crate::idmap::IdmapTrees,
    rootless: bool,
) -> Result<Rootfs, StageError> {
    crate::stage::lsm::check_mount_label(plan.mount_label.as_deref())?;
    // Without a mount namespace of its own (the config omits it, so the
    // container shares the host's, as the runtime-spec requires) nothing
    // may touch the host's propagation or root: the mounts go on the rootfs
    // in the host namespace (delete detaches them again) and the container
    // is chrooted instead of pivoted.
    if plan.ns(NsKind::Mount).is_some() {
        // Nothing mounted from here on may propagate back to the host.
        // "unbindable" waits for `finish`: an unbindable rootfs could not be
        // bound onto itself below; private propagates nothing either.
        let prop = match plan.rootfs_propagation {
            Some(p) if p & libc::MS_UNBINDABLE != 0 => libc::MS_PRIVATE | libc::MS_REC,
            Some(p) => p,
            None => libc::MS_SLAVE | libc::MS_REC,
        };
        bulkhead_sys::mount(None, Path::new("/"), None, prop, None)
            .map_err(StageError::sys("make / private to the container"))?;
        // A recursive slave or private leaves no shared mount under / (a
        // shared mount made a slave is a slave only), so the rootfs's parent
        // needs a look (a read of all mountinfo) only after other flags.
        let rec_not_shared = prop & libc::MS_REC != 0
            && prop & (libc::MS_SLAVE | libc::MS_PRIVATE) != 0
            && prop & libc::MS_SHARED == 0;
        if !rec_not_shared {
            make_parent_private(&plan.rootfs)?;
        }
    }
    // The root must be a mount point: for pivot_root, and for root.readonly
    // (which would otherwise apply to whatever mount holds the rootfs).
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
    let open_root = || {
        Root::open(&plan.rootfs).map_err(StageError::sys(format!(
            "root.path {}",
            plan.rootfs.display()
        )))
    };
    let mut rootfs = Rootfs {
        root: open_root()?,
        path: plan.rootfs.clone(),
        in_userns: plan.ns(NsKind::User).is_some() || rootless,
        rootless,
    };
    // A mount at `/` becomes the root itself (a rootless image sandbox's
    // overlay, which only the container's user namespace may mount): it
    // goes first, whatever its place in the list, and the root is opened
    // again so every later mount and pivot_root land on it.
    let at_root = |m: &bulkhead_spec::plan::MountPlan| m.destination == Path::new("/");
    for (i, m) in plan.mounts.iter().enumerate().filter(|(_, m)| at_root(m)) {
        mounts::mount_one(&rootfs, plan, m, cgroups, trees.get(i))
            .map_err(|e| StageError::msg(format!("mounts[{i}] /"), e.reason))?;
        rootfs.root = open_root()?;
    }
    for (i, m) in plan.mounts.iter().enumerate().filter(|(_, m)| !at_root(m)) {
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
    if lookup(&rootfs.root, &process.cwd, true).is_err() {
        let _ = mkdir_all(&rootfs.root, &process.cwd, 0o755);
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
    if plan.ns(NsKind::Mount).is_none() {
        // Shared host mount namespace: chroot only (see prepare).
        bulkhead_sys::chroot(dot).map_err(StageError::sys("chroot"))?;
    } else if no_pivot {
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
    Ok(())
}

/// After pivot_root: masked and read-only paths, the read-only root, and the
/// root's propagation.
pub fn finish(plan: &Plan) -> Result<(), StageError> {
    masks::apply(plan)
}

/// Detach every mount at or below `rootfs` in the caller's mount namespace,
/// deepest first. Used when a container shared the host's mount namespace,
/// so that delete (or a failed create) leaves no mount behind.
pub fn detach_mounts_under(rootfs: &Path) -> std::io::Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(rootfs))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        match bulkhead_sys::umount2(&p, libc::MNT_DETACH) {
            Ok(()) => {}
            // Already gone with a parent detached before it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x"), 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}
