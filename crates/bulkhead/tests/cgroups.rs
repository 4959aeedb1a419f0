//! Cgroups: placement (default and `cgroupsPath`), resource limits as seen
//! on the host and inside the container, cleanup of every process.

#[macro_use]
mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::{Bundle, proc_start_time};
use serde_json::json;

/// Host cgroup mounts: (fstype, super options, mount point).
fn cgroup_mounts() -> Vec<(String, Vec<String>, PathBuf)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut post = post.split(' ');
            let fstype = post.next()?;
            let _src = post.next()?;
            let opts = post.next()?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| {
                (
                    fstype.to_string(),
                    opts.split(',').map(str::to_string).collect(),
                    PathBuf::from(point),
                )
            })
        })
        .collect()
}

/// Whether `controller` is handled by a cgroup v1 hierarchy here.
fn is_v1(controller: &str) -> bool {
    cgroup_mounts()
        .iter()
        .any(|(t, o, _)| t == "cgroup" && o.iter().any(|x| x == controller))
}

/// The host directory of `pid`'s cgroup for `controller` (v1 hierarchy
/// holding it, else the unified one).
fn cgroup_dir(pid: i64, controller: &str) -> PathBuf {
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mounts = cgroup_mounts();
    if is_v1(controller) {
        for l in lines.lines() {
            let mut it = l.splitn(3, ':');
            let (_, ctrls, path) = (it.next(), it.next().unwrap(), it.next().unwrap());
            if ctrls.split(',').any(|c| c == controller) {
                let (_, _, point) = mounts
                    .iter()
                    .find(|(t, o, _)| t == "cgroup" && o.iter().any(|x| x == controller))
                    .unwrap();
                return point.join(path.trim_start_matches('/'));
            }
        }
        panic!("pid {pid} has no {controller} cgroup: {lines}");
    }
    let path = lines
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("no unified cgroup line");
    let (_, _, point) = mounts
        .iter()
        .find(|(t, _, _)| t == "cgroup2")
        .expect("no cgroup2 mount");
    point.join(path.trim_start_matches('/'))
}

fn read_trim(p: PathBuf) -> String {
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Creates and starts a sleeping container with `resources`; returns it and
/// its pid.
fn running_with(resources: serde_json::Value) -> (Bundle, i64) {
    let b = Bundle::new().probe(&["sleep", "600"]).json_patch(|c| {
        let r = c["linux"]["resources"].as_object_mut().unwrap();
        for (k, v) in resources.as_object().unwrap() {
            r.insert(k.clone(), v.clone());
        }
    });
    b.create().ok();
    b.start().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    (b, pid)
}

#[test]
fn default_cgroup_is_private_and_removed() {
    require_root!();
    let (b, pid) = running_with(json!({}));
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let theirs = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_ne!(own, theirs, "container shares the test's cgroups");
    let dir = cgroup_dir(pid, "pids");
    assert!(dir.is_dir());
    let procs = read_trim(dir.join("cgroup.procs"));
    assert_eq!(procs, pid.to_string(), "only the init is in the cgroup");
    b.delete_force().ok();
    common::wait_for("cgroup removal", Duration::from_secs(5), || {
        (!dir.exists()).then_some(())
    });
}

#[test]
fn custom_cgroups_path() {
    require_root!();
    let b = Bundle::new().probe(&["sleep", "600"]);
    let path = format!("/bht-custom/{}", b.id);
    let b = b.json_patch(|c| c["linux"]["cgroupsPath"] = json!(path));
    b.create().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let pids_line = lines
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == "pids"))
                || l.starts_with("0::")
        })
        .unwrap();
    assert!(pids_line.ends_with(&path), "{lines}");
    b.delete_force().ok();
    let dir = cgroup_dir(std::process::id().into(), "pids").join(path.trim_start_matches('/'));
    assert!(!dir.exists(), "{} left behind", dir.display());
    // The parent we implied is not ours to remove (runc leaves it too), but
    // clean it in every hierarchy so tests leave the host as they found it.
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = fs::remove_dir(h.path().join("bht-custom"));
    }
}

#[test]
fn pids_limit() {
    require_root!();
    let (_b, pid) = running_with(json!({"pids": {"limit": 16}}));
    assert_eq!(read_trim(cgroup_dir(pid, "pids").join("pids.max")), "16");
}

