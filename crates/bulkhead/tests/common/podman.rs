//! Private podman storage for tests that drive the runtime through podman
//! (with conmon): engines.rs, audit.rs, and the containerd tests, which
//! export their image from it. One place for podman's flags (private
//! root, runroot and tmpdir, vfs, cgroupfs, the runtime under test), the
//! image import and the leak check on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use super::{RtOutput, cmd_timeout, run_cmd, runtime, try_run_cmd};

/// The test rootfs as an image, under the name most tests use.
pub const IMAGE: &str = "localhost/bulkhead-test:latest";

/// The podman binary, if installed.
pub fn podman_bin() -> Option<PathBuf> {
    ["/usr/bin/podman", "/usr/local/bin/podman"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Private podman storage holding the test rootfs as an image; removes its
/// containers on drop and then checks that no mount is left behind.
pub struct Podman {
    dir: TempDir,
    pub io: TempDir,
    /// A private containers.conf (`CONTAINERS_CONF`), if any.
    conf: Option<PathBuf>,
}

impl Podman {
    /// Storage with the test rootfs imported as [`IMAGE`]; `None` (with a
    /// printed reason) when podman is not installed.
    pub fn new() -> Option<Podman> {
        Podman::with_image(IMAGE)
    }

    /// Storage with the test rootfs imported as `image`; `None` (with a
    /// printed reason) when podman is not installed.
    pub fn with_image(image: &str) -> Option<Podman> {
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
            conf: None,
        };
        super::rootfs::import_rootfs(p.cmd(&["import", "-", image]), p.io.path());
        Some(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
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
        if let Some(conf) = &self.conf {
            c.env("CONTAINERS_CONF", conf);
        }
        c
    }

    /// Lists the runtime's basename in `runtime_supports_json`, so podman
    /// passes it `--log-format=json --log FILE` (as it does for runc).
    pub fn with_json_log(mut self) -> Podman {
        let name = runtime();
        let name = name.file_name().unwrap().to_str().unwrap();
        let conf = self.path("containers.conf");
        std::fs::write(
            &conf,
            format!("[engine]\nruntime_supports_json = [\"crun\", \"runc\", \"{name}\"]\n"),
        )
        .unwrap();
        self.conf = Some(conf);
        self
    }

    #[track_caller]
    pub fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.cmd(args), self.io.path(), cmd_timeout())
    }

    /// `podman run --rm` of [`IMAGE`] with the options every test needs.
    #[track_caller]
    pub fn run_container(&self, extra: &[&str], command: &[&str]) -> RtOutput {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(NO_NETWORK_AND_LIMITS);
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.run(&args)
    }

    pub fn storage(&self) -> &Path {
        self.dir.path()
    }

    /// `podman run -d --name NAME` of [`IMAGE`] with the options every
    /// test needs.
    #[track_caller]
    pub fn run_detached(&self, name: &str, extra: &[&str], command: &[&str]) -> RtOutput {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(NO_NETWORK_AND_LIMITS);
        args.extend_from_slice(extra);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.run(&args)
    }

    /// `podman rm --force --time 0 NAME`, which must succeed.
    ///
    /// podman unmounts a container's `userdata/shm` without `MNT_DETACH`
    /// and then removes the directory. Twice in CI (the whole suite at full
    /// parallelism), never alone or under CPU load, the removal failed with
    /// EBUSY. Then the processes that still see that mount are printed (for
    /// whoever chases it), and rm is tried once more after a pause; the
    /// drop's check that nothing of the storage stays mounted still holds.
    #[track_caller]
    pub fn rm_force(&self, name: &str) {
        let out = self.run(&["rm", "--force", "--time", "0", name]);
        if out.success() {
            return;
        }
        if out.stderr.contains("userdata/shm") && out.stderr.contains("busy") {
            eprintln!(
                "podman rm {name}: userdata/shm busy; seen by: {:?}",
                shm_holders(self.storage())
            );
            std::thread::sleep(std::time::Duration::from_secs(1));
            self.run(&["rm", "--force", "--time", "0", name]).ok();
            return;
        }
        out.ok();
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    #[track_caller]
    pub fn inspect(&self, name: &str, format: &str) -> String {
        let out = self.run(&["inspect", "--format", format, name]);
        out.ok();
        out.stdout.trim().to_string()
    }
}

/// No network, and rlimits root may set here: podman's defaults exceed
/// them (root lacks CAP_SYS_RESOURCE).
pub const NO_NETWORK_AND_LIMITS: &[&str] = &[
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = try_run_cmd(
            self.cmd(&["rm", "--all", "--force", "--time", "0"]),
            self.io.path(),
            cmd_timeout(),
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

/// Processes whose mount table or open files reach a `userdata/shm` below
/// `storage`: pid, command and the line that names it.
fn shm_holders(storage: &Path) -> Vec<String> {
    let needle = storage.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for pid in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = pid.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        for l in mounts
            .lines()
            .filter(|l| l.contains(&needle) && l.contains("/shm"))
        {
            found.push(format!("{pid} {} mount: {l}", comm.trim()));
        }
        for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                let t = t.to_string_lossy();
                if t.contains(&needle) && t.contains("/shm") {
                    found.push(format!("{pid} {} fd: {t}", comm.trim()));
                }
            }
        }
    }
    found
}
