//! The live front end: what the kernel says a running process has.
//!
//! Everything comes from /proc/<pid> (through a pathrs procfs handle, so a
//! bind mount over /proc cannot feed us a forged view), compared with our
//! own view (the audit runs on the host: its namespaces and mount table are
//! the host's; pid 1 is not always readable, e.g. under a ptrace-protected
//! init), plus the process's cgroup files. Read only.

use crate::devices::DeviceAccess;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

use crate::{
    AuditError, Caps, DeviceObs, IdRange, Landlock, MountObs, NsState, Observed, Seccomp,
    SeccompMode, Source,
};

/// Filesystems a container gets its own instance of (or that carry no
/// host files): never reported as host paths.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "fusectl",
    "configfs",
    "pstore",
    "hugetlbfs",
    "binfmt_misc",
    "nsfs",
];

/// Host device nodes every runtime binds in; harmless.
const SAFE_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/console",
    "/dev/ptmx",
];

/// Files engines generate per container and bind in from their state dirs.
const ENGINE_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/run/.containerenv",
    "/.dockerenv",
    "/dev/shm",
];

/// An engine's per-container file (podman's userdata/hosts at /etc/hosts):
/// same name, and not the host's own /etc file.
fn engine_file(dest: &str, host: &str) -> bool {
    let base = |p: &str| p.rsplit('/').next().unwrap_or("").to_string();
    ENGINE_FILES.contains(&dest) && base(dest) == base(host) && !host.starts_with("/etc/")
}

fn base(pid: i32) -> ProcfsBase {
    if pid == 0 {
        ProcfsBase::ProcSelf
    } else {
        ProcfsBase::ProcPid(pid as u32)
    }
}

struct Proc {
    h: ProcfsHandle,
    pid: i32,
}

impl Proc {
    fn err(&self, file: &str, e: impl std::fmt::Display) -> AuditError {
        AuditError::Proc {
            pid: self.pid,
            file: file.to_string(),
            reason: e.to_string(),
        }
    }

    /// `pid` 0: our own process (the host's view).
    fn read(&self, pid: i32, file: &str) -> Result<String, AuditError> {
        let mut f = self
            .h
            .open(base(pid), file, OpenFlags::O_RDONLY)
            .map_err(|e| self.err(file, e))?;
        let mut s = String::new();
        f.read_to_string(&mut s).map_err(|e| self.err(file, e))?;
        Ok(s)
    }

    fn ns(&self, pid: i32, name: &str) -> Option<String> {
        self.h
            .readlink(base(pid), format!("ns/{name}"))
            .ok()
            .map(|p| p.display().to_string())
    }
}

/// Model the process `pid`, comparing its namespaces with ours.
pub fn observe(pid: i32) -> Result<Observed, AuditError> {
    if pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(AuditError::NoSuchPid { pid });
    }
    let h = ProcfsHandle::new().map_err(|e| AuditError::Proc {
        pid,
        file: String::new(),
        reason: format!("open procfs: {e}"),
    })?;
    let p = Proc { h, pid };
    let status = p.read(pid, "status").map_err(|e| match e {
        AuditError::Proc { .. } if !Path::new(&format!("/proc/{pid}")).exists() => {
            AuditError::NoSuchPid { pid }
        }
        e => e,
    })?;
    let st = parse_status(&status);

    let mut namespaces = BTreeMap::new();
    for name in ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time"] {
        let state = match (p.ns(pid, name), p.ns(0, name)) {
            (Some(a), Some(b)) if a == b => NsState::Host,
            (Some(_), Some(_)) => NsState::Private,
            _ => NsState::Unknown,
        };
        namespaces.insert(name.to_string(), state);
    }
    let uid_map = parse_idmap(&p.read(pid, "uid_map")?);
    let gid_map = parse_idmap(&p.read(pid, "gid_map")?);
    // status shows host ids (our user namespace's view): map back.
    let uid = st.host_uid.map(|h| {
        uid_map
            .iter()
            .find(|r| h >= r.outside && h - r.outside < r.count)
            .map_or(h, |r| r.inside + (h - r.outside))
    });
    let lsm_label = p
        .read(pid, "attr/current")
        .ok()
        .map(|s| s.trim_end_matches(['\n', '\0']).to_string())
        .filter(|s| !s.is_empty());

    let own = parse_mountinfo(&p.read(pid, "mountinfo")?);
    let host = p
        .read(0, "mountinfo")
        .map(|s| parse_mountinfo(&s))
        .unwrap_or_default();
    let (mounts, masked) = mounts(&own, &host);
    let cgroupfs_writable = Some(
        mounts
            .iter()
            .any(|m| (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.writable),
    );

    let cg = cgroups(&p.read(pid, "cgroup")?, &host);
    Ok(Observed {
        source: Source::Live,
        namespaces,
        uid_map,
        gid_map,
        uid,
        caps: st.caps,
        host_caps: host_caps(),
        no_new_privs: st.nnp,
        seccomp: Seccomp {
            mode: st.seccomp,
            filters: st.filters,
            default_action: None,
            rules: None,
        },
        lsm_label,
        landlock: Landlock::Unknown,
        mounts,
        masked,
        devices: devices(pid),
        all_devices_allowed: cg.all_devices,
        device_access: cg.device_access,
        devices_unknown: cg.devices_unknown,
        memory_limit: cg.memory,
        pids_limit: cg.pids,
        cgroupfs_writable,
        net_devices: Vec::new(),
    })
}

