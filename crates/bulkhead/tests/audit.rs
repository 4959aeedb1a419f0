//! `bulkhead audit`: a deliberately weak container is reported from its
//! config and, from the kernel's view, while it runs; the restricted
//! sandbox is audited clean; a podman container audited by pid matches
//! what the probe sees inside; --fail-on exit codes; bad input.
//! Under runc (BULKHEAD_TEST_RUNTIME) only the podman test runs: podman
//! starts the container with runc, bulkhead audits it by pid.

#[macro_use]
mod common;

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::podman::{NO_NETWORK_AND_LIMITS, Podman};
use common::{Bundle, RtOutput, is_runc, rootfs, rt, run_cmd, unique_id};
use serde_json::{Value, json};

fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {report}"))
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn json_of(out: &RtOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// What the weak container must be reported for.
const WEAK: &[&str] = &[
    "caps-all",
    "cap-sys-admin",
    "host-pid-ns",
    "host-net-ns",
    "runtime-socket",
    "no-seccomp",
    "sysfs-writable",
    "no-new-privs-off",
];

/// Every capability, a shared pid and network namespace, a docker.sock
/// bound in, no seccomp, a writable /sys, no no_new_privs; runs the probe
/// until killed.
fn weak_bundle(sock: &Path) -> Bundle {
    let all: Vec<&str> = bulkhead_caps();
    let sock = sock.to_str().unwrap().to_string();
    Bundle::new()
        .probe(&["sleep", "300"])
        .without_namespace("pid")
        .without_namespace("network")
        .json_patch(move |c| {
            let caps = json!(all);
            c["process"]["capabilities"] = json!({
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": caps, "ambient": caps
            });
            c["process"]["noNewPrivileges"] = json!(false);
            let mounts = c["mounts"].as_array_mut().unwrap();
            for m in mounts.iter_mut() {
                if m["destination"] == "/sys" {
                    m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
                }
            }
            mounts.push(
                json!({"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=755"]}),
            );
            mounts.push(json!({"destination": "/run/docker.sock", "type": "bind",
                "source": sock, "options": ["rbind", "rw"]}));
        })
}

/// Every capability this process holds (its bounding set): what the
/// runtime can grant (root here may lack some, e.g. CAP_SYS_RESOURCE).
fn bulkhead_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    let bits = u64::from_str_radix(hex, 16).unwrap();
    common::CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

