//! The validated, immutable plan every later stage works from.
//!
//! A [`Plan`] is built once from a bundle's config.json. Each field is a plain
//! decision (no `Option<bool>` left to interpret), so the setup stages, `exec`,
//! the sandbox and the audit all read the same facts.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Mount, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::caps::CapSet;
use crate::mountopt::{self, MountOptions};

/// A config that cannot be run, with the field that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {field}: {msg}")]
    Parse {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parse a config.json from bytes; errors name the JSON path that failed.
pub fn parse_spec(path: &Path, bytes: &[u8]) -> Result<Spec, PlanError> {
    parse_json(path, bytes)
}

/// Deserialize one whole JSON document: text after it is an error (a config
/// with trailing garbage is corrupt, not something to half-read).
fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, PlanError> {
    // Path tracking wraps every value of the document (a quarter of the
    // user CPU of `run` went to it), so it only runs again to name the field
    // of a document that failed.
    if let Ok(v) = serde_json::from_slice(bytes) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut *de).map_err(|e| PlanError::Parse {
        path: path.to_path_buf(),
        field: e.path().to_string(),
        msg: e.inner().to_string(),
    })?;
    de.end().map_err(|e| PlanError::Parse {
        path: path.to_path_buf(),
        field: ".".into(),
        msg: e.to_string(),
    })?;
    Ok(v)
}

/// Parse a process.json (for `exec --process`).
pub fn parse_process(path: &Path, bytes: &[u8]) -> Result<Process, PlanError> {
    parse_json(path, bytes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NsKind {
    User,
    Pid,
    Mount,
    Network,
    Ipc,
    Uts,
    Cgroup,
    Time,
}

impl NsKind {
    pub const ALL: [NsKind; 8] = [
        NsKind::User,
        NsKind::Pid,
        NsKind::Mount,
        NsKind::Network,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Cgroup,
        NsKind::Time,
    ];

    pub fn clone_flag(self) -> i32 {
        match self {
            NsKind::User => libc::CLONE_NEWUSER,
            NsKind::Pid => libc::CLONE_NEWPID,
            NsKind::Mount => libc::CLONE_NEWNS,
            NsKind::Network => libc::CLONE_NEWNET,
            NsKind::Ipc => libc::CLONE_NEWIPC,
            NsKind::Uts => libc::CLONE_NEWUTS,
            NsKind::Cgroup => libc::CLONE_NEWCGROUP,
            NsKind::Time => libc::CLONE_NEWTIME,
        }
    }

    /// The name under /proc/<pid>/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Pid => "pid",
            NsKind::Mount => "mnt",
            NsKind::Network => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
        }
    }

    fn from_oci(t: LinuxNamespaceType) -> NsKind {
        match t {
            LinuxNamespaceType::User => NsKind::User,
            LinuxNamespaceType::Pid => NsKind::Pid,
            LinuxNamespaceType::Mount => NsKind::Mount,
            LinuxNamespaceType::Network => NsKind::Network,
            LinuxNamespaceType::Ipc => NsKind::Ipc,
            LinuxNamespaceType::Uts => NsKind::Uts,
            LinuxNamespaceType::Cgroup => NsKind::Cgroup,
            LinuxNamespaceType::Time => NsKind::Time,
        }
    }
}

/// One namespace the container gets: created (`path == None`) or joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsPlan {
    pub kind: NsKind,
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// A mount, with its destination already cleaned and proven to stay inside
/// the container root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub fstype: String,
    /// Bind mounts: absolute host path. Others: the source string as given.
    pub source: Option<String>,
    pub options: MountOptions,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
}

