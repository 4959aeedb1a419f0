//! Leak checks for tests that kill the runtime half-way (faults.rs) or run
//! many containers at once (stress.rs): processes found by an environment
//! tag or by cgroup, state directories, host mounts, cgroup directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Bundle, cgroup_dirs_named, wait_for};

/// The environment variable the tests give the runtime; every process it
/// forks carries it until the container program's execve replaces the
/// environment, so a leaked setup process can be found.
pub const TAG_VAR: &str = "BH_LEAK_TAG";

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live processes whose environment holds `BH_LEAK_TAG=<tag>` (zombies have
/// an empty environ and do not count).
pub fn procs_tagged(tag: &str) -> Vec<i32> {
    let needle = format!("{TAG_VAR}={tag}\0");
    pids()
        .into_iter()
        .filter(|p| {
            fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|env| env.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

/// Live (non-zombie) processes in a cgroup whose path names container `id`.
pub fn procs_in_container_cgroup(id: &str) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|p| {
            let zombie = fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true);
            !zombie
                && fs::read_to_string(format!("/proc/{p}/cgroup")).is_ok_and(|c| {
                    c.lines().any(|l| {
                        l.rsplit(':')
                            .next()
                            .is_some_and(|path| path.split('/').any(|comp| names(comp, id)))
                    })
                })
        })
        .collect()
}

/// A cgroup directory named after container `id` (exactly, or with a
/// "libpod-"/":runc:" style prefix).
fn names(comp: &str, id: &str) -> bool {
    comp.strip_suffix(id)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with(['-', ':', '_', '.']))
}

/// Host mount points under `dir` (or mentioning it).
pub fn mounts_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle.as_str()))
        .map(str::to_owned)
        .collect()
}

/// Asserts that nothing of container `b` (run with `BH_LEAK_TAG=tag`) is
/// left: no process, no state directory, no cgroup, no host mount, and
/// `state` does not know it. Extra mount needles in `paths`.
#[track_caller]
pub fn assert_nothing_left(b: &Bundle, tag: &str, paths: &[PathBuf]) {
    let what = format!("container {}", b.id);
    wait_for(
        &format!("the processes of {what} to go away"),
        Duration::from_secs(10),
        || {
            (procs_tagged(tag).is_empty() && procs_in_container_cgroup(&b.id).is_empty())
                .then_some(())
        },
    );
    let dir = b.state_root().join(&b.id);
    assert!(
        !dir.exists(),
        "{what}: state directory {} is left",
        dir.display()
    );
    let cg = cgroup_dirs_named(&b.id);
    assert!(cg.is_empty(), "{what}: cgroups left: {cg:?}");
    for p in [b.dir().to_path_buf(), b.state_root().to_path_buf()]
        .iter()
        .chain(paths)
    {
        let m = mounts_mentioning(p);
        assert!(m.is_empty(), "{what}: host mounts left: {m:#?}");
    }
    let st = b.rt(&["state", &b.id]);
    assert!(!st.success(), "{what}: `state` still knows it: {st}");
}
