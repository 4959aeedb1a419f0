//! `bulkhead sandbox -- CMD`: run a command hardened by default, on a root
//! built on the fly from the host's own /usr, /etc and library directories,
//! bound read-only (no image, no download).
//!
//! The sandbox is an ordinary OCI container made from a generated config,
//! so it goes through exactly the same plan, lifecycle and setup stages. It
//! gets the hardened default seccomp profile and paths of
//! [`bulkhead_spec::profile`], no capabilities at all, and its own user
//! namespace.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{CreateOptions, Store};
use bulkhead_spec::profile;
use serde_json::{Value, json};

/// Host directories that make up the embedded default root.
const HOST_DIRS: [&str; 9] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt",
];

/// Container root maps to an unprivileged host range: 65536 ids per sandbox
/// from 2^30 on, far above any real user.
fn host_base(seed: u32) -> u32 {
    (1 << 30) + (seed % 16_384) * 65_536
}

pub fn config(rootfs: &Path, command: &[String], seed: u32) -> Result<Value> {
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "noexec", "mode=755", "size=16384k"]}),
    ];
    for d in HOST_DIRS {
        let host = Path::new("/").join(d);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            // Merged-/usr hosts: keep the same symlink (e.g. bin -> usr/bin).
            let target = std::fs::read_link(&host)?;
            let link = rootfs.join(d);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, &link)?;
            }
        } else if meta.is_dir() {
            mounts.push(json!({"destination": host, "type": "bind", "source": host,
                "options": ["rbind", "ro", "nosuid", "nodev"]}));
        }
    }
    let base = host_base(seed);
    let map = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
    let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
    let no_caps: Vec<String> = Vec::new();
    // The default profile's masks, plus all of /sys/kernel (security, debug,
    // tracing and mm interfaces no sandboxed command needs).
    let mut masked = profile::default_masked_paths();
    masked.push("/sys/kernel".into());
    Ok(json!({
        "ociVersion": bulkhead_spec::template::OCI_VERSION,
        "root": {"path": rootfs, "readonly": true},
        "hostname": "sandbox",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": command,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    format!("TERM={term}"), "HOME=/tmp"],
            "cwd": "/tmp",
            "capabilities": {"bounding": no_caps, "effective": no_caps, "inheritable": no_caps,
                             "permitted": no_caps, "ambient": no_caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                        {"type": "RLIMIT_NPROC", "soft": 4096, "hard": 4096}],
            "noNewPrivileges": true
        },
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "user"}, {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "uidMappings": map, "gidMappings": map,
            "resources": {"pids": {"limit": 1024}, "devices": [{"allow": false, "access": "rwm"}]},
            "maskedPaths": masked,
            "readonlyPaths": profile::default_readonly_paths(),
            "seccomp": profile::default_seccomp()
        }
    }))
}

pub fn run(store: &Store, command: &[String]) -> Result<i32> {
    if command.is_empty() {
        bail!("sandbox: give a command to run, e.g. bulkhead sandbox -- sh -c 'id'");
    }
    if !rustix::process::geteuid().is_root() {
        bail!("sandbox: must be run as root for now (rootless sandboxes are not supported yet)");
    }
    let seed = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = format!("sandbox-{seed}-{nanos:x}");
    // The bundle lives outside the state root: that one is 0700, and the
    // container's root (an unprivileged host id) must be able to reach its
    // root directory. A fresh directory in the temp dir, made with
    // create_dir (never following an existing path), searchable but not
    // listable by others.
    let bundle: PathBuf = std::env::temp_dir().join(format!("bulkhead-{id}"));
    std::fs::DirBuilder::new()
        .mode(0o711)
        .create(&bundle)
        .with_context(|| format!("create sandbox bundle {}", bundle.display()))?;
    let rootfs = bundle.join("rootfs");
    if let Err(e) = std::fs::create_dir(&rootfs) {
        let _ = std::fs::remove_dir_all(&bundle);
        return Err(e).with_context(|| format!("create sandbox root {}", rootfs.display()));
    }
    // Container root is an unprivileged host id: it must own the (empty)
    // root to create its mountpoints there.
    let base = host_base(seed);
    let result = (|| {
        std::os::unix::fs::chown(&rootfs, Some(base), Some(base))
            .with_context(|| format!("chown {}", rootfs.display()))?;
        let cfg = config(&rootfs, command, seed)?;
        std::fs::write(bundle.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
        let opts = CreateOptions {
            bundle: bundle.clone(),
            ..Default::default()
        };
        super::run(store, &id, &opts, false, false)
    })();
    let _ = std::fs::remove_dir_all(&bundle);
    result
}
