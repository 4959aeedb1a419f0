//! `bulkhead audit`: how isolated a container really is.
//!
//! Two front ends fill one model, [`Observed`]: [`config::observe`] from an
//! OCI config (through the bulkhead-spec plan parser) and [`live::observe`]
//! from a running pid (the kernel's own view in /proc, compared with the
//! host's). [`rules::findings`] turns the model into findings with a
//! severity, the concrete risk and the fix, and [`rules::verdict`] places it
//! on the Pod Security Standards levels. Pure reading: nothing is written.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

pub mod config;
pub mod devices;
pub mod live;
pub mod render;
pub mod rules;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("read config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("process {pid} does not exist (gone, or never was)")]
    NoSuchPid { pid: i32 },
    #[error("read /proc/{pid}/{file}: {reason}")]
    Proc {
        pid: i32,
        file: String,
        reason: String,
    },
}

/// Where the model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Config,
    Live,
}

/// One namespace type, as the container has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum NsState {
    /// Its own, not the host's.
    Private,
    /// The host's (live: same inode as the host's; config: not listed).
    Host,
    /// A config joins an existing namespace by path: whose it is, the config
    /// does not say.
    Joined(String),
    /// Could not be read.
    Unknown,
}

/// One line of a uid_map/gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Capability sets, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Caps {
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub bounding: Vec<String>,
    pub ambient: Vec<String>,
}

impl Caps {
    /// What the process has or can regain: effective ∪ permitted ∪ ambient
    /// (bounding limits what exec of a file-capability binary could add).
    pub fn held(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .effective
            .iter()
            .chain(&self.permitted)
            .chain(&self.ambient)
            .map(String::as_str)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    Disabled,
    Strict,
    Filter,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Seccomp {
    pub mode: SeccompMode,
    /// Live: Seccomp_filters from status. Config: 1 when a filter is set.
    pub filters: Option<u32>,
    /// Config only: the default action and how many syscall rules.
    pub default_action: Option<String>,
    pub rules: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum Landlock {
    /// A ruleset is (or will be) applied.
    Enforced(String),
    None,
    /// Linux exposes no per-process Landlock state in /proc: from outside
    /// a live process it cannot be told.
    Unknown,
}

/// One mount the container sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountObs {
    pub destination: String,
    pub fstype: String,
    /// For a bind mount of a host path: that path (live: resolved through
    /// the host's mount table; may be approximate for nested binds).
    pub host_path: Option<String>,
    pub writable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceObs {
    pub path: String,
    /// 'c' or 'b'.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
}

/// The observed isolation of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub source: Source,
    /// By /proc/<pid>/ns name: user, pid, mnt, net, ipc, uts, cgroup, time.
    pub namespaces: BTreeMap<String, NsState>,
    /// Empty: no user namespace (identity with the host).
    pub uid_map: Vec<IdRange>,
    pub gid_map: Vec<IdRange>,
    /// The process's uid inside the container (real uid).
    pub uid: Option<u32>,
    pub caps: Option<Caps>,
    /// The auditing host's own bounding set: "every capability" means every
    /// one of these (root may lack some, e.g. CAP_SYS_RESOURCE in a VM).
    /// Empty: every capability up to CAP_AUDIT_READ.
    pub host_caps: Vec<String>,
    pub no_new_privs: Option<bool>,
    pub seccomp: Seccomp,
    /// AppArmor profile or SELinux label; None: none set / no LSM.
    pub lsm_label: Option<String>,
    pub landlock: Landlock,
    pub mounts: Vec<MountObs>,
    /// Paths masked from /proc and /sys (live: covered by an empty mount).
    pub masked: Vec<String>,
    pub devices: Vec<DeviceObs>,
    /// The cgroup device allowlist allows every device ("a *:* rwm").
    pub all_devices_allowed: Option<bool>,
    /// What the device cgroup (v1 list, v2 programs) allows of the probe
    /// devices; None when it could not be read or evaluated.
    pub device_access: Option<devices::DeviceAccess>,
    /// Why `device_access` is None although a device cgroup applies.
    pub devices_unknown: Option<String>,
    /// Bytes; Some(None): no limit.
    pub memory_limit: Option<Option<u64>>,
    pub pids_limit: Option<Option<u64>>,
    pub cgroupfs_writable: Option<bool>,
    /// Host network interfaces the config moves into the container
    /// (`linux.netDevices`); only a config says so.
    pub net_devices: Vec<String>,
}

impl Observed {
    pub fn ns(&self, name: &str) -> &NsState {
        self.namespaces.get(name).unwrap_or(&NsState::Unknown)
    }

    /// Host uid that container uid `id` is, when known.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        if self.uid_map.is_empty() {
            return match self.ns("user") {
                NsState::Host => Some(id),
                _ => None,
            };
        }
        self.uid_map
            .iter()
            .find(|r| id >= r.inside && id - r.inside < r.count)
            .map(|r| r.outside + (id - r.inside))
    }
}

pub use rules::{Finding, Pss, Report, Severity};

#[cfg(test)]
mod tests;
