//! `linux.resources` as systemd unit properties, the way runc's systemd
//! drivers map them: v1 names (`MemoryLimit`, `CPUShares`, `BlockIOWeight`)
//! when systemd runs on v1/hybrid controllers, v2 names (`MemoryMax`,
//! `CPUWeight`, `IOWeight`, ...) in unified mode. Only what systemd can
//! hold is here; the cgroupfs code writes every field afterwards anyway,
//! but systemd re-applies its properties now and then (daemon-reload, a
//! later `SetUnitProperties`), so the limits it knows must be the right
//! ones.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::SystemdError;
use crate::resources::v2;

/// `USEC_INFINITY` / `CGROUP_LIMIT_MAX` / "infinity" for systemd.
pub const INFINITY: u64 = u64::MAX;
/// The CFS period systemd and the kernel use when none is given.
pub const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// `CPUQuotaPeriodUSec` exists since systemd 242.
const QUOTA_PERIOD_SINCE: u32 = 242;
/// `AllowedCPUs` / `AllowedMemoryNodes` exist since systemd 244.
const ALLOWED_CPUS_SINCE: u32 = 244;

/// A D-Bus value of a unit property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Bool(bool),
    U64(u64),
    Str(String),
    /// `as`
    Strs(Vec<String>),
    /// `au` (`PIDs`)
    U32s(Vec<u32>),
    /// `ay` (`AllowedCPUs` bit masks)
    Bytes(Vec<u8>),
    /// `a(ss)` (`DeviceAllow`: node or class, access)
    Pairs(Vec<(String, String)>),
}

/// One unit property, name and value.
pub type Property = (&'static str, PropValue);

fn prop_err(field: &str, reason: impl Into<String>) -> SystemdError {
    SystemdError::Property {
        field: format!("linux.resources.{field}"),
        reason: reason.into(),
    }
}

/// The properties of a new transient unit: description, placement,
/// accounting and `DefaultDependencies=no` (as runc sets them), then
/// [`resources`]. A scope gets the pid and `Delegate=yes`; a slice is put
/// under its parent with `Wants=` and gets no pid (it cannot hold one).
pub fn start(
    unit: &super::Unit,
    description: &str,
    pid: i32,
    r: Option<&LinuxResources>,
    version: u32,
    proc_devices: &str,
) -> Result<Vec<Property>, SystemdError> {
    let mut p: Vec<Property> = vec![("Description", PropValue::Str(description.into()))];
    if unit.is_slice() {
        p.push(("Wants", PropValue::Strs(vec![unit.slice.clone()])));
    } else {
        p.push(("Slice", PropValue::Str(unit.slice.clone())));
        p.push(("Delegate", PropValue::Bool(true)));
        p.push(("PIDs", PropValue::U32s(vec![pid as u32])));
    }
    p.push(("MemoryAccounting", PropValue::Bool(true)));
    p.push(("CPUAccounting", PropValue::Bool(true)));
    p.push((
        if unit.unified {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        },
        PropValue::Bool(true),
    ));
    p.push(("TasksAccounting", PropValue::Bool(true)));
    p.push(("DefaultDependencies", PropValue::Bool(false)));
    if let Some(r) = r {
        p.extend(resources(r, unit.unified, version, proc_devices)?);
    }
    Ok(p)
}

/// The resource properties of `r` (zero values are "not set", as in the
/// rest of the crate). `unified` selects the v2 names; `version` is
/// systemd's, for the properties older ones lack; `proc_devices` is the
/// content of `/proc/devices`, to name device classes.
pub fn resources(
    r: &LinuxResources,
    unified: bool,
    version: u32,
    proc_devices: &str,
) -> Result<Vec<Property>, SystemdError> {
    let mut p = Vec::new();
    if let Some(rules) = r.devices() {
        p.extend(devices(rules, proc_devices));
    }
    let mem = r.memory().as_ref();
    let limit = mem.and_then(|m| m.limit()).filter(|&v| v != 0);
    if let Some(l) = limit {
        p.push((
            if unified { "MemoryMax" } else { "MemoryLimit" },
            PropValue::U64(bytes(l)),
        ));
    }
    if unified {
        if let Some(low) = mem.and_then(|m| m.reservation()).filter(|&v| v != 0) {
            p.push(("MemoryLow", PropValue::U64(bytes(low))));
        }
        let swap = mem.and_then(|m| m.swap());
        match v2::swap_max(limit, swap).map_err(|e| prop_err("memory.swap", e))? {
            Some(s) if s == "max" => p.push(("MemorySwapMax", PropValue::U64(INFINITY))),
            Some(s) => p.push((
                "MemorySwapMax",
                PropValue::U64(s.parse().map_err(|_| prop_err("memory.swap", s))?),
            )),
            None => {}
        }
    }
    let cpu = r.cpu().as_ref();
    if let Some(shares) = cpu.and_then(|c| c.shares()).filter(|&v| v != 0) {
        if unified {
            p.push(("CPUWeight", PropValue::U64(v2::shares_to_weight(shares))));
        } else {
            p.push(("CPUShares", PropValue::U64(shares)));
        }
    }
    let quota = cpu.and_then(|c| c.quota()).unwrap_or(0);
    let period = cpu.and_then(|c| c.period()).unwrap_or(0);
    p.extend(cpu_quota(quota, period, version));
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|&w| w != 0)
    {
        if unified {
            p.push(("IOWeight", PropValue::U64(v2::blkio_weight_to_io_weight(w))));
        } else {
            p.push(("BlockIOWeight", PropValue::U64(u64::from(w))));
        }
    }
    if let Some(l) = r.pids().as_ref().map(|p| p.limit()) {
        // 0 is "not set"; systemd has no "0 tasks".
        if l > 0 {
            p.push(("TasksMax", PropValue::U64(l as u64)));
        } else if l < 0 {
            p.push(("TasksMax", PropValue::U64(INFINITY)));
        }
    }
    if version >= ALLOWED_CPUS_SINCE {
        for (field, name, value) in [
            (
                "cpu.cpus",
                "AllowedCPUs",
                cpu.and_then(|c| c.cpus().clone()),
            ),
            (
                "cpu.mems",
                "AllowedMemoryNodes",
                cpu.and_then(|c| c.mems().clone()),
            ),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                let bits = cpu_mask(&v).map_err(|e| prop_err(field, e))?;
                p.push((name, PropValue::Bytes(bits)));
            }
        }
    }
    Ok(p)
}

