//! A container's cgroups: resolving `linux.cgroupsPath`, creating the
//! directories, placing processes, freezing and removal.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::CgroupError;
use crate::fsutil;
use crate::layout::{CGROUP_ROOT, Layout};
use crate::systemd::{self, bus::Systemd};

const FIELD: &str = "linux.cgroupsPath";

/// Marker directory that exists while systemd is PID 1.
const SYSTEMD_MARKER: &str = "/run/systemd/system";

/// How long [`CgroupSet::remove`] waits for a busy cgroup to empty, and
/// freeze/thaw for the freezer to settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Poll interval while waiting.
const POLL: Duration = Duration::from_millis(1);

/// The container's cgroup in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupDir {
    /// Directory name under `/sys/fs/cgroup` as the container sees it:
    /// `"cpu,cpuacct"`, `"memory"`, `"systemd"`, `"unified"`; `""` on a pure
    /// v2 host.
    pub name: String,
    /// Absolute host path of the container's cgroup in that hierarchy.
    pub path: PathBuf,
    /// Whether this is a cgroup2 directory.
    pub v2: bool,
    /// Controllers of the hierarchy (v1), or those available at the cgroup2
    /// root (v2, from `cgroup.controllers` when the set was resolved).
    pub controllers: Vec<String>,
    /// The directory was there before `create` (a `cgroupsPath` naming an
    /// existing cgroup): the container did not create it, so `remove` leaves
    /// it and whatever else runs in it alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub existed: bool,
}

impl CgroupDir {
    /// Whether the directory carries `controller`. `"systemd"` also matches
    /// the `name=systemd` hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers
            .iter()
            .any(|c| c == controller || (c.strip_prefix("name=") == Some(controller)))
    }
}

/// A container's cgroups, one directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CgroupSet {
    pub dirs: Vec<CgroupDir>,
    /// The systemd unit owning the directories (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::Unit>,
}

/// The relative cgroup path (no leading `/`) from `linux.cgroupsPath`.
fn relative_path(cgroups_path: Option<&str>, id: &str) -> Result<PathBuf, CgroupError> {
    let invalid = |value: &str, reason: &'static str| CgroupError::InvalidPath {
        field: FIELD,
        value: value.to_string(),
        reason,
    };
    let path = cgroups_path.filter(|p| !p.is_empty());
    if let Some(p) = path {
        if p.contains('\0') {
            return Err(invalid(p, "contains a NUL byte"));
        }
        if p.contains(':') {
            // containerd's CRI plugin sends `slice:prefix:name` whenever
            // kubelet's cgroup parent is a `.slice`, also with its systemd
            // driver off: place the container where systemd would put that
            // unit, i.e. inside the pod's cgroup that kubelet made.
            return Ok(PathBuf::from(systemd::parse_path(Some(p), id)?.cgroup));
        }
    }
    let owned;
    let p = match path {
        Some(p) => p,
        None => {
            if id.is_empty() || id.contains('/') || id.contains('\0') || id == "." || id == ".." {
                return Err(CgroupError::InvalidPath {
                    field: "container id",
                    value: id.to_string(),
                    reason: "cannot be used as a cgroup directory name",
                });
            }
            owned = format!("/bulkhead/{id}");
            &owned
        }
    };
    let mut rel = PathBuf::new();
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(invalid(p, "must not contain \"..\"")),
            Component::Normal(n) => rel.push(n),
            Component::Prefix(_) => return Err(invalid(p, "unsupported path prefix")),
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(invalid(p, "must not be the root cgroup"));
    }
    Ok(rel)
}

/// Place `rel` under a v1 mount whose mount root is `root`: when the mount
/// only shows a sub-tree (`root` is not `/`) and the path lies inside that
/// sub-tree, the sub-tree prefix is dropped.
fn under_mount(mountpoint: &Path, root: &str, rel: &Path) -> PathBuf {
    let root_rel = Path::new(root.trim_start_matches('/'));
    // A path naming exactly the shown sub-tree would be the mount point
    // itself, i.e. the enclosing cgroup: never that, keep the full path below.
    if !root_rel.as_os_str().is_empty()
        && let Ok(rest) = rel.strip_prefix(root_rel)
        && !rest.as_os_str().is_empty()
    {
        return mountpoint.join(rest);
    }
    mountpoint.join(rel)
}

