//! Unit tests of the rules and the parsers.

use std::collections::BTreeMap;

use crate::live::{mounts, parse_idmap, parse_mountinfo, parse_status};
use crate::rules::{findings, verdict};
use crate::*;

/// A tight container: every namespace private, unprivileged root, no caps,
/// nnp, seccomp filter, Landlock, masked /proc, limits.
fn tight() -> Observed {
    let namespaces: BTreeMap<String, NsState> =
        ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup"]
            .iter()
            .map(|n| (n.to_string(), NsState::Private))
            .collect();
    Observed {
        source: Source::Live,
        namespaces,
        uid_map: vec![IdRange {
            inside: 0,
            outside: 100_000,
            count: 65536,
        }],
        gid_map: vec![IdRange {
            inside: 0,
            outside: 100_000,
            count: 65536,
        }],
        uid: Some(0),
        caps: Some(Caps::default()),
        host_caps: Vec::new(),
        no_new_privs: Some(true),
        seccomp: Seccomp {
            mode: SeccompMode::Filter,
            filters: Some(1),
            default_action: None,
            rules: None,
        },
        lsm_label: Some("bulkhead-default".into()),
        landlock: Landlock::Enforced("test".into()),
        mounts: vec![
            MountObs {
                destination: "/proc".into(),
                fstype: "proc".into(),
                host_path: None,
                writable: true,
            },
            MountObs {
                destination: "/proc/sys".into(),
                fstype: "proc".into(),
                host_path: None,
                writable: false,
            },
            MountObs {
                destination: "/sys".into(),
                fstype: "sysfs".into(),
                host_path: None,
                writable: false,
            },
        ],
        masked: vec!["/proc/keys".into()],
        devices: Vec::new(),
        all_devices_allowed: Some(false),
        device_access: None,
        devices_unknown: None,
        memory_limit: Some(Some(1 << 30)),
        pids_limit: Some(Some(1024)),
        cgroupfs_writable: Some(false),
        net_devices: Vec::new(),
    }
}

fn ids(o: &Observed) -> Vec<String> {
    findings(o).into_iter().map(|f| f.id).collect()
}

fn all_caps() -> Caps {
    let all: Vec<String> = bulkhead_spec::caps::ALL
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    Caps {
        effective: all.clone(),
        permitted: all.clone(),
        inheritable: vec![],
        bounding: all,
        ambient: vec![],
    }
}

#[test]
fn tight_container_has_no_findings_and_is_restricted() {
    let o = tight();
    assert_eq!(ids(&o), Vec::<String>::new());
    assert_eq!(Report::build("t".into(), vec![o]).verdict, Pss::Restricted);
}

#[test]
fn host_namespaces_are_findings() {
    let mut o = tight();
    for n in ["pid", "net", "ipc", "mnt"] {
        o.namespaces.insert(n.into(), NsState::Host);
    }
    let got = ids(&o);
    for id in ["host-pid-ns", "host-net-ns", "host-ipc-ns", "host-mnt-ns"] {
        assert!(got.contains(&id.to_string()), "{id}: {got:?}");
    }
    assert_eq!(Report::build("t".into(), vec![o]).verdict, Pss::Privileged);
    let mut o = tight();
    o.namespaces
        .insert("net".into(), NsState::Joined("/run/netns/x".into()));
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].id.as_str(), f[0].severity),
        ("joined-net-ns", Severity::Info)
    );
}

