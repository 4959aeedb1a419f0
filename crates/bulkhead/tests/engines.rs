//! The runtime under real container engines: podman (with conmon),
//! containerd (with its runc v2 shim, through `ctr`) and docker (a private
//! dockerd on a private containerd) drive it through the same CLI as they
//! drive runc. Each test uses private storage, state directories, sockets
//! and cgroup parents, no network, and the shared test rootfs imported as
//! an image; guards stop the daemons and remove containers on drop, also
//! when a test fails. A missing engine skips its tests with a printed
//! reason. The CRI path is in tests/cri.rs.

#[macro_use]
mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::containerd::Containerd;
use common::daemon::{stop_daemon, unmount_under};
use common::podman::{IMAGE, NO_NETWORK_AND_LIMITS, Podman};
use common::{RtOutput, run_cmd, runtime};
use serde_json::Value;
use tempfile::TempDir;

/// A private containerd holding the test rootfs as [`IMAGE`] (exported from
/// podman); `None` (with a printed reason) when either is missing.
fn containerd_with_image() -> Option<Containerd> {
    let p = Podman::new()?;
    let c = Containerd::new()?;
    c.import_image(&p);
    Some(c)
}

/// The fd numbers open in a probe report.
fn fd_numbers(report: &Value) -> Vec<i64> {
    report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect()
}

/// `cmd` as a shell command line, every argument quoted (for `script`).
fn shell_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        line.push_str(" '");
        line.push_str(&a.to_string_lossy());
        line.push('\'');
    }
    line
}

#[test]
fn podman_run_exit_code() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let out = p.run_container(&[], &["/bin/bulkhead-probe", "exit", "3"]);
    assert_eq!(out.code(), Some(3), "{out}");
}

#[test]
fn podman_run_probe_report() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let out = p.run_container(
        &["--hostname", "podman-test", "--env", "FROM_PODMAN=yes"],
        &["/bin/bulkhead-probe", "report"],
    );
    out.ok();
    let r = out.json();
    assert_eq!(r["pid"], 1);
    assert_eq!(r["hostname"], "podman-test");
    assert_eq!(r["env"]["FROM_PODMAN"], "yes");
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"]["soft"], 1024);
}

#[test]
fn podman_run_with_tty() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    // conmon receives the pty master over --console-socket.
    let out = p.run_container(&["-t"], &["/bin/sh", "-c", "tty"]);
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
}

#[test]
fn podman_detached_stop_and_remove() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let signal_wait = ["/bin/bulkhead-probe", "signal-wait"];
    p.run_detached("bh-detached", &[], &signal_wait).ok();
    let st = p.run(&["inspect", "--format", "{{.State.Status}}", "bh-detached"]);
    st.ok();
    assert_eq!(st.stdout.trim(), "running", "{st}");
    // TERM reaches the probe's handler: it exits 128+15 well before the
    // stop timeout would escalate to KILL.
    let stop = p.run(&["stop", "--time", "20", "bh-detached"]);
    stop.ok();
    let code = p.run(&["inspect", "--format", "{{.State.ExitCode}}", "bh-detached"]);
    code.ok();
    assert_eq!(code.stdout.trim(), "143", "{code}");
    p.run(&["rm", "bh-detached"]).ok();
}

#[test]
fn podman_read_only_and_user() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let out = p.run_container(
        &["--read-only", "--user", "1000:1000"],
        &["/bin/bulkhead-probe", "report"],
    );
    out.ok();
    let r = out.json();
    assert_eq!(r["uid"], 1000);
    assert_eq!(r["gid"], 1000);
    let out = p.run_container(
        &["--read-only"],
        &["/bin/bulkhead-probe", "write", "/etc/x"],
    );
    out.ok();
    assert_eq!(out.json()["errno"], libc::EROFS);
}

#[test]
fn containerd_run_exit_code_and_report() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    let exit = ["/bin/bulkhead-probe", "exit", "3"];
    let out = c.run_task(&["--rm"], "bh-exit", &exit);
    assert_eq!(out.code(), Some(3), "{out}");

    let report = ["/bin/bulkhead-probe", "report"];
    let out = c.run_task(&["--rm"], "bh-report", &report);
    out.ok();
    let r = out.json();
    assert_eq!(r["pid"], 1);
    // The shim hands the runtime an extra fd; none may reach the container
    // beyond its stdio.
    assert_eq!(fd_numbers(&r), vec![0, 1, 2], "{}", r["fds"]);
}

#[test]
fn containerd_detached_task_kill_and_delete() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    let command = ["/bin/bulkhead-probe", "signal-wait"];
    c.run_task(&["-d"], "bh-task", &command).ok();
    let running = common::wait_for("task running", Duration::from_secs(10), || {
        let ls = c.run(&["task", "ls"]);
        ls.stdout.contains("RUNNING").then_some(ls)
    });
    assert!(running.stdout.contains("bh-task"), "{running}");
    c.run(&["task", "kill", "bh-task"]).ok();
    common::wait_for("task stopped", Duration::from_secs(10), || {
        let ls = c.run(&["task", "ls"]);
        ls.stdout.contains("STOPPED").then_some(())
    });
    c.delete_task("bh-task");
    let ls = c.run(&["task", "ls"]);
    assert!(!ls.stdout.contains("bh-task"), "{ls}");
}

