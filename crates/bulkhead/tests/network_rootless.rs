//! Rootless networking: `bulkhead sandbox --network pasta|slirp4netns` and
//! `-p` run by an unprivileged user, with real pasta / slirp4netns.
//!
//! Each test makes a real user ([`TestUser`]) and the lab network.rs uses
//! too ([`NetLab`], common/netlab.rs): a "host" network namespace in which
//! the user runs bulkhead (so the helpers' sockets and published ports live
//! there, never on the machine's own network) and a "wan" namespace linked
//! to it (198.18.0.1/30 ↔ 198.18.0.2/30, here the host's default route)
//! that stands in for the internet. busybox httpd serves in both, and on the host's 127.0.0.1.
//! `/dev/net/tun` is made 0666 (as udev does) for the test's time, under
//! the lock rootless.rs's podman test takes too. bulkhead-only.

#[macro_use]
mod common;

use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::netlab::{HOST_IP, NetLab, WAN_IP, WAN_IP6, missing_tool, sh};
use common::user::{TestUser, TunOpen};
use common::{RtOutput, run_cmd, runtime, wait_for};

/// Why this machine cannot run the tests, if it cannot.
fn missing() -> Option<String> {
    if let Some(t) = missing_tool(&["pasta", "ip", "nsenter", "curl", "busybox"]) {
        return Some(format!("`{t}` is missing (scripts/install-deps.sh)"));
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun (the tun module)".into());
    }
    None
}

/// A lab and its user, or a printed reason to skip.
macro_rules! lab {
    () => {{
        require_root!();
        skip_if!(common::is_runc(), "`sandbox` is a bulkhead command");
        if let Some(why) = missing() {
            eprintln!("skipped: {why}");
            return;
        }
        // Open to users while the lab lives (udev's 0666; this machine
        // may have the kernel's 0600), one test at a time.
        let tun = TunOpen::new();
        match TestUser::new() {
            Some(u) => Lab::new(u, tun),
            None => return,
        }
    }};
}

/// The shared [`NetLab`] (dropped first: its servers and namespaces go
/// before the user) and the user who runs bulkhead in its host namespace.
struct Lab {
    net: NetLab,
    /// Goes with its processes and its runtime dir.
    user: TestUser,
    /// Last: the helpers are gone (with the user) before it closes again.
    _tun: TunOpen,
}

impl Deref for Lab {
    type Target = NetLab;
    fn deref(&self) -> &NetLab {
        &self.net
    }
}

impl Lab {
    fn new(user: TestUser, tun: TunOpen) -> Lab {
        let net = NetLab::new("bhrn");
        // The helpers take the host side of the default route.
        sh(&[
            "ip", "-n", &net.host, "route", "add", "default", "via", WAN_IP,
        ])
        .ok();
        Lab {
            net,
            user,
            _tun: tun,
        }
    }

    /// bulkhead as the user, in the host namespace.
    fn bh(&self, args: &[&str]) -> RtOutput {
        run_cmd(self.bh_cmd(args), self.io.path(), common::cmd_timeout())
    }

    /// [`Lab::bh`]'s command, not run.
    fn bh_cmd(&self, args: &[&str]) -> Command {
        let rt = runtime();
        let mut all = vec![rt.to_str().unwrap()];
        all.extend_from_slice(args);
        let inner = self.user.cmd(&all);
        let mut c = self.nsenter(&self.host);
        c.arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(&self.user.home);
        c
    }

    /// `sandbox FLAGS… -- sh -c SCRIPT`'s stdout (which must succeed).
    fn sandbox_sh(&self, flags: &[&str], script: &str) -> String {
        let mut a = vec!["sandbox"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["--", "sh", "-c", script]);
        let out = self.bh(&a);
        out.ok();
        out.stdout
    }

    /// The user's live (not zombie) helper processes.
    fn helpers(&self) -> Vec<String> {
        self.user
            .pids()
            .into_iter()
            .filter_map(|p| {
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                let (comm, rest) = stat.split_once(") ")?;
                let comm = comm.split_once('(')?.1;
                (!rest.starts_with('Z')).then(|| format!("{p} {comm}"))
            })
            .collect()
    }

