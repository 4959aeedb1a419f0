//! Rootless operation, as an unprivileged user: bulkhead run directly by
//! that user (a user namespace with the user's own id, or its whole
//! /etc/subuid range through newuidmap), with and without a delegated
//! cgroup, and under rootless podman (the runtime exec'd as "root" inside
//! podman's user namespace).
//!
//! Each test makes its own user (`useradd -m`; Debian 12 gives it a
//! 65536-id range in /etc/subuid and /etc/subgid), its `/run/user/<uid>`
//! (0700, as logind would) and, when needed, a delegated cgroup in every
//! hierarchy (chown, as a non-systemd host does it). The [`TestUser`] guard
//! kills the user's processes, removes the cgroups, the runtime dir, the
//! home and the user on drop, also when the test fails, so tests can run in
//! parallel. Needs root (to make the user) and the uidmap package.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::user::{TestUser, TunOpen, host_ids, tool};
use common::{RtOutput, cmd_timeout, is_runc, run_cmd, runtime, wait_for};
use serde_json::{Value, json};

fn args(v: &mut Value, a: &[&str]) {
    v["process"]["args"] = json!(a);
}

/// `state ID` as the user: the init's host pid.
fn init_pid(u: &TestUser, id: &str) -> i32 {
    let st = u.rt(&["state", id]);
    st.ok();
    let v: Value = serde_json::from_str(&st.stdout).expect("state JSON");
    v["pid"].as_i64().expect("pid") as i32
}

/// The state root holds no container (nothing was left by a failure).
fn no_containers_left(u: &TestUser) {
    let root = u.runtime_dir().join("bulkhead");
    let left: Vec<String> = fs::read_dir(&root)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "state left behind in {}: {left:?}",
        root.display()
    );
}

#[test]
fn own_uid_is_container_root_with_spec_rootless_as_is() {
    let Some(u) = TestUser::new() else { return };
    // The config `spec --rootless` wrote, with only the program changed.
    let b = u.bundle("own", |v| args(v, &["sleep", "100"]));
    let bs = b.to_str().unwrap();
    u.rt(&["run", "-d", "--bundle", bs, "own"]).ok();
    // Default state root when rootless: $XDG_RUNTIME_DIR/bulkhead (runc's
    // is $XDG_RUNTIME_DIR/runc).
    let name = if is_runc() { "runc" } else { "bulkhead" };
    assert!(u.runtime_dir().join(name).join("own").is_dir());
    let pid = init_pid(&u, "own");
    // From the host: container root is the user itself, all four ids.
    assert_eq!(host_ids(pid, "Uid:"), vec![u.uid; 4]);
    assert_eq!(host_ids(pid, "Gid:"), vec![u.gid; 4]);
    // Without a cgroup, ps and kill --all find the processes through the pid
    // namespace (runc 1.1.5 fails here: "unable to get all container pids").
    // An exec'd process is the caller's child, not the init's: found too.
    if !is_runc() {
        u.rt(&["exec", "--detach", "own", "sleep", "50"]).ok();
        let ps = u.rt(&["ps", "--format", "json", "own"]);
        ps.ok();
        let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
        assert_eq!(pids.len(), 2, "{ps}");
        assert!(pids.contains(&pid), "{ps}");
        u.rt(&["kill", "--all", "own", "9"]).ok();
        let other = pids.iter().find(|p| **p != pid).copied().unwrap();
        wait_for("exec'd process killed", Duration::from_secs(10), || {
            fs::read_to_string(format!("/proc/{other}/stat"))
                .map_or(true, |s| s.contains(") Z"))
                .then_some(())
        });
    } else {
        u.rt(&["kill", "own", "9"]).ok();
    }
    wait_for("init gone", Duration::from_secs(10), || {
        (!Path::new(&format!("/proc/{pid}")).exists()
            || fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")))
        .then_some(())
    });
    u.rt(&["delete", "own"]).ok();
    no_containers_left(&u);
}

#[test]
fn own_uid_container_sees_a_single_mapping_read_only_cgroupfs_and_userxattr_overlay() {
    let Some(u) = TestUser::new() else { return };
    let ov = u.home.join("ov");
    for d in ["lower", "upper", "work"] {
        fs::create_dir_all(ov.join(d)).unwrap();
    }
    fs::write(ov.join("lower/f"), "from-lower\n").unwrap();
    let owner = format!("{}:{}", u.uid, u.gid);
    u.root_cmd("chown", &["-R", &owner, ov.to_str().unwrap()]);
    let data = format!(
        "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
        ov.display()
    );
    let b = u.bundle("view", |v| {
        // sysfs without a network namespace: the runtime falls back to a
        // bind of the host's /sys (which holds the host's cgroupfs).
        for m in v["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                            "options": ["nosuid", "noexec", "nodev", "ro"]});
            }
        }
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "overlay", "source": "overlay",
            "options": [data]
        }));
        args(
            v,
            &[
                "sh",
                "-c",
                "id -u; cat /proc/self/uid_map; \
                 grep ' /sys/fs/cgroup' /proc/self/mountinfo | grep -vc ' ro,'; \
                 touch /sys/fs/cgroup/pids/x 2>/dev/null && echo cgroupfs-writable; \
                 ls -l /dev/null; \
                 grep ' /mnt ' /proc/self/mountinfo | grep -o userxattr; \
                 cat /mnt/f; echo new > /mnt/g",
            ],
        )
    });
    let out = u.rt(&["run", "--bundle", b.to_str().unwrap(), "view"]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &u.uid.to_string(), "1"], "{out}");
    // Every cgroup mount the container sees is read-only (CVE-2023-25809).
    assert_eq!(lines[2], "0", "writable cgroup mounts: {out}");
    assert!(!out.stdout.contains("cgroupfs-writable"), "{out}");
    // /dev/null is the host's node, bound (mknod is not allowed).
    assert!(lines[3].starts_with("crw-rw-rw-"), "{out}");
    // Overlay inside the user namespace gets userxattr, and works.
    assert_eq!(lines[4..6], ["userxattr", "from-lower"], "{out}");
    assert_eq!(fs::read_to_string(ov.join("upper/g")).unwrap(), "new\n");
    no_containers_left(&u);
}