impl MountPlan {
    pub fn is_bind(&self) -> bool {
        self.options.bind || self.fstype == "bind"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePlan {
    pub path: PathBuf,
    /// `libc::S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: u32,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPlan {
    pub path: PathBuf,
    pub args: Vec<String>,
    /// `None`: the hook inherits the runtime's environment.
    pub env: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HooksPlan {
    pub prestart: Vec<HookPlan>,
    pub create_runtime: Vec<HookPlan>,
    pub create_container: Vec<HookPlan>,
    pub start_container: Vec<HookPlan>,
    pub poststart: Vec<HookPlan>,
    pub poststop: Vec<HookPlan>,
}

/// Capability sets; `None` means the config has no `capabilities` object and
/// the process keeps what it has (runc's behaviour, flagged by the audit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapsPlan {
    pub bounding: CapSet,
    pub effective: CapSet,
    pub inheritable: CapSet,
    pub permitted: CapSet,
    pub ambient: CapSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedPlan {
    pub policy: i32,
    pub priority: i32,
    pub nice: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: Option<CapsPlan>,
    pub rlimits: Vec<Rlimit>,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    pub apparmor_profile: Option<String>,
    pub selinux_label: Option<String>,
    /// (class, level)
    pub io_priority: Option<(u32, u32)>,
    pub scheduler: Option<SchedPlan>,
    pub cpu_affinity_initial: Option<Vec<usize>>,
    pub cpu_affinity_final: Option<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub oci_version: String,
    pub bundle: PathBuf,
    /// Absolute path of the root filesystem on the host.
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub annotations: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub namespaces: Vec<NsPlan>,
    pub uid_mappings: Vec<IdMap>,
    pub gid_mappings: Vec<IdMap>,
    /// (clock name, seconds, nanoseconds) for a new time namespace.
    pub time_offsets: Vec<(String, i64, u32)>,
    pub mounts: Vec<MountPlan>,
    pub rootfs_propagation: Option<u64>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub devices: Vec<DevicePlan>,
    pub sysctl: Vec<(String, String)>,
    pub process: Option<ProcessPlan>,
    pub hooks: HooksPlan,
    pub cgroups_path: Option<String>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
    pub personality: Option<u64>,
    pub mount_label: Option<String>,
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// The `io.bulkhead.landlock` annotation's policy (a bulkhead extension).
    pub landlock: Option<crate::landlock::LandlockPlan>,
    /// `linux.netDevices`: host interfaces to move into the container's
    /// network namespace, sorted by host name.
    pub net_devices: Vec<NetDevicePlan>,
}

/// One entry of `linux.netDevices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevicePlan {
    /// The interface's name on the host (the map key).
    pub host: String,
    /// Its name inside the container: `name`, or the host name. May end in
    /// `%d`, a template the kernel fills with a free number.
    pub name: String,
}

impl Plan {
    pub fn ns(&self, kind: NsKind) -> Option<&NsPlan> {
        self.namespaces.iter().find(|n| n.kind == kind)
    }

    /// True when the container gets a namespace of this kind that it creates.
    pub fn creates(&self, kind: NsKind) -> bool {
        self.ns(kind).is_some_and(|n| n.path.is_none())
    }

    /// Build a plan from a parsed spec. `bundle` must be absolute.
    pub fn from_spec(spec: &Spec, bundle: &Path) -> Result<Plan, PlanError> {
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "is required"))?;
        if root.path().as_os_str().is_empty() {
            return Err(invalid("root.path", "must not be empty"));
        }
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };

        let linux = spec.linux().clone().unwrap_or_default();

        let namespaces = namespaces(linux.namespaces().as_deref().unwrap_or(&[]))?;
        let has = |k: NsKind| namespaces.iter().any(|n| n.kind == k);
        let creates_user = namespaces
            .iter()
            .any(|n| n.kind == NsKind::User && n.path.is_none());

        let uid_mappings = id_maps("linux.uidMappings", linux.uid_mappings().as_deref())?;
        let gid_mappings = id_maps("linux.gidMappings", linux.gid_mappings().as_deref())?;
        if creates_user {
            if uid_mappings.is_empty() {
                return Err(invalid(
                    "linux.uidMappings",
                    "a new user namespace needs at least one uid mapping",
                ));
            }
            if gid_mappings.is_empty() {
                return Err(invalid(
                    "linux.gidMappings",
                    "a new user namespace needs at least one gid mapping",
                ));
            }
        } else if !has(NsKind::User) && (!uid_mappings.is_empty() || !gid_mappings.is_empty()) {
            return Err(invalid(
                "linux.uidMappings",
                "id mappings given without a user namespace in linux.namespaces",
            ));
        }

        let mut time_offsets = Vec::new();
        if let Some(offsets) = linux.time_offsets() {
            if !namespaces
                .iter()
                .any(|n| n.kind == NsKind::Time && n.path.is_none())
            {
                return Err(invalid(
                    "linux.timeOffsets",
                    "needs a new time namespace in linux.namespaces",
                ));
            }
            let mut keys: Vec<_> = offsets.keys().collect();
            keys.sort();
            for k in keys {
                if k != "monotonic" && k != "boottime" {
                    return Err(invalid(
                        format!("linux.timeOffsets.{k}"),
                        "unknown clock (expected monotonic or boottime)",
                    ));
                }
                let o = &offsets[k];
                let ns = o.nanosecs().unwrap_or(0);
                if ns >= 1_000_000_000 {
                    return Err(invalid(
                        format!("linux.timeOffsets.{k}.nanosecs"),
                        "must be below 1000000000",
                    ));
                }
                time_offsets.push((k.clone(), o.secs().unwrap_or(0), ns));
            }
        }

