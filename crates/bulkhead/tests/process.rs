//! The container process: args, env, cwd, user, umask, rlimits,
//! capabilities, no_new_privs, oom score, inherited fds, exec errors.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Bundle, PROBE, cap_mask, caps_to_mask, host_file};
use serde_json::{Value, json};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn env_map(report: &Value) -> BTreeMap<String, String> {
    report["env"]
        .as_object()
        .expect("env object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

#[test]
fn args_are_passed_verbatim() {
    require_root!();
    let b = Bundle::new().args(&[
        "/bin/sh",
        "-c",
        "printf '[%s]' \"$0\" \"$@\"",
        "zero",
        "a b",
        "",
        "c*",
    ]);
    let out = b.run();
    out.ok();
    assert_eq!(out.stdout, "[zero][a b][][c*]");
}

#[test]
fn env_is_exactly_the_config_plus_home() {
    require_root!();
    let r = Bundle::new()
        .env(&[PATH, "A=1", "B=two words", "EMPTY=", "EQ=x=y"])
        .run_probe();
    let env = env_map(&r);
    let mut want: BTreeMap<String, String> = [
        ("PATH", &PATH[5..]),
        ("A", "1"),
        ("B", "two words"),
        ("EMPTY", ""),
        ("EQ", "x=y"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // HOME is filled in from /etc/passwd when the config lacks it.
    want.insert("HOME".into(), "/root".into());
    assert_eq!(env, want);
}

#[test]
fn home_from_config_is_kept() {
    require_root!();
    let r = Bundle::new().env(&[PATH, "HOME=/data"]).run_probe();
    assert_eq!(env_map(&r)["HOME"], "/data");
}

#[test]
fn home_for_non_root_user() {
    require_root!();
    let r = Bundle::new().env(&[PATH]).user(1000, 1000, &[]).run_probe();
    assert_eq!(env_map(&r)["HOME"], "/home/tester");
}

#[test]
fn cwd_is_applied() {
    require_root!();
    for dir in ["/", "/home/tester", "/opt/secret/sub"] {
        let r = Bundle::new().cwd(dir).run_probe();
        assert_eq!(r["cwd"], dir);
    }
}

#[test]
fn path_lookup_of_relative_arg0() {
    require_root!();
    let b = Bundle::new().args(&["bulkhead-probe", "exit", "6"]);
    assert_eq!(b.run().code(), Some(6));
}

#[test]
fn user_uid_gid_and_additional_gids() {
    require_root!();
    let r = Bundle::new().user(1000, 1000, &[3000, 4000]).run_probe();
    for k in ["uid", "euid", "suid", "fsuid"] {
        assert_eq!(r[k], 1000, "{k}: {r}");
    }
    for k in ["gid", "egid", "sgid", "fsgid"] {
        assert_eq!(r[k], 1000, "{k}");
    }
    let mut groups: Vec<u64> = serde_json::from_value(r["groups"].clone()).unwrap();
    groups.sort_unstable();
    // Exactly additionalGids: /etc/group membership of the numeric uid
    // (tester is listed in `extra`, 2000) is not added.
    assert_eq!(groups, vec![3000, 4000]);
}

#[test]
fn user_without_additional_gids() {
    require_root!();
    let r = Bundle::new().user(4242, 4343, &[]).run_probe();
    assert_eq!(r["uid"], 4242);
    assert_eq!(r["gid"], 4343);
    let groups = r["groups"].as_array().unwrap();
    assert!(groups.is_empty(), "unexpected groups {groups:?}");
}

#[test]
fn root_user_has_no_stray_groups() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["uid"], 0);
    assert_eq!(r["gid"], 0);
    let groups: Vec<u64> = serde_json::from_value(r["groups"].clone()).unwrap();
    assert!(
        groups.iter().all(|g| *g == 0),
        "root should have no supplementary groups but {groups:?}"
    );
}

#[test]
fn umask_default_is_022() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["umask"], 0o022);
}

#[test]
fn umask_from_config() {
    require_root!();
    for mask in [0o077u32, 0o002, 0] {
        let r = Bundle::new()
            .json_patch(|c| c["process"]["user"]["umask"] = json!(mask))
            .run_probe();
        assert_eq!(r["umask"], mask, "umask {mask:o}");
    }
}

