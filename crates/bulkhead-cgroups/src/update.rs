//! Validation of `linux.resources`, and changing the limits of a live
//! container ([`CgroupSet::update`]) with rollback: every file is read
//! before its first write, and a failed update writes the saved values back
//! in reverse order, so the container keeps the limits it had.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use crate::resources::{check_bytes, device_rule, invalid};
use crate::set::CgroupSet;
use crate::{CgroupError, fsutil};

const R: &str = "linux.resources";

/// Online CPUs of the host.
const CPUS_ONLINE: &str = "/sys/devices/system/cpu/online";
/// Online memory nodes of the host (absent without NUMA support: node 0).
const NODES_ONLINE: &str = "/sys/devices/system/node/online";

/// Writes resource files. A journaling writer first saves what each file
/// held, once per file, so that [`Writer::rollback`] can put it back.
pub(crate) struct Writer {
    saved: Option<RefCell<Vec<(PathBuf, String)>>>,
}

impl Writer {
    /// Writes without remembering anything (`create`).
    pub(crate) fn plain() -> Writer {
        Writer { saved: None }
    }

    /// Remembers the previous content of every file it writes (`update`).
    pub(crate) fn journal() -> Writer {
        Writer {
            saved: Some(RefCell::new(Vec::new())),
        }
    }

    /// Write `value` to `dir/file`, naming `field` on failure.
    pub(crate) fn put(
        &self,
        field: &str,
        dir: &Path,
        file: &str,
        value: &str,
    ) -> Result<(), CgroupError> {
        let path = dir.join(file);
        if let Some(saved) = &self.saved
            && !saved.borrow().iter().any(|(p, _)| *p == path)
        {
            // A file that cannot be read cannot be restored: do not touch it.
            let before =
                std::fs::read_to_string(&path).map_err(|source| CgroupError::WriteResource {
                    field: field.to_string(),
                    value: value.to_string(),
                    path: path.clone(),
                    source,
                })?;
            saved.borrow_mut().push((path.clone(), before));
        }
        fsutil::write_raw(&path, value).map_err(|source| CgroupError::WriteResource {
            field: field.to_string(),
            value: value.to_string(),
            path,
            source,
        })
    }

    /// Write back what was saved, newest first (each intermediate state the
    /// kernel accepted on the way in is accepted again on the way out).
    /// Returns what could not be restored.
    pub(crate) fn rollback(&self) -> Vec<String> {
        let Some(saved) = &self.saved else {
            return Vec::new();
        };
        let mut failed = Vec::new();
        for (path, before) in saved.borrow().iter().rev() {
            for value in restore_values(path, before) {
                if let Err(e) = fsutil::write_raw(path, &value) {
                    failed.push(format!("{} <- {value:?}: {e}", path.display()));
                }
            }
        }
        failed
    }
}

/// What to write to `path` to get back to content `before`: one write per
/// line for files that hold one entry per line (per-device files); the
/// setting itself for `memory.oom_control`.
fn restore_values(path: &Path, before: &str) -> Vec<String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name == "memory.oom_control" {
        return before
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill_disable "))
            .map(|v| vec![v.trim().to_string()])
            .unwrap_or_default();
    }
    before
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parse a cpuset list (`0-3,7`) into its members.
pub fn parse_list(s: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("invalid list {s:?}: empty element"));
        }
        let num = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("invalid list {s:?}: {x:?} is not a number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("invalid list {s:?}: range {part} is reversed"));
                }
                if b - a > 65_536 {
                    return Err(format!("invalid list {s:?}: range {part} is too large"));
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(num(part)?);
            }
        }
    }
    Ok(out)
}

/// The members of a host list file, or `fallback` when it cannot be read.
fn host_set(path: &str, fallback: &str) -> BTreeSet<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| fallback.to_string());
    parse_list(&text).unwrap_or_default()
}

