//! Process choreography: how a validated [`Plan`] becomes a container init
//! that is fully set up and blocked before the user's program.
//!
//! Three processes, no re-exec of the runtime binary:
//!
//! * **stage 0** (the `bulkhead` process, [`choreography`]): forks stage 1,
//!   places it in its cgroups, writes its id maps, runs the hooks that belong
//!   to the runtime namespace, and returns the init's host pid.
//! * **stage 1** (also in [`choreography`]): joins and creates namespaces.
//!   pid and time namespaces only apply to children, so it forks the init
//!   with `CLONE_PARENT` (the init becomes stage 0's child, and so the
//!   caller's once the runtime exits) and then leaves.
//! * **stage 2**, the init ([`init`]): runs the stage list in order:
//!   namespaces → rootfs → (cgroups were placed by stage 0) → security → exec.
#![forbid(unsafe_code)]

use std::path::Path;

use bulkhead_cgroups::CgroupSet;
use bulkhead_spec::plan::{Plan, ProcessPlan};

pub mod choreography;
pub mod exec;
pub mod hooks;
mod idmap;
mod init;
mod notify;
pub mod stage;
pub mod subid;
pub mod sync;
pub mod userns;

pub use choreography::launch;

/// What `create` (and `run`) hand to the choreography.
#[derive(Debug)]
pub struct LaunchRequest<'a> {
    pub plan: &'a Plan,
    pub process: &'a ProcessPlan,
    pub id: &'a str,
    pub cgroups: &'a CgroupSet,
    /// The limits for the cgroups, when the init's placement applies them
    /// (the systemd driver: the unit exists only once it has a pid); `None`
    /// when they were written before the launch.
    pub place_resources: Option<&'a oci_spec::runtime::LinuxResources>,
    /// The exec fifo, opened read-write: the init blocks reading one byte
    /// from it until `start` writes that byte.
    pub exec_fifo: std::os::fd::BorrowedFd<'a>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    /// The state JSON's fixed part, for hooks.
    pub hook_state: hooks::HookState,
    /// Create a new session keyring for the container (runc's default).
    pub new_keyring: bool,
    /// Where compiled seccomp filters are cached (None: compile every time).
    pub seccomp_cache: Option<&'a Path>,
    /// Without host privileges: id maps through newuidmap/newgidmap when
    /// more than the caller's own id is mapped, device nodes bind-mounted,
    /// the cgroup filesystem read-only.
    pub rootless: bool,
}

/// Why a launch failed. Messages from the container side come back as text
/// because they were produced in another process.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] bulkhead_cgroups::CgroupError),
    #[error("internal: {0}")]
    Protocol(String),
    #[error("linux.seccomp: {0}")]
    Seccomp(#[from] bulkhead_seccomp::SeccompError),
    #[error(transparent)]
    Subid(#[from] Box<subid::SubidError>),
    #[error(transparent)]
    NetDev(#[from] bulkhead_net::netdev::NetDevError),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}
