//! Mounting an image's layers with overlayfs: the layers are read-only lower
//! directories (top-most first), `upper` takes the container's writes.

use std::ffi::CString;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

use crate::error::{Error, Result};
use crate::store::ImageRef;

/// The mount data limit (one page, less room for the terminator).
const MAX_DATA: usize = 4000;

fn opt_path<'a>(target: &Path, p: &'a Path) -> Result<&'a str> {
    let s = p.to_str().ok_or_else(|| Error::Mount {
        target: target.into(),
        reason: format!("{} is not UTF-8", p.display()),
    })?;
    if !p.is_absolute() || s.contains([',', ':', '\\', '\n']) {
        return Err(Error::Mount {
            target: target.into(),
            reason: format!("{s:?}: overlay directories must be absolute, without ',' ':' or '\\'"),
        });
    }
    Ok(s)
}

/// The overlayfs mount options (`lowerdir=…,upperdir=…,workdir=…`) for
/// `image` over `upper` and `work`, checked against the one-page limit;
/// `target` names the mount in errors. A rootless sandbox hands them to the
/// container, which mounts them inside its own user namespace.
pub fn overlay_options(
    image: &ImageRef,
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<String> {
    if image.layers.is_empty() {
        return Err(Error::Mount {
            target: target.into(),
            reason: "the image has no layers".into(),
        });
    }
    let mut lowers = Vec::new();
    for l in image.layers.iter().rev() {
        if !l.dir.is_dir() {
            return Err(Error::Mount {
                target: target.into(),
                reason: format!(
                    "layer {} is not in the store ({})",
                    l.diff_id,
                    l.dir.display()
                ),
            });
        }
        lowers.push(opt_path(target, &l.dir)?);
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        opt_path(target, upper)?,
        opt_path(target, work)?
    );
    if data.len() > MAX_DATA {
        return Err(Error::Mount {
            target: target.into(),
            reason: format!(
                "{} layers make {} bytes of mount options, more than the {MAX_DATA} the kernel takes",
                lowers.len(),
                data.len()
            ),
        });
    }
    Ok(data)
}

/// Mounts `image` on `target` with overlayfs: its layers as read-only
/// lowers (so the image is never modified), `upper` for the container's
/// changes and `work` as overlayfs's work directory (empty, on the same
/// filesystem as `upper`). Keep `upper` to keep a container's changes;
/// remove it (after [`unmount_rootfs`]) to throw them away.
pub fn mount_rootfs(image: &ImageRef, upper: &Path, work: &Path, target: &Path) -> Result<()> {
    let data = overlay_options(image, upper, work, target)?;
    let data = CString::new(data).map_err(|_| Error::Mount {
        target: target.into(),
        reason: "NUL in a path".into(),
    })?;
    rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|e| Error::Mount {
        target: target.into(),
        reason: format!("mount: {e}"),
    })
}

/// Unmounts what [`mount_rootfs`] mounted on `target`.
pub fn unmount_rootfs(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|e| Error::Mount {
        target: target.into(),
        reason: format!("unmount: {e}"),
    })
}