#[derive(Debug, Default)]
pub struct Status {
    pub host_uid: Option<u32>,
    pub caps: Option<Caps>,
    pub nnp: Option<bool>,
    pub seccomp: SeccompMode,
    pub filters: Option<u32>,
}

fn cap_names(hex: &str) -> Vec<String> {
    let bits = u64::from_str_radix(hex.trim(), 16).unwrap_or(0);
    (0..64)
        .filter(|b| bits & (1u64 << b) != 0)
        .filter_map(|b| bulkhead_spec::caps::name(b))
        .map(str::to_string)
        .collect()
}

/// The parts of /proc/<pid>/status the audit uses.
pub fn parse_status(s: &str) -> Status {
    let mut out = Status::default();
    let mut caps = Caps::default();
    let mut saw_caps = false;
    for line in s.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k {
            "Uid" => out.host_uid = v.split_whitespace().next().and_then(|x| x.parse().ok()),
            "CapInh" => (caps.inheritable, saw_caps) = (cap_names(v), true),
            "CapPrm" => caps.permitted = cap_names(v),
            "CapEff" => caps.effective = cap_names(v),
            "CapBnd" => caps.bounding = cap_names(v),
            "CapAmb" => caps.ambient = cap_names(v),
            "NoNewPrivs" => out.nnp = Some(v == "1"),
            "Seccomp" => {
                out.seccomp = match v {
                    "0" => SeccompMode::Disabled,
                    "1" => SeccompMode::Strict,
                    "2" => SeccompMode::Filter,
                    _ => SeccompMode::Unknown,
                }
            }
            "Seccomp_filters" => out.filters = v.parse().ok(),
            _ => {}
        }
    }
    if saw_caps {
        out.caps = Some(caps);
    }
    out
}

/// Our own bounding set: the capabilities a runtime on this host can grant.
pub fn host_caps() -> Vec<String> {
    ProcfsHandle::new()
        .ok()
        .and_then(|h| {
            let p = Proc { h, pid: 0 };
            p.read(0, "status").ok()
        })
        .and_then(|s| parse_status(&s).caps)
        .map(|c| c.bounding)
        .unwrap_or_default()
}

