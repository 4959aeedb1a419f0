//! The three sandbox profiles, named after Kubernetes' Pod Security
//! Standards, and what each switches on before any flag is applied.

use std::str::FromStr;

use super::SandboxError;

/// Docker's default capability set (moby `oci/caps/defaults.go`): what
/// `baseline` keeps, as Docker users expect.
pub const DOCKER_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Default limits of `restricted`: enough for builds and test suites, small
/// enough that a fork bomb or a leak stays in the sandbox.
pub const RESTRICTED_PIDS: i64 = 1024;
pub const RESTRICTED_MEMORY: u64 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Every layer on (the default).
    #[default]
    Restricted,
    /// Docker's defaults.
    Baseline,
    /// `docker run --privileged`, within reason.
    Privileged,
}

impl FromStr for Profile {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, SandboxError> {
        match s {
            "restricted" => Ok(Profile::Restricted),
            "baseline" => Ok(Profile::Baseline),
            "privileged" => Ok(Profile::Privileged),
            _ => Err(SandboxError::flag(
                "--profile",
                format!("unknown profile {s:?} (expected restricted, baseline or privileged)"),
            )),
        }
    }
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Restricted => "restricted",
            Profile::Baseline => "baseline",
            Profile::Privileged => "privileged",
        }
    }
}

/// What a profile switches on; every field can be overridden by a flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub userns: bool,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp: bool,
    pub landlock: bool,
    pub read_only: bool,
    pub masked: bool,
    pub sysfs_writable: bool,
    pub all_devices: bool,
    pub pids_limit: Option<i64>,
    pub memory: Option<u64>,
    pub nofile: Option<u64>,
}

impl Profile {
    pub fn defaults(self) -> Defaults {
        match self {
            Profile::Restricted => Defaults {
                userns: true,
                capabilities: Vec::new(),
                no_new_privileges: true,
                seccomp: true,
                landlock: true,
                read_only: true,
                masked: true,
                sysfs_writable: false,
                all_devices: false,
                pids_limit: Some(RESTRICTED_PIDS),
                memory: Some(RESTRICTED_MEMORY),
                nofile: Some(1024),
            },
            Profile::Baseline => Defaults {
                userns: false,
                capabilities: DOCKER_CAPABILITIES.iter().map(|s| s.to_string()).collect(),
                no_new_privileges: false,
                seccomp: true,
                landlock: false,
                read_only: false,
                masked: true,
                sysfs_writable: false,
                all_devices: false,
                pids_limit: None,
                memory: None,
                nofile: None,
            },
            Profile::Privileged => Defaults {
                userns: false,
                // Every capability the runtime holds.
                capabilities: vec!["ALL".to_string()],
                no_new_privileges: false,
                seccomp: false,
                landlock: false,
                read_only: false,
                masked: false,
                sysfs_writable: true,
                all_devices: true,
                pids_limit: None,
                memory: None,
                nofile: None,
            },
        }
    }
}
