//! The analysis rules: an [`Observed`] in, findings and a Pod Security
//! Standards verdict out. Pure; every rule is listed in docs/audit.md.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{Landlock, NsState, Observed, SeccompMode, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "unknown severity {s:?} (info, low, medium, high, critical)"
                ));
            }
        })
    }
}

/// Pod Security Standards levels, least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pss {
    Privileged,
    Baseline,
    Restricted,
}

impl Pss {
    pub fn as_str(self) -> &'static str {
        match self {
            Pss::Privileged => "privileged",
            Pss::Baseline => "baseline",
            Pss::Restricted => "restricted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id (docs/audit.md).
    pub id: String,
    pub severity: Severity,
    pub title: String,
    pub risk: String,
    pub fix: String,
    /// The Pod Security Standards level this finding breaks, if any.
    pub breaks: Option<Pss>,
    pub source: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub verdict: Pss,
    pub findings: Vec<Finding>,
    /// The models the findings come from (one per front end used).
    pub observed: Vec<Observed>,
}

impl Report {
    /// Findings from every model; a rule an earlier model (the live view)
    /// reported is not repeated from a later one (the config). Sorted, most severe first.
    pub fn build(target: String, observed: Vec<Observed>) -> Report {
        let mut out: Vec<Finding> = Vec::new();
        for o in &observed {
            let seen: Vec<String> = out.iter().map(|f| f.id.clone()).collect();
            for f in findings(o) {
                // A mount seen twice (stacked) is one finding.
                if !seen.contains(&f.id) && !out.iter().any(|g| g.id == f.id && g.title == f.title)
                {
                    out.push(f);
                }
            }
        }
        out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        Report {
            target,
            verdict: verdict(&out),
            findings: out,
            observed,
        }
    }

    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// The most restrictive level no finding breaks.
pub fn verdict(findings: &[Finding]) -> Pss {
    match findings.iter().filter_map(|f| f.breaks).min() {
        Some(Pss::Baseline) | Some(Pss::Privileged) => Pss::Privileged,
        Some(Pss::Restricted) => Pss::Baseline,
        None => Pss::Restricted,
    }
}

/// Capabilities the PSS baseline level allows to be added.
pub const BASELINE_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Unix sockets of container engines: whoever reaches one runs anything
/// as host root.
pub const RUNTIME_SOCKETS: &[&str] = &[
    "docker.sock",
    "containerd.sock",
    "podman.sock",
    "crio.sock",
    "cri-dockerd.sock",
    "dockershim.sock",
    "buildkitd.sock",
];

/// Host directories whose contents steer the host (or hold its secrets).
pub const SENSITIVE_HOST_PATHS: &[&str] = &[
    "/etc",
    "/run",
    "/var/run",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/containers",
    "/var/lib/kubelet",
    "/var/log",
];

/// /proc files every runtime masks.
const PROC_MASKS: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
];

/// Device nodes that give raw access to host memory or I/O.
const RAW_DEVICES: &[&str] = &["/dev/mem", "/dev/kmem", "/dev/port", "/dev/kcore"];

struct Ctx<'a> {
    o: &'a Observed,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(
        &mut self,
        id: &str,
        sev: Severity,
        breaks: Option<Pss>,
        title: String,
        risk: &str,
        fix: &str,
    ) {
        self.out.push(Finding {
            id: id.to_string(),
            severity: sev,
            title,
            risk: risk.to_string(),
            fix: fix.to_string(),
            breaks,
            source: self.o.source,
        });
    }
}

