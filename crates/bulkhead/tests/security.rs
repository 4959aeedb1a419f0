//! Confinement: seccomp, dropped capabilities actually denying
//! operations, personality, id-mapped mounts.

#[macro_use]
mod common;

use common::{Bundle, is_runc};
use serde_json::{Value, json};

fn seccomp_blocking(names: &[&str], action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({"names": names, "action": action});
    if let Some(e) = errno {
        rule["errnoRet"] = json!(e);
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [rule]
    })
}

fn with_tmp(b: Bundle) -> Bundle {
    b.mount("/mnt/a", "tmpfs", "tmpfs", &["size=1m"])
}

#[test]
fn seccomp_filter_is_installed() {
    require_root!();
    let r = Bundle::new()
        .json_patch(|c| {
            c["linux"]["seccomp"] = seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None)
        })
        .run_probe();
    assert_eq!(r["status"]["Seccomp"], "2", "{}", r["status"]);
    let n: u32 = r["status"]["Seccomp_filters"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= 1);
    // And none without a seccomp section.
    let r = Bundle::new().run_probe();
    assert_eq!(r["status"]["Seccomp"], "0");
}

#[test]
fn seccomp_errno_action() {
    require_root!();
    let b = with_tmp(Bundle::new())
        .json_patch(|c| {
            c["linux"]["seccomp"] = seccomp_blocking(
                &["mkdir", "mkdirat"],
                "SCMP_ACT_ERRNO",
                Some(libc::EXDEV as u32),
            )
        })
        .sh("mkdir /mnt/a/x; echo rc=$?; touch /mnt/a/file && echo touch-ok");
    let out = b.run();
    assert!(out.stdout.contains("rc=1"), "{out}");
    assert!(out.stdout.contains("touch-ok"), "{out}");
    assert!(
        out.stderr.to_lowercase().contains("cross-device"),
        "errnoRet EXDEV not used: {out}"
    );
}

#[test]
fn seccomp_errno_defaults_to_eperm() {
    require_root!();
    let b = with_tmp(Bundle::new())
        .json_patch(|c| {
            c["linux"]["seccomp"] = seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None)
        })
        .sh("mkdir /mnt/a/x");
    let out = b.run();
    out.fails();
    assert!(
        out.stderr
            .to_lowercase()
            .contains("operation not permitted"),
        "{out}"
    );
}

#[test]
fn seccomp_kill_process_action() {
    require_root!();
    let b = with_tmp(Bundle::new())
        .json_patch(|c| {
            c["linux"]["seccomp"] =
                seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_KILL_PROCESS", None)
        })
        .args(&["/bin/mkdir", "/mnt/a/x"]);
    let out = b.run();
    assert_eq!(out.code(), Some(128 + libc::SIGSYS), "{out}");
}

#[test]
fn seccomp_only_affects_the_container() {
    require_root!();
    // The filter is for the container process only: the runtime itself
    // (which mkdirs its state) still works, and the host is unaffected.
    let b = with_tmp(Bundle::new())
        .json_patch(|c| {
            c["linux"]["seccomp"] = seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None)
        })
        .probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    assert_eq!(b.status(), "running");
    let d = common::open_tempdir();
    std::fs::create_dir(d.path().join("host-mkdir")).expect("host mkdir works");
}

#[test]
fn dropped_cap_sys_admin_denies_mount() {
    require_root!();
    let out = with_tmp(Bundle::new())
        .sh("mount -t tmpfs none /mnt/a")
        .run();
    out.fails();
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("permission denied") || err.contains("operation not permitted"),
        "{out}"
    );
}

#[test]
fn cap_sys_admin_allows_mount() {
    require_root!();
    let out = with_tmp(Bundle::new())
        .json_patch(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
        })
        .sh("mount -t tmpfs none /mnt/a && echo mounted")
        .run();
    out.ok();
    assert!(out.stdout.contains("mounted"));
}

#[test]
fn dropped_cap_chown_denies_chown() {
    require_root!();
    let out = with_tmp(Bundle::new())
        .sh("touch /mnt/a/f && chown 1000 /mnt/a/f")
        .run();
    out.fails();
    let out = with_tmp(Bundle::new())
        .json_patch(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_CHOWN"));
            }
        })
        .sh("touch /mnt/a/f && chown 1000 /mnt/a/f && stat -c %u /mnt/a/f")
        .run();
    out.ok();
    assert_eq!(out.stdout.trim(), "1000");
}

#[test]
fn sysrq_trigger_is_readonly() {
    require_root!();
    skip_if!(
        !std::path::Path::new("/proc/sysrq-trigger").exists(),
        "this kernel has no /proc/sysrq-trigger"
    );
    let r = Bundle::new().probe_result(&["write", "/proc/sysrq-trigger", "h"]);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["errno"], libc::EROFS, "{r}");
}