        let hostname = spec.hostname().clone().filter(|h| !h.is_empty());
        let domainname = spec.domainname().clone().filter(|h| !h.is_empty());
        if hostname.is_some() && !has(NsKind::Uts) {
            return Err(invalid(
                "hostname",
                "cannot be set without a uts namespace in linux.namespaces",
            ));
        }
        if domainname.is_some() && !has(NsKind::Uts) {
            return Err(invalid(
                "domainname",
                "cannot be set without a uts namespace in linux.namespaces",
            ));
        }

        let mut mounts = Vec::new();
        for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
            mounts.push(mount_plan(i, m, bundle)?);
        }

        let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(p) => Some(propagation(p).ok_or_else(|| {
                invalid(
                    "linux.rootfsPropagation",
                    format!("unknown propagation {p:?}"),
                )
            })?),
        };

        let masked_paths = abs_paths("linux.maskedPaths", linux.masked_paths().as_deref())?;
        let readonly_paths = abs_paths("linux.readonlyPaths", linux.readonly_paths().as_deref())?;

        let mut devices = Vec::new();
        for (i, d) in linux.devices().as_deref().unwrap_or(&[]).iter().enumerate() {
            let field = format!("linux.devices[{i}]");
            let path = clean_abs(&format!("{field}.path"), d.path())?;
            use oci_spec::runtime::LinuxDeviceType as T;
            let kind = match d.typ() {
                T::C | T::U => libc::S_IFCHR,
                T::B => libc::S_IFBLK,
                T::P => libc::S_IFIFO,
                T::A => {
                    return Err(invalid(
                        format!("{field}.type"),
                        "\"a\" is not a device node type",
                    ));
                }
            };
            if d.major() < 0 || d.minor() < 0 {
                return Err(invalid(field, "major and minor must not be negative"));
            }
            // The kernel's device numbers hold a 12-bit major and a 20-bit
            // minor: anything larger would be silently truncated by mknod
            // into another device (4097:1 becomes 1:1, /dev/mem).
            if d.major() > 0xfff || d.minor() > 0xf_ffff {
                return Err(invalid(
                    field,
                    format!(
                        "device {}:{} is out of range (major at most 4095, minor at most 1048575)",
                        d.major(),
                        d.minor()
                    ),
                ));
            }
            devices.push(DevicePlan {
                path,
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid().unwrap_or(0),
                gid: d.gid().unwrap_or(0),
            });
        }

        let mut sysctl = Vec::new();
        if let Some(map) = linux.sysctl() {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            for k in keys {
                check_sysctl(k, &namespaces)?;
                sysctl.push((k.clone(), map[k].clone()));
            }
        }

        let process = spec.process().as_ref().map(process_plan).transpose()?;
        let hooks = hooks_plan(spec.hooks().as_ref())?;

        let personality = match linux.personality() {
            None => None,
            Some(p) => {
                use oci_spec::runtime::LinuxPersonalityDomain as D;
                Some(match p.domain() {
                    D::PerLinux => 0x0000,
                    D::PerLinux32 => 0x0008,
                })
            }
        };

        let landlock = crate::landlock::from_annotations(spec.annotations().as_ref())?;
        let net_devices = net_devices(&linux, &namespaces)?;

        Ok(Plan {
            oci_version: spec.version().clone(),
            bundle: bundle.to_path_buf(),
            rootfs,
            root_readonly: root.readonly().unwrap_or(false),
            annotations: spec
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            hostname,
            domainname,
            namespaces,
            uid_mappings,
            gid_mappings,
            time_offsets,
            mounts,
            rootfs_propagation,
            masked_paths,
            readonly_paths,
            devices,
            sysctl,
            process,
            hooks,
            cgroups_path: linux
                .cgroups_path()
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !p.is_empty()),
            resources: linux.resources().clone(),
            personality,
            mount_label: linux.mount_label().clone().filter(|l| !l.is_empty()),
            seccomp: linux.seccomp().clone(),
            landlock,
            net_devices,
        })
    }
}

/// `linux.netDevices`: names the kernel would refuse, and moves that have
/// no network namespace of the container's own to go to, fail here.
fn net_devices(
    linux: &oci_spec::runtime::Linux,
    namespaces: &[NsPlan],
) -> Result<Vec<NetDevicePlan>, PlanError> {
    let Some(map) = linux.net_devices().as_ref().filter(|m| !m.is_empty()) else {
        return Ok(Vec::new());
    };
    if !namespaces.iter().any(|n| n.kind == NsKind::Network) {
        return Err(invalid(
            "linux.netDevices",
            "moving network devices needs a network namespace of the container's own \
             (an entry of type \"network\" in linux.namespaces); without one they would \
             stay in the host's",
        ));
    }
    let mut out: Vec<NetDevicePlan> = Vec::new();
    let mut hosts: Vec<&String> = map.keys().collect();
    hosts.sort();
    for host in hosts {
        let field = format!("linux.netDevices.{host}");
        if let Err(why) = check_ifname(host, false) {
            return Err(invalid(
                &field,
                format!("host interface name {host:?}: {why}"),
            ));
        }
        let name = match map[host].name().as_deref() {
            None | Some("") => host.clone(),
            Some(n) => {
                check_ifname(n, true)
                    .map_err(|why| invalid(format!("{field}.name"), format!("{n:?}: {why}")))?;
                n.to_string()
            }
        };
        if let Some(other) = out.iter().find(|d| d.name == name && !name.contains('%')) {
            return Err(invalid(
                format!("{field}.name"),
                format!(
                    "{name:?} is also the name given to {:?} in the container",
                    other.host
                ),
            ));
        }
        out.push(NetDevicePlan {
            host: host.clone(),
            name,
        });
    }
    Ok(out)
}

