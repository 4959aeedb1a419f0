//! Shared support for the conformance tests.
//!
//! The tests drive an OCI runtime binary through its runc-compatible CLI:
//! `$BULKHEAD_TEST_RUNTIME` when set (e.g. `/usr/bin/runc`), otherwise the
//! `bulkhead` binary of this package. Every container gets its own `--root`
//! state directory, so tests never collide with each other or with
//! `/run/runc`.
//!
//! Containers run `bulkhead-probe` (see `crates/bulkhead-probe`) from a
//! small busybox-based rootfs that is built once per target directory and
//! shared read-only by all tests.
//!
//! Running (as root; `cargo build -p bulkhead-probe` first):
//!
//! ```text
//! cargo nextest run -p bulkhead                         # against bulkhead
//! BULKHEAD_TEST_RUNTIME=/usr/bin/runc cargo nextest run -p bulkhead
//! BULKHEAD_TEST_RUNTIME=/usr/bin/runc cargo test -p bulkhead --test lifecycle
//! ```
//!
//! Tests that need root, a tool, or a feature runc 1.1.5 lacks print
//! `skipped: <reason>` and return. Every [`Bundle`] force-deletes its
//! container on drop and then checks that nothing was left behind (state,
//! processes, host mounts, cgroups); `BULKHEAD_TEST_TIMEOUT` (seconds,
//! default 30) bounds every command the tests run.

#![allow(dead_code)]

pub mod audit;
pub mod console;
pub mod containerd;
pub mod daemon;
pub mod leaks;
pub mod netlab;
pub mod podman;
pub mod rootfs;
pub mod user;

use std::cell::RefCell;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

pub use rootfs::{PROBE, rootfs};

/// Skips the current test (with a printed reason) unless running as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::common::is_root() {
            eprintln!("skipped: this test needs root");
            return;
        }
    };
}

/// Skips the current test (with a printed reason) when `$cond` holds.
#[macro_export]
macro_rules! skip_if {
    ($cond:expr, $($reason:tt)+) => {
        if $cond {
            eprintln!("skipped: {}", format!($($reason)+));
            return;
        }
    };
}

// ------------------------------------------------------------ environment --

/// The runtime binary under test.
pub fn runtime() -> PathBuf {
    match std::env::var_os("BULKHEAD_TEST_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_bulkhead")),
    }
}

/// Whether the runtime under test is runc (decided by its `--version`).
pub fn is_runc() -> bool {
    static IS_RUNC: OnceLock<bool> = OnceLock::new();
    *IS_RUNC.get_or_init(|| {
        Command::new(runtime())
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).starts_with("runc"))
            .unwrap_or(false)
    })
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Per-command timeout (override with `BULKHEAD_TEST_TIMEOUT` seconds).
pub fn cmd_timeout() -> Duration {
    let secs = std::env::var("BULKHEAD_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// `target/<profile>` of the running test binary
/// (`target/<profile>/deps/<test>-<hash>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is not in target/<profile>/deps")
        .to_path_buf()
}

/// The `target` directory.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("profile dir has no parent")
        .to_path_buf()
}

/// The `bulkhead-probe` binary built next to the tests.
pub fn probe_bin() -> PathBuf {
    let p = profile_dir().join("bulkhead-probe");
    assert!(
        p.is_file(),
        "{} is missing: build it first: cargo build -p bulkhead-probe",
        p.display()
    );
    p
}

/// A fresh temp dir readable by everyone (bundles must be reachable by
/// container processes whose uid is mapped in a user namespace).
pub fn open_tempdir() -> TempDir {
    let d = tempfile::Builder::new()
        .prefix("bh-test-")
        .tempdir()
        .expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).expect("chmod tempdir");
    d
}

/// A field of `/proc/<pid>/status` on the host, trimmed.
pub fn proc_status_field(pid: impl std::fmt::Display, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// A unique, valid container id that names the running test.
pub fn unique_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("t");
    let tag: String = name
        .rsplit("::")
        .next()
        .unwrap_or(name)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(32)
        .collect();
    format!("bht-{tag}-{}-{n}", std::process::id())
}

// ----------------------------------------------------------- run helpers --

