//! The JSON document printed by `bulkhead features` (runtime-spec
//! `features.md`, schema of version 1.2).
//!
//! This module only assembles the document: whether the host or the build
//! supports seccomp, AppArmor, … is decided by the caller and passed in as a
//! [`Support`]. containerd's shim (`-info`) is the known consumer.

use serde_json::{Map, Value, json};

/// Lowest runtime-spec version whose configs bulkhead accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";
/// Highest runtime-spec version whose configs bulkhead understands.
pub const OCI_VERSION_MAX: &str = "1.2.1";

/// Hook names recognised in `config.json`, in lifecycle order.
pub const HOOKS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Namespace types recognised in `linux.namespaces`.
pub const NAMESPACES: [&str; 8] = [
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// Every capability name the kernel defines up to CAP_CHECKPOINT_RESTORE (40),
/// in bit order.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Seccomp argument comparison operators recognised in `linux.seccomp`.
pub const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Seccomp filter flags defined by runtime-spec 1.2 (`linux.seccomp.flags`).
pub const SECCOMP_KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];

/// What this build, on this host, can do. Filled in by the caller;
/// `Default` claims nothing.
///
/// For the list fields an empty list means "unknown" and the key is left
/// out, since the schema reads an absent list as unknown and an empty one as
/// "none at all".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Support {
    pub seccomp: bool,
    /// `SCMP_ACT_*` names the seccomp implementation accepts.
    pub seccomp_actions: Vec<String>,
    /// `SCMP_ARCH_*` names the seccomp implementation accepts.
    pub seccomp_archs: Vec<String>,
    /// Subset of [`SECCOMP_KNOWN_FLAGS`] the running kernel accepts.
    pub seccomp_supported_flags: Vec<String>,
    pub apparmor: bool,
    pub selinux: bool,
    pub cgroup_v1: bool,
    pub cgroup_v2: bool,
    /// The systemd cgroup driver (`--systemd-cgroup`).
    pub systemd: bool,
    /// The systemd driver against a user's systemd (rootless).
    pub systemd_user: bool,
    pub idmap: bool,
    /// The `io.bulkhead.landlock` annotation is supported (the kernel has
    /// Landlock).
    pub landlock: bool,
    /// The kernel's Landlock ABI, when known.
    pub landlock_abi: Option<u32>,
}

/// Mount options recognised in `mounts[].options` (filesystem-specific data
/// options such as `mode=` are not listed, per the schema).
///
/// Stand-in until `crate::mountopt` exposes its own table.
fn mount_options() -> Vec<&'static str> {
    vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "idmap",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "ratime",
        "rbind",
        "rdev",
        "rdiratime",
        "relatime",
        "remount",
        "rexec",
        "ridmap",
        "rnoatime",
        "rnodev",
        "rnodiratime",
        "rnoexec",
        "rnosuid",
        "rnosymfollow",
        "ro",
        "rprivate",
        "rrelatime",
        "rro",
        "rrw",
        "rshared",
        "rslave",
        "rstrictatime",
        "rsuid",
        "rsymfollow",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
    ]
}

/// Build the features document for `support`.
pub fn features(support: &Support) -> Value {
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": HOOKS,
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": &CAPABILITIES[..],
            "cgroup": {
                "v1": support.cgroup_v1,
                "v2": support.cgroup_v2,
                "systemd": support.systemd,
                "systemdUser": support.systemd_user,
                "rdma": false
            },
            "seccomp": seccomp(support),
            "apparmor": { "enabled": support.apparmor },
            "selinux": { "enabled": support.selinux },
            "intelRdt": { "enabled": false },
            // linux.netDevices (runtime-spec 1.2), as runc 1.3 lists it.
            "netDevices": { "enabled": true },
            "mountExtensions": { "idmap": { "enabled": support.idmap } }
        },
        "annotations": {
            "io.bulkhead.version": env!("CARGO_PKG_VERSION"),
            "io.bulkhead.landlock": landlock(support),
            // Seccomp profile learning (docs/audit.md): the value names a file.
            "io.bulkhead.seccomp.learn": "supported"
        }
    })
}

/// The `io.bulkhead.landlock` annotation's value: `abi=N` when the kernel
/// has Landlock, `unavailable` otherwise (the annotation is then accepted,
/// and only a strict policy fails).
fn landlock(support: &Support) -> String {
    match (support.landlock, support.landlock_abi) {
        (true, Some(abi)) => format!("abi={abi}"),
        (true, None) => "available".into(),
        (false, _) => "unavailable".into(),
    }
}

