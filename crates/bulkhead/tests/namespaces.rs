//! Namespaces: creation, joining by path, hostname, user namespace
//! mappings, cgroup and time namespaces.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Bundle, is_runc, ns_inode};
use serde_json::{Value, json};

fn ns(r: &Value, name: &str) -> u64 {
    r["ns"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("probe reported no {name} ns: {}", r["ns"]))
}

fn host_ns(name: &str) -> u64 {
    ns_inode("self", name).unwrap_or_else(|| panic!("host has no {name} ns"))
}

/// Parses a uid_map/gid_map into (inside, outside, count) triples.
fn id_map(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 3).then(|| (v[0], v[1], v[2]))
        })
        .collect()
}

#[test]
fn default_namespaces_are_new() {
    require_root!();
    let r = Bundle::new().run_probe();
    for (probe_name, host_name) in [
        ("pid", "pid"),
        ("net", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("mnt", "mnt"),
    ] {
        assert_ne!(
            ns(&r, probe_name),
            host_ns(host_name),
            "{probe_name} ns not new"
        );
    }
    // Not requested: shared with the host.
    assert_eq!(ns(&r, "user"), host_ns("user"), "user ns");
    assert_eq!(ns(&r, "cgroup"), host_ns("cgroup"), "cgroup ns");
    assert_eq!(r["pid"], 1);
}

#[test]
fn every_namespace_type_is_new() {
    require_root!();
    let r = Bundle::new()
        .namespace("cgroup", None)
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .run_probe();
    for name in ["pid", "net", "ipc", "uts", "mnt", "cgroup", "user"] {
        assert_ne!(ns(&r, name), host_ns(name), "{name} ns not new");
    }
}

#[test]
fn omitted_namespaces_are_shared() {
    require_root!();
    let r = Bundle::new().namespaces(&["mount"]).json_patch(|c| {
        // A hostname needs a private UTS namespace.
        c.as_object_mut().unwrap().remove("hostname");
    });
    let r = r.run_probe();
    for name in ["pid", "net", "ipc", "uts"] {
        assert_eq!(
            ns(&r, name),
            host_ns(name),
            "{name} ns should be the host's"
        );
    }
    assert_ne!(ns(&r, "mnt"), host_ns("mnt"));
    assert_ne!(r["pid"], 1, "no pid ns: the probe cannot be pid 1");
}

#[test]
fn pid_namespace_sees_only_itself() {
    require_root!();
    let b = Bundle::new().sh("ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '");
    let out = b.run();
    out.ok();
    // The shell (1) and its pipeline children; no host processes.
    let pids: Vec<u32> = out
        .stdout
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.first(), Some(&1), "{pids:?}");
    assert!(pids.len() < 10, "too many processes visible: {pids:?}");
}

#[test]
fn hostname_is_set() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["hostname"], "bh-test");
    let r = Bundle::new().hostname("another-name").run_probe();
    assert_eq!(r["hostname"], "another-name");
}

#[test]
fn hostname_does_not_leak_to_host() {
    require_root!();
    let before = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    Bundle::new().hostname("leak-check").run_probe();
    let after = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    assert_eq!(before, after);
}

#[test]
fn domainname_is_set() {
    require_root!();
    skip_if!(is_runc(), "runc 1.1.5 ignores the domainname field");
    let r = Bundle::new()
        .json_patch(|c| c["domainname"] = json!("example.test"))
        .run_probe();
    assert_eq!(r["domainname"], "example.test");
}

#[test]
fn hostname_without_uts_namespace_fails() {
    require_root!();
    let b = Bundle::new().without_namespace("uts").hostname("nope");
    b.create().fails();
}

#[test]
fn duplicate_namespace_type_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "ipc"}))
    });
    b.create().fails();
}

#[test]
fn unknown_namespace_type_fails() {
    require_root!();
    let b = Bundle::new().namespace("bogus", None);
    b.create().fails();
}

/// A named network namespace made with `ip netns add`, removed on drop.
struct NetNs {
    name: String,
}

