//! The image store of bulkhead: imports an image from an OCI image layout
//! directory, an OCI archive (a tar of such a layout) or a docker-archive
//! (as `docker save` and `podman save --format docker-archive` write it),
//! verifies every blob against its digest and every uncompressed layer
//! against the config's `rootfs.diff_ids`, unpacks each layer once into a
//! content-addressed directory, and mounts an image's layers with overlayfs.
//!
//! Safety rules (see `docs/images.md`):
//! - a layer is unpacked into a fresh directory under `<root>/tmp` and only
//!   renamed into `<root>/layers/<diff-id>` once it is complete and verified,
//!   so a layer directory that exists is always whole;
//! - extraction is fd-relative: each path component is opened with
//!   `O_NOFOLLOW`, so no symlink (from the layer or elsewhere) is followed and
//!   nothing can be written outside the layer directory;
//! - entries with `..` components or absolute names, and hardlinks whose
//!   target is not inside the same layer, are errors naming the entry.

#![forbid(unsafe_code)]

mod container;
mod digest;
mod error;
mod manifest;
mod mount;
mod progress;
mod source;
mod store;
mod unpack;

pub use container::{ContainerRoot, IdMap, has_container_root, release_dir};
pub use digest::Digest;
pub use error::{Error, Result};
pub use manifest::ImageConfig;
pub use mount::{mount_rootfs, overlay_options, unmount_rootfs};
pub use progress::ProgressPrinter;
pub use store::{ImageRef, ImportOptions, LayerRef, Progress, Store, inspect};