/// An interface name the kernel accepts (`dev_valid_name`): 1-15 bytes
/// (IFNAMSIZ with its NUL), not `.` or `..`, no `/`, `:` or whitespace.
/// `template` allows one `%d` for the kernel to number.
fn check_ifname(name: &str, template: bool) -> Result<(), String> {
    const IFNAMSIZ: usize = 16;
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() >= IFNAMSIZ {
        return Err(format!(
            "is {} bytes long; interface names have at most {}",
            name.len(),
            IFNAMSIZ - 1
        ));
    }
    if name == "." || name == ".." {
        return Err("is not a valid interface name".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(format!("contains {c:?}, which interface names cannot hold"));
    }
    let percents = name.matches('%').count();
    if percents > 0 && !(template && percents == 1 && name.contains("%d")) {
        return Err(if template {
            "may hold '%' only as one \"%d\" template".into()
        } else {
            "contains '%', which a host interface name cannot hold".into()
        });
    }
    Ok(())
}

fn namespaces(list: &[oci_spec::runtime::LinuxNamespace]) -> Result<Vec<NsPlan>, PlanError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, ns) in list.iter().enumerate() {
        let kind = NsKind::from_oci(ns.typ());
        if !seen.insert(kind) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("duplicate namespace {:?}", kind.proc_name()),
            ));
        }
        let path = match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                if !p.is_absolute() {
                    return Err(invalid(
                        format!("linux.namespaces[{i}].path"),
                        format!("{} must be an absolute path", p.display()),
                    ));
                }
                Some(p.clone())
            }
            _ => None,
        };
        out.push(NsPlan { kind, path });
    }
    Ok(out)
}

fn id_maps(field: &str, maps: Option<&[LinuxIdMapping]>) -> Result<Vec<IdMap>, PlanError> {
    let maps: Vec<IdMap> = maps
        .unwrap_or(&[])
        .iter()
        .map(|m| IdMap {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        })
        .collect();
    check_id_maps(field, &maps)?;
    Ok(maps)
}

/// Reject mappings the kernel would refuse, with the entry that is wrong.
pub fn check_id_maps(field: &str, maps: &[IdMap]) -> Result<(), PlanError> {
    if maps.len() > 340 {
        return Err(invalid(field, "more than 340 ranges"));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size == 0 {
            return Err(invalid(format!("{field}[{i}].size"), "must not be 0"));
        }
        let end = |start: u32| u64::from(start) + u64::from(m.size);
        if end(m.container_id) > 1 << 32 || end(m.host_id) > 1 << 32 {
            return Err(invalid(format!("{field}[{i}]"), "range exceeds 32-bit ids"));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32| {
                u64::from(a) < u64::from(b) + u64::from(o.size)
                    && u64::from(b) < u64::from(a) + u64::from(m.size)
            };
            if overlap(m.container_id, o.container_id) {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("container ids overlap with entry {j}"),
                ));
            }
            if overlap(m.host_id, o.host_id) {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("host ids overlap with entry {j}"),
                ));
            }
        }
    }
    Ok(())
}

/// Lexically clean an absolute path; a `..` that would climb above `/` is an
/// error rather than silently clamped, because it shows a hostile or broken config.
pub fn clean_abs(field: &str, p: &Path) -> Result<PathBuf, PlanError> {
    if !p.is_absolute() {
        return Err(invalid(
            field,
            format!("{} must be an absolute path", p.display()),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(invalid(
                        field,
                        format!("{} escapes the container root", p.display()),
                    ));
                }
            }
            Component::Prefix(_) => return Err(invalid(field, "unsupported path prefix")),
        }
    }
    Ok(out)
}

fn abs_paths(field: &str, list: Option<&[String]>) -> Result<Vec<PathBuf>, PlanError> {
    list.unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(i, p)| clean_abs(&format!("{field}[{i}]"), Path::new(p)))
        .collect()
}

