//! Rootless mode: deciding whether the runtime runs without host privileges,
//! and where its state lives then.
//!
//! Rootless means either an unprivileged user running bulkhead directly, or
//! "root" inside a user namespace that someone else set up (rootless podman
//! execs the runtime inside its own namespace as uid 0). Either way the
//! runtime cannot mknod, cannot write the host's cgroups unless they were
//! delegated, and keeps its state under `$XDG_RUNTIME_DIR/bulkhead`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    #[error(
        "XDG_RUNTIME_DIR is not set: rootless bulkhead keeps its state in \
         $XDG_RUNTIME_DIR/bulkhead; set XDG_RUNTIME_DIR to a directory you own \
         (mode 0700, e.g. /run/user/{uid}) or pass --root DIR"
    )]
    NoRuntimeDir { uid: u32 },
}

/// The full identity map of the initial user namespace.
const INITIAL_UID_MAP: [u64; 3] = [0, 0, 4_294_967_295];

/// Whether this process runs in the initial user namespace (its uid_map is
/// the identity over all ids). Unreadable counts as initial.
pub fn in_initial_userns() -> bool {
    let Ok(map) = bulkhead_sys::read_pseudo_file(std::path::Path::new("/proc/self/uid_map")) else {
        return true;
    };
    let fields: Vec<u64> = map
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    fields == INITIAL_UID_MAP
}

/// Whether the runtime runs rootless: `forced` is `--rootless true|false`;
/// `None` (auto) means not root, or podman's "user namespace configured"
/// marker, or a non-initial user namespace. The cheap checks come first, so
/// host root pays one small read.
pub fn detect(forced: Option<bool>) -> bool {
    match forced {
        Some(b) => b,
        None => {
            !rustix::process::geteuid().is_root()
                || std::env::var_os("_CONTAINERS_USERNS_CONFIGURED").is_some_and(|v| !v.is_empty())
                || !in_initial_userns()
        }
    }
}

/// The state directory when `--root` is not given: `/run/bulkhead`, or
/// `$XDG_RUNTIME_DIR/bulkhead` when rootless (an empty value counts as
/// unset: rootful podman passes `XDG_RUNTIME_DIR=`).
pub fn default_root(rootless: bool) -> Result<PathBuf, RootlessError> {
    if !rootless {
        return Ok(PathBuf::from("/run/bulkhead"));
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => Ok(PathBuf::from(d).join("bulkhead")),
        _ => Err(RootlessError::NoRuntimeDir {
            uid: rustix::process::getuid().as_raw(),
        }),
    }
}

/// The hint appended to errors about a state directory that cannot be
/// written.
pub const STATE_DIR_HINT: &str = "pass --root DIR with a directory you can write \
     (rootless: XDG_RUNTIME_DIR must name a directory you own, mode 0700)";
