//! `bulkhead sandbox --image REF`: the seam the image work plugs into.
//!
//! OWNED BY THE IMAGE WORK (issue 6, image part): this file turns an image
//! reference into a root filesystem for one sandbox (an idmapped overlayfs
//! from `bulkhead-image`) and gives back the parts of the image config a
//! sandbox uses. Until that lands, `--image` is a clear error.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use bulkhead_spec::sandbox::ImageConfig;

/// A prepared image root.
pub struct PreparedRoot {
    /// Becomes `root.path`.
    pub rootfs: PathBuf,
    pub config: ImageConfig,
}

/// Prepares `reference` as the root of the sandbox kept in `sandbox_dir`.
/// `idmap_base` is the first host id of the sandbox's user namespace, when
/// it has one (files owned by image root must look root-owned inside).
pub fn prepare(
    reference: &str,
    sandbox_dir: &Path,
    idmap_base: Option<u32>,
) -> Result<PreparedRoot> {
    let _ = (sandbox_dir, idmap_base);
    bail!(
        "--image {reference:?}: images are not available yet in this build; use --rootfs DIR or the default host root"
    )
}

/// Undoes [`prepare`] for `sandbox_dir` (unmounts, drops the writable
/// layer). Called before the sandbox dir is removed, also when prepare
/// never ran or failed half-way, so it must be idempotent.
pub fn release(sandbox_dir: &Path) -> Result<()> {
    let _ = sandbox_dir;
    Ok(())
}