fn under(path: &str, dir: &str) -> bool {
    dir == "/" && path == "/"
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Every finding for one model.
pub fn findings(o: &Observed) -> Vec<Finding> {
    let mut c = Ctx { o, out: Vec::new() };
    namespaces(&mut c);
    users(&mut c);
    capabilities(&mut c);
    seccomp_nnp_lsm(&mut c);
    mounts(&mut c);
    devices(&mut c);
    limits(&mut c);
    c.out
}

fn namespaces(c: &mut Ctx<'_>) {
    use Severity::*;
    let host = |c: &Ctx<'_>, n: &str| *c.o.ns(n) == NsState::Host;
    if host(c, "mnt") {
        c.add(
            "host-mnt-ns",
            Critical,
            Some(Pss::Baseline),
            "shares the host's mount namespace".into(),
            "the container sees and changes the host's mounts; its root is the host's",
            "create a mount namespace: add {\"type\":\"mount\"} to linux.namespaces",
        );
    }
    if host(c, "pid") {
        c.add("host-pid-ns", High, Some(Pss::Baseline), "shares the host's pid namespace".into(),
            "host processes are visible and, with matching uid or CAP_KILL/CAP_SYS_PTRACE, can be signalled or traced; their /proc/<pid>/environ and root leak",
            "sandbox: drop --pid host; OCI: add {\"type\":\"pid\"} to linux.namespaces");
    }
    if host(c, "net") {
        c.add("host-net-ns", High, Some(Pss::Baseline), "shares the host's network namespace".into(),
            "the container binds host ports, reaches services on the host's loopback and abstract unix sockets, and (with CAP_NET_ADMIN/RAW) sniffs or reroutes host traffic",
            "sandbox: --network none (or a bridge network) instead of --network host; OCI: add {\"type\":\"network\"} to linux.namespaces");
    }
    if host(c, "ipc") {
        c.add(
            "host-ipc-ns",
            High,
            Some(Pss::Baseline),
            "shares the host's IPC namespace".into(),
            "host SysV shared memory, semaphores and message queues are readable and writable",
            "add {\"type\":\"ipc\"} to linux.namespaces",
        );
    }
    if host(c, "uts") {
        c.add(
            "host-uts-ns",
            Low,
            None,
            "shares the host's UTS namespace".into(),
            "with CAP_SYS_ADMIN the container renames the host",
            "add {\"type\":\"uts\"} to linux.namespaces",
        );
    }
    if host(c, "cgroup") {
        c.add("host-cgroup-ns", Low, None, "shares the host's cgroup namespace".into(),
            "/proc/self/cgroup shows host cgroup paths, which tells the container where it sits on the host",
            "add {\"type\":\"cgroup\"} to linux.namespaces");
    }
    if !c.o.net_devices.is_empty() {
        c.add("net-devices", Medium, None,
            format!("moves host network interfaces into the container: {}", c.o.net_devices.join(", ")),
            "the container owns that link: its traffic bypasses the host's bridge and firewall rules, and with CAP_NET_ADMIN or CAP_NET_RAW it reconfigures, sniffs or spoofs on the network segment behind it; a virtual interface is destroyed with the container",
            "remove the entries from linux.netDevices, or give the container a veth on an isolated bridge (sandbox: --network NAME)");
    }
    for (name, st) in &c.o.namespaces {
        if let NsState::Joined(path) = st {
            c.add(&format!("joined-{name}-ns"), Info, None,
                format!("joins an existing {name} namespace ({path})"),
                "whoever else is in that namespace shares it; if it is the host's, the isolation is gone",
                "make sure the path is another container's namespace, not the host's");
        }
    }
}

fn users(c: &mut Ctx<'_>) {
    let uid = c.o.uid.unwrap_or(0);
    if c.o.host_uid(uid) == Some(0) {
        c.add("runs-as-host-root", Severity::Medium, Some(Pss::Restricted),
            "runs as root, and container root is host root".into(),
            "any escape (a kernel bug, a mistaken mount) lands as host root; files of the host's root in reach are the container's",
            "sandbox: keep --userns private (the default); OCI: add a user namespace with linux.uidMappings/gidMappings, or set process.user.uid to a non-zero id");
    }
    if c.o.uid_map.iter().any(|r| r.outside == 0 && r.count > 0)
        && *c.o.ns("user") != NsState::Host
        && c.o.host_uid(uid) != Some(0)
    {
        c.add(
            "host-root-mapped",
            Severity::Low,
            None,
            "host root (uid 0) is mapped into the user namespace".into(),
            "a process that switches to that id inside is host root on every file it reaches",
            "map container ids to an unprivileged host range (linux.uidMappings hostID != 0)",
        );
    }
}

fn capabilities(c: &mut Ctx<'_>) {
    use Severity::*;
    let Some(caps) = &c.o.caps else { return };
    let held = caps.held();
    let all = if c.o.host_caps.is_empty() {
        bulkhead_spec::caps::ALL
            .iter()
            .filter(|(_, n)| *n <= 37) // what every supported kernel has
            .all(|(name, _)| held.contains(name))
    } else {
        c.o.host_caps.iter().all(|n| held.contains(&n.as_str()))
    };
    let userns = *c.o.ns("user") == NsState::Private;
    let scope = if userns {
        " (over what the container's user namespace owns)"
    } else {
        ""
    };
    if all {
        c.add("caps-all", Critical, Some(Pss::Baseline), format!("holds every capability{scope}"),
            "this is a privileged container: loading kernel modules, raw I/O, mounting, tracing: escaping is a matter of one command",
            "sandbox: drop --privileged / --cap-add ALL (the restricted profile holds none); OCI: list only the needed caps in process.capabilities");
    }
    if held.contains(&"CAP_SYS_ADMIN") {
        c.add("cap-sys-admin", Critical, Some(Pss::Baseline), format!("holds CAP_SYS_ADMIN{scope}"),
            "mount, bpf, namespaces, device and kernel-keyring control: the capability most container escapes use",
            "sandbox: --cap-drop SYS_ADMIN; OCI: remove CAP_SYS_ADMIN from process.capabilities");
    }
    let beyond: Vec<&str> = held
        .iter()
        .copied()
        .filter(|n| !BASELINE_CAPS.contains(n) && *n != "CAP_SYS_ADMIN")
        .collect();
    if !all && !beyond.is_empty() {
        // NET_RAW alone (Docker's default set) is not in the class of
        // module loading, raw I/O or tracing.
        let sev = if beyond.iter().any(|n| *n != "CAP_NET_RAW") {
            High
        } else {
            Medium
        };
        c.add("caps-beyond-baseline", sev, Some(Pss::Baseline),
            format!("holds capabilities beyond the baseline set: {}", beyond.join(", ")),
            "each of these reaches host resources (raw sockets, tracing, kernel memory, time, modules...) that a confined workload does not need",
            "sandbox: --cap-drop them; OCI: remove them from process.capabilities");
    }
    let over_restricted: Vec<&str> = held
        .iter()
        .copied()
        .filter(|n| BASELINE_CAPS.contains(n) && *n != "CAP_NET_BIND_SERVICE")
        .collect();
    if !all && !over_restricted.is_empty() {
        c.add("caps-beyond-restricted", Low, Some(Pss::Restricted),
            format!("holds capabilities the restricted level drops: {}", over_restricted.join(", ")),
            "file ownership, uid/gid changes and device creation stay possible inside: more room after a compromise",
            "sandbox: --cap-drop ALL (or --profile restricted); OCI: empty the process.capabilities sets");
    }
    let bnd_extra = caps
        .bounding
        .iter()
        .filter(|n| !held.contains(&n.as_str()))
        .count();
    if bnd_extra > 0 && c.o.no_new_privs != Some(true) {
        c.add(
            "caps-bounding-open",
            Low,
            None,
            format!("{bnd_extra} capabilities are in the bounding set but not held"),
            "without no_new_privs a file-capability or setuid binary regains them on exec",
            "drop them from process.capabilities.bounding, or set process.noNewPrivileges",
        );
    }
}

fn seccomp_nnp_lsm(c: &mut Ctx<'_>) {
    use Severity::*;
    let s = &c.o.seccomp;
    match s.mode {
        SeccompMode::Disabled => c.add("no-seccomp", High, Some(Pss::Baseline),
            "no seccomp filter".into(),
            "every syscall reaches the kernel: keyctl, bpf, userfaultfd, unshare, io_uring... the usual entry points of kernel exploits",
            "sandbox: drop --security-opt seccomp=unconfined (the default profile applies); OCI: set linux.seccomp (e.g. `bulkhead spec` writes the default)"),
        SeccompMode::Filter if s.default_action.as_deref().is_some_and(|a| a == "SCMP_ACT_ALLOW" || a == "SCMP_ACT_LOG") => c.add("seccomp-allow-default", Medium, None,
            format!("seccomp allows by default ({} rules)", s.rules.unwrap_or(0)),
            "a deny-list filter lets through every syscall nobody thought to list, including ones added by newer kernels",
            "use an allow-list profile: defaultAction SCMP_ACT_ERRNO with the needed syscalls allowed"),
        SeccompMode::Unknown => c.add("seccomp-unknown", Info, None, "seccomp state unknown".into(),
            "could not be read", "run the audit as root or as the container's owner"),
        _ => {}
    }
    match c.o.no_new_privs {
        Some(false) => c.add("no-new-privs-off", Medium, Some(Pss::Restricted),
            "no_new_privs is off".into(),
            "setuid/setgid and file-capability binaries raise privileges on exec (allowPrivilegeEscalation)",
            "sandbox: --security-opt no-new-privileges; OCI: process.noNewPrivileges: true"),
        Some(true) => {}
        None => c.add("no-new-privs-unknown", Info, None, "no_new_privs state unknown".into(),
            "could not be read", "run the audit as root"),
    }
    match c.o.lsm_label.as_deref() {
        None | Some("") | Some("unconfined") => c.add("no-lsm-label", Info, None,
            "no AppArmor profile or SELinux label".into(),
            "no mandatory access control beyond namespaces, capabilities and seccomp (bulkhead's own masks and Landlock still apply)",
            "where the host runs AppArmor or SELinux: process.apparmorProfile / process.selinuxLabel"),
        Some(_) => {}
    }
    match &c.o.landlock {
        Landlock::None => c.add("no-landlock", Info, None, "no Landlock ruleset".into(),
            "writes are limited only by mounts and permissions",
            "sandbox: --security-opt landlock=on; OCI: the io.bulkhead.landlock annotation (docs/landlock.md)"),
        Landlock::Unknown => c.add("landlock-unknown", Info, None,
            "Landlock state cannot be seen from outside".into(),
            "Linux does not expose a process's Landlock domain in /proc",
            "audit the container by id (its config tells) or --config"),
        Landlock::Enforced(_) => {}
    }
}

fn mounts(c: &mut Ctx<'_>) {
    use Severity::*;
    let o = c.o;
    let host_root = o.host_uid(o.uid.unwrap_or(0)) == Some(0);
    // In the host's mount namespace every mount is the host's own:
    // host-mnt-ns says it all.
    let host_mounts = *o.ns("mnt") == NsState::Host;
    for m in o.mounts.iter().filter(|_| !host_mounts) {
        let Some(hp) = &m.host_path else { continue };
        let dest = &m.destination;
        let name_hit =
            RUNTIME_SOCKETS.contains(&basename(hp)) || RUNTIME_SOCKETS.contains(&basename(dest));
        let rw = if m.writable { "writable" } else { "read-only" };
        if name_hit {
            c.add("runtime-socket", Critical, Some(Pss::Baseline),
                format!("container engine socket {hp} is mounted at {dest}"),
                "whoever reaches an engine socket starts a privileged container with the host's / mounted: host root, read-only mount or not",
                "remove the mount (sandbox: the -v; OCI: the mounts[] entry); give the workload a narrower API instead");
        } else if hp == "/" {
            c.add("host-root-mount", if m.writable { Critical } else { High }, Some(Pss::Baseline),
                format!("the host's / is mounted ({rw}) at {dest}"),
                "the whole host filesystem, secrets included, is in reach; writable, it is host root",
                "remove the mounts[] entry with source \"/\"");
        } else if let Some(dir) = SENSITIVE_HOST_PATHS.iter().find(|d| under(hp, d)) {
            let (sev, breaks) = match (m.writable, host_root) {
                (true, _) => (High, Some(Pss::Baseline)),
                (false, true) => (Low, Some(Pss::Baseline)),
                // Read-only to an unprivileged host id: what any user sees.
                (false, false) => (Info, None),
            };
            c.add("host-sensitive-mount", sev, breaks,
                format!("host {hp} (under {dir}) is mounted {rw} at {dest}"),
                "host configuration, secrets, runtime state or devices; writable, the container changes how the host runs",
                "remove the mount, or mount it read-only (sandbox: -v SRC:DST:ro; OCI: add \"ro\" to the mount's options)");
        } else if m.writable && dest != "/" {
            c.add("host-path-writable", Medium, Some(Pss::Baseline),
                format!("host path {hp} is mounted writable at {dest}"),
                "the container changes host files (hostPath volume); a symlink or setuid file planted there is followed by host tools",
                "mount it read-only (sandbox: -v SRC:DST:ro) or use a volume the container owns");
        }
    }
    let find = |fstype: &str, dest: &str| {
        o.mounts
            .iter()
            .rev()
            .find(|m| m.fstype == fstype && m.destination == dest)
    };
    if find("sysfs", "/sys").is_some_and(|m| m.writable) {
        c.add("sysfs-writable", High, Some(Pss::Baseline), "/sys is writable".into(),
            "host kernel and device settings (uevent helpers, power, module parameters) can be changed",
            "sandbox: keep the default read-only sysfs (no --privileged); OCI: add \"ro\" to the sysfs mount's options");
    }
    let proc_mounted = o.mounts.iter().any(|m| m.fstype == "proc");
    if proc_mounted {
        // The last mount at /proc/sys (or over /proc itself) decides.
        let proc_sys_ro = o
            .mounts
            .iter()
            .rev()
            .find(|m| m.destination == "/proc/sys" || m.destination == "/proc")
            .is_some_and(|m| !m.writable)
            || o.masked.iter().any(|p| p == "/proc/sys");
        let proc_rw = o
            .mounts
            .iter()
            .rev()
            .find(|m| m.destination == "/proc")
            .is_some_and(|m| m.writable);
        if proc_rw && !proc_sys_ro {
            c.add("proc-sys-writable", High, Some(Pss::Baseline), "/proc/sys is writable".into(),
                "host-wide sysctls (kernel.core_pattern runs a host program as root) are in reach of a privileged process",
                "sandbox: drop --security-opt unmask=ALL; OCI: add /proc/sys to linux.readonlyPaths");
        }
        // Masks apply only to paths the kernel has (no /proc/kcore without
        // CONFIG_PROC_KCORE): any of the usual ones masked counts.
        if !o.masked.iter().any(|p| PROC_MASKS.contains(&p.as_str())) {
            c.add("proc-unmasked", Medium, Some(Pss::Baseline), "/proc is not masked (/proc/kcore and friends visible)".into(),
                "kernel memory images, timer and scheduler internals leak, and help exploit kernel bugs",
                "sandbox: drop --security-opt unmask=ALL; OCI: list /proc/kcore, /proc/keys, /proc/timer_list... in linux.maskedPaths");
        }
    }
    if o.cgroupfs_writable == Some(true) {
        c.add("cgroupfs-writable", High, Some(Pss::Baseline), "the cgroup filesystem is writable".into(),
            "the container can raise its own limits, move itself out of its cgroup, and (cgroup v1) set a release_agent that the host runs as root",
            "mount /sys/fs/cgroup read-only (OCI: \"ro\" on the cgroup mount); keep a cgroup namespace");
    }
}

fn devices(c: &mut Ctx<'_>) {
    use Severity::*;
    let by =
        c.o.device_access
            .as_ref()
            .map(|a| format!(" ({})", a.by))
            .unwrap_or_default();
    if c.o.all_devices_allowed == Some(true) {
        c.add("devices-all-allowed", High, Some(Pss::Baseline), format!("the device cgroup allows every device{by}"),
            "a process able to mknod (or reach a bound /dev) reads and writes host disks and memory",
            "remove the allow-all rule from linux.resources.devices (sandbox: no --privileged)");
    } else if let Some(a) = c.o.device_access.clone() {
        for ch in a.checks.iter().filter(|ch| ch.allowed) {
            let (sev, pss, risk) = match ch.device.as_str() {
                "/dev/mem" | "/dev/kmem" | "/dev/port" => (
                    High,
                    Some(Pss::Baseline),
                    "with CAP_SYS_RAWIO (or a node bound in), host physical memory or I/O ports: read secrets, patch the kernel",
                ),
                "/dev/sda" => (
                    High,
                    Some(Pss::Baseline),
                    "with a node for it (mknod or a bind), raw access to a host disk bypasses every file permission",
                ),
                "/dev/kmsg" => (
                    Medium,
                    None,
                    "reads the host's kernel log (addresses, other tenants' events) and writes into it",
                ),
                "/dev/fuse" => (
                    Low,
                    None,
                    "FUSE mounts (with CAP_SYS_ADMIN) can stall or confuse host processes that walk them",
                ),
                d if d.starts_with("mknod") => (
                    Info,
                    None,
                    "device nodes can be created; opening one still needs an allow rule (runc's and bulkhead's default)",
                ),
                _ => continue,
            };
            let id = if ch.device.starts_with("mknod") {
                "devices-mknod-any"
            } else {
                "device-allowed"
            };
            c.add(id, sev, pss, format!("{} allows {} ({})", a.by, ch.device, ch.rule), risk,
                "remove the rule that allows it from linux.resources.devices (or the runtime's device list)");
        }
    }
    if let Some(why) = c.o.devices_unknown.clone() {
        c.add(
            "devices-unknown",
            Info,
            None,
            format!("the device cgroup could not be evaluated: {why}"),
            "which devices the container may open is not known",
            "run the audit as root; report the program",
        );
    }
    for d in &c.o.devices {
        if RAW_DEVICES.contains(&d.path.as_str()) {
            c.add(
                "raw-memory-device",
                Critical,
                Some(Pss::Baseline),
                format!("raw memory/IO device {} is present", d.path),
                "host physical memory or I/O ports: read secrets, patch the kernel",
                "remove it from linux.devices",
            );
        } else if d.kind == 'b' {
            c.add(
                "block-device",
                High,
                Some(Pss::Baseline),
                format!(
                    "block device {} ({}:{}) is present",
                    d.path, d.major, d.minor
                ),
                "raw access to a host disk bypasses every file permission and mount option",
                "remove it from linux.devices; mount the filesystem you need instead",
            );
        }
    }
}

fn limits(c: &mut Ctx<'_>) {
    use Severity::*;
    if c.o.memory_limit == Some(None) {
        c.add(
            "no-memory-limit",
            Low,
            None,
            "no memory limit".into(),
            "the container can take all host memory and get other workloads OOM-killed",
            "sandbox: --memory SIZE; OCI: linux.resources.memory.limit",
        );
    }
    if c.o.pids_limit == Some(None) {
        c.add(
            "no-pids-limit",
            Low,
            None,
            "no pids limit".into(),
            "a fork bomb exhausts the host's pid space",
            "sandbox: --pids-limit N; OCI: linux.resources.pids.limit",
        );
    }
}