#[test]
fn subuid_range_maps_65536_ids_through_newuidmap() {
    let Some(u) = TestUser::new() else { return };
    let (uid, gid, su, sg) = (u.uid, u.gid, u.subuid, u.subgid);
    let b = u.bundle("sub", |v| {
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": su, "size": 65536}
        ]);
        v["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": gid, "size": 1},
            {"containerID": 1, "hostID": sg, "size": 65536}
        ]);
        v["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        args(v, &["sh", "-c", "cat /proc/self/uid_map; exec sleep 100"]);
    });
    u.rt(&["run", "-d", "--bundle", b.to_str().unwrap(), "sub"])
        .ok();
    let pid = init_pid(&u, "sub");
    // Container uid 1000 is the 1000th id of the user's sub-range.
    assert_eq!(host_ids(pid, "Uid:"), vec![su + 999; 4]);
    assert_eq!(host_ids(pid, "Gid:"), vec![sg + 999; 4]);
    let map = fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let rows: Vec<Vec<String>> = map
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["0".to_string(), uid.to_string(), "1".into()],
            vec!["1".to_string(), su.to_string(), "65536".into()]
        ]
    );
    u.rt(&["delete", "--force", "sub"]).ok();
    no_containers_left(&u);
}

#[test]
fn pids_limit_is_enforced_through_a_delegated_cgroup() {
    let Some(mut u) = TestUser::new() else { return };
    let Some(deleg) = u.delegate_cgroups() else {
        return;
    };
    let path = format!("/{deleg}/c1");
    let b = u.bundle("lim", |v| {
        v["linux"]["cgroupsPath"] = json!(path);
        v["linux"]["resources"] = json!({"pids": {"limit": 4}});
        args(v, &["sleep", "100"]);
    });
    let cg = PathBuf::from("/sys/fs/cgroup/pids").join(&deleg).join("c1");
    // Other workloads on a shared machine may rmdir cgroups they did not
    // make (docs: feasibility §2); delegate again when that happened.
    for attempt in 1..=3 {
        u.rt(&["run", "-d", "--bundle", b.to_str().unwrap(), "lim"])
            .ok();
        if cg.join("pids.max").exists() || attempt == 3 {
            break;
        }
        eprintln!("delegated cgroup vanished (attempt {attempt}); delegating again");
        u.rt(&["delete", "--force", "lim"]).ok();
        u.delegate_cgroups();
    }
    let pid = init_pid(&u, "lim");
    assert_eq!(fs::read_to_string(cg.join("pids.max")).unwrap().trim(), "4");
    let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    // The init and an exec'd shell leave room for 2 more: the rest fail.
    let out = u.rt(&[
        "exec",
        "lim",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do (sleep 3 &) 2>/dev/null || echo fork-failed; done; \
         cat /sys/fs/cgroup/pids/pids.max",
    ]);
    assert!(out.stdout.contains("fork-failed"), "{out}");
    assert!(out.stdout.lines().any(|l| l == "4"), "{out}");
    let events = fs::read_to_string(cg.join("pids.events")).unwrap();
    assert_ne!(events.trim(), "max 0", "no fork was refused: {events}");
    u.rt(&["delete", "--force", "lim"]).ok();
    assert!(!cg.exists(), "{} left behind", cg.display());
    no_containers_left(&u);
}

