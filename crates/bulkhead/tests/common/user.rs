//! A real unprivileged test user for rootless tests (rootless.rs,
//! sandbox_rootless.rs): `useradd -m` with sub-ids far from the host ranges
//! other tests map containers to, `/run/user/<uid>` (0700, as logind would),
//! optionally a delegated cgroup in every hierarchy. The guard kills the
//! user's processes (by uid and sub-id), removes the cgroups, the runtime
//! dir, the home and the user on drop, also when the test fails.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{RtOutput, cmd_timeout, run_cmd, runtime, try_run_cmd, wait_for};

pub const BUSYBOX: &str = "/bin/busybox";
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "id", "sleep", "echo", "grep", "touch", "true", "mount", "wc", "ip", "httpd",
];

pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// First id of the user's /etc/subuid range (Debian gives 65536).
    pub subuid: u32,
    pub subgid: u32,
    pub io: TempDir,
    /// Name of the delegated cgroup (one directory in every hierarchy).
    pub deleg: Option<String>,
}

pub fn tool(name: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).is_file())
}

/// The `start` of the first `name:start:count` line of an /etc/sub?id file.
pub fn subid_start(file: &str, name: &str) -> Option<u32> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.next()?.parse().ok())?
    })
}

impl TestUser {
    /// A fresh user, or `None` (with a printed reason) when this cannot run.
    pub fn new() -> Option<TestUser> {
        if !super::is_root() {
            eprintln!("skipped: making a test user needs root");
            return None;
        }
        for t in ["useradd", "userdel", "runuser", "newuidmap", "newgidmap"] {
            if !tool(t) {
                eprintln!("skipped: {t} is missing (passwd/uidmap; scripts/install-deps.sh)");
                return None;
            }
        }
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bhrl{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let io = tempfile::Builder::new()
            .prefix("bh-rootless-io-")
            .tempdir()
            .unwrap();
        // useradd takes the passwd/subuid locks; a parallel test may hold them.
        let out = wait_for("useradd", Duration::from_secs(30), || {
            let mut c = Command::new("useradd");
            // Sub-ids far from the host ranges other tests map containers
            // to (100000…): this user's clean-up kills processes by sub-id.
            c.args(["-m", "-s", "/bin/sh", "-c", "bulkhead rootless test"]);
            c.args(["-K", "SUB_UID_MIN=600000000", "-K", "SUB_UID_MAX=700000000"]);
            c.args(["-K", "SUB_GID_MIN=600000000", "-K", "SUB_GID_MAX=700000000"]);
            c.arg(&name);
            let o = run_cmd(c, io.path(), cmd_timeout());
            (o.success() || !o.stderr.contains("lock")).then_some(o)
        });
        out.ok();
        let id = |flag: &str| -> u32 {
            let o = run_cmd(
                {
                    let mut c = Command::new("id");
                    c.args([flag, &name]);
                    c
                },
                io.path(),
                cmd_timeout(),
            );
            o.stdout.trim().parse().expect("id output")
        };
        let mut u = TestUser {
            uid: id("-u"),
            gid: id("-g"),
            home: PathBuf::from("/home").join(&name),
            subuid: 0,
            subgid: 0,
            io,
            deleg: None,
            name,
        };
        // Debian's useradd fills /etc/subuid; add a range where it did not.
        if subid_start("/etc/subuid", &u.name).is_none() {
            let base = 700_000_000 + (u.uid % 1000) * 65_536;
            let range = format!("{base}-{}", base + 65_535);
            u.root_cmd(
                "usermod",
                &["--add-subuids", &range, "--add-subgids", &range, &u.name],
            );
        }
        u.subuid = subid_start("/etc/subuid", &u.name).expect("subuid range");
        u.subgid = subid_start("/etc/subgid", &u.name).expect("subgid range");
        let rundir = u.runtime_dir();
        fs::create_dir_all(&rundir).unwrap();
        fs::set_permissions(&rundir, fs::Permissions::from_mode(0o700)).unwrap();
        u.root_cmd(
            "chown",
            &[&format!("{}:{}", u.uid, u.gid), rundir.to_str().unwrap()],
        );
        Some(u)
    }

    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    #[track_caller]
    pub fn root_cmd(&self, prog: &str, args: &[&str]) -> RtOutput {
        let mut c = Command::new(prog);
        c.args(args).stdin(Stdio::null());
        let o = run_cmd(c, self.io.path(), cmd_timeout());
        o.ok();
        o
    }

    /// `args` as the user, in a login-like environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.name, "--", "env", "-i"])
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()))
            .args(args)
            .current_dir(&self.home)
            .stdin(Stdio::null());
        c
    }

    #[track_caller]
    pub fn run(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.cmd(args), self.io.path(), cmd_timeout())
    }

    /// The runtime as the user (default state root: $XDG_RUNTIME_DIR/bulkhead).
    #[track_caller]
    pub fn rt(&self, args: &[&str]) -> RtOutput {
        let rt = runtime();
        let mut all = vec![rt.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// A bundle in the user's home: a busybox root owned by the user and the
    /// config `bulkhead spec --rootless` wrote for it, then `patch`ed.
    pub fn bundle(&self, name: &str, patch: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.home.join(name);
        let root = dir.join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
        }
        let owner = format!("{}:{}", self.uid, self.gid);
        self.root_cmd("chown", &["-R", &owner, dir.to_str().unwrap()]);
        self.rt(&["spec", "--rootless", "--bundle", dir.to_str().unwrap()])
            .ok();
        let cfg = dir.join("config.json");
        let mut v: Value = serde_json::from_slice(&fs::read(&cfg).unwrap()).unwrap();
        v["process"]["terminal"] = json!(false);
        patch(&mut v);
        fs::write(&cfg, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        dir
    }

    /// Delegate a cgroup in every hierarchy by chown, as root would on a
    /// host without systemd (cpuset seeded: an empty one holds no task).
    /// `None` (with a reason) on a host without v1 hierarchies.
    pub fn delegate_cgroups(&mut self) -> Option<String> {
        if !Path::new("/sys/fs/cgroup/pids/cgroup.procs").exists() {
            eprintln!(
                "skipped: no cgroup v1 pids hierarchy; cgroup2 delegation needs the user's \
                 session placed in the subtree (systemd does it)"
            );
            return None;
        }
        let name = format!("{}-deleg", self.name);
        let owner = format!("{}:{}", self.uid, self.gid);
        for h in cgroup_hierarchies() {
            let d = h.join(&name);
            fs::create_dir_all(&d).unwrap();
            self.root_cmd("chown", &["-R", &owner, d.to_str().unwrap()]);
            if h.ends_with("cpuset") {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    fs::write(d.join(f), fs::read_to_string(h.join(f)).unwrap()).unwrap();
                }
            }
        }
        self.deleg = Some(name.clone());
        Some(name)
    }

    /// Host pids of the user's processes, and of its containers' processes
    /// running as one of its sub-ids.
    pub fn pids(&self) -> Vec<i32> {
        use std::os::unix::fs::MetadataExt;
        let subs = self.subuid..self.subuid.saturating_add(65_536);
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let uid = e.metadata().ok()?.uid();
                (uid == self.uid || (self.subuid != 0 && subs.contains(&uid))).then_some(pid)
            })
            .collect()
    }
}

