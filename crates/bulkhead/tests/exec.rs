//! `exec`: a new process joins the running container's namespaces and
//! cgroups with the same confinement, and reports its exit code.

#[macro_use]
mod common;

use common::Bundle;
use serde_json::{Value, json};

/// A container whose init sleeps, started detached.
fn running() -> Bundle {
    let b = Bundle::new().args(&["sleep", "600"]);
    b.run_with(&["-d"]).ok();
    b
}

fn probe_path() -> String {
    common::PROBE.to_string()
}

fn exec_json(b: &Bundle, args: &[&str]) -> Value {
    let mut full = vec!["exec", b.id.as_str()];
    full.extend_from_slice(args);
    let out = b.rt(&full);
    out.ok();
    out.json()
}

#[test]
fn exec_joins_the_init_namespaces() {
    require_root!();
    let b = running();
    let init = b.state()["pid"].as_i64().unwrap().to_string();
    let probe = probe_path();
    let r = exec_json(&b, &[&probe, "report"]);
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let theirs = common::ns_inode(&init, ns).unwrap();
        assert_eq!(
            r["ns"][ns].as_u64(),
            Some(theirs),
            "{ns} namespace: {}",
            r["ns"]
        );
    }
    // Not pid 1: it is a second process in the container's pid namespace.
    assert_ne!(r["pid"], 1, "{r}");
}

#[test]
fn exec_exit_code_propagates() {
    require_root!();
    let b = running();
    let out = b.rt(&["exec", &b.id, "sh", "-c", "exit 42"]);
    assert_eq!(out.code(), Some(42), "{out:?}");
}

#[test]
fn exec_only_stdio_fds() {
    require_root!();
    let b = running();
    let probe = probe_path();
    let r = exec_json(&b, &[&probe, "report"]);
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["fd"].as_i64())
        .collect();
    assert!(
        fds.iter().all(|fd| *fd <= 2),
        "extra fds in exec: {}",
        r["fds"]
    );
}

#[test]
fn exec_env_cwd_user_flags() {
    require_root!();
    let b = running();
    let out = b.rt(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &b.id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g)",
    ]);
    out.ok();
    assert_eq!(out.stdout.trim(), "bar /tmp 1000:1000", "{out:?}");
}

#[test]
fn exec_process_file() {
    require_root!();
    let b = running();
    let proc_json = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-process-json; exit 3"],
        "env": ["PATH=/bin:/usr/bin"],
        "cwd": "/"
    });
    let path = b.dir().join("process.json");
    std::fs::write(&path, proc_json.to_string()).unwrap();
    let out = b.rt(&["exec", "--process", path.to_str().unwrap(), &b.id]);
    assert_eq!(out.code(), Some(3), "{out:?}");
    assert!(out.stdout.contains("from-process-json"), "{out:?}");
}

#[test]
fn exec_detach_writes_pid_file() {
    require_root!();
    let b = running();
    let pid_file = b.dir().join("exec.pid");
    b.rt(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "sleep",
        "30",
    ])
    .ok();
    let text = std::fs::read_to_string(&pid_file).unwrap();
    assert!(text.chars().all(|c| c.is_ascii_digit()), "{text:?}");
    let pid: i32 = text.parse().unwrap();
    assert!(
        common::proc_start_time(pid).is_some(),
        "exec process {pid} not alive"
    );
    let ps = b.rt(&["ps", "--format", "json", &b.id]);
    ps.ok();
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&(pid as i64)), "{pids:?} lacks {pid}");
}

#[test]
fn exec_missing_program_fails_with_clients_text() {
    require_root!();
    let b = running();
    b.rt(&["exec", &b.id, "/nonexistent"])
        .fails_with(&["no such file or directory"]);
}

#[test]
fn exec_into_missing_container_fails() {
    require_root!();
    let b = Bundle::new();
    b.rt(&["exec", &b.id, "true"])
        .fails_with(&["does not exist"]);
}

#[test]
fn exec_into_stopped_container_fails() {
    require_root!();
    let b = Bundle::new().args(&["true"]);
    b.create().ok();
    b.start().ok();
    b.wait_status("stopped");
    b.rt(&["exec", &b.id, "true"]).fails();
}

#[test]
fn exec_shares_the_seccomp_filter() {
    require_root!();
    let b = Bundle::new().args(&["sleep", "600"]).json_patch(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    b.run_with(&["-d"]).ok();
    let probe = probe_path();
    let r = exec_json(&b, &[&probe, "report"]);
    assert_eq!(r["status"]["Seccomp"], "2", "{}", r["status"]);
}

#[test]
fn exec_caps_match_the_config() {
    require_root!();
    let b = running();
    let init = exec_json(&b, &[&probe_path(), "report"]);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(b.dir().join("config.json")).unwrap())
            .unwrap();
    let n = cfg["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .len();
    let bnd = u64::from_str_radix(init["status"]["CapBnd"].as_str().unwrap(), 16).unwrap();
    assert_eq!(bnd.count_ones() as usize, n, "{}", init["status"]);
}
