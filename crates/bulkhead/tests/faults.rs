//! Fault injection: the runtime is SIGKILLed at every named step of create,
//! start, exec and delete (`BULKHEAD_FAULT`, honoured by debug builds only;
//! see `bulkhead-sys/src/fault.rs` and docs/reliability.md). Afterwards
//! `state` and `list` must say something sane, `delete --force` must succeed,
//! and nothing may be left: no process, cgroup, state directory or host
//! mount.
//!
//! A point inside the container init (`init.*`) or the exec'd process
//! (`exec.before-ready`) runs in a process that cannot usefully kill itself
//! (it is pid 1 of its namespace): there the process hangs at the point and
//! the test SIGKILLs the runtime, i.e. the runtime dies while the init is at
//! that step.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::leaks::{TAG_VAR, assert_nothing_left, procs_tagged};
use common::{Bundle, RtOutput, is_runc, wait_for};
use serde_json::Value;

const STATUSES: [&str; 5] = ["creating", "created", "running", "paused", "stopped"];

macro_rules! require_fault_build {
    () => {
        require_root!();
        skip_if!(is_runc(), "fault injection is a bulkhead debug-build hook");
        skip_if!(
            !cfg!(debug_assertions),
            "BULKHEAD_FAULT is compiled out of release builds"
        );
    };
}

fn tag(b: &Bundle) -> String {
    format!("fault-{}", b.id)
}

/// A runtime command for `b` carrying the leak tag and, if given, a fault.
fn command(b: &Bundle, fault: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = b.rt_command();
    cmd.args(args).env(TAG_VAR, tag(b));
    if let Some(f) = fault {
        cmd.env("BULKHEAD_FAULT", f);
    }
    cmd
}

fn create_args(b: &Bundle) -> Vec<String> {
    b.write_config();
    vec![
        "create".into(),
        "--bundle".into(),
        b.dir().to_string_lossy().into_owned(),
        b.id.clone(),
    ]
}

/// Runs the runtime with `BULKHEAD_FAULT=<point>` and checks that it reached
/// the point and died of SIGKILL there.
#[track_caller]
fn crash_at(b: &Bundle, point: &str, args: &[&str]) -> RtOutput {
    let out = b.exec(command(b, Some(point), args));
    assert!(
        out.stderr.contains(&format!("fault point {point} reached")),
        "the runtime never reached {point}: {out}"
    );
    assert_eq!(out.status.signal(), Some(9), "not killed at {point}: {out}");
    out
}

/// Starts the runtime with `<point>=hang`, waits until some process of it
/// blocks there, and returns the runtime process (still running).
fn hang_at(b: &Bundle, point: &str, args: &[&str]) -> (Child, PathBuf) {
    let err_path = b.io_dir().join(format!("hang-{point}.stderr"));
    let mut cmd = command(b, Some(&format!("{point}=hang")), args);
    cmd.stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("spawn runtime");
    let needle = format!("fault point {point} reached");
    let reached = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            &format!("the runtime to reach {point}"),
            common::cmd_timeout(),
            || {
                fs::read_to_string(&err_path)
                    .ok()
                    .filter(|s| s.contains(&needle))
                    .map(drop)
            },
        )
    }));
    if let Err(e) = reached {
        let _ = child.kill();
        let _ = child.wait();
        eprintln!(
            "runtime stderr: {}",
            fs::read_to_string(&err_path).unwrap_or_default()
        );
        std::panic::resume_unwind(e);
    }
    (child, err_path)
}

fn kill_runtime(mut child: Child) {
    child.kill().expect("SIGKILL the runtime");
    let st = child.wait().expect("reap the runtime");
    assert_eq!(st.signal(), Some(9), "the runtime was not killed: {st:?}");
}

/// `state` either does not know the id, or reports a known status with a
/// pid that is 0 exactly when stopped or still creating.
#[track_caller]
fn state_is_sane(b: &Bundle) -> Option<String> {
    let out = b.rt(&["state", &b.id]);
    if !out.success() {
        assert!(
            out.stderr.contains("does not exist"),
            "state of a half-made container fails oddly: {out}"
        );
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"));
    let status = v["status"].as_str().unwrap_or_default().to_string();
    assert!(STATUSES.contains(&status.as_str()), "odd status: {out}");
    assert_eq!(v["id"], b.id.as_str(), "{out}");
    let pid = v["pid"].as_i64().unwrap_or(-1);
    match status.as_str() {
        "stopped" | "creating" => assert_eq!(pid, 0, "{out}"),
        _ => assert!(pid > 0, "{out}"),
    }
    Some(status)
}

/// `list` works, is valid JSON, and every entry is whole.
#[track_caller]
fn list_is_sane(b: &Bundle) -> Vec<Value> {
    let out = b.rt(&["list", "--format", "json"]);
    out.ok();
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("list is not JSON ({e}): {out}"));
    let entries = v.as_array().cloned().unwrap_or_default();
    for e in &entries {
        assert!(
            e["id"].is_string()
                && e["pid"].is_i64()
                && STATUSES.contains(&e["status"].as_str().unwrap_or_default()),
            "corrupt list entry {e}: {out}"
        );
    }
    b.rt(&["list"]).ok();
    entries
}

