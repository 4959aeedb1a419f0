//! Stress: many create/start/exec/kill/delete cycles from several threads
//! at once (each command a separate runtime process), on distinct ids and
//! racing on one id. Checked: every command returns (each is bounded by
//! `BULKHEAD_TEST_TIMEOUT`, so a deadlock fails the test), exit codes are
//! never lost, nothing leaks (process, cgroup, state directory, mount), and
//! a long-running runtime process keeps its fd count and memory flat.
//!
//! `BULKHEAD_STRESS_SCALE=N` multiplies the cycle counts (default 1: 80
//! container lifecycles, 480 racing calls and 55 execs, about 10 s on a
//! 2-core machine; docs/reliability.md has the long run).

#[macro_use]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::leaks::{TAG_VAR, procs_tagged};
use common::{Bundle, RtOutput, cgroup_dirs_named};

fn scale() -> usize {
    std::env::var("BULKHEAD_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn tag() -> String {
    format!("stress-{}", std::process::id())
}

/// The runtime with the leak tag in its environment.
#[track_caller]
fn rt(b: &Bundle, args: &[&str]) -> RtOutput {
    let mut cmd = b.rt_command();
    cmd.args(args).env(TAG_VAR, tag());
    b.exec(cmd)
}

/// A failure must be a clean refusal: an exit code (no signal), not a
/// panic, and a message.
#[track_caller]
fn clean(out: &RtOutput) {
    assert!(
        out.code().is_some_and(|c| c != 101) && !out.stderr.contains("panicked at"),
        "crash: {out}"
    );
    // 137: an exec'd process SIGKILLed by a racing kill or delete, whose
    // status `exec` passes on (as runc does); not a runtime failure.
    if !out.success() && out.code() != Some(137) {
        assert!(
            !out.stderr.trim().is_empty(),
            "failure without a message: {out}"
        );
    }
}

fn with_bundle_dir(b: &Bundle) -> String {
    b.write_config();
    b.dir().to_str().unwrap().to_owned()
}

/// One full cycle on a fresh id; returns nothing, panics on any problem.
fn cycle(root: &Path, worker: usize, n: usize) {
    let b = Bundle::in_root(root).probe(&["sleep", "600"]);
    let dir = with_bundle_dir(&b);
    rt(&b, &["create", "--bundle", &dir, &b.id]).ok();
    b.note_pid();
    rt(&b, &["start", &b.id]).ok();
    // Exit codes of exec'd processes come back exactly.
    let code = 1 + (worker * 7 + n) % 120;
    let script = format!("exit {code}");
    let out = rt(&b, &["exec", &b.id, "/bin/sh", "-c", &script]);
    assert_eq!(out.code(), Some(code as i32), "exec exit code: {out}");
    rt(&b, &["kill", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
    rt(&b, &["delete", &b.id]).ok();
    drop(b); // checks: no state, process, mount or cgroup left
    // `run` returns the container's own status.
    let b = Bundle::in_root(root).sh(&format!("exit {}", code + 1));
    let dir = with_bundle_dir(&b);
    let out = rt(&b, &["run", "--bundle", &dir, &b.id]);
    assert_eq!(out.code(), Some(code as i32 + 1), "run exit code: {out}");
}

#[test]
fn concurrent_cycles_on_distinct_ids() {
    require_root!();
    let root = tempfile::Builder::new()
        .prefix("bh-stress-")
        .tempdir()
        .unwrap();
    let workers = 4;
    let cycles = 10 * scale();
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let root = root.path().to_path_buf();
            std::thread::Builder::new()
                .name(format!("stress-{w}"))
                .spawn(move || {
                    for n in 0..cycles {
                        cycle(&root, w, n);
                    }
                })
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for t in threads {
        if let Err(e) = t.join() {
            failed.push(e);
        }
    }
    if let Some(e) = failed.pop() {
        std::panic::resume_unwind(e);
    }
    assert_root_empty(root.path());
}

/// Nothing but the shared cache is left in a state root.
#[track_caller]
fn assert_root_empty(root: &Path) {
    let left: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".cache")
        .collect();
    assert!(
        left.is_empty(),
        "state left in {}: {left:?}",
        root.display()
    );
    common::wait_for(
        "tagged runtime processes to go away",
        Duration::from_secs(10),
        || procs_tagged(&tag()).is_empty().then_some(()),
    );
}

/// Threads race create / start / exec / kill / delete / list on ONE id.
/// Any of them may be refused (the id exists, does not exist, is in the
/// wrong state), but cleanly, and every call returns; afterwards one
/// `delete --force` leaves nothing.
#[test]
fn racing_on_one_id() {
    require_root!();
    let root = tempfile::Builder::new()
        .prefix("bh-stress-")
        .tempdir()
        .unwrap();
    let id = format!("bh-race-{}", std::process::id());
    let workers = 4;
    let rounds = 15 * scale();
    let done = Arc::new(Barrier::new(workers));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (root, id, done) = (root.path().to_path_buf(), id.clone(), done.clone());
            std::thread::Builder::new()
                .name(format!("race-{w}"))
                .spawn(move || {
                    let mut b = Bundle::in_root(&root).probe(&["sleep", "600"]);
                    b.id = id.clone();
                    let dir = with_bundle_dir(&b);
                    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        for r in 0..rounds {
                            let ops: [&[&str]; 7] = [
                                &["create", "--bundle", &dir, &id],
                                &["start", &id],
                                &["exec", &id, "/bin/true"],
                                &["kill", &id, "KILL"],
                                &["delete", &id],
                                &["delete", "--force", &id],
                                &["state", &id],
                            ];
                            // Each worker walks the ops from its own offset.
                            for k in 0..ops.len() {
                                let op = ops[(k + w + r) % ops.len()];
                                let out = rt(&b, op);
                                clean(&out);
                                if op[0] == "delete" && op[1] == "--force" {
                                    assert!(out.success(), "delete --force failed: {out}");
                                }
                                if op[0] == "state" && out.success() {
                                    serde_json::from_str::<serde_json::Value>(&out.stdout)
                                        .unwrap_or_else(|e| panic!("state not JSON ({e}): {out}"));
                                }
                            }
                            let list = rt(&b, &["list", "--format", "json"]);
                            list.ok();
                            serde_json::from_str::<serde_json::Value>(list.stdout.trim())
                                .unwrap_or_else(|e| panic!("list not JSON ({e}): {list}"));
                        }
                    }));
                    // Everyone stops racing before anyone checks for leaks.
                    done.wait();
                    if let Err(e) = res {
                        std::mem::forget(b);
                        std::panic::resume_unwind(e);
                    }
                    rt(&b, &["delete", "--force", &id]).ok();
                    drop(b);
                })
                .unwrap()
        })
        .collect();
    let mut failed = Vec::new();
    for t in threads {
        if let Err(e) = t.join() {
            failed.push(e);
        }
    }
    if let Some(e) = failed.pop() {
        std::panic::resume_unwind(e);
    }
    assert_root_empty(root.path());
    let cg = cgroup_dirs_named(&id);
    assert!(cg.is_empty(), "cgroups left: {cg:?}");
}