#[test]
fn capabilities_rules() {
    let mut o = tight();
    o.caps = Some(all_caps());
    let got = ids(&o);
    assert!(
        got.contains(&"caps-all".into()) && got.contains(&"cap-sys-admin".into()),
        "{got:?}"
    );
    assert!(
        !got.contains(&"caps-beyond-baseline".into()),
        "folded into caps-all: {got:?}"
    );

    // "All" is relative to what the host holds.
    let mut c = all_caps();
    c.effective.retain(|n| n != "CAP_SYS_RESOURCE");
    c.permitted.retain(|n| n != "CAP_SYS_RESOURCE");
    o.caps = Some(c.clone());
    assert!(!ids(&o).contains(&"caps-all".into()));
    o.host_caps = c
        .bounding
        .iter()
        .filter(|n| *n != "CAP_SYS_RESOURCE")
        .cloned()
        .collect();
    assert!(ids(&o).contains(&"caps-all".into()));

    let mut o = tight();
    o.caps = Some(Caps {
        effective: vec!["CAP_NET_RAW".into(), "CAP_CHOWN".into()],
        ..Caps::default()
    });
    let f = findings(&o);
    let b = f
        .iter()
        .find(|f| f.id == "caps-beyond-baseline")
        .expect("beyond baseline");
    assert!(
        b.title.contains("CAP_NET_RAW") && !b.title.contains("CAP_CHOWN"),
        "{}",
        b.title
    );
    let r = f
        .iter()
        .find(|f| f.id == "caps-beyond-restricted")
        .expect("beyond restricted");
    assert!(r.title.contains("CAP_CHOWN"));
    assert_eq!(b.severity, Severity::Medium, "NET_RAW alone");
    assert_eq!(verdict(&f), Pss::Privileged);
    o.caps = Some(Caps {
        effective: vec!["CAP_NET_RAW".into(), "CAP_SYS_PTRACE".into()],
        ..Caps::default()
    });
    let f = findings(&o);
    assert_eq!(
        f.iter()
            .find(|f| f.id == "caps-beyond-baseline")
            .unwrap()
            .severity,
        Severity::High
    );

    // Only NET_BIND_SERVICE: still restricted.
    o.caps = Some(Caps {
        effective: vec!["CAP_NET_BIND_SERVICE".into()],
        ..Caps::default()
    });
    assert_eq!(ids(&o), Vec::<String>::new());
    // CHOWN alone: baseline.
    o.caps = Some(Caps {
        effective: vec!["CAP_CHOWN".into()],
        ..Caps::default()
    });
    assert_eq!(verdict(&findings(&o)), Pss::Baseline);
}

#[test]
fn seccomp_nnp_and_root_rules() {
    let mut o = tight();
    o.seccomp.mode = SeccompMode::Disabled;
    o.no_new_privs = Some(false);
    o.uid_map.clear();
    o.namespaces.insert("user".into(), NsState::Host);
    let got = ids(&o);
    for id in ["no-seccomp", "no-new-privs-off", "runs-as-host-root"] {
        assert!(got.contains(&id.to_string()), "{id}: {got:?}");
    }
    // Non-root without a user namespace is fine.
    let mut o = tight();
    o.uid_map.clear();
    o.namespaces.insert("user".into(), NsState::Host);
    o.uid = Some(1000);
    assert_eq!(ids(&o), Vec::<String>::new());
    // An allow-by-default filter.
    let mut o = tight();
    o.seccomp.default_action = Some("SCMP_ACT_ALLOW".into());
    assert_eq!(ids(&o), vec!["seccomp-allow-default".to_string()]);
}

fn bind(dest: &str, host: &str, writable: bool) -> MountObs {
    MountObs {
        destination: dest.into(),
        fstype: "ext4".into(),
        host_path: Some(host.into()),
        writable,
    }
}