#[test]
fn personality_linux32() {
    require_root!();
    skip_if!(is_runc(), "runc 1.1.5 does not implement linux.personality");
    let r = Bundle::new()
        .json_patch(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}))
        .run_probe();
    // PER_LINUX32 = 0x0008.
    assert_eq!(
        r["personality"].as_u64().map(|p| p & 0xff),
        Some(0x0008),
        "{r}"
    );
}

#[test]
fn personality_default_is_linux() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["personality"].as_u64().map(|p| p & 0xff), Some(0), "{r}");
}

#[test]
fn idmapped_bind_mount() {
    require_root!();
    skip_if!(is_runc(), "runc 1.1.5 has no id-mapped mounts");
    // A host dir owned by host root, mounted id-mapped into a container
    // whose root is host uid 100000: inside, the files belong to root.
    let host = common::open_tempdir();
    std::fs::write(host.path().join("f"), "x").unwrap();
    let src = host.path().to_str().unwrap().to_string();
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let r = Bundle::new()
        .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
        .watch_mounts(&src)
        .json_patch(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt/c", "type": "bind", "source": src,
                "options": ["rbind"], "uidMappings": map, "gidMappings": map
            }))
        })
        .probe_result(&["stat", "/mnt/c/f"]);
    assert_eq!(r["uid"], 0, "{r}");
    assert_eq!(r["gid"], 0, "{r}");
}

#[test]
fn mknod_needs_cap_mknod() {
    require_root!();
    let r = with_tmp(Bundle::new()).probe_result(&["mknod", "/mnt/a/null", "c", "1", "3"]);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["errno"], libc::EPERM, "{r}");
    let r = with_tmp(Bundle::new())
        .json_patch(|c| {
            for set in ["bounding", "effective", "permitted"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_MKNOD"));
            }
        })
        .probe_result(&["mknod", "/mnt/a/null", "c", "1", "3"]);
    assert_eq!(r["ok"], true, "{r}");
}

/// SCMP_ACT_NOTIFY with listenerPath: the agent receives the container
/// process state and the listener fd, sees the notified syscall, and its
/// answer (ENOTSUP) is what the container gets.
#[test]
fn seccomp_notify_reaches_the_agent() {
    require_root!();
    let agent_bin = common::profile_dir().join("bulkhead-notify-agent");
    assert!(
        agent_bin.exists(),
        "build it first: cargo build -p bulkhead-notify-agent"
    );
    let dir = common::open_tempdir();
    let sock = dir.path().join("agent.sock");
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = std::process::Command::new(&agent_bin)
        .args([sock.to_str().unwrap(), "--errno", "95"])
        .stdout(log)
        .spawn()
        .unwrap();
    common::wait_for("agent socket", std::time::Duration::from_secs(10), || {
        sock.exists().then_some(())
    });
    let sock_s = sock.to_str().unwrap().to_string();
    let out = Bundle::new()
        .sh("mkdir /tmp/notified; echo rc=$?")
        .mount("/tmp", "tmpfs", "tmpfs", &["size=1m"])
        .json_patch(|c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "listenerPath": sock_s,
                "listenerMetadata": "test-metadata",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            })
        })
        .run();
    let _ = agent.kill();
    let _ = agent.wait();
    out.ok();
    assert!(out.stdout.contains("rc=1"), "{out:?}");
    assert!(
        out.stderr.contains("Operation not supported") || out.stdout.contains("not supported"),
        "{out:?}"
    );
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(
        log.contains("\"seccompFd\""),
        "state message missing: {log}"
    );
    assert!(log.contains("test-metadata"), "metadata missing: {log}");
    assert!(
        log.contains("\"syscall\":\"mkdir"),
        "no notification logged: {log}"
    );
}

/// With noNewPrivileges false the filter is loaded before capabilities are
/// dropped, so everything the runtime does afterwards must get past an
/// allow-list profile written for runc (regression: close_range,
/// faccessat2 and procfs handles were refused by such profiles).
#[test]
fn allow_list_profile_without_no_new_privs_starts() {
    require_root!();
    skip_if!(is_runc(), "uses the profile of bulkhead's own `spec`");
    let dir = common::open_tempdir();
    common::rt(
        dir.path(),
        &["spec", "--bundle", dir.path().to_str().unwrap()],
    )
    .ok();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let seccomp = cfg["linux"]["seccomp"].clone();
    assert!(seccomp.is_object(), "spec wrote no seccomp profile");
    for user in [(0, 0), (1000, 1000)] {
        let out = Bundle::new()
            .user(user.0, user.1, &[])
            .sh("echo started")
            .json_patch(|c| {
                c["linux"]["seccomp"] = seccomp.clone();
                c["process"]["noNewPrivileges"] = json!(false);
            })
            .run();
        out.ok();
        assert!(out.stdout.contains("started"), "{out:?}");
    }
}
