//! Usage statistics of a container's cgroups, in the JSON shape of runc's
//! `events` ("data" of a "stats" event), and OOM-kill notification.
//!
//! v1 files: `cpuacct.usage`, `cpuacct.usage_percpu`, `cpuacct.usage_all`,
//! `cpuacct.stat`, `cpu.stat`, `memory.{usage,max_usage,limit,failcnt}`
//! (plain, `memsw.`, `kmem.` and `kmem.tcp.`), `memory.stat`,
//! `pids.{current,max}`, `blkio.*_recursive`, `hugetlb.*`, `cpuset.*`.
//! cgroup2 files: `cpu.stat`, `memory.{current,max,peak,swap.current,
//! swap.max,events,stat}`, `pids.{current,max}`, `io.stat`,
//! `hugetlb.<size>.{current,max,events}`, `cpuset.*.effective`.
//! Files that do not exist (a controller that is not there, an older
//! kernel) leave their fields zero.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::set::{CgroupDir, CgroupSet};
use crate::update::parse_list;
use crate::{CgroupError, fsutil};

fn zero(v: &u64) -> bool {
    *v == 0
}

/// One stats sample (runc's `types.Stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: IntelRdt,
    /// Always `null`: network statistics are not a cgroup matter.
    pub network_interfaces: Option<Vec<()>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time, in nanoseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// Bytes; `limit` is `u64::MAX` when unlimited on cgroup2.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// `memory.stat`, key by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    /// 0 when unlimited.
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT is not supported: always `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IntelRdt {}

/// A file's content, `None` when it does not exist or cannot be read.
fn text(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

/// A single number from a file; `max` (and anything unparsable) is 0
/// unless `max_is` says otherwise.
fn num(dir: &Path, file: &str) -> u64 {
    num_or(dir, file, 0)
}

fn num_or(dir: &Path, file: &str, max_is: u64) -> u64 {
    match text(dir, file) {
        Some(t) if t.trim() == "max" => max_is,
        Some(t) => t.trim().parse().unwrap_or(0),
        None => 0,
    }
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `memory.events`, ...).
fn keyed(dir: &Path, file: &str) -> BTreeMap<String, u64> {
    text(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Hugepage sizes of the host, as the cgroup files name them (`2MB`, `1GB`).
fn hugepage_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(if kb.is_multiple_of(1 << 20) {
                format!("{}GB", kb >> 20)
            } else if kb.is_multiple_of(1 << 10) {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            })
        })
        .collect();
    out.sort();
    out
}

/// v1 blkio lines `MAJ:MIN Op value`; `Total` lines are skipped.
fn blkio_v1(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    text(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f.as_slice() else {
                return None;
            };
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: (*op).to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Expand a cpuset list file into its members.
fn members(dir: &Path, file: &str) -> Vec<u16> {
    text(dir, file)
        .filter(|t| !t.trim().is_empty())
        .and_then(|t| parse_list(&t).ok())
        .map(|s| {
            s.into_iter()
                .filter_map(|v| u16::try_from(v).ok())
                .collect()
        })
        .unwrap_or_default()
}

impl CgroupSet {
    /// The directory of `controller`, as resources are written there.
    fn stats_dir(&self, controller: &str) -> Option<&CgroupDir> {
        self.target(controller)
    }

    /// Read the container's current usage. Fails only when the container's
    /// cgroups are gone; missing files leave their fields zero.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        if let Some(d) = self.dirs.iter().find(|d| !d.path.is_dir()) {
            return Err(CgroupError::Events {
                what: format!("reading statistics of {}", d.path.display()),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        let mut s = Stats::default();
        self.cpu_stats(&mut s.cpu);
        if let Some(d) = self.stats_dir("cpuset") {
            let p = &d.path;
            let (cpus, mems) = if d.v2 {
                ("cpuset.cpus.effective", "cpuset.mems.effective")
            } else {
                ("cpuset.cpus", "cpuset.mems")
            };
            s.cpuset.cpus = members(p, cpus);
            s.cpuset.mems = members(p, mems);
            if !d.v2 {
                s.cpuset.cpu_exclusive = num(p, "cpuset.cpu_exclusive");
                s.cpuset.mem_hardwall = num(p, "cpuset.mem_hardwall");
                s.cpuset.mem_exclusive = num(p, "cpuset.mem_exclusive");
                s.cpuset.memory_migrate = num(p, "cpuset.memory_migrate");
                s.cpuset.memory_spread_page = num(p, "cpuset.memory_spread_page");
                s.cpuset.memory_spread_slab = num(p, "cpuset.memory_spread_slab");
                s.cpuset.memory_pressure = num(p, "cpuset.memory_pressure");
                s.cpuset.sched_load_balance = num(p, "cpuset.sched_load_balance");
                s.cpuset.sched_relax_domain_level = text(p, "cpuset.sched_relax_domain_level")
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
        self.memory_stats(&mut s.memory);
        if let Some(d) = self.stats_dir("pids") {
            s.pids.current = num(&d.path, "pids.current");
            s.pids.limit = num(&d.path, "pids.max");
        }
        if let Some(d) = self.stats_dir("blkio") {
            let p = &d.path;
            // The CFQ/BFQ counters when the scheduler keeps them, else the
            // throttling layer's, which always exist.
            for prefix in ["blkio.", "blkio.bfq.", "blkio.throttle."] {
                let bytes = blkio_v1(p, &format!("{prefix}io_service_bytes_recursive"));
                if !bytes.is_empty() || prefix == "blkio.throttle." {
                    s.blkio.io_service_bytes_recursive = bytes;
                    s.blkio.io_serviced_recursive =
                        blkio_v1(p, &format!("{prefix}io_serviced_recursive"));
                    break;
                }
            }
        } else if let Some(d) = self.stats_dir("io") {
            for line in text(&d.path, "io.stat").unwrap_or_default().lines() {
                let mut f = line.split_whitespace();
                let Some((ma, mi)) = f.next().and_then(|dev| dev.split_once(':')) else {
                    continue;
                };
                let (Ok(major), Ok(minor)) = (ma.parse(), mi.parse()) else {
                    continue;
                };
                for kv in f {
                    let Some((k, v)) = kv.split_once('=') else {
                        continue;
                    };
                    let Ok(value) = v.parse() else { continue };
                    let (list, op) = match k {
                        "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                        "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                        "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                        "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                        _ => continue,
                    };
                    list.push(BlkioEntry {
                        major,
                        minor,
                        op: op.into(),
                        value,
                    });
                }
            }
        }
        if let Some(d) = self.stats_dir("hugetlb") {
            for size in hugepage_sizes() {
                let p = &d.path;
                let h = if d.v2 {
                    Hugetlb {
                        usage: num(p, &format!("hugetlb.{size}.current")),
                        max: 0,
                        failcnt: keyed(p, &format!("hugetlb.{size}.events"))
                            .get("max")
                            .copied()
                            .unwrap_or(0),
                    }
                } else {
                    Hugetlb {
                        usage: num(p, &format!("hugetlb.{size}.usage_in_bytes")),
                        max: num(p, &format!("hugetlb.{size}.max_usage_in_bytes")),
                        failcnt: num(p, &format!("hugetlb.{size}.failcnt")),
                    }
                };
                s.hugetlb.insert(size, h);
            }
        }
        Ok(s)
    }

    fn cpu_stats(&self, cpu: &mut Cpu) {
        let ticks = rustix::param::clock_ticks_per_second().max(1);
        let tick_ns = |t: u64| t.saturating_mul(1_000_000_000) / ticks;
        if let Some(d) = self.dirs.iter().find(|d| !d.v2 && d.has("cpuacct")) {
            let p = &d.path;
            cpu.usage.total = num(p, "cpuacct.usage");
            cpu.usage.percpu = text(p, "cpuacct.usage_percpu")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // "cpu user system" header, then one line per CPU (in ns).
            for line in text(p, "cpuacct.usage_all")
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let f: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect();
                if let [_, user, system] = f.as_slice() {
                    cpu.usage.percpu_user.push(*user);
                    cpu.usage.percpu_kernel.push(*system);
                }
            }
            let st = keyed(p, "cpuacct.stat");
            cpu.usage.user = tick_ns(st.get("user").copied().unwrap_or(0));
            cpu.usage.kernel = tick_ns(st.get("system").copied().unwrap_or(0));
        } else if let Some(d) = self.v2_dir() {
            let st = keyed(&d.path, "cpu.stat");
            let us = |k: &str| st.get(k).copied().unwrap_or(0).saturating_mul(1000);
            cpu.usage.total = us("usage_usec");
            cpu.usage.user = us("user_usec");
            cpu.usage.kernel = us("system_usec");
        }
        if let Some(d) = self.stats_dir("cpu") {
            let st = keyed(&d.path, "cpu.stat");
            let get = |k: &str| st.get(k).copied().unwrap_or(0);
            cpu.throttling.periods = get("nr_periods");
            cpu.throttling.throttled_periods = get("nr_throttled");
            cpu.throttling.throttled_time = if d.v2 {
                get("throttled_usec").saturating_mul(1000)
            } else {
                get("throttled_time")
            };
        }
    }

    fn memory_stats(&self, m: &mut Memory) {
        let Some(d) = self.stats_dir("memory") else {
            return;
        };
        let p = &d.path;
        m.raw = keyed(p, "memory.stat");
        if d.v2 {
            m.cache = m.raw.get("file").copied().unwrap_or(0);
            let events = keyed(p, "memory.events");
            m.usage = MemoryEntry {
                limit: num_or(p, "memory.max", u64::MAX),
                usage: num(p, "memory.current"),
                max: num(p, "memory.peak"),
                failcnt: events.get("max").copied().unwrap_or(0),
            };
            if p.join("memory.swap.current").exists() {
                m.swap = MemoryEntry {
                    limit: num_or(p, "memory.swap.max", u64::MAX),
                    usage: num(p, "memory.swap.current"),
                    max: num(p, "memory.swap.peak"),
                    failcnt: 0,
                };
            }
            return;
        }
        m.cache = m.raw.get("cache").copied().unwrap_or(0);
        let entry = |prefix: &str| {
            if !p.join(format!("{prefix}usage_in_bytes")).exists() {
                return MemoryEntry::default();
            }
            MemoryEntry {
                limit: num(p, &format!("{prefix}limit_in_bytes")),
                usage: num(p, &format!("{prefix}usage_in_bytes")),
                max: num(p, &format!("{prefix}max_usage_in_bytes")),
                failcnt: num(p, &format!("{prefix}failcnt")),
            }
        };
        m.usage = entry("memory.");
        m.swap = entry("memory.memsw.");
        m.kernel = entry("memory.kmem.");
        m.kernel_tcp = entry("memory.kmem.tcp.");
    }

    /// Start watching for OOM kills: v1 registers an eventfd for
    /// `memory.oom_control` through `cgroup.event_control`; cgroup2 follows
    /// the `oom_kill` counter of `memory.events`.
    pub fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        let Some(d) = self.stats_dir("memory") else {
            return Ok(OomWatcher { inner: Inner::None });
        };
        if d.v2 {
            let events = d.path.join("memory.events");
            let last = keyed(&d.path, "memory.events")
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
            return Ok(OomWatcher {
                inner: Inner::V2 { events, last },
            });
        }
        let err = |what: String| move |source: std::io::Error| CgroupError::Events { what, source };
        let control_path = d.path.join("memory.oom_control");
        let control = File::open(&control_path)
            .map_err(err(format!("opening {}", control_path.display())))?;
        let efd = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)
            .map_err(|e| err("creating an eventfd".into())(e.into()))?;
        fsutil::write(
            &d.path.join("cgroup.event_control"),
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(OomWatcher {
            inner: Inner::V1 {
                efd,
                _control: control,
                dir: d.path.clone(),
            },
        })
    }
}

/// Waits for OOM kills in a container (see [`CgroupSet::oom_watcher`]).
pub struct OomWatcher {
    inner: Inner,
}

enum Inner {
    /// No memory controller: nothing ever happens.
    None,
    V1 {
        efd: OwnedFd,
        _control: File,
        dir: PathBuf,
    },
    V2 {
        events: PathBuf,
        last: u64,
    },
}

impl OomWatcher {
    /// Wait up to `timeout` and return how many OOM notifications arrived
    /// (0 when none did). Once the cgroup is removed this only sleeps.
    pub fn wait(&mut self, timeout: Duration) -> Result<u64, CgroupError> {
        match &mut self.inner {
            Inner::None => {
                std::thread::sleep(timeout);
                Ok(0)
            }
            Inner::V1 { efd, dir, .. } => {
                let ts = rustix::time::Timespec {
                    tv_sec: timeout.as_secs() as _,
                    tv_nsec: timeout.subsec_nanos() as _,
                };
                let mut fds = [rustix::event::PollFd::new(
                    &*efd,
                    rustix::event::PollFlags::IN,
                )];
                let ready = match rustix::event::poll(&mut fds, Some(&ts)) {
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR) => 0,
                    Err(e) => {
                        return Err(CgroupError::Events {
                            what: "waiting for OOM notifications".into(),
                            source: e.into(),
                        });
                    }
                };
                if ready == 0 {
                    return Ok(0);
                }
                let mut buf = [0u8; 8];
                rustix::io::read(&*efd, &mut buf).map_err(|e| CgroupError::Events {
                    what: "reading the OOM eventfd".into(),
                    source: e.into(),
                })?;
                // The eventfd also fires when the cgroup goes away.
                if !dir.is_dir() {
                    self.inner = Inner::None;
                    return Ok(0);
                }
                Ok(u64::from_ne_bytes(buf))
            }
            Inner::V2 { events, last } => {
                let step = Duration::from_millis(50);
                let start = std::time::Instant::now();
                loop {
                    let now = std::fs::read_to_string(&*events)
                        .ok()
                        .and_then(|t| {
                            t.lines()
                                .find_map(|l| l.strip_prefix("oom_kill "))
                                .and_then(|v| v.trim().parse::<u64>().ok())
                        })
                        .unwrap_or(*last);
                    if now > *last {
                        let n = now - *last;
                        *last = now;
                        return Ok(n);
                    }
                    let left = timeout.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Ok(0);
                    }
                    std::thread::sleep(left.min(step));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_files_to_stats() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |name: &str, files: &[(&str, &str)]| {
            let p = tmp.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            for (f, v) in files {
                std::fs::write(p.join(f), v).unwrap();
            }
            CgroupDir {
                name: name.into(),
                path: p,
                v2: false,
                controllers: vec![name.into()],
                existed: false,
            }
        };
        let set = CgroupSet {
            systemd: None,
            dirs: vec![
                dir(
                    "cpuacct",
                    &[
                        ("cpuacct.usage", "3000\n"),
                        ("cpuacct.usage_percpu", "1000 2000 \n"),
                        (
                            "cpuacct.usage_all",
                            "cpu user system\n0 600 400\n1 1500 500\n",
                        ),
                        ("cpuacct.stat", "user 2\nsystem 1\n"),
                    ],
                ),
                dir(
                    "cpu",
                    &[(
                        "cpu.stat",
                        "nr_periods 10\nnr_throttled 4\nthrottled_time 99\n",
                    )],
                ),
                dir(
                    "memory",
                    &[
                        ("memory.usage_in_bytes", "4096\n"),
                        ("memory.max_usage_in_bytes", "8192\n"),
                        ("memory.limit_in_bytes", "67108864\n"),
                        ("memory.failcnt", "3\n"),
                        ("memory.stat", "cache 12\nrss 34\n"),
                    ],
                ),
                dir("pids", &[("pids.current", "2\n"), ("pids.max", "max\n")]),
                dir(
                    "blkio",
                    &[
                        (
                            "blkio.throttle.io_service_bytes_recursive",
                            "8:0 Read 512\n8:0 Write 0\nTotal 512\n",
                        ),
                        (
                            "blkio.throttle.io_serviced_recursive",
                            "8:0 Read 1\nTotal 1\n",
                        ),
                    ],
                ),
                dir(
                    "cpuset",
                    &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")],
                ),
            ],
        };
        let s = set.stats().unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["cpu"]["usage"]["total"], 3000);
        assert_eq!(v["cpu"]["usage"]["percpu"], serde_json::json!([1000, 2000]));
        assert_eq!(
            v["cpu"]["usage"]["percpu_user"],
            serde_json::json!([600, 1500])
        );
        assert_eq!(v["cpu"]["throttling"]["throttledPeriods"], 4);
        assert_eq!(v["memory"]["usage"]["limit"], 67108864);
        assert_eq!(v["memory"]["usage"]["failcnt"], 3);
        assert_eq!(v["memory"]["cache"], 12);
        assert_eq!(v["memory"]["raw"]["rss"], 34);
        // No memsw files: the swap entry is all zero, with limit and failcnt shown.
        assert_eq!(
            v["memory"]["swap"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(v["pids"], serde_json::json!({"current": 2}));
        assert_eq!(
            v["blkio"]["ioServiceBytesRecursive"],
            serde_json::json!([{"major": 8, "op": "Read", "value": 512}, {"major": 8, "op": "Write"}])
        );
        assert_eq!(v["cpuset"]["cpus"], serde_json::json!([0, 1]));
        assert_eq!(v["intel_rdt"], serde_json::json!({}));
        assert!(v["network_interfaces"].is_null());
    }
}
