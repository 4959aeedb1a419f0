//! The monitor of detached sandboxes (`sandbox -d`): it is the init's
//! parent and reaps it, records the exit for `wait`, `list` and `inspect`,
//! caps and rotates the log, removes `-d --rm` sandboxes, holds the
//! terminal of `-d -t`, and a killed monitor does not stop `rm -f`.
//! bulkhead-only: runc has no `sandbox`.

#[macro_use]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{RtOutput, is_runc, rt, unique_id, wait_for};
use serde_json::Value;

const SANDBOXES: &str = "/var/lib/bulkhead/sandboxes";

macro_rules! monitor_test {
    () => {
        require_root!();
        skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    };
}

/// A state root of its own; the sandboxes it started are removed at the
/// end (also when the test fails).
struct Env {
    root: tempfile::TempDir,
    names: std::cell::RefCell<Vec<String>>,
}

impl Env {
    fn new() -> Env {
        Env {
            root: common::open_tempdir(),
            names: Default::default(),
        }
    }

    fn rt(&self, args: &[&str]) -> RtOutput {
        rt(self.root.path(), args)
    }

    /// `sandbox -d --name <new> FLAGS… -- CMD…`, which must succeed.
    fn detached(&self, flags: &[&str], cmd: &[&str]) -> String {
        let name = unique_id();
        self.names.borrow_mut().push(name.clone());
        let mut a = vec!["sandbox", "-d", "--name", name.as_str()];
        a.extend_from_slice(flags);
        a.push("--");
        a.extend_from_slice(cmd);
        let out = self.rt(&a);
        out.ok();
        assert_eq!(out.stdout.trim(), name, "{out}");
        name
    }

    fn inspect(&self, name: &str) -> Value {
        let out = self.rt(&["inspect", name]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        v[0].clone()
    }

    fn wait(&self, name: &str) -> String {
        let out = self.rt(&["wait", name]);
        out.ok();
        out.stdout.trim().to_string()
    }

    fn init_pid(&self, name: &str) -> i32 {
        let out = self.rt(&["state", name]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for n in self.names.borrow().iter() {
            let out = rt(self.root.path(), &["rm", "-f", n]);
            if !std::thread::panicking() {
                assert!(
                    out.success() || out.stderr.contains("does not exist"),
                    "{out}"
                );
                assert_gone(self.root.path(), n);
            }
        }
    }
}

/// Nothing of sandbox `name` is left: state, sandbox dir, mounts, cgroups.
fn assert_gone(root: &Path, name: &str) {
    let state = root.join(name);
    let dir = Path::new(SANDBOXES).join(name);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    assert!(!dir.exists(), "sandbox dir {} left behind", dir.display());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "mount of {} left behind",
        dir.display()
    );
    let cg = common::cgroup_dirs_named(name);
    assert!(cg.is_empty(), "cgroups left behind: {cg:?}");
}

/// Fields 3 (state) and 4 (ppid) of /proc/<pid>/stat, if the pid exists.
fn state_and_ppid(pid: i32) -> Option<(char, i32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 2..].split(' ');
    let state = rest.next()?.chars().next()?;
    Some((state, rest.next()?.parse().ok()?))
}

fn sigkill(pid: i32) {
    let p = rustix::process::Pid::from_raw(pid).unwrap();
    rustix::process::kill_process(p, rustix::process::Signal::KILL).unwrap();
}

/// The process `pid` that started at `start` is gone, not even a zombie.
fn reaped(pid: i32, start: Option<u64>) -> bool {
    common::proc_start_time(pid) != start
}

#[test]
fn exit_code_is_recorded_and_shown_by_wait_list_and_inspect() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sh", "-c", "sleep 0.2; exit 3"]);
    assert_eq!(env.wait(&name), "3");
    // `list`: "exited (3)" in the table; runc's status plus the exit in JSON.
    let table = env.rt(&["list"]);
    table.ok();
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed: {table}"));
    assert!(row.contains("exited (3)"), "{row}");
    let json = env.rt(&["list", "--format", "json"]);
    json.ok();
    let views: Value = serde_json::from_str(&json.stdout).unwrap();
    let me = views
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == name.as_str())
        .unwrap()
        .clone();
    assert_eq!(me["status"], "stopped");
    assert_eq!(me["exit"]["exitCode"], 3);
    let i = env.inspect(&name);
    assert_eq!(i["status"], "exited (3)");
    assert_eq!(i["exitCode"], 3);
    assert!(i["signal"].is_null(), "{i}");
    assert!(
        i["finishedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{i}"
    );
    // The monitor is gone once the exit is recorded.
    assert!(i["monitorPid"].is_null(), "{i}");

    // Killed by a signal: 128 + N, and the signal on its own.
    let name = env.detached(&[], &["sleep", "600"]);
    assert_eq!(env.inspect(&name)["status"], "running");
    env.rt(&["kill", &name, "KILL"]).ok();
    assert_eq!(env.wait(&name), "137");
    let i = env.inspect(&name);
    assert_eq!(
        (i["exitCode"].clone(), i["signal"].clone()),
        (137.into(), 9.into())
    );
    // `stop` of a monitored sandbox: sleep ignores SIGTERM as pid 1.
    let name = env.detached(&[], &["sleep", "600"]);
    env.rt(&["stop", "-t", "1", &name]).ok();
    assert_eq!(env.wait(&name), "137");
    env.rt(&["rm", &name]).ok();
    assert_gone(env.root.path(), &name);
    env.rt(&["wait", &name]).fails_with(&["does not exist"]);
}

