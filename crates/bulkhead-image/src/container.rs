//! A container's root filesystem made from an image: the store's layer
//! directories as overlayfs lower layers, never copied, and a writable upper
//! layer per container.
//!
//! With an [`IdMap`] (container root is an unprivileged host id), each lower
//! layer is an idmapped mount (`open_tree(OPEN_TREE_CLONE)` +
//! `mount_setattr(MOUNT_ATTR_IDMAP)`): a file the store holds as host uid 0
//! shows as the mapped host id, hence as 0 inside the container. The upper
//! layer is not idmapped: it is owned by the mapped root, and what the
//! container writes lands there owned by its mapped host ids. The overlay
//! is assembled with the new mount API from the detached layer mounts
//! (`lowerdir+` takes each one by fd), so the idmapped lowers are never
//! attached anywhere and no option-length limit applies.
//!
//! `<dir>/root.json` records the image and mapping, `<dir>/rootfs` is the
//! mount point, `<dir>/overlay/upper` and `<dir>/overlay/work` are
//! overlayfs's. `overlay/` is 0700: overlayfs reaches the upper layer with
//! the mounter's credentials, nobody else needs to (host users must not
//! read the container's files there, nor the container reach them
//! except through its root).

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_err};
use crate::manifest::ImageConfig;
use crate::store::{ImageRef, Store};

/// Container ids `0..size` are host ids `host_base..host_base + size`
/// (the same for uids and gids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub host_base: u32,
    pub size: u32,
}

/// What `<dir>/root.json` records, so that a kept upper layer is only ever
/// reused with the image and mapping it was made for, and so that a root
/// left mounted (a detached container) can be released by another process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    image: String,
    idmap: Option<IdMap>,
    keep: bool,
}

const META: &str = "root.json";

/// A mounted container root; see the module documentation.
#[derive(Debug)]
pub struct ContainerRoot {
    dir: PathBuf,
    image: ImageRef,
    keep: bool,
    mounted: bool,
}

fn cerr(dir: &Path, reason: impl Into<String>) -> Error {
    Error::Container {
        dir: dir.into(),
        reason: reason.into(),
    }
}

fn mount_err(target: &Path, what: &str) -> impl FnOnce(Errno) -> Error {
    let target = target.to_path_buf();
    let what = what.to_string();
    move |e| Error::Mount {
        target,
        reason: format!("{what}: {e}"),
    }
}

fn read_meta(dir: &Path) -> Result<Option<Meta>> {
    let p = dir.join(META);
    match fs::read(&p) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| Error::Json {
                what: p.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(p.display().to_string())(e)),
    }
}

/// Whether something is mounted on `p` (statx's mount-root attribute, so a
/// bind mount of the same filesystem counts too).
fn is_mount_point(p: &Path) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
    match rustix::fs::statx(
        rustix::fs::CWD,
        p,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        Ok(r) if r.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
            r.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        }
        // Kernels before 5.8: a different device than the parent's.
        Ok(r) => p
            .parent()
            .and_then(|d| fs::symlink_metadata(d).ok())
            .is_some_and(|parent| {
                parent.dev() != rustix::fs::makedev(r.stx_dev_major, r.stx_dev_minor)
            }),
        Err(_) => false,
    }
}

/// The idmapping of the layer mounts: a user namespace whose id 0 is the
/// host base.
fn userns(map: IdMap) -> Result<OwnedFd> {
    let line = format!("0 {} {}\n", map.host_base, map.size);
    bulkhead_sys::userns_fd(&line, &line).map_err(|source| Error::Io {
        context: format!(
            "user namespace for the idmapping 0:{}:{}",
            map.host_base, map.size
        ),
        source,
    })
}

/// Reads the messages overlayfs left on the fs context (why a mount failed).
fn fs_messages(fs: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    if out.is_empty() {
        String::new()
    } else {
        format!(" ({})", out.join("; "))
    }
}

