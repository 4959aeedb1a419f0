//! The runtime under a real container engine: podman (with conmon) drives
//! it through the same CLI as it drives runc. Each test uses private
//! podman storage and run directories, a `vfs` driver and no network, and
//! imports the shared test rootfs as an image.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
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