impl NetNs {
    fn new() -> Option<NetNs> {
        let name = format!("bht-{}-{:x}", std::process::id(), rand_suffix());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .ok()?;
        st.success().then_some(NetNs { name })
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.name)
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn join_network_namespace_by_path() {
    require_root!();
    let Some(netns) = NetNs::new() else {
        eprintln!("skipped: `ip netns add` is not available");
        return;
    };
    let want = std::fs::metadata(netns.path())
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("netns file");
    let r = Bundle::new()
        .namespace("network", Some(&netns.path()))
        .run_probe();
    assert_eq!(ns(&r, "net"), want);
    assert_ne!(ns(&r, "net"), host_ns("net"));
}

#[test]
fn join_namespaces_of_another_container() {
    require_root!();
    // Like a pod: a sandbox container, and a second one joining its
    // network, ipc and uts namespaces through /proc/<pid>/ns/*.
    let sandbox = Bundle::new().probe(&["sleep", "600"]).hostname("sandbox");
    sandbox.create().ok();
    sandbox.start().ok();
    let pid = sandbox.state()["pid"].as_i64().unwrap();
    let p = |n: &str| format!("/proc/{pid}/ns/{n}");
    let r = sandbox
        .sibling()
        .namespace("network", Some(&p("net")))
        .namespace("ipc", Some(&p("ipc")))
        .namespace("uts", Some(&p("uts")))
        .json_patch(|c| {
            c.as_object_mut().unwrap().remove("hostname");
        })
        .run_probe();
    let pid_s = pid.to_string();
    for n in ["net", "ipc", "uts"] {
        assert_eq!(Some(ns(&r, n)), ns_inode(&pid_s, n), "{n} ns not joined");
    }
    assert_ne!(Some(ns(&r, "pid")), ns_inode(&pid_s, "pid"));
    assert_eq!(r["hostname"], "sandbox");
}

#[test]
fn join_pid_namespace_of_another_container() {
    require_root!();
    let sandbox = Bundle::new().probe(&["sleep", "600"]);
    sandbox.create().ok();
    sandbox.start().ok();
    let pid = sandbox.state()["pid"].as_i64().unwrap();
    let r = sandbox
        .sibling()
        .namespace("pid", Some(&format!("/proc/{pid}/ns/pid")))
        .run_probe();
    assert_eq!(Some(ns(&r, "pid")), ns_inode(&pid.to_string(), "pid"));
    assert_ne!(r["pid"], 1, "joined pid ns already has a pid 1");
}

#[test]
fn join_namespace_of_wrong_type_fails() {
    require_root!();
    let b = Bundle::new().namespace("network", Some("/proc/self/ns/ipc"));
    b.create().fails();
}

#[test]
fn join_missing_namespace_path_fails() {
    require_root!();
    let b = Bundle::new().namespace("network", Some("/proc/self/ns/does-not-exist"));
    b.create().fails();
}

#[test]
fn user_namespace_single_mapping() {
    require_root!();
    let r = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 200000, 65536)])
        .run_probe();
    assert_eq!(
        id_map(r["uid_map"].as_str().unwrap()),
        vec![(0, 100000, 65536)]
    );
    assert_eq!(
        id_map(r["gid_map"].as_str().unwrap()),
        vec![(0, 200000, 65536)]
    );
    assert_eq!(r["uid"], 0);
    assert_eq!(r["gid"], 0);
    assert_ne!(ns(&r, "user"), host_ns("user"));
    // Host-root-owned rootfs files show up as the overflow id.
    let st = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 200000, 65536)])
        .probe_result(&["stat", "/etc/passwd"]);
    assert_eq!(st["uid"], 65534, "{st}");
}

#[test]
fn user_namespace_multiple_ranges() {
    require_root!();
    let uids = [(0, 100000, 1000), (1000, 300000, 1), (2000, 400000, 500)];
    let gids = [(0, 100000, 1000), (1000, 300000, 1), (2000, 400000, 10)];
    let r = Bundle::new().userns(&uids, &gids).run_probe();
    let mut got_u = id_map(r["uid_map"].as_str().unwrap());
    let mut got_g = id_map(r["gid_map"].as_str().unwrap());
    got_u.sort_unstable();
    got_g.sort_unstable();
    let widen = |v: &[(u32, u32, u32)]| -> Vec<(u64, u64, u64)> {
        v.iter()
            .map(|&(a, b, c)| (a.into(), b.into(), c.into()))
            .collect()
    };
    assert_eq!(got_u, widen(&uids));
    assert_eq!(got_g, widen(&gids));
}

#[test]
fn user_namespace_with_non_root_user() {
    require_root!();
    let r = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .user(1000, 1000, &[2000])
        .run_probe();
    assert_eq!(r["uid"], 1000);
    assert_eq!(r["gid"], 1000);
    assert_eq!(r["groups"], json!([2000]));
}

#[test]
fn user_namespace_container_is_visible_as_mapped_uid_on_host() {
    require_root!();
    let b = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(uids, vec!["100000"; 4], "{uid_line}");
}