pub fn parse_idmap(s: &str) -> Vec<IdRange> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|x| x.parse::<u32>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(inside)), Some(Ok(outside)), Some(Ok(count))) => Some(IdRange {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

/// One line of mountinfo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountInfo {
    pub dev: String,
    pub root: String,
    pub mount_point: String,
    pub writable: bool,
    pub fstype: String,
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && b[i + 1] <= b'3'
        {
            // At most \377: a larger escape (never the kernel's) stays as
            // text rather than overflowing.
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(s: &str) -> Vec<MountInfo> {
    s.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            if f.len() < 6 || g.len() < 3 {
                return None;
            }
            let ro = |opts: &str| opts.split(',').any(|o| o == "ro");
            Some(MountInfo {
                dev: f[2].to_string(),
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                writable: !ro(f[5]) && !ro(g[2]),
                fstype: g[0].to_string(),
            })
        })
        .collect()
}

/// Where on the host a mount's files are: the host mount of the same
/// filesystem whose root is the longest prefix of ours.
fn host_path(m: &MountInfo, host: &[MountInfo]) -> Option<String> {
    host.iter()
        .filter(|h| h.dev == m.dev)
        .filter_map(|h| {
            let rest = if h.root == "/" {
                Some(m.root.as_str())
            } else if m.root == h.root {
                Some("")
            } else {
                m.root.strip_prefix(&h.root).filter(|r| r.starts_with('/'))
            }?;
            let rest = if rest == "/" { "" } else { rest };
            Some((
                h.root.len(),
                format!("{}{}", h.mount_point.trim_end_matches('/'), rest),
            ))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| if p.is_empty() { "/".into() } else { p })
}

/// The container's mounts (with host paths where the filesystem is the
/// host's) and the paths masked by an empty mount.
pub fn mounts(own: &[MountInfo], host: &[MountInfo]) -> (Vec<MountObs>, Vec<String>) {
    let mut out = Vec::new();
    let mut masked = Vec::new();
    for m in own {
        let under_proc_sys = ["/proc", "/sys"]
            .iter()
            .any(|d| m.mount_point.starts_with(&format!("{d}/")));
        let hp = if PSEUDO_FS.contains(&m.fstype.as_str()) {
            None
        } else {
            host_path(m, host)
        };
        // Masks: /dev/null over a file, an empty read-only tmpfs over a dir.
        let is_null = hp.as_deref() == Some("/dev/null") || m.root.ends_with("/null");
        if under_proc_sys && (is_null || (m.fstype == "tmpfs" && !m.writable && hp.is_none())) {
            masked.push(m.mount_point.clone());
            continue;
        }
        let hp = hp.filter(|p| {
            !SAFE_DEVICES.contains(&p.as_str())
                && !p.starts_with("/dev/pts/")
                && !engine_file(&m.mount_point, p)
        });
        out.push(MountObs {
            destination: m.mount_point.clone(),
            fstype: m.fstype.clone(),
            host_path: hp,
            writable: m.writable,
        });
    }
    (out, masked)
}

struct CgroupLimits {
    memory: Option<Option<u64>>,
    pids: Option<Option<u64>>,
    all_devices: Option<bool>,
    device_access: Option<DeviceAccess>,
    devices_unknown: Option<String>,
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Limits from the process's cgroups (v1 controllers, else cgroup v2);
/// `host` is the auditor's mount table (where cgroup2 is mounted).
fn cgroups(s: &str, host: &[MountInfo]) -> CgroupLimits {
    let mut v1: BTreeMap<&str, &str> = BTreeMap::new();
    let mut v2: Option<&str> = None;
    for l in s.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        if ctrls.is_empty() {
            v2 = Some(path);
        }
        for c in ctrls.split(',') {
            v1.insert(c, path);
        }
    }
    let limit = |v: Option<String>| -> Option<Option<u64>> {
        let v = v?;
        // v1 reports "no limit" as a huge page-rounded number.
        Some(v.parse::<u64>().ok().filter(|&n| n < (1u64 << 62)))
    };
    let memory = match (v1.get("memory"), v2) {
        (Some(p), _) => limit(read_trim(&format!(
            "/sys/fs/cgroup/memory{p}/memory.limit_in_bytes"
        ))),
        (None, Some(p)) => limit(read_trim(&format!("/sys/fs/cgroup{p}/memory.max"))),
        _ => None,
    };
    let pids = match (v1.get("pids"), v2) {
        (Some(p), _) => limit(read_trim(&format!("/sys/fs/cgroup/pids{p}/pids.max"))),
        (None, Some(p)) => limit(read_trim(&format!("/sys/fs/cgroup{p}/pids.max"))),
        _ => None,
    };
    let (device_access, devices_unknown) = device_access(v1.get("devices").copied(), v2, host);
    let all_devices = device_access
        .as_ref()
        .map(|a| a.allows("any char device") && a.allows("any block device"));
    CgroupLimits {
        memory,
        pids,
        all_devices,
        device_access,
        devices_unknown,
    }
}

/// The device cgroup's verdict: the v1 `devices.list` of `v1_path` (an
/// allowlist) and every device program that runs for the cgroup2 directory
/// `v2_path` (its own and inherited ones): an access is allowed only when
/// all of them allow it (the kernel checks both on a hybrid host).
fn device_access(
    v1_path: Option<&str>,
    v2_path: Option<&str>,
    host: &[MountInfo],
) -> (Option<DeviceAccess>, Option<String>) {
    let list = v1_path.and_then(|p| read_trim(&format!("/sys/fs/cgroup/devices{p}/devices.list")));
    if v1_path.is_some() && list.is_none() {
        return (
            None,
            Some(format!(
                "cannot read the devices.list of cgroup {}",
                v1_path.unwrap_or_default()
            )),
        );
    }
    let mount = host
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point.clone());
    let progs = match (v2_path, mount) {
        (Some(p), Some(m)) => match v2_programs(&format!("{m}{p}")) {
            Ok(progs) => Some(progs),
            Err(e) => return (None, Some(e)),
        },
        _ => None,
    };
    let mut by = Vec::new();
    if list.is_some() {
        by.push("cgroup v1 devices.list".to_string());
    }
    if let Some(p) = progs.as_ref().filter(|p| !p.is_empty()) {
        let ids: Vec<String> = p.iter().map(|(id, _)| id.to_string()).collect();
        by.push(format!("cgroup v2 device program {}", ids.join(", ")));
    }
    if list.is_none() && progs.is_none() {
        return (None, None);
    }
    if by.is_empty() {
        by.push("no device cgroup (cgroup v2 without a device program)".into());
    }
    let mut err = None;
    let access = crate::devices::check(by.join(" and "), |k, ma, mi, a| {
        let mut ok = list
            .as_deref()
            .is_none_or(|l| crate::devices::v1_allows(l, k, ma, mi, a));
        if let Some(p) = &progs {
            match crate::devices::programs_allow(p, k, ma, mi, a) {
                Ok(v) => ok &= v,
                Err(e) => {
                    err = Some(e.to_string());
                    return None;
                }
            }
        }
        Some(ok)
    });
    (access, err)
}

/// The device programs that run for the cgroup2 directory `dir`, with
/// their instructions as the kernel holds them.
fn v2_programs(dir: &str) -> Result<Vec<(u32, Vec<bulkhead_cgroups::devfilter::Insn>)>, String> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    let what = |e: std::io::Error| format!("cgroup v2 device programs of {dir}: {e}");
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(what)?;
    let mut out = Vec::new();
    for id in bulkhead_sys::bpf::query_effective(d.as_fd()).map_err(what)? {
        let fd = bulkhead_sys::bpf::prog_fd_by_id(id).map_err(what)?;
        let bytes = bulkhead_sys::bpf::prog_xlated(fd.as_fd()).map_err(what)?;
        out.push((id, crate::devices::decode(&bytes)));
    }
    Ok(out)
}

/// Block and raw-memory device nodes in the container's /dev.
fn devices(pid: i32) -> Vec<DeviceObs> {
    let dir = format!("/proc/{pid}/root/dev");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        let ft = md.file_type();
        let kind = if ft.is_block_device() {
            'b'
        } else if ft.is_char_device() {
            'c'
        } else {
            continue;
        };
        let dev = md.rdev();
        out.push(DeviceObs {
            path: format!("/dev/{}", e.file_name().to_string_lossy()),
            kind,
            major: ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
            minor: (dev & 0xff) | ((dev >> 12) & !0xff),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