fn bytes(v: i64) -> u64 {
    if v < 0 { INFINITY } else { v as u64 }
}

/// `CPUQuotaPerSecUSec` (and `CPUQuotaPeriodUSec`) from an OCI quota and
/// period (0 = not given). systemd keeps the quota as a whole percentage of
/// a CPU, so the per-second value is rounded up to the next 10 ms: the
/// container never gets less than asked, and the exact `cpu.cfs_quota_us`
/// is written through cgroupfs afterwards. -1 is infinity. A period alone
/// leaves the quota alone (runc would reset it to infinity).
pub fn cpu_quota(quota: i64, period: u64, version: u32) -> Vec<Property> {
    let mut p = Vec::new();
    if period != 0 && version >= QUOTA_PERIOD_SINCE {
        p.push(("CPUQuotaPeriodUSec", PropValue::U64(period)));
    }
    if quota != 0 {
        let per_sec = if quota > 0 {
            let period = if period == 0 {
                DEFAULT_CPU_PERIOD
            } else {
                period
            };
            let v = (quota as u64).saturating_mul(1_000_000) / period;
            v.div_ceil(10_000).saturating_mul(10_000)
        } else {
            INFINITY
        };
        p.push(("CPUQuotaPerSecUSec", PropValue::U64(per_sec)));
    }
    p
}

/// A cpuset list (`0-3,8`) as systemd's `AllowedCPUs` bit mask: byte `i`
/// holds CPUs `8i..8i+7`, lowest bit first.
pub fn cpu_mask(list: &str) -> Result<Vec<u8>, String> {
    let set = crate::update::parse_list(list)?;
    let Some(&max) = set.iter().next_back() else {
        return Ok(vec![0]);
    };
    let mut bits = vec![0u8; max as usize / 8 + 1];
    for c in set {
        bits[c as usize / 8] |= 1 << (c % 8);
    }
    Ok(bits)
}