    /// Nothing of the user's sandboxes is left: no process, no state, no
    /// helper pid file.
    fn nothing_left(&self) {
        let procs = self.helpers();
        assert!(procs.is_empty(), "processes left behind: {procs:?}");
        let state = self.user.runtime_dir().join("bulkhead");
        let entries: Vec<String> = std::fs::read_dir(&state)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(entries.is_empty(), "state left behind: {entries:?}");
        let usernet: Vec<_> = std::fs::read_dir(state.join(".usernet"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(usernet.is_empty(), "helper files left behind: {usernet:?}");
    }
}

/// One request from inside the sandbox: the body, or "FAIL".
fn fetch(url: &str) -> String {
    format!("curl -s -m 3 {url} || printf FAIL; echo")
}

#[test]
fn rootless_user_mode_network_reaches_the_wan_not_the_host_loopback() {
    let lab = lab!();
    lab.serve(&lab.host, "127.0.0.1:7001", "host-loopback");
    let script = [
        fetch(&format!("http://{WAN_IP}/id")),
        fetch("http://127.0.0.1:7001/id"),
        // pasta maps the gateway to the host's loopback unless told not to.
        fetch(&format!("http://{WAN_IP}:7001/id")),
    ]
    .join(";");
    for backend in ["pasta", "slirp4netns"] {
        if backend == "slirp4netns" && !common::user::tool("slirp4netns") {
            eprintln!("slirp4netns not installed: only pasta tested");
            continue;
        }
        let out = lab.sandbox_sh(&["--network", backend], &script);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines, ["wan", "FAIL", "FAIL"], "{backend}: {out}");
        lab.nothing_left();
    }
    // Control: the host's loopback service answers from the host's own
    // network namespace.
    let out = lab.sandbox_sh(&["--network", "host"], &fetch("http://127.0.0.1:7001/id"));
    assert_eq!(out.trim(), "host-loopback");
    // Default: no network at all.
    let out = lab.sandbox_sh(&[], &fetch(&format!("http://{WAN_IP}/id")));
    assert_eq!(out.trim(), "FAIL");
    lab.nothing_left();
}

#[test]
fn rootless_published_ports_reach_the_sandbox() {
    let lab = lab!();
    let site = lab.site("inside");
    let vol = format!("{}:/www:ro", site.display());
    // -p alone (no --network) means pasta for a rootless sandbox.
    let out = lab.bh(&[
        "sandbox",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18080:8080",
        "-p",
        "18081:8080",
        "-v",
        &vol,
        "--",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
    ]);
    out.ok();
    wait_for("published port", Duration::from_secs(10), || {
        lab.curl_ns(&lab.host, "http://127.0.0.1:18080/id")
            .filter(|b| b == "inside")
    });
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:18081/id"))
            .as_deref(),
        Some("inside")
    );
    // Published on 127.0.0.1 only: not from the wan.
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:18080/id")),
        None
    );
    assert!(!lab.helpers().is_empty());
    lab.bh(&["rm", "-f", "web"]).ok();
    // The helper is gone, and its ports with it.
    assert_eq!(lab.curl_ns(&lab.host, "http://127.0.0.1:18080/id"), None);
    lab.nothing_left();

    // slirp4netns publishes through its API socket.
    if common::user::tool("slirp4netns") {
        let mut a = vec![
            "sandbox",
            "-d",
            "--name",
            "web2",
            "--network",
            "slirp4netns",
        ];
        a.extend(["-p", "127.0.0.1:18083:8080", "-v", &vol, "--"]);
        a.extend(["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]);
        lab.bh(&a).ok();
        wait_for("slirp4netns port", Duration::from_secs(10), || {
            lab.curl_ns(&lab.host, "http://127.0.0.1:18083/id")
                .filter(|b| b == "inside")
        });
        lab.bh(&["rm", "-f", "web2"]).ok();
        assert_eq!(lab.curl_ns(&lab.host, "http://127.0.0.1:18083/id"), None);
        lab.nothing_left();
    }

    // A foreground sandbox: its helper goes when it ends.
    let out = lab.sandbox_sh(
        &["--network", "pasta", "-p", "18082:8080"],
        &fetch(&format!("http://{WAN_IP}/id")),
    );
    assert_eq!(out.trim(), "wan");
    lab.nothing_left();
}

#[test]
fn rootless_network_bad_input_leaves_nothing() {
    let lab = lab!();
    // A port another process of the host listens on.
    lab.serve(&lab.host, "127.0.0.1:18090", "taken");
    for spec in ["127.0.0.1:18090:80", "18090:80"] {
        let out = lab.bh(&["sandbox", "-p", spec, "--", "true"]);
        out.fails_with(&[&format!("-p {spec}/tcp"), "in use by another process"]);
        assert_eq!(out.code(), Some(125), "{out}");
        lab.nothing_left();
    }
    for (args, needles) in [
        // Below ip_unprivileged_port_start (1024 in a fresh namespace).
        (
            &["-p", "80:8080"][..],
            &["-p 80:8080/tcp", "not permitted"][..],
        ),
        (&["-p", "8080:80/sctp"], &["-p", "sctp"]),
        (
            &["--network", "none", "-p", "8080:80"],
            &["-p 8080:80", "needs a network"],
        ),
        (&["--network", "front"], &["--network front", "need root"]),
    ] {
        let mut a = vec!["sandbox"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--", "true"]);
        let out = lab.bh(&a);
        out.fails_with(needles);
        assert_eq!(out.code(), Some(125), "{out}");
        lab.nothing_left();
    }
    // A tap device the user cannot open (the kernel's mode without udev):
    // named, with the fix. The lab holds the tun lock.
    let tun = std::path::Path::new("/dev/net/tun");
    std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = lab.bh(&["sandbox", "--network", "pasta", "--", "true"]);
    std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666)).unwrap();
    out.fails_with(&["--network pasta", "/dev/net/tun", "chmod 0666"]);
    lab.nothing_left();
    // The taken port still serves its owner.
    assert_eq!(
        lab.curl_ns(&lab.host, "http://127.0.0.1:18090/id")
            .as_deref(),
        Some("taken")
    );
    // As root, user-mode networking is refused (bridge networks are root's).
    let root = common::open_tempdir();
    let out = common::rt(
        root.path(),
        &["sandbox", "--network", "pasta", "--", "true"],
    );
    out.fails_with(&["--network pasta", "rootless"]);
}