#[test]
fn the_monitor_reaps_the_init_and_holds_nothing_of_the_host() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sleep", "600"]);
    let init = env.init_pid(&name);
    let start = common::proc_start_time(init);
    let mon = env.inspect(&name)["monitorPid"]
        .as_i64()
        .expect("a live monitor") as i32;
    // The init is the monitor's child; the monitor leads a session of its
    // own, works from /, in the host's mount namespace.
    assert_eq!(state_and_ppid(init).unwrap().1, mon);
    let stat = fs::read_to_string(format!("/proc/{mon}/stat")).unwrap();
    let sid: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(sid, mon, "not a session leader: {stat}");
    assert_eq!(
        fs::read_link(format!("/proc/{mon}/cwd")).unwrap(),
        PathBuf::from("/")
    );
    assert_eq!(
        common::ns_inode(&mon.to_string(), "mnt"),
        common::ns_inode("self", "mnt")
    );
    // Its fds: /dev/null as stdio, its lock file, the log, the output pipe,
    // the init's pidfd and pathrs's private procfs handle (a detached
    // mount); nothing of its caller or of the sandbox's root.
    let dir = Path::new(SANDBOXES).join(&name);
    for e in fs::read_dir(format!("/proc/{mon}/fd")).unwrap().flatten() {
        let fd: i32 = e.file_name().to_str().unwrap().parse().unwrap();
        let target = fs::read_link(e.path()).unwrap();
        let t = target.to_string_lossy();
        let allowed = if fd <= 2 {
            t == "/dev/null"
        } else {
            t.starts_with("pipe:")
                || t.starts_with("anon_inode:")
                || target == dir.join("monitor.pid")
                || target == dir.join("sandbox.log")
                || (t == "/"
                    && rustix::fs::statfs(e.path())
                        .is_ok_and(|f| f.f_type == libc::PROC_SUPER_MAGIC))
        };
        assert!(allowed, "monitor fd {fd} -> {t}");
    }
    // Once the init exits, the monitor reaps it (no zombie) and goes.
    env.rt(&["kill", &name, "KILL"]).ok();
    assert_eq!(env.wait(&name), "137");
    wait_for("the init to be reaped", Duration::from_secs(10), || {
        reaped(init, start).then_some(())
    });
    wait_for("the monitor to exit", Duration::from_secs(10), || {
        env.inspect(&name)["monitorPid"].is_null().then_some(())
    });
}

