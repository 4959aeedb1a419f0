//! Learning a seccomp profile for OCI runs: `run/create --learn-seccomp
//! FILE` and the `io.bulkhead.seccomp.learn` annotation (bulkhead
//! extensions; runc has neither, so nothing here runs against it).
//! A learned profile lets the workload run again and refuses a syscall it
//! never made; the config's own profile still applies while learning; a
//! failing or killed workload yields a partial profile; bad input leaves
//! nothing behind (no state, no recorder).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Bundle, is_runc};
use serde_json::{Value, json};

const ANNOTATION: &str = "io.bulkhead.seccomp.learn";

fn read_profile(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn seen(p: &Value) -> Vec<String> {
    p["x-bulkhead-learned"]["syscalls"]
        .as_array()
        .unwrap_or_else(|| panic!("no syscalls recorded: {p}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Recorder processes (`bulkhead learn-recorder`) writing to `out`.
fn recorders_for(out: &Path) -> Vec<i32> {
    let needle = out.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("learn-recorder") && c.contains(needle.as_str())
            })
        })
        .collect()
}

/// The probe's JSON for `syscall NAME`: ok, or refused with errno.
fn syscall_result(b: &Bundle) -> Value {
    let out = b.run();
    out.ok();
    out.json()
}

#[test]
fn run_learns_a_profile_that_runs_the_workload_and_refuses_the_rest() {
    require_root!();
    skip_if!(is_runc(), "--learn-seccomp is a bulkhead extension");
    let dir = common::open_tempdir();
    let profile = dir.path().join("learned.json");
    let p = profile.to_str().unwrap();

    // No profile in the config: everything is recorded, the learned one is
    // an allow-list with an EPERM default.
    let b = Bundle::new().probe(&["syscall", "getpid"]);
    let out = b.run_with(&["--learn-seccomp", p]);
    out.ok();
    assert_eq!(out.json()["ok"], true, "{out}");
    // Written by the time `run` returns.
    let learned = read_profile(&profile);
    assert_eq!(learned["x-bulkhead-learned"]["complete"], true, "{learned}");
    assert_eq!(learned["x-bulkhead-learned"]["exitCode"], 0, "{learned}");
    let names = seen(&learned);
    for n in ["getpid", "execve", "exit_group"] {
        assert!(names.iter().any(|s| s == n), "{n} not recorded: {names:?}");
    }
    assert!(!names.iter().any(|s| s == "uname"), "{names:?}");
    assert_eq!(learned["defaultAction"], "SCMP_ACT_ERRNO", "{learned}");
    assert!(learned.get("listenerPath").is_none(), "{learned}");
    assert!(recorders_for(&profile).is_empty(), "recorder left running");

    // The workload runs under it...
    let mut under = learned.clone();
    under.as_object_mut().unwrap().remove("x-bulkhead-learned");
    let with = |args: &[&str]| {
        let under = under.clone();
        Bundle::new()
            .probe(args)
            .json_patch(move |c| c["linux"]["seccomp"] = under)
    };
    assert_eq!(syscall_result(&with(&["syscall", "getpid"]))["ok"], true);
    // ...and a syscall it never made is refused (EPERM), where the same
    // config without the profile reaches the kernel (EFAULT: a NULL buffer).
    let r = syscall_result(&with(&["syscall", "uname"]));
    assert_eq!(r["errno"], libc::EPERM, "{r}");
    let r = syscall_result(&Bundle::new().probe(&["syscall", "uname"]));
    assert_eq!(r["errno"], libc::EFAULT, "{r}");
}