#[test]
fn without_delegation_it_runs_unlimited_and_says_so() {
    skip_if!(
        is_runc(),
        "runc 1.1.5 refuses linux.resources without a cgroup"
    );
    let Some(u) = TestUser::new() else { return };
    let b = u.bundle("nolim", |v| {
        v["linux"]["resources"] = json!({"pids": {"limit": 4}});
        args(
            v,
            &[
                "sh",
                "-c",
                "for i in 1 2 3 4 5 6 7 8; do (sleep 1 &) 2>/dev/null || echo fork-failed; done; \
                 echo forked",
            ],
        );
    });
    let out = u.rt(&["run", "--bundle", b.to_str().unwrap(), "nolim"]);
    out.ok();
    assert!(out.stdout.contains("forked"), "{out}");
    assert!(!out.stdout.contains("fork-failed"), "{out}");
    if !is_runc() {
        let warn = "running without cgroups; linux.resources ignored";
        assert_eq!(out.stderr.matches(warn).count(), 1, "{out}");
    }
    // No cgroup: pause says why (runc's words) and changes nothing.
    let b2 = u.bundle("nolim2", |v| args(v, &["sleep", "100"]));
    u.rt(&["run", "-d", "--bundle", b2.to_str().unwrap(), "nolim2"])
        .ok();
    u.rt(&["pause", "nolim2"])
        .fails_with(&["cgroups not configured for container"]);
    let st = u.rt(&["state", "nolim2"]);
    assert!(st.stdout.contains("\"running\""), "{st}");
    u.rt(&["delete", "--force", "nolim2"]).ok();
    no_containers_left(&u);
}

#[test]
fn rootless_bad_input_is_refused_clearly_and_leaves_nothing() {
    skip_if!(is_runc(), "checks bulkhead's own error texts");
    let Some(u) = TestUser::new() else { return };
    let (uid, su) = (u.uid, u.subuid);
    // One id beyond the user's /etc/subuid range.
    let b = u.bundle("bad", |v| {
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": su, "size": 65537}
        ]);
        args(v, &["true"]);
    });
    let bs = b.to_str().unwrap();
    let out = u.rt(&["run", "--bundle", bs, "bad1"]);
    out.fails_with(&[&format!(
        "linux.uidMappings[1]: host ids {su}-{} are not delegated",
        su + 65536
    )]);
    assert!(out.stderr.contains("/etc/subuid"), "{out}");
    no_containers_left(&u);

    // newuidmap missing from PATH: name the package.
    let b = u.bundle("nohelper", |v| {
        v["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": uid, "size": 1},
            {"containerID": 1, "hostID": su, "size": 10}
        ]);
        args(v, &["true"]);
    });
    let rt = runtime();
    let out = u.run(&[
        "env",
        "PATH=/nonexistent",
        rt.to_str().unwrap(),
        "run",
        "--bundle",
        b.to_str().unwrap(),
        "nohelper",
    ]);
    out.fails_with(&["newuidmap not found in PATH"]);
    assert!(out.stderr.contains("uidmap package"), "{out}");
    no_containers_left(&u);

    // No XDG_RUNTIME_DIR: say which variable and how to fix it.
    let ok = u.bundle("ok", |v| args(v, &["true"]));
    let okb = ok.to_str().unwrap();
    let out = u.run(&[
        "env",
        "-u",
        "XDG_RUNTIME_DIR",
        rt.to_str().unwrap(),
        "run",
        "--bundle",
        okb,
        "noxdg",
    ]);
    out.fails_with(&["XDG_RUNTIME_DIR is not set"]);
    assert!(out.stderr.contains("--root"), "{out}");

    // A state directory the user cannot write.
    let out = u.run(&[
        "env",
        "XDG_RUNTIME_DIR=/run",
        rt.to_str().unwrap(),
        "run",
        "--bundle",
        okb,
        "unwritable",
    ]);
    out.fails_with(&["state directory /run/bulkhead"]);
    assert!(out.stderr.contains("--root DIR"), "{out}");

    // Idmapped mounts need root over the filesystem.
    let idm = u.bundle("idmap", |v| {
        let home = u.home.to_str().unwrap().to_string();
        v["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "bind", "source": home,
            "options": ["rbind"],
            "uidMappings": [{"containerID": 0, "hostID": su, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": su, "size": 1}]
        }));
        args(v, &["true"]);
    });
    u.rt(&["run", "--bundle", idm.to_str().unwrap(), "idmap"])
        .fails_with(&["uidMappings: idmapped mounts need root"]);
    no_containers_left(&u);

    // No user namespace in the config while unprivileged.
    let nouserns = u.bundle("nouserns", |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
        let linux = v["linux"].as_object_mut().unwrap();
        linux.remove("uidMappings");
        linux.remove("gidMappings");
        args(v, &["true"]);
    });
    u.rt(&["run", "--bundle", nouserns.to_str().unwrap(), "nouserns"])
        .fails_with(&["linux.namespaces: running rootless"]);
    no_containers_left(&u);
    // Nothing of the user's is left running.
    assert!(u.pids().is_empty(), "processes left: {:?}", u.pids());
}