fn propagation(p: &str) -> Option<u64> {
    let rec = libc::MS_REC;
    Some(match p {
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | rec,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | rec,
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | rec,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

fn mount_plan(i: usize, m: &Mount, bundle: &Path) -> Result<MountPlan, PlanError> {
    let field = format!("mounts[{i}]");
    let destination = clean_abs(&format!("{field}.destination"), m.destination())?;
    let options = mountopt::parse(m.options().as_deref().unwrap_or(&[]));
    let fstype = m.typ().clone().unwrap_or_default();
    let is_bind = options.bind || fstype == "bind";
    if fstype.is_empty() && !is_bind {
        return Err(invalid(
            format!("{field}.type"),
            "is required for a mount that is not a bind mount",
        ));
    }
    let source = match m.source() {
        None => None,
        Some(s) if is_bind => {
            if s.as_os_str().is_empty() {
                return Err(invalid(
                    format!("{field}.source"),
                    "is required for a bind mount",
                ));
            }
            let abs = if s.is_absolute() {
                s.clone()
            } else {
                bundle.join(s)
            };
            Some(abs.to_string_lossy().into_owned())
        }
        Some(s) => Some(s.to_string_lossy().into_owned()),
    };
    if is_bind && source.is_none() {
        return Err(invalid(
            format!("{field}.source"),
            "is required for a bind mount",
        ));
    }
    check_proc_destination(&field, &destination, &fstype)?;
    let uid_mappings = id_maps(&format!("{field}.uidMappings"), m.uid_mappings().as_deref())?;
    let gid_mappings = id_maps(&format!("{field}.gidMappings"), m.gid_mappings().as_deref())?;
    if options.idmap.is_some() && !is_bind {
        return Err(invalid(
            format!("{field}.options"),
            "idmap is only supported on bind mounts",
        ));
    }
    if (uid_mappings.is_empty() != gid_mappings.is_empty())
        || (options.idmap.is_some() && uid_mappings.is_empty())
    {
        return Err(invalid(
            format!("{field}.uidMappings"),
            "an idmapped mount needs both uidMappings and gidMappings",
        ));
    }
    Ok(MountPlan {
        destination,
        fstype,
        source,
        options,
        uid_mappings,
        gid_mappings,
    })
}

/// Nothing may be mounted over procfs but procfs itself at /proc and the
/// few files lxcfs-style tools replace: a mount over /proc/self/attr would
/// swallow LSM label writes, one over /proc/sys would undo readonlyPaths.
fn check_proc_destination(field: &str, dest: &Path, fstype: &str) -> Result<(), PlanError> {
    const ALLOWED: [&str; 10] = [
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/net/dev",
        "/proc/sys/kernel/ns_last_pid",
    ];
    if dest == Path::new("/proc") {
        if fstype == "proc" {
            return Ok(());
        }
        return Err(invalid(
            format!("{field}.destination"),
            "only a proc filesystem may be mounted at /proc",
        ));
    }
    if dest.starts_with("/proc") && !ALLOWED.iter().any(|a| dest == Path::new(a)) {
        return Err(invalid(
            format!("{field}.destination"),
            format!(
                "{} is inside /proc; only {} may be mounted over",
                dest.display(),
                ALLOWED.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_sysctl(key: &str, ns: &[NsPlan]) -> Result<(), PlanError> {
    let field = format!("linux.sysctl.{key}");
    if key.is_empty() || key.split(['.', '/']).any(|p| p.is_empty() || p == "..") {
        return Err(invalid(field, "malformed sysctl name"));
    }
    let has = |k: NsKind| ns.iter().any(|n| n.kind == k);
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ok = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        has(NsKind::Ipc)
    } else if key.starts_with("net.") {
        has(NsKind::Network)
    } else if key == "kernel.domainname" || key == "kernel.hostname" {
        has(NsKind::Uts)
    } else {
        false
    };
    if !ok {
        return Err(invalid(
            field,
            "is not namespaced to the container (needs its own ipc, net or uts namespace)",
        ));
    }
    Ok(())
}

fn cap_names<T: Serialize>(set: &Option<HashSet<T>>) -> Vec<String> {
    let mut v: Vec<String> = set
        .iter()
        .flatten()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

fn parse_cpu_list(field: &str, s: &str) -> Result<Vec<usize>, PlanError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || invalid(field, format!("malformed cpu list {s:?}"));
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b >= 8192 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Turn a `process` object (from config.json or exec's process.json) into a plan.
pub fn process_plan(p: &Process) -> Result<ProcessPlan, PlanError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid("process.args", "must name the program to run"));
    }
    // Limits execve itself would enforce, checked up front with the field.
    if args[0].len() >= 4096 {
        return Err(invalid("process.args[0]", "longer than PATH_MAX (4096)"));
    }
    const MAX_ARG_STRLEN: usize = 32 * 4096;
    for (i, a) in args.iter().enumerate() {
        if a.len() >= MAX_ARG_STRLEN {
            return Err(invalid(
                format!("process.args[{i}]"),
                "longer than the kernel's limit for one argument (128 KiB)",
            ));
        }
    }
    let env = p.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    let cwd = p.cwd().clone();
    if !cwd.is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{} must be an absolute path", cwd.display()),
        ));
    }
    let user = p.user();
    // (uid_t)-1 tells setresuid/setresgid "leave unchanged": the process
    // would silently keep the runtime's ids.
    if user.uid() == u32::MAX {
        return Err(invalid("process.user.uid", "4294967295 is not a valid id"));
    }
    if user.gid() == u32::MAX {
        return Err(invalid("process.user.gid", "4294967295 is not a valid id"));
    }
    if let Some(i) = user
        .additional_gids()
        .as_ref()
        .and_then(|g| g.iter().position(|g| *g == u32::MAX))
    {
        return Err(invalid(
            format!("process.user.additionalGids[{i}]"),
            "4294967295 is not a valid id",
        ));
    }
    let caps = match p.capabilities() {
        None => None,
        Some(c) => {
            let set = |field: &str, names: Vec<String>| {
                CapSet::from_names(&names)
                    .map_err(|e| invalid(format!("process.capabilities.{field}"), e.to_string()))
            };
            Some(CapsPlan {
                bounding: set("bounding", cap_names(c.bounding()))?,
                effective: set("effective", cap_names(c.effective()))?,
                inheritable: set("inheritable", cap_names(c.inheritable()))?,
                permitted: set("permitted", cap_names(c.permitted()))?,
                ambient: set("ambient", cap_names(c.ambient()))?,
            })
        }
    };
    let mut rlimits: Vec<Rlimit> = Vec::new();
    for (i, r) in p.rlimits().as_deref().unwrap_or(&[]).iter().enumerate() {
        let field = format!("process.rlimits[{i}]");
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let resource = crate::rlimit::resource_from_name(&name)
            .map_err(|e| invalid(format!("{field}.type"), e.to_string()))?;
        if rlimits.iter().any(|o| o.resource == resource) {
            return Err(invalid(
                format!("{field}.type"),
                format!("duplicate {name}"),
            ));
        }
        if r.soft() > r.hard() {
            return Err(invalid(
                field,
                format!("soft limit of {name} exceeds the hard limit"),
            ));
        }
        rlimits.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    if let Some(adj) = p.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return Err(invalid(
            "process.oomScoreAdj",
            "must be between -1000 and 1000",
        ));
    }
    let io_priority = match p.io_priority() {
        None => None,
        Some(io) => {
            let class = match serde_json::to_value(io.class())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref()
            {
                Some("IOPRIO_CLASS_RT") => 1,
                Some("IOPRIO_CLASS_BE") => 2,
                Some("IOPRIO_CLASS_IDLE") => 3,
                other => {
                    return Err(invalid(
                        "process.ioPriority.class",
                        format!("unknown class {other:?}"),
                    ));
                }
            };
            if !(0..=7).contains(&io.priority()) {
                return Err(invalid(
                    "process.ioPriority.priority",
                    "must be between 0 and 7",
                ));
            }
            Some((class, io.priority() as u32))
        }
    };
    let scheduler = match p.scheduler() {
        None => None,
        Some(s) => {
            use oci_spec::runtime::LinuxSchedulerPolicy as P;
            let policy = match s.policy() {
                P::SchedOther => libc::SCHED_OTHER,
                P::SchedFifo => libc::SCHED_FIFO,
                P::SchedRr => libc::SCHED_RR,
                P::SchedBatch => libc::SCHED_BATCH,
                P::SchedIso => 4,
                P::SchedIdle => libc::SCHED_IDLE,
                P::SchedDeadline => 6,
            };
            Some(SchedPlan {
                policy,
                priority: s.priority().unwrap_or(0),
                nice: s.nice().unwrap_or(0),
            })
        }
    };
    let (mut cpu_initial, mut cpu_final) = (None, None);
    if let Some(a) = p.exec_cpu_affinity() {
        if let Some(s) = a.initial() {
            cpu_initial = Some(parse_cpu_list("process.execCPUAffinity.initial", s)?);
        }
        if let Some(s) = a.cpu_affinity_final() {
            cpu_final = Some(parse_cpu_list("process.execCPUAffinity.final", s)?);
        }
    }
    Ok(ProcessPlan {
        terminal: p.terminal().unwrap_or(false),
        console_size: p.console_size().map(|b| {
            (
                b.height().min(u16::MAX.into()) as u16,
                b.width().min(u16::MAX.into()) as u16,
            )
        }),
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        caps,
        rlimits,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        oom_score_adj: p.oom_score_adj(),
        apparmor_profile: p.apparmor_profile().clone().filter(|s| !s.is_empty()),
        selinux_label: p.selinux_label().clone().filter(|s| !s.is_empty()),
        io_priority,
        scheduler,
        cpu_affinity_initial: cpu_initial,
        cpu_affinity_final: cpu_final,
    })
}

/// The hooks of a config, on their own: what `start` and `delete` need of
/// a stored config, without building (and validating again) the whole plan.
pub fn hooks_plan(h: Option<&oci_spec::runtime::Hooks>) -> Result<HooksPlan, PlanError> {
    let Some(h) = h else {
        return Ok(HooksPlan::default());
    };
    let conv = |name: &str, list: &Option<Vec<oci_spec::runtime::Hook>>| {
        list.as_deref()
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .map(|(i, hk)| {
                let field = format!("hooks.{name}[{i}]");
                if !hk.path().is_absolute() {
                    return Err(invalid(
                        format!("{field}.path"),
                        format!("{} must be an absolute path", hk.path().display()),
                    ));
                }
                let timeout_secs = match hk.timeout() {
                    None => None,
                    Some(t) if t <= 0 => {
                        return Err(invalid(format!("{field}.timeout"), "must be positive"));
                    }
                    Some(t) => Some(t as u64),
                };
                Ok(HookPlan {
                    path: hk.path().clone(),
                    args: hk.args().clone().unwrap_or_default(),
                    env: hk.env().clone(),
                    timeout_secs,
                })
            })
            .collect::<Result<Vec<_>, PlanError>>()
    };
    Ok(HooksPlan {
        prestart: conv("prestart", h.prestart())?,
        create_runtime: conv("createRuntime", h.create_runtime())?,
        create_container: conv("createContainer", h.create_container())?,
        start_container: conv("startContainer", h.start_container())?,
        poststart: conv("poststart", h.poststart())?,
        poststop: conv("poststop", h.poststop())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(json: &str) -> Result<Plan, PlanError> {
        let spec = parse_spec(Path::new("config.json"), json.as_bytes())?;
        Plan::from_spec(&spec, Path::new("/b"))
    }

    const BASE: &str = r#"{"ociVersion":"1.2.0","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"pid"},{"type":"mount"}]}}"#;

    #[test]
    fn minimal_config_is_accepted() {
        let p = plan(BASE).unwrap();
        assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
        assert!(p.creates(NsKind::Pid));
        assert!(!p.creates(NsKind::User));
    }

    fn with_netdevs(namespaces: &str, devs: &str) -> Result<Plan, PlanError> {
        plan(&BASE.replace(
            r#""namespaces":[{"type":"pid"},{"type":"mount"}]"#,
            &format!(r#""namespaces":{namespaces},"netDevices":{devs}"#),
        ))
    }

    const NET: &str = r#"[{"type":"pid"},{"type":"mount"},{"type":"network"}]"#;

    #[test]
    fn net_devices_are_planned_with_their_inside_names() {
        let p = with_netdevs(NET, r#"{"dummy1":{"name":"eth7"},"dummy0":{}}"#).unwrap();
        let got: Vec<_> = p
            .net_devices
            .iter()
            .map(|d| (d.host.as_str(), d.name.as_str()))
            .collect();
        assert_eq!(got, [("dummy0", "dummy0"), ("dummy1", "eth7")]);
        let p = with_netdevs(
            NET,
            r#"{"dummy1":{"name":"net%d"},"dummy0":{"name":"net%d"}}"#,
        );
        assert_eq!(p.unwrap().net_devices.len(), 2, "templates never clash");
    }

    #[test]
    fn net_devices_need_a_network_namespace() {
        let e = with_netdevs(r#"[{"type":"pid"}]"#, r#"{"dummy0":{}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("linux.netDevices:") && e.contains("network namespace"),
            "{e}"
        );
    }

    #[test]
    fn bad_net_device_names_name_the_field() {
        let long = "a".repeat(16);
        for (devs, field) in [
            (
                format!(r#"{{"{long}":{{}}}}"#),
                format!("linux.netDevices.{long}:"),
            ),
            (r#"{"a b":{}}"#.into(), "linux.netDevices.a b:".into()),
            (r#"{"..":{}}"#.into(), "linux.netDevices...:".into()),
            (r#"{"d%d":{}}"#.into(), "linux.netDevices.d%d:".into()),
            (
                r#"{"d0":{"name":"a/b"}}"#.into(),
                "linux.netDevices.d0.name:".into(),
            ),
            (
                r#"{"d0":{"name":"x:1"}}"#.into(),
                "linux.netDevices.d0.name:".into(),
            ),
            (
                format!(r#"{{"d0":{{"name":"{long}"}}}}"#),
                "linux.netDevices.d0.name:".into(),
            ),
            (
                r#"{"d0":{"name":"e%s"}}"#.into(),
                "linux.netDevices.d0.name:".into(),
            ),
            (
                r#"{"d0":{"name":"eth0"},"d1":{"name":"eth0"}}"#.into(),
                "linux.netDevices.d1.name:".into(),
            ),
            (
                r#"{"d0":{},"d1":{"name":"d0"}}"#.into(),
                "linux.netDevices.d1.name:".into(),
            ),
        ] {
            let e = with_netdevs(NET, &devs).unwrap_err().to_string();
            assert!(e.starts_with(&field), "{devs}: {e}");
        }
    }

    #[test]
    fn unknown_namespace_names_the_field() {
        let e = plan(&BASE.replace(r#""type":"pid""#, r#""type":"bogus""#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux.namespaces[0]"), "{e}");
    }

    #[test]
    fn duplicate_namespace_rejected() {
        let e = plan(&BASE.replace(r#"{"type":"mount"}"#, r#"{"type":"pid"}"#))
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate"), "{e}");
    }

    #[test]
    fn escaping_mount_destination_rejected() {
        let j = BASE.replace(
            r#""linux""#,
            r#""mounts":[{"destination":"/../../etc","type":"tmpfs","source":"tmpfs"}],"linux""#,
        );
        let e = plan(&j).unwrap_err().to_string();
        assert!(
            e.contains("mounts[0].destination") && e.contains("escapes"),
            "{e}"
        );
    }

    #[test]
    fn mounts_over_proc_files_rejected() {
        for (dest, ty) in [
            ("/proc/self/attr", "tmpfs"),
            ("/proc/sys", "proc"),
            ("/proc", "tmpfs"),
        ] {
            let j = BASE.replace(
                r#""linux""#,
                &format!(
                    r#""mounts":[{{"destination":"{dest}","type":"{ty}","source":"x"}}],"linux""#
                ),
            );
            let e = plan(&j).unwrap_err().to_string();
            assert!(e.contains("mounts[0].destination"), "{dest}: {e}");
        }
        let ok = BASE.replace(
            r#""linux""#,
            r#""mounts":[{"destination":"/proc","type":"proc","source":"proc"},
                {"destination":"/proc/meminfo","type":"bind","source":"/tmp/m","options":["bind"]}],"linux""#,
        );
        plan(&ok).unwrap();
    }

    #[test]
    fn relative_mount_destination_rejected() {
        let j = BASE.replace(
            r#""linux""#,
            r#""mounts":[{"destination":"tmp","type":"tmpfs","source":"tmpfs"}],"linux""#,
        );
        assert!(plan(&j).unwrap_err().to_string().contains("absolute"));
    }

    #[test]
    fn overlapping_mappings_rejected() {
        let j = BASE.replace(
            r#"{"type":"mount"}]"#,
            r#"{"type":"mount"},{"type":"user"}],
              "uidMappings":[{"containerID":0,"hostID":1000,"size":10},{"containerID":5,"hostID":5000,"size":10}],
              "gidMappings":[{"containerID":0,"hostID":1000,"size":10}]"#,
        );
        let e = plan(&j).unwrap_err().to_string();
        assert!(
            e.contains("linux.uidMappings[1]") && e.contains("overlap"),
            "{e}"
        );
    }

    #[test]
    fn userns_without_mappings_rejected() {
        let j = BASE.replace(
            r#"{"type":"mount"}]"#,
            r#"{"type":"mount"},{"type":"user"}]"#,
        );
        assert!(plan(&j).unwrap_err().to_string().contains("uidMappings"));
    }

    #[test]
    fn hostname_needs_uts() {
        let j = BASE.replace(r#""linux""#, r#""hostname":"h","linux""#);
        assert!(plan(&j).unwrap_err().to_string().starts_with("hostname"));
    }

    #[test]
    fn sysctl_must_be_namespaced() {
        let j = BASE.replace(r#""linux":{"#, r#""linux":{"sysctl":{"kernel.panic":"1"},"#);
        assert!(
            plan(&j)
                .unwrap_err()
                .to_string()
                .contains("linux.sysctl.kernel.panic")
        );
    }

    #[test]
    fn relative_cwd_rejected() {
        let j = BASE.replace(r#""cwd":"/""#, r#""cwd":"tmp""#);
        assert!(plan(&j).unwrap_err().to_string().contains("process.cwd"));
    }

    #[test]
    fn clean_abs_normalises() {
        assert_eq!(
            clean_abs("f", Path::new("/a/./b/../c")).unwrap(),
            PathBuf::from("/a/c")
        );
        assert!(clean_abs("f", Path::new("/a/../../b")).is_err());
    }
}
