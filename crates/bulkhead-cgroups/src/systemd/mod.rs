//! The systemd cgroup driver (`--systemd-cgroup`).
//!
//! With it, `linux.cgroupsPath` is `slice:prefix:name` and the container's
//! cgroup is a transient systemd unit: `prefix-name.scope` in `slice`
//! (or a slice unit when `name` ends in `.slice`). systemd is asked over
//! D-Bus to create the unit with the init's pid and the resource limits it
//! knows as unit properties; then the cgroupfs code joins the remaining
//! hierarchies and writes every `linux.resources` field, as runc's systemd
//! driver does. `update` sets the properties again, `delete` stops the unit.
//!
//! * [`name`]: parsing `slice:prefix:name`, slice expansion (pure);
//! * [`props`]: `linux.resources` to unit properties for v1 and v2 (pure);
//! * [`bus`]: the D-Bus client (system bus, else systemd's private socket).

pub mod bus;
pub mod name;
pub mod props;

use std::path::PathBuf;

pub use name::{SystemdPath, expand_slice, parse_path};
pub use props::{PropValue, Property};

/// The unit a container's cgroup belongs to; kept in the state file so that
/// `update` and `delete` reach it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    /// `prefix-name.scope` or `name.slice`.
    pub name: String,
    /// The slice the unit is in (`system.slice` by default).
    pub slice: String,
    /// systemd runs in unified (pure cgroup2) mode: v2 property names.
    pub unified: bool,
}

impl Unit {
    /// Whether the unit is a slice (no processes of its own in systemd's
    /// eyes: the pid is placed through cgroupfs).
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// Everything the systemd driver can fail at, naming the field, unit or
/// D-Bus method involved.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// `linux.cgroupsPath` (or the container id in the default path) does
    /// not make a valid systemd unit name.
    #[error("{field}: invalid value {value:?}: {reason}")]
    InvalidName {
        field: &'static str,
        value: String,
        reason: String,
    },

    /// Neither the system bus nor systemd's private socket could be reached.
    #[error(
        "cannot connect to systemd: system bus {bus}: {bus_error}; private socket {private}: {private_error}"
    )]
    Connect {
        bus: PathBuf,
        bus_error: String,
        private: PathBuf,
        private_error: String,
    },

    /// A D-Bus call to systemd failed.
    #[error("systemd {method}({unit}): {source}")]
    Call {
        method: &'static str,
        unit: String,
        #[source]
        source: dbus::Error,
    },

    /// The job systemd queued for the unit did not finish with `done`.
    #[error("systemd job {job} for unit {unit} finished with {result:?}")]
    JobFailed {
        unit: String,
        job: String,
        result: String,
    },

    /// systemd did not report the end of the job in time.
    #[error("timed out after {secs} s waiting for systemd to finish the job for unit {unit}")]
    JobTimeout { unit: String, secs: u64 },

    /// A resource value cannot be expressed as a unit property.
    #[error("{field}: {reason}")]
    Property { field: String, reason: String },
}