/// `bulkhead audit --pid` of containers containerd started (through its
/// runc v2 shim) with the runtime under test and with runc, one with the
/// default seccomp profile and an added capability, one with neither and the
/// host's network: the audit's live view matches what the probe sees inside.
#[test]
fn containerd_container_audited_by_pid_matches_the_probe() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    let mut runtimes = vec![runtime()];
    match find_bin("runc") {
        Some(runc) if !runtimes.contains(&runc) => runtimes.push(runc),
        Some(_) => {}
        None => eprintln!("runc is not installed: audited under the runtime under test only"),
    }
    let variants: [&[&str]; 2] = [
        &["--seccomp", "--cap-add", "CAP_NET_ADMIN"],
        &["--net-host"],
    ];
    for (i, rt) in runtimes.iter().enumerate() {
        for (j, extra) in variants.iter().enumerate() {
            let id = format!("bh-audit-{i}-{j}");
            let sleep = ["/bin/bulkhead-probe", "sleep", "300"];
            let pid = c.start_task_under(rt.to_str().unwrap(), extra, &id, &sleep);
            common::audit::wait_for_probe(&pid);
            let out = c.exec_logged(&id, "report", &["/bin/bulkhead-probe", "report"]);
            out.ok();
            let inside = out.json();
            let (_, report) = common::audit::audit_pid(&pid, c.io.path());
            let what = format!("{} {extra:?}", rt.display());
            eprintln!("audited {what}: verdict {}", report["verdict"]);
            common::audit::assert_live_matches_probe(&report, &inside);
            c.kill_and_delete(&id);
        }
    }
}

/// The host directory of `pid`'s cgroup for a v1 `controller` (from
/// `/proc/<pid>/cgroup` and the mount table), or the cgroup2 one.
fn cgroup_dir_of(pid: &str, controller: &str) -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for m in mountinfo.lines() {
        let Some((pre, post)) = m.split_once(" - ") else {
            continue;
        };
        let point = pre.split(' ').nth(4).unwrap_or("");
        let mut post = post.split(' ');
        let (fstype, opts) = (post.next().unwrap_or(""), post.nth(1).unwrap_or(""));
        if fstype == "cgroup" && opts.split(',').any(|o| o == controller) {
            let path = lines
                .lines()
                .find_map(|l| {
                    let mut it = l.splitn(3, ':');
                    let (_, c, p) = (it.next()?, it.next()?, it.next()?);
                    c.split(',').any(|x| x == controller).then_some(p)
                })
                .unwrap();
            return Path::new(point).join(path.trim_start_matches('/'));
        }
    }
    let path = lines.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    let point = mountinfo
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .and_then(|l| l.split(' ').nth(4))
        .unwrap();
    Path::new(point).join(path.trim_start_matches('/'))
}

#[test]
fn podman_resource_limits_reach_the_kernel() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let limits = ["--memory", "64m", "--cpus", "0.5", "--pids-limit", "50"];
    let sleep = ["/bin/bulkhead-probe", "sleep", "600"];
    p.run_detached("bh-limits", &limits, &sleep).ok();
    let pid = p.run(&["inspect", "--format", "{{.State.Pid}}", "bh-limits"]);
    pid.ok();
    let pid = pid.stdout.trim().to_string();
    let read = |c: &str, f: &str| {
        let path = cgroup_dir_of(&pid, c).join(f);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    };
    let v2 = cgroup_dir_of(&pid, "memory")
        .join("cgroup.controllers")
        .exists();
    if v2 {
        assert_eq!(read("memory", "memory.max"), "67108864");
        assert_eq!(read("cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(read("pids", "pids.max"), "50");
    // `podman update` hands the runtime `update --resources FILE`.
    p.run(&["update", "--memory", "128m", "--cpus", "0.25", "bh-limits"])
        .ok();
    if v2 {
        assert_eq!(read("memory", "memory.max"), "134217728");
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "134217728");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "25000");
    }
    assert_eq!(read("pids", "pids.max"), "50");
    p.rm_force("bh-limits");
}

/// Whether `pid` is gone (or a zombie) on the host.
fn process_gone(pid: i32) -> bool {
    common::proc_start_time(pid).is_none()
}

#[test]
fn podman_exec_exit_codes_and_tty() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    p.run_detached("bh-exec", &[], &["/bin/bulkhead-probe", "sleep", "600"])
        .ok();
    // conmon runs `exec --detach --pid-file …` and reports the exit status
    // of the process it reaped.
    let out = p.run(&["exec", "bh-exec", "/bin/bulkhead-probe", "exit", "5"]);
    assert_eq!(out.code(), Some(5), "{out}");
    let out = p.run(&["exec", "bh-exec", "/bin/bulkhead-probe", "report"]);
    out.ok();
    let r = out.json();
    assert_ne!(r["pid"], 1, "{out}");
    assert_eq!(r["hostname"], p.inspect("bh-exec", "{{.Config.Hostname}}"));
    // A missing program: podman maps "no such file or directory" to 127.
    let out = p.run(&["exec", "bh-exec", "/no/such/program"]);
    assert_eq!(out.code(), Some(127), "{out}");
    // `exec -t`: conmon passes `--tty --console-socket`; the process gets
    // a pty of the container's devpts as its controlling terminal.
    let out = p.run(&["exec", "-t", "bh-exec", "/bin/sh", "-c", "tty"]);
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    assert_eq!(p.inspect("bh-exec", "{{.State.Status}}"), "running");
    p.rm_force("bh-exec");
}