/// `DevicePolicy` and `DeviceAllow` from the device rules (with the
/// runtime's defaults appended). systemd can only list what is allowed:
/// when the rules end up denying by default (they start with "deny all",
/// as runtimes write them), the policy is `strict` with one `DeviceAllow`
/// per allowed rule; when they end up allowing by default, the policy is
/// `auto` with an empty list and the deny rules are left to cgroupfs.
pub fn devices(rules: &[LinuxDeviceCgroup], proc_devices: &str) -> Vec<Property> {
    let mut default_allow = true;
    let mut allowed: Vec<&LinuxDeviceCgroup> = Vec::new();
    for rule in rules {
        let any_type = matches!(rule.typ(), None | Some(LinuxDeviceType::A));
        let wildcard = |n: Option<i64>| n.is_none_or(|n| n < 0);
        if any_type && wildcard(rule.major()) && wildcard(rule.minor()) && full_access(rule) {
            default_allow = rule.allow();
            allowed.clear();
            continue;
        }
        if default_allow {
            // Nothing systemd could express: a deny list on top of "allow all".
            continue;
        }
        if rule.allow() {
            allowed.push(rule);
        } else {
            allowed.retain(|a| {
                !(a.typ() == rule.typ() && a.major() == rule.major() && a.minor() == rule.minor())
            });
        }
    }
    if default_allow {
        return vec![
            ("DevicePolicy", PropValue::Str("auto".into())),
            ("DeviceAllow", PropValue::Pairs(Vec::new())),
        ];
    }
    let mut entries = Vec::new();
    for rule in allowed {
        let access = rule.access().clone().unwrap_or_else(|| "rwm".into());
        let kinds: &[(char, &str)] = match rule.typ() {
            Some(LinuxDeviceType::B) => &[('b', "block")],
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => &[('c', "char")],
            _ => &[('c', "char"), ('b', "block")],
        };
        for &(kind, class) in kinds {
            let node = match (
                rule.major().filter(|&m| m >= 0),
                rule.minor().filter(|&m| m >= 0),
            ) {
                (None, _) => format!("{class}-*"),
                (Some(major), Some(minor)) => format!("/dev/{class}/{major}:{minor}"),
                (Some(major), None) => match device_class(proc_devices, kind, major) {
                    Some(name) => format!("{class}-{name}"),
                    None => {
                        // systemd names a whole major only by its class name.
                        tracing::warn!(
                            "linux.resources.devices: no {class} device class with major {major} \
                             in /proc/devices; the rule is left to cgroupfs"
                        );
                        continue;
                    }
                },
            };
            let pair = (node, access.clone());
            if !entries.contains(&pair) {
                entries.push(pair);
            }
        }
    }
    vec![
        ("DevicePolicy", PropValue::Str("strict".into())),
        ("DeviceAllow", PropValue::Pairs(entries)),
    ]
}

fn full_access(rule: &LinuxDeviceCgroup) -> bool {
    rule.access()
        .as_deref()
        .is_none_or(|a| a.is_empty() || ['r', 'w', 'm'].iter().all(|c| a.contains(*c)))
}