/// After a crash: sane `state`/`list`, then `delete --force` cleans all.
#[track_caller]
fn recover(b: &Bundle, extra_mounts: &[PathBuf]) {
    let status = state_is_sane(b);
    let listed = list_is_sane(b);
    if let Some(s) = &status {
        assert!(
            listed.iter().any(|e| e["id"] == b.id.as_str()),
            "state says {s} but list omits {}",
            b.id
        );
    }
    b.delete_force().ok();
    assert_nothing_left(b, &tag(b), extra_mounts);
    assert!(list_is_sane(b).is_empty(), "list after delete");
}

fn sleeper() -> Bundle {
    Bundle::new().probe(&["sleep", "600"])
}

/// Points in the runtime process during create.
const CREATE_POINTS: [&str; 8] = [
    "create.state-dir",
    "create.record",
    "create.cgroup",
    "create.clone",
    "create.stage1-placed",
    "create.init-forked",
    "create.init-ready",
    "create.saved",
];

/// Points in the container init; the runtime dies while the init is there.
const INIT_POINTS: [&str; 5] = [
    "init.namespaces",
    "init.mounts",
    "init.pivot",
    "init.security",
    "init.before-ready",
];

#[test]
fn create_killed_at_each_step() {
    require_fault_build!();
    for point in CREATE_POINTS {
        let b = sleeper();
        let args = create_args(&b);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pid_file = b.dir().join("pid");
        let mut with_pid = args.clone();
        with_pid.insert(3, "--pid-file");
        with_pid.insert(4, pid_file.to_str().unwrap());
        crash_at(&b, point, &with_pid);
        recover(&b, &[]);
        // The id is free again.
        b.create().ok();
        b.delete_force().ok();
    }
}

#[test]
fn runtime_killed_while_init_is_at_each_stage() {
    require_fault_build!();
    for point in INIT_POINTS {
        let b = sleeper();
        let args = create_args(&b);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, _) = hang_at(&b, point, &args);
        // Half-created, with the runtime still alive: "creating", pid 0.
        assert_eq!(state_is_sane(&b).as_deref(), Some("creating"), "at {point}");
        let listed = list_is_sane(&b);
        assert!(
            listed
                .iter()
                .any(|e| e["id"] == b.id.as_str() && e["status"] == "creating"),
            "list at {point}: {listed:?}"
        );
        // A second create of the same id waits for nobody and is refused.
        b.create().fails_with(&["already exists"]);
        kill_runtime(child);
        assert!(
            !procs_tagged(&tag(&b)).is_empty(),
            "the init should still hang at {point} (the runtime died, not it)"
        );
        assert_eq!(state_is_sane(&b).as_deref(), Some("stopped"), "at {point}");
        recover(&b, &[]);
    }
}

/// The init itself dies at a stage: create fails and cleans up by itself.
#[test]
fn init_dying_at_each_stage_fails_create_cleanly() {
    require_fault_build!();
    for point in INIT_POINTS {
        let b = sleeper();
        let args = create_args(&b);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = b.exec(command(&b, Some(&format!("{point}=exit")), &args));
        out.fails();
        assert!(
            out.stderr.contains(&format!("fault point {point} reached")),
            "{out}"
        );
        assert_nothing_left(&b, &tag(&b), &[]);
    }
}

/// Without a mount namespace the container's mounts are made in the host's;
/// a runtime killed after them must not leave them there.
#[test]
fn host_mount_namespace_mounts_are_detached_after_a_crash() {
    require_fault_build!();
    for point in ["init.mounts", "init.before-ready"] {
        let b = sleeper().without_namespace("mount").json_patch(|c| {
            c["linux"]["maskedPaths"] = serde_json::json!([]);
            c["linux"]["readonlyPaths"] = serde_json::json!([]);
        });
        let rootfs = b.dir().join("rootfs");
        let st = Command::new("cp")
            .arg("-a")
            .arg(common::rootfs())
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success(), "copy the rootfs");
        let b = b.json_patch(|c| c["root"]["path"] = serde_json::json!(rootfs));
        let args = create_args(&b);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, _) = hang_at(&b, point, &args);
        assert!(
            !common::leaks::mounts_mentioning(&rootfs).is_empty(),
            "the container made no host mount before {point}; the test shows nothing"
        );
        kill_runtime(child);
        recover(&b, &[rootfs]);
    }
}

#[test]
fn start_killed_at_each_step() {
    require_fault_build!();
    for point in ["start.fifo-opened", "start.fifo-written"] {
        let b = sleeper();
        b.create().ok();
        crash_at(&b, point, &["start", &b.id]);
        let status = state_is_sane(&b);
        assert!(
            matches!(status.as_deref(), Some("created" | "running")),
            "after start died at {point}: {status:?}"
        );
        if status.as_deref() == Some("created") {
            // A retried start finishes the job.
            b.start().ok();
            assert_eq!(b.status(), "running", "start retried after {point}");
        }
        recover(&b, &[]);
    }
}