#[test]
fn podman_stop_and_kill_exit_codes() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    // PID 1 without a handler ignores TERM: `stop` escalates to KILL.
    p.run_detached("bh-sleep", &[], &["/bin/sleep", "600"]).ok();
    p.run(&["stop", "--time", "1", "bh-sleep"]).ok();
    assert_eq!(p.inspect("bh-sleep", "{{.State.ExitCode}}"), "137");
    p.run(&["rm", "bh-sleep"]).ok();

    // A shell trapping TERM ends on the TERM itself, long before the stop
    // timeout.
    p.run_detached(
        "bh-trap",
        &[],
        &[
            "/bin/sh",
            "-c",
            "trap 'exit 143' TERM; echo ready; while :; do sleep 1 & wait $!; done",
        ],
    )
    .ok();
    common::wait_for("trap installed", Duration::from_secs(10), || {
        let logs = p.run(&["logs", "bh-trap"]);
        logs.stdout.contains("ready").then_some(())
    });
    let start = std::time::Instant::now();
    p.run(&["stop", "--time", "20", "bh-trap"]).ok();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "stop waited for the timeout: TERM did not reach the trap"
    );
    assert_eq!(p.inspect("bh-trap", "{{.State.ExitCode}}"), "143");
    p.run(&["rm", "bh-trap"]).ok();

    // `kill -s USR1` → `kill ID 10`; the probe exits 128+10.
    p.run_detached("bh-usr1", &[], &["/bin/bulkhead-probe", "signal-wait"])
        .ok();
    common::wait_for("probe ready", Duration::from_secs(10), || {
        let logs = p.run(&["logs", "bh-usr1"]);
        logs.stdout.contains("ready").then_some(())
    });
    p.run(&["kill", "--signal", "USR1", "bh-usr1"]).ok();
    let code = common::wait_for("probe exit", Duration::from_secs(10), || {
        (p.inspect("bh-usr1", "{{.State.Status}}") == "exited")
            .then(|| p.inspect("bh-usr1", "{{.State.ExitCode}}"))
    });
    assert_eq!(code, "138");
    // Killing a stopped container fails (podman asks the runtime's state).
    p.run(&["kill", "bh-usr1"]).fails();
    p.run(&["rm", "bh-usr1"]).ok();
}

#[test]
fn podman_pause_top_stats_and_forced_remove() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    p.run_detached("bh-ctl", &[], &["/bin/bulkhead-probe", "sleep", "600"])
        .ok();
    let pid: i32 = p.inspect("bh-ctl", "{{.State.Pid}}").parse().unwrap();

    p.run(&["pause", "bh-ctl"]).ok();
    assert_eq!(p.inspect("bh-ctl", "{{.State.Status}}"), "paused");
    // The runtime froze the container's cgroup.
    let freezer = cgroup_dir_of(&pid.to_string(), "freezer");
    let frozen = if freezer.join("cgroup.freeze").exists() {
        std::fs::read_to_string(freezer.join("cgroup.freeze")).unwrap()
    } else {
        std::fs::read_to_string(freezer.join("freezer.state")).unwrap()
    };
    assert!(matches!(frozen.trim(), "1" | "FROZEN"), "{frozen}");
    p.run(&["unpause", "bh-ctl"]).ok();
    assert_eq!(p.inspect("bh-ctl", "{{.State.Status}}"), "running");

    // `top` reads /proc of the container's processes itself.
    let top = p.run(&["top", "bh-ctl"]);
    top.ok();
    assert!(top.stdout.contains("bulkhead-probe sleep 600"), "{top}");

    // `stats` reads the container's cgroup (the one the runtime made from
    // linux.cgroupsPath).
    let stats = p.run(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}}|{{.PIDs}}",
        "bh-ctl",
    ]);
    stats.ok();
    let line = stats.stdout.trim();
    let (mem, pids) = line.split_once('|').unwrap_or_else(|| panic!("{stats}"));
    let used = mem.split('/').next().unwrap().trim();
    assert!(!used.is_empty() && used != "0B", "no memory usage: {stats}");
    assert_eq!(pids.trim(), "1", "{stats}");

    // `rm -f` of a running container: kill, then `delete --force`.
    p.run(&["rm", "--force", "--time", "1", "bh-ctl"]).ok();
    common::wait_for("container init gone", Duration::from_secs(10), || {
        process_gone(pid).then_some(())
    });
    let ps = p.run(&["ps", "--all", "--format", "{{.Names}}"]);
    ps.ok();
    assert!(!ps.stdout.contains("bh-ctl"), "{ps}");
}

#[test]
fn podman_capabilities_no_new_privs_and_network() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let report = |extra: &[&str]| {
        let out = p.run_container(extra, &["/bin/bulkhead-probe", "report"]);
        out.ok();
        out.json()
    };
    let r = report(&["--cap-drop", "ALL"]);
    for f in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(r["status"][f], "0000000000000000", "{f}: {}", r["status"]);
    }
    let r = report(&[]);
    assert_ne!(r["status"]["CapEff"], "0000000000000000");
    assert_eq!(r["no_new_privs"], false);

    let r = report(&["--security-opt", "no-new-privileges"]);
    assert_eq!(r["no_new_privs"], true, "{}", r["status"]);

    // --network none: a fresh network namespace holding only `lo`, seen by
    // the kernel (/proc/net/dev) and by the container's own sysfs.
    let out = p.run_container(&[], &["/bin/cat", "/proc/net/dev"]);
    out.ok();
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{out}");
    let out = p.run_container(&[], &["/bin/ls", "/sys/class/net"]);
    out.ok();
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let host_net = common::ns_inode("self", "net").unwrap();
    let r = report(&[]);
    assert_ne!(r["ns"]["net"], host_net, "{}", r["ns"]);
}

