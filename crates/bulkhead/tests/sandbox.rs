//! `bulkhead sandbox`: real sandboxes on the default host root, seen from
//! inside (the probe, bound in as a volume, or a shell) and from the host;
//! volumes, limits, exit codes and the detached verbs (logs, stop, rm).
//! bulkhead-only: runc has no `sandbox`.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{RtOutput, is_runc, rt, unique_id, wait_for};
use serde_json::Value;

const SANDBOXES: &str = "/var/lib/bulkhead/sandboxes";

/// A state root of its own, and the detached sandboxes to remove at the end
/// (also when the test fails).
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

    /// `bulkhead sandbox ARGS…`.
    fn sandbox(&self, args: &[&str]) -> RtOutput {
        let mut a = vec!["sandbox"];
        a.extend_from_slice(args);
        self.rt(&a)
    }

    /// `bulkhead sandbox -v PROBE:/probe:ro FLAGS… -- /probe ARGS…`, which
    /// must succeed; the probe's JSON.
    fn probe(&self, flags: &[&str], args: &[&str]) -> Value {
        let vol = format!("{}:/probe:ro", common::probe_bin().display());
        let mut a = vec!["-v", vol.as_str()];
        a.extend_from_slice(flags);
        a.push("--");
        a.push("/probe");
        a.extend_from_slice(args);
        let out = self.sandbox(&a);
        out.ok();
        out.json()
    }

    /// Starts `sandbox -d --name <new> FLAGS… -- CMD…`; returns the name.
    fn detached(&self, flags: &[&str], cmd: &[&str]) -> String {
        let name = unique_id();
        self.names.borrow_mut().push(name.clone());
        let mut a = vec!["-d", "--name", name.as_str()];
        a.extend_from_slice(flags);
        a.push("--");
        a.extend_from_slice(cmd);
        let out = self.sandbox(&a);
        out.ok();
        assert_eq!(out.stdout.trim(), name, "{out}");
        name
    }

    fn state(&self, name: &str) -> Value {
        let st = self.rt(&["state", name]);
        st.ok();
        serde_json::from_str(&st.stdout).unwrap_or_else(|e| panic!("{e}: {st}"))
    }

    fn pid(&self, name: &str) -> i32 {
        self.state(name)["pid"].as_i64().expect("pid") as i32
    }

    fn status(&self, name: &str) -> String {
        self.state(name)["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for n in self.names.borrow().iter() {
            let out = rt(self.root.path(), &["rm", "-f", n]);
            if !std::thread::panicking() {
                // Removed already by the test, or now.
                assert!(
                    out.success() || out.stderr.contains("does not exist"),
                    "{out}"
                );
                assert_gone(self.root.path(), n);
            }
        }
    }
}

/// Nothing of sandbox `name` is left: no state dir, no sandbox dir, no
/// mount mentioning either, no cgroup named after it.
fn assert_gone(root: &Path, name: &str) {
    let state = root.join(name);
    let dir = Path::new(SANDBOXES).join(name);
    assert!(!state.exists(), "state dir {} left behind", state.display());
    assert!(!dir.exists(), "sandbox dir {} left behind", dir.display());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir_s = dir.to_string_lossy();
    assert!(
        !mountinfo.lines().any(|l| l.contains(dir_s.as_ref())),
        "mount of {} left behind",
        dir.display()
    );
    let cg = common::cgroup_dirs_named(name);
    assert!(cg.is_empty(), "cgroups left behind: {cg:?}");
}