#[test]
fn detached_rm_leaves_nothing() {
    monitor_test!();
    let env = Env::new();
    let name = unique_id();
    env.names.borrow_mut().push(name.clone());
    let out = env.rt(&[
        "sandbox",
        "-d",
        "--rm",
        "--name",
        &name,
        "--memory",
        "64m",
        "--",
        "sh",
        "-c",
        "echo bye; sleep 0.5",
    ]);
    out.ok();
    assert_eq!(out.stdout.trim(), name);
    wait_for(
        "the sandbox to remove itself",
        Duration::from_secs(20),
        || {
            (!env.root.path().join(&name).exists() && !Path::new(SANDBOXES).join(&name).exists())
                .then_some(())
        },
    );
    assert_gone(env.root.path(), &name);
    // `wait` gets the exit code before the removal.
    let name = unique_id();
    env.names.borrow_mut().push(name.clone());
    env.rt(&[
        "sandbox",
        "-d",
        "--rm",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "sleep 0.5; exit 5",
    ])
    .ok();
    assert_eq!(env.wait(&name), "5");
    wait_for(
        "the sandbox to remove itself",
        Duration::from_secs(20),
        || (!Path::new(SANDBOXES).join(&name).exists()).then_some(()),
    );
    assert_gone(env.root.path(), &name);
    // A failing command: the CLI reports the monitor's error and exit code,
    // and nothing is left either.
    let name = unique_id();
    let out = env.rt(&[
        "sandbox",
        "-d",
        "--rm",
        "--name",
        &name,
        "--",
        "no-such-program",
    ]);
    assert_eq!(out.code(), Some(127), "{out}");
    assert!(out.stderr.contains("no-such-program"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert_gone(env.root.path(), &name);
}

#[test]
fn log_is_capped_and_rotated() {
    monitor_test!();
    let env = Env::new();
    // Far more than a pipe holds: the container must not block on it.
    let name = env.detached(&["--log-max-size", "4k"], &["seq", "1", "50000"]);
    assert_eq!(env.wait(&name), "0");
    let dir = Path::new(SANDBOXES).join(&name);
    for f in ["sandbox.log", "sandbox.log.1"] {
        let len = fs::metadata(dir.join(f)).unwrap().len();
        assert!(len > 0 && len <= 4096, "{f}: {len} bytes");
    }
    // The two parts hold the last lines, whole and in order.
    let logs = env.rt(&["logs", &name]);
    logs.ok();
    let nums: Vec<u32> = logs
        .stdout
        .lines()
        .map(|l| l.parse().unwrap_or_else(|_| panic!("torn line {l:?}")))
        .collect();
    assert_eq!(nums.last(), Some(&50000), "{logs}");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "gap: {logs}");
    assert!(nums.len() > 500, "{} lines", nums.len());
    // Bad values and a cap without a log are refused, naming the flag.
    for (flags, needle) in [
        (&["-d", "--log-max-size", "0"][..], "--log-max-size"),
        (&["-d", "--log-max-size", "ten"][..], "--log-max-size"),
        (&["--log-max-size", "1m"][..], "only a detached sandbox"),
    ] {
        let n = unique_id();
        let mut a = vec!["sandbox", "--name", &n];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["--", "true"]);
        let out = env.rt(&a);
        assert_eq!(out.code(), Some(125), "{out}");
        assert!(out.stderr.contains(needle), "{out}");
        assert_gone(env.root.path(), &n);
    }
}

#[test]
fn logs_follow_continues_across_rotation() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(
        &["--log-max-size", "1k"],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo $i; i=$((i+1)); \
             [ $((i % 100)) = 0 ] && sleep 0.3; done",
        ],
    );
    let out = env.rt(&["logs", "-f", &name]);
    out.ok();
    // Follows from the start, through the rotations, to the last line.
    let nums: Vec<u32> = out.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&299), "{out}");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "gap: {out}");
}

#[test]
fn a_killed_monitor_does_not_break_rm_force() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(&["-v", "/etc:/hostetc:ro"], &["sleep", "600"]);
    let init = env.init_pid(&name);
    let mon = env.inspect(&name)["monitorPid"].as_i64().unwrap() as i32;
    sigkill(mon);
    wait_for("the monitor to die", Duration::from_secs(10), || {
        env.inspect(&name)["monitorPid"].is_null().then_some(())
    });
    // The sandbox runs on, orphaned.
    assert_eq!(env.inspect(&name)["status"], "running");
    assert!(state_and_ppid(init).is_some_and(|(s, _)| s != 'Z'));
    env.rt(&["rm", "-f", &name]).ok();
    assert_gone(env.root.path(), &name);

    // Stopped without a monitor: `wait` says why it has no exit code.
    let name = env.detached(&[], &["sleep", "600"]);
    let mon = env.inspect(&name)["monitorPid"].as_i64().unwrap() as i32;
    sigkill(mon);
    wait_for("the monitor to die", Duration::from_secs(10), || {
        env.inspect(&name)["monitorPid"].is_null().then_some(())
    });
    env.rt(&["kill", &name, "KILL"]).ok();
    env.rt(&["wait", &name]).fails_with(&["not recorded"]);
    // logs -f ends too.
    env.rt(&["logs", "-f", &name]).ok();
    env.rt(&["rm", &name]).ok();
    assert_gone(env.root.path(), &name);
}

#[test]
fn detached_with_a_terminal() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(
        &["-t"],
        &["sh", "-c", "test -t 0 && test -t 1 && echo has-tty; exit 5"],
    );
    assert_eq!(env.wait(&name), "5");
    let logs = env.rt(&["logs", &name]);
    logs.ok();
    assert!(logs.stdout.contains("has-tty"), "{logs}");
    env.rt(&["attach", &name]).fails_with(&["has stopped"]);
    // Without -t there is nothing to attach to.
    let plain = env.detached(&[], &["sleep", "600"]);
    env.rt(&["attach", &plain]).fails_with(&["no terminal"]);
}

/// `bulkhead attach NAME` with `input` as its stdin.
fn attach(env: &Env, name: &str, input: &[u8]) -> RtOutput {
    attach_with(env, &[], name, input)
}