/// Check that a cpuset list is well-formed and names only members of
/// `host` (whose list text is `host_text`).
fn check_cpuset(field: &str, value: &str, host: &BTreeSet<u32>) -> Result<(), CgroupError> {
    let want = parse_list(value).map_err(|e| invalid(field, e))?;
    let outside: Vec<u32> = want.difference(host).copied().collect();
    if !outside.is_empty() {
        let first = outside[0];
        let host_list: Vec<String> = host.iter().map(u32::to_string).collect();
        return Err(invalid(
            field,
            format!(
                "invalid value {value:?}: {} {first} is not on this host (available: {})",
                if field.ends_with("mems") {
                    "memory node"
                } else {
                    "cpu"
                },
                host_list.join(",")
            ),
        ));
    }
    Ok(())
}

/// Check values that are wrong wherever they are applied, before anything
/// is written: negative sizes other than -1, a CPU quota below -1, cpuset
/// lists naming CPUs or memory nodes the host does not have, blkio weights
/// out of range, device rules that cannot be expressed, `unified` keys that
/// are not plain file names. Errors name the field.
pub fn validate(r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = r.memory() {
        let f = |k: &str| format!("{R}.memory.{k}");
        for (k, v) in [
            ("limit", m.limit()),
            ("swap", m.swap()),
            ("reservation", m.reservation()),
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
    }
    if let Some(c) = r.cpu() {
        let f = |k: &str| format!("{R}.cpu.{k}");
        if let Some(q) = c.quota()
            && q < -1
        {
            return Err(invalid(
                f("quota"),
                format!("invalid value {q}: must be -1 (unlimited) or > 0"),
            ));
        }
        if let Some(rt) = c.realtime_runtime()
            && rt < -1
        {
            return Err(invalid(
                f("realtimeRuntime"),
                format!("invalid value {rt}: must be -1 (unlimited) or >= 0"),
            ));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
            check_cpuset(&f("cpus"), cpus, &host_set(CPUS_ONLINE, "0"))?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|v| !v.is_empty()) {
            check_cpuset(&f("mems"), mems, &host_set(NODES_ONLINE, "0"))?;
        }
    }
    if let Some(b) = r.block_io() {
        let f = |k: &str| format!("{R}.blockIO.{k}");
        for (k, w) in [("weight", b.weight()), ("leafWeight", b.leaf_weight())] {
            if let Some(w) = w
                && !(10..=1000).contains(&w)
            {
                return Err(invalid(
                    f(k),
                    format!("invalid value {w}: must be 10..=1000"),
                ));
            }
        }
    }
    for (i, rule) in r.devices().iter().flatten().enumerate() {
        device_rule(rule).map_err(|e| invalid(format!("{R}.devices[{i}]"), e))?;
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        check_bytes(&format!("{R}.hugepageLimits[{i}]"), h.limit())?;
    }
    for k in r.unified().iter().flat_map(|u| u.keys()) {
        if k.is_empty() || k.contains('/') || k.contains('\0') || k == "." || k == ".." {
            return Err(invalid(
                format!("{R}.unified.{k}"),
                "must be a plain file name",
            ));
        }
    }
    Ok(())
}

/// The changes an update request asks for, with runc's conventions: 0 (and
/// `""` for cpuset lists) means "leave unchanged" for memory, CPU, blkio
/// weights and the pids limit; a memory limit of -1 without a swap value
/// also lifts the swap limit; `kernel` is dropped (a no-op since Linux
/// 5.4); device rules are dropped (as runc does: an
/// update never rewrites the device cgroup, see [`validate`] for the check
/// they still get).
/// A config's resources with the zero values clients send for "not set"
/// taken as not set (docker writes `blockIO.weight: 0`, `cpu.shares: 0`
/// into every config.json), device rules kept.
pub fn zero_is_unset(r: &LinuxResources) -> LinuxResources {
    let mut n = update_changes(r);
    n.set_devices(r.devices().clone());
    n
}

pub fn update_changes(r: &LinuxResources) -> LinuxResources {
    let nz_i = |v: Option<i64>| v.filter(|&v| v != 0);
    let nz_u = |v: Option<u64>| v.filter(|&v| v != 0);
    let mut out = r.clone();
    out.set_devices(None);
    if let Some(m) = r.memory() {
        let mut n = LinuxMemory::default();
        n.set_limit(nz_i(m.limit()));
        n.set_reservation(nz_i(m.reservation()));
        n.set_swap(nz_i(m.swap()));
        if n.limit() == Some(-1) && n.swap().is_none() {
            n.set_swap(Some(-1));
        }
        n.set_swappiness(m.swappiness());
        n.set_disable_oom_killer(m.disable_oom_killer());
        n.set_kernel_tcp(nz_i(m.kernel_tcp()));
        out.set_memory(Some(n));
    }
    if let Some(c) = r.cpu() {
        let mut n = LinuxCpu::default();
        n.set_shares(nz_u(c.shares()));
        n.set_quota(nz_i(c.quota()));
        n.set_period(nz_u(c.period()));
        n.set_realtime_runtime(nz_i(c.realtime_runtime()));
        n.set_realtime_period(nz_u(c.realtime_period()));
        n.set_burst(c.burst());
        n.set_idle(c.idle());
        n.set_cpus(c.cpus().clone().filter(|v| !v.is_empty()));
        n.set_mems(c.mems().clone().filter(|v| !v.is_empty()));
        out.set_cpu(Some(n));
    }
    if let Some(b) = r.block_io() {
        let mut n = b.clone();
        n.set_weight(b.weight().filter(|&w| w != 0));
        n.set_leaf_weight(b.leaf_weight().filter(|&w| w != 0));
        out.set_block_io(Some(n));
    }
    if r.pids().is_some_and(|p| p.limit() == 0) {
        out.set_pids(None);
    }
    out
}

/// Fold the changes `upd` (as from [`update_changes`]) into `base`, field
/// by field, so that `base` describes the limits now in force.
pub fn merge_resources(base: &mut LinuxResources, upd: &LinuxResources) {
    if let Some(m) = upd.memory() {
        let mut n = base.memory().unwrap_or_default();
        macro_rules! take {
            ($get:ident, $set:ident) => {
                if m.$get().is_some() {
                    n.$set(m.$get());
                }
            };
        }
        take!(limit, set_limit);
        take!(reservation, set_reservation);
        take!(swap, set_swap);
        take!(swappiness, set_swappiness);
        take!(disable_oom_killer, set_disable_oom_killer);
        base.set_memory(Some(n));
    }
    if let Some(c) = upd.cpu() {
        let mut n = base.cpu().clone().unwrap_or_default();
        macro_rules! take {
            ($get:ident, $set:ident) => {
                if c.$get().is_some() {
                    n.$set(c.$get());
                }
            };
        }
        take!(shares, set_shares);
        take!(quota, set_quota);
        take!(period, set_period);
        take!(realtime_runtime, set_realtime_runtime);
        take!(realtime_period, set_realtime_period);
        take!(burst, set_burst);
        take!(idle, set_idle);
        if c.cpus().is_some() {
            n.set_cpus(c.cpus().clone());
        }
        if c.mems().is_some() {
            n.set_mems(c.mems().clone());
        }
        base.set_cpu(Some(n));
    }
    if let Some(b) = upd.block_io() {
        let mut n: LinuxBlockIo = base.block_io().clone().unwrap_or_default();
        if b.weight().is_some() {
            n.set_weight(b.weight());
        }
        if b.leaf_weight().is_some() {
            n.set_leaf_weight(b.leaf_weight());
        }
        if b.weight_device().is_some() {
            n.set_weight_device(b.weight_device().clone());
        }
        if b.throttle_read_bps_device().is_some() {
            n.set_throttle_read_bps_device(b.throttle_read_bps_device().clone());
        }
        if b.throttle_write_bps_device().is_some() {
            n.set_throttle_write_bps_device(b.throttle_write_bps_device().clone());
        }
        if b.throttle_read_iops_device().is_some() {
            n.set_throttle_read_iops_device(b.throttle_read_iops_device().clone());
        }
        if b.throttle_write_iops_device().is_some() {
            n.set_throttle_write_iops_device(b.throttle_write_iops_device().clone());
        }
        base.set_block_io(Some(n));
    }
    if upd.pids().is_some() {
        base.set_pids(*upd.pids());
    }
    if upd.hugepage_limits().is_some() {
        base.set_hugepage_limits(upd.hugepage_limits().clone());
    }
    if upd.network().is_some() {
        base.set_network(upd.network().clone());
    }
    if upd.rdma().is_some() {
        base.set_rdma(upd.rdma().clone());
    }
    if let Some(u) = upd.unified() {
        let mut n = base.unified().clone().unwrap_or_default();
        n.extend(u.iter().map(|(k, v)| (k.clone(), v.clone())));
        base.set_unified(Some(n));
    }
}

impl CgroupSet {
    /// Change the limits of a live container. `r` is an update request:
    /// zero values mean "unchanged" (see [`update_changes`]). The request
    /// is validated first (nothing is written when a value is invalid);
    /// then every file is read before it is written, and when a write
    /// fails the saved values are restored, so the container keeps its
    /// previous limits. Under the systemd driver the unit's properties are
    /// set first (`SetUnitProperties`); those are not restored on failure.
    /// Returns the changes that were applied.
    pub fn update(&self, r: &LinuxResources) -> Result<LinuxResources, CgroupError> {
        // Device rules are checked even though an update does not apply them.
        let mut with_devices = update_changes(r);
        with_devices.set_devices(r.devices().clone());
        validate(&with_devices)?;
        let changes = update_changes(r);
        if let Some(unit) = &self.systemd {
            // systemd first: it rewrites the files of the properties it is
            // given (a CPU quota rounded to whole percents); the exact values
            // follow through cgroupfs. Not rolled back (as runc).
            let sd = crate::systemd::bus::Systemd::connect()?;
            let devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
            let props =
                crate::systemd::props::resources(&changes, unit.unified, sd.version(), &devices)?;
            sd.set_unit_properties(&unit.name, &props)?;
        }
        let wr = Writer::journal();
        match self.apply_with(&wr, &changes) {
            Ok(()) => Ok(changes),
            Err(error) => {
                let failed = wr.rollback();
                if failed.is_empty() {
                    Err(error)
                } else {
                    Err(CgroupError::Rollback {
                        error: Box::new(error),
                        failed,
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::CgroupDir;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn lists() {
        assert_eq!(
            parse_list("0-2,5").unwrap().into_iter().collect::<Vec<_>>(),
            vec![0, 1, 2, 5]
        );
        assert_eq!(parse_list("3\n").unwrap().len(), 1);
        assert!(parse_list("").is_err());
        assert!(parse_list("2-1").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("0,,1").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (
                serde_json::json!({"cpu": {"quota": -5}}),
                "linux.resources.cpu.quota",
            ),
            (
                serde_json::json!({"cpu": {"cpus": "0-99999"}}),
                "linux.resources.cpu.cpus",
            ),
            (
                serde_json::json!({"cpu": {"mems": "4000"}}),
                "linux.resources.cpu.mems",
            ),
            (
                serde_json::json!({"cpu": {"cpus": "x"}}),
                "linux.resources.cpu.cpus",
            ),
            (
                serde_json::json!({"memory": {"limit": -2}}),
                "linux.resources.memory.limit",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 5}}),
                "linux.resources.blockIO.weight",
            ),
            (
                serde_json::json!({"devices": [{"allow": true, "type": "p"}]}),
                "linux.resources.devices[0]",
            ),
            (
                serde_json::json!({"unified": {"../x": "1"}}),
                "linux.resources.unified.../x",
            ),
        ];
        for (v, field) in cases {
            let err = validate(&res(v.clone())).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{field}: ")), "{v}: {err}");
        }
        validate(&res(serde_json::json!({"cpu": {"quota": -1, "cpus": "0"}}))).unwrap();
    }

    #[test]
    fn zero_means_unchanged() {
        let docker = res(serde_json::json!({
            "memory": {"limit": 67108864, "reservation": 0, "swap": 67108864, "kernel": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0},
            "blockIO": {"weight": 0}
        }));
        let c = update_changes(&docker);
        let m = c.memory().unwrap();
        assert_eq!(
            (m.limit(), m.swap(), m.reservation()),
            (Some(67108864), Some(67108864), None)
        );
        let cpu = c.cpu().clone().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (None, None, None)
        );
        assert_eq!(c.block_io().as_ref().unwrap().weight(), None);
        validate(&c).unwrap();
        let unlimited = update_changes(&res(serde_json::json!({"memory": {"limit": -1}})));
        assert_eq!(unlimited.memory().unwrap().swap(), Some(-1));
        let cri = update_changes(&res(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 0}, "cpu": {}
        })));
        assert!(cri.devices().is_none() && cri.pids().is_none());
    }

    #[test]
    fn merge_keeps_what_is_not_changed() {
        let mut base = res(serde_json::json!({
            "memory": {"limit": 100, "reservation": 50},
            "cpu": {"shares": 512, "cpus": "0"},
            "pids": {"limit": 10},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        let upd = update_changes(&res(serde_json::json!({
            "memory": {"limit": 200, "reservation": 0},
            "cpu": {"quota": 50000},
            "unified": {"memory.high": "max"}
        })));
        merge_resources(&mut base, &upd);
        let v = serde_json::to_value(&base).unwrap();
        assert_eq!(v["memory"]["limit"], 200);
        assert_eq!(v["memory"]["reservation"], 50);
        assert_eq!(v["cpu"]["shares"], 512);
        assert_eq!(v["cpu"]["quota"], 50000);
        assert_eq!(v["cpu"]["cpus"], "0");
        assert_eq!(v["pids"]["limit"], 10);
        assert_eq!(v["devices"].as_array().unwrap().len(), 1);
        assert_eq!(v["unified"]["memory.high"], "max");
    }

    /// A fake v1 set made of plain files; `cpu.rt_runtime_us` is a link to
    /// a read-only proc file, so writing it fails after the earlier writes
    /// succeeded.
    #[test]
    fn failed_update_restores_previous_values() {
        let tmp = tempfile::tempdir().unwrap();
        let mem = tmp.path().join("memory");
        let cpu = tmp.path().join("cpu");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::create_dir_all(&cpu).unwrap();
        std::os::unix::fs::symlink("/proc/version", cpu.join("cpu.rt_runtime_us")).unwrap();
        for (dir, file, v) in [
            (&mem, "memory.limit_in_bytes", "9223372036854771712\n"),
            (&mem, "memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            (&mem, "memory.soft_limit_in_bytes", "9223372036854771712\n"),
            (&cpu, "cpu.shares", "1024\n"),
            (&cpu, "cpu.cfs_quota_us", "-1\n"),
            (&cpu, "cpu.cfs_period_us", "100000\n"),
            (&cpu, "cpu.rt_period_us", "1000000\n"),
        ] {
            std::fs::write(dir.join(file), v).unwrap();
        }
        let dir = |path: &Path, c: &str| CgroupDir {
            name: c.into(),
            path: path.to_path_buf(),
            v2: false,
            controllers: vec![c.into()],
            existed: false,
        };
        let set = CgroupSet {
            systemd: None,
            dirs: vec![dir(&mem, "memory"), dir(&cpu, "cpu")],
        };
        let req = res(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152},
            "cpu": {"shares": 512, "quota": 20000, "realtimeRuntime": 5000}
        }));
        let err = set.update(&req).unwrap_err().to_string();
        assert!(
            err.starts_with("linux.resources.cpu.realtimeRuntime: "),
            "{err}"
        );
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            "9223372036854771712"
        );
        assert_eq!(
            read(mem.join("memory.memsw.limit_in_bytes")),
            "9223372036854771712"
        );
        assert_eq!(read(cpu.join("cpu.shares")), "1024");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "-1");
        // Without the failing field the same update goes through.
        let ok = res(serde_json::json!({"memory": {"limit": 1048576}, "cpu": {"shares": 512}}));
        set.update(&ok).unwrap();
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "1048576");
        assert_eq!(read(cpu.join("cpu.shares")), "512");
    }
}

#[cfg(test)]
mod zero_tests {
    use super::*;

    /// docker 20.10 writes these zeros into every config.json.
    #[test]
    fn dockers_zero_values_are_unset_at_create() {
        let r: LinuxResources = serde_json::from_value(serde_json::json!({
            "blockIO": {"weight": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0},
            "memory": {"limit": 0},
            "devices": [{"allow": false, "access": "rwm"}]
        }))
        .unwrap();
        let n = zero_is_unset(&r);
        validate(&n).unwrap();
        assert_eq!(n.block_io().as_ref().and_then(|b| b.weight()), None);
        assert_eq!(n.cpu().as_ref().and_then(|c| c.shares()), None);
        assert_eq!(n.devices().as_ref().map(|d| d.len()), Some(1));
    }
}
