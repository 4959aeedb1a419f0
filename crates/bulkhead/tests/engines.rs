//! The runtime under real container engines: podman (with conmon) and
//! containerd (with its runc v2 shim) drive it through the same CLI as they
//! drive runc. Each test uses private storage and state directories, no
//! network, and the shared test rootfs imported as an image.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{RtOutput, rootfs, run_cmd, runtime};
use tempfile::TempDir;

struct Podman {
    dir: TempDir,
    io: TempDir,
}

const IMAGE: &str = "localhost/bulkhead-test:latest";

fn podman_bin() -> Option<PathBuf> {
    ["/usr/bin/podman", "/usr/local/bin/podman"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Podman {
    /// Sets up private storage and imports the test rootfs; `None` (with a
    /// printed reason) when podman is not installed.
    fn new() -> Option<Podman> {
        if podman_bin().is_none() {
            eprintln!("skipped: podman is not installed (scripts/install-deps.sh)");
            return None;
        }
        let p = Podman {
            dir: tempfile::Builder::new()
                .prefix("bh-podman-")
                .tempdir()
                .unwrap(),
            io: tempfile::Builder::new()
                .prefix("bh-podman-io-")
                .tempdir()
                .unwrap(),
        };
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let mut import = p.cmd(&["import", "-", IMAGE]);
        import.stdin(tar.stdout.take().unwrap());
        let out = run_cmd(import, p.io.path(), common::cmd_timeout());
        tar.wait().unwrap();
        out.ok();
        Some(p)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(podman_bin().unwrap());
        c.arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("run"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(runtime())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.cmd(args), self.io.path(), common::cmd_timeout())
    }

    /// `podman run --rm` with the options every test needs.
    #[track_caller]
    fn run_container(&self, extra: &[&str], command: &[&str]) -> RtOutput {
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            // Podman's default rlimits exceed what root may set here.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ];
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.run(&args)
    }

    fn storage(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = common::try_run_cmd(
            self.cmd(&["rm", "--all", "--force", "--time", "0"]),
            self.io.path(),
            common::cmd_timeout(),
        );
        if std::thread::panicking() {
            return;
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let needle = self.storage().to_string_lossy().into_owned();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&needle)).collect();
        assert!(left.is_empty(), "podman left mounts behind: {left:#?}");
    }
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
    let out = p.run(&[
        "run",
        "-d",
        "--name",
        "bh-detached",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        IMAGE,
        "/bin/bulkhead-probe",
        "signal-wait",
    ]);
    out.ok();
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

/// A private containerd daemon (its own root, state, socket and
/// namespace), stopped on drop.
struct Containerd {
    dir: TempDir,
    io: TempDir,
    daemon: Child,
    ns: String,
}

impl Containerd {
    fn new() -> Option<Containerd> {
        for bin in ["containerd", "ctr", "containerd-shim-runc-v2"] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
                .unwrap_or(false);
            if !found {
                eprintln!("skipped: {bin} is not installed (scripts/install-deps.sh)");
                return None;
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("bh-ctd-")
            .tempdir()
            .unwrap();
        let d = dir.path().display();
        let config = format!(
            "version = 2\n\
             root = \"{d}/root\"\n\
             state = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\", \
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.tracing.processor.v1.otlp\", \"io.containerd.internal.v1.opt\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            io: tempfile::Builder::new()
                .prefix("bh-ctd-io-")
                .tempdir()
                .unwrap(),
            ns: format!("bht-{}-{:x}", std::process::id(), {
                use std::hash::{BuildHasher, RandomState};
                RandomState::new().hash_one(std::time::SystemTime::now()) & 0xffff_ffff
            }),
            dir,
            daemon,
        };
        common::wait_for("containerd to listen", Duration::from_secs(20), || {
            let out = run_cmd(c.ctr(&["version"]), c.io.path(), common::cmd_timeout());
            out.success().then_some(())
        });
        Some(c)
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(["--namespace", &self.ns])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.ctr(args), self.io.path(), common::cmd_timeout())
    }

    /// Imports the test rootfs (via podman's OCI archive export).
    fn import_image(&self, p: &Podman) {
        let archive = self.dir.path().join("image.tar");
        let archive_s = archive.to_str().unwrap();
        p.run(&["save", "--format", "oci-archive", "-o", archive_s, IMAGE])
            .ok();
        self.run(&["images", "import", "--snapshotter", "native", archive_s])
            .ok();
    }

    /// `ctr run` arguments selecting the runtime under test.
    fn run_args<'a>(&self, rt: &'a str) -> Vec<&'a str> {
        vec!["run", "--snapshotter", "native", "--runc-binary", rt]
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.daemon.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Snapshot or shm mounts containerd may have left under its root.
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut left: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.contains(&needle))
            .map(str::to_string)
            .collect();
        left.reverse();
        for m in &left {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        let _ = std::fs::remove_dir_all(format!("/run/containerd/runc/{}", self.ns));
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containerd left mounts behind: {left:#?}");
        }
    }
}

#[test]
fn containerd_run_exit_code_and_report() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let Some(c) = Containerd::new() else { return };
    c.import_image(&p);
    let rt = runtime();
    let rt = rt.to_str().unwrap();
    let mut args = c.run_args(rt);
    args.extend(["--rm", IMAGE, "bh-exit", "/bin/bulkhead-probe", "exit", "3"]);
    let out = c.run(&args);
    assert_eq!(out.code(), Some(3), "{out}");

    let mut args = c.run_args(rt);
    args.extend(["--rm", IMAGE, "bh-report", "/bin/bulkhead-probe", "report"]);
    let out = c.run(&args);
    out.ok();
    let r = out.json();
    assert_eq!(r["pid"], 1);
    // The shim hands the runtime an extra fd; none may reach the container
    // beyond its stdio.
    let fds: Vec<i64> = r["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(fds, vec![0, 1, 2], "{}", r["fds"]);
}

#[test]
fn containerd_detached_task_kill_and_delete() {
    require_root!();
    let Some(p) = Podman::new() else { return };
    let Some(c) = Containerd::new() else { return };
    c.import_image(&p);
    let rt = runtime();
    let rt = rt.to_str().unwrap();
    let mut args = c.run_args(rt);
    args.extend(["-d", IMAGE, "bh-task", "/bin/bulkhead-probe", "signal-wait"]);
    c.run(&args).ok();
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
    c.run(&["task", "delete", "bh-task"]).ok();
    c.run(&["container", "delete", "bh-task"]).ok();
    let ls = c.run(&["task", "ls"]);
    assert!(!ls.stdout.contains("bh-task"), "{ls}");
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
    let out = p.run(&[
        "run",
        "-d",
        "--name",
        "bh-limits",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        IMAGE,
        "/bin/bulkhead-probe",
        "sleep",
        "600",
    ]);
    out.ok();
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
    p.run(&["rm", "--force", "--time", "0", "bh-limits"]).ok();
}