/// The outcome of one runtime (or other) command.
#[derive(Debug)]
pub struct RtOutput {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl RtOutput {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics with the full output unless the command failed.
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.success(), "command unexpectedly succeeded: {self}");
        self
    }

    /// Panics unless it failed and stderr contains one of `needles`
    /// (case-insensitively).
    #[track_caller]
    pub fn fails_with(&self, needles: &[&str]) -> &Self {
        self.fails();
        let err = self.stderr.to_lowercase();
        assert!(
            needles.iter().any(|n| err.contains(&n.to_lowercase())),
            "expected stderr to mention one of {needles:?}: {self}"
        );
        self
    }

    /// The last non-empty stdout line parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        parse_last_json(&self.stdout).unwrap_or_else(|| panic!("no JSON on stdout: {self}"))
    }
}

impl std::fmt::Display for RtOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }
}

/// Parses the last non-empty line of `text` that is valid JSON.
pub fn parse_last_json(text: &str) -> Option<Value> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .find_map(|l| serde_json::from_str(l).ok())
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` with its stdout/stderr redirected to files in `io_dir`
/// (files, not pipes: a detached container inherits them and may keep them
/// open long after the runtime exited). Stdin is `/dev/null` unless the
/// caller set it. Kills the command and fails the test after `timeout`.
#[track_caller]
pub fn run_cmd(cmd: Command, io_dir: &Path, timeout: Duration) -> RtOutput {
    try_run_cmd(cmd, io_dir, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_cmd`] that reports a spawn failure or timeout as `Err` instead of
/// panicking (for use in `Drop`, where a second panic would abort).
pub fn try_run_cmd(mut cmd: Command, io_dir: &Path, timeout: Duration) -> Result<RtOutput, String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = io_dir.join(format!("{n}.stdout"));
    let err_path = io_dir.join(format!("{n}.stderr"));
    let cmdline = describe(&cmd);
    let out = fs::File::create(&out_path).map_err(|e| format!("create stdout file: {e}"))?;
    let err = fs::File::create(&err_path).map_err(|e| format!("create stderr file: {e}"))?;
    cmd.stdout(out).stderr(err);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn `{cmdline}`: {e}"))?;
    // Drop our copies of the files held by `cmd`.
    drop(cmd);
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for `{cmdline}`: {e}")),
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = read_lossy(&out_path);
            let stderr = read_lossy(&err_path);
            return Err(format!(
                "`{cmdline}` did not finish within {timeout:?}; killed it\n\
                 --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(25));
    };
    Ok(RtOutput {
        cmdline,
        status,
        stdout: read_lossy(&out_path),
        stderr: read_lossy(&err_path),
        stdout_path: out_path,
        stderr_path: err_path,
    })
}