/// Mounts the overlay on `target`: each layer a detached (optionally
/// idmapped) read-only clone given by fd, top-most first.
fn mount_overlay(
    image: &ImageRef,
    upper: &Path,
    work: &Path,
    target: &Path,
    idmap: Option<IdMap>,
) -> Result<()> {
    use bulkhead_sys::mount_attr;
    let ns = idmap.map(userns).transpose()?;
    let mut lowers = Vec::with_capacity(image.layers.len());
    for l in image.layers.iter().rev() {
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            &l.dir,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(mount_err(target, &format!("open_tree {}", l.dir.display())))?;
        let mut attrs = mount_attr::RDONLY;
        if ns.is_some() {
            attrs |= mount_attr::IDMAP;
        }
        bulkhead_sys::mount_setattr(
            tree.as_fd(),
            false,
            attrs,
            0,
            ns.as_ref().map(|f| f.as_fd()),
        )
        .map_err(|e| Error::Mount {
            target: target.into(),
            reason: format!("idmap layer {}: {e}", l.dir.display()),
        })?;
        lowers.push(tree);
    }
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(mount_err(target, "fsopen overlay"))?;
    let step = |r: rustix::io::Result<()>, what: &str| {
        r.map_err(|e| Error::Mount {
            target: target.into(),
            reason: format!("{what}: {e}{}", fs_messages(&fs)),
        })
    };
    for (i, l) in lowers.iter().enumerate() {
        step(
            rustix::mount::fsconfig_set_fd(&fs, "lowerdir+", l.as_fd()),
            &format!("lower layer {i} (top-most first)"),
        )?;
    }
    step(
        rustix::mount::fsconfig_set_string(&fs, "upperdir", upper),
        "upperdir",
    )?;
    step(
        rustix::mount::fsconfig_set_string(&fs, "workdir", work),
        "workdir",
    )?;
    step(rustix::mount::fsconfig_create(&fs), "create overlay")?;
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(|e| Error::Mount {
        target: target.into(),
        reason: format!("fsmount: {e}{}", fs_messages(&fs)),
    })?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(mount_err(target, "move_mount"))
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .map_err(io_err(format!("create {}", p.display())))?;
    // The umask must not narrow it: the container has to reach its root.
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("chmod {}", p.display())))
}

fn remove_all(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", p.display()))(e)),
    }
}

impl ContainerRoot {
    /// Mounts `image` (from `store`) at `<container_dir>/rootfs`. The
    /// directory is created (mode 0711, so the container's mapped root can
    /// reach its root but not list the directory) if it does not exist. An
    /// existing one may hold other files (they are left alone), or a kept
    /// container root of the same image and mapping, whose upper layer is
    /// then reused. Nothing is left behind when this fails.
    pub fn prepare(
        store: &Store,
        image: &ImageRef,
        container_dir: &Path,
        idmap: Option<IdMap>,
        keep: bool,
    ) -> Result<ContainerRoot> {
        let dir = container_dir;
        // The image as the store has it now (its layers must all be there).
        let image = store.get(&image.id.to_string())?;
        if let Some(m) = idmap
            && (m.size == 0 || m.host_base.checked_add(m.size).is_none())
        {
            return Err(cerr(
                dir,
                format!("invalid idmapping 0:{}:{}", m.host_base, m.size),
            ));
        }
        let meta = Meta {
            image: image.id.to_string(),
            idmap,
            keep,
        };
        let existed = match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => return Err(cerr(dir, "exists and is not a directory")),
            Err(_) => false,
        };
        if existed {
            match read_meta(dir)? {
                Some(old) if old.image == meta.image && old.idmap == meta.idmap => {
                    if is_mount_point(&dir.join("rootfs")) {
                        return Err(cerr(dir, "its root is mounted already (in use)"));
                    }
                }
                Some(old) => {
                    return Err(cerr(
                        dir,
                        format!(
                            "holds a container root of image {} (idmap {:?}), not {} (idmap {:?})",
                            old.image, old.idmap, meta.image, meta.idmap
                        ),
                    ));
                }
                // Other files may share the directory (a sandbox's
                // config); only our own names must be free.
                None => {
                    for n in ["rootfs", "overlay"] {
                        if fs::symlink_metadata(dir.join(n)).is_ok() {
                            return Err(cerr(
                                dir,
                                format!("holds {n:?} but no container root ({META})"),
                            ));
                        }
                    }
                }
            }
        } else {
            mkdir(dir, 0o711)?;
        }
        let had_upper = existed && dir.join("overlay/upper").is_dir();
        let root = ContainerRoot {
            dir: dir.to_path_buf(),
            image,
            keep,
            mounted: false,
        };
        root.setup(&meta, had_upper).inspect_err(|_| {
            // Undo what this call made; a kept container's upper layer
            // from before stays as it was.
            if !existed {
                let _ = remove_all(dir);
            } else {
                let _ = remove_all(&dir.join("overlay/work"));
                let _ = fs::remove_dir(dir.join("rootfs"));
                if !had_upper {
                    let _ = remove_all(&dir.join("overlay"));
                    let _ = fs::remove_file(dir.join(META));
                }
            }
        })
    }

    fn setup(mut self, meta: &Meta, had_upper: bool) -> Result<ContainerRoot> {
        let (upper, work, rootfs) = (self.upper(), self.dir.join("overlay/work"), self.rootfs());
        if !had_upper {
            mkdir(&self.dir.join("overlay"), 0o700)?;
            // The overlay's root directory is the upper's: give it the
            // image root's mode, owned by the container's root.
            let top = self
                .image
                .layers
                .last()
                .map(|l| l.dir.clone())
                .unwrap_or_default();
            let mode = fs::metadata(&top)
                .map_err(io_err(top.display().to_string()))?
                .mode()
                & 0o7777;
            mkdir(&upper, mode)?;
            if let Some(m) = meta.idmap {
                std::os::unix::fs::chown(&upper, Some(m.host_base), Some(m.host_base))
                    .map_err(io_err(format!("chown {}", upper.display())))?;
            }
        }
        // overlayfs wants an empty work directory; it is scratch only.
        remove_all(&work)?;
        mkdir(&work, 0o700)?;
        if !rootfs.is_dir() {
            mkdir(&rootfs, 0o755)?;
        }
        let data = serde_json::to_vec_pretty(meta).map_err(|source| Error::Json {
            what: META.into(),
            source,
        })?;
        fs::write(self.dir.join(META), data)
            .map_err(io_err(self.dir.join(META).display().to_string()))?;
        mount_overlay(&self.image, &upper, &work, &rootfs, meta.idmap)?;
        self.mounted = true;
        Ok(self)
    }

    /// The mounted root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The container's writable layer (its changes to the image).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("overlay/upper")
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How the image wants to be run: Entrypoint, Cmd, Env, WorkingDir,
    /// User, StopSignal.
    pub fn config(&self) -> &ImageConfig {
        &self.image.config
    }

    /// The image the root is made of.
    pub fn image(&self) -> &ImageRef {
        &self.image
    }

    /// Unmounts the root and, unless it was prepared with `keep`, removes
    /// the container directory with the upper layer.
    pub fn release(mut self) -> Result<()> {
        self.mounted = false;
        release_dir(&self.dir, Some(self.keep))
    }

    /// Leaves the root mounted beyond this value (for a container that runs
    /// on after this process exits); [`release_dir`] undoes it later.
    pub fn leave_mounted(mut self) -> PathBuf {
        self.mounted = false;
        std::mem::take(&mut self.dir)
    }
}

