//! Inputs found by the `cgroup_mountinfo` fuzz target (see docs/fuzzing.md),
//! kept as plain, pure tests: no cgroupfs, no root needed.

use std::path::PathBuf;

use bulkhead_cgroups::{Layout, parse_mountinfo, resolve};

/// Every resolved directory lies strictly below the mount point of its
/// hierarchy: the mount point itself is a cgroup the runtime did not make
/// (the one the host or an outer container shows there), which `delete`
/// would empty by signalling everything in it and then try to remove.
fn assert_below_mounts(layout: &Layout, cgroups_path: &str) {
    let mounts: Vec<PathBuf> = match layout {
        Layout::V2 { root } => vec![root.clone()],
        Layout::V1 {
            hierarchies,
            unified,
        } => hierarchies
            .iter()
            .map(|h| h.mountpoint.clone())
            .chain(unified.clone())
            .collect(),
    };
    let Ok(set) = resolve(layout, Some(cgroups_path), "ctr", false) else {
        return; // refusing the path is fine
    };
    for d in &set.dirs {
        assert!(
            mounts.iter().any(|m| d.path.starts_with(m) && d.path != *m),
            "cgroupsPath {cgroups_path:?} resolves to {}, which is not below a cgroup mount",
            d.path.display()
        );
    }
}

/// A v1 mount showing only a sub-tree (`/docker/abc`, as inside a
/// container), and a cgroupsPath naming exactly that sub-tree: the
/// sub-tree prefix is dropped and nothing is left, so the container's
/// cgroup would be the mount point itself, i.e. the enclosing cgroup.
/// (Fuzzer input, minimised by hand: root "\xaf", cgroupsPath "\xee".)
#[test]
fn cgroups_path_equal_to_the_mount_root_is_not_the_mount_point() {
    let layout = parse_mountinfo(
        "35 30 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct\n",
    );
    for path in ["/docker/abc", "docker/abc", "/docker/abc/", "/docker/./abc"] {
        assert_below_mounts(&layout, path);
    }
}

#[test]
fn cgroups_path_below_the_mount_root_stays_below() {
    let layout = parse_mountinfo(
        "35 30 0:31 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct\n",
    );
    for path in ["/docker/abc/ctr", "/other/ctr", "/docker/abcd"] {
        assert_below_mounts(&layout, path);
    }
}