// ------------------------------------------------------------- podman --

const IMAGE: &str = "localhost/bh-rootless:latest";

/// Rootless podman set up for `u`: cgroupfs manager, file events, native
/// overlay storage under the user's home, the busybox root imported.
fn podman_for(u: &TestUser) -> Option<()> {
    if !tool("podman") || !tool("conmon") {
        eprintln!("skipped: podman/conmon not installed (scripts/install-deps.sh)");
        return None;
    }
    let conf = u.home.join(".config/containers");
    fs::create_dir_all(&conf).unwrap();
    fs::write(
        conf.join("containers.conf"),
        "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
         [containers]\nlog_driver = \"k8s-file\"\n",
    )
    .unwrap();
    fs::write(
        conf.join("storage.conf"),
        "[storage]\ndriver = \"overlay\"\n",
    )
    .unwrap();
    let b = u.bundle("img", |_| {});
    let tar = u.home.join("img.tar");
    let mut c = Command::new("tar");
    c.arg("-C")
        .arg(b.join("rootfs"))
        .arg("-cf")
        .arg(&tar)
        .arg(".");
    run_cmd(c, u.io.path(), cmd_timeout()).ok();
    let owner = format!("{}:{}", u.uid, u.gid);
    u.root_cmd(
        "chown",
        &["-R", &owner, u.home.join(".config").to_str().unwrap()],
    );
    u.root_cmd("chown", &[&owner, tar.to_str().unwrap()]);
    u.run(&["podman", "import", "-q", tar.to_str().unwrap(), IMAGE])
        .ok();
    Some(())
}

fn podman(u: &TestUser, args: &[&str]) -> RtOutput {
    let rt = runtime();
    let mut all = vec!["podman", "--runtime", rt.to_str().unwrap()];
    all.extend_from_slice(args);
    u.run(&all)
}

/// Options every rootless podman run needs here: no slirp (/dev/net/tun is
/// 0600 without udev) and rlimits root may set on this host.
const RUN_OPTS: &[&str] = &["--network", "none", "--ulimit", "nofile=1024:1024"];