#[test]
fn rootless_helper_of_a_killed_sandbox_goes_with_delete_force() {
    let lab = lab!();
    // A foreground sandbox whose runtime dies without cleaning up.
    let mut child = lab
        .bh_cmd(&[
            "sandbox",
            "--name",
            "crash",
            "-p",
            "18084:8080",
            "--",
            "sleep",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = lab.user.runtime_dir().join("bulkhead/.usernet/crash.pid");
    wait_for("pasta running", Duration::from_secs(10), || {
        pid_file.exists().then_some(())
    });
    // nsenter execs runuser, whose child is the runtime.
    let runuser = child.id() as i32;
    let runtime_pid = wait_for("the runtime", Duration::from_secs(10), || {
        lab.user.pids().into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.to_string()))
                .and_then(|r| r.split_whitespace().nth(1)?.parse::<i32>().ok())
                == Some(runuser)
        })
    });
    common::user::bulkhead_sys_kill(runtime_pid).unwrap();
    let _ = child.wait();
    // The helper outlives it, until the container is deleted.
    assert!(
        lab.helpers().iter().any(|h| h.contains("pass")),
        "{:?}",
        lab.helpers()
    );
    lab.bh(&["delete", "--force", "crash"]).ok();
    // The sandbox directory is left to `rm` (the runtime died before
    // removing it).
    let _ = lab.bh(&["rm", "-f", "crash"]);
    let _ = std::fs::remove_dir_all(lab.user.runtime_dir().join("bulkhead-sandboxes/crash"));
    lab.nothing_left();
}

#[test]
fn rootless_pasta_ipv6_reaches_the_wan_not_the_host_loopback() {
    let lab = lab!();
    // IPv6 on the wan link and a default IPv6 route: pasta then gives the
    // sandbox IPv6 too (RFC 3849 documentation range).
    lab.add_ipv6();
    sh(&[
        "ip", "-n", &lab.host, "-6", "route", "add", "default", "via", WAN_IP6,
    ])
    .ok();
    // On every address of the host, ::1 included.
    lab.serve(&lab.host, "7003", "host-any");
    let script = [
        fetch("http://[2001:db8:ff::2]/id"),
        fetch("http://[::1]:7003/id"),
        fetch("http://[2001:db8:ff::2]:7003/id"),
    ]
    .join(";");
    let out = lab.sandbox_sh(&["--network", "pasta"], &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["wan", "FAIL", "FAIL"], "{out}");
    // Control: from the host's namespace ::1 answers.
    let out = lab.sandbox_sh(&["--network", "host"], &fetch("http://[::1]:7003/id"));
    assert_eq!(out.trim(), "host-any");
    lab.nothing_left();
}