#[test]
fn rlimit_nofile() {
    require_root!();
    let r = Bundle::new()
        .json_patch(|c| {
            c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 1000}])
        })
        .run_probe();
    assert_eq!(
        r["rlimits"]["RLIMIT_NOFILE"],
        json!({"soft": 1000, "hard": 1000})
    );
}

#[test]
fn rlimits_several() {
    require_root!();
    let r = Bundle::new()
        .json_patch(|c| {
            c["process"]["rlimits"] = json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 2048},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_NPROC", "soft": 333, "hard": 444},
                {"type": "RLIMIT_MSGQUEUE", "soft": 1024, "hard": 4096}
            ])
        })
        .run_probe();
    let rl = &r["rlimits"];
    assert_eq!(rl["RLIMIT_NOFILE"], json!({"soft": 512, "hard": 2048}));
    assert_eq!(rl["RLIMIT_CORE"], json!({"soft": 0, "hard": 0}));
    assert_eq!(rl["RLIMIT_NPROC"], json!({"soft": 333, "hard": 444}));
    assert_eq!(rl["RLIMIT_MSGQUEUE"], json!({"soft": 1024, "hard": 4096}));
}

#[test]
fn rlimit_unknown_type_fails() {
    require_root!();
    let b = Bundle::new().json_patch(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
    });
    b.create().fails();
}

fn check_caps(r: &Value, sets: &[(&str, &[&str])]) {
    for (field, names) in sets {
        let got = cap_mask(r["status"][*field].as_str().expect("cap field"));
        assert_eq!(
            got,
            caps_to_mask(names),
            "{field}: got {got:#x}, want {names:?} ({:#x})",
            caps_to_mask(names)
        );
    }
}

#[test]
fn capabilities_default_set() {
    require_root!();
    let three: &[&str] = &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let r = Bundle::new().run_probe();
    // The base config has no inheritable set, so ambient cannot be raised
    // either (ambient ⊆ inheritable ∩ permitted).
    check_caps(
        &r,
        &[
            ("CapBnd", three),
            ("CapEff", three),
            ("CapPrm", three),
            ("CapInh", &[]),
            ("CapAmb", &[]),
        ],
    );
}

#[test]
fn capabilities_all_five_sets() {
    require_root!();
    let bounding = [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_RAW",
        "CAP_SYS_ADMIN",
        "CAP_SETUID",
    ];
    let permitted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN"];
    // For uid 0, execve makes effective equal to permitted whatever was set
    // before it (and with no_new_privs permitted cannot grow past the
    // pre-exec set), so a distinct effective set is not observable here.
    let effective = permitted;
    let inheritable = ["CAP_KILL", "CAP_NET_RAW"];
    let ambient = ["CAP_KILL"];
    let r = Bundle::new()
        .json_patch(|c| {
            c["process"]["capabilities"] = json!({
                "bounding": bounding, "permitted": permitted, "effective": effective,
                "inheritable": inheritable, "ambient": ambient
            })
        })
        .run_probe();
    check_caps(
        &r,
        &[
            ("CapBnd", &bounding),
            ("CapPrm", &permitted),
            ("CapEff", &effective),
            ("CapInh", &inheritable),
            ("CapAmb", &ambient),
        ],
    );
}

#[test]
fn capabilities_for_non_root_user() {
    require_root!();
    let caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let r = Bundle::new()
        .user(1000, 1000, &[])
        .json_patch(|c| {
            c["process"]["capabilities"] = json!({
                "bounding": caps, "permitted": caps, "effective": caps,
                "inheritable": caps, "ambient": caps
            })
        })
        .run_probe();
    assert_eq!(r["uid"], 1000);
    check_caps(
        &r,
        &[
            ("CapBnd", &caps),
            ("CapPrm", &caps),
            ("CapEff", &caps),
            ("CapInh", &caps),
            ("CapAmb", &caps),
        ],
    );
}