impl Drop for ContainerRoot {
    fn drop(&mut self) {
        if self.mounted {
            let _ = release_dir(&self.dir, Some(self.keep));
        }
    }
}

/// Whether `dir` holds a container root (prepared, mounted or kept).
pub fn has_container_root(dir: &Path) -> bool {
    dir.join(META).is_file()
}

/// Unmounts the root in `container_dir` if it is mounted and, unless the
/// container was kept (`keep`, or what `root.json` says when `None`),
/// removes what [`ContainerRoot::prepare`] made there (and the directory,
/// when nothing else is left in it). The image is untouched either way. A
/// directory that holds no container root is an error, and is left alone.
pub fn release_dir(container_dir: &Path, keep: Option<bool>) -> Result<()> {
    let dir = container_dir;
    let meta =
        read_meta(dir)?.ok_or_else(|| cerr(dir, "holds no container root (no root.json)"))?;
    let keep = keep.unwrap_or(meta.keep);
    let rootfs = dir.join("rootfs");
    while is_mount_point(&rootfs) {
        match rustix::mount::unmount(&rootfs, UnmountFlags::empty()) {
            Ok(()) => {}
            // Something still holds it (a process that outlived the
            // container): detach it, so that it goes when that one does.
            Err(Errno::BUSY) => rustix::mount::unmount(&rootfs, UnmountFlags::DETACH)
                .map_err(mount_err(&rootfs, "unmount (detach)"))?,
            Err(e) => return Err(mount_err(&rootfs, "unmount")(e)),
        }
    }
    if keep {
        return remove_all(&dir.join("overlay/work"));
    }
    // Only what prepare made; the directory goes too once it is empty
    // (other files in it are their owner's to remove).
    remove_all(&dir.join("overlay"))?;
    match fs::remove_dir(&rootfs) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err(format!("remove {}", rootfs.display()))(e));
        }
        _ => {}
    }
    fs::remove_file(dir.join(META))
        .map_err(io_err(format!("remove {}", dir.join(META).display())))?;
    let _ = fs::remove_dir(dir);
    Ok(())
}