/// `bulkhead attach FLAGS NAME` with `input` as its stdin.
fn attach_with(env: &Env, flags: &[&str], name: &str, input: &[u8]) -> RtOutput {
    let io = common::open_tempdir();
    let path = io.path().join("in");
    fs::write(&path, input).unwrap();
    let mut cmd = std::process::Command::new(common::runtime());
    cmd.arg("--root")
        .arg(env.root.path())
        .arg("attach")
        .args(flags)
        .arg(name)
        .stdin(fs::File::open(&path).unwrap());
    common::run_cmd(cmd, io.path(), common::cmd_timeout())
}

#[test]
fn attach_detach_and_reattach() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(
        &["-t"],
        &[
            "sh",
            "-c",
            "read l; echo got:$l; read m; echo again:$m; exit 6",
        ],
    );
    // ctrl-p ctrl-q detaches; the sandbox runs on.
    let out = attach(&env, &name, b"one\n\x10\x11");
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stderr.contains("detached"), "{out}");
    assert_eq!(env.inspect(&name)["status"], "running");
    // Attached again: input reaches the terminal, output comes back, and
    // attach ends with the sandbox's exit code once the terminal closes.
    let out = attach(&env, &name, b"two\n");
    assert_eq!(out.code(), Some(6), "{out}");
    assert!(out.stdout.contains("again:two"), "{out}");
    assert_eq!(env.wait(&name), "6");
    let logs = env.rt(&["logs", &name]);
    assert!(
        logs.stdout.contains("got:one") && logs.stdout.contains("again:two"),
        "{logs}"
    );
    assert!(
        !Path::new(SANDBOXES)
            .join(&name)
            .join("attach.sock")
            .exists(),
        "the socket outlives the monitor"
    );
}

/// `attach --detach-keys` (podman's syntax): the given keys detach, ctrl-p
/// ctrl-q then is plain input, "" never detaches, and a bad key is refused
/// before anything connects.
#[test]
fn attach_with_detach_keys() {
    monitor_test!();
    let env = Env::new();
    let name = env.detached(
        &["-t"],
        &[
            "sh",
            "-c",
            "read l; echo got:$l; read m; echo again:$m; exit 6",
        ],
    );
    let out = attach_with(&env, &["--detach-keys", "ctrl-p,esc"], &name, b"a");
    out.fails_with(&["--detach-keys \"ctrl-p,esc\": unknown key \"esc\""]);
    let out = attach_with(&env, &["--detach-keys", "ctrl-1"], &name, b"a");
    out.fails_with(&["unknown key \"ctrl-1\""]);
    assert_eq!(env.inspect(&name)["status"], "running");
    // ctrl-a d detaches; the sandbox runs on with "one" read.
    let out = attach_with(&env, &["--detach-keys", "ctrl-a,d"], &name, b"one\n\x01d");
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stderr.contains("detached"), "{out}");
    assert_eq!(env.inspect(&name)["status"], "running");
    // With no detach keys, ctrl-p ctrl-q does not detach: attach ends with
    // the sandbox, whose second line reached it (ctrl-p is an ordinary
    // character there; ctrl-q is the terminal's START key and is eaten).
    let out = attach_with(&env, &["--detach-keys", ""], &name, b"\x10\x11two\n");
    assert_eq!(out.code(), Some(6), "{out}");
    assert!(!out.stderr.contains("detached"), "{out}");
    assert!(out.stdout.contains("two"), "{out}");
    assert_eq!(env.wait(&name), "6");
    let logs = env.rt(&["logs", &name]);
    assert!(
        logs.stdout.contains("got:one") && logs.stdout.contains("again:"),
        "{logs}"
    );
}

#[test]
fn a_monitor_killed_during_create_or_start_leaves_nothing() {
    monitor_test!();
    skip_if!(
        !cfg!(debug_assertions),
        "BULKHEAD_FAULT is compiled out of release builds"
    );
    let env = Env::new();
    for point in [
        "create.record",
        "create.cgroup",
        "create.init-ready",
        "create.saved",
        "start.fifo-written",
    ] {
        let name = unique_id();
        let mut cmd = std::process::Command::new(common::runtime());
        cmd.arg("--root")
            .arg(env.root.path())
            .args(["sandbox", "-d", "--name", &name, "--", "sleep", "600"])
            .env("BULKHEAD_FAULT", point);
        let io = common::open_tempdir();
        let out = common::run_cmd(cmd, io.path(), common::cmd_timeout());
        assert_eq!(out.code(), Some(125), "{point}: {out}");
        assert!(
            out.stderr
                .contains("monitor exited before the sandbox started"),
            "{point}: {out}"
        );
        assert_gone(env.root.path(), &name);
    }
}