/// The fds `pid` holds for good: the fewest of a few looks 30 ms apart, as
/// `events` opens a cgroup file or two for each 100 ms reading (a look in
/// the middle of one saw 8 where 7 are held; a leak raises the floor).
fn fd_count(pid: u32) -> usize {
    (0..6)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count())
                .unwrap_or(0)
        })
        .min()
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().expect("spawn runtime")
}

/// A foreground `run` and an `events` stream stay up while many `exec`s
/// come and go: their fd counts do not grow and their memory stays put.
#[test]
fn long_running_runtime_processes_stay_flat() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    let dir = with_bundle_dir(&b);
    let mut run_cmd = b.rt_command();
    run_cmd.args(["run", "--bundle", &dir, &b.id]);
    let mut run = spawn_quiet(run_cmd);
    common::wait_for("the container to run", Duration::from_secs(30), || {
        let st = b.rt(&["state", &b.id]);
        st.stdout.contains("\"running\"").then_some(())
    });
    b.note_pid();
    let mut ev_cmd = b.rt_command();
    ev_cmd.args(["events", "--interval", "100ms", &b.id]);
    let mut events = spawn_quiet(ev_cmd);
    let execs = |n: usize| {
        for _ in 0..n {
            b.rt(&["exec", &b.id, "/bin/true"]).ok();
        }
    };
    execs(5);
    let first = (fd_count(run.id()), fd_count(events.id()));
    let rss = (rss_kib(run.id()), rss_kib(events.id()));
    execs(50 * scale());
    let later = (fd_count(run.id()), fd_count(events.id()));
    let rss_later = (rss_kib(run.id()), rss_kib(events.id()));
    assert!(first.0 > 0 && first.1 > 0, "no fds seen: {first:?}");
    assert_eq!(first, later, "fd counts (run, events) grew");
    // Allocator noise is fine; a leak per exec or per interval is not.
    assert!(
        rss_later.0 <= rss.0 + 2048 && rss_later.1 <= rss.1 + 2048,
        "memory (KiB) of (run, events) grew from {rss:?} to {rss_later:?}"
    );
    b.kill("KILL").ok();
    let st = run.wait().unwrap();
    assert_eq!(st.code(), Some(137), "run reports the container's SIGKILL");
    let st = events.wait().unwrap();
    assert!(
        st.success(),
        "events ends cleanly when the container stops: {st:?}"
    );
    let _ = (run.kill(), events.kill());
}
