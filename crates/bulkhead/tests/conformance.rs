//! Runtime-spec MUST clauses that opencontainers/runtime-tools' validation
//! suite found bulkhead breaking (scripts/conformance.sh, docs/conformance.md).
//! Each test is our own restatement of the clause on a real container, and
//! runs against runc as well (`BULKHEAD_TEST_RUNTIME=/usr/bin/runc`).

#[macro_use]
mod common;

use common::{Bundle, is_runc};
use serde_json::json;

/// A profile may deny any syscall, getcwd included, and the runtime's own
/// setup must not trip over it: without noNewPrivileges the filter is
/// loaded before the capabilities are dropped, so the runtime's remaining
/// steps run under it (runtime-tools linux_seccomp denies getcwd).
#[test]
fn seccomp_denying_getcwd_without_no_new_privileges() {
    require_root!();
    skip_if!(
        is_runc(),
        "runc 1.1.5 verifies the cwd with getcwd under the filter and fails (so does its linux_seccomp)"
    );
    let out = Bundle::new()
        .json_patch(|c| {
            c["process"]["noNewPrivileges"] = json!(false);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
            });
        })
        .probe(&["report"])
        .run();
    out.ok();
    let r = out.json();
    // The filter is really there and denies getcwd to the program.
    assert_eq!(r["status"]["Seccomp"], "2", "{}", r["status"]);
    assert!(r["cwd"].is_null(), "getcwd was not denied: {}", r["cwd"]);
}

/// The optional fields (shared:N, master:N, unbindable) of the container's
/// root in its own mountinfo.
fn root_propagation(propagation: &str) -> Vec<String> {
    let out = Bundle::new()
        .json_patch(|c| c["linux"]["rootfsPropagation"] = json!(propagation))
        .sh("cat /proc/self/mountinfo")
        .run();
    out.ok();
    let line = out
        .stdout
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in the container's mountinfo: {out}"))
        .to_string();
    line.split(" - ")
        .next()
        .unwrap()
        .split(' ')
        .skip(6)
        .map(str::to_string)
        .collect()
}

/// linux.rootfsPropagation sets the propagation of the container's root
/// mount, "unbindable" included (binding the rootfs onto itself must not
/// trip over it: runtime-tools linux_rootfs_propagation).
#[test]
fn rootfs_propagation_applies_to_the_container_root() {
    require_root!();
    for (prop, want) in [
        ("shared", Some("shared:")),
        ("unbindable", Some("unbindable")),
        ("private", None),
        ("slave", None),
    ] {
        if is_runc() && want.is_some() {
            eprintln!(
                "note: runc 1.1.5 fails rootfsPropagation {prop} (so does its runtime-tools test); not checked"
            );
            continue;
        }
        let fields = root_propagation(prop);
        match want {
            Some(w) => assert!(
                fields.iter().any(|f| f.starts_with(w)),
                "{prop}: root mount has {fields:?}"
            ),
            // The host's / here is private, so a slave root has no master
            // either: neither may share mounts back with the host.
            None => assert!(
                !fields.iter().any(|f| f.starts_with("shared:")),
                "{prop}: root mount has {fields:?}"
            ),
        }
    }
}

/// A capability the runtime itself lacks cannot be granted: create fails,
/// and the error names the capability (runtime-tools process_capabilities
/// asks for all of them, and root on some hosts lacks CAP_SYS_RESOURCE).
#[test]
fn capability_the_runtime_lacks_is_named_in_the_error() {
    require_root!();
    skip_if!(
        std::process::Command::new("setpriv")
            .arg("--version")
            .output()
            .is_err(),
        "setpriv (util-linux) is not installed"
    );
    let b = Bundle::new().json_patch(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = json!(["CAP_SYS_NICE", "CAP_KILL"]);
        }
    });
    b.write_config();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.arg("--bounding-set=-sys_nice")
        .arg(common::runtime())
        .arg("--root")
        .arg(b.state_root())
        .args(["run", "--bundle"])
        .arg(b.dir())
        .arg(&b.id)
        .stdin(std::process::Stdio::null());
    let out = b.exec(cmd);
    if is_runc() {
        out.fails();
    } else {
        out.fails_with(&["process.capabilities", "CAP_SYS_NICE"]);
    }
}