/// Directory name of a hierarchy as seen under `/sys/fs/cgroup`.
fn dir_name(mountpoint: &Path, controllers: &[String]) -> String {
    if let Ok(rest) = mountpoint.strip_prefix(CGROUP_ROOT) {
        let s = rest.to_string_lossy();
        if !s.is_empty() && !s.contains('/') {
            return s.into_owned();
        }
        if s.is_empty() {
            return String::new();
        }
    }
    controllers
        .iter()
        .map(|c| c.strip_prefix("name=").unwrap_or(c))
        .collect::<Vec<_>>()
        .join(",")
}

fn v2_controllers(mount: &Path) -> Vec<String> {
    crate::fsutil::read_pseudo(mount.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Work out the container's cgroup directory in every hierarchy.
///
/// `linux.cgroupsPath` semantics:
/// * absent or empty: `/bulkhead/<id>`;
/// * absolute (`/a/b`): that path below the root of every hierarchy;
/// * relative (`a/b`): also taken below the root of every hierarchy (not
///   below the runtime's own cgroup), i.e. the same as `/a/b`;
/// * containing `:` (systemd's `slice:prefix:name`, see
///   [`systemd::parse_path`]): with `systemd` (`--systemd-cgroup`) a unit
///   (refused while systemd is not running); without it, the directory
///   systemd would give that unit (`a-b.slice:p:n` is `/a.slice/a-b.slice/p-n.scope`),
///   as kubelet-style cgroup parents under containerd's cgroupfs mode need;
/// * `..` components, NUL bytes and the root cgroup itself are rejected.
///
/// On a v1 mount that shows only a sub-tree of its hierarchy, a path inside
/// that sub-tree is made relative to it. On a hybrid host the cgroup2 mount
/// gets a directory too (named `unified`), listed after the v1 ones.
pub fn resolve(
    layout: &Layout,
    cgroups_path: Option<&str>,
    id: &str,
    systemd: bool,
) -> Result<CgroupSet, CgroupError> {
    let (rel, unit) = if systemd {
        let (rel, unit) = systemd_path(layout, cgroups_path, id)?;
        (rel, Some(unit))
    } else {
        (relative_path(cgroups_path, id)?, None)
    };
    let mut dirs = Vec::new();
    match layout {
        Layout::V1 {
            hierarchies,
            unified,
        } => {
            for h in hierarchies {
                dirs.push(CgroupDir {
                    name: dir_name(&h.mountpoint, &h.controllers),
                    path: under_mount(&h.mountpoint, &h.root, &rel),
                    v2: false,
                    controllers: h.controllers.clone(),
                    existed: false,
                });
            }
            if let Some(u) = unified {
                let name = dir_name(u, &[]);
                dirs.push(CgroupDir {
                    name: if name.is_empty() {
                        "unified".into()
                    } else {
                        name
                    },
                    path: u.join(&rel),
                    v2: true,
                    controllers: v2_controllers(u),
                    existed: false,
                });
            }
        }
        Layout::V2 { root } => dirs.push(CgroupDir {
            name: String::new(),
            path: root.join(&rel),
            v2: true,
            controllers: v2_controllers(root),
            existed: false,
        }),
    }
    Ok(CgroupSet {
        dirs,
        systemd: unit,
    })
}

/// The cgroup path and unit of `slice:prefix:name` under the systemd
/// driver: below systemd's own root (PID 1's cgroup without `init.scope`),
/// the expanded slice, then the unit.
fn systemd_path(
    layout: &Layout,
    cgroups_path: Option<&str>,
    id: &str,
) -> Result<(PathBuf, systemd::Unit), CgroupError> {
    if let Some(p) = cgroups_path
        && p.contains('\0')
    {
        return Err(CgroupError::InvalidPath {
            field: FIELD,
            value: p.to_string(),
            reason: "contains a NUL byte",
        });
    }
    if !Path::new(SYSTEMD_MARKER).is_dir() {
        return Err(CgroupError::SystemdNotRunning {
            marker: PathBuf::from(SYSTEMD_MARKER),
        });
    }
    let sp = systemd::parse_path(cgroups_path, id)?;
    let root =
        systemd::name::manager_root(&std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default());
    let rel = Path::new(root.trim_start_matches('/')).join(&sp.cgroup);
    let unit = systemd::Unit {
        name: sp.unit,
        slice: sp.slice,
        unified: matches!(layout, Layout::V2 { .. }),
    };
    Ok((rel, unit))
}

/// Ancestors of `path` (outermost first, `path` excluded) that have `file`,
/// i.e. that are cgroups of the same hierarchy.
fn cgroup_ancestors(path: &Path, file: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = path
        .ancestors()
        .skip(1)
        .take_while(|a| a.join(file).exists())
        .map(Path::to_path_buf)
        .collect();
    v.reverse();
    v
}

fn is_errno(e: &std::io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

impl CgroupSet {
    /// The directory carrying `controller` (v1 first, then cgroup2); also
    /// matches a directory by its `name`.
    pub fn dir(&self, controller: &str) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.has(controller)).or_else(|| {
            self.dirs
                .iter()
                .find(|d| !d.name.is_empty() && d.name == controller)
        })
    }

    /// The first cgroup2 directory of the set (the only one on a v2 host,
    /// `unified` on a hybrid one).
    pub fn v2_dir(&self) -> Option<&CgroupDir> {
        self.dirs.iter().find(|d| d.v2)
    }

    /// Create the directories (`mkdir -p`) in every hierarchy.
    ///
    /// In the cpuset hierarchy every level on the way whose `cpuset.cpus` or
    /// `cpuset.mems` is empty gets its parent's value, since an empty cpuset
    /// cannot hold tasks. For cgroup2 directories, the controllers available
    /// at each ancestor are enabled in its `cgroup.subtree_control` (best
    /// effort: a controller the kernel refuses is skipped).
    /// Note which directories exist already, before [`CgroupSet::create`]:
    /// "resources associated with the container, but not created by this
    /// container, MUST NOT be deleted" (runtime-spec, delete).
    pub fn mark_existing(&mut self) {
        for d in &mut self.dirs {
            d.existed = d.path.is_dir();
        }
    }

    pub fn create(&self) -> Result<(), CgroupError> {
        for d in &self.dirs {
            std::fs::create_dir_all(&d.path).map_err(|source| CgroupError::Io {
                op: "creating",
                path: d.path.clone(),
                source,
            })?;
            if d.v2 {
                enable_subtree_controllers(&d.path);
            } else if d.has("cpuset") {
                fill_cpuset(&d.path)?;
            }
        }
        Ok(())
    }

    /// Move `pid` into the container's cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            fsutil::write(&d.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Place the container's first process. With cgroupfs only, `pid` is
    /// written into the directories [`CgroupSet::create`] made and
    /// [`CgroupSet::apply`] filled. Under the systemd driver, systemd is
    /// asked to start the transient unit with `pid` and the limits it knows
    /// as properties (a unit of that name that is running already is
    /// joined, its properties set); then the directories of the other
    /// hierarchies are made, `pid` joins them all, and every field of
    /// `resources` is written through cgroupfs, after systemd wrote its own.
    pub fn place_init(
        &self,
        pid: i32,
        resources: Option<&oci_spec::runtime::LinuxResources>,
    ) -> Result<(), CgroupError> {
        let Some(unit) = &self.systemd else {
            return self.add_pid(pid);
        };
        let sd = Systemd::connect()?;
        let version = sd.version();
        let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
        let known = resources.map(crate::zero_is_unset);
        let props = systemd::props::start(
            unit,
            &format!("bulkhead container {}", unit.name),
            pid,
            known.as_ref(),
            version,
            &devices,
        )?;
        tracing::debug!(unit = %unit.name, socket = %sd.socket.display(), "starting transient unit");
        if sd.start_transient_unit(&unit.name, &props)? == systemd::bus::Started::Exists {
            let mine: Vec<systemd::Property> = match &known {
                Some(r) => systemd::props::resources(r, unit.unified, version, &devices)?,
                None => Vec::new(),
            };
            sd.set_unit_properties(&unit.name, &mine)?;
        }
        // In the v1 hierarchies systemd does not manage for the unit
        // (devices, blkio, cpuacct, freezer ... here), it trims the empty
        // directories below its slices while it realizes them, ours
        // included, at any moment; a directory with a process in it stays.
        // So make and join until every directory holds the pid.
        let mut tries = 0;
        loop {
            match self.create().and_then(|()| self.add_pid(pid)) {
                Ok(()) => break,
                Err(e) if e.is_not_found() && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(POLL * 5);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(r) = resources {
            self.apply(r)?;
        }
        Ok(())
    }

    /// Move `pid` into a sub-cgroup of the container's (`exec --cgroup`),
    /// created where missing. `sub` is relative; `..` is refused.
    pub fn add_pid_to(&self, sub: &str, pid: i32) -> Result<(), CgroupError> {
        let rel = std::path::Path::new(sub.trim_start_matches('/'));
        if sub.contains('\0')
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(CgroupError::InvalidPath {
                field: "--cgroup",
                value: sub.to_string(),
                reason: "must be a relative path below the container's cgroup",
            });
        }
        let sub_set = CgroupSet {
            systemd: None,
            dirs: self
                .dirs
                .iter()
                .map(|d| CgroupDir {
                    path: d.path.join(rel),
                    ..d.clone()
                })
                .collect(),
        };
        sub_set.create()?;
        sub_set.add_pid(pid)
    }

    /// The directory used to list processes: pids, else freezer, else
    /// cgroup2, else the first.
    fn procs_dir(&self) -> Option<&CgroupDir> {
        self.dirs
            .iter()
            .find(|d| !d.v2 && d.has("pids"))
            .or_else(|| self.dirs.iter().find(|d| !d.v2 && d.has("freezer")))
            .or_else(|| self.v2_dir())
            .or_else(|| self.dirs.first())
    }

    /// Pids in the container's cgroup and its descendants, sorted, without
    /// duplicates. A cgroup that does not exist (any more) has no pids.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        match self.procs_dir() {
            Some(d) => procs_below(&d.path),
            None => Ok(Vec::new()),
        }
    }

    /// Send `sig` to every process of the container; processes that are
    /// already gone are ignored. Signal 0 only checks for existence.
    pub fn signal_all(&self, sig: i32) -> Result<(), CgroupError> {
        let path = self.procs_dir().map(|d| d.path.clone()).unwrap_or_default();
        signal_pids(&self.procs()?, sig, &path)
    }

    /// Kill what is left in the cgroups and remove every directory, child
    /// cgroups first. Directories already gone are fine. A cgroup that stays
    /// busy is polled (1 ms steps, killing newcomers) for up to 2 s before
    /// failing with an error naming it. A frozen cgroup is thawed first so
    /// that SIGKILL can be delivered. Only the container's own directory
    /// (and what is below it) is removed: parents such as `/bulkhead` stay.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // Usually every directory is empty by now (the init was reaped and
        // nothing made sub-cgroups): one rmdir each, no listing. rmdir only
        // succeeds on a cgroup without tasks or children, so whatever it
        // refuses goes through the full path below. A systemd unit is
        // always stopped through systemd, which owns its directories.
        let left: Vec<&CgroupDir> = self
            .dirs
            .iter()
            .filter(|d| !d.existed)
            .filter(|d| {
                self.systemd.is_some()
                    || match std::fs::remove_dir(&d.path) {
                        Ok(()) => false,
                        Err(e) => !is_errno(&e, libc::ENOENT),
                    }
            })
            .collect();
        if left.is_empty() && self.systemd.is_none() {
            return Ok(());
        }
        if self.is_frozen().unwrap_or(false) {
            let _ = self.thaw();
        }
        for d in &left {
            for p in procs_below(&d.path)? {
                kill_ignoring_gone(p, Signal::KILL, &d.path)?;
            }
        }
        // systemd removes the unit's own directories when it stops; what
        // it does not manage is removed below either way.
        let stopped = match &self.systemd {
            Some(unit) => match Systemd::connect() {
                Ok(sd) => {
                    let r = sd.stop_unit(&unit.name);
                    sd.reset_failed_unit(&unit.name);
                    r
                }
                // systemd gone (or restarting): it holds no unit for us
                // to stop; a container must stay deletable without it.
                Err(e) => {
                    tracing::warn!("not stopping systemd unit {}: {e}", unit.name);
                    Ok(())
                }
            },
            None => Ok(()),
        };
        for d in &left {
            let mut levels = fsutil::tree(&d.path)?;
            levels.reverse();
            for level in levels {
                rmdir_waiting(&level)?;
            }
        }
        Ok(stopped?)
    }

    /// Freeze the container: v1 `freezer.state` (waiting until it reads
    /// `FROZEN`) or cgroup2 `cgroup.freeze` (waiting for `frozen 1` in
    /// `cgroup.events`).
    pub fn freeze(&self) -> Result<(), CgroupError> {
        self.set_frozen(true)
    }

    /// Thaw the container.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        self.set_frozen(false)
    }

    /// Whether the container is frozen (v1: `freezer.state` reads `FROZEN`).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.freezer()? {
            Freezer::V1(p) => Ok(fsutil::read(&p.join("freezer.state"))?.trim() == "FROZEN"),
            Freezer::V2(p) => Ok(v2_frozen(&p)? == Some(true)),
        }
    }

    fn freezer(&self) -> Result<Freezer, CgroupError> {
        if let Some(d) = self.dirs.iter().find(|d| !d.v2 && d.has("freezer")) {
            return Ok(Freezer::V1(d.path.clone()));
        }
        if let Some(d) = self.v2_dir() {
            return Ok(Freezer::V2(d.path.clone()));
        }
        Err(CgroupError::NoFreezer)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), CgroupError> {
        let start = Instant::now();
        match self.freezer()? {
            Freezer::V1(dir) => {
                let file = dir.join("freezer.state");
                let wanted = if frozen { "FROZEN" } else { "THAWED" };
                let mut tries = 0u32;
                loop {
                    // Re-issue the request now and then: a freeze can stall
                    // in FREEZING while tasks are busy in the kernel.
                    if tries.is_multiple_of(50) {
                        fsutil::write(&file, wanted)?;
                    }
                    tries += 1;
                    let state = fsutil::read(&file)?;
                    if state.trim() == wanted {
                        return Ok(());
                    }
                    if start.elapsed() > SETTLE_TIMEOUT {
                        if frozen {
                            let _ = fsutil::write(&file, "THAWED");
                        }
                        return Err(CgroupError::FreezeTimeout {
                            path: file,
                            wanted,
                            last: state.trim().to_string(),
                            waited_ms: start.elapsed().as_millis(),
                        });
                    }
                    std::thread::sleep(POLL);
                }
            }
            Freezer::V2(dir) => {
                let file = dir.join("cgroup.freeze");
                fsutil::write(&file, if frozen { "1" } else { "0" })?;
                let wanted = if frozen { "frozen 1" } else { "frozen 0" };
                loop {
                    let state = v2_frozen(&dir)?;
                    // Kernels without cgroup.events "frozen" have nothing to wait on.
                    if state.is_none() || state == Some(frozen) {
                        return Ok(());
                    }
                    if start.elapsed() > SETTLE_TIMEOUT {
                        if frozen {
                            let _ = fsutil::write(&file, "0");
                        }
                        return Err(CgroupError::FreezeTimeout {
                            path: dir.join("cgroup.events"),
                            wanted,
                            last: format!("frozen {}", u8::from(!frozen)),
                            waited_ms: start.elapsed().as_millis(),
                        });
                    }
                    std::thread::sleep(POLL);
                }
            }
        }
    }
}

enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

/// `frozen` from a cgroup2 `cgroup.events`, `None` when the key is absent.
fn v2_frozen(dir: &Path) -> Result<Option<bool>, CgroupError> {
    let events = fsutil::read(&dir.join("cgroup.events"))?;
    Ok(events
        .lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1"))
}

fn procs_below(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    for d in fsutil::tree(dir)? {
        pids.extend(fsutil::read_procs(&d)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn kill_ignoring_gone(pid: i32, sig: Signal, path: &Path) -> Result<(), CgroupError> {
    let Some(p) = Pid::from_raw(pid) else {
        return Ok(());
    };
    match rustix::process::kill_process(p, sig) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(CgroupError::Kill {
            pid,
            signal: sig.as_raw(),
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn signal_pids(pids: &[i32], sig: i32, path: &Path) -> Result<(), CgroupError> {
    if sig == 0 {
        for &pid in pids {
            let Some(p) = Pid::from_raw(pid) else {
                continue;
            };
            match rustix::process::test_kill_process(p) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => {
                    return Err(CgroupError::Kill {
                        pid,
                        signal: 0,
                        path: path.to_path_buf(),
                        source: e.into(),
                    });
                }
            }
        }
        return Ok(());
    }
    let signal = Signal::from_named_raw(sig).ok_or(CgroupError::InvalidSignal { signal: sig })?;
    for &pid in pids {
        kill_ignoring_gone(pid, signal, path)?;
    }
    Ok(())
}

/// rmdir one cgroup; on EBUSY keep killing what is inside and retry until
/// it empties or the timeout passes.
fn rmdir_waiting(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if is_errno(&e, libc::ENOENT) => return Ok(()),
            Err(e) if is_errno(&e, libc::EBUSY) => {
                let pids = procs_below(dir)?;
                if start.elapsed() > SETTLE_TIMEOUT {
                    return Err(CgroupError::Busy {
                        path: dir.to_path_buf(),
                        waited_ms: start.elapsed().as_millis(),
                        pids,
                    });
                }
                for p in pids {
                    kill_ignoring_gone(p, Signal::KILL, dir)?;
                }
                std::thread::sleep(POLL);
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    op: "removing",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// Give every level of a v1 cpuset path whose `cpuset.cpus`/`cpuset.mems`
/// is empty the value of its parent, from the top down.
fn fill_cpuset(path: &Path) -> Result<(), CgroupError> {
    let mut levels = cgroup_ancestors(path, "cpuset.cpus");
    levels.push(path.to_path_buf());
    // What each file holds at the level above, once read or written there.
    let mut above: [Option<String>; 2] = [None, None];
    for pair in levels.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        for (k, file) in ["cpuset.cpus", "cpuset.mems"].into_iter().enumerate() {
            let mut mine = fsutil::read(&child.join(file))?;
            if mine.trim().is_empty() {
                let theirs = match above[k].take() {
                    Some(v) => v,
                    None => fsutil::read(&parent.join(file))?,
                };
                fsutil::write(&child.join(file), theirs.trim())?;
                mine = theirs;
            }
            above[k] = Some(mine);
        }
    }
    Ok(())
}

/// Enable, at every cgroup2 ancestor of `path`, the controllers it has
/// available in its `cgroup.subtree_control`. Best effort.
fn enable_subtree_controllers(path: &Path) {
    for level in cgroup_ancestors(path, "cgroup.controllers") {
        let available = v2_controllers(&level);
        let enabled =
            crate::fsutil::read_pseudo(level.join("cgroup.subtree_control")).unwrap_or_default();
        let enabled: Vec<&str> = enabled.split_whitespace().collect();
        for c in available {
            if !enabled.contains(&c.as_str()) {
                let _ = fsutil::write_raw(&level.join("cgroup.subtree_control"), &format!("+{c}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> Layout {
        crate::parse_mountinfo(
            "\
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
27 25 0:25 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
26 25 0:24 / /tmp/nonexistent-unified rw - cgroup2 cgroup2 rw
",
        )
    }

    /// Every empty level gets the value of the one above, read once.
    #[test]
    fn fill_cpuset_copies_down_through_empty_levels() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("cpuset");
        let leaf = root.join("a/b/c");
        std::fs::create_dir_all(&leaf).unwrap();
        for (dir, cpus, mems) in [
            (root.clone(), "0-3\n", "0\n"),
            (root.join("a"), "1-2\n", "\n"),
            (root.join("a/b"), "\n", "\n"),
            (leaf.clone(), "\n", "\n"),
        ] {
            std::fs::write(dir.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(dir.join("cpuset.mems"), mems).unwrap();
        }
        fill_cpuset(&leaf).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(root.join("a/cpuset.cpus")), "1-2\n");
        for dir in [root.join("a"), root.join("a/b"), leaf.clone()] {
            assert_eq!(read(dir.join("cpuset.mems")), "0", "{}", dir.display());
        }
        assert_eq!(read(root.join("a/b/cpuset.cpus")), "1-2");
        assert_eq!(read(leaf.join("cpuset.cpus")), "1-2");
    }

    #[test]
    fn systemd_form_without_the_driver_is_the_units_directory() {
        let set = resolve(
            &hybrid(),
            Some("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
            "abc",
            false,
        )
        .unwrap();
        assert!(set.systemd.is_none());
        assert_eq!(
            set.dirs[0].path,
            Path::new(
                "/sys/fs/cgroup/cpu,cpuacct/kubepods.slice/kubepods-besteffort.slice/\
                 kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
            )
        );
        for bad in ["only:two", "a--b.slice:p:n", "system.slice:p:n/x"] {
            let err = resolve(&hybrid(), Some(bad), "abc", false).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("linux.cgroupsPath") && msg.contains(bad),
                "{msg}"
            );
        }
    }

    #[test]
    fn default_path() {
        let set = resolve(&hybrid(), None, "ctr1", false).unwrap();
        let got: Vec<(&str, &Path, bool)> = set
            .dirs
            .iter()
            .map(|d| (d.name.as_str(), d.path.as_path(), d.v2))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "cpu,cpuacct",
                    Path::new("/sys/fs/cgroup/cpu,cpuacct/bulkhead/ctr1"),
                    false
                ),
                (
                    "memory",
                    Path::new("/sys/fs/cgroup/memory/bulkhead/ctr1"),
                    false
                ),
                (
                    "systemd",
                    Path::new("/sys/fs/cgroup/systemd/bulkhead/ctr1"),
                    false
                ),
                (
                    "unified",
                    Path::new("/tmp/nonexistent-unified/bulkhead/ctr1"),
                    true
                ),
            ]
        );
        assert_eq!(set, resolve(&hybrid(), Some(""), "ctr1", false).unwrap());
        assert_eq!(set.dir("cpuacct").unwrap().name, "cpu,cpuacct");
        assert_eq!(set.dir("systemd").unwrap().name, "systemd");
        assert!(set.dir("pids").is_none());
    }

    #[test]
    fn absolute_relative_and_mount_root() {
        let abs = resolve(&hybrid(), Some("/a/b"), "x", false).unwrap();
        let rel = resolve(&hybrid(), Some("a//./b/"), "x", false).unwrap();
        assert_eq!(abs, rel);
        assert_eq!(
            abs.dir("memory").unwrap().path,
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        // The memory mount shows only /outer: a path inside it is re-rooted.
        let inner = resolve(&hybrid(), Some("/outer/c"), "x", false).unwrap();
        assert_eq!(
            inner.dir("memory").unwrap().path,
            Path::new("/sys/fs/cgroup/memory/c")
        );
        assert_eq!(
            inner.dir("cpu").unwrap().path,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/outer/c")
        );
    }

    #[test]
    fn pure_v2() {
        let layout = Layout::V2 {
            root: PathBuf::from("/nonexistent/cg"),
        };
        let set = resolve(&layout, Some("/x"), "id", false).unwrap();
        assert_eq!(set.dirs.len(), 1);
        assert_eq!(set.dirs[0].name, "");
        assert!(set.dirs[0].v2);
        assert_eq!(set.dirs[0].path, Path::new("/nonexistent/cg/x"));
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in ["/a/../b", "..", "a/..", "/a\0b", "/", "."] {
            let err = resolve(&hybrid(), Some(bad), "x", false).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad:?}: {err:?}"
            );
            assert!(msg.starts_with("linux.cgroupsPath: "), "{msg}");
        }
        for bad_id in ["", "a/b", ".."] {
            assert!(
                resolve(&hybrid(), None, bad_id, false).is_err(),
                "{bad_id:?}"
            );
        }
    }

    #[test]
    fn systemd_form() {
        let err = resolve(&hybrid(), Some("system:abc"), "abc", false).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("linux.cgroupsPath"), "{msg}");
        assert!(msg.contains("slice:prefix:name"), "{msg}");
        let with_driver = resolve(&hybrid(), Some("system.slice:bulkhead:abc"), "abc", true);
        if Path::new(SYSTEMD_MARKER).is_dir() {
            let set = with_driver.unwrap();
            let unit = set.systemd.as_ref().unwrap();
            assert_eq!(unit.name, "bulkhead-abc.scope");
            assert!(
                set.dirs[0]
                    .path
                    .ends_with("system.slice/bulkhead-abc.scope")
            );
        } else {
            let msg = with_driver.unwrap_err().to_string();
            assert!(
                msg.starts_with("systemd cgroup driver requested but systemd is not running"),
                "{msg}"
            );
        }
    }
}

/// Rootless use of a [`CgroupSet`]: which of its directories an
/// unprivileged caller may create and move processes into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delegation {
    /// The directories the caller may use (all v1 ones or none, plus a
    /// cgroup2 one only where the caller can move processes into it).
    pub usable: CgroupSet,
    /// Directories left out, each with the reason.
    pub refused: Vec<(PathBuf, String)>,
}

/// Whether this process may write `path` (its effective ids and
/// capabilities, as the kernel checks them for the write itself).
fn writable(path: &Path) -> bool {
    rustix::fs::accessat(
        rustix::fs::CWD,
        path,
        rustix::fs::Access::WRITE_OK,
        rustix::fs::AtFlags::EACCESS,
    )
    .is_ok()
}

/// Why the caller cannot create (or use) the cgroup at `dir`: the directory
/// itself with its `cgroup.procs` when it exists, else its closest existing
/// ancestor, must be writable.
fn not_delegated(dir: &Path) -> Option<String> {
    if dir.is_dir() {
        let procs = dir.join("cgroup.procs");
        return (!writable(&procs)).then(|| format!("{} is not writable", procs.display()));
    }
    let parent = dir.ancestors().skip(1).find(|a| a.is_dir())?;
    (!writable(parent)).then(|| format!("{} is not writable", parent.display()))
}

/// This process's cgroup2 path (`0::/a/b` in /proc/self/cgroup), relative.
fn own_v2_cgroup() -> Option<PathBuf> {
    let text = crate::fsutil::read_pseudo("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| PathBuf::from(p.trim_start_matches('/')))
}

/// cgroup2 only lets a process move between cgroups whose closest common
/// ancestor's `cgroup.procs` the mover may write; a user sitting in the
/// root cgroup (no systemd session placed it elsewhere) cannot move at all.
fn v2_not_movable(mount: &Path, dir: &Path) -> Option<String> {
    let Ok(target) = dir.strip_prefix(mount) else {
        return Some(format!("{} is outside {}", dir.display(), mount.display()));
    };
    let own = own_v2_cgroup().unwrap_or_default();
    let common: PathBuf = own
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect();
    let procs = mount.join(&common).join("cgroup.procs");
    (!writable(&procs)).then(|| {
        format!(
            "moving a process from /{} to /{} needs write access to {}",
            own.display(),
            target.display(),
            procs.display()
        )
    })
}

impl CgroupSet {
    /// What an unprivileged caller may use of this set: every v1 directory
    /// (or none: a container in some hierarchies only would escape the
    /// others' limits) and each cgroup2 directory it can also move
    /// processes into. Nothing is created.
    pub fn delegation(&self) -> Delegation {
        let mut out = Delegation::default();
        let v1: Vec<&CgroupDir> = self.dirs.iter().filter(|d| !d.v2).collect();
        let v1_refused: Vec<(PathBuf, String)> = v1
            .iter()
            .filter_map(|d| not_delegated(&d.path).map(|r| (d.path.clone(), r)))
            .collect();
        if v1_refused.is_empty() {
            out.usable.dirs.extend(v1.into_iter().cloned());
        } else {
            out.refused.extend(v1_refused);
        }
        for d in self.dirs.iter().filter(|d| d.v2) {
            let mount = self.v2_mount_of(d);
            match not_delegated(&d.path).or_else(|| v2_not_movable(&mount, &d.path)) {
                None => out.usable.dirs.push(d.clone()),
                Some(r) => out.refused.push((d.path.clone(), r)),
            }
        }
        // A lone cgroup2 directory on a hybrid host (hugetlb only) is not
        // the container's cgroup when the v1 hierarchies are refused.
        if out.usable.dirs.iter().all(|d| d.v2) && self.dirs.iter().any(|d| !d.v2) {
            for d in out.usable.dirs.drain(..) {
                out.refused
                    .push((d.path, "the v1 hierarchies are not delegated".into()));
            }
        }
        out
    }

    /// The cgroup2 mount point holding `d` (the `unified` mount on a hybrid
    /// host, `/sys/fs/cgroup` on a pure v2 one).
    fn v2_mount_of(&self, d: &CgroupDir) -> PathBuf {
        let root = Path::new(CGROUP_ROOT);
        if d.name.is_empty() {
            return root.to_path_buf();
        }
        root.join(&d.name)
    }
}
