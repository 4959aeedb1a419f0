//! Container lifecycle and the state store.
//!
//! State lives in `<root>/<id>/`: `state.json` (written by rename), the exec
//! fifo while the container is `created`, and a lock taken by every command
//! that changes the container, so concurrent commands on one id serialise.
//! Status is never stored: it is derived from the kernel each time (is the
//! init alive and the same process, does the fifo still exist, is the cgroup
//! frozen), so a killed runtime can never leave a stale status behind.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bulkhead_cgroups::CgroupSet;
use bulkhead_launch::hooks::{self, HookState};
use bulkhead_launch::{LaunchError, LaunchRequest};
use bulkhead_spec::plan::{NsKind, Plan, PlanError};
use serde::{Deserialize, Serialize};

pub mod learn;
mod proc;
pub mod rootless;

pub use proc::ProcStat;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container with id \"{0}\" already exists")]
    Exists(String),
    #[error("container \"{0}\" is not running")]
    NotRunning(String),
    #[error("container not running")]
    NotRunningPlain,
    #[error("cannot {action} container \"{id}\" in status {status}")]
    BadStatus {
        action: String,
        id: String,
        status: Status,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Id(#[from] bulkhead_spec::id::IdError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] bulkhead_cgroups::CgroupError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("state directory {path}: {source}: {hint}", hint = rootless::STATE_DIR_HINT)]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LifecycleError {
    let what = what.into();
    move |source| LifecycleError::Io { what, source }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What is persisted per container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// The init's start time in clock ticks: a recycled pid is not our init.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
    pub cgroups: CgroupSet,
    /// The config as it was at create: `exec` shares its confinement, and
    /// poststart/poststop hooks come from it, whatever the bundle holds now.
    pub spec: oci_spec::runtime::Spec,
    /// How the init ended, when a process that reaped it recorded it (the
    /// sandbox monitor); absent for OCI containers, whose parent is the
    /// caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    /// The seccomp recorder of a learning run: pid and start time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_recorder: Option<(i32, u64)>,
}

/// How a container's init ended, as its reaper saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// The exit status, when it exited.
    #[serde(rename = "exitCode", skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// RFC 3339, when it was reaped.
    #[serde(rename = "finishedAt")]
    pub finished_at: String,
}

impl Exit {
    /// From a wait status, finished now.
    pub fn now(status: bulkhead_sys::ExitStatus) -> Exit {
        let (exit_code, signal) = match status {
            bulkhead_sys::ExitStatus::Exited(c) => (Some(c), None),
            bulkhead_sys::ExitStatus::Signaled(s) => (None, Some(s)),
        };
        Exit {
            exit_code,
            signal,
            finished_at: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        }
    }

    /// The shell's number for it: the status, or 128 + the signal.
    pub fn code(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 0,
        }
    }
}

/// The `state` JSON (runc's shape).
#[derive(Debug, Serialize)]
pub struct StateView {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Only when recorded (never for OCI containers, so runc's shape is
    /// unchanged for its clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
}

pub struct Store {
    pub root: PathBuf,
    /// Running without host privileges (see [`rootless`]).
    pub rootless: bool,
}

/// Held while a command changes a container.
pub struct Lock(#[allow(dead_code)] OwnedFd);

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: oci_spec::runtime::Process,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub sub_cgroup: Option<String>,
    pub ignore_paused: bool,
}

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub systemd_cgroup: bool,
    /// `--learn-seccomp FILE`: learn the workload's seccomp profile.
    pub learn_seccomp: Option<PathBuf>,
}

impl Store {
    pub fn new(root: PathBuf) -> Store {
        Store {
            root,
            rootless: false,
        }
    }

    /// The same store, used rootless (or not).
    pub fn rootless(mut self, rootless: bool) -> Store {
        self.rootless = rootless;
        self
    }