#[test]
fn exec_killed_at_each_step() {
    require_fault_build!();
    for point in ["exec.placed", "exec.forked"] {
        let b = sleeper();
        b.create().ok();
        b.start().ok();
        crash_at(&b, point, &["exec", &b.id, "/bin/true"]);
        assert_eq!(state_is_sane(&b).as_deref(), Some("running"));
        // The container still works.
        b.rt(&["exec", &b.id, "/bin/true"]).ok();
        recover(&b, &[]);
    }
    // The exec'd process is set up and about to report: the runtime dies.
    let b = sleeper();
    b.create().ok();
    b.start().ok();
    let (child, _) = hang_at(&b, "exec.before-ready", &["exec", &b.id, "/bin/true"]);
    kill_runtime(child);
    assert!(
        !procs_tagged(&tag(&b)).is_empty(),
        "the exec process should still hang"
    );
    assert_eq!(state_is_sane(&b).as_deref(), Some("running"));
    recover(&b, &[]);
}

/// `exec` returns, and writes its pid file, only once the process runs the
/// program: held 2 s between its last report and its execve
/// (`exec.after-ready=pause`), the process is the program when `exec
/// --detach` returns (a containerd shim acts on that return: it reads the
/// pid file and opens the exec's fifos). Also without --detach.
#[test]
fn exec_returns_once_the_program_runs() {
    require_fault_build!();
    let b = sleeper();
    b.create().ok();
    b.start().ok();
    let pid_file = b.io_dir().join("exec.pid");
    let pid_file_s = pid_file.to_str().unwrap();
    let args = [
        "exec",
        "--detach",
        "--pid-file",
        pid_file_s,
        &b.id,
        "/bin/sleep",
        "600",
    ];
    let out = b.exec(command(&b, Some("exec.after-ready=pause"), &args));
    out.ok();
    assert!(out.stderr.contains("exec.after-ready reached"), "{out}");
    let pid = fs::read_to_string(&pid_file).unwrap();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep", "exec returned before the program ran");
    let out = b.exec(command(
        &b,
        Some("exec.after-ready=pause"),
        &["exec", &b.id, "/bin/sh", "-c", "echo ran; exit 3"],
    ));
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stdout, "ran\n", "{out}");
    recover(&b, &[]);
}

#[test]
fn delete_killed_at_each_step() {
    require_fault_build!();
    for point in ["delete.killed", "delete.cgroup-removed"] {
        let b = sleeper();
        b.create().ok();
        b.start().ok();
        crash_at(&b, point, &["delete", "--force", &b.id]);
        assert_eq!(
            state_is_sane(&b).as_deref(),
            Some("stopped"),
            "after delete died at {point}"
        );
        recover(&b, &[]);
    }
}

/// A state file torn by a power loss (it is renamed into place, so only a
/// power loss, never a crash, could do that): `list` skips it, `state`
/// names the problem, `delete --force` removes it.
#[test]
fn corrupt_state_file_is_reported_and_removable() {
    require_fault_build!();
    let b = sleeper();
    b.create().ok();
    b.kill("KILL").ok();
    b.wait_status("stopped");
    let state = b.state_root().join(&b.id).join("state.json");
    let bytes = fs::read(&state).unwrap();
    fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    b.rt(&["state", &b.id]).fails_with(&["corrupt state"]);
    let listed = list_is_sane(&b);
    assert!(listed.is_empty(), "list shows a corrupt entry: {listed:?}");
    b.rt(&["delete", &b.id]).fails_with(&["corrupt state"]);
    b.delete_force().ok();
    assert_nothing_left(&b, &tag(&b), &[]);
}

/// A create that lost its new state directory to a racing `delete --force`
/// (it had no record yet) and then found another create's container at the
/// path must report that the container exists and leave it alone. It used
/// to take that directory for its own, fail on its exec fifo, and remove
/// it, leaving the other create's init running with no state.
#[test]
fn create_racing_delete_and_create_leaves_the_winner_alone() {
    require_fault_build!();
    let b = sleeper();
    let args = create_args(&b);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = b.io_dir().join("slow-create.stderr");
    let mut slow = command(&b, Some("create.dir-made=pause"), &args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    wait_for(
        "the slow create's pause",
        std::time::Duration::from_secs(10),
        || {
            fs::read_to_string(&err)
                .ok()
                .filter(|s| s.contains("create.dir-made reached"))
                .map(drop)
        },
    );
    // Its directory has no record yet: delete --force removes it...
    b.delete_force().ok();
    // ... and a second create makes the container for real.
    b.exec(command(&b, None, &args)).ok();
    let st = slow.wait().unwrap();
    let msg = fs::read_to_string(&err).unwrap();
    assert!(!st.success(), "the slow create succeeded: {msg}");
    assert!(msg.contains("already exists"), "{msg}");
    let state: Value = serde_json::from_str(&b.rt(&["state", &b.id]).ok().stdout).unwrap();
    assert_eq!(state["status"], "created", "{state}");
    let pid = state["pid"].as_i64().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the winner's init is gone"
    );
    recover(&b, &[]);
}