#[test]
fn podman_uid_and_gid_mappings() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    p.run_detached(
        "bh-userns",
        &["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"],
        &["/bin/bulkhead-probe", "sleep", "600"],
    )
    .ok();
    let out = p.run(&["exec", "bh-userns", "/bin/bulkhead-probe", "report"]);
    out.ok();
    let r = out.json();
    let map = |v: &serde_json::Value| {
        v.as_str()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(map(&r["uid_map"]), ["0", "100000", "65536"], "{out}");
    assert_eq!(map(&r["gid_map"]), ["0", "100000", "65536"], "{out}");
    assert_eq!(r["uid"], 0);
    // The host sees the container's root as uid/gid 100000.
    let pid = p.inspect("bh-userns", "{{.State.Pid}}");
    let uids = common::proc_status_field(&pid, "Uid");
    assert_eq!(uids.split_whitespace().next(), Some("100000"), "{uids}");
    let gids = common::proc_status_field(&pid, "Gid");
    assert_eq!(gids.split_whitespace().next(), Some("100000"), "{gids}");
    // The container's root may write its (chowned) root filesystem.
    let out = p.run(&[
        "exec",
        "bh-userns",
        "/bin/bulkhead-probe",
        "write",
        "/tmp/x",
    ]);
    out.ok();
    assert_eq!(out.json()["ok"], true, "{out}");
    p.rm_force("bh-userns");
}

/// Host pids listed by `ctr task ps` (first column after the header).
fn ctr_task_pids(out: &RtOutput) -> Vec<i32> {
    out.stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Runs `command` (a shell command line) under `script`, which gives it a
/// pty as stdin/stdout: `ctr run -t` and `docker run -t` insist on a
/// console.
#[track_caller]
fn run_in_pty(command: &str, io: &Path) -> Option<RtOutput> {
    if !Path::new("/usr/bin/script").is_file() {
        eprintln!("skipped the tty part: script(1) is not installed");
        return None;
    }
    let mut cmd = Command::new("/usr/bin/script");
    cmd.args(["--quiet", "--return", "--command", command, "/dev/null"])
        .stdin(Stdio::null());
    Some(run_cmd(cmd, io, common::cmd_timeout()))
}

#[test]
fn containerd_exec_ps_metrics_and_kill_all() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    let sleep = ["/bin/bulkhead-probe", "sleep", "600"];
    c.start_task(&[], "bh-exec", &sleep);

    // `exec --process FILE --detach --pid-file …`; the shim reaps it and ctr
    // exits with its status.
    let out = c.run(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "bh-exec",
        "/bin/bulkhead-probe",
        "exit",
        "6",
    ]);
    assert_eq!(out.code(), Some(6), "{out}");
    let out = c.exec_logged("bh-exec", "e2", &["/bin/bulkhead-probe", "report"]);
    out.ok();
    let r = out.json();
    assert_ne!(r["pid"], 1, "{out}");
    assert_eq!(fd_numbers(&r), vec![0, 1, 2], "{}", r["fds"]);

    // A second, long-lived exec process; `task ps` → `ps --format json`.
    // ctr leaves a detached exec's fifos behind: in the test's directory,
    // not /run/containerd/fifo.
    let fifo_dir = c.io.path().join("fifo");
    c.run(&[
        "task",
        "exec",
        "--detach",
        "--fifo-dir",
        fifo_dir.to_str().unwrap(),
        "--exec-id",
        "e3",
        "bh-exec",
        "/bin/bulkhead-probe",
        "sleep",
        "600",
    ])
    .ok();
    let pids = common::wait_for("two processes in task ps", Duration::from_secs(10), || {
        let ps = c.run(&["task", "ps", "bh-exec"]);
        ps.ok();
        let pids = ctr_task_pids(&ps);
        (pids.len() == 2).then_some(pids)
    });
    for pid in &pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            String::from_utf8_lossy(&cmdline).contains("bulkhead-probe"),
            "pid {pid} is not a container process"
        );
    }

    // The shim reads the init's cgroup itself.
    let metrics = c.run(&["task", "metrics", "bh-exec"]);
    metrics.ok();
    assert!(metrics.stdout.contains("memory"), "{metrics}");
    assert!(metrics.stdout.contains("pids.current"), "{metrics}");

    // `kill --all ID 9`.
    c.run(&["task", "kill", "--all", "--signal", "KILL", "bh-exec"])
        .ok();
    c.wait_stopped("bh-exec");
    for pid in pids {
        common::wait_for("container process gone", Duration::from_secs(10), || {
            process_gone(pid).then_some(())
        });
    }
    c.delete_task("bh-exec");
}