#[test]
fn non_root_user_without_ambient_has_no_effective_caps() {
    require_root!();
    let caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"];
    let r = Bundle::new()
        .user(1000, 1000, &[])
        .json_patch(|c| {
            c["process"]["capabilities"] =
                json!({"bounding": caps, "permitted": caps, "effective": caps})
        })
        .run_probe();
    // execve as a non-root user drops permitted/effective unless ambient.
    check_caps(
        &r,
        &[
            ("CapBnd", &caps),
            ("CapPrm", &[]),
            ("CapEff", &[]),
            ("CapAmb", &[]),
        ],
    );
}

#[test]
fn capabilities_empty() {
    require_root!();
    let r = Bundle::new()
        .json_patch(|c| c["process"]["capabilities"] = json!({}))
        .run_probe();
    check_caps(
        &r,
        &[
            ("CapBnd", &[]),
            ("CapPrm", &[]),
            ("CapEff", &[]),
            ("CapInh", &[]),
            ("CapAmb", &[]),
        ],
    );
}

#[test]
fn unknown_capability_is_rejected_or_ignored() {
    require_root!();
    // runc 1.1 ignores unknown capability names with a warning; rejecting
    // them is also acceptable. Either way a known one must still apply.
    let b = Bundle::new().json_patch(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NOT_A_THING"],
            "permitted": ["CAP_KILL"], "effective": ["CAP_KILL"]
        })
    });
    let out = b.run();
    if out.success() {
        let r = out.json();
        check_caps(&r, &[("CapBnd", &["CAP_KILL"]), ("CapEff", &["CAP_KILL"])]);
    }
}

#[test]
fn no_new_privileges() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["status"]["NoNewPrivs"], "1");
    let r = Bundle::new()
        .json_patch(|c| c["process"]["noNewPrivileges"] = json!(false))
        .run_probe();
    assert_eq!(r["status"]["NoNewPrivs"], "0");
}

#[test]
fn oom_score_adj_raised() {
    require_root!();
    let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Only raise it: lowering needs CAP_SYS_RESOURCE, which root may lack.
    let want = (own + 500).min(1000);
    let r = Bundle::new()
        .json_patch(|c| c["process"]["oomScoreAdj"] = json!(want))
        .run_probe();
    assert_eq!(r["oom_score_adj"], want);
}

#[test]
fn oom_score_adj_unset_is_inherited() {
    require_root!();
    let own: i64 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let r = Bundle::new().run_probe();
    assert_eq!(r["oom_score_adj"], own);
}

fn fd_numbers(r: &Value) -> Vec<i64> {
    r["fds"]
        .as_array()
        .expect("fds")
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect()
}

#[test]
fn only_stdio_fds_in_run() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(fd_numbers(&r), vec![0, 1, 2], "fds: {}", r["fds"]);
}

#[test]
fn leaked_fd3_not_visible_after_create() {
    require_root!();
    let (_d, marker) = host_file("leaked-marker", "x");
    let b = Bundle::new();
    b.write_config();
    let dir = b.dir().to_str().unwrap().to_string();
    b.rt_with_fd3(&marker, &["create", "--bundle", &dir, &b.id])
        .ok();
    b.note_pid();
    b.start().ok();
    b.wait_status("stopped");
    let (out, _) = b.container_output();
    let r = common::parse_last_json(&out).expect("probe output");
    assert_eq!(fd_numbers(&r), vec![0, 1, 2], "fds: {}", r["fds"]);
    for f in r["fds"].as_array().unwrap() {
        assert!(
            !f["target"].as_str().unwrap().contains("leaked-marker"),
            "leaked fd visible: {f}"
        );
    }
}

#[test]
fn leaked_fd3_not_visible_in_run() {
    require_root!();
    let (_d, marker) = host_file("leaked-marker", "x");
    let b = Bundle::new();
    b.write_config();
    let dir = b.dir().to_str().unwrap().to_string();
    let out = b.rt_with_fd3(&marker, &["run", "--bundle", &dir, &b.id]);
    out.ok();
    assert_eq!(fd_numbers(&out.json()), vec![0, 1, 2]);
}

