//! Placement, listing, removal and freezing on the real cgroupfs (root).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use bulkhead_cgroups::{Layout, detect};
use common::{TestCgroup, proc_cgroups, read_trim};

#[test]
fn detect_finds_every_mounted_hierarchy() {
    require_root_v1!();
    let layout = detect().unwrap();
    let Layout::V1 {
        hierarchies,
        unified,
    } = &layout
    else {
        unreachable!()
    };
    // Every enabled subsystem /proc/cgroups puts in a hierarchy is found.
    let proc_cgroups = std::fs::read_to_string("/proc/cgroups").unwrap();
    for line in proc_cgroups.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 && f[1] != "0" && f[3] == "1" {
            assert!(
                layout.hierarchy(f[0]).is_some(),
                "subsystem {} (hierarchy {}) not found in {hierarchies:?}",
                f[0],
                f[1]
            );
        }
    }
    // The hierarchy of the named systemd mount, if the host has one.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if mountinfo.contains("name=systemd") {
        let h = layout.hierarchy("name=systemd").expect("name=systemd");
        assert!(h.mountpoint.join("cgroup.procs").exists());
    }
    for h in hierarchies {
        assert!(h.mountpoint.join("cgroup.procs").exists(), "{h:?}");
    }
    if mountinfo.contains(" - cgroup2 ") {
        let u = unified
            .as_deref()
            .expect("cgroup2 mount reported as unified");
        assert!(u.join("cgroup.controllers").exists(), "{u:?}");
    }
}

#[test]
fn place_list_and_remove_a_process() {
    require_root_v1!();
    let mut cg = TestCgroup::new();
    cg.create();
    for d in &cg.set.dirs {
        assert!(d.path.is_dir(), "{} not created", d.path.display());
    }
    let pid = cg.spawn_sleeper();

    // /proc/<pid>/cgroup shows the path in every hierarchy of the set.
    let lines = proc_cgroups(pid);
    for d in &cg.set.dirs {
        let key = if d.v2 {
            String::new()
        } else {
            d.controllers.join(",")
        };
        let line = lines
            .iter()
            .find(|(c, _)| {
                let mut a: Vec<&str> = c.split(',').collect();
                let mut b: Vec<&str> = key.split(',').collect();
                a.sort();
                b.sort();
                a == b
            })
            .unwrap_or_else(|| panic!("no line for {key:?} in {lines:?}"));
        assert_eq!(line.1, cg.rel, "hierarchy {key:?}");
    }
    assert_eq!(cg.set.procs().unwrap(), vec![pid]);
    cg.set.signal_all(0).unwrap();

    cg.set.remove().unwrap();
    for d in &cg.set.dirs {
        assert!(!d.path.exists(), "{} left behind", d.path.display());
    }
    let status = cg.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(cg.set.procs().unwrap(), Vec::<i32>::new());
    // Removing again is fine.
    cg.set.remove().unwrap();
}

#[test]
fn procs_and_remove_cover_nested_cgroups() {
    require_root_v1!();
    let mut cg = TestCgroup::new();
    let outer = cg.spawn_sleeper();
    let inner = cg.spawn_sleeper();
    // Move `inner` into a child cgroup in every hierarchy, as a container
    // managing its own cgroups would.
    let nested = bulkhead_cgroups::CgroupSet {
        systemd: None,
        dirs: cg
            .set
            .dirs
            .iter()
            .map(|d| bulkhead_cgroups::CgroupDir {
                path: d.path.join("nested"),
                ..d.clone()
            })
            .collect(),
    };
    common::retry_not_found(|| {
        nested.create()?;
        nested.add_pid(inner)
    })
    .unwrap();
    let mut want = vec![outer, inner];
    want.sort();
    assert_eq!(cg.set.procs().unwrap(), want);
    assert_eq!(nested.procs().unwrap(), vec![inner]);

    cg.set.remove().unwrap();
    for d in nested.dirs.iter().chain(&cg.set.dirs) {
        assert!(!d.path.exists(), "{} left behind", d.path.display());
    }
    for c in &mut cg.children {
        assert_eq!(c.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}

#[test]
fn signal_all_delivers_the_signal() {
    require_root_v1!();
    let mut cg = TestCgroup::new();
    cg.spawn_sleeper();
    cg.set.signal_all(libc::SIGTERM).unwrap();
    let status = cg.children[0].wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(cg.set.signal_all(12345).is_err());
}

#[test]
fn freeze_and_thaw_a_sleeping_child() {
    require_root_v1!();
    let mut cg = TestCgroup::new();
    let pid = cg.spawn_sleeper();
    let state_file = cg
        .set
        .dir("freezer")
        .expect("freezer hierarchy")
        .path
        .join("freezer.state");
    assert!(!cg.set.is_frozen().unwrap());

    cg.set.freeze().unwrap();
    assert_eq!(read_trim(&state_file), "FROZEN");
    assert!(cg.set.is_frozen().unwrap());
    // The task itself is in the refrigerator.
    let status = read_trim(Path::new(&format!("/proc/{pid}/status")));
    assert!(
        status.contains("State:\tD") || status.contains("State:\tS"),
        "{status}"
    );

    cg.set.thaw().unwrap();
    assert_eq!(read_trim(&state_file), "THAWED");
    assert!(!cg.set.is_frozen().unwrap());

    // Removing a frozen container works too (it is thawed to let SIGKILL in).
    cg.set.freeze().unwrap();
    cg.set.remove().unwrap();
    assert_eq!(cg.children[0].wait().unwrap().signal(), Some(libc::SIGKILL));
}