/// Every mounted cgroup hierarchy directly under /sys/fs/cgroup.
pub fn cgroup_hierarchies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| !p.is_symlink() && p.join("cgroup.procs").exists());
    v
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Only this user's processes, each by pid, until none is left.
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = bulkhead_sys_kill(p);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(name) = &self.deleg {
            for h in cgroup_hierarchies() {
                let d = h.join(name);
                let mut dirs: Vec<PathBuf> = walk_dirs(&d);
                dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
                for x in dirs {
                    let _ = fs::remove_dir(&x);
                }
            }
        }
        let _ = fs::remove_dir_all(self.runtime_dir());
        let mut c = Command::new("userdel");
        c.args(["-r", "-f", &self.name]);
        let _ = try_run_cmd(c, self.io.path(), cmd_timeout());
        // userdel removes the sub-id lines; make sure of it.
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = fs::read_to_string(f) {
                let prefix = format!("{}:", self.name);
                if text.lines().any(|l| l.starts_with(&prefix)) {
                    let kept: String = text
                        .lines()
                        .filter(|l| !l.starts_with(&prefix))
                        .map(|l| format!("{l}\n"))
                        .collect();
                    let _ = fs::write(f, kept);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.home);
    }
}

pub fn bulkhead_sys_kill(pid: i32) -> std::io::Result<()> {
    let p = rustix::process::Pid::from_raw(pid).ok_or(std::io::ErrorKind::InvalidInput)?;
    rustix::process::kill_process(p, rustix::process::Signal::KILL).map_err(Into::into)
}

pub fn walk_dirs(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if d.is_dir() {
        out.push(d.to_path_buf());
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}

/// `Uid:` or `Gid:` of /proc/<pid>/status, read from the host.
pub fn host_ids(pid: i32, field: &str) -> Vec<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

/// `/dev/net/tun` opened up (0666, what udev does on Debian) while the guard
/// lives, under an exclusive lock so that two tests never interleave their
/// chmods; the original mode is put back on drop.
pub struct TunOpen {
    path: &'static Path,
    mode: u32,
    _lock: fs::File,
}

impl TunOpen {
    pub fn new() -> TunOpen {
        let path = Path::new("/dev/net/tun");
        let lock = fs::File::create("/run/lock/bulkhead-test-devtun.lock").unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
        TunOpen {
            path,
            mode,
            _lock: lock,
        }
    }
}

impl Drop for TunOpen {
    fn drop(&mut self) {
        let _ = fs::set_permissions(self.path, fs::Permissions::from_mode(self.mode));
    }
}