#[test]
fn preserve_fds_keeps_fd3() {
    require_root!();
    let (_d, marker) = host_file("preserved-marker", "x");
    let b = Bundle::new();
    b.write_config();
    let dir = b.dir().to_str().unwrap().to_string();
    let out = b.rt_with_fd3(
        &marker,
        &["run", "--preserve-fds", "1", "--bundle", &dir, &b.id],
    );
    out.ok();
    let r = out.json();
    assert_eq!(fd_numbers(&r), vec![0, 1, 2, 3], "fds: {}", r["fds"]);
    let target = r["fds"][3]["target"].as_str().unwrap();
    assert!(target.ends_with("preserved-marker"), "fd 3 -> {target}");
}

#[test]
fn preserve_fds_with_create() {
    require_root!();
    let (_d, marker) = host_file("preserved-marker", "x");
    let b = Bundle::new();
    b.write_config();
    let dir = b.dir().to_str().unwrap().to_string();
    b.rt_with_fd3(
        &marker,
        &["create", "--preserve-fds=1", "--bundle", &dir, &b.id],
    )
    .ok();
    b.note_pid();
    b.start().ok();
    b.wait_status("stopped");
    let r = common::parse_last_json(&b.container_output().0).expect("probe output");
    assert_eq!(fd_numbers(&r), vec![0, 1, 2, 3], "fds: {}", r["fds"]);
}

#[test]
fn stdin_is_passed_through() {
    require_root!();
    let (_d, input) = host_file("input", "hello from stdin\n");
    let b = Bundle::new().args(&["/bin/cat"]);
    b.write_config();
    let mut cmd = b.rt_command();
    cmd.args(["run", "--bundle", b.dir().to_str().unwrap(), &b.id])
        .stdin(std::fs::File::open(&input).unwrap());
    let out = b.exec(cmd);
    out.ok();
    assert_eq!(out.stdout, "hello from stdin\n");
}

#[test]
fn no_tty_without_terminal() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(
        r["ttyname"],
        json!({"stdin": null, "stdout": null, "stderr": null})
    );
}

#[test]
fn missing_absolute_executable_fails_create() {
    require_root!();
    let b = Bundle::new().args(&["/does/not/exist"]);
    b.create()
        .fails_with(&["no such file or directory", "executable file not found"]);
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn missing_relative_executable_fails_create() {
    require_root!();
    let b = Bundle::new().args(&["no-such-command-here"]);
    b.create()
        .fails_with(&["executable file not found", "no such file or directory"]);
    b.rt(&["state", &b.id]).fails();
}

#[test]
fn non_executable_file_fails() {
    require_root!();
    let b = Bundle::new().args(&["/etc/passwd"]);
    let out = b.run();
    out.fails();
    let err = out.stderr.to_lowercase();
    assert!(
        err.contains("permission denied") || err.contains("exec format error"),
        "{out}"
    );
}

#[test]
fn missing_executable_in_run_fails() {
    require_root!();
    let b = Bundle::new().args(&["/does/not/exist"]);
    let out = b.run();
    out.fails_with(&["no such file or directory", "executable file not found"]);
}

#[test]
fn pid_is_1_and_ppid_0() {
    require_root!();
    let r = Bundle::new().run_probe();
    assert_eq!(r["pid"], 1);
    assert_eq!(r["ppid"], 0);
}

#[test]
fn probe_exists_in_rootfs() {
    require_root!();
    let r = Bundle::new().probe_result(&["exec-check", PROBE]);
    assert_eq!(r["ok"], true, "{r}");
}

#[test]
fn signal_wait_probe_exit_code() {
    require_root!();
    // Foreground run of a process that handles TERM: killing it with TERM
    // through the runtime gives 128+15.
    let b = Bundle::new().probe(&["signal-wait"]);
    b.write_config();
    let mut cmd = b.rt_command();
    cmd.args(["run", "--bundle", b.dir().to_str().unwrap(), &b.id]);
    let io = b.io_dir();
    let runner = std::thread::spawn(move || common::run_cmd(cmd, &io, common::cmd_timeout()));
    // Wait until the probe said it is ready (its stdout is the run's).
    common::wait_for("probe ready", Duration::from_secs(10), || {
        let ready = std::fs::read_dir(b.io_dir()).ok()?.flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".stdout")
                && std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains("ready")
        });
        ready.then_some(())
    });
    b.kill("TERM").ok();
    let out = runner.join().unwrap();
    assert_eq!(out.code(), Some(128 + 15), "{out}");
}
