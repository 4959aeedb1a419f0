//! The network lab that network.rs (bridge networks) and
//! network_rootless.rs (pasta, slirp4netns) both test in, so that bulkhead's
//! bridges, nftables tables and published ports never touch the machine's
//! own network.
//!
//! As `shared/design/recipes/net-isolation.sh` does: a "host" network
//! namespace in which bulkhead runs (`nsenter --net`) and a "wan" namespace
//! linked to it by a veth (`wan0` 198.18.0.1/30 host side, `eth0`
//! 198.18.0.2/30 wan side, RFC 2544 range) that stands in for the internet.
//! busybox httpd in the wan serves `/id` ("wan") and `/cgi-bin/ip` (the
//! client's address). Both namespaces (with the veth) and every server go
//! on drop.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use super::{RtOutput, cmd_timeout, open_tempdir, run_cmd, wait_for};

/// The host namespace's address on the wan link.
pub const HOST_IP: &str = "198.18.0.1";
/// The wan's address.
pub const WAN_IP: &str = "198.18.0.2";
/// [`HOST_IP`] in IPv6 (RFC 3849 documentation range), once
/// [`NetLab::add_ipv6`] has added it.
pub const HOST_IP6: &str = "2001:db8:ff::1";
/// [`WAN_IP`] in IPv6.
pub const WAN_IP6: &str = "2001:db8:ff::2";

/// The first of `tools` that is not on `PATH`.
pub fn missing_tool<'a>(tools: &[&'a str]) -> Option<&'a str> {
    tools.iter().copied().find(|t| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs `args[0]` with the rest as its arguments (on the machine, not in
/// the lab).
pub fn sh(args: &[&str]) -> RtOutput {
    let mut c = Command::new(args[0]);
    c.args(&args[1..]).stdin(Stdio::null());
    let io = tempfile::tempdir().unwrap();
    run_cmd(c, io.path(), cmd_timeout())
}

/// The host and wan namespaces, the web roots and the servers of one test.
pub struct NetLab {
    /// Unique per test process and lab: for names that must not collide.
    pub tag: String,
    /// The "host" network namespace's name (under /run/netns).
    pub host: String,
    /// The "wan" network namespace's name.
    pub wan: String,
    /// Where the commands' output is kept.
    pub io: TempDir,
    /// The web roots ([`NetLab::site`]), readable by everyone.
    pub www: TempDir,
    servers: RefCell<Vec<Child>>,
}

impl NetLab {
    /// Namespaces `<prefix>-<tag>-host` and `<prefix>-<tag>-wan`, linked,
    /// with the wan's server answering.
    pub fn new(prefix: &str) -> NetLab {
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let host = format!("{prefix}-{tag}-host");
        let wan = format!("{prefix}-{tag}-wan");
        for ns in [&host, &wan] {
            let _ = sh(&["ip", "netns", "del", ns]);
            sh(&["ip", "netns", "add", ns]).ok();
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]).ok();
        }
        // Owns the namespaces from here on, so a failure below removes them.
        let lab = NetLab {
            tag,
            host,
            wan,
            io: tempfile::tempdir().unwrap(),
            www: open_tempdir(),
            servers: Default::default(),
        };
        let (h, w) = (lab.host.as_str(), lab.wan.as_str());
        sh(&[
            "ip", "-n", h, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns",
            w,
        ])
        .ok();
        sh(&["ip", "-n", h, "addr", "add", "198.18.0.1/30", "dev", "wan0"]).ok();
        sh(&["ip", "-n", h, "link", "set", "wan0", "up"]).ok();
        sh(&["ip", "-n", w, "addr", "add", "198.18.0.2/30", "dev", "eth0"]).ok();
        sh(&["ip", "-n", w, "link", "set", "eth0", "up"]).ok();
        // The wan's /cgi-bin/ip echoes the client address (busybox httpd
        // listens on IPv6: strip [::ffff:…]).
        let wan_www = lab.site("wan");
        std::fs::create_dir_all(wan_www.join("cgi-bin")).unwrap();
        let busybox = which("busybox");
        let cgi = wan_www.join("cgi-bin/ip");
        std::fs::write(
            &cgi,
            format!(
                "#!{busybox} sh\na=${{REMOTE_ADDR#[}}; a=${{a%]}}; a=${{a#::ffff:}}\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s' \"$a\"\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
        lab.serve(&lab.wan, "80", "wan");
        lab
    }

    /// Adds [`HOST_IP6`]/64 and [`WAN_IP6`]/64 to the wan link.
    pub fn add_ipv6(&self) {
        let (h, w) = (self.host.as_str(), self.wan.as_str());
        let host6 = format!("{HOST_IP6}/64");
        let wan6 = format!("{WAN_IP6}/64");
        sh(&["ip", "-n", h, "addr", "add", &host6, "dev", "wan0", "nodad"]).ok();
        sh(&["ip", "-n", w, "addr", "add", &wan6, "dev", "eth0", "nodad"]).ok();
    }

    /// `nsenter --net=<ns>`: the command that follows runs in network
    /// namespace `ns` (only that: the rest is the test's).
    pub fn nsenter(&self, ns: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{ns}")).stdin(Stdio::null());
        c
    }

    /// Runs `cmd` in network namespace `ns`.
    pub fn in_ns(&self, ns: &str, cmd: &[&str]) -> RtOutput {
        let mut c = self.nsenter(ns);
        c.args(cmd);
        run_cmd(c, self.io.path(), cmd_timeout())
    }

    /// curl from namespace `ns`: the body, or None if it failed.
    pub fn curl_ns(&self, ns: &str, url: &str) -> Option<String> {
        let out = self.in_ns(ns, &["curl", "-s", "-m", "3", url]);
        out.success().then_some(out.stdout)
    }

    /// A directory of the lab's www serving `id` at /id (readable by
    /// everyone: rootless sandboxes mount it).
    pub fn site(&self, id: &str) -> PathBuf {
        let dir = self.www.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("id"), id).unwrap();
        for p in [&dir, &dir.join("id")] {
            let mode = if p.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        dir
    }

    /// busybox httpd in `ns` on `bind` ([ip:]port) serving [`NetLab::site`]
    /// `id`, waited for until it answers.
    pub fn serve(&self, ns: &str, bind: &str, id: &str) {
        let dir = self.site(id);
        let child = self
            .nsenter(ns)
            .args(["busybox", "httpd", "-f", "-p", bind, "-h"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn busybox httpd");
        self.servers.borrow_mut().push(child);
        let url = if bind.contains(':') {
            format!("http://{bind}/id")
        } else {
            format!("http://127.0.0.1:{bind}/id")
        };
        wait_for(
            &format!("httpd {bind} in {ns}"),
            Duration::from_secs(10),
            || self.curl_ns(ns, &url).is_some().then_some(()),
        );
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for c in self.servers.borrow_mut().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.host, &self.wan] {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

fn which(t: &str) -> String {
    let out = sh(&["sh", "-c", &format!("command -v {t}")]);
    out.ok();
    out.stdout.trim().to_string()
}