fn read_lossy(p: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Runs the runtime with a state root of its own (for commands that need no
/// bundle: `spec`, `features`, `list`, …).
#[track_caller]
pub fn rt(root: &Path, args: &[&str]) -> RtOutput {
    let mut cmd = Command::new(runtime());
    cmd.arg("--root").arg(root).args(args).stdin(Stdio::null());
    // Output files live apart from the state root, which belongs to the
    // runtime alone.
    let io = tempfile::Builder::new()
        .prefix("bh-io-")
        .tempdir()
        .expect("io dir");
    run_cmd(cmd, io.path(), cmd_timeout())
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Start time (clock ticks since boot) of a live, non-zombie process.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Namespace inode of `/proc/<pid>/ns/<name>` (`self` allowed).
pub fn ns_inode(pid: &str, name: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(format!("/proc/{pid}/ns/{name}"))
        .ok()
        .map(|m| m.ino())
}

// ---------------------------------------------------------------- bundle --

/// The base `config.json`: what `runc spec` produces, with `terminal`
/// false, a read-only root at the shared rootfs and the probe as process.
pub fn base_config(rootfs: &Path) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": [PROBE, "report"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs.to_str().expect("utf-8 rootfs path"), "readonly": true},
        "hostname": "bh-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// A bundle directory plus a private runtime state root, with one
/// container id. Dropping it force-deletes the container and checks that
/// nothing was left behind.
pub struct Bundle {
    pub id: String,
    pub config: Value,
    dir: TempDir,
    state_root: PathBuf,
    /// Keeps a private state root alive (shared between siblings).
    _root_guard: Option<Rc<TempDir>>,
    /// (pid, start time) of every container process we saw, checked on drop.
    seen: RefCell<Vec<(i32, u64)>>,
    /// Files the container's stdio went to (from the last create / run -d).
    last_io: RefCell<Option<(PathBuf, PathBuf)>>,
    /// Extra mount-table needles checked on drop.
    extra_needles: Vec<String>,
    /// Cgroup directories the container's init was in, checked on drop.
    cgroups: RefCell<Vec<PathBuf>>,
}

impl Default for Bundle {
    fn default() -> Self {
        Self::new()
    }
}

impl Bundle {
    pub fn new() -> Self {
        let rootfs = rootfs();
        let dir = open_tempdir();
        let state_root = tempfile::Builder::new()
            .prefix("bh-root-")
            .tempdir()
            .expect("state root");
        fs::create_dir_all(dir.path().join("io")).expect("io dir");
        Bundle {
            id: unique_id(),
            config: base_config(rootfs),
            dir,
            state_root: state_root.path().to_path_buf(),
            _root_guard: Some(Rc::new(state_root)),
            seen: RefCell::new(Vec::new()),
            last_io: RefCell::new(None),
            extra_needles: Vec::new(),
            cgroups: RefCell::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A second bundle whose container lives in the same state root (for
    /// `list` and duplicate-id tests).
    pub fn sibling(&self) -> Bundle {
        let mut b = Bundle::new();
        b.state_root = self.state_root.clone();
        b._root_guard = self._root_guard.clone();
        b
    }

    /// A bundle whose container lives in the given state root (which the
    /// caller keeps alive), e.g. one shared by several threads.
    pub fn in_root(root: &Path) -> Bundle {
        let mut b = Bundle::new();
        b.state_root = root.to_path_buf();
        b._root_guard = None;
        b
    }

    pub fn state_root(&self) -> &Path {
        &self.state_root
    }

    pub fn io_dir(&self) -> PathBuf {
        self.dir().join("io")
    }

    /// A scratch directory inside the bundle (created, mode 0755).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        fs::create_dir_all(&p).expect("scratch dir");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    // ---- config mutators ----

    pub fn json_patch(mut self, f: impl FnOnce(&mut Value)) -> Self {
        f(&mut self.config);
        self
    }

    pub fn args(self, args: &[&str]) -> Self {
        self.json_patch(|c| c["process"]["args"] = json!(args))
    }

    /// Runs the probe with these arguments.
    pub fn probe(self, args: &[&str]) -> Self {
        let mut v = vec![PROBE];
        v.extend_from_slice(args);
        self.args(&v)
    }

    /// Runs `/bin/sh -c script`.
    pub fn sh(self, script: &str) -> Self {
        self.args(&["/bin/sh", "-c", script])
    }

    pub fn env(self, env: &[&str]) -> Self {
        self.json_patch(|c| c["process"]["env"] = json!(env))
    }

    pub fn add_env(self, kv: &str) -> Self {
        self.json_patch(|c| {
            c["process"]["env"]
                .as_array_mut()
                .expect("env array")
                .push(json!(kv))
        })
    }

    pub fn cwd(self, cwd: &str) -> Self {
        self.json_patch(|c| c["process"]["cwd"] = json!(cwd))
    }

    pub fn user(self, uid: u32, gid: u32, additional: &[u32]) -> Self {
        self.json_patch(|c| {
            let mut u = json!({"uid": uid, "gid": gid});
            if !additional.is_empty() {
                u["additionalGids"] = json!(additional);
            }
            c["process"]["user"] = u;
        })
    }

    pub fn terminal(self, on: bool) -> Self {
        self.json_patch(|c| c["process"]["terminal"] = json!(on))
    }

    pub fn hostname(self, name: &str) -> Self {
        self.json_patch(|c| c["hostname"] = json!(name))
    }

    pub fn readonly(self, ro: bool) -> Self {
        self.json_patch(|c| c["root"]["readonly"] = json!(ro))
    }

    /// Replaces the namespace list with new namespaces of these types.
    pub fn namespaces(self, types: &[&str]) -> Self {
        let list: Vec<Value> = types.iter().map(|t| json!({"type": t})).collect();
        self.json_patch(|c| c["linux"]["namespaces"] = Value::Array(list))
    }

    /// Adds (or replaces) a namespace, optionally joining `path`.
    pub fn namespace(self, ty: &str, path: Option<&str>) -> Self {
        self.json_patch(|c| {
            let list = c["linux"]["namespaces"].as_array_mut().expect("namespaces");
            list.retain(|n| n["type"] != ty);
            let mut n = json!({"type": ty});
            if let Some(p) = path {
                n["path"] = json!(p);
            }
            list.push(n);
        })
    }

    pub fn without_namespace(self, ty: &str) -> Self {
        self.json_patch(|c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .retain(|n| n["type"] != ty)
        })
    }

    /// Adds a user namespace with these (containerID, hostID, size)
    /// mappings.
    pub fn userns(self, uids: &[(u32, u32, u32)], gids: &[(u32, u32, u32)]) -> Self {
        let m = |v: &[(u32, u32, u32)]| -> Value {
            v.iter()
                .map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s}))
                .collect()
        };
        let (u, g) = (m(uids), m(gids));
        self.namespace("user", None).json_patch(|c| {
            c["linux"]["uidMappings"] = u;
            c["linux"]["gidMappings"] = g;
        })
    }

    pub fn mount(self, dest: &str, ty: &str, source: &str, options: &[&str]) -> Self {
        self.json_patch(|c| {
            c["mounts"].as_array_mut().expect("mounts").push(json!({
                "destination": dest, "type": ty, "source": source, "options": options
            }))
        })
    }

    /// Adds a hook of `kind` (prestart, createRuntime, …).
    pub fn hook(self, kind: &str, path: &str, args: &[&str], env: &[&str]) -> Self {
        self.json_patch(|c| {
            if !c["hooks"].is_object() {
                c["hooks"] = json!({});
            }
            if !c["hooks"][kind].is_array() {
                c["hooks"][kind] = json!([]);
            }
            let mut h = json!({"path": path});
            if !args.is_empty() {
                h["args"] = json!(args);
            }
            if !env.is_empty() {
                h["env"] = json!(env);
            }
            c["hooks"][kind].as_array_mut().expect("hooks").push(h);
        })
    }

    /// Also fail the drop-time check if a host mount mentions `needle`.
    pub fn watch_mounts(mut self, needle: &str) -> Self {
        self.extra_needles.push(needle.to_string());
        self
    }

    pub fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        fs::write(self.dir().join("config.json"), text).expect("write config.json");
    }

    // ---- runtime commands ----

    /// A runtime command with `--root` set; the caller adds the rest.
    pub fn rt_command(&self) -> Command {
        let mut cmd = Command::new(runtime());
        cmd.arg("--root")
            .arg(self.state_root())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the runtime with `--root <own state root>` and `args`.
    #[track_caller]
    pub fn rt(&self, args: &[&str]) -> RtOutput {
        let mut cmd = self.rt_command();
        cmd.args(args);
        self.exec(cmd)
    }

    /// Runs an arbitrary command with output captured in the bundle.
    #[track_caller]
    pub fn exec(&self, cmd: Command) -> RtOutput {
        run_cmd(cmd, &self.io_dir(), cmd_timeout())
    }

    /// Like [`Bundle::rt`] but with `path` open on fd 3 of the runtime (as
    /// containerd-shim leaks one), via `sh -c 'exec … 3<path'`.
    #[track_caller]
    pub fn rt_with_fd3(&self, path: &Path, args: &[&str]) -> RtOutput {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("exec \"$@\" 3<\"$BH_FD3\"")
            .arg("sh")
            .arg(runtime())
            .arg("--root")
            .arg(self.state_root())
            .args(args)
            .env("BH_FD3", path)
            .stdin(Stdio::null());
        let out = self.exec(cmd);
        self.remember_io(&out);
        out
    }

    fn remember_io(&self, out: &RtOutput) {
        *self.last_io.borrow_mut() = Some((out.stdout_path.clone(), out.stderr_path.clone()));
    }

    /// `create --bundle <dir> <id>` (config written first).
    #[track_caller]
    pub fn create(&self) -> RtOutput {
        self.create_with(&[])
    }

    /// `create` with extra flags before the id.
    #[track_caller]
    pub fn create_with(&self, flags: &[&str]) -> RtOutput {
        self.write_config();
        let dir = self.dir().to_str().expect("utf-8").to_string();
        let mut args = vec!["create", "--bundle", &dir];
        args.extend_from_slice(flags);
        args.push(&self.id);
        let out = self.rt(&args);
        self.remember_io(&out);
        if out.success() {
            self.note_pid();
        }
        out
    }

    #[track_caller]
    pub fn start(&self) -> RtOutput {
        self.rt(&["start", &self.id])
    }

    /// `state <id>` parsed; panics if it fails.
    #[track_caller]
    pub fn state(&self) -> Value {
        let out = self.rt(&["state", &self.id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {out}"))
    }

    pub fn status(&self) -> String {
        self.state()["status"].as_str().unwrap_or("").to_string()
    }

    #[track_caller]
    pub fn kill(&self, sig: &str) -> RtOutput {
        self.rt(&["kill", &self.id, sig])
    }

    #[track_caller]
    pub fn delete(&self) -> RtOutput {
        self.rt(&["delete", &self.id])
    }

    #[track_caller]
    pub fn delete_force(&self) -> RtOutput {
        self.rt(&["delete", "--force", &self.id])
    }

    /// `run --bundle <dir> <id>` in the foreground.
    #[track_caller]
    pub fn run(&self) -> RtOutput {
        self.run_with(&[])
    }

    #[track_caller]
    pub fn run_with(&self, flags: &[&str]) -> RtOutput {
        self.write_config();
        let dir = self.dir().to_str().expect("utf-8").to_string();
        let mut args = vec!["run", "--bundle", &dir];
        args.extend_from_slice(flags);
        args.push(&self.id);
        let detached = flags.iter().any(|f| *f == "-d" || *f == "--detach");
        let out = self.rt(&args);
        if detached {
            self.remember_io(&out);
            if out.success() {
                self.note_pid();
            }
        }
        out
    }

    /// Runs the container in the foreground, expects exit 0 and returns the
    /// JSON the probe printed.
    #[track_caller]
    pub fn run_probe(&self) -> Value {
        let out = self.run();
        out.ok();
        out.json()
    }

    /// Runs the container, expects success and returns the parsed JSON of
    /// `probe args…`.
    #[track_caller]
    pub fn probe_result(self, args: &[&str]) -> Value {
        let b = self.probe(args);
        b.run_probe()
    }

    /// What the container wrote to stdout/stderr after create / run -d.
    pub fn container_output(&self) -> (String, String) {
        let io = self.last_io.borrow();
        let (o, e) = io.as_ref().expect("no create/run -d output recorded");
        (read_lossy(o), read_lossy(e))
    }

    /// Drops the recorded cgroup directories from the leak check on drop:
    /// for a container that joined cgroups it did not create (and so must
    /// not remove).
    pub fn forget_cgroups(&self) {
        self.cgroups.borrow_mut().clear();
    }

    /// The container's pid from `state`, recorded for the leak check.
    pub fn note_pid(&self) -> i32 {
        let st = self.rt(&["state", &self.id]);
        let pid = serde_json::from_str::<Value>(&st.stdout)
            .ok()
            .and_then(|v| v["pid"].as_i64())
            .unwrap_or(0) as i32;
        if pid > 0
            && let Some(t) = proc_start_time(pid)
        {
            self.seen.borrow_mut().push((pid, t));
            let mut cg = self.cgroups.borrow_mut();
            for dir in container_cgroup_dirs(pid) {
                if !cg.contains(&dir) {
                    cg.push(dir);
                }
            }
        }
        pid
    }

    /// Polls `state` until the status is `want`.
    #[track_caller]
    pub fn wait_status(&self, want: &str) {
        let mut last = String::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            last = self.status();
            if last == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "container {} never became {want:?} (last {last:?})",
            self.id
        );
    }

    /// Checks that the container left nothing behind: its processes are
    /// gone, no host mount mentions the bundle, state root or rootfs, and
    /// `state` no longer knows the id.
    pub fn assert_clean(&self) {
        let st = self.rt(&["state", &self.id]);
        assert!(
            !st.success(),
            "container {} still exists after delete: {st}",
            self.id
        );
        for &(pid, start) in self.seen.borrow().iter() {
            wait_for(
                &format!("container process {pid} to go away"),
                Duration::from_secs(10),
                || (proc_start_time(pid) != Some(start)).then_some(()),
            );
        }
        let mut needles = vec![
            self.dir().to_string_lossy().into_owned(),
            self.state_root().to_string_lossy().into_owned(),
        ];
        needles.extend(self.extra_needles.iter().cloned());
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mountinfo.lines() {
            for n in &needles {
                assert!(
                    !line.contains(n.as_str()),
                    "leftover host mount of container {}: {line}",
                    self.id
                );
            }
        }
        // Cgroups named after the container must be gone too.
        for dir in self.cgroups.borrow().iter() {
            wait_for(
                &format!("cgroup {} to be removed", dir.display()),
                Duration::from_secs(5),
                || (!dir.exists()).then_some(()),
            );
        }
        let cgroups = cgroup_dirs_named(&self.id);
        assert!(
            cgroups.is_empty(),
            "leftover cgroups for {}: {cgroups:?}",
            self.id
        );
    }
}

/// Parses `/proc/<pid>/cgroup` into `controller -> path`.
fn cgroup_paths(pid: &str) -> Vec<(String, String)> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _n = it.next()?;
            let ctrl = it.next()?.to_string();
            let path = it.next()?.to_string();
            Some((ctrl, path))
        })
        .collect()
}