#[test]
fn pids_limit_is_enforced() {
    require_root!();
    let b = Bundle::new()
        .json_patch(|c| c["linux"]["resources"]["pids"] = json!({"limit": 6}))
        .sh("i=0; ok=0; while [ $i -lt 20 ]; do sleep 30 & [ $? -eq 0 ] && ok=$((ok+1)); i=$((i+1)); done; \
             echo started=$(jobs -p | wc -l); kill $(jobs -p) 2>/dev/null; exit 0");
    let out = b.run();
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        text.contains("fork") || text.contains("resource temporarily unavailable"),
        "no fork failure with pids.max=6: {out}"
    );
}

#[test]
fn memory_limit() {
    require_root!();
    let limit: u64 = 64 << 20;
    let (_b, pid) = running_with(json!({"memory": {"limit": limit}}));
    let dir = cgroup_dir(pid, "memory");
    let got = if is_v1("memory") {
        read_trim(dir.join("memory.limit_in_bytes"))
    } else {
        read_trim(dir.join("memory.max"))
    };
    assert_eq!(got, limit.to_string());
}

#[test]
fn cpu_shares() {
    require_root!();
    let (_b, pid) = running_with(json!({"cpu": {"shares": 512}}));
    let dir = cgroup_dir(pid, "cpu");
    if is_v1("cpu") {
        assert_eq!(read_trim(dir.join("cpu.shares")), "512");
    } else {
        // The OCI/runc conversion: 1 + ((shares - 2) * 9999) / 262142.
        assert_eq!(read_trim(dir.join("cpu.weight")), "20");
    }
}

#[test]
fn cpu_quota_and_period() {
    require_root!();
    let (_b, pid) = running_with(json!({"cpu": {"quota": 50000, "period": 100000}}));
    let dir = cgroup_dir(pid, "cpu");
    if is_v1("cpu") {
        assert_eq!(read_trim(dir.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read_trim(dir.join("cpu.cfs_period_us")), "100000");
    } else {
        assert_eq!(read_trim(dir.join("cpu.max")), "50000 100000");
    }
}

#[test]
fn cpuset_restricts_affinity() {
    require_root!();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let last = cpus - 1;
    let r = Bundle::new()
        .json_patch(|c| c["linux"]["resources"]["cpu"] = json!({"cpus": last.to_string()}))
        .run_probe();
    assert_eq!(r["cpus"], json!([last]), "affinity: {}", r["cpus"]);
}

#[test]
fn children_share_the_cgroup_and_die_with_delete_force() {
    require_root!();
    // Without a pid namespace the runtime must find every process through
    // the cgroup when force-deleting.
    let b = Bundle::new()
        .without_namespace("pid")
        .sh("sleep 600 & sleep 600 & sleep 600 & wait");
    b.create().ok();
    b.start().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let dir = cgroup_dir(pid, "pids");
    let procs: Vec<i32> = common::wait_for("children", Duration::from_secs(10), || {
        let v: Vec<i32> = read_trim(dir.join("cgroup.procs"))
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        (v.len() >= 4).then_some(v)
    });
    let starts: Vec<(i32, u64)> = procs
        .iter()
        .filter_map(|&p| proc_start_time(p).map(|t| (p, t)))
        .collect();
    b.delete_force().ok();
    for (p, t) in starts {
        common::wait_for(
            &format!("process {p} to die"),
            Duration::from_secs(10),
            || (proc_start_time(p) != Some(t)).then_some(()),
        );
    }
}

#[test]
fn kill_all_without_pid_namespace() {
    require_root!();
    let b = Bundle::new()
        .without_namespace("pid")
        .sh("sleep 600 & sleep 600 & wait");
    b.create().ok();
    b.start().ok();
    let pid = b.state()["pid"].as_i64().unwrap();
    let dir = cgroup_dir(pid, "pids");
    let procs: Vec<i32> = common::wait_for("children", Duration::from_secs(10), || {
        let v: Vec<i32> = read_trim(dir.join("cgroup.procs"))
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        (v.len() >= 3).then_some(v)
    });
    b.rt(&["kill", "--all", &b.id, "KILL"]).ok();
    for p in procs {
        common::wait_for(
            &format!("process {p} to die"),
            Duration::from_secs(10),
            || proc_start_time(p).is_none().then_some(()),
        );
    }
    b.wait_status("stopped");
}
