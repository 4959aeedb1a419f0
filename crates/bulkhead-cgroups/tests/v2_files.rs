//! `apply` in cgroup2 mode against a stand-in directory of plain files: the
//! host is v1/hybrid, so this checks which v2 files get which values.

use std::path::Path;

use bulkhead_cgroups::{CgroupDir, CgroupSet};
use oci_spec::runtime::LinuxResources;

const FILES: &[(&str, &str)] = &[
    ("memory.max", "max"),
    ("memory.low", "0"),
    ("memory.swap.max", "max"),
    ("pids.max", "max"),
    ("cpu.weight", "100"),
    ("cpu.max", "30000 100000"),
    ("cpu.max.burst", "0"),
    ("cpu.idle", "0"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("io.weight", "default 100"),
    ("io.max", ""),
    ("hugetlb.2MB.max", "max"),
    ("cgroup.max.depth", "max"),
];

fn fake_v2(dir: &Path) -> CgroupSet {
    for (f, v) in FILES {
        std::fs::write(dir.join(f), v).unwrap();
    }
    CgroupSet {
        systemd: None,
        dirs: vec![CgroupDir {
            name: String::new(),
            path: dir.to_path_buf(),
            v2: true,
            controllers: ["cpuset", "cpu", "io", "memory", "hugetlb", "pids"]
                .map(String::from)
                .to_vec(),
            existed: false,
        }],
    }
}

fn get(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f)).unwrap()
}

fn apply(set: &CgroupSet, json: &str) -> Result<(), bulkhead_cgroups::CgroupError> {
    let r: LinuxResources = serde_json::from_str(json).unwrap();
    set.apply(&r)
}

#[test]
fn v2_files_get_v2_values() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let set = fake_v2(d);
    apply(
        &set,
        r#"{
        "memory": {"limit": 67108864, "swap": 100663296, "reservation": 1048576},
        "pids": {"limit": -1},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": -1}],
        "unified": {"cgroup.max.depth": "3"}
    }"#,
    )
    .unwrap();
    assert_eq!(get(d, "memory.max"), "67108864");
    assert_eq!(get(d, "memory.swap.max"), "33554432");
    assert_eq!(get(d, "memory.low"), "1048576");
    assert_eq!(get(d, "pids.max"), "max");
    assert_eq!(get(d, "cpu.weight"), "39");
    assert_eq!(get(d, "cpu.max"), "50000 100000");
    assert_eq!(get(d, "cpuset.cpus"), "0-1");
    assert_eq!(get(d, "cpuset.mems"), "0");
    assert_eq!(get(d, "io.weight"), "default 4950");
    assert_eq!(get(d, "io.max"), "8:0 rbps=1048576");
    assert_eq!(get(d, "hugetlb.2MB.max"), "max");
    assert_eq!(get(d, "cgroup.max.depth"), "3");

    // Period alone keeps the quota already in cpu.max.
    apply(&set, r#"{"cpu": {"period": 250000}}"#).unwrap();
    assert_eq!(get(d, "cpu.max"), "50000 250000");
    apply(&set, r#"{"cpu": {"quota": -1, "period": 100000}}"#).unwrap();
    assert_eq!(get(d, "cpu.max"), "max 100000");

    // Swap without a memory limit is refused, naming the field.
    let err = apply(&set, r#"{"memory": {"swap": 100}}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.memory.swap: "),
        "{err}"
    );
    // Realtime limits do not exist on v2.
    let err = apply(&set, r#"{"cpu": {"realtimeRuntime": 1000}}"#).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("linux.resources.cpu.realtimeRuntime: "),
        "{err}"
    );
    // Device rules become an eBPF program, which cannot be attached to a
    // plain directory: with no v1 devices cgroup to fall back on, that is
    // an error naming the field (as root; without root loading is refused).
    // Either way no file is written.
    let err = apply(&set, r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).unwrap_err();
    assert!(
        err.to_string().starts_with("linux.resources.devices: "),
        "{err}"
    );
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
}

#[test]
fn v2_missing_controller_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut set = fake_v2(tmp.path());
    set.dirs[0].controllers.retain(|c| c != "pids");
    let err = apply(&set, r#"{"pids": {"limit": 5}}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "linux.resources.pids.limit: the pids controller is not available"
    );
}