/// Cgroup directories of `pid` that differ from the test process's own
/// (so they were made for the container), mapped to host paths.
pub fn container_cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let own = cgroup_paths("self");
    let mut dirs = Vec::new();
    for (ctrl, path) in cgroup_paths(&pid.to_string()) {
        if path == "/" || own.iter().any(|(c, p)| *c == ctrl && *p == path) {
            continue;
        }
        let mount = if ctrl.is_empty() {
            let unified = Path::new("/sys/fs/cgroup/unified");
            if unified.is_dir() {
                unified.to_path_buf()
            } else {
                PathBuf::from("/sys/fs/cgroup")
            }
        } else {
            let name = ctrl.strip_prefix("name=").unwrap_or(&ctrl);
            PathBuf::from("/sys/fs/cgroup").join(name)
        };
        let dir = mount.join(path.trim_start_matches('/'));
        if dir.is_dir() {
            dirs.push(dir);
        }
    }
    dirs
}

/// Cgroup directories (two levels deep below each hierarchy) whose name
/// contains `id`.
/// A cgroup directory named after container `id`: exactly, or with a prefix
/// ("libpod-<id>", ":runc:<id>"), never a longer id that starts with this one.
fn names_container(name: &str, id: &str) -> bool {
    name.strip_suffix(id)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with(['-', ':', '_', '.']))
        || name
            .strip_suffix(".scope")
            .is_some_and(|n| names_container(n, id))
}

pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut roots: Vec<PathBuf> = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        roots.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for root in roots {
        let Ok(rd) = fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if names_container(&e.file_name().to_string_lossy(), id) {
                found.push(p.clone());
            }
            if let Ok(rd2) = fs::read_dir(&p) {
                for e2 in rd2.flatten() {
                    if names_container(&e2.file_name().to_string_lossy(), id) && e2.path().is_dir()
                    {
                        found.push(e2.path());
                    }
                }
            }
        }
    }
    found
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let mut cmd = self.rt_command();
        cmd.args(["delete", "--force", &self.id]);
        let res = try_run_cmd(cmd, &self.io_dir(), cmd_timeout());
        if std::thread::panicking() {
            // Already failing: report, but never panic twice.
            if let Err(e) = res {
                eprintln!("cleanup of {} failed: {e}", self.id);
            }
            return;
        }
        if let Err(e) = res {
            panic!("cleanup of {} failed: {e}", self.id);
        }
        self.assert_clean();
    }
}

/// A host file with content `data` inside a fresh world-readable temp dir;
/// returns (dir guard, path).
pub fn host_file(name: &str, data: &str) -> (TempDir, PathBuf) {
    let d = open_tempdir();
    let p = d.path().join(name);
    fs::write(&p, data).expect("write host file");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
    (d, p)
}

/// Parses a `/proc/<pid>/status` capability mask.
pub fn cap_mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|_| panic!("bad cap mask {hex:?}"))
}

/// Every capability by number (the kernel's fixed numbering). Deliberately a
/// table of its own, not `bulkhead_spec::caps::ALL`: the tests' expected
/// masks must not come from the code under test.
#[allow(dead_code)]
pub const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Capability number of a `CAP_*` name.
pub fn cap_number(name: &str) -> u32 {
    CAP_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The bit mask of a list of capability names.
pub fn caps_to_mask(names: &[&str]) -> u64 {
    names.iter().fold(0, |m, n| m | (1u64 << cap_number(n)))
}