#[test]
fn weak_container_is_reported_from_its_config_and_live() {
    require_root!();
    skip_if!(is_runc(), "runc has no audit");
    let dir = common::open_tempdir();
    let sock = dir.path().join("docker.sock");
    let _listener = UnixListener::bind(&sock).expect("bind docker.sock");
    let b = weak_bundle(&sock);
    b.write_config();

    // From the config alone.
    let config = b.dir().join("config.json");
    let out = b.rt(&[
        "audit",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    out.ok();
    let r = json_of(&out);
    let got = findings(&r);
    for id in WEAK {
        assert!(
            got.iter().any(|(i, _, _)| i == id),
            "--config misses {id}: {got:?}"
        );
    }
    assert_eq!(r["verdict"], "privileged", "{r}");
    let by_bundle = b.rt(&[
        "audit",
        "--bundle",
        b.dir().to_str().unwrap(),
        "--format",
        "json",
    ]);
    by_bundle.ok();
    assert_eq!(
        findings(&json_of(&by_bundle)),
        got,
        "--bundle differs from --config"
    );

    // Live: each of them must come from the kernel's view, not the config.
    b.create().ok();
    b.start().ok();
    let out = b.rt(&["audit", &b.id, "--format", "json"]);
    out.ok();
    let r = json_of(&out);
    let got = findings(&r);
    for id in WEAK {
        assert!(
            got.iter().any(|(i, _, s)| i == id && s == "live"),
            "live audit misses {id} from the kernel's view: {got:?}"
        );
    }
    assert_eq!(r["verdict"], "privileged", "{r}");
    let live = &r["observed"][0];
    assert_eq!(live["source"], "live");
    assert_eq!(live["seccomp"]["mode"], "disabled", "{live}");
    let sock_mount = live["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/run/docker.sock")
        .unwrap_or_else(|| panic!("no /run/docker.sock mount seen live: {live}"));
    assert_eq!(
        sock_mount["host_path"],
        sock.to_str().unwrap(),
        "{sock_mount}"
    );

    // The table says the same for people.
    let out = b.rt(&["audit", &b.id]);
    out.ok();
    for id in WEAK {
        assert!(out.stdout.contains(id), "table misses {id}: {out}");
    }
    assert!(out.stdout.contains("verdict: privileged"), "{out}");

    // --fail-on: critical findings reach every level.
    assert_eq!(
        b.rt(&["audit", &b.id, "--fail-on", "critical"]).code(),
        Some(3)
    );
    assert_eq!(
        b.rt(&[
            "audit",
            "--config",
            config.to_str().unwrap(),
            "--fail-on",
            "high"
        ])
        .code(),
        Some(3)
    );
    b.kill("KILL").ok();
    common::wait_for("the container to stop", common::cmd_timeout(), || {
        (b.status() == "stopped").then_some(())
    });
    let out = b.rt(&["audit", &b.id]);
    assert_eq!(out.code(), Some(1), "{out}");
    out.fails_with(&[&b.id, "not running"]);
}

/// A private state root, and detached sandboxes removed at the end (also
/// when the test fails).
struct Sandboxes {
    root: tempfile::TempDir,
    names: Vec<String>,
}

impl Sandboxes {
    fn rt(&self, args: &[&str]) -> RtOutput {
        rt(self.root.path(), args)
    }
}

impl Drop for Sandboxes {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = rt(self.root.path(), &["rm", "--force", n]);
        }
    }
}

#[test]
fn restricted_sandbox_audits_clean() {
    require_root!();
    skip_if!(is_runc(), "runc has no sandbox or audit");
    let mut s = Sandboxes {
        root: common::open_tempdir(),
        names: Vec::new(),
    };
    let name = unique_id();
    s.names.push(name.clone());
    s.rt(&["sandbox", "-d", "--name", &name, "--", "sleep", "300"])
        .ok();
    let out = s.rt(&["audit", &name, "--format", "json"]);
    out.ok();
    let r = json_of(&out);
    let above: Vec<_> = findings(&r)
        .into_iter()
        .filter(|(_, sev, _)| sev != "info")
        .collect();
    assert!(
        above.is_empty(),
        "restricted sandbox has findings above info: {above:?}\n{r}"
    );
    assert_eq!(r["verdict"], "restricted", "{r}");
    // The live view saw what the profile promises.
    let live = &r["observed"][0];
    assert_eq!(live["seccomp"]["mode"], "filter", "{live}");
    assert_eq!(live["no_new_privs"], true, "{live}");
    assert_eq!(live["caps"]["effective"], json!([]), "{live}");
    assert_eq!(live["namespaces"]["user"]["state"], "private", "{live}");
    assert_eq!(live["pids_limit"], 1024, "{live}");
    // Landlock is invisible in /proc; the recorded config tells.
    assert_eq!(live["landlock"]["state"], "enforced", "{live}");

    // --fail-on: nothing reaches low; info findings reach info.
    assert_eq!(s.rt(&["audit", &name, "--fail-on", "low"]).code(), Some(0));
    let out = s.rt(&["audit", &name, "--fail-on", "info"]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("verdict: restricted"), "{out}");
}