/// Every exec's output and exit code reach containerd's shim, for execs
/// that print and exit at once (the case in which ctr 1.6's own fifo copy
/// can come back empty with any runtime: docs/clients.md): the runtime
/// returns from `exec --detach` with the process holding the shim's pipes
/// as stdio, and nothing it writes before exiting is lost. Busybox's `sh`
/// (static) with a distinct line and exit code per exec, and every eighth
/// exec the probe (dynamic), whose report must show fds 0-2 and nothing
/// else, stdout and stderr two distinct pipes. Only stdout is compared: the shim's
/// file logging writes both streams into one file and may drop stderr.
#[test]
fn containerd_exec_output_arrives_every_time() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    c.start_task(&[], "bh-out", &["/bin/bulkhead-probe", "sleep", "600"]);
    for i in 0..40 {
        let exec_id = format!("o{i}");
        if i % 8 == 7 {
            let out = c.exec_logged("bh-out", &exec_id, &["/bin/bulkhead-probe", "report"]);
            out.ok();
            let report = out.json();
            let fds = report["fds"]
                .as_array()
                .unwrap_or_else(|| panic!("exec {i}: no fds in the report: {out}"));
            let numbers: Vec<i64> = fds.iter().map(|f| f["fd"].as_i64().unwrap()).collect();
            assert_eq!(numbers, vec![0, 1, 2], "exec {i}: {out}");
            // With --log-uri the shim gives no stdin (/dev/null).
            let (stdout, stderr) = (fds[1]["target"].as_str(), fds[2]["target"].as_str());
            assert!(
                stdout.is_some_and(|t| t.starts_with("pipe:["))
                    && stderr.is_some_and(|t| t.starts_with("pipe:["))
                    && stdout != stderr,
                "exec {i}: stdout and stderr are not two pipes: {}",
                report["fds"]
            );
            continue;
        }
        let script = format!("echo out-{i}; exit {}", i % 5);
        let out = c.exec_logged("bh-out", &exec_id, &["/bin/sh", "-c", &script]);
        assert_eq!(out.code(), Some(i % 5), "exec {i}: {out}");
        assert_eq!(out.stdout, format!("out-{i}\n"), "exec {i}: {out}");
    }
    c.kill_and_delete("bh-out");
}

#[test]
fn containerd_run_and_exec_with_tty() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    // `run -t` → `create --console-socket …`: the shim gets the pty master.
    let args = c.run_args(&["-t", "--rm"], "bh-tty", &["/bin/sh", "-c", "tty"]);
    let Some(out) = run_in_pty(&shell_line(&c.ctr(&args)), c.io.path()) else {
        return;
    };
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    let sleep = ["/bin/bulkhead-probe", "sleep", "600"];
    c.run_task(&["-d"], "bh-tty2", &sleep).ok();
    let exec = c.ctr(&[
        "task",
        "exec",
        "-t",
        "--exec-id",
        "t1",
        "bh-tty2",
        "/bin/sh",
        "-c",
        "tty; exit 7",
    ]);
    let out = run_in_pty(&shell_line(&exec), c.io.path()).unwrap();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("/dev/pts/"), "{out}");
    c.kill_and_delete("bh-tty2");
}

/// `name` on `PATH` or in the sbin directories (which a test's `PATH` may
/// lack).
fn find_bin(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A private dockerd (own data root, exec root, socket, no bridge and no
/// iptables) on a private containerd, with the runtime under test added as
/// `bulkhead`; stopped on drop.
struct Docker {
    dir: TempDir,
    io: TempDir,
    daemon: Child,
    client: PathBuf,
    // Dropped after dockerd is stopped.
    _containerd: Containerd,
}

const DOCKER_RUNTIME: &str = "bulkhead";

impl Docker {
    /// `None` (with a printed reason) when docker is missing or its daemon
    /// cannot start here.
    fn new() -> Option<Docker> {
        let Some(dockerd) = find_bin("dockerd") else {
            eprintln!("skipped: dockerd is not installed (docker.io, scripts/install-deps.sh)");
            return None;
        };
        // The client of the same package first (PATH may hold another one).
        let Some(client) = ["/usr/bin/docker"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| find_bin("docker"))
        else {
            eprintln!("skipped: the docker client is not installed");
            return None;
        };
        let containerd = Containerd::new()?;
        let dir = tempfile::Builder::new()
            .prefix("bh-docker-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::write(d.join("daemon.json"), "{}\n").unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let mut cmd = Command::new(dockerd);
        cmd.args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--ip-forward=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            "--storage-driver",
            "vfs",
        ])
        .arg("--config-file")
        .arg(d.join("daemon.json"))
        .arg("--data-root")
        .arg(d.join("data"))
        .arg("--exec-root")
        .arg(d.join("exec"))
        .arg("--pidfile")
        .arg(d.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", d.join("d.sock").display()))
        .arg("--containerd")
        .arg(containerd.socket())
        .arg("--add-runtime")
        .arg(format!("{DOCKER_RUNTIME}={}", runtime().display()))
        .arg("--cgroup-parent")
        .arg(format!("/{}", containerd.ns))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        let daemon = cmd.spawn().expect("start dockerd");
        let mut docker = Docker {
            io: tempfile::Builder::new()
                .prefix("bh-docker-io-")
                .tempdir()
                .unwrap(),
            dir,
            daemon,
            client,
            _containerd: containerd,
        };
        let start = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = docker.daemon.try_wait() {
                let log = std::fs::read_to_string(docker.dir.path().join("dockerd.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                eprintln!("skipped: dockerd cannot start here ({status}): {tail:#?}");
                return None;
            }
            let out = common::try_run_cmd(
                docker.cmd(&["version", "--format", "{{.Server.Version}}"]),
                docker.io.path(),
                common::cmd_timeout(),
            );
            if out.is_ok_and(|o| o.success()) {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) {
                eprintln!("skipped: dockerd did not answer within 30 s");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(docker)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.client);
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("d.sock").display()
            ))
            .args(args)
            .stdin(Stdio::null())
            // No client config or credentials of the host.
            .env("DOCKER_CONFIG", self.dir.path().join("client"));
        c
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.cmd(args), self.io.path(), common::cmd_timeout())
    }

    /// `docker import` of the test rootfs.
    fn import_image(&self) {
        common::rootfs::import_rootfs(self.cmd(&["import", "-", IMAGE]), self.io.path());
    }

    /// `docker run` arguments selecting the runtime under test.
    fn run_args<'a>(&self, extra: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["run", "--runtime", DOCKER_RUNTIME, "--network", "none"];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        args
    }

    #[track_caller]
    fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.run(&["inspect", "--format", format, name]);
        out.ok();
        out.stdout.trim().to_string()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let timeout = common::cmd_timeout();
        if let Ok(ps) = common::try_run_cmd(self.cmd(&["ps", "-aq"]), self.io.path(), timeout) {
            for id in ps.stdout.split_whitespace() {
                let _ =
                    common::try_run_cmd(self.cmd(&["rm", "--force", id]), self.io.path(), timeout);
            }
        }
        stop_daemon(&mut self.daemon, Duration::from_secs(15));
        let left = unmount_under(self.dir.path());
        if !std::thread::panicking() {
            assert!(left.is_empty(), "docker left mounts behind: {left:#?}");
        }
    }
}

