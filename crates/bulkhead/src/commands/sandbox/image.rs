//! `bulkhead sandbox --image REF`: turns an image reference into the root
//! filesystem of one sandbox, and gives back the parts of the image config
//! a sandbox uses.
//!
//! The image is imported into the store (`/var/lib/bulkhead/images`,
//! `--image-store` or `$BULKHEAD_IMAGE_STORE`) unless it is there already,
//! with a progress indicator on stderr, and mounted at `<sandbox dir>/rootfs`
//! by [`bulkhead_image::ContainerRoot`]: the store's layers as idmapped
//! read-only overlayfs lower layers (container root sees the image's root
//! files as its own), the sandbox's writes in `<sandbox dir>/overlay/upper`,
//! owned by its mapped host ids. The upper layer lives as long as the
//! sandbox directory. See docs/images.md.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bulkhead_image::{ContainerRoot, IdMap, ProgressPrinter, Store};
use bulkhead_spec::sandbox::{ID_RANGE, ImageConfig};

/// The image store of root.
pub const DEFAULT_STORE: &str = "/var/lib/bulkhead/images";
/// Overrides [`DEFAULT_STORE`] (as `--image-store` does).
pub const STORE_ENV: &str = "BULKHEAD_IMAGE_STORE";

/// The flags of `bulkhead sandbox` that concern images.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImageArgs {
    /// The image store [default: $BULKHEAD_IMAGE_STORE or
    /// /var/lib/bulkhead/images].
    #[arg(long, value_name = "DIR")]
    pub image_store: Option<PathBuf>,
    /// Plain progress lines while an image is unpacked, also on a terminal.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl ImageArgs {
    /// The store directory these flags (or the environment) choose.
    pub fn store_dir(&self) -> PathBuf {
        self.image_store
            .clone()
            .or_else(|| {
                std::env::var_os(STORE_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
    }
}

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
    args: &ImageArgs,
) -> Result<PreparedRoot> {
    let flag = || format!("--image {reference:?}");
    let store_dir = args.store_dir();
    // A name when there is no store yet: nothing to find, and nothing to
    // create on the host for a typo.
    if std::fs::symlink_metadata(reference).is_err() && !store_dir.is_dir() {
        anyhow::bail!(
            "--image {reference:?}: no such file or directory, and no image of that name or id in the store {} (it does not exist yet)",
            store_dir.display()
        );
    }
    let store = Store::open(&store_dir)
        .with_context(|| format!("--image-store {}", store_dir.display()))?;
    let stderr = std::io::stderr();
    let live = stderr.is_terminal() && !args.quiet;
    let mut progress = ProgressPrinter::new(stderr, live);
    let image = store.resolve(reference, &mut |p| progress.event(&p));
    progress.finish();
    let image = match image {
        Err(bulkhead_image::Error::NotFound { .. }) => anyhow::bail!(
            "--image {reference:?}: no such file or directory, and no image of that name or id in the store {}",
            store.root().display()
        ),
        r => r.with_context(flag)?,
    };
    let idmap = idmap_base.map(|host_base| IdMap {
        host_base,
        size: ID_RANGE,
    });
    // Kept: the sandbox directory's owner removes it (after `release`).
    let root =
        ContainerRoot::prepare(&store, &image, sandbox_dir, idmap, true).with_context(flag)?;
    let c = root.config().clone();
    let rootfs = root.rootfs();
    // The root stays mounted for the container's life; [`release`] (from
    // this or a later process) unmounts it.
    root.leave_mounted();
    Ok(PreparedRoot {
        rootfs,
        config: ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.filter(|w| !w.is_empty()),
            user: c.user.filter(|u| !u.is_empty()),
            stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
        },
    })
}

/// Undoes [`prepare`] for `sandbox_dir` (unmounts the root; the caller
/// removes the directory, and the writable layer with it). Idempotent: a
/// directory without an image root is left alone.
pub fn release(sandbox_dir: &Path) -> Result<()> {
    if !bulkhead_image::has_container_root(sandbox_dir) {
        return Ok(());
    }
    bulkhead_image::release_dir(sandbox_dir, Some(true))
        .with_context(|| format!("release the image root in {}", sandbox_dir.display()))
}