    /// Compiled seccomp filters, shared by all containers of this root.
    fn seccomp_cache(&self) -> PathBuf {
        self.root.join(".cache").join("seccomp")
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn lock_dir(dir: &Path, id: &str) -> Result<Lock, LifecycleError> {
        Self::lock_dir_once(dir, id, true)
    }

    /// [`Store::lock_dir`]; without `retry`, a directory replaced while we
    /// waited is `NotExist` (for `create`, which must lock the one it made).
    fn lock_dir_once(dir: &Path, id: &str, retry: bool) -> Result<Lock, LifecycleError> {
        // A racing `delete` may remove (and a racing `create` re-make) the
        // directory while we wait for the lock: a lock on an unlinked
        // directory would guard nothing, so check it is still the one at
        // `dir` and try again if it is not.
        loop {
            let f = File::open(dir).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    LifecycleError::NotExist(id.to_string())
                } else {
                    LifecycleError::Io {
                        what: format!("open {}", dir.display()),
                        source: e,
                    }
                }
            })?;
            rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive).map_err(
                |e| LifecycleError::Io {
                    what: "lock".into(),
                    source: e.into(),
                },
            )?;
            let held = rustix::fs::fstat(&f).map_err(|e| io("lock")(e.into()))?;
            // The fd keeps the directory's inode allocated: a directory made
            // at the path since cannot have its number.
            match rustix::fs::stat(dir) {
                Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => {
                    return Ok(Lock(f.into()));
                }
                Ok(_) if retry => continue,
                Ok(_) => return Err(LifecycleError::NotExist(id.to_string())),
                Err(rustix::io::Errno::NOENT) => {
                    return Err(LifecycleError::NotExist(id.to_string()));
                }
                Err(e) => return Err(io(format!("stat {}", dir.display()))(e.into())),
            }
        }
    }

    /// Whether some command holds the container's lock right now.
    fn lock_held(&self, id: &str) -> bool {
        let Ok(f) = File::open(self.dir(id)) else {
            return false;
        };
        let op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
        rustix::fs::flock(f.as_fd(), op) == Err(rustix::io::Errno::WOULDBLOCK)
    }

    pub fn lock(&self, id: &str) -> Result<Lock, LifecycleError> {
        bulkhead_spec::id::validate(id)?;
        Self::lock_dir(&self.dir(id), id)
    }

    pub fn load(&self, id: &str) -> Result<Record, LifecycleError> {
        bulkhead_spec::id::validate(id)?;
        let p = self.dir(id).join("state.json");
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LifecycleError::NotExist(id.to_string()));
            }
            Err(e) => return Err(io(format!("read {}", p.display()))(e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| LifecycleError::Invalid(format!("corrupt state {}: {e}", p.display())))
    }

    /// Records are written by temp file + rename, never fsynced (as runc and
    /// crun do): every record describes processes, cgroups and mounts that a
    /// power loss ends anyway, so after one the store only has to stay
    /// usable, and a torn record is handled like a corrupt one (skipped by
    /// `list`, removed by `delete --force`). An fsync of file and directory
    /// cost 0.4-3.5 ms wall per `create` on this disk (docs/benchmark.md).
    fn save(&self, rec: &Record) -> Result<(), LifecycleError> {
        let bytes = serde_json::to_vec(rec).map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        write_atomic(&self.dir(&rec.id).join("state.json"), &bytes, 0o600)
    }

    pub fn status(&self, rec: &Record) -> Status {
        self.status_with(rec, false)
    }

    /// `status`, by a caller that holds the container's lock (so the lock
    /// says nothing about a create in progress).
    fn status_with(&self, rec: &Record, we_hold_lock: bool) -> Status {
        if rec.pid <= 0 {
            // Only `create` writes a record without a pid: while it still
            // runs it holds the lock; once it died, whatever it left is
            // stopped and waits for `delete --force`.
            return if !we_hold_lock && self.lock_held(&rec.id) {
                Status::Creating
            } else {
                Status::Stopped
            };
        }
        if !proc::alive(rec.pid, rec.pid_start) {
            return Status::Stopped;
        }
        let fifo = self.dir(&rec.id).join("exec.fifo");
        if fifo.exists() && init_waits_on(&fifo) {
            return Status::Created;
        }
        if rec.cgroups.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    pub fn view(&self, rec: &Record) -> StateView {
        let status = self.status(rec);
        StateView {
            oci_version: rec.oci_version.clone(),
            id: rec.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                rec.pid
            },
            status,
            bundle: rec.bundle.clone(),
            rootfs: rec.rootfs.clone(),
            created: rec.created.clone(),
            owner: rec.owner.clone(),
            annotations: rec.annotations.clone(),
            exit: rec.exit.clone().filter(|_| status == Status::Stopped),
        }
    }

    /// Ids of every container in the store, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids
    }

    /// Waits (boundedly) for a learning run's recorder to write its profile
    /// after the init exited; nothing to do without one.
    pub fn wait_learning(&self, id: &str) {
        if let Ok(Record {
            learn_recorder: Some((pid, start)),
            ..
        }) = self.load(id)
        {
            learn::wait_recorder(pid, start, 10);
        }
    }

    /// `create`: returns the init's pid once it is blocked before exec.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<i32, LifecycleError> {
        bulkhead_spec::id::validate(id)?;
        let bundle = std::path::absolute(&opts.bundle)
            .map_err(io(format!("--bundle {}", opts.bundle.display())))?;
        let cfg_path = bundle.join("config.json");
        let bytes = fs::read(&cfg_path).map_err(|e| {
            LifecycleError::Plan(PlanError::Read {
                path: cfg_path.clone(),
                source: e,
            })
        })?;
        let mut spec = bulkhead_spec::plan::parse_spec(&cfg_path, &bytes)?;
        let learn = learn::prepare(
            &mut spec,
            opts.learn_seccomp.as_deref(),
            &bundle,
            &self.dir(id),
        )?;
        let plan = Plan::from_spec(&spec, &bundle)?;
        if let Some(l) = &learn {
            learn::check_not_in_container(l, &plan)?;
        }
        refuse_unimplemented(&spec)?;
        let process = plan.process.clone().ok_or_else(|| {
            LifecycleError::Invalid("process: is required to create a container".into())
        })?;
        if opts.console_socket.is_some() && !process.terminal {
            return Err(LifecycleError::Invalid(
                "--console-socket: cannot be used when process.terminal is false".into(),
            ));
        }
        match fs::metadata(&plan.rootfs) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(LifecycleError::Invalid(format!(
                    "root.path: {} is not a directory",
                    plan.rootfs.display()
                )));
            }
            Err(e) => {
                return Err(LifecycleError::Invalid(format!(
                    "root.path: {}: {e}",
                    plan.rootfs.display()
                )));
            }
        }

        if self.rootless && plan.ns(NsKind::User).is_none() && !rustix::process::geteuid().is_root()
        {
            return Err(LifecycleError::Invalid(format!(
                "linux.namespaces: running rootless as uid {} needs a user namespace \
                 (an entry of type \"user\" with linux.uidMappings and linux.gidMappings); \
                 `bulkhead spec --rootless` writes such a config",
                rustix::process::geteuid().as_raw()
            )));
        }
        if !plan.net_devices.is_empty() && (self.rootless || !rustix::process::geteuid().is_root())
        {
            return Err(LifecycleError::Invalid(
                "linux.netDevices: moving host network devices needs root on the host \
                 (CAP_NET_ADMIN in its network namespace); not supported rootless"
                    .into(),
            ));
        }
        if self.rootless && opts.systemd_cgroup {
            return Err(LifecycleError::Invalid(
                "--systemd-cgroup: not supported rootless (there is no driver for a user's \
                 systemd instance); drop the flag to use a delegated cgroup"
                    .into(),
            ));
        }
        let state_dir_err = |path: &Path, e: std::io::Error| LifecycleError::StateDir {
            path: path.to_path_buf(),
            source: e,
        };
        fs::create_dir_all(&self.root).map_err(|e| state_dir_err(&self.root, e))?;
        let _ = fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700));
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LifecycleError::Exists(id.to_string()));
            }
            Err(e) => return Err(state_dir_err(&self.root, e)),
        }
        bulkhead_sys::fault::point("create.dir-made");
        let lock = Self::lock_dir_once(&dir, id, false).map_err(|e| match e {
            LifecycleError::NotExist(_) => LifecycleError::Invalid(format!(
                "container \"{id}\": its state directory was removed by a concurrent \
                 delete during create"
            )),
            e => e,
        })?;
        // The lock is taken on the directory found at the path, which may
        // not be the one made above: a racing delete can remove ours and a
        // racing create make another there, and we may get its lock once it
        // is done. A directory with anything in it is someone else's
        // container: say it exists, and leave it alone.
        if fs::read_dir(&dir)
            .map_err(|e| state_dir_err(&dir, e))?
            .next()
            .is_some()
        {
            return Err(LifecycleError::Exists(id.to_string()));
        }
        bulkhead_sys::fault::point("create.state-dir");
        let hook_state = HookState {
            oci_version: plan.oci_version.clone(),
            id: id.to_string(),
            bundle: bundle.clone(),
            annotations: plan.annotations.clone(),
        };
        let mut cleanup = Cleanup {
            dir: Some(dir.clone()),
            cgroups: None,
            pid: None,
            host_mounts: shares_host_mount_ns(&spec).then(|| plan.rootfs.clone()),
            poststop: Some((plan.hooks.poststop.clone(), hook_state.clone())),
            recorder: None,
        };
        if let Some(l) = &learn {
            cleanup.recorder = Some(learn::Recorder::start(l, &dir)?);
        }

        let fifo = dir.join("exec.fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(|e| io("create exec fifo")(e.into()))?;
        // Read-write: the init can block reading it while nobody writes yet.
        let fifo_fd = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(io("open exec fifo"))?;

        // Bad limits are refused before any cgroup is made.
        if let Some(r) = &plan.resources {
            bulkhead_cgroups::validate(&bulkhead_cgroups::zero_is_unset(r))?;
        }
        let layout = bulkhead_cgroups::detect()?;
        let mut cgroups = bulkhead_cgroups::resolve(
            &layout,
            plan.cgroups_path.as_deref(),
            id,
            opts.systemd_cgroup,
        )?;
        if self.rootless {
            cgroups = rootless_cgroups(&cgroups, &plan);
        }
        if cgroups.systemd.is_none() {
            cgroups.mark_existing();
        }
        let mut rec = Record {
            oci_version: plan.oci_version.clone(),
            id: id.to_string(),
            pid: 0,
            pid_start: 0,
            bundle,
            rootfs: plan.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            owner: if self.rootless {
                caller_name()
            } else {
                String::new()
            },
            annotations: plan.annotations.clone(),
            cgroups: cgroups.clone(),
            spec: spec.clone(),
            exit: None,
            learn_recorder: cleanup
                .recorder
                .as_ref()
                .map(|r| (r.pid(), proc::start_time(r.pid()).unwrap_or(0))),
        };
        self.save(&rec)?;
        bulkhead_sys::fault::point("create.record");
        cleanup.cgroups = Some(cgroups.clone());
        let resources = plan
            .resources
            .as_ref()
            .filter(|_| !cgroups.dirs.is_empty())
            .map(|r| {
                let mut r = with_default_devices(r, &plan);
                if self.rootless {
                    // Device rules need CAP_SYS_ADMIN in the host namespace;
                    // without it the user namespace's own rules apply (no mknod).
                    r.set_devices(None);
                }
                r
            });
        // The systemd driver makes and fills the cgroups when the init is
        // placed (systemd creates a unit only with a pid in it).
        let systemd = cgroups.systemd.is_some();
        if !systemd {
            cgroups.create()?;
            bulkhead_sys::fault::point("create.cgroup");
            if let Some(r) = &resources {
                cgroups.apply(r)?;
            }
        }

        let req = LaunchRequest {
            rootless: self.rootless,
            plan: &plan,
            process: &process,
            id,
            cgroups: &cgroups,
            place_resources: resources.as_ref().filter(|_| systemd),
            exec_fifo: fifo_fd.as_fd(),
            console_socket: opts.console_socket.as_deref(),
            preserve_fds: opts.preserve_fds,
            no_pivot: opts.no_pivot,
            hook_state,
            new_keyring: !opts.no_new_keyring,
            seccomp_cache: Some(&self.seccomp_cache()),
        };
        let pid = bulkhead_launch::launch(&req)?;
        cleanup.pid = Some(pid);
        drop(fifo_fd);
        bulkhead_sys::fault::point("create.init-ready");

        rec.pid = pid;
        rec.pid_start = proc::start_time(pid).unwrap_or(0);
        self.save(&rec)?;
        bulkhead_sys::fault::point("create.saved");
        if let Some(p) = &opts.pid_file {
            write_atomic(p, pid.to_string().as_bytes(), 0o644)?;
        }
        cleanup.disarm();
        drop(lock);
        Ok(pid)
    }

    /// `start`: release the init blocked on the exec fifo.
    pub fn start(&self, id: &str) -> Result<(), LifecycleError> {
        let _lock = self.lock(id)?;
        let rec = self.load(id)?;
        let status = self.status_with(&rec, true);
        if status != Status::Created {
            return Err(LifecycleError::BadStatus {
                action: "start".into(),
                id: id.into(),
                status,
            });
        }
        let fifo = self.dir(id).join("exec.fifo");
        let f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ENXIO) {
                    LifecycleError::NotRunning(id.into())
                } else {
                    io("open exec fifo")(e)
                }
            })?;
        bulkhead_sys::fault::point("start.fifo-opened");
        (&f).write_all(&[0]).map_err(io("write exec fifo"))?;
        bulkhead_sys::fault::point("start.fifo-written");
        let plan_hooks = hooks_of(&rec)?;
        // Only poststart hooks need the program to have replaced the init;
        // without them, start returns as soon as the init is released.
        if !plan_hooks.poststart.is_empty() {
            wait_for_exec(&f);
        }
        drop(f);
        let _ = fs::remove_file(&fifo);
        for e in hooks::run_all_warn(
            "poststart",
            &plan_hooks.poststart,
            &hook_state(&rec).json("running", rec.pid),
        ) {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    /// `kill`: signal the init (or, with `all`, every process in its cgroup).
    pub fn kill(&self, id: &str, sig: i32, all: bool) -> Result<(), LifecycleError> {
        let rec = self.load(id)?;
        // A record without a pid (creating) has nothing to signal yet; pid 0
        // must never reach kill(2), which would signal our process group.
        if rec.pid <= 0 || self.status(&rec) == Status::Stopped {
            return Err(LifecycleError::NotRunningPlain);
        }
        let res = proc::signal(rec.pid, rec.pid_start, sig);
        if all {
            // The init may die of the signal before the rest of the cgroup is
            // reached; that is success, not "not running".
            if rec.cgroups.dirs.is_empty() {
                for p in proc::without_cgroup(rec.pid) {
                    let _ = bulkhead_sys::kill(p, sig);
                }
            } else {
                rec.cgroups.signal_all(sig)?;
            }
            return match res {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => Err(io("kill")(e)),
                _ => Ok(()),
            };
        }
        res.map_err(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                LifecycleError::NotRunningPlain
            } else {
                io("kill")(e)
            }
        })
    }

    /// Records how the init `pid` ended, for the process that reaped it.
    /// Durable (fsynced): `list`, `wait` and `inspect` read it later. A
    /// container deleted meanwhile, or whose record names another init, is
    /// left alone (`Ok(false)`).
    pub fn record_exit(&self, id: &str, pid: i32, exit: &Exit) -> Result<bool, LifecycleError> {
        let _lock = match self.lock(id) {
            Ok(l) => l,
            Err(LifecycleError::NotExist(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut rec = match self.load(id) {
            Ok(r) => r,
            Err(LifecycleError::NotExist(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if rec.pid != pid {
            return Ok(false);
        }
        rec.exit = Some(exit.clone());
        self.save(&rec)?;
        Ok(true)
    }

    /// `delete`: tear down a stopped container (any container with `force`).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), LifecycleError> {
        bulkhead_spec::id::validate(id)?;
        let lock = match self.lock(id) {
            Ok(l) => l,
            Err(LifecycleError::NotExist(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let rec = match self.load(id) {
            Ok(r) => r,
            // A directory without state is a create that died before its
            // first record, which it writes before making any cgroup or
            // process; an unreadable record (a torn write after power loss)
            // names nothing we can trust, so only the default cgroup is tried.
            Err(e @ (LifecycleError::NotExist(_) | LifecycleError::Invalid(_))) if force => {
                if matches!(e, LifecycleError::Invalid(_)) {
                    tracing::warn!("{e}; removing it");
                    if let Ok(cg) = bulkhead_cgroups::detect()
                        .and_then(|l| bulkhead_cgroups::resolve(&l, None, id, false))
                    {
                        cg.remove()?;
                    }
                }
                fs::remove_dir_all(self.dir(id)).map_err(io("remove state"))?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let status = self.status_with(&rec, true);
        match status {
            Status::Stopped | Status::Created => {}
            _ if force => {}
            _ => {
                return Err(LifecycleError::BadStatus {
                    action: "delete".into(),
                    id: id.into(),
                    status,
                });
            }
        }
        if status != Status::Stopped {
            if status == Status::Paused {
                let _ = rec.cgroups.thaw();
            }
            proc::kill_and_wait(rec.pid, rec.pid_start).map_err(io("kill container init"))?;
        }
        bulkhead_sys::fault::point("delete.killed");
        // Also kills what a dead create or exec left in the cgroup.
        rec.cgroups.remove()?;
        bulkhead_sys::fault::point("delete.cgroup-removed");
        // A learning run's profile is written once the init is gone.
        if let Some((pid, start)) = rec.learn_recorder {
            learn::wait_recorder(pid, start, 10);
        }
        if shares_host_mount_ns(&rec.spec) {
            bulkhead_launch::stage::rootfs::detach_mounts_under(&rec.rootfs)
                .map_err(io("detach the container's mounts"))?;
        }
        let plan_hooks = hooks_of(&rec)?;
        for e in hooks::run_all_warn(
            "poststop",
            &plan_hooks.poststop,
            &hook_state(&rec).json("stopped", 0),
        ) {
            tracing::warn!("{e}");
        }
        fs::remove_dir_all(self.dir(id)).map_err(io("remove state"))?;
        drop(lock);
        Ok(())
    }

    /// `exec`: start `process` inside the container; returns its host pid.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32, LifecycleError> {
        let rec = self.load(id)?;
        match self.status(&rec) {
            Status::Running | Status::Created => {}
            Status::Paused if opts.ignore_paused => {}
            Status::Paused => {
                return Err(LifecycleError::Invalid(format!(
                    "cannot exec in paused container \"{id}\" (use --ignore-paused)"
                )));
            }
            s => {
                return Err(LifecycleError::Invalid(format!(
                    "cannot exec in a {s} container \"{id}\": container not running"
                )));
            }
        }
        let plan = Plan::from_spec(&rec.spec, &rec.bundle)?;
        let process = bulkhead_spec::plan::process_plan(&opts.process)?;
        let pidfd = proc::pidfd(rec.pid, rec.pid_start).map_err(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                LifecycleError::NotRunningPlain
            } else {
                io("open container init")(e)
            }
        })?;
        let req = bulkhead_launch::exec::ExecRequest {
            plan: &plan,
            process: &process,
            init: pidfd.as_fd(),
            init_pid: rec.pid,
            cgroups: &rec.cgroups,
            sub_cgroup: opts.sub_cgroup.as_deref(),
            console_socket: opts.console_socket.as_deref(),
            preserve_fds: opts.preserve_fds,
            hook_state: hook_state(&rec),
            seccomp_cache: Some(&self.seccomp_cache()),
        };
        let pid = bulkhead_launch::exec::exec_process(&req)?;
        if let Some(p) = &opts.pid_file {
            write_atomic(p, pid.to_string().as_bytes(), 0o644)?;
        }
        Ok(pid)
    }

    /// `update`: change the resource limits of a live container. Zero
    /// values leave a limit unchanged; an invalid or failing update leaves
    /// the previous limits in place (see [`CgroupSet::update`]). The limits
    /// now in force are stored in the record's config snapshot
    /// (`linux.resources`), where `exec` and audits read them.
    pub fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), LifecycleError> {
        let _lock = self.lock(id)?;
        let mut rec = self.load(id)?;
        no_cgroup(&rec, "update")?;
        let status = self.status_with(&rec, true);
        if status == Status::Stopped {
            return Err(LifecycleError::BadStatus {
                action: "update".into(),
                id: id.into(),
                status,
            });
        }
        let applied = rec.cgroups.update(resources)?;
        let mut linux = rec.spec.linux().clone().unwrap_or_default();
        let mut current = linux.resources().clone().unwrap_or_default();
        bulkhead_cgroups::merge_resources(&mut current, &applied);
        linux.set_resources(Some(current));
        rec.spec.set_linux(Some(linux));
        self.save(&rec)
    }

    /// Host pids of the container's processes: from its cgroup, or, for a
    /// rootless container without one, from its pid namespace.
    pub fn pids(&self, rec: &Record) -> Result<Vec<i32>, LifecycleError> {
        if !rec.cgroups.dirs.is_empty() {
            return Ok(rec.cgroups.procs()?);
        }
        if self.status(rec) == Status::Stopped {
            return Ok(Vec::new());
        }
        Ok(proc::without_cgroup(rec.pid))
    }

    pub fn pause(&self, id: &str) -> Result<(), LifecycleError> {
        let _lock = self.lock(id)?;
        let rec = self.load(id)?;
        no_cgroup(&rec, "pause")?;
        match self.status_with(&rec, true) {
            Status::Running | Status::Created => Ok(rec.cgroups.freeze()?),
            s => Err(LifecycleError::BadStatus {
                action: "pause".into(),
                id: id.into(),
                status: s,
            }),
        }
    }

    pub fn resume(&self, id: &str) -> Result<(), LifecycleError> {
        let _lock = self.lock(id)?;
        let rec = self.load(id)?;
        match self.status_with(&rec, true) {
            Status::Paused => Ok(rec.cgroups.thaw()?),
            s => Err(LifecycleError::BadStatus {
                action: "resume".into(),
                id: id.into(),
                status: s,
            }),
        }
    }
}

/// A container without cgroups (rootless, none delegated) cannot be paused
/// or limited; say why in runc's words.
fn no_cgroup(rec: &Record, action: &str) -> Result<(), LifecycleError> {
    if rec.cgroups.dirs.is_empty() {
        return Err(LifecycleError::Invalid(format!(
            "cannot {action} container \"{}\": cgroups not configured for container \
             (rootless without a delegated cgroup, see docs/rootless.md)",
            rec.id
        )));
    }
    Ok(())
}

/// Rootless: the part of the container's cgroups the caller was delegated,
/// or none (said once, with what is ignored because of it).
fn rootless_cgroups(all: &CgroupSet, plan: &Plan) -> CgroupSet {
    let d = all.delegation();
    if d.usable.dirs.is_empty() {
        let why = d
            .refused
            .first()
            .map(|(_, r)| r.as_str())
            .unwrap_or("no cgroup hierarchy found");
        let limits = plan
            .resources
            .as_ref()
            .is_some_and(|r| *r != oci_spec::runtime::LinuxResources::default());
        let msg = format!(
            "rootless: no delegated cgroup ({why}): running without cgroups{} \
             (see docs/rootless.md to delegate one)",
            if limits {
                "; linux.resources ignored"
            } else {
                ""
            }
        );
        // Said as a warning only when the config asked for a cgroup or
        // limits (rootless podman passes neither, and says so itself).
        if limits || plan.cgroups_path.is_some() {
            tracing::warn!("{msg}");
        } else {
            tracing::debug!("{msg}");
        }
    } else {
        for (path, why) in &d.refused {
            tracing::debug!("rootless: cgroup {} not used: {why}", path.display());
        }
    }
    d.usable
}

/// Whether the init still holds the exec fifo open, i.e. still waits for
/// `start`. A fifo without a reader is what a `start` killed between
/// releasing the init and removing the fifo leaves: the program runs.
fn init_waits_on(fifo: &Path) -> bool {
    let res = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(fifo);
    match res {
        Ok(_) => true,
        Err(e) => !matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENOENT)),
    }
}

/// The device rules a container always needs on top of its config's: the
/// default nodes, ptys, and the nodes of `linux.devices` (as runc adds them),
/// plus mknod of anything, which only creates inodes the rules then gate.
fn with_default_devices(
    r: &oci_spec::runtime::LinuxResources,
    plan: &Plan,
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType as T};
    let Some(rules) = r.devices() else {
        return r.clone();
    };
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("all fields set")
    };
    let mut all = rules.clone();
    all.push(rule(T::C, None, None, "m"));
    all.push(rule(T::B, None, None, "m"));
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        all.push(rule(T::C, Some(major), Some(minor), "rwm"));
    }
    all.push(rule(T::C, Some(136), None, "rwm"));
    for d in &plan.devices {
        let typ = match d.kind {
            libc::S_IFBLK => T::B,
            libc::S_IFIFO => continue,
            _ => T::C,
        };
        all.push(rule(typ, Some(d.major as i64), Some(d.minor as i64), "rwm"));
    }
    let mut out = r.clone();
    out.set_devices(Some(all));
    out
}

