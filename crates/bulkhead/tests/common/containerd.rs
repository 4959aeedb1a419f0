//! A private containerd for tests that reach the runtime through
//! containerd's runc v2 shim: `ctr` and dockerd in engines.rs, the CRI
//! plugin in cri.rs. It exists so that the daemon's setup (its own root,
//! state, socket and namespace; the snapshotters that cannot work here
//! turned off), the `ctr` calls, the image import and the cleanup are
//! written once: a daemon that is stopped, unmounted and checked for
//! leftover mounts on drop, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::daemon::{stop_daemon, unmount_under};
use super::podman::{IMAGE, Podman};
use super::{RtOutput, cmd_timeout, run_cmd, runtime, try_run_cmd, wait_for};

/// What [`Containerd::new`] and [`Containerd::with_cri`] need on `PATH`.
const BINARIES: [&str; 3] = ["containerd", "ctr", "containerd-shim-runc-v2"];

/// Whether containerd, ctr and the runc v2 shim are installed; prints the
/// reason for skipping when not.
pub fn installed() -> bool {
    for bin in BINARIES {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
            .unwrap_or(false);
        if !found {
            eprintln!("skipped: {bin} is not installed (scripts/install-deps.sh)");
            return false;
        }
    }
    true
}

/// A private containerd daemon (its own directory, socket and namespace).
pub struct Containerd {
    dir: TempDir,
    /// Where command output and test files go.
    pub io: TempDir,
    daemon: Child,
    /// The namespace `ctr` works in.
    pub ns: String,
    /// The runtime under test, the shim's `--runc-binary` for `ctr run`.
    runtime: String,
    /// Whether the namespace is this instance's own (a plain daemon), so
    /// that drop also removes its tasks, its runc state and its cgroups.
    own_namespace: bool,
    stopped: bool,
}

impl Containerd {
    /// A daemon without the CRI plugin and a namespace of its own, ready
    /// for `ctr`; `None` (with a printed reason) when it is not installed.
    pub fn new() -> Option<Containerd> {
        if !installed() {
            return None;
        }
        let ns = format!("bht-{}-{:x}", std::process::id(), {
            use std::hash::{BuildHasher, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now()) & 0xffff_ffff
        });
        let mut c = Containerd::spawn("bh-ctd-", &ns, |_| None);
        c.own_namespace = true;
        wait_for("containerd to listen", Duration::from_secs(20), || {
            c.run(&["version"]).success().then_some(())
        });
        Some(c)
    }

    /// A daemon with the CRI plugin, configured by the TOML `cri_config`
    /// returns for the daemon's directory, `ctr` in namespace `ns`.
    /// Returns before the daemon listens (the caller waits for its CRI
    /// client); call [`installed`] first.
    pub fn with_cri(
        prefix: &str,
        ns: &str,
        cri_config: impl FnOnce(&Path) -> String,
    ) -> Containerd {
        Containerd::spawn(prefix, ns, |dir| Some(cri_config(dir)))
    }

