//! `CgroupSet::apply` on the real (v1 / hybrid) cgroupfs, as root.

mod common;

use bulkhead_cgroups::{CgroupError, CgroupSet};
use common::{TestCgroup, read_trim};
use oci_spec::runtime::LinuxResources;

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn read(set: &CgroupSet, controller: &str, file: &str) -> String {
    read_trim(&set.dir(controller).unwrap().path.join(file))
}

/// A created cgroup set to apply limits to, with a process inside so that
/// nothing else removes the directories under us.
fn populated() -> TestCgroup {
    let mut cg = TestCgroup::new();
    cg.spawn_sleeper();
    cg
}

#[test]
fn memory_limits() {
    require_root_v1!();
    let cg = populated();
    cg.set
        .apply(&resources(
            r#"{"memory": {"limit": 67108864, "reservation": 33554432, "swappiness": 10}}"#,
        ))
        .unwrap();
    assert_eq!(read(&cg.set, "memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        read(&cg.set, "memory", "memory.soft_limit_in_bytes"),
        "33554432"
    );
    assert_eq!(read(&cg.set, "memory", "memory.swappiness"), "10");

    let memsw = cg
        .set
        .dir("memory")
        .unwrap()
        .path
        .join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        // Raising both past the current memsw needs memsw written first ...
        cg.set
            .apply(&resources(
                r#"{"memory": {"limit": 268435456, "swap": 536870912}}"#,
            ))
            .unwrap();
        assert_eq!(
            read(&cg.set, "memory", "memory.limit_in_bytes"),
            "268435456"
        );
        assert_eq!(read_trim(&memsw), "536870912");
        // ... and lowering both needs the limit written first.
        cg.set
            .apply(&resources(
                r#"{"memory": {"limit": 67108864, "swap": 134217728}}"#,
            ))
            .unwrap();
        assert_eq!(read(&cg.set, "memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read_trim(&memsw), "134217728");
        // Raising again from a finite memsw: memsw must go first this time.
        cg.set
            .apply(&resources(
                r#"{"memory": {"limit": 268435456, "swap": 536870912}}"#,
            ))
            .unwrap();
        assert_eq!(
            read(&cg.set, "memory", "memory.limit_in_bytes"),
            "268435456"
        );
        assert_eq!(read_trim(&memsw), "536870912");
    } else {
        eprintln!("no swap accounting here: memsw ordering not checked");
    }

    let err = cg
        .set
        .apply(&resources(
            r#"{"memory": {"limit": 134217728, "swap": 67108864}}"#,
        ))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.memory.swap: "),
        "{err}"
    );
    let err = cg
        .set
        .apply(&resources(r#"{"memory": {"swappiness": 101}}"#))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.memory.swappiness: "),
        "{err}"
    );

    cg.set
        .apply(&resources(r#"{"memory": {"disableOOMKiller": true}}"#))
        .unwrap();
    let oom = read(&cg.set, "memory", "memory.oom_control");
    assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
}

#[test]
fn pids_limit() {
    require_root_v1!();
    let cg = populated();
    cg.set
        .apply(&resources(r#"{"pids": {"limit": 42}}"#))
        .unwrap();
    assert_eq!(read(&cg.set, "pids", "pids.max"), "42");
    cg.set
        .apply(&resources(r#"{"pids": {"limit": -1}}"#))
        .unwrap();
    assert_eq!(read(&cg.set, "pids", "pids.max"), "max");
}

#[test]
fn cpu_limits() {
    require_root_v1!();
    let cg = populated();
    cg.set
        .apply(&resources(
            r#"{"cpu": {"shares": 512, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"}}"#,
        ))
        .unwrap();
    assert_eq!(read(&cg.set, "cpu", "cpu.shares"), "512");
    assert_eq!(read(&cg.set, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cg.set, "cpu", "cpu.cfs_period_us"), "200000");
    assert_eq!(read(&cg.set, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(read(&cg.set, "cpuset", "cpuset.mems"), "0");

    cg.set
        .apply(&resources(r#"{"cpu": {"quota": -1}}"#))
        .unwrap();
    assert_eq!(read(&cg.set, "cpu", "cpu.cfs_quota_us"), "-1");

    let err = cg
        .set
        .apply(&resources(r#"{"cpu": {"quota": -5}}"#))
        .unwrap_err();
    assert!(
        matches!(err, CgroupError::InvalidResource { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("linux.resources.cpu.quota: "),
        "{err}"
    );

    // The kernel's own checks come back naming the field and the file.
    let err = cg
        .set
        .apply(&resources(r#"{"cpu": {"period": 10}}"#))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("linux.resources.cpu.period: "), "{msg}");
    assert!(msg.contains("cpu.cfs_period_us"), "{msg}");
}

#[test]
fn cpuset_inherits_parent_values_when_created() {
    require_root_v1!();
    let cg = populated();
    let Some(d) = cg.set.dir("cpuset") else {
        eprintln!("skipping: no cpuset hierarchy");
        return;
    };
    // The test cgroup is one level below the root: it got the root's sets.
    let root = d.path.parent().unwrap();
    assert_eq!(
        read_trim(&d.path.join("cpuset.cpus")),
        read_trim(&root.join("cpuset.cpus"))
    );
    assert_eq!(
        read_trim(&d.path.join("cpuset.mems")),
        read_trim(&root.join("cpuset.mems"))
    );
    assert!(!read_trim(&d.path.join("cpuset.cpus")).is_empty());
}

#[test]
fn devices_deny_all_then_allow() {
    require_root_v1!();
    let cg = populated();
    cg.set
        .apply(&resources(
            r#"{"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"},
                {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                {"allow": false, "type": "c", "major": 5, "minor": 0, "access": "m"}
            ]}"#,
        ))
        .unwrap();
    let list = read(&cg.set, "devices", "devices.list");
    let mut lines: Vec<&str> = list.lines().collect();
    lines.sort();
    let mut want = vec!["c 1:3 rwm", "c 136:* rw", "c 5:0 rw"];
    want.sort();
    assert_eq!(lines, want, "{list}");

    let err = cg
        .set
        .apply(&resources(
            r#"{"devices": [{"allow": true, "type": "c", "access": "x"}]}"#,
        ))
        .unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.devices[0]: "),
        "{err}"
    );
}

#[test]
fn blkio_weight() {
    require_root_v1!();
    let cg = populated();
    let Some(d) = cg.set.dir("blkio") else {
        eprintln!("skipping: no blkio hierarchy");
        return;
    };
    let file = ["blkio.weight", "blkio.bfq.weight"]
        .into_iter()
        .find(|f| d.path.join(f).exists());
    let result = cg.set.apply(&resources(r#"{"blockIO": {"weight": 300}}"#));
    match file {
        Some(f) => {
            result.unwrap();
            let v = read_trim(&d.path.join(f));
            // blkio.bfq.weight reads "default 300", blkio.weight "300".
            assert_eq!(v.split_whitespace().last(), Some("300"), "{f}: {v}");
        }
        None => {
            let err = result.unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("linux.resources.blockIO.weight: ")
            );
        }
    }
    let err = cg
        .set
        .apply(&resources(r#"{"blockIO": {"weight": 5}}"#))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.blockIO.weight: "),
        "{err}"
    );
}

#[test]
fn hugetlb_limit_goes_where_the_controller_is() {
    require_root_v1!();
    let cg = populated();
    let Some(d) = cg.set.dir("hugetlb") else {
        eprintln!("skipping: hugetlb is in no hierarchy of the set");
        return;
    };
    let file = if d.v2 {
        "hugetlb.2MB.max"
    } else {
        "hugetlb.2MB.limit_in_bytes"
    };
    if !d.path.join(file).exists() {
        eprintln!("skipping: no {file} in {}", d.path.display());
        return;
    }
    cg.set
        .apply(&resources(
            r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#,
        ))
        .unwrap();
    assert_eq!(read_trim(&d.path.join(file)), "4194304");
    let err = cg
        .set
        .apply(&resources(
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]}"#,
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.hugepageLimits[0].pageSize: "),
        "{err}"
    );
}

#[test]
fn unified_keys_are_validated() {
    require_root_v1!();
    let cg = populated();
    let Some(u) = cg.set.v2_dir() else {
        eprintln!("skipping: no cgroup2 mount");
        return;
    };
    for key in ["../cgroup.procs", "a/b", "no.such.file"] {
        let json = format!(r#"{{"unified": {{"{key}": "1"}}}}"#);
        let err = cg.set.apply(&resources(&json)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("linux.resources.unified.{key}: ")),
            "{err}"
        );
    }
    // A real key is written verbatim.
    cg.set
        .apply(&resources(
            r#"{"unified": {"cgroup.max.descendants": "7"}}"#,
        ))
        .unwrap();
    assert_eq!(read_trim(&u.path.join("cgroup.max.descendants")), "7");
}