fn seccomp(support: &Support) -> Value {
    let mut m = Map::new();
    m.insert("enabled".into(), support.seccomp.into());
    if !support.seccomp {
        return Value::Object(m);
    }
    let mut list = |key: &str, items: &[String]| {
        if !items.is_empty() {
            m.insert(key.into(), json!(items));
        }
    };
    list("actions", &support.seccomp_actions);
    list("archs", &support.seccomp_archs);
    list("supportedFlags", &support.seccomp_supported_flags);
    m.insert("operators".into(), json!(SECCOMP_OPERATORS));
    m.insert("knownFlags".into(), json!(SECCOMP_KNOWN_FLAGS));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Features;

    fn full() -> Support {
        Support {
            seccomp: true,
            seccomp_actions: vec!["SCMP_ACT_ALLOW".into(), "SCMP_ACT_ERRNO".into()],
            seccomp_archs: vec!["SCMP_ARCH_X86_64".into()],
            seccomp_supported_flags: vec!["SECCOMP_FILTER_FLAG_TSYNC".into()],
            apparmor: true,
            selinux: false,
            cgroup_v1: true,
            cgroup_v2: true,
            systemd: true,
            systemd_user: true,
            idmap: true,
            landlock: true,
            landlock_abi: Some(7),
        }
    }

    #[test]
    fn top_level_keys_and_versions() {
        let v = features(&Support::default());
        let obj = v.as_object().unwrap();
        for k in [
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux",
            "annotations",
        ] {
            assert!(obj.contains_key(k), "missing {k}");
        }
        assert_eq!(v["ociVersionMin"], "1.0.0");
        assert_eq!(v["ociVersionMax"], "1.2.1");
        assert_eq!(
            v["hooks"],
            json!([
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ])
        );
        assert_eq!(
            v["annotations"]["io.bulkhead.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(v["annotations"]["io.bulkhead.landlock"], "unavailable");
    }

    #[test]
    fn lists_are_complete_and_unique() {
        let opts = mount_options();
        assert_eq!(opts.len(), 60);
        let mut sorted = opts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, opts, "mount options must be sorted and unique");
        assert!(opts.contains(&"rro") && opts.contains(&"idmap") && opts.contains(&"tmpcopyup"));
        assert_eq!(CAPABILITIES[0], "CAP_CHOWN");
        assert_eq!(CAPABILITIES[21], "CAP_SYS_ADMIN");
        assert_eq!(CAPABILITIES[40], "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn seccomp_disabled_is_only_enabled_false() {
        let v = features(&Support::default());
        assert_eq!(v["linux"]["seccomp"], json!({ "enabled": false }));
        assert_eq!(v["linux"]["apparmor"], json!({ "enabled": false }));
        assert_eq!(
            v["linux"]["mountExtensions"],
            json!({ "idmap": { "enabled": false } })
        );
        // Actions are ignored while seccomp is off.
        let v = features(&Support {
            seccomp_actions: vec!["SCMP_ACT_ALLOW".into()],
            ..Support::default()
        });
        assert_eq!(v["linux"]["seccomp"], json!({ "enabled": false }));
    }

    #[test]
    fn seccomp_enabled_lists_everything() {
        let v = features(&full());
        let s = &v["linux"]["seccomp"];
        assert_eq!(s["enabled"], true);
        assert_eq!(s["actions"], json!(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO"]));
        assert_eq!(s["archs"], json!(["SCMP_ARCH_X86_64"]));
        assert_eq!(s["operators"].as_array().unwrap().len(), 7);
        assert_eq!(s["knownFlags"].as_array().unwrap().len(), 4);
        assert_eq!(s["supportedFlags"], json!(["SECCOMP_FILTER_FLAG_TSYNC"]));
        assert_eq!(v["linux"]["cgroup"]["systemdUser"], true);
        assert_eq!(v["annotations"]["io.bulkhead.landlock"], "abi=7");

        // Unknown lists are omitted rather than claimed empty.
        let v = features(&Support {
            seccomp: true,
            ..Support::default()
        });
        let s = v["linux"]["seccomp"].as_object().unwrap();
        assert!(!s.contains_key("actions") && !s.contains_key("archs"));
        assert!(s.contains_key("operators"));
    }

    #[test]
    fn deserialises_into_oci_spec_features() {
        for support in [Support::default(), full()] {
            let f: Features = serde_json::from_value(features(&support)).unwrap();
            assert_eq!(f.oci_version_max(), "1.2.1");
            assert_eq!(f.hooks().as_ref().unwrap().len(), 6);
            let linux = f.linux().as_ref().unwrap();
            assert_eq!(linux.namespaces().as_ref().unwrap().len(), 8);
            assert_eq!(linux.capabilities().as_ref().unwrap().len(), 41);
            assert_eq!(
                linux.cgroup().as_ref().unwrap().v2(),
                &Some(support.cgroup_v2)
            );
            assert_eq!(
                linux.seccomp().as_ref().unwrap().enabled(),
                &Some(support.seccomp)
            );
            assert_eq!(linux.net_devices().as_ref().unwrap().enabled(), &Some(true));
        }
    }
}