#[test]
fn mount_rules() {
    let sev = |m: MountObs, root: bool| {
        let mut o = tight();
        if root {
            o.uid_map.clear();
            o.namespaces.insert("user".into(), NsState::Host);
        }
        o.mounts.push(m);
        findings(&o)
            .into_iter()
            .filter(|f| f.id != "runs-as-host-root")
            .map(|f| (f.id, f.severity))
            .collect::<Vec<_>>()
    };
    use Severity::*;
    assert_eq!(
        sev(
            bind("/var/run/docker.sock", "/run/docker.sock", false),
            false
        ),
        [("runtime-socket".into(), Critical)]
    );
    assert_eq!(
        sev(bind("/x/api", "/srv/containerd.sock", true), false),
        [("runtime-socket".into(), Critical)]
    );
    assert_eq!(
        sev(bind("/host", "/", true), false),
        [("host-root-mount".into(), Critical)]
    );
    assert_eq!(
        sev(bind("/host", "/", false), false),
        [("host-root-mount".into(), High)]
    );
    assert_eq!(
        sev(bind("/e", "/etc", true), false),
        [("host-sensitive-mount".into(), High)]
    );
    assert_eq!(
        sev(bind("/e", "/etc/ssl", false), true),
        [("host-sensitive-mount".into(), Low)]
    );
    assert_eq!(
        sev(bind("/e", "/etc", false), false),
        [("host-sensitive-mount".into(), Info)]
    );
    // /etcetera is not under /etc.
    assert_eq!(sev(bind("/e", "/etcetera", false), false), []);
    assert_eq!(
        sev(bind("/data", "/srv/data", true), false),
        [("host-path-writable".into(), Medium)]
    );
    assert_eq!(sev(bind("/data", "/srv/data", false), false), []);
    // In the host's mount namespace, mounts are the host's own.
    let mut o = tight();
    o.namespaces.insert("mnt".into(), NsState::Host);
    o.mounts.push(bind("/", "/", true));
    o.mounts
        .push(bind("/run/docker.sock", "/run/docker.sock", true));
    assert_eq!(ids(&o), ["host-mnt-ns"]);
    // The same mount stacked twice is reported once.
    let mut o = tight();
    o.mounts.push(bind("/e", "/etc", true));
    o.mounts.push(bind("/e", "/etc", true));
    assert_eq!(Report::build("t".into(), vec![o]).findings.len(), 1);

    let mut o = tight();
    o.mounts.retain(|m| m.destination != "/proc/sys");
    o.mounts.iter_mut().for_each(|m| m.writable = true);
    o.masked.clear();
    o.cgroupfs_writable = Some(true);
    let got = ids(&o);
    for id in [
        "sysfs-writable",
        "proc-sys-writable",
        "proc-unmasked",
        "cgroupfs-writable",
    ] {
        assert!(got.contains(&id.to_string()), "{id}: {got:?}");
    }
}

#[test]
fn device_and_limit_rules() {
    let mut o = tight();
    o.all_devices_allowed = Some(true);
    o.devices = vec![
        DeviceObs {
            path: "/dev/mem".into(),
            kind: 'c',
            major: 1,
            minor: 1,
        },
        DeviceObs {
            path: "/dev/sda".into(),
            kind: 'b',
            major: 8,
            minor: 0,
        },
        DeviceObs {
            path: "/dev/null".into(),
            kind: 'c',
            major: 1,
            minor: 3,
        },
    ];
    o.memory_limit = Some(None);
    o.pids_limit = Some(None);
    let got = ids(&o);
    assert_eq!(
        got,
        [
            "devices-all-allowed",
            "raw-memory-device",
            "block-device",
            "no-memory-limit",
            "no-pids-limit"
        ]
    );
    // Unknown limits are not findings.
    o.memory_limit = None;
    assert!(!ids(&o).contains(&"no-memory-limit".into()));
}

#[test]
fn report_merges_models_live_first() {
    let mut live = tight();
    live.seccomp.mode = SeccompMode::Disabled;
    let mut conf = tight();
    conf.source = Source::Config;
    conf.seccomp.mode = SeccompMode::Disabled;
    conf.pids_limit = Some(None);
    let r = Report::build("t".into(), vec![live, conf]);
    let got: Vec<(&str, Source)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.source))
        .collect();
    assert_eq!(
        got,
        [
            ("no-seccomp", Source::Live),
            ("no-pids-limit", Source::Config)
        ]
    );
    assert_eq!(r.worst(), Some(Severity::High));
    assert_eq!("critical".parse::<Severity>(), Ok(Severity::Critical));
    assert!("severe".parse::<Severity>().is_err());
}