/// The name of the character (`c`) or block (`b`) device class with
/// `major` in `/proc/devices` content.
pub fn device_class(proc_devices: &str, kind: char, major: i64) -> Option<String> {
    let header = if kind == 'b' {
        "Block devices:"
    } else {
        "Character devices:"
    };
    proc_devices
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (m, name) = l.trim().split_once(' ')?;
            (m.parse::<i64>().ok()? == major).then(|| name.trim().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::Unit;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn get<'a>(p: &'a [Property], name: &str) -> Option<&'a PropValue> {
        p.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    const PROC_DEVICES: &str =
        "Character devices:\n  1 mem\n  4 tty\n136 pts\n\nBlock devices:\n  8 sd\n253 virtblk\n";

    #[test]
    fn quota_rounds_up_to_whole_percent() {
        // 0.5 CPU: exactly 50 %.
        assert_eq!(
            cpu_quota(50_000, 100_000, 252),
            vec![
                ("CPUQuotaPeriodUSec", PropValue::U64(100_000)),
                ("CPUQuotaPerSecUSec", PropValue::U64(500_000)),
            ]
        );
        // 12345 µs per 100 ms = 123450 µs/s, rounded up to 130000 (13 %).
        assert_eq!(
            cpu_quota(12_345, 0, 252),
            vec![("CPUQuotaPerSecUSec", PropValue::U64(130_000))]
        );
        // Period 1 s given, quota 1.5 s: 150 %.
        assert_eq!(
            get(&cpu_quota(1_500_000, 1_000_000, 252), "CPUQuotaPerSecUSec"),
            Some(&PropValue::U64(1_500_000))
        );
        // 1 µs still gets 1 %.
        assert_eq!(
            get(&cpu_quota(1, 100_000, 252), "CPUQuotaPerSecUSec"),
            Some(&PropValue::U64(10_000))
        );
        assert_eq!(
            cpu_quota(-1, 0, 252),
            vec![("CPUQuotaPerSecUSec", PropValue::U64(INFINITY))]
        );
        // Period only: the quota is left alone; old systemd has no period.
        assert_eq!(
            cpu_quota(0, 50_000, 252),
            vec![("CPUQuotaPeriodUSec", PropValue::U64(50_000))]
        );
        assert_eq!(cpu_quota(0, 50_000, 241), vec![]);
        assert_eq!(cpu_quota(0, 0, 252), vec![]);
    }

    #[test]
    fn cpu_masks() {
        assert_eq!(cpu_mask("0").unwrap(), vec![0b1]);
        assert_eq!(cpu_mask("0-3").unwrap(), vec![0x0f]);
        assert_eq!(cpu_mask("1,3").unwrap(), vec![0b1010]);
        assert_eq!(cpu_mask("7-9").unwrap(), vec![0x80, 0x03]);
        assert_eq!(cpu_mask("0,16").unwrap(), vec![0x01, 0x00, 0x01]);
        assert!(cpu_mask("x").is_err());
    }

    #[test]
    fn v1_names() {
        let r = res(serde_json::json!({
            "memory": {"limit": 67108864, "reservation": 1000, "swap": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "blockIO": {"weight": 300},
            "pids": {"limit": 10}
        }));
        let p = resources(&r, false, 252, PROC_DEVICES).unwrap();
        let names: Vec<&str> = p.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "MemoryLimit",
                "CPUShares",
                "CPUQuotaPeriodUSec",
                "CPUQuotaPerSecUSec",
                "BlockIOWeight",
                "TasksMax",
                "AllowedCPUs",
                "AllowedMemoryNodes"
            ]
        );
        assert_eq!(get(&p, "MemoryLimit"), Some(&PropValue::U64(67_108_864)));
        assert_eq!(get(&p, "CPUShares"), Some(&PropValue::U64(512)));
        assert_eq!(get(&p, "BlockIOWeight"), Some(&PropValue::U64(300)));
        assert_eq!(get(&p, "TasksMax"), Some(&PropValue::U64(10)));
        assert_eq!(get(&p, "AllowedCPUs"), Some(&PropValue::Bytes(vec![3])));
        // systemd 243 has no AllowedCPUs.
        assert!(get(&resources(&r, false, 243, "").unwrap(), "AllowedCPUs").is_none());
    }

    #[test]
    fn v2_names_and_conversions() {
        let r = res(serde_json::json!({
            "memory": {"limit": 67108864, "reservation": 1000, "swap": 134217728},
            "cpu": {"shares": 1024},
            "blockIO": {"weight": 1000},
            "pids": {"limit": -1}
        }));
        let p = resources(&r, true, 252, "").unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&PropValue::U64(67_108_864)));
        assert_eq!(get(&p, "MemoryLow"), Some(&PropValue::U64(1000)));
        // memory+swap 128 MiB with 64 MiB memory: 64 MiB of swap.
        assert_eq!(get(&p, "MemorySwapMax"), Some(&PropValue::U64(67_108_864)));
        assert_eq!(get(&p, "CPUWeight"), Some(&PropValue::U64(39)));
        assert_eq!(get(&p, "IOWeight"), Some(&PropValue::U64(10_000)));
        assert_eq!(get(&p, "TasksMax"), Some(&PropValue::U64(INFINITY)));
        assert!(get(&p, "MemoryLimit").is_none());

        let unlimited = res(serde_json::json!({"memory": {"limit": -1}}));
        let p = resources(&unlimited, true, 252, "").unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&PropValue::U64(INFINITY)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&PropValue::U64(INFINITY)));

        let bad = res(serde_json::json!({"memory": {"limit": 100, "swap": 50}}));
        let msg = resources(&bad, true, 252, "").unwrap_err().to_string();
        assert!(msg.starts_with("linux.resources.memory.swap:"), "{msg}");
    }

    #[test]
    fn zero_is_unset() {
        let r = res(serde_json::json!({
            "memory": {"limit": 0}, "cpu": {"shares": 0, "quota": 0, "period": 0},
            "blockIO": {"weight": 0}, "pids": {"limit": 0}
        }));
        assert_eq!(resources(&r, false, 252, "").unwrap(), vec![]);
        assert_eq!(resources(&r, true, 252, "").unwrap(), vec![]);
    }

    #[test]
    fn device_rules() {
        let r = res(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "major": 8, "access": "r"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 999, "access": "rwm"},
            {"allow": true, "type": "a", "major": 5, "minor": 1, "access": "rw"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
            {"allow": false, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
        ]}));
        let p = devices(r.devices().as_ref().unwrap(), PROC_DEVICES);
        assert_eq!(p[0], ("DevicePolicy", PropValue::Str("strict".into())));
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            p[1],
            (
                "DeviceAllow",
                PropValue::Pairs(vec![
                    pair("/dev/char/1:3", "rwm"),
                    pair("char-*", "m"),
                    pair("block-sd", "r"),
                    pair("char-pts", "rwm"),
                    pair("/dev/char/5:1", "rw"),
                    pair("/dev/block/5:1", "rw"),
                ])
            )
        );

        // Allow-all followed by denies: systemd cannot say it.
        let r = res(serde_json::json!({"devices": [
            {"allow": true, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]}));
        let p = devices(r.devices().as_ref().unwrap(), PROC_DEVICES);
        assert_eq!(p[0], ("DevicePolicy", PropValue::Str("auto".into())));
        assert_eq!(p[1], ("DeviceAllow", PropValue::Pairs(vec![])));
    }

    #[test]
    fn start_properties() {
        let scope = Unit {
            name: "bulkhead-a.scope".into(),
            slice: "system.slice".into(),
            unified: false,
        };
        let r = res(serde_json::json!({"pids": {"limit": 5}}));
        let p = start(&scope, "bulkhead container a", 42, Some(&r), 252, "").unwrap();
        assert_eq!(
            get(&p, "Slice"),
            Some(&PropValue::Str("system.slice".into()))
        );
        assert_eq!(get(&p, "Delegate"), Some(&PropValue::Bool(true)));
        assert_eq!(get(&p, "PIDs"), Some(&PropValue::U32s(vec![42])));
        assert_eq!(
            get(&p, "DefaultDependencies"),
            Some(&PropValue::Bool(false))
        );
        assert_eq!(get(&p, "BlockIOAccounting"), Some(&PropValue::Bool(true)));
        assert_eq!(get(&p, "TasksMax"), Some(&PropValue::U64(5)));

        let slice = Unit {
            name: "machine-app.slice".into(),
            slice: "machine.slice".into(),
            unified: true,
        };
        let p = start(&slice, "d", 42, None, 252, "").unwrap();
        assert_eq!(
            get(&p, "Wants"),
            Some(&PropValue::Strs(vec!["machine.slice".into()]))
        );
        assert!(get(&p, "PIDs").is_none());
        assert!(get(&p, "Delegate").is_none());
        assert_eq!(get(&p, "IOAccounting"), Some(&PropValue::Bool(true)));
    }

    #[test]
    fn device_classes() {
        assert_eq!(device_class(PROC_DEVICES, 'c', 136).as_deref(), Some("pts"));
        assert_eq!(device_class(PROC_DEVICES, 'b', 8).as_deref(), Some("sd"));
        assert_eq!(device_class(PROC_DEVICES, 'c', 8), None);
        assert_eq!(device_class(PROC_DEVICES, 'b', 136), None);
    }
}
