//! `bulkhead audit --pid` of a container some engine started, compared
//! with what `bulkhead-probe report` sees inside that container.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::{CAP_NAMES, RtOutput, cap_mask, ns_inode, run_cmd};

/// `bulkhead audit --pid PID --format json` (always the bulkhead binary:
/// it audits whatever runtime started the process).
pub fn audit_pid(pid: &str, io: &Path) -> (RtOutput, Value) {
    let mut audit = Command::new(env!("CARGO_BIN_EXE_bulkhead"));
    audit.args(["audit", "--pid", pid, "--format", "json"]);
    let out = run_cmd(audit, io, super::cmd_timeout());
    out.ok();
    let v = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    (out, v)
}

/// Waits until process `pid` runs the probe: an engine reports a task
/// running once the runtime's `start` returned, which may be a moment before
/// the init's execve (its capabilities and filters are then not final).
pub fn wait_for_probe(pid: &str) {
    super::wait_for(
        &format!("process {pid} to exec the probe"),
        std::time::Duration::from_secs(10),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "bulkhead-probe")
                .then_some(())
        },
    );
}

/// The capability names of a /proc/PID/status mask, by number.
fn names(hex: &str) -> Value {
    let bits = cap_mask(hex);
    json!(
        CAP_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
    )
}

/// The audit's live view (`observed[0]`) says what the probe's `report`
/// says: capability sets, seccomp mode and filter count, no_new_privs,
/// namespaces (host's or private, by inode against the test's own), uid.
#[track_caller]
pub fn assert_live_matches_probe(report: &Value, inside: &Value) {
    let live = &report["observed"][0];
    assert_eq!(live["source"], "live", "{live}");
    let st = &inside["status"];
    for (set, key) in [
        ("effective", "CapEff"),
        ("permitted", "CapPrm"),
        ("inheritable", "CapInh"),
        ("bounding", "CapBnd"),
        ("ambient", "CapAmb"),
    ] {
        let hex = st[key].as_str().unwrap();
        assert_eq!(
            live["caps"][set],
            names(hex),
            "{set} (probe {key} {hex}): {live}"
        );
    }
    let mode = match st["Seccomp"].as_str().unwrap() {
        "0" => "disabled",
        "1" => "strict",
        _ => "filter",
    };
    assert_eq!(live["seccomp"]["mode"], mode, "{live}");
    assert_eq!(
        live["seccomp"]["filters"].to_string(),
        st["Seccomp_filters"].as_str().unwrap(),
        "{live}"
    );
    assert_eq!(live["no_new_privs"], inside["no_new_privs"], "{live}");
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        let theirs = inside["ns"][ns].as_u64();
        let want = if theirs == ns_inode("self", ns) {
            "host"
        } else {
            "private"
        };
        assert_eq!(live["namespaces"][ns]["state"], want, "{ns}: {live}");
    }
    assert_eq!(live["uid"], inside["uid"], "{live}");
    // The findings agree with the kernel's view.
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids.contains(&"no-seccomp"), mode == "disabled", "{ids:?}");
    assert_eq!(
        ids.contains(&"host-net-ns"),
        inside["ns"]["net"].as_u64() == ns_inode("self", "net"),
        "{ids:?}"
    );
    assert_eq!(
        ids.contains(&"cap-sys-admin"),
        names(st["CapEff"].as_str().unwrap())
            .to_string()
            .contains("CAP_SYS_ADMIN"),
        "{ids:?}"
    );
}