#[test]
fn parses_status_and_maps() {
    let s = "Name:\tx\nUid:\t100000\t100000\t100000\t100000\nCapInh:\t0000000000000000\nCapPrm:\t0000000000200001\nCapEff:\t0000000000200001\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t3\n";
    let st = parse_status(s);
    assert_eq!(st.host_uid, Some(100_000));
    let caps = st.caps.unwrap();
    assert_eq!(caps.effective, ["CAP_CHOWN", "CAP_SYS_ADMIN"]);
    assert_eq!(caps.bounding.len(), 41);
    assert_eq!(
        (st.nnp, st.seccomp, st.filters),
        (Some(true), SeccompMode::Filter, Some(3))
    );
    assert_eq!(
        parse_idmap("         0     100000      65536\n"),
        [IdRange {
            inside: 0,
            outside: 100_000,
            count: 65536
        }]
    );
}

#[test]
fn mountinfo_host_paths_and_masks() {
    let host = parse_mountinfo(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
         30 27 0:25 / /run rw,nosuid - tmpfs tmpfs rw\n\
         31 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n\
         32 27 0:30 / /srv/v rw - ext4 /dev/vdb rw\n",
    );
    let own = parse_mountinfo(
        "68 45 254:0 /var/lib/x/rootfs / ro,relatime - ext4 /dev/vda rw\n\
         69 68 0:41 / /proc rw,nosuid - proc proc rw\n\
         70 68 0:25 /docker.sock /run/docker.sock rw - tmpfs tmpfs rw\n\
         71 68 254:0 /home/a\\040b /data rw - ext4 /dev/vda ro\n\
         72 69 0:6 /null /proc/keys rw - devtmpfs devtmpfs rw\n\
         73 69 0:48 / /proc/acpi ro - tmpfs none rw\n\
         74 68 0:6 /null /dev/null rw - devtmpfs devtmpfs rw\n\
         75 68 0:99 / /tmp rw - tmpfs tmpfs rw\n\
         76 68 0:30 / /v rw - ext4 /dev/vdb rw\n\
         77 68 0:30 /ctr/userdata/hosts /etc/hosts rw - ext4 /dev/vdb rw\n\
         78 68 254:0 /etc/hosts /etc/hosts rw - ext4 /dev/vda rw\n",
    );
    let (m, masked) = mounts(&own, &host);
    assert_eq!(masked, ["/proc/keys", "/proc/acpi"]);
    let hp: Vec<(&str, Option<&str>, bool)> = m
        .iter()
        .map(|m| (m.destination.as_str(), m.host_path.as_deref(), m.writable))
        .collect();
    assert_eq!(
        hp,
        [
            ("/", Some("/var/lib/x/rootfs"), false),
            ("/proc", None, true),
            ("/run/docker.sock", Some("/run/docker.sock"), true),
            // Escaped space; read-only superblock.
            ("/data", Some("/home/a b"), false),
            // A safe device bind is not a host path finding.
            ("/dev/null", None, true),
            // A tmpfs of its own is not the host's.
            ("/tmp", None, true),
            // A whole host filesystem: its mount point, no trailing slash.
            ("/v", Some("/srv/v"), true),
            // An engine's generated file is not a finding; the host's own is.
            ("/etc/hosts", None, true),
            ("/etc/hosts", Some("/etc/hosts"), true),
        ]
    );
}