/// A config without a mount namespace: its mounts live in the host's
/// namespace, on the rootfs, until delete detaches them.
fn shares_host_mount_ns(spec: &oci_spec::runtime::Spec) -> bool {
    !spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Mount)
        })
}

fn hook_state(rec: &Record) -> HookState {
    HookState {
        oci_version: rec.oci_version.clone(),
        id: rec.id.clone(),
        bundle: rec.bundle.clone(),
        annotations: rec.annotations.clone(),
    }
}

fn hooks_of(rec: &Record) -> Result<bulkhead_spec::plan::HooksPlan, LifecycleError> {
    Ok(bulkhead_spec::plan::hooks_plan(rec.spec.hooks().as_ref())?)
}

/// Undo a half-done create: no process, cgroup or state dir left behind.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroups: Option<CgroupSet>,
    pid: Option<i32>,
    /// The rootfs, when the container's mounts were made in the host's mount
    /// namespace and must be detached.
    host_mounts: Option<PathBuf>,
    /// A failed create still runs poststop hooks, as runc does, so that
    /// whatever prestart set up on the host is torn down.
    poststop: Option<(Vec<bulkhead_spec::plan::HookPlan>, HookState)>,
    /// A learning run's recorder: killed on failure, left running on success.
    recorder: Option<learn::Recorder>,
}