#[test]
fn rootless_podman_run_exec_rm() {
    let Some(u) = TestUser::new() else { return };
    let Some(()) = podman_for(&u) else { return };
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(RUN_OPTS);
    a.extend_from_slice(&[
        IMAGE,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; ls -l /dev/null",
    ]);
    let out = podman(&u, &a);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    // podman's namespace: root is the user, then the sub-range.
    let map: Vec<Vec<&str>> = lines[1..3]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (uid, su) = (u.uid.to_string(), u.subuid.to_string());
    assert_eq!(
        map,
        vec![vec!["0", &uid, "1"], vec!["1", &su, "65536"]],
        "{out}"
    );
    assert!(lines[3].starts_with("crw-rw-rw-"), "{out}");

    // Detached, exec (exit codes propagate), then stop and remove.
    let mut a = vec!["run", "-d", "--name", "bhrl"];
    a.extend_from_slice(RUN_OPTS);
    a.extend_from_slice(&[IMAGE, "sleep", "100"]);
    let id = podman(&u, &a);
    id.ok();
    let id = id.stdout.trim().to_string();
    let out = podman(&u, &["exec", "bhrl", "sh", "-c", "echo in-exec; exit 3"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("in-exec"), "{out}");
    let out = podman(&u, &["exec", "bhrl", "/nonexistent"]);
    assert_eq!(out.code(), Some(127), "{out}");

    // Issue 5: the runtime exec'd as "root" inside podman's user namespace
    // finds podman's containers without --root ($XDG_RUNTIME_DIR/bulkhead).
    let rt = runtime();
    let rt = rt.to_str().unwrap();
    let st = u.run(&["podman", "unshare", rt, "state", &id]);
    st.ok();
    let v: Value = serde_json::from_str(&st.stdout).expect("state JSON");
    assert_eq!(v["status"], "running", "{st}");
    let pid = v["pid"].as_i64().unwrap() as i32;
    assert_eq!(host_ids(pid, "Uid:"), vec![u.uid; 4]);
    if !is_runc() {
        let ps = u.run(&["podman", "unshare", rt, "ps", "--format", "json", &id]);
        ps.ok();
        let pids: Vec<i32> = serde_json::from_str(ps.stdout.trim()).unwrap();
        assert!(pids.contains(&pid), "{ps}");
        u.run(&["podman", "unshare", rt, "pause", &id])
            .fails_with(&["cgroups not configured"]);
    }
    podman(&u, &["rm", "-f", "-t", "0", "bhrl"]).ok();
    let st = u.run(&["podman", "unshare", rt, "state", &id]);
    st.fails_with(&["does not exist"]);
    let left = u.run(&["podman", "ps", "-aq"]);
    assert!(left.stdout.trim().is_empty(), "{left}");
}

#[test]
fn rootless_flag_overrides_detection() {
    skip_if!(is_runc(), "checks bulkhead's own error texts");
    let io = tempfile::tempdir().unwrap();
    let rt = |env_xdg: Option<&str>, a: &[&str]| {
        let mut c = Command::new(runtime());
        c.args(a).stdin(Stdio::null()).env_remove("XDG_RUNTIME_DIR");
        if let Some(x) = env_xdg {
            c.env("XDG_RUNTIME_DIR", x);
        }
        run_cmd(c, io.path(), cmd_timeout())
    };
    // Forced rootless: the state root comes from XDG_RUNTIME_DIR, even for
    // root; an empty value counts as unset (rootful podman passes that).
    rt(None, &["--rootless", "true", "state", "nosuch"])
        .fails_with(&["XDG_RUNTIME_DIR is not set"]);
    rt(Some(""), &["--rootless=true", "state", "nosuch"])
        .fails_with(&["XDG_RUNTIME_DIR is not set"]);
    let xdg = tempfile::tempdir().unwrap();
    let x = xdg.path().to_str().unwrap();
    rt(Some(x), &["--rootless", "true", "state", "nosuch"]).fails_with(&["does not exist"]);
    rt(Some(x), &["--rootless", "true", "list", "--format", "json"]).ok();
    // Forced rootful ignores it.
    rt(None, &["--rootless", "false", "state", "nosuch"]).fails_with(&["does not exist"]);
    rt(None, &["--rootless", "maybe", "state", "x"]).fails_with(&["--rootless"]);
}

#[test]
fn rootless_podman_default_network_and_published_port() {
    let Some(u) = TestUser::new() else { return };
    skip_if!(
        !tool("slirp4netns"),
        "slirp4netns is not installed (scripts/install-deps.sh)"
    );
    skip_if!(!Path::new("/dev/net/tun").exists(), "no /dev/net/tun");
    let Some(()) = podman_for(&u) else { return };
    let www = u.home.join("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("id"), "in-container\n").unwrap();
    u.root_cmd(
        "chown",
        &["-R", &format!("{}:{}", u.uid, u.gid), www.to_str().unwrap()],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tun = TunOpen::new();
    // slirp4netns: the container gets its own tap0 with slirp's address.
    let out = podman(
        &u,
        &[
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            IMAGE,
            "ip",
            "-4",
            "-o",
            "addr",
        ],
    );
    out.ok();
    assert!(
        out.stdout.contains("tap0") && out.stdout.contains("10.0.2.100/24"),
        "{out}"
    );
    let publish = format!("127.0.0.1:{port}:80");
    let vol = format!("{}:/w:ro", www.display());
    podman(
        &u,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--ulimit",
            "nofile=1024:1024",
            "-p",
            &publish,
            "-v",
            &vol,
            IMAGE,
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/w",
        ],
    )
    .ok();
    let body = wait_for("published port", Duration::from_secs(20), || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        c.write_all(b"GET /id HTTP/1.0\r\n\r\n").ok()?;
        let mut r = String::new();
        c.read_to_string(&mut r).ok()?;
        r.contains("in-container").then_some(r)
    });
    assert!(
        body.lines().next().is_some_and(|l| l.contains(" 200 ")),
        "{body}"
    );
    podman(&u, &["rm", "-f", "-t", "0", "web"]).ok();
    drop(tun);
}
