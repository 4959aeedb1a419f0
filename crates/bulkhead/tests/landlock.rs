//! Landlock through the `io.bulkhead.landlock` annotation (a bulkhead
//! extension: runc ignores the annotation, so these tests skip against it).

#[macro_use]
mod common;

use common::{Bundle, is_runc, rootfs};
use serde_json::{Value, json};

const EACCES: i64 = libc::EACCES as i64;

fn policy(b: Bundle, doc: Value) -> Bundle {
    b.json_patch(|c| {
        c["annotations"] = json!({ "io.bulkhead.landlock": doc.to_string() });
    })
}

/// Read and execute on the directories the dynamically linked probe needs.
fn probe_runtime_rules() -> Vec<Value> {
    let mut rules = vec![json!({"path": "/bin", "access": ["read", "execute"]})];
    for lib in ["/lib", "/lib64", "/usr/lib", "/usr/lib64"] {
        if rootfs().join(&lib[1..]).is_dir() {
            rules.push(json!({"path": lib, "access": ["read", "execute"]}));
        }
    }
    rules
}

fn tmpfs(b: Bundle, dest: &str) -> Bundle {
    b.mount(dest, "tmpfs", "tmpfs", &["size=1m"])
}

fn landlock_abi() -> Option<u32> {
    let root = tempfile::tempdir().unwrap();
    let out = common::rt(root.path(), &["features"]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["annotations"]["io.bulkhead.landlock"]
        .as_str()?
        .strip_prefix("abi=")?
        .parse()
        .ok()
}

macro_rules! require_landlock {
    () => {
        require_root!();
        skip_if!(
            is_runc(),
            "runc ignores the io.bulkhead.landlock annotation"
        );
        skip_if!(landlock_abi().is_none(), "the kernel has no Landlock");
    };
}

fn write_policy() -> Value {
    json!({"filesystem": [
        {"path": "/", "access": ["read", "execute"]},
        {"path": "/mnt/a", "access": ["read", "write"]}
    ]})
}

#[test]
fn write_outside_allowed_paths_is_denied() {
    require_landlock!();
    let mk = || {
        policy(
            tmpfs(tmpfs(Bundle::new(), "/mnt/a"), "/mnt/b"),
            write_policy(),
        )
    };
    let r = mk().probe_result(&["write", "/mnt/b/f"]);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["errno"], EACCES, "{r}");
    // Inside the writable path the same write works.
    let r = mk().probe_result(&["write", "/mnt/a/f"]);
    assert_eq!(r["ok"], true, "{r}");
    // Without the annotation, /mnt/b is writable: the denial is Landlock's.
    let r = tmpfs(tmpfs(Bundle::new(), "/mnt/a"), "/mnt/b").probe_result(&["write", "/mnt/b/f"]);
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn write_rights_cover_mkdir_and_remove() {
    require_landlock!();
    let out = policy(
        tmpfs(tmpfs(Bundle::new(), "/mnt/a"), "/mnt/b"),
        write_policy(),
    )
    .sh("mkdir /mnt/a/d && rmdir /mnt/a/d && echo a-ok; \
             mkdir /mnt/b/d; echo b-rc=$?")
    .run();
    out.ok();
    assert!(out.stdout.contains("a-ok"), "{out}");
    assert!(out.stdout.contains("b-rc=1"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
}

#[test]
fn read_is_limited_to_the_listed_paths() {
    require_landlock!();
    let mut rules = probe_runtime_rules();
    rules.push(json!({"path": "/etc/hostname", "access": ["read"]}));
    let mk = || policy(Bundle::new(), json!({ "filesystem": rules }));
    // A rule on a single file: that file is readable…
    let r = mk().probe_result(&["read", "/etc/hostname"]);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["data"], "rootfs\n", "{r}");
    // …its neighbours are not.
    let r = mk().probe_result(&["read", "/etc/passwd"]);
    assert_eq!(r["errno"], EACCES, "{r}");
    // stat is not a Landlock right: the file is still visible.
    let r = mk().probe_result(&["stat", "/etc/passwd"]);
    assert_eq!(r["type"], "file", "{r}");
}

#[test]
fn exec_outside_execute_paths_is_denied() {
    require_landlock!();
    // Execute only on busybox (the shell); the probe is readable but not
    // executable.
    let out = policy(
        Bundle::new(),
        json!({"filesystem": [
            {"path": "/", "access": ["read"]},
            {"path": "/bin/busybox", "access": ["execute"]}
        ]}),
    )
    .sh("/bin/bulkhead-probe exit 0; echo rc=$?")
    .run();
    out.ok();
    assert!(out.stdout.contains("rc=126"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");
}

#[test]
fn container_program_itself_needs_execute() {
    require_landlock!();
    // The domain is in place before the container program is executed.
    let out = policy(
        Bundle::new(),
        json!({"filesystem": [{"path": "/", "access": ["read"]}]}),
    )
    .run();
    out.fails();
    assert!(
        out.stderr.to_lowercase().contains("permission denied"),
        "{out}"
    );
}

#[test]
fn tcp_connect_and_bind_only_to_listed_ports() {
    require_landlock!();
    skip_if!(
        landlock_abi() < Some(4),
        "network rules need Landlock ABI 4"
    );
    // The container has its own network namespace: everything stays on its lo.
    let script = "nc -l -p 8080 >/dev/null & nc -l -p 8081 >/dev/null & sleep 0.5; \
                  echo x | nc -w 2 127.0.0.1 8080; echo c8080=$?; \
                  echo x | nc -w 2 127.0.0.1 8081; echo c8081=$?; \
                  nc -l -p 9090; echo b9090=$?";
    let out = policy(
        Bundle::new(),
        json!({"network": {"tcpBind": [8080, 8081], "tcpConnect": [8080]}}),
    )
    .sh(script)
    .run();
    assert!(out.stdout.contains("c8080=0"), "{out}");
    assert!(out.stdout.contains("c8081=1"), "{out}");
    assert!(out.stdout.contains("b9090=1"), "{out}");
    assert!(out.stderr.contains("Permission denied"), "{out}");

    // Without a network section the network is not restricted.
    let out = policy(
        Bundle::new(),
        json!({"filesystem": [{"path": "/", "access": ["read", "write", "execute"]}]}),
    )
    .sh("nc -l -p 8081 >/dev/null & sleep 0.5; echo x | nc -w 2 127.0.0.1 8081; echo c8081=$?")
    .run();
    assert!(out.stdout.contains("c8081=0"), "{out}");
}

#[test]
fn works_without_no_new_privs() {
    require_landlock!();
    // restrict_self relies on CAP_SYS_ADMIN then, and must not turn
    // no_new_privs on behind the config's back.
    let b = policy(
        tmpfs(Bundle::new(), "/mnt/a"),
        json!({"filesystem": [{"path": "/", "access": ["read", "execute"]}]}),
    )
    .json_patch(|c| c["process"]["noNewPrivileges"] = json!(false));
    let r = b.run_probe();
    assert_eq!(r["status"]["NoNewPrivs"], "0", "{}", r["status"]);
    let r = policy(
        tmpfs(Bundle::new(), "/mnt/a"),
        json!({"filesystem": [{"path": "/", "access": ["read", "execute"]}]}),
    )
    .json_patch(|c| c["process"]["noNewPrivileges"] = json!(false))
    .probe_result(&["write", "/mnt/a/f"]);
    assert_eq!(r["errno"], EACCES, "{r}");
}

#[test]
fn strict_mode_fails_on_a_right_the_kernel_lacks() {
    require_landlock!();
    // Bit 40 is no right any kernel has yet: strict refuses to start…
    let doc = |mode: &str| {
        json!({"mode": mode, "filesystem": [
            {"path": "/", "access": ["read", "execute"]},
            {"path": "/mnt/a", "access": ["write", 1u64 << 40]}
        ]})
    };
    let b = policy(tmpfs(Bundle::new(), "/mnt/a"), doc("strict"));
    let out = b.create();
    out.fails_with(&[r#"annotations["io.bulkhead.landlock"].filesystem[1].access"#]);
    assert!(out.stderr.contains("bit 40"), "{out}");
    assert!(out.stderr.contains("strict"), "{out}");
    // …best effort drops the unknown right and enforces the rest.
    let r = policy(tmpfs(Bundle::new(), "/mnt/a"), doc("best-effort"))
        .probe_result(&["write", "/mnt/a/f"]);
    assert_eq!(r["ok"], true, "{r}");

    // A right a newer kernel has, named on a kernel that lacks it.
    let abi = landlock_abi().unwrap();
    if abi < 9 {
        let out = policy(
            Bundle::new(),
            json!({"mode": "strict", "filesystem": [
                {"path": "/", "access": ["read", "execute", "resolve_unix"]}
            ]}),
        )
        .create();
        out.fails_with(&[&format!("needs Landlock ABI 9, the kernel has ABI {abi}")]);
    }
}

#[test]
fn missing_path_is_an_error_naming_the_entry() {
    require_landlock!();
    let b = policy(
        Bundle::new(),
        json!({"filesystem": [
            {"path": "/", "access": ["read", "execute"]},
            {"path": "/no/such/dir", "access": ["read"]}
        ]}),
    );
    let out = b.create();
    out.fails_with(&[r#"annotations["io.bulkhead.landlock"].filesystem[1].path"#]);
    assert!(out.stderr.contains("/no/such/dir"), "{out}");
    assert!(out.stderr.to_lowercase().contains("no such file"), "{out}");
    // Nothing left behind: no state (and the drop checks processes, mounts
    // and cgroups).
    let list = b.rt(&["list", "-q"]);
    assert!(!list.stdout.contains(&b.id), "{list}");
}

#[test]
fn invalid_policy_is_rejected_before_anything_runs() {
    require_landlock!();
    for (doc, field, needle) in [
        (
            json!({"filesystem": [{"path": "tmp", "access": ["read"]}]}),
            "filesystem[0].path",
            "absolute",
        ),
        (
            json!({"filesystem": [{"path": "/tmp", "access": ["read", "scribble"]}]}),
            "filesystem[0].access[1]",
            "scribble",
        ),
        (
            json!({"network": {"tcpConnect": [443, 70000]}}),
            "network.tcpConnect[1]",
            "70000",
        ),
    ] {
        let b = policy(Bundle::new(), doc);
        let out = b.create();
        out.fails_with(&[&format!(r#"annotations["io.bulkhead.landlock"].{field}"#)]);
        assert!(out.stderr.contains(needle), "{out}");
    }
}

#[test]
fn features_reports_the_abi() {
    require_root!();
    skip_if!(is_runc(), "runc has no io.bulkhead.landlock annotation");
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default();
    let abi = landlock_abi();
    if lsm.split(',').any(|m| m.trim() == "landlock") {
        assert!(abi.is_some_and(|a| a >= 1), "{abi:?}");
    }
}

#[test]
fn applies_in_a_user_namespace_to_an_unprivileged_user() {
    require_landlock!();
    // Landlock goes in while the init still holds its capabilities; the
    // domain stays after the switch to uid 1000 and is inherited on exec.
    let mk = || {
        policy(
            Bundle::new()
                .mount("/mnt/a", "tmpfs", "tmpfs", &["size=1m", "mode=1777"])
                .userns(&[(0, 100000, 65536)], &[(0, 100000, 65536)])
                .user(1000, 1000, &[])
                .json_patch(|c| c["process"]["noNewPrivileges"] = json!(false)),
            write_policy(),
        )
    };
    let r = mk().probe_result(&["write", "/mnt/a/f"]);
    assert_eq!(r["ok"], true, "{r}");
    // /dev/shm is world-writable: only Landlock stands in the way.
    let r = mk().probe_result(&["write", "/dev/shm/f"]);
    assert_eq!(r["errno"], EACCES, "{r}");
}
