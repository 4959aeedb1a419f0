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
//!
//! Rootless (an unprivileged caller), the store is the user's own
//! (`$XDG_DATA_HOME/bulkhead/images`), layers are unpacked inside a user
//! namespace with the sandbox's own maps (the user as root, its sub-ids as
//! 1..), and the container mounts the overlay itself, at `/`, inside its
//! user namespace: an unprivileged user can neither idmap nor mount on the
//! host.

use std::io::IsTerminal;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bulkhead_image::{ContainerRoot, IdMap, ImageRef, ProgressPrinter, Store};
use bulkhead_spec::sandbox::{ID_RANGE, ImageConfig, Rootless};

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
        self.chosen_store()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
    }

    fn chosen_store(&self) -> Option<PathBuf> {
        self.image_store.clone().or_else(|| {
            std::env::var_os(STORE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// An unprivileged user's store: `--image-store`, `$BULKHEAD_IMAGE_STORE`,
    /// else `$XDG_DATA_HOME/bulkhead/images`, else
    /// `$HOME/.local/share/bulkhead/images` (where rootless podman keeps its
    /// storage too: persistent, the user's own).
    pub fn rootless_store_dir(&self) -> Result<PathBuf> {
        if let Some(d) = self.chosen_store() {
            return Ok(d);
        }
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(d) = env("XDG_DATA_HOME").filter(|d| d.is_absolute()) {
            return Ok(d.join("bulkhead/images"));
        }
        match env("HOME").filter(|d| d.is_absolute()) {
            Some(h) => Ok(h.join(".local/share/bulkhead/images")),
            None => bail!(
                "--image: neither XDG_DATA_HOME nor HOME is set to an absolute path, so there \
                 is no place for your image store; set one, or give --image-store DIR"
            ),
        }
    }
}

/// Root runs what its store holds: a store another user could change (it,
/// or a directory above it, owned by them or writable by group or others
/// without the sticky bit) would let them choose what root's sandboxes run.
/// Checked on the path as the kernel resolves it.
fn trusted_by_root(store_dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let abs = std::path::absolute(store_dir)
        .with_context(|| format!("--image-store {}", store_dir.display()))?;
    // The store may not exist yet: check what does (it is created root's).
    let mut existing = abs.as_path();
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(p) => existing = p,
            None => return Ok(()),
        }
    }
    let real = std::fs::canonicalize(existing)
        .with_context(|| format!("--image-store {}", store_dir.display()))?;
    for d in real.ancestors() {
        let m = std::fs::symlink_metadata(d)
            .with_context(|| format!("--image-store {}: {}", store_dir.display(), d.display()))?;
        let sticky = m.mode() & 0o1000 != 0;
        let reason = if m.uid() != 0 {
            format!("is owned by uid {}", m.uid())
        } else if m.mode() & 0o022 != 0 && !(sticky && d != real) {
            format!(
                "is writable by group or others (mode {:o})",
                m.mode() & 0o7777
            )
        } else {
            continue;
        };
        bail!(
            "--image-store {}: {} {reason}: root only uses a store no other user can change \
             (they would choose what root's sandboxes run)",
            store_dir.display(),
            d.display()
        );
    }
    Ok(())
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
    if rustix::process::geteuid().is_root() {
        trusted_by_root(&store_dir)?;
    }
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
    if store.is_rootless() {
        // Its layers are owned by a user's ids and marked for userxattr.
        bail!(
            "--image-store {}: an unprivileged user's store (its layers are unpacked for a \
             rootless overlay); root uses its own (default {DEFAULT_STORE})",
            store_dir.display()
        );
    }
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
        config: image_config(c),
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

/// What a rootless image worker reports back (JSON over a pipe).
#[derive(serde::Serialize, serde::Deserialize)]
enum Outcome {
    Image {
        image: Box<ImageRef>,
        /// The layer directories (not part of `ImageRef`'s JSON).
        dirs: Vec<PathBuf>,
    },
    NotFound,
}

/// A rootless image root: the overlay the container mounts at `/`.
pub struct RootlessRoot {
    /// The empty mount point, `root.path`.
    pub rootfs: PathBuf,
    /// `lowerdir=…`, `upperdir=…`, `workdir=…`.
    pub overlay: Vec<String>,
    pub config: ImageConfig,
    pub image: ImageRef,
}

/// The caller's uid/gid and sub-ids map, as [`Rootless`] (see
/// `bulkhead_launch::subid::own_subids`).
pub fn own_rootless() -> Rootless {
    Rootless {
        uid: rustix::process::geteuid().as_raw(),
        gid: rustix::process::getegid().as_raw(),
        sub_ids: bulkhead_launch::subid::own_subids(),
    }
}

fn id_maps(r: &Rootless) -> [Vec<bulkhead_spec::plan::IdMap>; 2] {
    r.id_maps().map(|m| {
        m.into_iter()
            .map(|(c, h, n)| bulkhead_spec::plan::IdMap {
                container_id: c,
                host_id: h,
                size: n,
            })
            .collect()
    })
}

/// Imports (or finds) `reference` in the user's store, unpacking inside a
/// user namespace with the sandbox's maps `r`, and prepares the sandbox's
/// upper and work directories in `sandbox_dir`. Nothing is mounted here.
pub fn prepare_rootless(
    reference: &str,
    sandbox_dir: &Path,
    r: &Rootless,
    args: &ImageArgs,
) -> Result<RootlessRoot> {
    let store_dir = args.rootless_store_dir()?;
    if std::fs::symlink_metadata(reference).is_err() && !store_dir.is_dir() {
        bail!(
            "--image {reference:?}: no such file or directory, and no image of that name or id in the store {} (it does not exist yet)",
            store_dir.display()
        );
    }
    let [uids, gids] = id_maps(r);
    let live = std::io::stderr().is_terminal() && !args.quiet;
    let worker = || -> Result<Vec<u8>, String> {
        let store = Store::open_rootless(&store_dir)
            .map_err(|e| format!("--image-store {}: {e}", store_dir.display()))?;
        let mut progress = ProgressPrinter::new(std::io::stderr(), live);
        let image = store.resolve(reference, &mut |p| progress.event(&p));
        progress.finish();
        let outcome = match image {
            Ok(image) => Outcome::Image {
                dirs: image.layers.iter().map(|l| l.dir.clone()).collect(),
                image: Box::new(image),
            },
            Err(bulkhead_image::Error::NotFound { .. }) => Outcome::NotFound,
            Err(e) => return Err(e.to_string()),
        };
        serde_json::to_vec(&outcome).map_err(|e| e.to_string())
    };
    let flag = || format!("--image {reference:?}");
    let out = bulkhead_launch::userns::run_in_userns(&uids, &gids, worker).with_context(flag)?;
    let mut image = match serde_json::from_slice(&out).with_context(flag)? {
        Outcome::Image { image, dirs } => {
            let mut image: ImageRef = *image;
            for (l, d) in image.layers.iter_mut().zip(dirs) {
                l.dir = d;
            }
            image
        }
        Outcome::NotFound => bail!(
            "--image {reference:?}: no such file or directory, and no image of that name or id in the store {}",
            store_dir.display()
        ),
    };
    let overlay = sandbox_dir.join("overlay");
    let (upper, work, rootfs) = (
        overlay.join("upper"),
        overlay.join("work"),
        sandbox_dir.join("rootfs"),
    );
    for (d, mode) in [
        (&overlay, 0o700),
        (&upper, 0o755),
        (&work, 0o700),
        (&rootfs, 0o755),
    ] {
        std::fs::DirBuilder::new()
            .mode(mode)
            .create(d)
            .with_context(|| format!("create {}", d.display()))?;
    }
    let data =
        bulkhead_image::overlay_options(&image, &upper, &work, &rootfs).with_context(flag)?;
    let c = std::mem::take(&mut image.config);
    let config = image_config(c.clone());
    image.config = c;
    Ok(RootlessRoot {
        rootfs,
        overlay: data.split(',').map(String::from).collect(),
        config,
        image,
    })
}

fn image_config(c: bulkhead_image::ImageConfig) -> ImageConfig {
    ImageConfig {
        entrypoint: c.entrypoint.unwrap_or_default(),
        cmd: c.cmd.unwrap_or_default(),
        env: c.env.unwrap_or_default(),
        working_dir: c.working_dir.filter(|w| !w.is_empty()),
        user: c.user.filter(|u| !u.is_empty()),
        stop_signal: c.stop_signal.filter(|s| !s.is_empty()),
    }
}

/// Whether `sandbox_dir` holds a rootless image root (an upper layer with
/// files of the user's sub-ids, which only its user namespace can remove).
pub fn has_rootless_root(sandbox_dir: &Path) -> bool {
    !bulkhead_image::has_container_root(sandbox_dir) && sandbox_dir.join("overlay").is_dir()
}

/// Removes a rootless sandbox directory from inside a user namespace with
/// the caller's maps: the container wrote its upper layer as container
/// ids, some of them the user's sub-ids (and overlayfs leaves a mode-0
/// `work/work`), which the user cannot remove from outside.
pub fn remove_rootless(sandbox_dir: &Path) -> Result<()> {
    let [uids, gids] = id_maps(&own_rootless());
    bulkhead_launch::userns::run_in_userns(&uids, &gids, || {
        std::fs::remove_dir_all(sandbox_dir)
            .map(|()| Vec::new())
            .map_err(|e| format!("remove {}: {e}", sandbox_dir.display()))
    })
    .with_context(|| format!("remove sandbox dir {}", sandbox_dir.display()))?;
    Ok(())
}

/// The image config of `reference` for `--print-spec`, creating nothing:
/// read from the file or directory it names (not imported), or from the
/// store at `store_dir` for a name or id. Also the image with its layer
/// directories when all of them are in that store (to read its accounts
/// and, rootless, to show the overlay the container would mount).
pub fn inspect(reference: &str, store_dir: &Path) -> Result<(ImageConfig, Option<ImageRef>)> {
    let flag = || format!("--image {reference:?}");
    let store = || -> Option<Store> { store_dir.is_dir().then(|| Store::open(store_dir).ok())? };
    let image = if std::fs::symlink_metadata(reference).is_ok() {
        let image = bulkhead_image::inspect(Path::new(reference), &Default::default())
            .with_context(flag)?;
        let filled = store().and_then(|s| s.fill_dirs(image.clone()).ok());
        (image, filled)
    } else {
        let found = store().map(|s| s.get(reference));
        match found {
            Some(Ok(image)) => (image.clone(), Some(image)),
            Some(Err(bulkhead_image::Error::NotFound { .. })) | None => bail!(
                "--image {reference:?}: no such file or directory, and no image of that name or id in the store {}",
                store_dir.display()
            ),
            Some(Err(e)) => return Err(e).with_context(flag),
        }
    };
    Ok((image_config(image.0.config), image.1))
}

/// Gives the caller rwx on every directory below `dir` it owns (overlayfs
/// leaves `work/work` mode 0), so that a plain removal can go through what
/// is the caller's; symlinks are not followed.
pub fn open_own_dirs(dir: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let me = rustix::process::geteuid().as_raw();
    let Ok(m) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !m.is_dir() || m.uid() != me {
        return;
    }
    if m.mode() & 0o700 != 0o700 {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(m.mode() | 0o700));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        open_own_dirs(&e.path());
    }
}