impl Cleanup {
    fn disarm(&mut self) {
        if let Some(r) = self.recorder.take() {
            r.detach();
        }
        self.dir = None;
        self.cgroups = None;
        self.pid = None;
        self.host_mounts = None;
        self.poststop = None;
    }
}

/// "If the runtime cannot apply a property as specified in the
/// configuration, it MUST generate an error" (runtime.md, create): what
/// bulkhead has no implementation for is refused, not silently dropped.
/// (Here, not in the plan: `audit` models other engines' configs with them.)
fn refuse_unimplemented(spec: &oci_spec::runtime::Spec) -> Result<(), LifecycleError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    if linux.intel_rdt().is_some() {
        return Err(LifecycleError::Invalid(
            "linux.intelRdt: Intel RDT (resctrl) is not supported".into(),
        ));
    }
    Ok(())
}

/// Poststart hooks run "after the user-specified process is executed": the
/// init holds the fifo's read end close-on-exec, so the write end reports
/// POLLERR once the program has replaced it (or the init died). Bounded, so a
/// stray reader of the fifo cannot hang `start`.
fn wait_for_exec(fifo: &File) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            tracing::warn!("start: the init did not exec within 10 s; running poststart hooks");
            return;
        }
        let ts = rustix::time::Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        // No events asked for: poll returns only on an error condition.
        let mut fds = [rustix::event::PollFd::new(
            fifo,
            rustix::event::PollFlags::empty(),
        )];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!("start: waiting for the init to exec: {e}");
                return;
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut r) = self.recorder.take() {
            r.kill();
        }
        if let Some(pid) = self.pid.take() {
            let _ = bulkhead_sys::kill(pid, libc::SIGKILL);
            let _ = bulkhead_sys::wait_exit(pid);
        }
        if let Some(cg) = self.cgroups.take() {
            let _ = cg.remove();
        }
        if let Some(rootfs) = self.host_mounts.take() {
            let _ = bulkhead_launch::stage::rootfs::detach_mounts_under(&rootfs);
        }
        if let Some((hooks, state)) = self.poststop.take() {
            let _ = hooks::run_all_warn("poststop", &hooks, &state.json("stopped", 0));
        }
        if let Some(d) = self.dir.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Write a file so that readers see either nothing or all of it: a temporary
/// file renamed over `path`, so neither a reader nor a killed writer ever sees
/// half a file. Not fsynced (see `Store::save`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), LifecycleError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let what = format!("write {}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io(what.clone()))?;
    f.write_all(bytes).map_err(io(what.clone()))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(what.clone())(e)
    })?;
    Ok(())
}

/// The caller's user name from /etc/passwd (its uid when it has none): the
/// owner `list` shows for a rootless container. Root's records leave it
/// empty, as runc's `state` does.
fn caller_name() -> String {
    let uid = rustix::process::geteuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|t| {
            bulkhead_spec::passwd::parse_passwd(&t)
                .into_iter()
                .find(|e| e.uid == uid)
                .map(|e| e.name)
        })
        .unwrap_or_else(|| uid.to_string())
}