fn status_field(r: &Value, k: &str) -> String {
    r["status"][k]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// `/proc/<pid>/status` field `k` on the host.
fn host_status(pid: i32, k: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{k}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// The host-side directory of `pid`'s cgroup in v1 controller `ctrl`.
fn cgroup_dir(pid: i32, ctrl: &str) -> PathBuf {
    common::container_cgroup_dirs(pid)
        .into_iter()
        .find(|d| d.starts_with(Path::new("/sys/fs/cgroup").join(ctrl)))
        .unwrap_or_else(|| panic!("no {ctrl} cgroup for {pid}"))
}

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap()
}

macro_rules! sandbox_test {
    () => {
        require_root!();
        skip_if!(is_runc(), "`sandbox` is a bulkhead command");
    };
}

#[test]
fn restricted_defaults_from_inside() {
    sandbox_test!();
    let env = Env::new();
    let r = env.probe(&[], &["report"]);
    assert_eq!(r["uid"], 0, "{r}");
    let map: Vec<u64> = r["uid_map"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(map[0], 0);
    assert!(map[1] >= 1 << 30, "container root is host id {}", map[1]);
    assert_eq!(map[2], 65536);
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(mask(&status_field(&r, set)), 0, "{set}: {r}");
    }
    assert_eq!(status_field(&r, "NoNewPrivs"), "1");
    assert_eq!(status_field(&r, "Seccomp"), "2");
    for ns in ["user", "pid", "ipc", "uts", "cgroup", "mnt", "net"] {
        assert_ne!(
            r["ns"][ns].as_u64(),
            common::ns_inode("self", ns),
            "{ns} namespace is the host's"
        );
    }
    assert_eq!(r["hostname"], "sandbox");
    assert_eq!(r["rlimits"]["RLIMIT_NOFILE"]["soft"], 1024, "{r}");

    // Read-only root, writable /tmp, Landlock refusing writes elsewhere
    // (procfs files the process owns would be writable without it).
    let w = env.probe(&[], &["write", "/usr/bulkhead-x"]);
    assert_eq!(w["errno"], libc::EROFS, "{w}");
    let w = env.probe(&[], &["write", "/newfile"]);
    assert_eq!(w["errno"], libc::EROFS, "{w}");
    assert_eq!(env.probe(&[], &["write", "/tmp/x"])["ok"], true);
    assert_eq!(env.probe(&[], &["write", "/dev/shm/x"])["ok"], true);
    let w = env.probe(&[], &["write", "/proc/self/comm", "x"]);
    assert_eq!(w["errno"], libc::EACCES, "Landlock: {w}");
    let w = env.probe(
        &["--security-opt", "landlock=off"],
        &["write", "/proc/self/comm", "x"],
    );
    assert_eq!(w["ok"], true, "without Landlock: {w}");

    // Masked paths: /proc/kcore is /dev/null, /sys/kernel an empty dir.
    assert_eq!(
        env.probe(&[], &["stat", "/proc/timer_list"])["type"],
        "char"
    );
    assert_eq!(
        env.probe(&[], &["ls", "/sys/kernel"])["entries"],
        serde_json::json!([])
    );
    let w = env.probe(&[], &["write", "/proc/sysrq-trigger", "h"]);
    assert_eq!(w["ok"], false, "{w}");

    // Loopback only.
    let out = env.sandbox(&["--", "sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1"]);
    out.ok();
    let ifaces: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(ifaces, ["lo"], "{out}");
}

#[test]
fn restricted_process_is_unprivileged_on_the_host() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sleep", "600"]);
    let pid = env.pid(&name);
    let uids: Vec<u64> = host_status(pid, "Uid")
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(uids.len(), 4);
    assert!(uids.iter().all(|&u| u >= 1 << 30), "host uids {uids:?}");
    assert_eq!(mask(&host_status(pid, "CapEff")), 0);
    assert_eq!(host_status(pid, "NoNewPrivs"), "1");
    assert_eq!(host_status(pid, "Seccomp"), "2");
    // Default limits reach the cgroups.
    let pids = cgroup_dir(pid, "pids");
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        "1024"
    );
    let mem = cgroup_dir(pid, "memory");
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (1u64 << 30).to_string());
    env.rt(&["rm", "-f", &name]).ok();
    assert_gone(env.root.path(), &name);
}

