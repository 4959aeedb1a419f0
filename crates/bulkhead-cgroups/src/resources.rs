//! Writing `linux.resources` into the container's cgroups.
//!
//! v1 hierarchies get the v1 files; cgroup2 directories (the whole set on a
//! pure v2 host) get the v2 files, with values converted by the pure
//! functions in [`v2`]. On a hybrid host each resource goes to the v1
//! hierarchy carrying its controller; only a controller that exists solely
//! in the unified hierarchy (typically `hugetlb`) and the `unified` map are
//! written there.
//!
//! Zero means "not set" for memory limits, CPU shares, quota and period
//! (as in runc); `pids.limit` writes 0 as 0 and any negative value as
//! `max`. Not applied: `memory.kernel` (deprecated by the runtime-spec and
//! by Linux since 5.4), `memory.kernelTCP` on cgroup2 (no such file),
//! `memory.useHierarchy`, and on cgroup2 `memory.swappiness` and
//! `memory.disableOOMKiller`. Device rules become an eBPF program on every
//! cgroup2 directory (on a hybrid host in addition to the v1 rules).
//! `network` fails where `net_cls`/`net_prio` are not mounted.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxNetwork, LinuxResources, LinuxThrottleDevice,
};

use crate::CgroupError;
use crate::fsutil;
use crate::set::{CgroupDir, CgroupSet};
use crate::update::{Writer, validate};
use crate::{devfilter, ebpf};

