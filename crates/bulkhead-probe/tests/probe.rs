//! The probe checked on the host, so that a probe bug is not mistaken for
//! a runtime bug in the conformance tests. No root needed.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const PROBE: &str = env!("CARGO_BIN_EXE_bulkhead-probe");

fn probe(args: &[&str]) -> (i32, Value) {
    let out = Command::new(PROBE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run probe");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn report_has_every_section() {
    let (code, r) = probe(&["report"]);
    assert_eq!(code, 0);
    for key in [
        "pid",
        "ppid",
        "uid",
        "euid",
        "suid",
        "fsuid",
        "gid",
        "egid",
        "sgid",
        "fsgid",
        "groups",
        "umask",
        "cwd",
        "env",
        "hostname",
        "domainname",
        "status",
        "ns",
        "uid_map",
        "gid_map",
        "setgroups",
        "rlimits",
        "oom_score_adj",
        "personality",
        "fds",
        "ttyname",
        "mountinfo",
        "cgroup",
        "cpus",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(r["rlimits"].as_object().unwrap().len(), 16);
    for f in [
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
    ] {
        assert!(r["status"][f].is_string(), "status.{f}");
    }
    assert!(!r["mountinfo"].as_array().unwrap().is_empty());
    assert!(!r["cpus"].as_array().unwrap().is_empty());
}

#[test]
fn report_ids_match_the_process() {
    let (_, r) = probe(&["report"]);
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    assert_eq!(r["uid"], uid);
    assert_eq!(r["euid"], uid);
    assert_eq!(r["gid"], gid);
    assert_eq!(r["ppid"], std::process::id());
}

#[test]
fn report_ns_inodes_match_host() {
    let (_, r) = probe(&["report"]);
    for n in ["mnt", "net", "pid", "uts", "ipc", "user"] {
        let ino = std::fs::metadata(format!("/proc/self/ns/{n}"))
            .unwrap()
            .ino();
        assert_eq!(r["ns"][n], ino, "{n}");
    }
}

#[test]
fn report_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(PROBE)
        .arg("report")
        .env_clear()
        .env("ONLY", "this")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["env"], serde_json::json!({"ONLY": "this"}));
    let cwd = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(r["cwd"], cwd.to_str().unwrap());
}

#[test]
fn report_fds_exclude_the_listing_fd() {
    // Only stdio is open in the child (std marks its own fds CLOEXEC); the
    // fd used to read /proc/self/fd must not be reported.
    let (_, r) = probe(&["report"]);
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    for fd in [0, 1, 2] {
        assert!(fds.contains(&fd), "{fds:?}");
    }
    for f in r["fds"].as_array().unwrap() {
        let t = f["target"].as_str().unwrap();
        assert!(!t.ends_with("/fd"), "listing fd reported: {f}");
    }
}

#[test]
fn report_umask() {
    let out = Command::new("/bin/sh")
        .args(["-c", &format!("umask 027; exec {PROBE} report")])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["umask"], 0o027);
}

#[test]
fn report_rlimit() {
    let out = Command::new("/bin/sh")
        .args(["-c", &format!("ulimit -n 77; exec {PROBE} report")])
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"]["soft"], 77);
}

#[test]
fn file_commands() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f");
    let fs = f.to_str().unwrap();
    assert_eq!(probe(&["write", fs, "hello"]).1["ok"], true);
    let (_, r) = probe(&["read", fs]);
    assert_eq!(r["data"], "hello");
    assert_eq!(r["len"], 5);
    let (_, st) = probe(&["stat", fs]);
    assert_eq!(st["type"], "file");
    // Created 0644 minus the umask: at least owner read/write.
    assert_eq!(st["mode"].as_u64().unwrap() & 0o600, 0o600);
    let (_, st) = probe(&["stat", "/dev/null"]);
    assert_eq!(st["type"], "char");
    assert_eq!(
        (st["major"].as_u64(), st["minor"].as_u64()),
        (Some(1), Some(3))
    );
    let (_, ls) = probe(&["ls", dir.path().to_str().unwrap()]);
    assert_eq!(ls["entries"], serde_json::json!(["f"]));
    let (_, e) = probe(&["read", "/definitely/missing"]);
    assert_eq!(e["ok"], false);
    assert_eq!(e["errno"], libc::ENOENT);
    let (_, x) = probe(&["exec-check", PROBE]);
    assert_eq!(x["ok"], true);
    let (_, x) = probe(&["exec-check", fs]);
    assert_eq!(x["errno"], libc::EACCES);
    let link = dir.path().join("l");
    std::os::unix::fs::symlink("target-x", &link).unwrap();
    let (_, st) = probe(&["stat", link.to_str().unwrap()]);
    assert_eq!(st["type"], "symlink");
    assert_eq!(st["target"], "target-x");
}

#[test]
fn mknod_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fifo");
    let (_, r) = probe(&["mknod", p.to_str().unwrap(), "p", "0", "0"]);
    assert_eq!(r["ok"], true, "{r}");
    let (_, st) = probe(&["stat", p.to_str().unwrap()]);
    assert_eq!(st["type"], "fifo");
}

#[test]
fn exit_codes() {
    assert_eq!(probe(&["exit", "0"]).0, 0);
    assert_eq!(probe(&["exit", "42"]).0, 42);
    assert_eq!(probe(&["bogus-command"]).0, 2);
}

#[test]
fn signal_wait_exits_128_plus_signal() {
    for (sig, num) in [
        (rustix::process::Signal::TERM, 15),
        (rustix::process::Signal::USR1, 10),
    ] {
        let mut child = Command::new(PROBE)
            .arg("signal-wait")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the ready line, i.e. for the handlers to be installed.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.contains("ready"), "{line:?}");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(128 + num));
    }
}

#[test]
fn sleep_sleeps() {
    let start = std::time::Instant::now();
    assert_eq!(probe(&["sleep", "0.2"]).0, 0);
    assert!(start.elapsed() >= Duration::from_millis(200));
}