#[test]
fn docker_run_exec_stop_top_pause() {
    require_root!();
    let Some(d) = Docker::new() else { return };
    d.import_image();
    // `run --rm`: the exit status comes back through the shim.
    let out = d.run(&d.run_args(&["--rm"], &["/bin/bulkhead-probe", "exit", "3"]));
    assert_eq!(out.code(), Some(3), "{out}");
    // Every docker config carries a prestart hook `/proc/<dockerd>/exe
    // libnetwork-setkey …`; the container only starts if it ran.
    let out = d.run(&d.run_args(&["--rm"], &["/bin/bulkhead-probe", "report"]));
    out.ok();
    let r = out.json();
    assert_eq!(r["pid"], 1);
    assert_eq!(fd_numbers(&r), vec![0, 1, 2], "{}", r["fds"]);

    d.run(&d.run_args(
        &["-d", "--name", "bh-d"],
        &["/bin/bulkhead-probe", "sleep", "600"],
    ))
    .ok();
    assert_eq!(d.inspect("bh-d", "{{.State.Status}}"), "running");
    let out = d.run(&["exec", "bh-d", "/bin/bulkhead-probe", "exit", "4"]);
    assert_eq!(out.code(), Some(4), "{out}");
    let out = d.run(&["exec", "bh-d", "/bin/sh", "-c", "echo from-exec"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "from-exec", "{out}");
    // `top` → the runtime's `ps --format json`.
    let top = d.run(&["top", "bh-d"]);
    top.ok();
    assert!(top.stdout.contains("bulkhead-probe sleep 600"), "{top}");
    d.run(&["pause", "bh-d"]).ok();
    assert_eq!(d.inspect("bh-d", "{{.State.Status}}"), "paused");
    d.run(&["unpause", "bh-d"]).ok();
    assert_eq!(d.inspect("bh-d", "{{.State.Status}}"), "running");
    // PID 1 without a TERM handler: `stop` escalates to KILL.
    d.run(&["stop", "--time", "1", "bh-d"]).ok();
    assert_eq!(d.inspect("bh-d", "{{.State.ExitCode}}"), "137");
    d.run(&["rm", "bh-d"]).ok();

    // A TERM handler ends the container on the TERM itself.
    d.run(&d.run_args(
        &["-d", "--name", "bh-term"],
        &["/bin/bulkhead-probe", "signal-wait"],
    ))
    .ok();
    common::wait_for("probe ready", Duration::from_secs(10), || {
        let logs = d.run(&["logs", "bh-term"]);
        logs.stdout.contains("ready").then_some(())
    });
    d.run(&["stop", "--time", "20", "bh-term"]).ok();
    assert_eq!(d.inspect("bh-term", "{{.State.ExitCode}}"), "143");
    d.run(&["rm", "bh-term"]).ok();
}

#[test]
fn podman_shared_namespaces_and_volumes() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    p.run_detached("bh-ns", &[], &["/bin/bulkhead-probe", "sleep", "600"])
        .ok();
    let first = p.run(&["exec", "bh-ns", "/bin/bulkhead-probe", "report"]);
    first.ok();
    let first = first.json();
    // `--pid/--ipc/--uts/--network container:X`: podman puts
    // `/proc/<pid>/ns/*` paths in config.json.
    let out = p.run(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--pid",
        "container:bh-ns",
        "--ipc",
        "container:bh-ns",
        "--uts",
        "container:bh-ns",
        "--network",
        "container:bh-ns",
        IMAGE,
        "/bin/bulkhead-probe",
        "report",
    ]);
    out.ok();
    let joined = out.json();
    for ns in ["pid", "ipc", "uts", "net"] {
        assert_eq!(joined["ns"][ns], first["ns"][ns], "{ns}: {}", joined["ns"]);
    }
    assert_ne!(joined["ns"]["mnt"], first["ns"]["mnt"]);
    assert_ne!(joined["pid"], 1, "joined the pid namespace: not its init");

    // A read-only bind volume and a tmpfs.
    let vol = tempfile::Builder::new()
        .prefix("bh-podman-vol-")
        .tempdir()
        .unwrap();
    std::fs::write(vol.path().join("file"), "from the host\n").unwrap();
    let bind = format!("{}:/data:ro", vol.path().display());
    let out = p.run_container(
        &["-v", &bind, "--tmpfs", "/mnt/a"],
        &[
            "/bin/sh",
            "-c",
            "cat /data/file; touch /data/new 2>/dev/null && echo data-writable; \
             touch /mnt/a/new && echo tmpfs-writable; grep ' /mnt/a ' /proc/self/mountinfo",
        ],
    );
    out.ok();
    assert!(out.stdout.contains("from the host"), "{out}");
    assert!(!out.stdout.contains("data-writable"), "{out}");
    assert!(out.stdout.contains("tmpfs-writable"), "{out}");
    assert!(out.stdout.contains(" - tmpfs "), "{out}");
    assert!(!vol.path().join("new").exists());
    p.rm_force("bh-ns");
}

