//! /dev: the default device nodes, `linux.devices`, and the std symlinks.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use bulkhead_spec::plan::{DevicePlan, Plan};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

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

/// The directories nodes and links are made in, each resolved in the root
/// once (`/dev` for all the defaults): every node is then one name below an
/// `O_PATH` handle, made and reopened with `*at` calls that never follow a
/// symlink in that last component.
struct Parents<'a> {
    root: &'a pathrs::Root,
    dirs: Vec<(PathBuf, pathrs::Handle)>,
}

impl<'a> Parents<'a> {
    fn new(rootfs: &'a Rootfs) -> Self {
        Parents {
            root: &rootfs.root,
            dirs: Vec::new(),
        }
    }

    /// The handle of `path`'s directory (made if missing) and its last
    /// component.
    fn of<'p>(&mut self, path: &'p Path) -> std::io::Result<(&pathrs::Handle, &'p OsStr)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        let i = match self.dirs.iter().position(|(p, _)| p == parent) {
            Some(i) => i,
            None => {
                let h = super::mkdir_all(self.root, parent, 0o755)?;
                self.dirs.push((parent.to_path_buf(), h));
                self.dirs.len() - 1
            }
        };
        Ok((&self.dirs[i].1, name))
    }
}

pub(super) fn create_devices(rootfs: &Rootfs, plan: &Plan) -> Result<(), StageError> {
    let mut all = defaults();
    all.retain(|d| !plan.devices.iter().any(|c| c.path == d.path));
    all.extend(plan.devices.iter().cloned());
    let mut parents = Parents::new(rootfs);
    // Modes in the config are exact: no umask applied to them.
    let old = bulkhead_sys::umask(0);
    let res = all
        .iter()
        .try_for_each(|d| create_one(&mut parents, rootfs.in_userns, d));
    bulkhead_sys::umask(old);
    res
}

fn open_nofollow(dir: &pathrs::Handle, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn create_one(parents: &mut Parents, in_userns: bool, d: &DevicePlan) -> Result<(), StageError> {
    let step = format!("device {}", d.path.display());
    let (dir, name) = parents.of(&d.path).map_err(StageError::sys(step.clone()))?;
    if in_userns {
        // mknod is not allowed in a user namespace: bind the host's node onto
        // an empty file instead.
        match rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        ) {
            Ok(_) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(StageError::sys(step)(e)),
        }
        let h = open_nofollow(dir, name).map_err(StageError::sys(step.clone()))?;
        return bulkhead_sys::mount(
            Some(&d.path.to_string_lossy()),
            &fd_path(&h),
            None,
            libc::MS_BIND,
            None,
        )
        .map_err(StageError::sys(format!("{step}: bind from host")));
    }
    let kind = match d.kind {
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFIFO => FileType::Fifo,
        _ => FileType::CharacterDevice,
    };
    let mode = Mode::from_raw_mode(d.mode);
    let dev = rustix::fs::makedev(d.major as u32, d.minor as u32);
    match rustix::fs::mknodat(dir, name, kind, mode, dev) {
        Ok(()) => {}
        // Whatever the image has there (a node, a file, a symlink) is replaced.
        Err(rustix::io::Errno::EXIST) => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .map_err(StageError::sys(format!("{step}: replace existing")))?;
            rustix::fs::mknodat(dir, name, kind, mode, dev)
                .map_err(StageError::sys(step.clone()))?;
        }
        Err(e) => return Err(StageError::sys(step)(e)),
    }
    let h = open_nofollow(dir, name).map_err(StageError::sys(step.clone()))?;
    rustix::fs::chownat(
        &h,
        "",
        Some(rustix::fs::Uid::from_raw(d.uid)),
        Some(rustix::fs::Gid::from_raw(d.gid)),
        AtFlags::EMPTY_PATH,
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
    let mut parents = Parents::new(rootfs);
    for (link, target) in links {
        let step = || format!("symlink {link}");
        let (dir, name) = parents
            .of(Path::new(link))
            .map_err(|e| StageError::msg(step(), e.to_string()))?;
        match rustix::fs::symlinkat(target, dir, name) {
            Ok(()) => {}
            // An existing /dev/ptmx (a device node from a host-like /dev) is
            // replaced so that it points at the container's own devpts
            // instance; other existing entries are kept, as runc keeps them.
            Err(rustix::io::Errno::EXIST) if link == "/dev/ptmx" => {
                let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
                match rustix::fs::symlinkat(target, dir, name) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(StageError::msg(step(), e.to_string())),
                }
            }
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(StageError::msg(step(), e.to_string())),
        }
    }
    Ok(())
}