    fn spawn(
        prefix: &str,
        ns: &str,
        cri_config: impl FnOnce(&Path) -> Option<String>,
    ) -> Containerd {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let cri = cri_config(dir.path());
        let d = dir.path().display();
        let cri_off = if cri.is_none() {
            "\"io.containerd.grpc.v1.cri\", "
        } else {
            ""
        };
        let config = format!(
            "version = 2\n\
             root = \"{d}/root\"\n\
             state = \"{d}/state\"\n\
             disabled_plugins = [{cri_off}\
             \"io.containerd.snapshotter.v1.btrfs\", \"io.containerd.snapshotter.v1.zfs\", \
             \"io.containerd.snapshotter.v1.aufs\", \"io.containerd.snapshotter.v1.devmapper\", \
             \"io.containerd.tracing.processor.v1.otlp\", \"io.containerd.internal.v1.opt\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n\
             [ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             {cri}",
            cri = cri.unwrap_or_default(),
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
        Containerd {
            io: tempfile::Builder::new()
                .prefix(&format!("{prefix}io-"))
                .tempdir()
                .unwrap(),
            dir,
            daemon,
            ns: ns.to_string(),
            runtime: runtime().to_str().unwrap().to_string(),
            own_namespace: false,
            stopped: false,
        }
    }

    /// The daemon's directory (root, state, config, log, socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The daemon's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.path("c.sock")
    }

    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .args(["--namespace", &self.ns])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    #[track_caller]
    pub fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.ctr(args), self.io.path(), cmd_timeout())
    }

    /// `ctr images import` of an OCI archive onto the native snapshotter.
    #[track_caller]
    pub fn import_archive(&self, archive: &Path) {
        self.run(&[
            "images",
            "import",
            "--snapshotter",
            "native",
            archive.to_str().unwrap(),
        ])
        .ok();
    }

    /// Imports the test rootfs as [`IMAGE`] (via podman's OCI archive
    /// export).
    pub fn import_image(&self, p: &Podman) {
        let archive = self.path("image.tar");
        let archive_s = archive.to_str().unwrap();
        p.run(&["save", "--format", "oci-archive", "-o", archive_s, IMAGE])
            .ok();
        self.import_archive(&archive);
    }

    /// `ctr run` arguments: [`IMAGE`] as task `id` running `command`
    /// under the runtime under test, with `flags`.
    pub fn run_args<'a>(
        &'a self,
        flags: &[&'a str],
        id: &'a str,
        command: &[&'a str],
    ) -> Vec<&'a str> {
        self.run_args_under(&self.runtime, flags, id, command)
    }

    /// [`Containerd::run_args`] with `runtime` as the shim's `--runc-binary`.
    pub fn run_args_under<'a>(
        &self,
        runtime: &'a str,
        flags: &[&'a str],
        id: &'a str,
        command: &[&'a str],
    ) -> Vec<&'a str> {
        let mut args = vec!["run", "--snapshotter", "native", "--runc-binary", runtime];
        args.extend_from_slice(flags);
        args.extend([IMAGE, id]);
        args.extend_from_slice(command);
        args
    }

    /// `ctr run` (see [`Containerd::run_args`]).
    #[track_caller]
    pub fn run_task(&self, flags: &[&str], id: &str, command: &[&str]) -> RtOutput {
        self.run(&self.run_args(flags, id, command))
    }

    /// `ctr run -d` of task `id` under the runtime under test, waiting
    /// until it runs; its host pid.
    #[track_caller]
    pub fn start_task(&self, flags: &[&str], id: &str, command: &[&str]) -> String {
        self.start_task_under(&self.runtime, flags, id, command)
    }

    /// [`Containerd::start_task`] under `runtime`.
    #[track_caller]
    pub fn start_task_under(
        &self,
        runtime: &str,
        flags: &[&str],
        id: &str,
        command: &[&str],
    ) -> String {
        let mut all = vec!["-d"];
        all.extend_from_slice(flags);
        self.run(&self.run_args_under(runtime, &all, id, command))
            .ok();
        self.wait_task(id, "RUNNING")
    }

    /// Task `id`'s (pid, status) in `ctr task ls`, if listed.
    pub fn task(&self, id: &str) -> Option<(String, String)> {
        let ls = self.run(&["task", "ls"]);
        ls.stdout.lines().find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(id)).then_some(())?;
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
    }

    /// Task `id`'s status in `ctr task ls` ("" when not listed).
    pub fn task_status(&self, id: &str) -> String {
        self.task(id).map(|(_, status)| status).unwrap_or_default()
    }

    /// Waits until task `id` has `status`; its host pid.
    #[track_caller]
    pub fn wait_task(&self, id: &str, status: &str) -> String {
        wait_for(
            &format!("task {id} {status}"),
            Duration::from_secs(10),
            || {
                self.task(id)
                    .and_then(|(pid, s)| (s == status).then_some(pid))
            },
        )
    }

    /// Waits until task `id` has stopped (or is gone).
    #[track_caller]
    pub fn wait_stopped(&self, id: &str) {
        wait_for(
            &format!("task {id} stopped"),
            Duration::from_secs(10),
            || match self.task(id) {
                Some((_, status)) if status != "STOPPED" => None,
                _ => Some(()),
            },
        );
    }

    /// Deletes the (stopped) task `id` and its container.
    #[track_caller]
    pub fn delete_task(&self, id: &str) {
        self.run(&["task", "delete", id]).ok();
        self.run(&["container", "delete", id]).ok();
    }

    /// SIGKILLs task `id`, waits until it has stopped and deletes it and
    /// its container.
    #[track_caller]
    pub fn kill_and_delete(&self, id: &str) {
        self.run(&["task", "kill", "--signal", "KILL", id]).ok();
        self.wait_stopped(id);
        self.delete_task(id);
    }

    /// `ctr task exec` of `command` in task `task`, its stdout and stderr
    /// written to a file by the shim (`--log-uri file://…`) instead of
    /// copied by ctr from fifos: containerd 1.6's ctr can print nothing for
    /// a short-lived exec whatever the runtime (docs/clients.md, "ctr task
    /// exec prints nothing now and then"). The shim has copied everything
    /// before ctr's `DeleteProcess` returns, so the file is complete when
    /// ctr exits; it becomes `stdout` of the result (stdout, then stderr
    /// lines, in the order written).
    #[track_caller]
    pub fn exec_logged(&self, task: &str, exec_id: &str, command: &[&str]) -> RtOutput {
        let log = self.io.path().join(format!("exec-{task}-{exec_id}.log"));
        let uri = format!("file://{}", log.display());
        let mut args = vec![
            "task",
            "exec",
            "--log-uri",
            &uri,
            "--exec-id",
            exec_id,
            task,
        ];
        args.extend_from_slice(command);
        let mut out = self.run(&args);
        out.stdout = std::fs::read_to_string(&log)
            .unwrap_or_else(|e| panic!("{}: {e}\n{out}", log.display()));
        out.stdout_path = log;
        out
    }

    /// Stops the daemon and lazily unmounts what it left under its
    /// directory; returns those mounts (none the second time).
    pub fn stop(&mut self) -> Vec<String> {
        if self.stopped {
            return Vec::new();
        }
        self.stopped = true;
        stop_daemon(&mut self.daemon, Duration::from_secs(10));
        unmount_under(self.dir.path())
    }

    /// Force-deletes the tasks and containers a failed test left, so that
    /// their shims exit.
    fn remove_all_tasks(&self) {
        let timeout = cmd_timeout();
        let Ok(ls) = try_run_cmd(
            self.ctr(&["containers", "ls", "-q"]),
            self.io.path(),
            timeout,
        ) else {
            return;
        };
        for id in ls.stdout.split_whitespace() {
            let delete_task = self.ctr(&["task", "delete", "--force", id]);
            let _ = try_run_cmd(delete_task, self.io.path(), timeout);
            let delete_container = self.ctr(&["containers", "delete", id]);
            let _ = try_run_cmd(delete_container, self.io.path(), timeout);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        if self.own_namespace {
            self.remove_all_tasks();
        }
        let left = self.stop();
        if self.own_namespace {
            let _ = std::fs::remove_dir_all(format!("/run/containerd/runc/{}", self.ns));
            // The shim's cgroupsPath is /<namespace>/<id>: the runtime
            // removes the container's cgroup, the namespace level is ours.
            remove_cgroup_dirs(&self.ns);
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "containerd left mounts behind: {left:#?}");
        }
    }
}

/// Removes the (empty) cgroup directory `name` directly below the root of
/// every cgroup hierarchy; errors are ignored.
fn remove_cgroup_dirs(name: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(name));
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(name));
        }
    }
}