#[test]
fn podman_stdin_missing_program_restart_and_privileged() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    // `run -i`: stdin is a pipe from conmon.
    let input = p.io.path().join("stdin.txt");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let mut args = vec!["run", "--rm", "-i"];
    args.extend_from_slice(NO_NETWORK_AND_LIMITS);
    args.extend([IMAGE, "/bin/sh", "-c", "wc -l"]);
    let mut cmd = p.cmd(&args);
    cmd.stdin(std::fs::File::open(&input).unwrap());
    let out = run_cmd(cmd, p.io.path(), common::cmd_timeout());
    out.ok();
    assert_eq!(out.stdout.trim(), "2", "{out}");

    // A missing program fails `create` with "no such file or directory",
    // which podman maps to 127.
    let out = p.run_container(&[], &["/no/such/program"]);
    assert_eq!(out.code(), Some(127), "{out}");

    // `restart`: kill, `delete --force`, then create/start again with the
    // same id and bundle.
    p.run_detached("bh-restart", &[], &["/bin/bulkhead-probe", "sleep", "600"])
        .ok();
    let before = p.inspect("bh-restart", "{{.State.Pid}}");
    p.run(&["restart", "--time", "0", "bh-restart"]).ok();
    assert_eq!(p.inspect("bh-restart", "{{.State.Status}}"), "running");
    let after = p.inspect("bh-restart", "{{.State.Pid}}");
    assert_ne!(before, after);
    p.run(&["exec", "bh-restart", "/bin/true"]).ok();
    p.rm_force("bh-restart");

    // `--privileged`: every capability root has, host devices.
    let out = p.run_container(&["--privileged"], &["/bin/bulkhead-probe", "report"]);
    out.ok();
    let r = out.json();
    let host = common::proc_status_field("self", "CapBnd");
    assert_eq!(r["status"]["CapEff"], host.as_str(), "{}", r["status"]);
    assert_eq!(r["status"]["CapBnd"], host.as_str(), "{}", r["status"]);
    let out = p.run_container(&["--privileged"], &["/bin/ls", "/dev"]);
    out.ok();
    let host_dev: Vec<String> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_block_device()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if let Some(dev) = host_dev.first() {
        assert!(
            out.stdout.split_whitespace().any(|d| d == dev),
            "host block device {dev} missing: {out}"
        );
    }
}