#[test]
fn baseline_matches_docker_defaults() {
    sandbox_test!();
    let env = Env::new();
    let r = env.probe(&["--profile", "baseline"], &["report"]);
    assert_eq!(
        r["uid_map"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "no user namespace: {r}"
    );
    let docker = common::caps_to_mask(&[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]);
    assert_eq!(mask(&status_field(&r, "CapEff")), docker, "{r}");
    assert_eq!(mask(&status_field(&r, "CapBnd")), docker, "{r}");
    assert_eq!(status_field(&r, "NoNewPrivs"), "0");
    assert_eq!(status_field(&r, "Seccomp"), "2");
    // Writable root (host directories stay read-only binds), no Landlock.
    assert_eq!(
        env.probe(&["--profile", "baseline"], &["write", "/newfile"])["ok"],
        true
    );
    let w = env.probe(
        &["--profile", "baseline"],
        &["write", "/proc/self/comm", "x"],
    );
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(
        env.probe(&["--profile", "baseline"], &["stat", "/proc/timer_list"])["type"],
        "char"
    );
}

#[test]
fn privileged_lifts_the_confinement() {
    sandbox_test!();
    let env = Env::new();
    let r = env.probe(&["--privileged"], &["report"]);
    // Every capability the host's root has.
    let host = mask(&host_status(std::process::id() as i32, "CapBnd"));
    assert_eq!(mask(&status_field(&r, "CapEff")), host, "{r}");
    assert_eq!(status_field(&r, "Seccomp"), "0");
    assert_eq!(status_field(&r, "NoNewPrivs"), "0");
    assert_eq!(
        env.probe(&["--privileged"], &["stat", "/proc/timer_list"])["type"],
        "file"
    );
}

#[test]
fn flags_override_the_profile() {
    sandbox_test!();
    let env = Env::new();
    let r = env.probe(
        &[
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "cap_kill",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "no-new-privileges=false",
            "--userns",
            "host",
            "--hostname",
            "box",
        ],
        &["report"],
    );
    assert_eq!(
        mask(&status_field(&r, "CapEff")),
        common::caps_to_mask(&["CAP_KILL", "CAP_NET_ADMIN"]),
        "{r}"
    );
    assert_eq!(status_field(&r, "Seccomp"), "0");
    assert_eq!(status_field(&r, "NoNewPrivs"), "0");
    assert_eq!(r["hostname"], "box");
    assert!(r["uid_map"].as_str().unwrap().contains("4294967295"), "{r}");
    let w = env.probe(&["--read-only=false"], &["write", "/newfile"]);
    assert_eq!(w["ok"], true, "{w}");
    // A seccomp profile from a file.
    let dir = common::open_tempdir();
    let prof = dir.path().join("p.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let out = env.sandbox(&[
        "--security-opt",
        &format!("seccomp={}", prof.display()),
        "--",
        "sh",
        "-c",
        "mkdir /tmp/d; echo rc=$?",
    ]);
    out.ok();
    assert!(out.stdout.contains("rc=1"), "{out}");
}

#[test]
fn host_network() {
    sandbox_test!();
    let env = Env::new();
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    let out = env.sandbox(&["--network", "host", "--", "cat", "/proc/net/dev"]);
    out.ok();
    assert_eq!(out.stdout.lines().count(), host_ifaces, "{out}");
    env.sandbox(&["--network", "bridge", "--", "true"])
        .fails_with(&["--network", "issue #10"]);
}

