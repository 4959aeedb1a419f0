//! The single error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while detecting, placing, limiting or
/// removing a container's cgroups. Each variant names the file, directory
/// or config field that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// `/proc/self/mountinfo` could not be read.
    #[error("reading {path}: {source}")]
    Mountinfo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// No cgroup or cgroup2 filesystem is mounted.
    #[error("no cgroup filesystem found in {path}")]
    NoCgroupMounts { path: PathBuf },

    /// A config field (e.g. `linux.cgroupsPath`) has a value we refuse.
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidPath {
        field: &'static str,
        value: String,
        reason: &'static str,
    },

    /// The systemd cgroup driver was asked for, but systemd is not running.
    #[error("systemd cgroup driver requested but systemd is not running (no {marker})")]
    SystemdNotRunning { marker: PathBuf },

    /// The systemd cgroup driver failed (name, connection, unit job).
    #[error(transparent)]
    Systemd(#[from] crate::systemd::SystemdError),

    /// A filesystem operation on a cgroup file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A cgroup directory could not be removed because it stayed busy.
    #[error("removing {path}: cgroup still busy after {waited_ms} ms (pids left: {pids:?})")]
    Busy {
        path: PathBuf,
        waited_ms: u128,
        pids: Vec<i32>,
    },

    /// Sending a signal to a process of the container failed.
    #[error("sending signal {signal} to pid {pid} (cgroup {path}): {source}")]
    Kill {
        pid: i32,
        signal: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The signal number is not one we can send.
    #[error("invalid signal number {signal}")]
    InvalidSignal { signal: i32 },

    /// The freezer did not reach the requested state.
    #[error(
        "{path}: cgroup did not reach state {wanted} within {waited_ms} ms (last read {last:?})"
    )]
    FreezeTimeout {
        path: PathBuf,
        wanted: &'static str,
        last: String,
        waited_ms: u128,
    },

    /// Freezing was requested but there is no freezer in this set.
    #[error(
        "no freezer available: neither a v1 freezer hierarchy nor a cgroup2 directory in the set"
    )]
    NoFreezer,

    /// A resource field has an invalid value.
    #[error("{field}: {reason}")]
    InvalidResource { field: String, reason: String },

    /// A resource field needs a controller the set does not have.
    #[error("{field}: the {controller} controller is not available")]
    MissingController {
        field: String,
        controller: &'static str,
    },

    /// Writing a resource value to its cgroup file failed.
    #[error("{field}: writing {value:?} to {path}: {source}")]
    WriteResource {
        field: String,
        value: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The cgroup2 device program for `linux.resources.devices` could not
    /// be loaded or attached.
    #[error("{field}: {op} the cgroup2 device program ({path}): {source}")]
    DeviceProgram {
        field: String,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// An update failed and some of the previous values could not be
    /// written back either.
    #[error("{error} (restoring the previous values also failed: {})", failed.join("; "))]
    Rollback {
        error: Box<CgroupError>,
        failed: Vec<String>,
    },

    /// Gathering statistics or watching for OOM events failed.
    #[error("{what}: {source}")]
    Events {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    /// The underlying OS error number, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            CgroupError::Mountinfo { source, .. }
            | CgroupError::Io { source, .. }
            | CgroupError::Kill { source, .. }
            | CgroupError::WriteResource { source, .. }
            | CgroupError::DeviceProgram { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the error comes from a file or directory that does not exist
    /// (e.g. a cgroup removed underneath us).
    pub fn is_not_found(&self) -> bool {
        self.raw_os_error() == Some(libc::ENOENT)
    }
}