#[test]
fn the_configs_own_profile_still_applies_while_learning() {
    require_root!();
    skip_if!(is_runc(), "--learn-seccomp is a bulkhead extension");
    let dir = common::open_tempdir();
    let profile = dir.path().join("learned.json");
    let p = profile.to_str().unwrap();
    // A deny-list that refuses uname with EACCES; no no_new_privileges, so
    // the filter is loaded before the runtime drops capabilities.
    let own = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]});
    let b = Bundle::new().probe(&["syscall", "uname"]).json_patch(|c| {
        c["linux"]["seccomp"] = own.clone();
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let out = b.run_with(&["--learn-seccomp", p]);
    out.ok();
    let r = out.json();
    assert_eq!(r["ok"], false, "refused while learning: {out}");
    assert_eq!(r["errno"], libc::EACCES, "{out}");
    let learned = read_profile(&profile);
    let names = seen(&learned);
    // Refused, so never recorded; the runtime's own steps after the early
    // filter (credentials) were.
    assert!(!names.iter().any(|s| s == "uname"), "{names:?}");
    assert!(names.iter().any(|s| s == "capset"), "{names:?}");
    // The deny rule is kept; what the default let through is now explicit.
    assert_eq!(learned["syscalls"][0], own["syscalls"][0], "{learned}");
    assert_eq!(learned["defaultAction"], "SCMP_ACT_ERRNO", "{learned}");

    // Run again under the learned profile (same no_new_privs setting).
    let mut under = learned.clone();
    under.as_object_mut().unwrap().remove("x-bulkhead-learned");
    let b = Bundle::new().probe(&["syscall", "uname"]).json_patch(|c| {
        c["linux"]["seccomp"] = under;
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let r = syscall_result(&b);
    assert_eq!(r["errno"], libc::EACCES, "{r}");
}

#[test]
fn annotation_learns_a_detached_container_and_a_failure_is_partial() {
    require_root!();
    skip_if!(is_runc(), "the annotation is a bulkhead extension");
    // The annotation may only name a file in the bundle directory (or
    // beneath /var/lib/bulkhead/learned).
    let annotated = |probe: &[&str]| {
        let b = Bundle::new().probe(probe);
        let profile = b.dir().join("by-annotation.json");
        let p = profile.to_str().unwrap().to_string();
        (
            b.json_patch(|c| c["annotations"] = json!({ANNOTATION: p})),
            profile,
        )
    };
    let (b, profile) = annotated(&["exit", "3"]);
    b.create().ok();
    assert_eq!(recorders_for(&profile).len(), 1, "one recorder");
    b.start().ok();
    // Written when the init exits, whoever reaps it.
    common::wait_for("the learned profile", Duration::from_secs(20), || {
        profile.exists().then_some(())
    });
    b.delete().ok();
    let learned = read_profile(&profile);
    assert_eq!(
        learned["x-bulkhead-learned"]["complete"], false,
        "{learned}"
    );
    assert_eq!(learned["x-bulkhead-learned"]["exitCode"], 3, "{learned}");
    assert!(seen(&learned).iter().any(|s| s == "execve"), "{learned}");
    assert!(recorders_for(&profile).is_empty(), "recorder left running");

    // Killed before it ever ran: delete writes what setup recorded, partial.
    let (b, profile) = annotated(&["sleep", "100"]);
    b.create().ok();
    b.delete_force().ok();
    let learned = read_profile(&profile);
    assert_eq!(
        learned["x-bulkhead-learned"]["complete"], false,
        "{learned}"
    );
    assert!(recorders_for(&profile).is_empty(), "recorder left running");
}

#[test]
fn bad_learning_requests_are_refused_and_leave_nothing() {
    require_root!();
    skip_if!(is_runc(), "--learn-seccomp is a bulkhead extension");
    let dir = common::open_tempdir();
    let ok_path = dir.path().join("x.json");
    let ok = ok_path.to_str().unwrap();
    let cases: Vec<(Bundle, Vec<&str>, Vec<&str>)> = vec![
        (
            Bundle::new().probe(&["report"]),
            vec!["--learn-seccomp", "/nonexistent-dir/x.json"],
            vec!["--learn-seccomp", "/nonexistent-dir", "does not exist"],
        ),
        (
            Bundle::new()
                .probe(&["report"])
                .json_patch(|c| c["annotations"] = json!({ANNOTATION: "rel/x.json"})),
            vec![],
            vec![ANNOTATION, "absolute"],
        ),
        (
            Bundle::new().probe(&["report"]).json_patch(|c| {
                c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "listenerPath": "/run/agent.sock",
                    "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]})
            }),
            vec!["--learn-seccomp", ok],
            vec!["--learn-seccomp", "listener"],
        ),
    ];
    for (b, flags, needles) in cases {
        b.create_with(&flags).fails_with(&needles);
        assert!(!b.state_root().join(&b.id).exists(), "state left");
        assert!(recorders_for(&ok_path).is_empty(), "recorder left");
        assert!(!ok_path.exists());
    }
}

/// The recorder outlives `create` as root: it must hold none of the fds the
/// engine gave `create` (pipes an engine waits on, --preserve-fds files).
#[test]
fn the_recorder_holds_none_of_the_callers_fds() {
    require_root!();
    skip_if!(is_runc(), "--learn-seccomp is a bulkhead extension");
    let dir = common::open_tempdir();
    let marker = dir.path().join("callers-file");
    let f = std::fs::File::create(&marker).unwrap();
    // Inheritable, as an engine's extra fds are.
    rustix::io::fcntl_setfd(&f, rustix::io::FdFlags::empty()).unwrap();
    let out = dir.path().join("p.json");
    let b = Bundle::new().probe(&["sleep", "100"]);
    b.create_with(&["--learn-seccomp", out.to_str().unwrap()])
        .ok();
    drop(f);
    let recs = recorders_for(&out);
    assert_eq!(recs.len(), 1, "one recorder");
    let held: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{}/fd", recs[0]))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(!held.contains(&marker), "the recorder holds {held:?}");
    b.delete_force().ok();
}
