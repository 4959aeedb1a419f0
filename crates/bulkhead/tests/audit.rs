//! `bulkhead audit`: a deliberately weak container is reported from its
//! config and, from the kernel's view, while it runs; the restricted
//! sandbox is audited clean; a podman container audited by pid matches
//! what the probe sees inside; --fail-on exit codes; bad input.
//! Under runc (BULKHEAD_TEST_RUNTIME) only the podman test runs: podman
//! starts the container with runc, bulkhead audits it by pid.

#[macro_use]
mod common;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Bundle, RtOutput, is_runc, rootfs, rt, run_cmd, runtime, unique_id};
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

fn podman_bin() -> Option<PathBuf> {
    ["/usr/bin/podman", "/usr/local/bin/podman"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Private podman storage with the test rootfs as an image; removes its
/// containers on drop.
struct Podman {
    dir: tempfile::TempDir,
    io: tempfile::TempDir,
}

impl Podman {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(podman_bin().unwrap());
        let p = |n: &str| self.dir.path().join(n);
        c.arg("--root")
            .arg(p("storage"))
            .arg("--runroot")
            .arg(p("run"));
        c.arg("--tmpdir").arg(p("tmp"));
        c.args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"]);
        c.args(["--events-backend", "file", "--runtime"])
            .arg(runtime());
        c.args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.cmd(args), self.io.path(), common::cmd_timeout())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = common::try_run_cmd(
            self.cmd(&["rm", "--all", "--force", "--time", "0"]),
            self.io.path(),
            common::cmd_timeout(),
        );
    }
}

#[test]
fn podman_container_by_pid_matches_the_probe() {
    require_root!();
    let Some(_) = podman_bin() else {
        eprintln!("skipped: podman is not installed (scripts/install-deps.sh)");
        return;
    };
    let image = "localhost/bulkhead-audit-test:latest";
    let p = podman_with_image(image);

    let name = unique_id();
    p.run(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_ADMIN",
        "--cap-add",
        "CHOWN",
        image,
        "/bin/bulkhead-probe",
        "sleep",
        "300",
    ])
    .ok();
    let out = p.run(&["inspect", "--format", "{{.State.Pid}}", &name]);
    out.ok();
    let pid = out.stdout.trim().to_string();
    let inside = p.run(&["exec", &name, "/bin/bulkhead-probe", "report"]);
    inside.ok();
    let inside = inside.json();

    // bulkhead audits whatever runtime podman ran (runc too, with
    // BULKHEAD_TEST_RUNTIME=/usr/bin/runc).
    let mut audit = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    audit.args(["audit", "--pid", &pid, "--format", "json"]);
    let out = run_cmd(audit, p.io.path(), common::cmd_timeout());
    out.ok();
    let r = json_of(&out);
    let live = &r["observed"][0];
    let hex = inside["status"]["CapEff"].as_str().unwrap();
    let bits = u64::from_str_radix(hex, 16).unwrap();
    let mut names: Vec<&str> = Vec::new();
    if bits & (1 << 0) != 0 {
        names.push("CAP_CHOWN");
    }
    if bits & (1 << 12) != 0 {
        names.push("CAP_NET_ADMIN");
    }
    assert_eq!(
        bits.count_ones() as usize,
        names.len(),
        "probe CapEff {hex}"
    );
    assert_eq!(live["caps"]["effective"], json!(names), "{live}");
    let mode = match inside["status"]["Seccomp"].as_str().unwrap() {
        "0" => "disabled",
        "1" => "strict",
        _ => "filter",
    };
    assert_eq!(live["seccomp"]["mode"], mode, "{live}");
    assert_eq!(
        live["seccomp"]["filters"].to_string(),
        inside["status"]["Seccomp_filters"].as_str().unwrap(),
        "{live}"
    );
    assert_eq!(live["no_new_privs"], inside["no_new_privs"], "{live}");
    let net = inside["ns"]["net"].as_u64().unwrap();
    assert_ne!(Some(net), common::ns_inode("self", "net"));
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

/// Private podman storage with the test rootfs imported as `image`.
fn podman_with_image(image: &str) -> Podman {
    let p = Podman {
        dir: common::open_tempdir(),
        io: common::open_tempdir(),
    };
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    let mut import = p.cmd(&["import", "-", image]);
    import.stdin(tar.stdout.take().unwrap());
    run_cmd(import, p.io.path(), common::cmd_timeout()).ok();
    tar.wait().unwrap();
    p
}

/// podman passes `--annotation` into the config: the learning annotation
/// works through it, within podman's own default profile, and podman then
/// runs the workload under the learned profile (`--security-opt seccomp=`).
#[test]
fn podman_annotation_learns_a_profile_podman_can_use() {
    require_root!();
    skip_if!(is_runc(), "the annotation is a bulkhead extension");
    let Some(_) = podman_bin() else {
        eprintln!("skipped: podman is not installed (scripts/install-deps.sh)");
        return;
    };
    let image = "localhost/bulkhead-learn-test:latest";
    let p = podman_with_image(image);
    let dir = common::open_tempdir();
    let profile = dir.path().join("podman.json");
    let ann = format!("io.bulkhead.seccomp.learn={}", profile.display());
    let run = |extra: &[&str], args: &[&str]| {
        // (Root here lacks CAP_SYS_RESOURCE: podman's default limits are
        // above the hard ones.)
        let mut a = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
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
