//! CLI misuse and invalid configurations: the runtime must fail cleanly
//! (non-zero exit, a message, nothing left behind).

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Bundle, rt};
use serde_json::json;

#[test]
fn unknown_command_fails() {
    require_root!();
    let root = tempfile::tempdir().unwrap();
    rt(root.path(), &["no-such-command"]).fails();
}

#[test]
fn unknown_flag_fails() {
    require_root!();
    let b = Bundle::new();
    b.rt(&["state", "--no-such-flag", &b.id]).fails();
}

#[test]
fn commands_without_id_fail() {
    require_root!();
    let root = tempfile::tempdir().unwrap();
    for cmd in ["create", "start", "state", "kill", "delete", "run"] {
        let out = rt(root.path(), &[cmd]);
        out.fails();
        assert!(
            !out.stderr.trim().is_empty(),
            "no message for `{cmd}`: {out}"
        );
    }
}

#[test]
fn too_many_arguments_fail() {
    require_root!();
    let b = Bundle::new();
    b.rt(&["state", &b.id, "extra"]).fails();
    b.rt(&["kill", &b.id, "KILL", "extra"]).fails();
}

#[test]
fn start_missing_fails() {
    require_root!();
    let b = Bundle::new();
    b.start().fails_with(&["does not exist"]);
}

#[test]
fn kill_invalid_signal_fails() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    for bad in ["NOTASIGNAL", "SIGFOO", "-1", "abc", "99999"] {
        b.kill(bad).fails();
    }
    assert_eq!(
        b.status(),
        "running",
        "an invalid kill disturbed the container"
    );
}

#[test]
fn kill_created_container() {
    require_root!();
    // A created (not started) container can be killed; it becomes stopped.
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.kill("KILL").ok();
    b.wait_status("stopped");
    b.delete().ok();
}

#[test]
fn start_stopped_container_fails() {
    require_root!();
    let b = Bundle::new().probe(&["exit", "0"]);
    b.create().ok();
    b.start().ok();
    b.wait_status("stopped");
    b.start().fails();
}

#[test]
fn config_without_process_fails_create() {
    require_root!();
    let b = Bundle::new().json_patch(|c| {
        c.as_object_mut().unwrap().remove("process");
    });
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn config_without_root_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| {
        c.as_object_mut().unwrap().remove("root");
    });
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn config_with_empty_args_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| c["process"]["args"] = json!([]));
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn config_with_wrong_types_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| c["process"]["user"]["uid"] = json!("zero"));
    b.create().fails();
    let b = Bundle::new().json_patch(|c| c["mounts"] = json!({"not": "a list"}));
    b.create().fails();
}

#[test]
fn missing_config_json_fails() {
    require_root!();
    let b = Bundle::new();
    // No write_config: the bundle dir has no config.json.
    let out = b.rt(&["create", "--bundle", b.dir().to_str().unwrap(), &b.id]);
    out.fails();
    assert!(
        out.stderr.to_lowercase().contains("config.json"),
        "message should name config.json: {out}"
    );
}

#[test]
fn mount_without_destination_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "tmpfs", "source": "tmpfs"}))
    });
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn unknown_mount_type_fails() {
    require_root!();
    let b = Bundle::new().mount("/mnt/a", "no-such-fs-type", "none", &[]);
    b.create().fails();
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn state_root_is_created_private() {
    require_root!();
    let parent = common::open_tempdir();
    let root = parent.path().join("a").join("b");
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.write_config();
    let mut cmd = std::process::Command::new(common::runtime());
    cmd.arg("--root")
        .arg(&root)
        .args(["create", "--bundle", b.dir().to_str().unwrap(), &b.id]);
    b.exec(cmd).ok();
    let mode = fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode & 0o077,
        0,
        "state root is accessible to others: {mode:o}"
    );
    // Cleanup through the same root.
    let mut cmd = std::process::Command::new(common::runtime());
    cmd.arg("--root")
        .arg(&root)
        .args(["delete", "--force", &b.id]);
    b.exec(cmd).ok();
}

#[test]
fn relative_pid_file_is_relative_to_cwd() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.write_config();
    let cwd = common::open_tempdir();
    let mut cmd = b.rt_command();
    cmd.args([
        "create",
        "--pid-file",
        "rel.pid",
        "--bundle",
        b.dir().to_str().unwrap(),
        &b.id,
    ])
    .current_dir(cwd.path());
    b.exec(cmd).ok();
    let pid = b.note_pid();
    let text = fs::read_to_string(cwd.path().join("rel.pid")).expect("pid file in cwd");
    assert_eq!(text, pid.to_string());
}

#[test]
fn failed_create_leaves_no_pid_file() {
    require_root!();
    let b = Bundle::new().args(&["/does/not/exist"]);
    let pid_file = b.dir().join("x.pid");
    b.create_with(&["--pid-file", pid_file.to_str().unwrap()])
        .fails();
    assert!(!pid_file.exists(), "pid file written for a failed create");
}

#[test]
fn no_pivot_and_no_new_keyring_flags() {
    require_root!();
    let b = Bundle::new();
    let out = b.run_with(&["--no-pivot", "--no-new-keyring"]);
    out.ok();
    assert_eq!(out.json()["pid"], 1);
}

#[test]
fn kill_all_flag() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    b.start().ok();
    b.rt(&["kill", "--all", &b.id, "KILL"]).ok();
    b.wait_status("stopped");
}

#[test]
fn help_and_version() {
    require_root!();
    let root = tempfile::tempdir().unwrap();
    let v = rt(root.path(), &["--version"]);
    v.ok();
    assert!(
        v.stdout.contains("spec"),
        "version should name the spec: {v}"
    );
    rt(root.path(), &["--help"]).ok();
}

/// A reader that quits early (`bulkhead list | head -0`) gets an error
/// message and exit 1 from the runtime, not a panic.
#[test]
fn closed_stdout_is_an_error_not_a_panic() {
    use std::process::{Command, Stdio};
    let root = tempfile::tempdir().unwrap();
    for args in [&["features"][..], &["list"], &["--version"][..]] {
        // The read end is closed before the runtime starts.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
            .arg("--root")
            .arg(root.path())
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        if args == ["--version"] {
            continue; // nothing to report it to but stderr; no panic is enough
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("Broken pipe"), "{args:?}: {err}");
    }
}