const R: &str = "linux.resources";

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CgroupError {
    CgroupError::InvalidResource {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Reject negative byte values other than -1 (unlimited).
pub(crate) fn check_bytes(field: &str, v: i64) -> Result<(), CgroupError> {
    if v < -1 {
        return Err(invalid(
            field,
            format!("invalid value {v}: must be -1 (unlimited) or >= 0"),
        ));
    }
    Ok(())
}

/// Pure converters and formatters for the cgroup2 file formats.
pub mod v2 {
    /// `memory.max`/`memory.low`/`hugetlb.*.max` value: -1 is `max`.
    pub fn bytes(v: i64) -> String {
        if v == -1 { "max".into() } else { v.to_string() }
    }

    /// `memory.swap.max` from the OCI `limit` and `swap` (memory+swap
    /// total). `Ok(None)` means nothing to write. 0 means "not set".
    pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, String> {
        let limit = limit.unwrap_or(0);
        match swap.unwrap_or(0) {
            // Memory unlimited and swap not given: swap unlimited too.
            0 if limit == -1 => Ok(Some("max".into())),
            0 => Ok(None),
            -1 => Ok(Some("max".into())),
            s if s < -1 => Err(format!("invalid value {s}: must be -1 (unlimited) or >= 0")),
            s => {
                if limit == 0 || limit == -1 {
                    return Err("a swap limit needs a memory limit".into());
                }
                if s < limit {
                    return Err(format!(
                        "memory+swap limit {s} is lower than the memory limit {limit}"
                    ));
                }
                Ok(Some((s - limit).to_string()))
            }
        }
    }

    /// `pids.max`: negative is `max`, anything else the number itself.
    pub fn pids_max(limit: i64) -> String {
        if limit < 0 {
            "max".into()
        } else {
            limit.to_string()
        }
    }

    /// `cpu.weight` (1..=10000) from v1 `cpu.shares` (2..=262144, clamped).
    pub fn shares_to_weight(shares: u64) -> u64 {
        let s = shares.clamp(2, 262_144);
        1 + ((s - 2) * 9999) / 262_142
    }

    /// `cpu.max` from quota and period (0 = not given). `current_quota` is
    /// the quota part of the present `cpu.max`, kept when only the period
    /// changes. `None` when there is nothing to write.
    pub fn cpu_max(quota: i64, period: u64, current_quota: &str) -> Option<String> {
        let q = match quota {
            0 => None,
            q if q < 0 => Some("max".to_string()),
            q => Some(q.to_string()),
        };
        match (q, period) {
            (None, 0) => None,
            (Some(q), 0) => Some(q),
            (Some(q), p) => Some(format!("{q} {p}")),
            (None, p) => Some(format!("{current_quota} {p}")),
        }
    }

    /// `io.weight` (1..=10000) from a blkio weight (10..=1000).
    pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
        let w = u64::from(weight.clamp(10, 1000));
        1 + ((w - 10) * 9999) / 990
    }

    /// One `io.max` line.
    pub fn io_max(major: i64, minor: i64, key: &str, rate: u64) -> String {
        format!("{major}:{minor} {key}={rate}")
    }

    /// Value for `io.weight` / `io.bfq.weight`, for all devices or one.
    pub fn io_weight(device: Option<(i64, i64)>, weight: u64) -> String {
        match device {
            None => format!("default {weight}"),
            Some((major, minor)) => format!("{major}:{minor} {weight}"),
        }
    }
}

/// A v1 device-cgroup rule, e.g. `c 1:3 rwm`; missing or negative
/// major/minor become `*`, a missing access `rwm`. Rules the cgroup2 device
/// program could not express either (type `p`, access letters other than
/// `rwm`, numbers beyond 32 bits) are refused.
pub fn device_rule(rule: &LinuxDeviceCgroup) -> Result<String, String> {
    devfilter::parse_rule(rule)?;
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => "a",
        LinuxDeviceType::B => "b",
        LinuxDeviceType::C | LinuxDeviceType::U => "c",
        LinuxDeviceType::P => return Err("type \"p\" (fifo) cannot be controlled".into()),
    };
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let access = match rule.access().as_deref() {
        None | Some("") => "rwm",
        Some(a) => a,
    };
    Ok(format!(
        "{typ} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    ))
}

/// Whether a failure to load or attach the cgroup2 device program may be
/// let pass with a warning: only when a v1 devices cgroup enforces the same
/// rules, and only when the kernel refused BPF as such (no CAP_SYS_ADMIN,
/// BPF compiled out or disabled), not for a program it found wrong.
fn v1_covers_refusal(has_v1_devices: bool, e: &std::io::Error) -> bool {
    has_v1_devices
        && matches!(
            e.raw_os_error(),
            Some(libc::EPERM | libc::ENOSYS | libc::EOPNOTSUPP)
        )
}

impl CgroupSet {
    /// The directory a controller's settings go to: the v1 hierarchy
    /// carrying it, else a cgroup2 directory that has it available.
    pub(crate) fn target(&self, controller: &str) -> Option<&CgroupDir> {
        self.dirs
            .iter()
            .find(|d| !d.v2 && d.has(controller))
            .or_else(|| self.dirs.iter().find(|d| d.v2 && d.has(controller)))
    }

    fn need(&self, controller: &'static str, field: &str) -> Result<&CgroupDir, CgroupError> {
        self.target(controller)
            .ok_or_else(|| CgroupError::MissingController {
                field: field.to_string(),
                controller,
            })
    }

    /// Apply resource limits to the container's cgroups (see the module
    /// docs for the mapping). Errors name the field that failed.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let r = &crate::update::zero_is_unset(r);
        validate(r)?;
        self.apply_with(&Writer::plain(), r)
    }

    /// [`CgroupSet::apply`] through `w` (which may keep what it overwrote).
    pub(crate) fn apply_with(&self, wr: &Writer, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            self.apply_memory(wr, m)?;
        }
        if let Some(p) = r.pids() {
            let field = format!("{R}.pids.limit");
            let d = self.need("pids", &field)?;
            wr.put(&field, &d.path, "pids.max", &v2::pids_max(p.limit()))?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(wr, c)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(wr, b)?;
        }
        if let Some(h) = r.hugepage_limits() {
            self.apply_hugetlb(wr, h)?;
        }
        if let Some(devs) = r.devices() {
            self.apply_devices(devs)?;
        }
        if let Some(n) = r.network() {
            self.apply_network(wr, n)?;
        }
        if let Some(rdma) = r.rdma() {
            let mut devs: Vec<_> = rdma.iter().collect();
            devs.sort_by(|a, b| a.0.cmp(b.0));
            for (dev, lim) in devs {
                let field = format!("{R}.rdma.{dev}");
                let d = self.need("rdma", &field)?;
                let mut line = dev.clone();
                if let Some(h) = lim.hca_handles() {
                    line.push_str(&format!(" hca_handle={h}"));
                }
                if let Some(o) = lim.hca_objects() {
                    line.push_str(&format!(" hca_object={o}"));
                }
                if line != *dev {
                    wr.put(&field, &d.path, "rdma.max", &line)?;
                }
            }
        }
        if let Some(u) = r.unified() {
            self.apply_unified(wr, u)?;
        }
        Ok(())
    }

    /// net_cls / net_prio exist only as v1 controllers. Asked for where they
    /// are not mounted (cgroup2, or a v1 host without them), create fails:
    /// "if the runtime cannot apply a property as specified in the
    /// configuration, it MUST generate an error". A classID of 0 and an
    /// empty priority list ask for nothing (as in runc).
    fn apply_network(&self, wr: &Writer, n: &LinuxNetwork) -> Result<(), CgroupError> {
        let v1 = |c: &'static str, field: String| {
            self.dirs
                .iter()
                .find(|d| !d.v2 && d.has(c))
                .ok_or(CgroupError::MissingController {
                    field,
                    controller: c,
                })
        };
        if let Some(id) = n.class_id().filter(|&id| id != 0) {
            let field = format!("{R}.network.classID");
            let d = v1("net_cls", field.clone())?;
            wr.put(&field, &d.path, "net_cls.classid", &id.to_string())?;
        }
        if let Some(prios) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
            let d = v1("net_prio", format!("{R}.network.priorities"))?;
            for (i, p) in prios.iter().enumerate() {
                let line = format!("{} {}", p.name(), p.priority());
                let field = format!("{R}.network.priorities[{i}]");
                wr.put(&field, &d.path, "net_prio.ifpriomap", &line)?;
            }
        }
        Ok(())
    }

    fn apply_memory(&self, wr: &Writer, m: &LinuxMemory) -> Result<(), CgroupError> {
        let f = |k: &str| format!("{R}.memory.{k}");
        let (limit, swap, reservation) = (m.limit(), m.swap(), m.reservation());
        for (k, v) in [
            ("limit", limit),
            ("swap", swap),
            ("reservation", reservation),
            ("kernelTCP", m.kernel_tcp()),
        ] {
            if let Some(v) = v {
                check_bytes(&f(k), v)?;
            }
        }
        if let Some(s) = m.swappiness()
            && s > 100
        {
            return Err(invalid(
                f("swappiness"),
                format!("invalid value {s}: must be 0..=100"),
            ));
        }
        let set = |v: Option<i64>| v.filter(|&v| v != 0);
        let d = match (
            set(limit),
            set(swap),
            set(reservation),
            m.swappiness(),
            m.disable_oom_killer(),
            set(m.kernel_tcp()),
        ) {
            (None, None, None, None, None, None) => return Ok(()),
            _ => self.need("memory", &format!("{R}.memory"))?,
        };
        if d.v2 {
            let swap_max = v2::swap_max(limit, swap).map_err(|e| invalid(f("swap"), e))?;
            if let Some(l) = set(limit) {
                wr.put(&f("limit"), &d.path, "memory.max", &v2::bytes(l))?;
            }
            if let Some(s) = swap_max {
                wr.put(&f("swap"), &d.path, "memory.swap.max", &s)?;
            }
            if let Some(r) = set(reservation) {
                wr.put(&f("reservation"), &d.path, "memory.low", &v2::bytes(r))?;
            }
            return Ok(());
        }

        if let (Some(l), Some(s)) = (set(limit), set(swap))
            && l > 0
            && s > 0
            && s < l
        {
            return Err(invalid(
                f("swap"),
                format!("memory+swap limit {s} is lower than the memory limit {l}"),
            ));
        }
        let has_memsw = d.path.join("memory.memsw.limit_in_bytes").exists();
        let swap = set(swap).filter(|_| has_memsw);
        // The kernel keeps limit <= memsw at every step: raise memsw first
        // when it grows, lower the limit first when memsw shrinks.
        let memsw_first = match swap {
            Some(-1) => true,
            Some(s) => {
                let cur = fsutil::read(&d.path.join("memory.memsw.limit_in_bytes"))?;
                cur.trim().parse::<i64>().map(|c| s > c).unwrap_or(true)
            }
            None => false,
        };
        let write_swap = || match swap {
            Some(s) => wr.put(
                &f("swap"),
                &d.path,
                "memory.memsw.limit_in_bytes",
                &s.to_string(),
            ),
            None => Ok(()),
        };
        if memsw_first {
            write_swap()?;
        }
        if let Some(l) = set(limit) {
            wr.put(
                &f("limit"),
                &d.path,
                "memory.limit_in_bytes",
                &l.to_string(),
            )?;
        }
        if !memsw_first {
            write_swap()?;
        }
        if let Some(r) = set(reservation) {
            wr.put(
                &f("reservation"),
                &d.path,
                "memory.soft_limit_in_bytes",
                &r.to_string(),
            )?;
        }
        if let Some(s) = m.swappiness() {
            wr.put(
                &f("swappiness"),
                &d.path,
                "memory.swappiness",
                &s.to_string(),
            )?;
        }
        if let Some(off) = m.disable_oom_killer() {
            wr.put(
                &f("disableOOMKiller"),
                &d.path,
                "memory.oom_control",
                if off { "1" } else { "0" },
            )?;
        }
        // Not deprecated by the runtime-spec (unlike `kernel`), and v1 still
        // has the file.
        if let Some(t) = set(m.kernel_tcp()) {
            wr.put(
                &f("kernelTCP"),
                &d.path,
                "memory.kmem.tcp.limit_in_bytes",
                &t.to_string(),
            )?;
        }
        Ok(())
    }

    fn apply_cpu(&self, wr: &Writer, c: &LinuxCpu) -> Result<(), CgroupError> {
        let f = |k: &str| format!("{R}.cpu.{k}");
        let quota = c.quota().unwrap_or(0);
        if quota < -1 {
            return Err(invalid(
                f("quota"),
                format!("invalid value {quota}: must be -1 (unlimited) or > 0"),
            ));
        }
        let period = c.period().unwrap_or(0);
        let shares = c.shares().unwrap_or(0);
        let wants_cpu = shares != 0
            || quota != 0
            || period != 0
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0);
        if wants_cpu {
            let d = self.need("cpu", &format!("{R}.cpu"))?;
            if d.v2 {
                if shares != 0 {
                    wr.put(
                        &f("shares"),
                        &d.path,
                        "cpu.weight",
                        &v2::shares_to_weight(shares).to_string(),
                    )?;
                }
                let current = if quota == 0 && period != 0 {
                    let cur = fsutil::read(&d.path.join("cpu.max"))?;
                    cur.split_whitespace().next().unwrap_or("max").to_string()
                } else {
                    String::new()
                };
                if let Some(v) = v2::cpu_max(quota, period, &current) {
                    wr.put(&f("quota"), &d.path, "cpu.max", &v)?;
                }
                if let Some(b) = c.burst() {
                    wr.put(&f("burst"), &d.path, "cpu.max.burst", &b.to_string())?;
                }
                if let Some(i) = c.idle() {
                    wr.put(&f("idle"), &d.path, "cpu.idle", &i.to_string())?;
                }
                if c.realtime_runtime().is_some_and(|v| v != 0)
                    || c.realtime_period().is_some_and(|v| v != 0)
                {
                    return Err(invalid(
                        f("realtimeRuntime"),
                        "realtime scheduling limits are not supported on cgroup v2",
                    ));
                }
            } else {
                if shares != 0 {
                    wr.put(&f("shares"), &d.path, "cpu.shares", &shares.to_string())?;
                }
                if period != 0 {
                    wr.put(
                        &f("period"),
                        &d.path,
                        "cpu.cfs_period_us",
                        &period.to_string(),
                    )?;
                }
                if quota != 0 {
                    wr.put(&f("quota"), &d.path, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                if let Some(b) = c.burst() {
                    wr.put(&f("burst"), &d.path, "cpu.cfs_burst_us", &b.to_string())?;
                }
                if let Some(i) = c.idle() {
                    wr.put(&f("idle"), &d.path, "cpu.idle", &i.to_string())?;
                }
                // The runtime must fit in the period: period first.
                if let Some(p) = c.realtime_period().filter(|&p| p != 0) {
                    wr.put(
                        &f("realtimePeriod"),
                        &d.path,
                        "cpu.rt_period_us",
                        &p.to_string(),
                    )?;
                }
                if let Some(rt) = c.realtime_runtime().filter(|&r| r != 0) {
                    wr.put(
                        &f("realtimeRuntime"),
                        &d.path,
                        "cpu.rt_runtime_us",
                        &rt.to_string(),
                    )?;
                }
            }
        }
        for (key, file, value) in [
            ("cpus", "cpuset.cpus", c.cpus()),
            ("mems", "cpuset.mems", c.mems()),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                let d = self.need("cpuset", &f(key))?;
                wr.put(&f(key), &d.path, file, v)?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, wr: &Writer, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let f = |k: &str| format!("{R}.blockIO.{k}");
        let throttles: [(&str, &str, &str, &Option<Vec<LinuxThrottleDevice>>); 4] = [
            (
                "throttleReadBpsDevice",
                "blkio.throttle.read_bps_device",
                "rbps",
                b.throttle_read_bps_device(),
            ),
            (
                "throttleWriteBpsDevice",
                "blkio.throttle.write_bps_device",
                "wbps",
                b.throttle_write_bps_device(),
            ),
            (
                "throttleReadIOPSDevice",
                "blkio.throttle.read_iops_device",
                "riops",
                b.throttle_read_iops_device(),
            ),
            (
                "throttleWriteIOPSDevice",
                "blkio.throttle.write_iops_device",
                "wiops",
                b.throttle_write_iops_device(),
            ),
        ];
        let wants = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|t| t.3.as_ref().is_some_and(|v| !v.is_empty()));
        if !wants {
            return Ok(());
        }
        let d = match self.target("blkio") {
            Some(d) => d,
            None => self.need("io", &f("weight"))?,
        };
        if let Some(w) = b.weight()
            && !(10..=1000).contains(&w)
        {
            return Err(invalid(
                f("weight"),
                format!("invalid value {w}: must be 10..=1000"),
            ));
        }
        if d.v2 {
            let bfq = d.path.join("io.bfq.weight").exists();
            let (file, conv): (&str, fn(u16) -> u64) = if bfq {
                ("io.bfq.weight", u64::from)
            } else {
                ("io.weight", v2::blkio_weight_to_io_weight)
            };
            if let Some(w) = b.weight() {
                wr.put(&f("weight"), &d.path, file, &v2::io_weight(None, conv(w)))?;
            }
            if b.leaf_weight().is_some() {
                return Err(invalid(f("leafWeight"), "not supported on cgroup v2"));
            }
            for (i, wd) in b.weight_device().iter().flatten().enumerate() {
                if let Some(w) = wd.weight() {
                    let v = v2::io_weight(Some((wd.major(), wd.minor())), conv(w));
                    wr.put(&f(&format!("weightDevice[{i}]")), &d.path, file, &v)?;
                }
            }
            for (key, _, io_key, list) in throttles {
                for (i, t) in list.iter().flatten().enumerate() {
                    let v = v2::io_max(t.major(), t.minor(), io_key, t.rate());
                    wr.put(&f(&format!("{key}[{i}]")), &d.path, "io.max", &v)?;
                }
            }
            return Ok(());
        }
        let pick = |a: &'static str, b: &'static str| -> Option<&'static str> {
            if d.path.join(a).exists() {
                Some(a)
            } else if d.path.join(b).exists() {
                Some(b)
            } else {
                None
            }
        };
        if let Some(w) = b.weight() {
            let file = pick("blkio.weight", "blkio.bfq.weight")
                .ok_or_else(|| invalid(f("weight"), "neither blkio.weight nor blkio.bfq.weight exists (no cfq/bfq scheduler support)"))?;
            wr.put(&f("weight"), &d.path, file, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight() {
            if !d.path.join("blkio.leaf_weight").exists() {
                return Err(invalid(
                    f("leafWeight"),
                    "blkio.leaf_weight is not supported by this kernel",
                ));
            }
            wr.put(
                &f("leafWeight"),
                &d.path,
                "blkio.leaf_weight",
                &w.to_string(),
            )?;
        }
        for (i, wd) in b.weight_device().iter().flatten().enumerate() {
            let field = f(&format!("weightDevice[{i}]"));
            if let Some(w) = wd.weight() {
                let file =
                    pick("blkio.weight_device", "blkio.bfq.weight_device").ok_or_else(|| {
                        invalid(&field, "no blkio.weight_device or blkio.bfq.weight_device")
                    })?;
                wr.put(
                    &field,
                    &d.path,
                    file,
                    &format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
            if let Some(w) = wd.leaf_weight() {
                wr.put(
                    &field,
                    &d.path,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            }
        }
        for (key, file, _, list) in throttles {
            for (i, t) in list.iter().flatten().enumerate() {
                let v = format!("{}:{} {}", t.major(), t.minor(), t.rate());
                wr.put(&f(&format!("{key}[{i}]")), &d.path, file, &v)?;
            }
        }
        Ok(())
    }

    fn apply_hugetlb(&self, wr: &Writer, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
        for (i, h) in limits.iter().enumerate() {
            let field = format!("{R}.hugepageLimits[{i}]");
            let d = self.need("hugetlb", &field)?;
            check_bytes(&field, h.limit())?;
            let size = h.page_size();
            if size.is_empty() || size.contains('/') || size.contains('.') {
                return Err(invalid(
                    format!("{field}.pageSize"),
                    format!("invalid page size {size:?}"),
                ));
            }
            let (main, rsvd, value) = if d.v2 {
                (
                    format!("hugetlb.{size}.max"),
                    format!("hugetlb.{size}.rsvd.max"),
                    v2::bytes(h.limit()),
                )
            } else {
                (
                    format!("hugetlb.{size}.limit_in_bytes"),
                    format!("hugetlb.{size}.rsvd.limit_in_bytes"),
                    h.limit().to_string(),
                )
            };
            if !d.path.join(&main).exists() {
                return Err(invalid(
                    format!("{field}.pageSize"),
                    format!(
                        "page size {size:?} is not supported here (no {main} in {})",
                        d.path.display()
                    ),
                ));
            }
            wr.put(&field, &d.path, &main, &value)?;
            if d.path.join(&rsvd).exists() {
                wr.put(&field, &d.path, &rsvd, &value)?;
            }
        }
        Ok(())
    }

    /// Device rules: on v1 the `devices` hierarchy's allow/deny files; on
    /// every cgroup2 directory an eBPF device program built from the same
    /// list. On a hybrid host both enforce (the kernel consults the task's
    /// cgroup2 programs whatever controllers are on v1); when the program
    /// is refused there (no CAP_SYS_ADMIN, BPF disabled) a warning is
    /// logged and the v1 rules stay in force. Without a v1 devices
    /// hierarchy a refused program is an error.
    ///
    /// Not journaled for rollback: `update` never passes device rules.
    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        let field = format!("{R}.devices");
        let mut lines = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let line = device_rule(rule).map_err(|e| invalid(format!("{field}[{i}]"), e))?;
            lines.push((rule.allow(), line));
        }
        let v1 = self.dirs.iter().find(|d| !d.v2 && d.has("devices"));
        if let Some(d) = v1 {
            // One rule per write(2), but one open of each file for all of
            // them (the files are only written, never journaled: see above).
            let mut files = fsutil::RuleFiles::new(&d.path, "devices.allow", "devices.deny");
            files.write(false, &field, "a")?;
            for (i, (allow, line)) in lines.iter().enumerate() {
                files.write(*allow, &format!("{field}[{i}]"), line)?;
            }
        }
        let v2_dirs: Vec<&CgroupDir> = self.dirs.iter().filter(|d| d.v2).collect();
        if v2_dirs.is_empty() {
            return Ok(());
        }
        let insns = devfilter::encode(&devfilter::program(rules)?);
        for d in v2_dirs {
            match ebpf::set_device_program(&d.path, &insns) {
                Ok(_) => {}
                Err(f) if v1_covers_refusal(v1.is_some(), &f.source) => {
                    tracing::warn!(
                        "{field}: {} the cgroup2 device program ({}) refused: {}; \
                         the v1 devices cgroup alone enforces the rules",
                        f.op,
                        d.path.display(),
                        f.source
                    );
                }
                Err(f) => {
                    return Err(CgroupError::DeviceProgram {
                        field,
                        op: f.op,
                        path: d.path.clone(),
                        source: f.source,
                    });
                }
            }
        }
        Ok(())
    }

    fn apply_unified(
        &self,
        wr: &Writer,
        u: &std::collections::HashMap<String, String>,
    ) -> Result<(), CgroupError> {
        if u.is_empty() {
            return Ok(());
        }
        let d = self
            .v2_dir()
            .ok_or_else(|| invalid(format!("{R}.unified"), "no cgroup2 hierarchy on this host"))?;
        let mut keys: Vec<_> = u.iter().collect();
        keys.sort();
        // Every key is checked before the first write.
        for (k, _) in &keys {
            let field = format!("{R}.unified.{k}");
            if k.is_empty() || k.contains('/') || k.contains('\0') || *k == "." || *k == ".." {
                return Err(invalid(field, "must be a plain file name"));
            }
            if !d.path.join(k).is_file() {
                return Err(invalid(
                    field,
                    format!("unknown key: no such file in {}", d.path.display()),
                ));
            }
        }
        for (k, v) in keys {
            wr.put(&format!("{R}.unified.{k}"), &d.path, k, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn v2_bytes_and_pids() {
        assert_eq!(v2::bytes(-1), "max");
        assert_eq!(v2::bytes(67_108_864), "67108864");
        assert_eq!(v2::pids_max(-1), "max");
        assert_eq!(v2::pids_max(-7), "max");
        assert_eq!(v2::pids_max(0), "0");
        assert_eq!(v2::pids_max(42), "42");
    }

    #[test]
    fn v2_swap() {
        assert_eq!(v2::swap_max(Some(100), Some(300)), Ok(Some("200".into())));
        assert_eq!(v2::swap_max(Some(100), Some(100)), Ok(Some("0".into())));
        assert_eq!(v2::swap_max(Some(100), Some(-1)), Ok(Some("max".into())));
        assert_eq!(v2::swap_max(Some(-1), None), Ok(Some("max".into())));
        assert_eq!(v2::swap_max(Some(100), None), Ok(None));
        assert_eq!(v2::swap_max(None, None), Ok(None));
        assert!(v2::swap_max(Some(300), Some(100)).is_err());
        assert!(v2::swap_max(None, Some(100)).is_err());
        assert!(v2::swap_max(Some(-1), Some(100)).is_err());
        assert!(v2::swap_max(Some(100), Some(-2)).is_err());
    }

    #[test]
    fn v2_cpu_weight() {
        assert_eq!(v2::shares_to_weight(2), 1);
        assert_eq!(v2::shares_to_weight(1024), 39);
        assert_eq!(v2::shares_to_weight(262_144), 10_000);
        assert_eq!(v2::shares_to_weight(1), 1);
        assert_eq!(v2::shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn v2_cpu_max() {
        assert_eq!(
            v2::cpu_max(50_000, 100_000, ""),
            Some("50000 100000".into())
        );
        assert_eq!(v2::cpu_max(-1, 100_000, ""), Some("max 100000".into()));
        assert_eq!(v2::cpu_max(20_000, 0, ""), Some("20000".into()));
        assert_eq!(v2::cpu_max(-1, 0, ""), Some("max".into()));
        assert_eq!(
            v2::cpu_max(0, 250_000, "30000"),
            Some("30000 250000".into())
        );
        assert_eq!(v2::cpu_max(0, 250_000, "max"), Some("max 250000".into()));
        assert_eq!(v2::cpu_max(0, 0, "max"), None);
    }

    #[test]
    fn v2_io() {
        assert_eq!(v2::blkio_weight_to_io_weight(10), 1);
        assert_eq!(v2::blkio_weight_to_io_weight(500), 4950);
        assert_eq!(v2::blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(v2::io_weight(None, 100), "default 100");
        assert_eq!(v2::io_weight(Some((8, 0)), 250), "8:0 250");
        assert_eq!(v2::io_max(8, 16, "rbps", 1_048_576), "8:16 rbps=1048576");
    }

    #[test]
    fn refused_device_program_falls_back_to_v1_only_on_hybrid() {
        use std::io::Error;
        let e = Error::from_raw_os_error;
        for errno in [libc::EPERM, libc::ENOSYS, libc::EOPNOTSUPP] {
            assert!(v1_covers_refusal(true, &e(errno)));
            assert!(!v1_covers_refusal(false, &e(errno)), "pure v2: an error");
        }
        // A verifier rejection or a bad directory is never let pass.
        for errno in [libc::EINVAL, libc::EACCES, libc::EBADF, libc::ENOENT] {
            assert!(!v1_covers_refusal(true, &e(errno)));
        }
    }

    #[test]
    fn device_rules() {
        let rule = |typ, major, minor, access: Option<&str>| {
            let mut b = LinuxDeviceCgroupBuilder::default().allow(true).typ(typ);
            if let Some(m) = major {
                b = b.major(m);
            }
            if let Some(m) = minor {
                b = b.minor(m);
            }
            if let Some(a) = access {
                b = b.access(a.to_string());
            }
            device_rule(&b.build().unwrap())
        };
        use LinuxDeviceType::*;
        assert_eq!(
            rule(C, Some(1), Some(3), Some("rwm")),
            Ok("c 1:3 rwm".into())
        );
        assert_eq!(rule(B, Some(7), None, Some("r")), Ok("b 7:* r".into()));
        assert_eq!(rule(C, Some(-1), Some(-1), Some("m")), Ok("c *:* m".into()));
        assert_eq!(rule(A, None, None, None), Ok("a *:* rwm".into()));
        assert_eq!(rule(U, Some(5), Some(1), Some("rw")), Ok("c 5:1 rw".into()));
        assert!(rule(P, None, None, None).is_err());
        assert!(rule(C, Some(1), Some(3), Some("rwx")).is_err());
        assert!(rule(C, Some(1i64 << 32), Some(3), Some("r")).is_err());
        assert!(rule(C, Some(1), Some(-5), Some("r")).is_ok());
    }
}
