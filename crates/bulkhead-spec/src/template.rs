//! The starter `config.json` written by `bulkhead spec`.
//!
//! Its shape follows what `runc spec` prints, because users and test suites
//! edit that file by path (`.process.args`, `.root.path`, …). The
//! differences are deliberate: the hardened default profile
//! ([`crate::profile`]: a seccomp allow-list, the minimal capability set,
//! podman-or-broader masked and read-only paths, no_new_privs), no
//! `inheritable` and no `ambient` capability sets (CVE-2022-29162), and the
//! runtime-spec version is the one bulkhead targets.

use serde_json::{Value, json};

use crate::profile;

/// runtime-spec version stamped into generated configs.
pub const OCI_VERSION: &str = "1.2.1";

/// Build the default config.
///
/// `rootless` is `Some((uid, gid))` — the caller's effective ids — to get
/// the variant `runc spec --rootless` produces: a user namespace mapping
/// container root to that single host id, no network namespace (an
/// unprivileged user cannot give it connectivity), `/sys` bind-mounted from
/// the host (sysfs cannot be mounted without owning the network namespace),
/// no `uid=`/`gid=` mount options (the ids would not be mapped), and no
/// `linux.resources` (cgroups are usually not delegated).
pub fn default_spec(rootless: Option<(u32, u32)>) -> Value {
    let namespaces: Vec<Value> = ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        .iter()
        .map(|t| json!({ "type": t }))
        .collect();
    let caps = profile::default_capabilities();
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": true,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps
            },
            "rlimits": [
                { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }
            ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "bulkhead",
        "mounts": [
            mount("/proc", "proc", "proc", &[]),
            mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            ),
            mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
            mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
            mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
        ],
        "linux": {
            "resources": {
                "devices": [ { "allow": false, "access": "rwm" } ]
            },
            "namespaces": namespaces,
            "maskedPaths": profile::default_masked_paths(),
            "readonlyPaths": profile::default_readonly_paths(),
            "seccomp": profile::default_seccomp()
        }
    });
    if let Some((uid, gid)) = rootless {
        make_rootless(&mut spec, uid, gid);
    }
    spec
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    let mut m = json!({ "destination": destination, "type": kind, "source": source });
    if !options.is_empty() {
        m["options"] = json!(options);
    }
    m
}

/// Rewrite the rootful template in place for an unprivileged caller.
fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = mount(
                    "/sys",
                    "none",
                    "/sys",
                    &["rbind", "nosuid", "noexec", "nodev", "ro"],
                );
            } else if let Some(opts) = m.get_mut("options").and_then(Value::as_array_mut) {
                opts.retain(|o| {
                    o.as_str()
                        .is_none_or(|s| !s.starts_with("uid=") && !s.starts_with("gid="))
                });
            }
        }
    }

    let linux = &mut spec["linux"];
    if let Some(obj) = linux.as_object_mut() {
        obj.remove("resources");
    }
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({ "type": "user" }));
    }
    linux["uidMappings"] = json!([{ "containerID": 0, "hostID": uid, "size": 1 }]);
    linux["gidMappings"] = json!([{ "containerID": 0, "hostID": gid, "size": 1 }]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxNamespaceType, Spec};

    fn ns_types(v: &Value) -> Vec<&str> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect()
    }

    fn mount_at<'a>(v: &'a Value, dest: &str) -> &'a Value {
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}"))
    }

    #[test]
    fn rootful_deserialises_into_oci_spec() {
        let v = default_spec(None);
        let spec: Spec = serde_json::from_value(v).unwrap();
        assert_eq!(spec.version(), "1.2.1");
        assert_eq!(spec.hostname().as_deref(), Some("bulkhead"));
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.args().as_ref().unwrap(), &["sh".to_string()]);
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 8);
        assert_eq!(caps.effective(), caps.bounding());
        assert_eq!(caps.permitted(), caps.bounding());
        assert!(caps.inheritable().is_none());
        assert!(caps.ambient().is_none());
        let root = spec.root().as_ref().unwrap();
        assert_eq!(root.path().to_str(), Some("rootfs"));
        assert_eq!(root.readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Cgroup));
        assert!(!ns.contains(&LinuxNamespaceType::User));
        assert!(linux.uid_mappings().is_none());
        assert_eq!(linux.masked_paths().as_ref().unwrap().len(), 13);
        let seccomp = linux.seccomp().as_ref().expect("linux.seccomp");
        assert!(seccomp.syscalls().as_ref().is_some_and(|s| !s.is_empty()));
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
        assert_eq!(spec.mounts().as_ref().unwrap().len(), 7);
    }

    #[test]
    fn rootful_shape_matches_runc_layout() {
        let v = default_spec(None);
        assert_eq!(v["process"]["terminal"], true);
        assert_eq!(v["process"]["user"], json!({"uid": 0, "gid": 0}));
        assert_eq!(v["process"]["cwd"], "/");
        assert_eq!(v["process"]["env"][1], "TERM=xterm");
        assert_eq!(
            v["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
        );
        assert_eq!(
            v["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
        assert_eq!(
            ns_types(&v),
            ["pid", "network", "ipc", "uts", "mount", "cgroup"]
        );
        assert!(mount_at(&v, "/proc").get("options").is_none());
        assert_eq!(mount_at(&v, "/sys")["type"], "sysfs");
        assert_eq!(mount_at(&v, "/dev/shm")["source"], "shm");
        assert_eq!(mount_at(&v, "/dev/pts")["options"][5], "gid=5");
        for p in ["/proc/kcore", "/sys/firmware", "/sys/fs/selinux"] {
            assert!(
                v["linux"]["maskedPaths"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(p))
            );
        }
    }

    #[test]
    fn rootless_rewrites_like_runc() {
        let v = default_spec(Some((1000, 1001)));
        assert_eq!(
            ns_types(&v),
            ["pid", "ipc", "uts", "mount", "cgroup", "user"]
        );
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{"containerID": 0, "hostID": 1001, "size": 1}])
        );
        assert!(v["linux"].get("resources").is_none());
        let sys = mount_at(&v, "/sys");
        assert_eq!(sys["type"], "none");
        assert_eq!(sys["source"], "/sys");
        assert_eq!(sys["options"][0], "rbind");
        let pts = mount_at(&v, "/dev/pts")["options"].as_array().unwrap();
        assert!(!pts.iter().any(|o| o.as_str().unwrap().starts_with("gid=")));
        assert_eq!(pts.len(), 5);
        // runc keeps the cgroup mount (read-only, from the cgroup namespace).
        assert_eq!(mount_at(&v, "/sys/fs/cgroup")["type"], "cgroup");
        assert_eq!(v["mounts"].as_array().unwrap().len(), 7);

        let spec: Spec = serde_json::from_value(v).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 1000);
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 1001);
        assert!(linux.resources().is_none());
    }
}