#[test]
fn docker_tty_update_and_restart() {
    require_root!();
    let Some(d) = Docker::new() else { return };
    d.import_image();
    let docker = |args: &[&str]| shell_line(&d.cmd(args));
    // `run -t` → `create --console-socket …`.
    let args = d.run_args(&["--rm", "-t"], &["/bin/sh", "-c", "tty"]);
    let Some(out) = run_in_pty(&docker(&args), d.io.path()) else {
        return;
    };
    out.ok();
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    d.run(&d.run_args(
        &["-d", "--name", "bh-upd", "--memory", "64m"],
        &["/bin/bulkhead-probe", "sleep", "600"],
    ))
    .ok();
    let out = run_in_pty(
        &docker(&["exec", "-t", "bh-upd", "/bin/sh", "-c", "tty; exit 7"]),
        d.io.path(),
    )
    .unwrap();
    assert_eq!(out.code(), Some(7), "{out}");
    assert!(out.stdout.contains("/dev/pts/"), "{out}");

    // `update` → `update --resources -` (LinuxResources JSON on stdin).
    let pid = d.inspect("bh-upd", "{{.State.Pid}}");
    let limit = || {
        let dir = cgroup_dir_of(&pid, "memory");
        let f = if dir.join("memory.max").exists() {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(limit(), "67108864");
    d.run(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "bh-upd",
    ])
    .ok();
    assert_eq!(limit(), "134217728");

    // `restart`: a new task with the same id.
    d.run(&["restart", "--time", "0", "bh-upd"]).ok();
    assert_eq!(d.inspect("bh-upd", "{{.State.Status}}"), "running");
    assert_ne!(d.inspect("bh-upd", "{{.State.Pid}}"), pid);
    d.run(&["rm", "--force", "bh-upd"]).ok();
}

#[test]
fn podman_runtime_errors_map_to_exit_codes() {
    require_root!();
    for json in [false, true] {
        let Some(p) = Podman::new() else { return };
        let p = if json { p.with_json_log() } else { p };
        // The runtime's error text decides podman's exit code: "no such
        // file or directory" → 127, "permission denied" → 126. With
        // `--log-format=json` podman parses the log file as one JSON object.
        let out = p.run_container(&[], &["/no/such/program"]);
        assert_eq!(out.code(), Some(127), "json log {json}: {out}");
        let out = p.run_container(&[], &["/etc/passwd"]);
        assert_eq!(out.code(), Some(126), "json log {json}: {out}");
        p.run_detached("bh-errors", &[], &["/bin/bulkhead-probe", "sleep", "600"])
            .ok();
        let out = p.run(&["exec", "bh-errors", "/no/such/program"]);
        assert_eq!(out.code(), Some(127), "json log {json}: {out}");
        let out = p.run(&["exec", "bh-errors", "/etc/passwd"]);
        assert_eq!(out.code(), Some(126), "json log {json}: {out}");
        // A failing exec leaves the container running.
        assert_eq!(p.inspect("bh-errors", "{{.State.Status}}"), "running");
        p.rm_force("bh-errors");
    }
}

#[test]
fn containerd_pause_resume_and_errors() {
    require_root!();
    let Some(c) = containerd_with_image() else {
        return;
    };
    let sleep = ["/bin/bulkhead-probe", "sleep", "600"];
    c.start_task(&[], "bh-pause", &sleep);
    c.run(&["task", "pause", "bh-pause"]).ok();
    assert_eq!(c.task_status("bh-pause"), "PAUSED");
    c.run(&["task", "resume", "bh-pause"]).ok();
    assert_eq!(c.task_status("bh-pause"), "RUNNING");
    let out = c.run(&["task", "exec", "--exec-id", "x", "bh-pause", "/bin/true"]);
    out.ok();
    // An exec of a missing program fails in the runtime's `exec`; the shim
    // reports the runtime's (JSON log) message.
    let out = c.run(&["task", "exec", "--exec-id", "y", "bh-pause", "/no/such"]);
    out.fails_with(&["no such file or directory"]);
    c.run(&["task", "kill", "--signal", "KILL", "bh-pause"])
        .ok();
    c.wait_task("bh-pause", "STOPPED");
    // Signalling a stopped task: "container not running" → NotFound.
    let out = c.run(&["task", "kill", "bh-pause"]);
    out.fails_with(&["not found", "process already finished"]);
    c.delete_task("bh-pause");

    // A missing program fails `create`; the task is cleaned up.
    let out = c.run_task(&["--rm"], "bh-missing", &["/no/such/program"]);
    out.fails_with(&["no such file or directory"]);
    let ls = c.run(&["task", "ls"]);
    assert!(!ls.stdout.contains("bh-missing"), "{ls}");
}

#[test]
fn podman_devices_sysctls_and_process_options() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let out = p.run_container(
        &[
            "--device",
            "/dev/zero:/dev/myzero",
            "--sysctl",
            "kernel.msgmax=12345",
            "--shm-size",
            "1m",
            "--cgroupns",
            "private",
            "--group-add",
            "2000",
            "--oom-score-adj",
            "100",
            "--workdir",
            "/tmp",
            "--user",
            "1000:1000",
        ],
        &[
            "/bin/sh",
            "-c",
            "head -c 4 /dev/myzero | od -An -tx1; cat /proc/sys/kernel/msgmax; \
             grep ' /dev/shm ' /proc/self/mountinfo; grep memory /proc/self/cgroup; \
             id; cat /proc/self/oom_score_adj; pwd",
        ],
    );
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(lines[0], "00 00 00 00", "device: {out}");
    assert_eq!(lines[1], "12345", "sysctl: {out}");
    assert!(lines[2].contains("size=1024k"), "shm: {out}");
    assert!(lines[3].ends_with(":/"), "cgroup namespace: {out}");
    assert_eq!(
        lines[4], "uid=1000(tester) gid=1000(tester) groups=1000(tester),2000(extra)",
        "{out}"
    );
    assert_eq!(lines[5], "100", "oom_score_adj: {out}");
    assert_eq!(lines[6], "/tmp", "{out}");
}

#[test]
fn podman_wait_and_auto_removal() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    // A container that ends by itself: conmon reaps it, podman reads the
    // runtime's state (pid 0, "stopped").
    p.run_detached("bh-wait", &[], &["/bin/bulkhead-probe", "exit", "9"])
        .ok();
    let out = p.run(&["wait", "bh-wait"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "9", "{out}");
    assert_eq!(p.inspect("bh-wait", "{{.State.Status}}"), "exited");
    // Starting it again reuses the id and bundle.
    p.run(&["start", "bh-wait"]).ok();
    let out = p.run(&["wait", "bh-wait"]);
    assert_eq!(out.stdout.trim(), "9", "{out}");
    p.run(&["rm", "bh-wait"]).ok();

    // `run -d --rm`: conmon's exit command deletes the container.
    p.run_detached("bh-auto", &["--rm"], &["/bin/bulkhead-probe", "sleep", "1"])
        .ok();
    common::wait_for("auto removal", Duration::from_secs(20), || {
        let ps = p.run(&["ps", "--all", "--format", "{{.Names}}"]);
        (!ps.stdout.contains("bh-auto")).then_some(())
    });
}