#[test]
fn user_namespace_write_to_readonly_rootfs_still_fails() {
    require_root!();
    let r = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .probe_result(&["write", "/etc/new-file"]);
    assert_eq!(r["ok"], false);
    assert_eq!(r["errno"], libc::EROFS, "{r}");
}

#[test]
fn user_namespace_missing_mappings_fails() {
    require_root!();
    let b = Bundle::new().namespace("user", None);
    let out = b.create();
    if out.success() {
        // Some runtimes could map nothing; then the id must be the overflow
        // one. runc refuses, which is what we expect here.
        panic!("user namespace without mappings accepted: {out}");
    }
}

#[test]
fn cgroup_namespace_hides_host_paths() {
    require_root!();
    let r = Bundle::new().namespace("cgroup", None).run_probe();
    assert_ne!(ns(&r, "cgroup"), host_ns("cgroup"));
    let lines: Vec<String> = serde_json::from_value(r["cgroup"].clone()).unwrap();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.ends_with(":/"), "cgroup path not the ns root: {l}");
    }
}

#[test]
fn without_cgroup_namespace_paths_name_the_container() {
    require_root!();
    let b = Bundle::new();
    let r = b.run_probe();
    let lines: Vec<String> = serde_json::from_value(r["cgroup"].clone()).unwrap();
    assert!(
        lines.iter().any(|l| l.contains(&b.id)),
        "default cgroup path should contain the id: {lines:?}"
    );
}

#[test]
fn time_namespace_offsets() {
    require_root!();
    skip_if!(is_runc(), "runc 1.1.5 has no time namespace support");
    let offset = 10 * 86400;
    let host_uptime = uptime();
    let b = Bundle::new().namespace("time", None).json_patch(|c| {
        c["linux"]["timeOffsets"] = json!({
            "boottime": {"secs": offset, "nanosecs": 0},
            "monotonic": {"secs": offset, "nanosecs": 0}
        })
    });
    let b = b.sh("cat /proc/uptime");
    let out = b.run();
    out.ok();
    let inside: f64 = out
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        inside >= host_uptime + offset as f64 - 5.0,
        "uptime {inside} does not include the {offset}s offset (host {host_uptime})"
    );
    let r = Bundle::new().namespace("time", None).run_probe();
    assert_ne!(ns(&r, "time"), host_ns("time"));
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn ipc_namespace_isolates_sysv_shm() {
    require_root!();
    // A private ipc ns starts with no SysV shared memory segments.
    let b = Bundle::new().sh("cat /proc/sysvipc/shm | wc -l");
    let out = b.run();
    out.ok();
    assert_eq!(out.stdout.trim(), "1", "only the header line: {out}");
}

#[test]
fn network_namespace_has_only_loopback() {
    require_root!();
    let b = Bundle::new().sh("ls /sys/class/net");
    let out = b.run();
    out.ok();
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        vec!["lo"]
    );
}

#[test]
fn created_container_namespaces_exist_before_start() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    let pid = b.state()["pid"].as_i64().unwrap().to_string();
    // The init of a created container is already inside its namespaces.
    for n in ["net", "ipc", "uts", "mnt"] {
        assert_ne!(ns_inode(&pid, n), ns_inode("self", n), "{n}");
    }
    assert_ne!(
        ns_inode(&pid, "pid_for_children").or(ns_inode(&pid, "pid")),
        ns_inode("self", "pid")
    );
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn user_namespace_size_one_mapping() {
    require_root!();
    // gid 5 (tty) is not mapped, so devpts cannot take gid=5 (the kernel
    // refuses the mount); drop the option as rootless configs do.
    let r = Bundle::new()
        .userns(&[(0, 100000, 1)], &[(0, 100000, 1)])
        .json_patch(|c| {
            for m in c["mounts"].as_array_mut().unwrap() {
                if m["type"] == "devpts" {
                    m["options"]
                        .as_array_mut()
                        .unwrap()
                        .retain(|o| o != "gid=5");
                }
            }
        })
        .run_probe();
    assert_eq!(id_map(r["uid_map"].as_str().unwrap()), vec![(0, 100000, 1)]);
    assert_eq!(r["uid"], 0);
}