#[test]
fn bad_input_is_a_clear_error() {
    require_root!();
    skip_if!(is_runc(), "runc has no audit");
    let root = common::open_tempdir();
    let rt = |args: &[&str]| rt(root.path(), args);
    rt(&["audit", "no-such-container"]).fails_with(&["no-such-container"]);
    assert_eq!(rt(&["audit", "no-such-container"]).code(), Some(1));

    // A pid that is gone.
    let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id().to_string();
    child.wait().unwrap();
    let out = rt(&["audit", "--pid", &pid]);
    assert_eq!(out.code(), Some(1), "{out}");
    out.fails_with(&[&pid, "does not exist"]);

    let dir = common::open_tempdir();
    let missing = dir.path().join("nope.json");
    let out = rt(&["audit", "--config", missing.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out}");
    out.fails_with(&["nope.json"]);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"ociVersion\": 3}").unwrap();
    let out = rt(&["audit", "--config", bad.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out}");
    out.fails_with(&["bad.json", "ociVersion"]);
    let out = rt(&["audit", "--bundle", dir.path().to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{out}");
    out.fails_with(&["config.json"]);

    // Flags: a target is required, a severity must be one.
    rt(&["audit"]).fails();
    rt(&["audit", "--pid", "1", "--fail-on", "severe"]).fails_with(&["severe"]);
    rt(&["audit", "x", "--pid", "1"]).fails();
}

#[test]
fn podman_container_by_pid_matches_the_probe() {
    require_root!();
    let image = "localhost/bulkhead-audit-test:latest";
    let Some(p) = Podman::with_image(image) else {
        return;
    };

    let name = unique_id();
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(NO_NETWORK_AND_LIMITS);
    let caps = [
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "CHOWN",
    ];
    args.extend(caps);
    args.extend([image, "/bin/bulkhead-probe", "sleep", "300"]);
    p.run(&args).ok();
    let out = p.run(&["inspect", "--format", "{{.State.Pid}}", &name]);
    out.ok();
    let pid = out.stdout.trim().to_string();
    let inside = p.run(&["exec", &name, "/bin/bulkhead-probe", "report"]);
    inside.ok();
    let inside = inside.json();

    // bulkhead audits whatever runtime podman ran (runc too, with
    // BULKHEAD_TEST_RUNTIME=/usr/bin/runc).
    common::audit::wait_for_probe(&pid);
    let (_, r) = common::audit::audit_pid(&pid, p.io.path());
    common::audit::assert_live_matches_probe(&r, &inside);
    let live = &r["observed"][0];
    assert_eq!(
        live["caps"]["effective"],
        json!(["CAP_CHOWN", "CAP_NET_ADMIN"]),
        "{live}"
    );
    assert_eq!(live["namespaces"]["net"]["state"], "private", "{live}");
    let got = findings(&r);
    assert!(
        got.iter().any(|(i, _, _)| i == "caps-beyond-baseline"),
        "NET_ADMIN: {got:?}"
    );
    assert!(
        !got.iter()
            .any(|(i, _, _)| i == "caps-all" || i == "host-net-ns"),
        "{got:?}"
    );
    // podman's generated /etc/hosts, /etc/hostname, .containerenv and
    // /dev/shm are not host paths.
    assert!(
        !got.iter().any(|(i, _, _)| i == "host-path-writable"),
        "{got:?}"
    );
}

/// podman passes `--annotation` into the config: the learning annotation
/// works through it, within podman's own default profile, and podman then
/// runs the workload under the learned profile (`--security-opt seccomp=`).
#[test]
fn podman_annotation_learns_a_profile_podman_can_use() {
    require_root!();
    skip_if!(is_runc(), "the annotation is a bulkhead extension");
    let image = "localhost/bulkhead-learn-test:latest";
    let Some(p) = Podman::with_image(image) else {
        return;
    };
    // The annotation may only name the bundle directory (podman's, which
    // the test does not know) or a file beneath /var/lib/bulkhead/learned.
    struct Removed(std::path::PathBuf, bool);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            if self.1 {
                // Ours: removed when empty (another test may be using it).
                let _ = self.0.parent().map(std::fs::remove_dir);
            }
        }
    }
    let learned_dir = std::path::Path::new("/var/lib/bulkhead/learned");
    let created = !learned_dir.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(learned_dir)
        .unwrap();
    let profile = learned_dir.join(format!("{}.json", unique_id()));
    let _removed = Removed(profile.clone(), created);
    let ann = format!("io.bulkhead.seccomp.learn={}", profile.display());
    let run = |extra: &[&str], args: &[&str]| {
        // (Root here lacks CAP_SYS_RESOURCE: podman's default limits are
        // above the hard ones.)
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(NO_NETWORK_AND_LIMITS);
        a.extend_from_slice(extra);
        a.push(image);
        a.push("/bin/bulkhead-probe");
        a.extend_from_slice(args);
        p.run(&a)
    };
    let out = run(&["--annotation", &ann], &["syscall", "getpid"]);
    out.ok();
    common::wait_for(
        "the learned profile",
        std::time::Duration::from_secs(20),
        || profile.exists().then_some(()),
    );
    let learned: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(learned["x-bulkhead-learned"]["complete"], true, "{learned}");
    let seen = learned["x-bulkhead-learned"]["syscalls"].to_string();
    assert!(seen.contains("\"getpid\""), "{seen}");
    assert!(!seen.contains("\"uname\""), "{seen}");
    // Learned within podman's profile: its default refuses, as before.
    assert_eq!(learned["defaultAction"], "SCMP_ACT_ERRNO", "{learned}");

    let sec = format!("seccomp={}", profile.display());
    let out = run(&["--security-opt", &sec], &["syscall", "getpid"]);
    out.ok();
    assert_eq!(out.json()["ok"], true, "{out}");
    let out = run(&["--security-opt", &sec], &["syscall", "uname"]);
    out.ok();
    // Refused with the base profile's default errno (podman's is ENOSYS).
    let errno = learned["defaultErrnoRet"]
        .as_i64()
        .unwrap_or(libc::EPERM.into());
    assert_eq!(out.json()["errno"], errno, "never learned: {out}");
    // Without it, uname reaches the kernel (EFAULT: a NULL buffer).
    let out = run(&[], &["syscall", "uname"]);
    out.ok();
    assert_eq!(out.json()["errno"], libc::EFAULT, "{out}");
}

#[test]
fn learned_profile_runs_the_workload_and_blocks_the_rest() {
    require_root!();
    skip_if!(is_runc(), "runc has no sandbox");
    let s = Sandboxes {
        root: common::open_tempdir(),
        names: Vec::new(),
    };
    let dir = common::open_tempdir();
    let profile = dir.path().join("learned.json");
    let p = profile.to_str().unwrap();
    let out = s.rt(&["sandbox", "--learn", p, "--", "sh", "-c", "echo hi"]);
    out.ok();
    assert_eq!(out.stdout.trim(), "hi", "{out}");
    let learned: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(learned["x-bulkhead-learned"]["complete"], true, "{learned}");
    let seen = learned["x-bulkhead-learned"]["syscalls"].to_string();
    assert!(seen.contains("\"execve\""), "{seen}");
    assert_eq!(learned["defaultAction"], "SCMP_ACT_ERRNO", "{learned}");
    assert!(learned.get("listenerPath").is_none(), "{learned}");

    // The workload runs under it...
    let sec = format!("seccomp={p}");
    let out = s.rt(&[
        "sandbox",
        "--security-opt",
        &sec,
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    out.ok();
    assert_eq!(out.stdout.trim(), "hi", "{out}");
    // ...and what it never did (fork) is refused.
    let out = s.rt(&[
        "sandbox",
        "--security-opt",
        &sec,
        "--",
        "sh",
        "-c",
        "echo hi; /bin/true",
    ]);
    assert!(!out.success(), "fork was never learned: {out}");
    assert!(out.stderr.contains("fork"), "{out}");
    let out = s.rt(&["sandbox", "--", "sh", "-c", "echo hi; /bin/true"]);
    out.ok();

    // A failing workload still yields what was recorded, flagged partial.
    let partial = dir.path().join("partial.json");
    let out = s.rt(&[
        "sandbox",
        "--learn",
        partial.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stderr.contains("PARTIAL"), "{out}");
    let v: Value = serde_json::from_slice(&std::fs::read(&partial).unwrap()).unwrap();
    assert_eq!(v["x-bulkhead-learned"]["complete"], false, "{v}");
    assert_eq!(v["x-bulkhead-learned"]["exitCode"], 3, "{v}");

    // Bad input.
    let out = s.rt(&[
        "sandbox",
        "--learn",
        p,
        "--security-opt",
        "seccomp=unconfined",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out}");
    out.fails_with(&["--learn", "no seccomp profile"]);
    let out = s.rt(&[
        "sandbox",
        "--learn",
        p,
        "--profile",
        "baseline",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out}");
    out.fails_with(&["--learn", "no-new-privileges"]);
    // With it, the baseline profile learns too.
    let out = s.rt(&[
        "sandbox",
        "--learn",
        p,
        "--profile",
        "baseline",
        "--security-opt",
        "no-new-privileges",
        "--",
        "sh",
        "-c",
        "echo hi",
    ]);
    out.ok();
    let out = s.rt(&[
        "sandbox",
        "--learn",
        "/nonexistent-dir/x.json",
        "--",
        "true",
    ]);
    assert_eq!(out.code(), Some(125), "{out}");
    out.fails_with(&["--learn", "/nonexistent-dir"]);
    s.rt(&["sandbox", "-d", "--learn", p, "--", "true"])
        .fails_with(&["--learn"]);
}

/// Where the host mounts cgroup2 (on this hybrid host: /sys/fs/cgroup/unified).
fn cgroup2_mount() -> Option<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, t)| t.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split(' ').nth(4).map(PathBuf::from))
}

/// A cgroup2 directory with bulkhead's device program for `rules`
/// attached and a shell in it that says whether it can open the paths it
/// is given; the shell is killed and the directory (and with it the
/// program) removed on drop.
struct DeviceCgroup {
    dir: PathBuf,
    shell: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl DeviceCgroup {
    fn new(mount: &Path, rules: Value) -> DeviceCgroup {
        use std::os::fd::AsFd;
        let dir = mount.join(format!("bh-audit-dev-{}", unique_id()));
        std::fs::create_dir(&dir).unwrap();
        let mut shell = Command::new("sh")
            .args([
                "-c",
                "while read p; do if (: < \"$p\") 2>/dev/null; then echo ok; else echo denied; fi; done",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let c = DeviceCgroup {
            dir,
            stdin: shell.stdin.take().unwrap(),
            out: std::io::BufReader::new(shell.stdout.take().unwrap()),
            shell,
        };
        let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_value(rules).unwrap();
        let prog = bulkhead_cgroups::devfilter::program(&rules).unwrap();
        let prog =
            bulkhead_sys::bpf::load_cgroup_device_prog(&bulkhead_cgroups::devfilter::encode(&prog))
                .unwrap();
        let dirfd = std::fs::File::open(&c.dir).unwrap();
        bulkhead_sys::bpf::attach(prog.as_fd(), dirfd.as_fd(), None).unwrap();
        std::fs::write(c.dir.join("cgroup.procs"), c.shell.id().to_string()).unwrap();
        c
    }

    fn pid(&self) -> String {
        self.shell.id().to_string()
    }

    /// Whether the shell in the cgroup can open `path` for reading.
    fn opens(&mut self, path: &str) -> bool {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{path}").unwrap();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        match line.trim() {
            "ok" => true,
            "denied" => false,
            other => panic!("shell said {other:?}"),
        }
    }
}

impl Drop for DeviceCgroup {
    fn drop(&mut self) {
        let _ = self.shell.kill();
        let _ = self.shell.wait();
        // Removing the directory detaches and frees the program.
        if let Err(e) = std::fs::remove_dir(&self.dir)
            && !std::thread::panicking()
        {
            panic!("remove {}: {e}", self.dir.display());
        }
    }
}

/// On cgroup v2 the device "controller" is a BPF program: the audit queries
/// the programs that run for the process's cgroup2 directory, reads their
/// instructions back from the kernel and evaluates them on probe devices;
/// what it says matches what the kernel does when the process opens them.
#[test]
fn cgroup2_device_programs_are_evaluated() {
    require_root!();
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount on this host");
        return;
    };
    let io = common::open_tempdir();
    // Device nodes to open from inside the cgroup.
    let nodes = common::open_tempdir();
    for (name, minor) in [("null", "3"), ("zero", "5"), ("kmsg", "11")] {
        let mut mk = Command::new("mknod");
        mk.arg(nodes.path().join(name)).args(["c", "1", minor]);
        run_cmd(mk, io.path(), common::cmd_timeout()).ok();
    }
    let node = |n: &str| nodes.path().join(n).to_str().unwrap().to_string();
    let audit = |c: &DeviceCgroup| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
        cmd.args(["audit", "--pid", &c.pid(), "--format", "json"]);
        let out = run_cmd(cmd, io.path(), common::cmd_timeout());
        out.ok();
        json_of(&out)
    };
    let titles = |r: &Value, id: &str| -> Vec<String> {
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id)
            .map(|f| f["title"].as_str().unwrap().to_string())
            .collect()
    };
    let deny_all = json!({"allow": false, "access": "rwm"});
    let dev_null = json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"});

    // Weak: /dev/mem, /dev/kmsg, every sd disk, mknod of char devices.
    let mut weak = DeviceCgroup::new(
        &mount,
        json!([deny_all, dev_null,
            {"allow": true, "type": "c", "major": 1, "minor": 1, "access": "rw"},
            {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"},
            {"allow": true, "type": "b", "major": 8, "access": "rw"},
            {"allow": true, "type": "c", "access": "m"}]),
    );
    let r = audit(&weak);
    let allowed = titles(&r, "device-allowed");
    assert_eq!(allowed.len(), 3, "{allowed:?}");
    assert!(
        allowed[0].contains("cgroup v2 device program"),
        "{allowed:?}"
    );
    assert!(
        allowed
            .iter()
            .any(|t| t.contains("allows /dev/mem (c 1:1 rw)")),
        "{allowed:?}"
    );
    for want in ["allows /dev/sda (b 8:0 rw)", "allows /dev/kmsg (c 1:11 rw)"] {
        assert!(allowed.iter().any(|t| t.contains(want)), "{allowed:?}");
    }
    assert_eq!(titles(&r, "devices-mknod-any").len(), 1, "{r}");
    assert!(titles(&r, "devices-all-allowed").is_empty(), "{r}");
    let live = &r["observed"][0]["device_access"];
    assert!(
        live["by"]
            .as_str()
            .unwrap()
            .contains("cgroup v2 device program"),
        "{live}"
    );
    // The kernel agrees (this VM's kernel has no /dev/mem driver to open).
    assert!(weak.opens(&node("kmsg")));
    assert!(weak.opens(&node("null")));
    assert!(!weak.opens(&node("zero")));
    drop(weak);

    // Strict: runc's default list: nothing but the mknod wildcard (info).
    let mut strict = DeviceCgroup::new(
        &mount,
        json!([deny_all, dev_null,
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"}]),
    );
    let r = audit(&strict);
    assert!(titles(&r, "device-allowed").is_empty(), "{r}");
    assert!(titles(&r, "devices-all-allowed").is_empty(), "{r}");
    assert_eq!(titles(&r, "devices-mknod-any").len(), 2, "{r}");
    assert!(!strict.opens(&node("kmsg")));
    assert!(strict.opens(&node("zero")));
    drop(strict);

    // Everything allowed.
    let all = DeviceCgroup::new(&mount, json!([{"allow": true, "access": "rwm"}]));
    let r = audit(&all);
    let t = titles(&r, "devices-all-allowed");
    assert_eq!(t.len(), 1, "{r}");
    assert!(t[0].contains("cgroup v2 device program"), "{t:?}");
}

/// runc, started in a mount namespace where /sys/fs/cgroup is the host's
/// cgroup2 mount (so it runs in cgroup v2 mode on this hybrid host),
/// attaches a device program of its own making (cilium/ebpf); deleted on
/// drop the same way.
struct RuncV2 {
    runc: PathBuf,
    mount: PathBuf,
    state: tempfile::TempDir,
    bundle: tempfile::TempDir,
    io: tempfile::TempDir,
    id: String,
    cgroup: PathBuf,
}

impl RuncV2 {
    /// `runc ARGS` with /sys/fs/cgroup replaced by the cgroup2 mount.
    fn cmd(&self, args: &[&str]) -> RtOutput {
        let mut c = Command::new("unshare");
        c.args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" /sys/fs/cgroup && exec \"$@\"")
            .arg(&self.mount)
            .arg(&self.runc)
            .arg("--root")
            .arg(self.state.path())
            .args(args)
            .stdin(Stdio::null());
        run_cmd(c, self.io.path(), common::cmd_timeout())
    }
}

impl Drop for RuncV2 {
    fn drop(&mut self) {
        let _ = self.cmd(&["delete", "--force", &self.id]);
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

#[test]
fn runc_cgroup2_device_program_is_evaluated() {
    require_root!();
    skip_if!(
        is_runc(),
        "runs runc itself, whatever the runtime under test"
    );
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 mount on this host");
        return;
    };
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        eprintln!("skipped: runc is not installed");
        return;
    };
    let id = unique_id();
    let r = RuncV2 {
        runc,
        cgroup: mount.join(&id),
        mount,
        state: common::open_tempdir(),
        bundle: common::open_tempdir(),
        io: common::open_tempdir(),
        id,
    };
    let mut cfg = common::base_config(rootfs());
    cfg["process"]["args"] = json!(["/bin/bulkhead-probe", "sleep", "300"]);
    cfg["linux"]["cgroupsPath"] = json!(format!("/{}", r.id));
    cfg["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rw"}
    ]);
    std::fs::write(r.bundle.path().join("config.json"), cfg.to_string()).unwrap();
    let bundle = r.bundle.path().to_str().unwrap().to_string();
    r.cmd(&["run", "-d", "--bundle", &bundle, &r.id]).ok();
    let state = r.cmd(&["state", &r.id]);
    state.ok();
    let pid = json_of(&state)["pid"].to_string();
    // Its init really is in the cgroup2 directory runc made.
    let procs = std::fs::read_to_string(r.cgroup.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == pid), "{procs}");

    let (_, report) = common::audit::audit_pid(&pid, r.io.path());
    let access = &report["observed"][0]["device_access"];
    assert!(
        access["by"]
            .as_str()
            .unwrap()
            .contains("cgroup v2 device program"),
        "{access}"
    );
    let titles: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"].as_str().unwrap().starts_with("device"))
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    // runc's own defaults (mknod of anything, /dev/null...) plus the rule.
    assert_eq!(titles.len(), 3, "{titles:?}");
    assert!(
        titles
            .iter()
            .any(|t| t.contains("allows /dev/kmsg (c 1:11 rw)")),
        "{titles:?}"
    );
    assert_eq!(
        titles
            .iter()
            .filter(|t| t.contains("allows mknod of any"))
            .count(),
        2,
        "{titles:?}"
    );
}