#[test]
fn volumes_rw_ro_and_idmapped() {
    sandbox_test!();
    let env = Env::new();
    let host = common::open_tempdir();
    std::fs::write(host.path().join("f"), "host\n").unwrap();
    let src = host.path().display().to_string();
    let rw = format!("{src}:/data");
    let ro = format!("{src}:/conf:ro");
    // Host root's file is root's inside, thanks to the idmapped mount.
    let r = env.probe(&["-v", &rw], &["stat", "/data/f"]);
    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
    let r = env.probe(&["-v", &rw], &["write", "/data/new", "from-sandbox"]);
    assert_eq!(r["ok"], true, "{r}");
    let meta = std::fs::metadata(host.path().join("new")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "written as host root");
    assert_eq!(
        std::fs::read_to_string(host.path().join("new")).unwrap(),
        "from-sandbox"
    );
    // No setuid/setgid files: through the idmapped volume they would be
    // host root's.
    let out = env.sandbox(&[
        "-v",
        &rw,
        "--",
        "sh",
        "-c",
        "cp /bin/true /data/t; chmod 4755 /data/t; echo suid=$?; chmod 2755 /data/t; echo sgid=$?; \
         chmod 750 /data/t; echo plain=$?",
    ]);
    out.ok();
    assert!(
        out.stdout.contains("suid=1") && out.stdout.contains("sgid=1"),
        "{out}"
    );
    assert!(out.stdout.contains("plain=0"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(host.path().join("t"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
    let r = env.probe(&["-v", &ro], &["write", "/conf/other"]);
    assert_eq!(r["errno"], libc::EROFS, "{r}");
    assert_eq!(
        env.probe(&["-v", &ro], &["read", "/conf/f"])["data"],
        "host\n"
    );
    assert!(!host.path().join("other").exists());
}

#[test]
fn missing_volume_source_is_a_clear_error_and_leaves_nothing() {
    sandbox_test!();
    let env = Env::new();
    let name = unique_id();
    let out = env.sandbox(&[
        "--name",
        &name,
        "-v",
        "/nonexistent/bulkhead-src:/data",
        "--",
        "true",
    ]);
    out.fails_with(&["/nonexistent/bulkhead-src"]);
    assert_eq!(out.code(), Some(125), "{out}");
    assert!(out.stderr.contains("--volume"), "{out}");
    assert_gone(env.root.path(), &name);
    assert!(env.rt(&["list", "-q"]).stdout.trim().is_empty());
}

#[test]
fn tmpfs_env_workdir_user() {
    sandbox_test!();
    let env = Env::new();
    let r = {
        // `-e NAME` takes the value from the caller's environment.
        let vol = format!("{}:/probe:ro", common::probe_bin().display());
        let mut cmd = Command::new(common::runtime());
        cmd.arg("--root")
            .arg(env.root.path())
            .args([
                "sandbox",
                "-v",
                &vol,
                "--tmpfs",
                "/scratch:size=1m",
                "-e",
                "A=1",
                "-e",
                "BH_FROM_HOST",
                "-e",
                "BH_UNSET_VAR",
                "-w",
                "/usr",
                "-u",
                "1000:1001",
                "--",
                "/probe",
                "report",
            ])
            .env("BH_FROM_HOST", "yes")
            .env_remove("BH_UNSET_VAR")
            .stdin(Stdio::null());
        let io = common::open_tempdir();
        let out = common::run_cmd(cmd, io.path(), common::cmd_timeout());
        out.ok();
        out.json()
    };
    assert_eq!(
        (r["uid"].as_u64(), r["gid"].as_u64()),
        (Some(1000), Some(1001)),
        "{r}"
    );
    assert_eq!(r["cwd"], "/usr");
    let envs = &r["env"];
    assert_eq!(envs["A"], "1", "{envs}");
    assert_eq!(envs["BH_FROM_HOST"], "yes", "{envs}");
    assert!(envs["BH_UNSET_VAR"].is_null(), "{envs}");
    let tmpfs = r["mountinfo"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.split_whitespace().nth(4) == Some("/scratch"))
        .unwrap_or_else(|| panic!("no /scratch mount: {r}"))
        .to_string();
    assert!(tmpfs.contains(" - tmpfs "), "{tmpfs}");
    assert!(tmpfs.contains("size=1024k"), "{tmpfs}");
    // Writable (and allowed by Landlock) for any user: mode 1777.
    let w = env.probe(
        &["--tmpfs", "/scratch", "-u", "1000"],
        &["write", "/scratch/x"],
    );
    assert_eq!(w["ok"], true, "{w}");
    // A user name resolves against the root's /etc/passwd.
    let out = env.sandbox(&["-u", "nobody", "--", "id", "-u"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "65534", "{out}");
    env.sandbox(&["-u", "no-such-user-x", "--", "true"])
        .fails_with(&["no-such-user-x"]);
}

#[test]
fn limits_reach_the_cgroups() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(
        &["--memory", "64m", "--pids-limit", "50", "--cpus", "0.5"],
        &["sleep", "600"],
    );
    let pid = env.pid(&name);
    let read = |ctrl: &str, file: &str| {
        std::fs::read_to_string(cgroup_dir(pid, ctrl).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "50");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    // The limit holds inside: 60 more processes cannot be forked.
    let out = env.rt(&[
        "exec",
        &name,
        "sh",
        "-c",
        "for i in $(seq 60); do sleep 30 & done; echo forked-all",
    ]);
    assert!(!out.stdout.contains("forked-all"), "{out}");
    let n: usize = std::fs::read_to_string(cgroup_dir(pid, "pids").join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n <= 50, "{n} processes");
}

#[test]
fn exit_codes_like_docker() {
    sandbox_test!();
    let env = Env::new();
    let code = |args: &[&str]| {
        let out = env.sandbox(args);
        (out.code(), out)
    };
    let (c, out) = code(&["--", "sh", "-c", "exit 3"]);
    assert_eq!(c, Some(3), "{out}");
    let (c, out) = code(&["--", "bulkhead-no-such-command"]);
    assert_eq!(c, Some(127), "{out}");
    assert!(out.stderr.contains("bulkhead-no-such-command"), "{out}");
    let (c, out) = code(&["--", "/etc/passwd"]);
    assert_eq!(c, Some(126), "{out}");
    let (c, out) = code(&["--no-such-flag", "--", "true"]);
    assert_eq!(c, Some(125), "{out}");
    let (c, out) = code(&["--memory", "lots", "--", "true"]);
    assert_eq!(c, Some(125), "{out}");
    assert!(out.stderr.contains("--memory"), "{out}");
    let (c, out) = code(&["--image", "bulkhead-no-such-image", "--", "true"]);
    assert_eq!(c, Some(125), "{out}");
    assert!(out.stderr.contains("bulkhead-no-such-image"), "{out}");
    let (c, out) = code(&[]);
    assert_eq!(c, Some(125), "{out}");
    assert!(out.stderr.contains("no command"), "{out}");
}

#[test]
fn killed_by_a_signal_exits_128_plus_n() {
    sandbox_test!();
    let env = Env::new();
    let name = unique_id();
    // Removed by Env if the test fails half-way.
    env.names.borrow_mut().push(name.clone());
    let io = common::open_tempdir();
    let mut child = Command::new(common::runtime())
        .arg("--root")
        .arg(env.root.path())
        .args(["sandbox", "--name", &name, "--", "sleep", "600"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(io.path().join("out")).unwrap())
        .stderr(std::fs::File::create(io.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = wait_for("the sandbox to run", Duration::from_secs(20), || {
        let st = env.rt(&["state", &name]);
        if !st.success() {
            return None;
        }
        let v: Value = serde_json::from_str(&st.stdout).ok()?;
        (v["status"] == "running").then(|| v["pid"].as_i64().unwrap() as i32)
    });
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGKILL));
    // Foreground sandboxes are removed when they exit.
    assert_gone(env.root.path(), &name);
}

#[test]
fn detached_lifecycle() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(
        &[],
        &[
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2; exec sleep 600",
        ],
    );
    let dir = Path::new(SANDBOXES).join(&name);
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // Searchable for the sandbox's root id, not listable; -e values stay root's.
    assert_eq!(mode(&dir), 0o711);
    assert_eq!(mode(&dir.join("config.json")), 0o600);
    // The same state store as OCI containers.
    let list = env.rt(&["list", "--format", "json"]);
    list.ok();
    let views: Value = serde_json::from_str(&list.stdout).unwrap();
    let me = views
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == name.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {list}"));
    assert_eq!(me["status"], "running");
    assert_eq!(me["bundle"], dir.to_str().unwrap());
    let logs = wait_for("both lines in the log", Duration::from_secs(10), || {
        let l = env.rt(&["logs", &name]);
        (l.stdout.contains("to-stdout") && l.stdout.contains("to-stderr")).then_some(l)
    });
    logs.ok();
    let out = env.rt(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo in-exec; grep Seccomp: /proc/self/status",
    ]);
    out.ok();
    assert!(
        out.stdout.contains("in-exec") && out.stdout.contains('2'),
        "{out}"
    );
    // exec gets the sandbox's Landlock domain too.
    let out = env.rt(&["exec", &name, "sh", "-c", "echo x > /proc/self/comm"]);
    out.fails_with(&["permission denied"]);
    let out = env.rt(&["ps", &name]);
    out.ok();
    assert!(out.stdout.contains("sleep"), "{out}");
    // rm refuses a running sandbox without -f.
    env.rt(&["rm", &name]).fails_with(&["stop it first"]);
    // sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL.
    env.rt(&["stop", "-t", "1", &name]).ok();
    assert_eq!(env.status(&name), "stopped");
    // logs -f returns at once for a stopped sandbox, with the whole log.
    let f = env.rt(&["logs", "-f", &name]);
    f.ok();
    assert!(f.stdout.contains("to-stdout"), "{f}");
    env.rt(&["rm", &name]).ok();
    assert_gone(env.root.path(), &name);
    env.rt(&["logs", &name]).fails_with(&["does not exist"]);
}

#[test]
fn rm_force_removes_a_running_sandbox() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(&["-v", "/etc:/hostetc:ro"], &["sleep", "600"]);
    let pid = env.pid(&name);
    let start = common::proc_start_time(pid);
    env.rt(&["rm", "-f", &name]).ok();
    wait_for("the init to go", Duration::from_secs(10), || {
        (common::proc_start_time(pid) != start).then_some(())
    });
    assert_gone(env.root.path(), &name);
}

#[test]
fn detached_name_is_unique_and_verbs_refuse_other_containers() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sleep", "600"]);
    let out = env.sandbox(&["-d", "--name", &name, "--", "true"]);
    assert_eq!(out.code(), Some(125), "{out}");
    assert!(out.stderr.contains("already exists"), "{out}");
    // The first one is untouched.
    assert_eq!(env.status(&name), "running");
    // An OCI container is not a sandbox.
    let b = common::Bundle::new().probe(&["sleep", "600"]);
    b.create().ok();
    let out = b.rt(&["rm", &b.id]);
    out.fails_with(&["not a sandbox"]);
}

#[test]
fn print_spec_creates_nothing() {
    sandbox_test!();
    let env = Env::new();
    let name = unique_id();
    let out = env.sandbox(&[
        "--print-spec",
        "--name",
        &name,
        "--profile",
        "baseline",
        "--memory",
        "64m",
        "--",
        "true",
    ]);
    out.ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["annotations"]["io.bulkhead.sandbox"], "baseline");
    assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64u64 << 20);
    assert_eq!(v["process"]["args"], serde_json::json!(["true"]));
    assert_gone(env.root.path(), &name);
}

