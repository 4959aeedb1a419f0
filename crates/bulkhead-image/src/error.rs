use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store. Each variant names the
/// file, blob, layer or entry concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The source is neither an OCI layout, an OCI archive nor a
    /// docker-archive.
    #[error(
        "{path}: not an image (expected an OCI layout directory, an OCI archive or a docker-archive tarball): {reason}"
    )]
    NotAnImage { path: PathBuf, reason: String },
    /// The archive or a blob in it is corrupt or truncated.
    #[error("{what}: corrupt or truncated: {reason}")]
    Corrupt { what: String, reason: String },
    /// A blob named in the image is not there.
    #[error("{what}: missing from the image{hint}")]
    Missing { what: String, hint: String },
    /// A blob's content does not hash to the digest that names it.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    /// A blob's length differs from the size its descriptor states.
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// A layer tar entry that would escape the layer, or that the store
    /// refuses to create.
    #[error("layer {layer}: entry {entry:?} rejected: {reason}")]
    UnsafeEntry {
        layer: String,
        entry: String,
        reason: String,
    },
    /// A JSON document of the image (index, manifest, config) is invalid.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// Valid but not understood (a media type, zstd layers, ...).
    #[error("{what}: not supported: {reason}")]
    Unsupported { what: String, reason: String },
    /// The source holds several images and none was selected.
    #[error("{path}: holds {count} images ({names}); pick one by name")]
    Ambiguous {
        path: PathBuf,
        count: usize,
        names: String,
    },
    /// No image in the source or the store matches.
    #[error("image {name:?} not found")]
    NotFound { name: String },
    /// The overlayfs mount or unmount failed.
    #[error("overlay {target}: {reason}")]
    Mount { target: PathBuf, reason: String },
    /// A store that cannot be used this way (root's layers opened by an
    /// unprivileged user).
    #[error("image store {root}: {reason}")]
    Store { root: PathBuf, reason: String },
    /// A container directory that cannot be (re)used or released.
    #[error("container root {dir}: {reason}")]
    Container { dir: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub(crate) fn errno_err(context: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> Error {
    let context = context.into();
    move |e| Error::Io {
        context,
        source: e.into(),
    }
}