#[test]
fn user_namespace_tmpfs_and_bind_mounts() {
    require_root!();
    let host = common::open_tempdir();
    std::fs::write(host.path().join("data"), "shared\n").unwrap();
    std::fs::set_permissions(
        host.path().join("data"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let src = host.path().to_str().unwrap().to_string();
    let b = || {
        Bundle::new()
            .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
            .mount("/mnt/a", "tmpfs", "tmpfs", &["size=1m"])
            .mount("/mnt/c", "bind", &src, &["rbind", "ro"])
            .watch_mounts(&src)
    };
    let w = b().probe_result(&["write", "/mnt/a/x"]);
    assert_eq!(w["ok"], true, "container root cannot write its tmpfs: {w}");
    let st = b().probe_result(&["stat", "/mnt/a"]);
    assert_eq!(
        st["uid"], 0,
        "tmpfs not owned by the container's root: {st}"
    );
    let r = b().probe_result(&["read", "/mnt/c/data"]);
    assert_eq!(r["data"], "shared\n", "{r}");
}

#[test]
fn user_namespace_with_terminal() {
    require_root!();
    use common::console::{ConsoleSocket, PtyReader};
    let b = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .terminal(true)
        .sh("echo TTY=$(tty) OWNER=$(stat -c %u $(tty))");
    let sock = ConsoleSocket::new();
    b.create_with(&["--console-socket", sock.path().to_str().unwrap()])
        .ok();
    let master = sock.master();
    let mut reader = PtyReader::new(&master);
    b.start().ok();
    let text = reader.read_to_end(Duration::from_secs(15));
    assert!(text.contains("TTY=/dev/pts/"), "{text:?}");
    assert!(
        text.contains("OWNER=0"),
        "slave not owned by container root: {text:?}"
    );
}

#[test]
fn user_namespace_devices_are_bind_mounted() {
    require_root!();
    // mknod is impossible in a user namespace, yet the default devices must
    // be there and usable.
    let b = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .sh("echo x > /dev/null && head -c 3 /dev/zero | wc -c");
    let out = b.run();
    out.ok();
    assert_eq!(out.stdout.trim(), "3");
}

/// A private copy of the test rootfs: without a mount namespace the
/// container's mounts land on its rootfs in the host namespace, which must
/// not be the shared one other tests are using at the same time.
fn private_rootfs(b: &Bundle) -> std::path::PathBuf {
    let dst = b.dir().join("rootfs");
    let st = Command::new("cp")
        .args([
            "-a",
            common::rootfs().to_str().unwrap(),
            dst.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    dst
}

fn mounts_under(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|m| m.starts_with(path.to_str().unwrap()))
        })
        .map(str::to_owned)
        .collect()
}

/// No mount namespace in the config: the container shares the host's (the
/// runtime-spec's rule for omitted namespaces), is confined to its root by
/// chroot, `exec` lands in that root too, and delete leaves no mount behind.
#[test]
fn no_mount_namespace_shares_the_host_one_and_cleans_up() {
    require_root!();
    skip_if!(
        is_runc(),
        "runc refuses masked/readonly paths without a mount namespace, and leaves its mounts behind"
    );
    let b = Bundle::new()
        .args(&[common::PROBE, "sleep", "600"])
        .without_namespace("mount");
    let rootfs = private_rootfs(&b);
    let rootfs_s = rootfs.to_str().unwrap().to_string();
    let b = b.json_patch(|c| c["root"]["path"] = json!(rootfs_s));
    b.run_with(&["-d"]).ok();
    let pid = b.state()["pid"].as_i64().unwrap().to_string();
    assert_eq!(
        ns_inode(&pid, "mnt"),
        ns_inode("self", "mnt"),
        "not the host's mount namespace"
    );
    let ls = b.rt(&["exec", &b.id, "ls", "/"]);
    ls.ok();
    assert!(
        ls.stdout.contains("bin") && !ls.stdout.contains("work"),
        "{ls:?}"
    );
    assert!(
        !mounts_under(&rootfs).is_empty(),
        "container mounts should be on its rootfs"
    );
    b.delete_force().ok();
    assert_eq!(
        mounts_under(&rootfs),
        Vec::<String>::new(),
        "mounts left after delete"
    );
}

/// Joining a mount namespace by path: the container's init is in it.
#[test]
fn join_mount_namespace_by_path() {
    require_root!();
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .spawn()
        .unwrap();
    let hp = holder.id().to_string();
    common::wait_for("holder's mount namespace", Duration::from_secs(10), || {
        (ns_inode(&hp, "mnt") != ns_inode("self", "mnt")).then_some(())
    });
    let path = format!("/proc/{hp}/ns/mnt");
    let r = Bundle::new()
        .without_namespace("mount")
        .namespace("mount", Some(&path))
        .run_probe();
    let want = ns_inode(&hp, "mnt").unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        ns(&r, "mnt"),
        want,
        "init is not in the joined mount namespace"
    );
}