#[test]
fn default_root_shows_only_what_programs_need_of_the_host_etc() {
    sandbox_test!();
    let env = Env::new();
    let out = env.sandbox(&[
        "--",
        "sh",
        "-c",
        "cat /etc/passwd; echo ---; cat /etc/hosts; echo ---; \
         for f in machine-id subuid hostname fstab ssh shadow; do \
         [ -e /etc/$f ] && echo visible:$f; done; \
         [ -s /etc/ld.so.cache ] && echo loader; true",
    ]);
    out.ok();
    let mut parts = out.stdout.split("---\n");
    let passwd = parts.next().unwrap();
    let names: Vec<&str> = passwd.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(names, ["root", "nobody"], "{out}");
    let hosts = parts.next().unwrap();
    assert!(hosts.lines().all(|l| l.contains("localhost")), "{out}");
    let rest = parts.next().unwrap();
    assert!(!rest.contains("visible:"), "host /etc leaks: {out}");
    assert!(rest.contains("loader"), "{out}");
}

#[test]
fn rootfs_dir() {
    sandbox_test!();
    // A root directory of its own: the host's binaries bound into a copy
    // of the skeleton (the mount points already exist, as in any image).
    let env = Env::new();
    let root = common::open_tempdir();
    for d in ["proc", "sys", "dev", "tmp", "run", "etc", "usr"] {
        std::fs::create_dir(root.path().join(d)).unwrap();
    }
    std::fs::write(root.path().join("etc/marker"), "mine\n").unwrap();
    let usr = "/usr:/usr:ro".to_string();
    let mut args = vec!["--rootfs", root.path().to_str().unwrap(), "-v", &usr];
    let links: Vec<String> = ["bin", "lib", "lib64"]
        .iter()
        .filter(|d| Path::new("/").join(d).is_symlink())
        .map(|d| {
            std::os::unix::fs::symlink(
                std::fs::read_link(Path::new("/").join(d)).unwrap(),
                root.path().join(d),
            )
            .unwrap();
            d.to_string()
        })
        .collect();
    skip_if!(links.len() < 2, "host is not merged-/usr");
    args.extend_from_slice(&["--", "cat", "/etc/marker"]);
    let out = env.sandbox(&args);
    out.ok();
    assert_eq!(out.stdout, "mine\n", "{out}");
    env.sandbox(&["--rootfs", "/nonexistent-root", "--", "true"])
        .fails_with(&["--rootfs"]);
}

