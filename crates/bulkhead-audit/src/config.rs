//! The config front end: what an OCI config asks for, read through the
//! same plan parser `create` uses (so a config the runtime rejects is
//! rejected here with the same message).

use std::collections::BTreeMap;
use std::path::Path;

use bulkhead_spec::plan::{NsKind, Plan};
use oci_spec::runtime::Spec;

use crate::{
    AuditError, Caps, DeviceObs, IdRange, Landlock, MountObs, NsState, Observed, Seccomp,
    SeccompMode, Source,
};

/// Read and model `path` (a config.json; its directory is the bundle).
pub fn observe_file(path: &Path) -> Result<Observed, AuditError> {
    let err = |reason: String| AuditError::Config {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let spec = bulkhead_spec::plan::parse_spec(path, &bytes).map_err(|e| err(e.to_string()))?;
    let abs = std::path::absolute(path).map_err(|e| err(e.to_string()))?;
    let bundle = abs.parent().unwrap_or(Path::new("/"));
    observe(&spec, bundle).map_err(|reason| AuditError::Config {
        path: path.to_path_buf(),
        reason,
    })
}

/// Model a parsed spec; `bundle` resolves a relative root.
pub fn observe(spec: &Spec, bundle: &Path) -> Result<Observed, String> {
    let plan = Plan::from_spec(spec, bundle).map_err(|e| e.to_string())?;
    Ok(from_plan(&plan))
}

fn ranges(m: &[bulkhead_spec::plan::IdMap]) -> Vec<IdRange> {
    m.iter()
        .map(|r| IdRange {
            inside: r.container_id,
            outside: r.host_id,
            count: r.size,
        })
        .collect()
}

fn names(s: &bulkhead_spec::caps::CapSet) -> Vec<String> {
    s.names().into_iter().map(str::to_string).collect()
}

pub fn from_plan(plan: &Plan) -> Observed {
    let namespaces: BTreeMap<String, NsState> = NsKind::ALL
        .iter()
        .map(|&k| {
            let st = match plan.ns(k) {
                None => NsState::Host,
                Some(n) => match &n.path {
                    None => NsState::Private,
                    Some(p) => NsState::Joined(p.display().to_string()),
                },
            };
            (k.proc_name().to_string(), st)
        })
        .collect();
    let proc = plan.process.as_ref();
    // No capabilities object: the process gets none.
    let caps = Some(
        proc.and_then(|p| p.caps.as_ref())
            .map_or_else(Caps::default, |c| Caps {
                effective: names(&c.effective),
                permitted: names(&c.permitted),
                inheritable: names(&c.inheritable),
                bounding: names(&c.bounding),
                ambient: names(&c.ambient),
            }),
    );
    let seccomp = match &plan.seccomp {
        None => Seccomp {
            mode: SeccompMode::Disabled,
            filters: Some(0),
            default_action: None,
            rules: None,
        },
        Some(s) => Seccomp {
            mode: SeccompMode::Filter,
            filters: Some(1),
            default_action: Some(
                serde_json::to_value(s.default_action())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
            rules: Some(s.syscalls().as_ref().map_or(0, Vec::len)),
        },
    };
    let lsm_label = proc.and_then(|p| p.apparmor_profile.clone().or(p.selinux_label.clone()));
    let landlock = match &plan.landlock {
        Some(_) => Landlock::Enforced(format!(
            "{} annotation",
            bulkhead_spec::landlock::ANNOTATION
        )),
        None => Landlock::None,
    };
    let mut mounts: Vec<MountObs> = plan
        .mounts
        .iter()
        .map(|m| {
            let host_path = if m.is_bind() { m.source.clone() } else { None };
            MountObs {
                destination: m.destination.display().to_string(),
                fstype: if m.is_bind() {
                    "bind".into()
                } else {
                    m.fstype.clone()
                },
                host_path,
                writable: m.options.flags & libc::MS_RDONLY == 0,
            }
        })
        .collect();
    // readonlyPaths become read-only binds of themselves.
    for p in &plan.readonly_paths {
        mounts.push(MountObs {
            destination: p.display().to_string(),
            fstype: "bind".into(),
            host_path: None,
            writable: false,
        });
    }
    let masked = plan
        .masked_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let devices = plan
        .devices
        .iter()
        .map(|d| DeviceObs {
            path: d.path.display().to_string(),
            kind: if d.kind == libc::S_IFBLK { 'b' } else { 'c' },
            major: d.major,
            minor: d.minor,
        })
        .collect();
    let res = plan.resources.as_ref();
    // The rules as the device program bulkhead would generate from them,
    // judged like a live program.
    let device_access = res
        .and_then(|r| r.devices().as_ref())
        .and_then(|rules| bulkhead_cgroups::devfilter::program(rules).ok())
        .and_then(|prog| {
            let progs = [(0, prog)];
            crate::devices::check("linux.resources.devices".into(), |k, ma, mi, a| {
                crate::devices::programs_allow(&progs, k, ma, mi, a).ok()
            })
        });
    let all_devices_allowed = res.and_then(|r| r.devices().as_ref()).map(|rules| {
        // The last matching rule wins; an allow rule for every device
        // (no type or "a", no major/minor) after any deny opens everything.
        rules
            .iter()
            .rev()
            .find(|d| {
                let ty = d
                    .typ()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "a".into());
                ty == "a" && d.major().is_none() && d.minor().is_none()
            })
            .is_some_and(|d| d.allow())
    });
    let memory_limit = Some(
        res.and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .filter(|&l| l > 0)
            .map(|l| l as u64),
    );
    let pids_limit = Some(
        res.and_then(|r| r.pids().as_ref())
            .map(|p| p.limit())
            .filter(|&l| l > 0)
            .map(|l| l as u64),
    );
    let cgroupfs_writable = Some(plan.mounts.iter().any(|m| {
        (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.options.flags & libc::MS_RDONLY == 0
    }));
    Observed {
        source: Source::Config,
        namespaces,
        uid_map: ranges(&plan.uid_mappings),
        gid_map: ranges(&plan.gid_mappings),
        uid: proc.map(|p| p.uid),
        caps,
        host_caps: Vec::new(),
        no_new_privs: Some(proc.is_some_and(|p| p.no_new_privileges)),
        seccomp,
        lsm_label,
        landlock,
        mounts,
        masked,
        devices,
        all_devices_allowed,
        device_access,
        devices_unknown: None,
        memory_limit,
        pids_limit,
        cgroupfs_writable,
        net_devices: plan.net_devices.iter().map(|d| d.host.clone()).collect(),
    }
}
