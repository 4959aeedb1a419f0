//! The hardened default profile used by `bulkhead spec` and
//! `bulkhead sandbox`: seccomp filter, capabilities, masked and read-only
//! paths.
//!
//! The seccomp profile is commented data (`default-seccomp.json`, embedded):
//! an allow-list grouped by purpose, each entry saying why it is there, plus
//! `deny` entries that document what is refused on purpose (the default
//! action refuses them; they never reach the OCI JSON). [`default_seccomp`]
//! turns it into the runtime-spec `linux.seccomp` object, without the
//! comments. See `docs/default-profile.md` for the reasoning and the
//! comparison with Docker's and podman's defaults.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The profile source, embedded at build time.
const SOURCE: &str = include_str!("default-seccomp.json");

/// Capabilities kept by default, each needed by ordinary workloads that run
/// as root in their image (package managers, servers that bind low ports and
/// then drop to a service user, supervisors):
///
/// * `CAP_CHOWN`, `CAP_FOWNER`, `CAP_FSETID`, `CAP_DAC_OVERRIDE`: installing
///   and managing files owned by other users (dpkg/apk/rpm, chown in
///   entrypoints, keeping setgid bits on installed files).
/// * `CAP_SETUID`, `CAP_SETGID`: dropping to an unprivileged user (apt's
///   `_apt` sandbox, nginx/postgres workers, `su`).
/// * `CAP_KILL`: signalling processes of those other users (supervisors,
///   shells that stop their workers).
/// * `CAP_NET_BIND_SERVICE`: listening on ports below 1024.
///
/// Left out of podman's 11: `CAP_SETFCAP` (file capabilities never take
/// effect under no_new_privs, so writing them serves nothing at run time),
/// `CAP_SETPCAP` (only moves capabilities between sets the container already
/// has, and no_new_privs with empty inheritable/ambient sets leaves nothing
/// to gain) and `CAP_SYS_CHROOT` (chroot is refused by the seccomp profile).
/// Also left out of Docker's 14: `CAP_MKNOD` (devices come from the config),
/// `CAP_NET_RAW` (raw/packet sockets: ARP and ICMP spoofing on the
/// container network) and `CAP_AUDIT_WRITE` (the audit log is the host's).
pub const DEFAULT_CAPABILITIES: [&str; 8] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETGID",
    "CAP_SETUID",
];

/// Paths hidden from the container: the union of runc's, Docker's and
/// podman's lists. Each leaks host information or offers a host-wide
/// control that namespaces do not cover.
pub const MASKED_PATHS: [&str; 13] = [
    // ACPI tables and events of the host machine.
    "/proc/acpi",
    // Host sound devices (podman makes it read-only; hiding is stronger).
    "/proc/asound",
    // Physical memory image of the host kernel.
    "/proc/kcore",
    // Kernel keyrings, not namespaced.
    "/proc/keys",
    // Scheduler latency statistics of every host task.
    "/proc/latency_stats",
    // Host timers, with kernel addresses and task names.
    "/proc/timer_list",
    "/proc/timer_stats",
    // Per-task scheduler state of the whole host.
    "/proc/sched_debug",
    // SCSI host control (rescan, remove devices).
    "/proc/scsi",
    // Firmware tables and EFI variables (some writable).
    "/sys/firmware",
    // RAPL energy counters (the Platypus side channel).
    "/sys/devices/virtual/powercap",
    // SELinux policy interface of the host.
    "/sys/fs/selinux",
    // Host block devices by major:minor (podman hides it).
    "/sys/dev/block",
];

/// Paths made read-only: runc's, Docker's and podman's lists (podman's
/// `/proc/asound` is masked instead, and `/sys/fs/cgroup` is already a
/// read-only mount in the template).
pub const READONLY_PATHS: [&str; 5] = [
    // Bus and PCI device control.
    "/proc/bus",
    // Filesystem tunables (e.g. NFS, ext4 per-device settings).
    "/proc/fs",
    // IRQ affinity of the host.
    "/proc/irq",
    // Kernel tunables; the namespaced ones are set through linux.sysctl.
    "/proc/sys",
    // Magic SysRq: reboot, crash, kill all tasks of the host.
    "/proc/sysrq-trigger",
];

/// The capability set of the default profile.
pub fn default_capabilities() -> Vec<String> {
    DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
}

/// The masked paths of the default profile.
pub fn default_masked_paths() -> Vec<String> {
    MASKED_PATHS.iter().map(|s| s.to_string()).collect()
}

/// The read-only paths of the default profile.
pub fn default_readonly_paths() -> Vec<String> {
    READONLY_PATHS.iter().map(|s| s.to_string()).collect()
}

/// What an entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// An `SCMP_ACT_ALLOW` rule.
    Allow,
    /// An `SCMP_ACT_ERRNO` rule with `errnoRet`.
    Errno,
    /// Documentation only: refused by the default action.
    Deny,
}

/// One commented entry of the profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// Read by the tests only: the comment that justifies the entry.
    #[cfg_attr(not(test), allow(dead_code))]
    why: String,
    action: Kind,
    names: Vec<String>,
    #[serde(default, rename = "errnoRet")]
    errno_ret: Option<u32>,
    /// Alternatives; each is an OCI `args` list whose conditions all hold.
    #[serde(default)]
    when: Vec<Vec<Value>>,
}

/// The whole profile source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    /// The file's own introduction (not used by the code).
    #[allow(dead_code)]
    about: Vec<String>,
    #[serde(rename = "defaultAction")]
    default_action: String,
    #[serde(rename = "defaultErrnoRet")]
    default_errno_ret: u32,
    /// Host architecture (as in `std::env::consts::ARCH`) → the
    /// `SCMP_ARCH_*` list for hosts of that kind.
    architectures: Map<String, Value>,
    entries: Vec<Entry>,
}

fn source() -> Source {
    // The file is part of the crate and covered by the unit tests.
    serde_json::from_str(SOURCE).expect("default-seccomp.json is valid")
}

/// The default `linux.seccomp` object for the running host's architecture
/// family (x86_64 → x86_64, x86, x32; aarch64 → aarch64, arm).
pub fn default_seccomp() -> Value {
    seccomp_for(std::env::consts::ARCH)
}

/// The default `linux.seccomp` object for hosts of architecture `arch`
/// (`std::env::consts::ARCH` spelling). Unknown architectures get an empty
/// list, which the runtime reads as the native architecture only.
pub fn seccomp_for(arch: &str) -> Value {
    let src = source();
    let arches = src
        .architectures
        .get(arch)
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut rules = Vec::new();
    for e in &src.entries {
        let action = match e.action {
            Kind::Allow => "SCMP_ACT_ALLOW",
            Kind::Errno => "SCMP_ACT_ERRNO",
            Kind::Deny => continue,
        };
        let alternatives: Vec<Option<&Vec<Value>>> = if e.when.is_empty() {
            vec![None]
        } else {
            e.when.iter().map(Some).collect()
        };
        for args in alternatives {
            let mut rule = json!({ "names": e.names, "action": action });
            if let Some(n) = e.errno_ret {
                rule["errnoRet"] = json!(n);
            }
            if let Some(a) = args {
                rule["args"] = json!(a);
            }
            rules.push(rule);
        }
    }
    json!({
        "defaultAction": src.default_action,
        "defaultErrnoRet": src.default_errno_ret,
        "architectures": arches,
        "syscalls": rules,
    })
}

#[cfg(test)]
mod tests;