#[test]
fn stdin_is_null_unless_interactive() {
    sandbox_test!();
    let env = Env::new();
    let run = |flags: &[&str]| {
        let mut cmd = Command::new(common::runtime());
        cmd.arg("--root")
            .arg(env.root.path())
            .arg("sandbox")
            .args(flags);
        cmd.args(["--", "sh", "-c", "read line && echo got:$line || echo eof"]);
        let dir = common::open_tempdir();
        let input = dir.path().join("in");
        std::fs::write(&input, "hello\n").unwrap();
        cmd.stdin(std::fs::File::open(&input).unwrap());
        let out = common::run_cmd(cmd, dir.path(), common::cmd_timeout());
        out.ok();
        out.stdout
    };
    assert_eq!(run(&["-i"]).trim(), "got:hello");
    assert_eq!(run(&[]).trim(), "eof");
}

#[test]
fn terminal_with_t() {
    sandbox_test!();
    skip_if!(
        Command::new("script").arg("--version").output().is_err(),
        "needs script(1) from util-linux to provide a terminal"
    );
    let env = Env::new();
    let inner = format!(
        "{} --root {} sandbox -t -- sh -c 'test -t 0 && test -t 1 && echo has-tty; exit 4'",
        common::runtime().display(),
        env.root.path().display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-eqc", &inner, "/dev/null"]).stdin(Stdio::null());
    let dir = common::open_tempdir();
    let out = common::run_cmd(cmd, dir.path(), common::cmd_timeout());
    assert_eq!(out.code(), Some(4), "{out}");
    assert!(out.stdout.contains("has-tty"), "{out}");
}

#[test]
fn runc_verbs_work_on_sandboxes_and_rm_cleans_after_delete() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sleep", "600"]);
    env.rt(&["kill", &name, "KILL"]).ok();
    wait_for("the sandbox to stop", Duration::from_secs(10), || {
        (env.status(&name) == "stopped").then_some(())
    });
    env.rt(&["delete", &name]).ok();
    // `delete` is runc's: the container goes, the sandbox dir stays…
    assert!(Path::new(SANDBOXES).join(&name).is_dir());
    // …until `rm` in the same state root (never another root's sandbox).
    let other = common::open_tempdir();
    rt(other.path(), &["rm", &name]).fails_with(&["does not exist"]);
    assert!(Path::new(SANDBOXES).join(&name).is_dir());
    env.rt(&["rm", &name]).ok();
    assert_gone(env.root.path(), &name);
}

#[test]
fn logs_follow_until_the_sandbox_stops() {
    sandbox_test!();
    let env = Env::new();
    let name = env.detached(&[], &["sh", "-c", "echo one; sleep 1; echo two"]);
    // Started while "two" is not written yet; returns once it has stopped.
    let out = env.rt(&["logs", "-f", &name]);
    out.ok();
    assert_eq!(out.stdout, "one\ntwo\n", "{out}");
    assert_eq!(env.status(&name), "stopped");
}
