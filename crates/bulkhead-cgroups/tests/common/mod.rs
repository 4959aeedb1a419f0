//! Shared helpers for the tests that run on the real cgroupfs.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_cgroups::{CgroupError, CgroupSet, Layout, detect, resolve};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why the real-cgroup tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root".into());
    }
    match detect() {
        Ok(Layout::V1 { hierarchies, .. }) if !hierarchies.is_empty() => None,
        Ok(Layout::V1 { .. }) => Some("no cgroup v1 hierarchy mounted".into()),
        Ok(Layout::V2 { .. }) => {
            Some("host is pure cgroup v2; these tests target v1/hybrid".into())
        }
        Err(e) => Some(format!("cannot detect cgroups: {e}")),
    }
}

/// Skip the calling test (return early) with a printed reason.
#[macro_export]
macro_rules! require_root_v1 {
    () => {
        if let Some(reason) = common::skip_reason() {
            eprintln!("skipping: {reason}");
            return;
        }
    };
}

/// A unique cgroup path for one test: `/bulkhead-test-<pid>-<n>`.
pub fn unique_path() -> String {
    format!(
        "/bulkhead-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container cgroup set for one test, removed (with its processes) on
/// drop, plus the child processes the test spawned.
pub struct TestCgroup {
    pub set: CgroupSet,
    pub rel: String,
    pub children: Vec<Child>,
}

impl TestCgroup {
    /// Resolve a fresh unique path on the real layout (not yet created).
    pub fn new() -> TestCgroup {
        let layout = detect().expect("detect");
        let rel = unique_path();
        let set = resolve(&layout, Some(&rel), "unused", false).expect("resolve");
        TestCgroup {
            set,
            rel,
            children: Vec::new(),
        }
    }

    /// Create the cgroups; another workload may rmdir fresh empty cgroups,
    /// so a vanished directory is recreated a few times.
    pub fn create(&self) {
        retry_not_found(|| self.set.create()).expect("create");
    }

    /// Spawn `sleep` and put it into the set, recreating vanished dirs.
    pub fn spawn_sleeper(&mut self) -> i32 {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        self.children.push(child);
        retry_not_found(|| {
            self.set.create()?;
            self.set.add_pid(pid)
        })
        .expect("add_pid");
        pid
    }
}

/// Run `f`, retrying when it fails because a directory vanished.
pub fn retry_not_found<T>(mut f: impl FnMut() -> Result<T, CgroupError>) -> Result<T, CgroupError> {
    let mut n = 0;
    loop {
        match f() {
            Err(e) if e.is_not_found() && n < 20 => n += 1,
            other => return other,
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.set.remove() {
            eprintln!("cleanup: {e}");
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Anything a test created beside the set (e.g. nested cgroups) goes too.
        for d in &self.set.dirs {
            let _ = std::fs::remove_dir(&d.path);
        }
    }
}

/// The `/proc/<pid>/cgroup` lines as (controllers, path).
pub fn proc_cgroups(pid: i32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .expect("read /proc/pid/cgroup")
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

pub fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}