#[test]
fn config_front_end() {
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"effective": ["CAP_SYS_ADMIN"], "bounding": ["CAP_SYS_ADMIN"]}},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs"},
            {"destination": "/var/run/docker.sock", "type": "bind", "source": "/run/docker.sock", "options": ["rbind", "ro"]}
        ],
        "linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}],
            "resources": {"devices": [{"allow": true, "access": "rwm"}]}}
    }))
    .unwrap();
    let o = config::observe(&spec, std::path::Path::new("/b")).unwrap();
    assert_eq!(o.ns("pid"), &NsState::Host);
    assert_eq!(o.ns("net"), &NsState::Joined("/proc/1/ns/net".into()));
    assert_eq!(o.seccomp.mode, SeccompMode::Disabled);
    assert_eq!(o.all_devices_allowed, Some(true));
    let got = ids(&o);
    for id in [
        "host-pid-ns",
        "joined-net-ns",
        "cap-sys-admin",
        "no-seccomp",
        "no-new-privs-off",
        "runtime-socket",
        "sysfs-writable",
        "proc-sys-writable",
        "proc-unmasked",
        "devices-all-allowed",
        "no-memory-limit",
        "no-pids-limit",
        "runs-as-host-root",
    ] {
        assert!(got.contains(&id.to_string()), "{id}: {got:?}");
    }
}

#[test]
fn device_cgroup_verdicts_become_findings() {
    let list = "c 1:1 rw\nb 8:* rw\nc 1:11 rw\nc *:* m\nb *:* m\n";
    let mut o = tight();
    o.device_access = crate::devices::check("cgroup v1 devices.list".into(), |k, ma, mi, a| {
        Some(crate::devices::v1_allows(list, k, ma, mi, a))
    });
    let f = findings(&o);
    let titles: Vec<String> = f
        .iter()
        .filter(|f| f.id == "device-allowed")
        .map(|f| f.title.clone())
        .collect();
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(
        titles[0].contains("cgroup v1 devices.list allows /dev/mem (c 1:1 rw)"),
        "{titles:?}"
    );
    let mem = f.iter().find(|f| f.title.contains("/dev/mem")).unwrap();
    assert_eq!(mem.severity, Severity::High);
    assert_eq!(mem.breaks, Some(Pss::Baseline));
    let kmsg = f.iter().find(|f| f.title.contains("/dev/kmsg")).unwrap();
    assert_eq!(kmsg.breaks, None);
    assert_eq!(f.iter().filter(|f| f.id == "devices-mknod-any").count(), 2);
    // The usual list: nothing but the mknod wildcard (info).
    let strict = "c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\nc *:* m\nb *:* m\n";
    o.device_access = crate::devices::check("x".into(), |k, ma, mi, a| {
        Some(crate::devices::v1_allows(strict, k, ma, mi, a))
    });
    let got = ids(&o);
    assert!(!got.contains(&"device-allowed".to_string()), "{got:?}");
    o.devices_unknown = Some("program 3: unsupported opcode 0x85".into());
    assert!(ids(&o).contains(&"devices-unknown".to_string()));
}

#[test]
fn mountinfo_odd_escapes_do_not_panic() {
    let m = parse_mountinfo(
        "36 35 0:40 /\\777\\ /a\\040b\\012c\\7 rw,relatime shared:1 - tmpfs none rw\n\
         37 35 0:41 / /x rw - \n38 35 0:42 / /y\\ ro - ext4 /dev/sda ro\n",
    );
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].root, "/\\777\\");
    assert_eq!(m[0].mount_point, "/a b\nc\\7");
    assert!(m[0].writable);
    assert_eq!(m[1].mount_point, "/y\\");
    assert!(!m[1].writable);
}

#[test]
fn net_devices_in_a_config_are_a_finding() {
    let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "network"}],
            "netDevices": {"eth9": {"name": "net0"}}}
    }))
    .unwrap();
    let o = config::observe(&spec, std::path::Path::new("/b")).unwrap();
    assert_eq!(o.net_devices, vec!["eth9".to_string()]);
    let f: Vec<_> = findings(&o)
        .into_iter()
        .filter(|f| f.id == "net-devices")
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Medium);
    assert!(f[0].title.contains("eth9"), "{}", f[0].title);
    // Nothing moved, no finding.
    assert!(!ids(&tight()).contains(&"net-devices".to_string()));
}
