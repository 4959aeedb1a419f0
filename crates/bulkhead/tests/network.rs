//! Bridge networks (`bulkhead network`, `sandbox --network NAME -p`) with
//! real bridges, veths and nftables.
//!
//! Each test builds its own lab ([`NetLab`], common/netlab.rs, shared with
//! network_rootless.rs): a "host" network namespace in which bulkhead runs
//! (`nsenter --net`, so its bridges and its nftables tables live there and
//! the machine's own network is never touched) and a "wan" namespace linked
//! to it (198.18.0.1/30 host side, 198.18.0.2/30 wan side, RFC 2544 range)
//! that stands in for the internet. Traffic goes only to addresses inside
//! these namespaces or to loopback. Every test uses its own network names
//! and subnets, so tests run in parallel. bulkhead-only: runc has no
//! networks.

#[macro_use]
mod common;

use std::cell::RefCell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::netlab::{HOST_IP, HOST_IP6, NetLab, WAN_IP, WAN_IP6, missing_tool, sh};
use common::{RtOutput, is_runc, run_cmd, runtime, unique_id, wait_for};
use serde_json::Value;

const SANDBOXES: &str = "/var/lib/bulkhead/sandboxes";

/// What a detached sandbox runs when it only has to be there.
const SLEEP: &[&str] = &["sleep", "300"];

/// Skips (with the reason) unless root, bulkhead and the tools are there.
macro_rules! require_lab {
    () => {
        require_root!();
        skip_if!(is_runc(), "runc has no bridge networks");
        if let Some(t) = missing_tool(&["ip", "nft", "nsenter", "curl", "busybox"]) {
            eprintln!("skipped: `{t}` is missing (scripts/install-deps.sh installs it)");
            return;
        }
    };
}

/// The shared [`NetLab`] with bulkhead's state root and the sandboxes and
/// networks a test made there, all removed on drop (the sandboxes and
/// networks first, while the namespaces are still there).
struct Lab {
    net: NetLab,
    root: tempfile::TempDir,
    sandboxes: RefCell<Vec<String>>,
    networks: RefCell<Vec<String>>,
}

impl Deref for Lab {
    type Target = NetLab;
    fn deref(&self) -> &NetLab {
        &self.net
    }
}

impl Lab {
    fn new() -> Lab {
        Lab {
            net: NetLab::new("bhnt"),
            root: common::open_tempdir(),
            sandboxes: Default::default(),
            networks: Default::default(),
        }
    }

    /// A unique network name (at most 12 characters).
    fn net_name(&self, n: &str) -> String {
        format!("{n}{}", self.tag)
            .chars()
            .rev()
            .take(12)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    /// `bulkhead --root R ARGS…` in the host namespace.
    fn bh(&self, args: &[&str]) -> RtOutput {
        self.bh_in(self.root.path(), args)
    }

    /// [`Lab::bh`] with another state root.
    fn bh_in(&self, root: &Path, args: &[&str]) -> RtOutput {
        run_cmd(
            self.bh_cmd_in(root, args),
            self.io.path(),
            common::cmd_timeout(),
        )
    }

    /// [`Lab::bh`]'s command, not run.
    fn bh_cmd(&self, args: &[&str]) -> Command {
        self.bh_cmd_in(self.root.path(), args)
    }

    fn bh_cmd_in(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = self.nsenter(&self.host);
        c.arg(runtime()).arg("--root").arg(root).args(args);
        c
    }

    /// curl from inside sandbox `name`.
    fn curl_from(&self, name: &str, url: &str) -> Option<String> {
        let out = self.bh(&["exec", name, "curl", "-s", "-m", "3", url]);
        out.success().then_some(out.stdout)
    }

    /// [`Lab::curl_from`] with source address `src` (one the sandbox gave
    /// itself: a spoofed one).
    fn curl_from_src(&self, name: &str, src: &str, url: &str) -> Option<String> {
        let out = self.bh(&[
            "exec",
            name,
            "curl",
            "-s",
            "-m",
            "3",
            "--interface",
            src,
            url,
        ]);
        out.success().then_some(out.stdout)
    }

    /// `network create --subnet SUBNET FLAGS… NAME`, NAME made unique from
    /// `stem` ([`Lab::net_name`]) and removed on drop: the name.
    fn network(&self, stem: &str, subnet: &str, flags: &[&str]) -> String {
        let name = self.net_name(stem);
        let mut a = vec!["network", "create", "--subnet", subnet];
        a.extend_from_slice(flags);
        a.push(&name);
        self.bh(&a).ok();
        self.networks.borrow_mut().push(name.clone());
        name
    }

    /// `network rm NAME`, which must succeed (so drop does not try again).
    fn remove_network(&self, name: &str) {
        self.bh(&["network", "rm", name]).ok();
        self.networks.borrow_mut().retain(|n| n != name);
    }

    /// `sandbox -d --name NAME --network NET FLAGS… -- CMD…`, with NAME
    /// removed on drop whether it started or not.
    fn detached(&self, name: &str, net: &str, flags: &[&str], cmd: &[&str]) -> RtOutput {
        self.sandboxes.borrow_mut().push(name.to_string());
        let mut a = vec!["sandbox", "-d", "--name", name, "--network", net];
        a.extend_from_slice(flags);
        a.push("--");
        a.extend_from_slice(cmd);
        self.bh(&a)
    }

    /// A detached sandbox on `net` that only sleeps: its name.
    fn sleeper(&self, net: &str, flags: &[&str]) -> String {
        let name = unique_id();
        self.detached(&name, net, flags, SLEEP).ok();
        name
    }

    /// A detached sandbox on `net` serving its name at :8080/id.
    fn web(&self, net: &str, extra: &[&str]) -> String {
        let name = unique_id();
        let vol = format!("{}:/www:ro", self.site(&name).display());
        let mut flags = extra.to_vec();
        flags.extend_from_slice(&["-v", &vol]);
        let httpd = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"];
        self.detached(&name, net, &flags, &httpd).ok();
        let ip = self.ip_of(net, &name);
        let url = format!("http://{ip}:8080/id");
        wait_for(&format!("{name} serving"), Duration::from_secs(10), || {
            self.curl_ns(&self.host, &url).filter(|b| *b == name)
        });
        name
    }

    /// `sandbox --name NAME FLAGS… -- true` fails with exit 125 and
    /// `needle` in its error.
    #[track_caller]
    fn refused(&self, name: &str, flags: &[&str], needle: &str) {
        let mut a = vec!["sandbox", "--name", name];
        a.extend_from_slice(flags);
        a.extend(["--", "true"]);
        let out = self.bh(&a);
        out.fails_with(&[needle]);
        assert_eq!(out.code(), Some(125), "{out}");
    }

    fn inspect(&self, net: &str) -> Value {
        let out = self.bh(&["network", "inspect", net]);
        out.ok();
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        v[0].clone()
    }

    /// Sandbox `name`'s record on `net` (ip, veth, publish).
    fn attachment(&self, net: &str, name: &str) -> Value {
        let n = self.inspect(net);
        n["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["container"] == name)
            .unwrap_or_else(|| panic!("{name} not on {net}: {n}"))
            .clone()
    }

    fn ip_of(&self, net: &str, name: &str) -> String {
        self.attachment(net, name)["ip"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Sandbox `name`'s /etc/hosts.
    fn hosts_file(&self, name: &str) -> String {
        let out = self.bh(&["exec", name, "cat", "/etc/hosts"]);
        out.ok();
        out.stdout
    }

    fn links(&self) -> Vec<String> {
        let out = self.in_ns(&self.host, &["ip", "-o", "link", "show"]);
        out.ok();
        out.stdout
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }

    /// The host ends of sandboxes' veths.
    fn veths(&self) -> Vec<String> {
        let mut links = self.links();
        links.retain(|l| l.starts_with("bhv"));
        links
    }

    fn ruleset(&self) -> String {
        let out = self.in_ns(&self.host, &["nft", "list", "ruleset"]);
        out.ok();
        out.stdout
    }

    /// Deletes bulkhead's nftables table behind its back: the control for
    /// a policy test (what the policy stopped then gets through).
    fn drop_policy(&self) {
        self.in_ns(&self.host, &["nft", "delete", "table", "inet", "bulkhead"])
            .ok();
    }

    fn network_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.path().join("networks"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What a refused command must leave as it was: links, rules, network
    /// records.
    fn footprint(&self) -> (Vec<String>, String, Vec<PathBuf>) {
        (self.links(), self.ruleset(), self.network_files())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in self.sandboxes.borrow().iter() {
            let _ = self.bh(&["rm", "-f", n]);
        }
        for n in self.networks.borrow().iter() {
            let _ = self.bh(&["network", "rm", n]);
        }
        if !std::thread::panicking() {
            for n in self.sandboxes.borrow().iter() {
                let dir = Path::new(SANDBOXES).join(n);
                assert!(!dir.exists(), "{} left behind", dir.display());
            }
        }
        // The servers and namespaces go with `self.net`.
    }
}

#[test]
fn containers_on_one_network_are_isolated_unless_allow_intra() {
    require_lab!();
    let lab = Lab::new();
    let iso = lab.network("iso", "10.201.1.0/24", &[]);
    let open = lab.network("open", "10.201.2.0/24", &["--allow-intra"]);
    let a = lab.web(&iso, &[]);
    let b = lab.web(&iso, &[]);
    let (ip_a, ip_b) = (lab.ip_of(&iso, &a), lab.ip_of(&iso, &b));
    assert_ne!(ip_a, ip_b);
    // Both serve (the host reaches them, `web` waited for it), yet neither
    // reaches the other.
    assert_eq!(lab.curl_from(&a, &format!("http://{ip_b}:8080/id")), None);
    assert_eq!(lab.curl_from(&b, &format!("http://{ip_a}:8080/id")), None);

    let c = lab.web(&open, &[]);
    let d = lab.web(&open, &[]);
    let (ip_c, ip_d) = (lab.ip_of(&open, &c), lab.ip_of(&open, &d));
    assert_eq!(
        lab.curl_from(&c, &format!("http://{ip_d}:8080/id"))
            .as_deref(),
        Some(d.as_str())
    );
    assert_eq!(
        lab.curl_from(&d, &format!("http://{ip_c}:8080/id"))
            .as_deref(),
        Some(c.as_str())
    );
    // On an --allow-intra network the neighbours know each other by name.
    assert_eq!(
        lab.curl_from(&c, &format!("http://{d}:8080/id")).as_deref(),
        Some(d.as_str())
    );
    assert_eq!(
        lab.curl_from(&d, &format!("http://{c}:8080/id")).as_deref(),
        Some(c.as_str())
    );
    // Networks are isolated from each other.
    assert_eq!(lab.curl_from(&c, &format!("http://{ip_a}:8080/id")), None);
    assert_eq!(lab.curl_from(&a, &format!("http://{ip_c}:8080/id")), None);

    // The container's view: eth0 with its address, a default route via
    // the gateway, its name in /etc/hosts.
    let out = lab.bh(&[
        "exec",
        &a,
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route; cat /etc/hosts",
    ]);
    out.ok();
    assert!(out.stdout.contains(&format!("inet {ip_a}/24")), "{out}");
    assert!(
        out.stdout.contains("default via 10.201.1.1 dev eth0"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("{ip_a}\tsandbox {a}")),
        "{out}"
    );
    // Not its isolated neighbour's name.
    assert!(!out.stdout.contains(&b), "{out}");
    // A removed neighbour's name goes from the others' /etc/hosts.
    lab.bh(&["rm", "-f", &d]).ok();
    let hosts = lab.hosts_file(&c);
    assert!(!hosts.contains(&d), "{hosts}");
}

#[test]
fn containers_do_not_reach_the_host() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("nohost", "10.201.3.0/24", &[]);
    lab.serve(&lab.host, "127.0.0.1:7001", "host-service");
    lab.serve(&lab.host, "7002", "host-service");
    // The all-address service works from outside…
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:7002/id"))
            .as_deref(),
        Some("host-service")
    );
    // …but not from a container, by the gateway or the host's other address.
    let a = lab.web(&net, &[]);
    assert_eq!(lab.curl_from(&a, "http://10.201.3.1:7002/id"), None);
    assert_eq!(
        lab.curl_from(&a, &format!("http://{HOST_IP}:7002/id")),
        None
    );

    // CVE-2020-8558: a container with NET_ADMIN in its own namespace routes
    // 127.0.0.1 to the gateway; the bridge has route_localnet=1 (for ports
    // published on 127.0.0.1), the guard rule drops it.
    let name = lab.sleeper(
        &net,
        &[
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "unmask=ALL",
            "--security-opt",
            "landlock=off",
        ],
    );
    let attack = "ip route del local 127.0.0.0/8 dev lo table local; \
        ip route del local 127.0.0.1 dev lo table local; \
        ip route add 127.0.0.1/32 via 10.201.3.1 dev eth0 onlink && \
        echo 1 > /proc/sys/net/ipv4/conf/eth0/route_localnet && \
        echo 1 > /proc/sys/net/ipv4/conf/eth0/accept_local";
    lab.bh(&["exec", &name, "sh", "-c", attack]).ok();
    assert_eq!(lab.curl_from(&name, "http://127.0.0.1:7001/id"), None);
    // Control: the attack itself works once bulkhead's table is gone, so
    // the refusal above is the policy's doing.
    lab.drop_policy();
    assert_eq!(
        lab.curl_from(&name, "http://127.0.0.1:7001/id").as_deref(),
        Some("host-service")
    );
}

#[test]
fn published_ports_and_masqueraded_egress() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("pub", "10.201.4.0/24", &[]);
    let internal = lab.network("int", "10.201.5.0/24", &["--internal"]);
    let a = lab.web(&net, &["-p", "8080:8080", "-p", "127.0.0.1:8081:8080/tcp"]);
    // From the host: its own address and its loopback.
    for url in [
        format!("http://{HOST_IP}:8080/id"),
        "http://127.0.0.1:8081/id".to_string(),
    ] {
        assert_eq!(
            lab.curl_ns(&lab.host, &url).as_deref(),
            Some(a.as_str()),
            "{url}"
        );
    }
    // From the wan; the loopback publication is not reachable from there.
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:8080/id"))
            .as_deref(),
        Some(a.as_str())
    );
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:8081/id")),
        None
    );
    // Egress: the wan sees the host's address, not the container's.
    assert_eq!(
        lab.curl_from(&a, &format!("http://{WAN_IP}/cgi-bin/ip"))
            .as_deref(),
        Some(HOST_IP)
    );
    // An internal network has no egress.
    let i = lab.web(&internal, &[]);
    assert_eq!(lab.curl_from(&i, &format!("http://{WAN_IP}/id")), None);

    // A port already published: a clear error, nothing created.
    let before = (lab.links(), lab.inspect(&net));
    let name = unique_id();
    let out = lab.detached(&name, &net, &["-p", "127.0.0.1:8080:80"], &["true"]);
    out.fails_with(&["-p 127.0.0.1:8080:80/tcp: already published by container"]);
    assert_eq!(out.code(), Some(125), "{out}");
    assert_eq!((lab.links(), lab.inspect(&net)), before);
    assert!(!Path::new(SANDBOXES).join(&name).exists());
    assert!(
        lab.bh(&["state", &name])
            .fails()
            .stderr
            .contains("does not exist")
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("bad", "10.201.6.0/24", &[]);
    lab.serve(&lab.host, "127.0.0.1:7100", "taken");
    let before = lab.footprint();
    for (args, needle) in [
        (
            vec!["--subnet", "10.201.6.128/25", "x1"],
            "overlaps network",
        ),
        (
            vec!["--subnet", "198.18.0.0/29", "x2"],
            "the host's route to 198.18.0.0/30 on wan0",
        ),
        (vec!["--subnet", "10.201.7.1/24", "x3"], "host bits are set"),
        (
            vec!["--subnet", "10.201.7.0", "x4"],
            "expected an IPv4 CIDR",
        ),
        (
            vec!["--subnet", "10.201.7.0/24", "Bad.Name"],
            "network name",
        ),
        (vec!["--subnet", "10.201.7.0/24", &net], "already exists"),
    ] {
        let mut a = vec!["network", "create"];
        a.extend(args);
        lab.bh(&a).fails_with(&[needle]);
    }
    let name = unique_id();
    for (flags, needle) in [
        (
            vec!["--network", "nosuchnet"],
            "network \"nosuchnet\" not found",
        ),
        (
            vec!["--network", &net, "-p", "80"],
            "-p: \"80\": expected [HOSTIP:]HOSTPORT:CONTAINERPORT",
        ),
        (vec!["-p", "8080:80"], "publishing needs a network"),
        // A host process listens there: DNAT would take its port away.
        (
            vec!["--network", &net, "-p", "7100:80"],
            "-p 7100:80/tcp: host port 7100 is in use by another process",
        ),
        (
            vec!["--network", &net, "-p", "127.0.0.1:7100:80"],
            "-p 127.0.0.1:7100:80/tcp: host port 7100 is in use",
        ),
    ] {
        lab.refused(&name, &flags, needle);
    }
    assert!(!Path::new(SANDBOXES).join(&name).exists());
    assert_eq!(lab.footprint(), before);
    lab.bh(&["network", "rm", "nosuchnet"])
        .fails_with(&["network \"nosuchnet\" not found"]);
}

#[test]
fn removal_leaves_nothing_behind() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("rm", "10.201.8.0/24", &[]);
    let bridge = format!("bh-{net}");
    assert!(lab.ruleset().contains("table inet bulkhead"));

    // Foreground (--rm implied): on the network while it runs, released
    // when it exits.
    let out = lab.bh(&[
        "sandbox",
        "--network",
        &net,
        "--",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    out.ok();
    assert!(out.stdout.contains("inet 10.201.8.2/24"), "{out}");
    assert_eq!(lab.inspect(&net)["attachments"], serde_json::json!([]));

    // Detached, removed with rm -f.
    let a = lab.web(&net, &["-p", "9001:8080"]);
    assert!(lab.ruleset().contains("dport 9001"));
    let veth_a = lab.inspect(&net)["attachments"][0]["veth"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lab.links().contains(&veth_a));
    // A crashed one (init killed), removed with delete --force.
    let b = lab.web(&net, &["-p", "9002:8080"]);
    let pid = {
        let st = lab.bh(&["state", &b]);
        st.ok();
        serde_json::from_str::<Value>(&st.stdout).unwrap()["pid"]
            .as_i64()
            .unwrap()
    };
    sh(&["kill", "-9", &pid.to_string()]).ok();
    // A foreground sandbox whose bulkhead process crashed (SIGKILL) while
    // its container runs on: `delete --force` releases it.
    let f = unique_id();
    lab.sandboxes.borrow_mut().push(f.clone());
    let mut crashed = lab
        .bh_cmd(&[
            "sandbox",
            "--name",
            &f,
            "--network",
            &net,
            "-p",
            "9003:8080",
        ])
        .arg("--")
        .args(SLEEP)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the foreground sandbox on the network",
        Duration::from_secs(20),
        || (lab.inspect(&net)["attachments"].as_array().unwrap().len() == 3).then_some(()),
    );
    crashed.kill().unwrap();
    crashed.wait().unwrap();
    assert!(lab.ruleset().contains("dport 9003"));
    lab.bh(&["delete", "--force", &f]).ok();
    lab.bh(&["rm", &f]).ok();
    assert!(!lab.ruleset().contains("dport 9003"));

    lab.bh(&["rm", "-f", &a]).ok();
    lab.bh(&["delete", "--force", &b]).ok();
    let n = lab.inspect(&net);
    assert_eq!(n["attachments"], serde_json::json!([]), "{n}");
    let rules = lab.ruleset();
    assert!(
        !rules.contains("dport 9001") && !rules.contains("dport 9002"),
        "{rules}"
    );
    assert_eq!(lab.veths(), Vec::<String>::new());
    // A bridge lost behind bulkhead's back (as after a reboot with a state
    // root on disk) comes back at the next attach. Freed addresses are
    // handed out again: the next one gets .2.
    lab.in_ns(&lab.host, &["ip", "link", "del", &bridge]).ok();
    let c = lab.web(&net, &[]);
    assert!(lab.links().contains(&bridge));
    assert_eq!(lab.ip_of(&net, &c), "10.201.8.2");
    // A network in use cannot go.
    lab.bh(&["network", "rm", &net]).fails_with(&["in use by"]);
    lab.bh(&["rm", "-f", &c]).ok();
    // A record whose release was missed (the container deleted by another
    // runtime) does not block a new container of the same name, nor its
    // port.
    let d = unique_id();
    let record = lab.root.path().join("networks").join(format!("{net}.json"));
    let mut v: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    v["attachments"] = serde_json::json!([{"container": d, "ip": "10.201.8.9",
        "veth": "bhvdeadbeef", "publish": [{"host_ip": null, "host_port": 9009,
        "container_port": 80, "proto": "tcp"}]}]);
    std::fs::write(&record, v.to_string()).unwrap();
    lab.detached(&d, &net, &["-p", "9009:8080"], SLEEP).ok();
    let n = lab.inspect(&net);
    assert_eq!(n["attachments"].as_array().unwrap().len(), 1, "{n}");
    assert_eq!(n["attachments"][0]["ip"], "10.201.8.2", "{n}");
    lab.bh(&["rm", "-f", &d]).ok();
    // b's sandbox directory (its container was deleted with `delete`).
    lab.bh(&["rm", &b]).ok();

    lab.remove_network(&net);
    let links = lab.links();
    assert_eq!(links, ["lo", "wan0"], "links left: {links:?}");
    assert!(!links.contains(&bridge));
    assert_eq!(lab.ruleset().trim(), "", "rules left");
    assert_eq!(lab.network_files(), Vec::<PathBuf>::new());
    assert!(lab.bh(&["network", "ls", "-q"]).ok().stdout.is_empty());
}

#[test]
fn state_roots_keep_each_others_rules() {
    require_lab!();
    let lab = Lab::new();
    let one = lab.network("one", "10.201.9.0/24", &[]);
    let other_root = common::open_tempdir();
    let two = lab.net_name("two");
    lab.bh_in(
        other_root.path(),
        &["network", "create", "--subnet", "10.201.10.0/24", &two],
    )
    .ok();
    // The same subnet in the other root: the host route of `one` is found.
    lab.bh_in(
        other_root.path(),
        &["network", "create", "--subnet", "10.201.9.0/25", "x"],
    )
    .fails_with(&["the host's route to 10.201.9.0/24 on bh-"]);
    let rules = lab.ruleset();
    assert!(rules.contains(&format!("chain bh-{one}-input")), "{rules}");
    assert!(rules.contains(&format!("chain bh-{two}-input")), "{rules}");
    // Removing the other root's network leaves this root's policy alone.
    lab.bh_in(other_root.path(), &["network", "rm", &two]).ok();
    let rules = lab.ruleset();
    assert!(!rules.contains(&format!("bh-{two}-")), "{rules}");
    for suffix in [
        "guard", "input", "forward", "nat-pre", "nat-out", "nat-post",
    ] {
        assert!(
            rules.contains(&format!("chain bh-{one}-{suffix} ")),
            "{suffix}: {rules}"
        );
    }
    let a = lab.web(&one, &["-p", "9100:8080"]);
    assert_eq!(
        lab.curl_ns(&lab.wan, &format!("http://{HOST_IP}:9100/id"))
            .as_deref(),
        Some(a.as_str())
    );
    lab.bh(&["rm", "-f", &a]).ok();
    lab.remove_network(&one);
    assert_eq!(lab.ruleset().trim(), "", "rules left");
}

#[test]
fn parallel_sandboxes_get_distinct_addresses() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("par", "10.201.11.0/24", &[]);
    let names: Vec<String> = (0..4).map(|_| unique_id()).collect();
    lab.sandboxes.borrow_mut().extend(names.iter().cloned());
    let children: Vec<Child> = names
        .iter()
        .map(|n| {
            lab.bh_cmd(&["sandbox", "-d", "--name", n, "--network", &net, "--"])
                .args(SLEEP)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let n = lab.inspect(&net);
    let mut ips: Vec<&str> = n["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    ips.sort();
    assert_eq!(
        ips,
        ["10.201.11.2", "10.201.11.3", "10.201.11.4", "10.201.11.5"],
        "{n}"
    );
    // Each sandbox holds the address its record says.
    for name in &names {
        let ip = lab.ip_of(&net, name);
        let out = lab.bh(&["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"]);
        out.ok();
        assert!(out.stdout.contains(&format!("inet {ip}/24")), "{out}");
    }
}

/// Fault injection (docs/reliability.md): the sandbox is SIGKILLed while it
/// attaches to the network, after the address is recorded and after the
/// veth exists (before the firewall has its ports). `delete --force` and
/// `rm` then leave no veth, no rule, no attachment.
#[test]
fn sandbox_killed_while_attaching_leaves_nothing_after_delete() {
    require_lab!();
    skip_if!(
        !cfg!(debug_assertions),
        "BULKHEAD_FAULT is compiled out of release builds"
    );
    let lab = Lab::new();
    let net = lab.network("flt", "10.201.13.0/24", &[]);
    for (i, point) in ["net.recorded", "net.linked"].into_iter().enumerate() {
        let name = unique_id();
        lab.sandboxes.borrow_mut().push(name.clone());
        let port = format!("{}:8080", 9300 + i);
        let mut c = lab.bh_cmd(&["sandbox", "-d", "--name", &name, "--network", &net]);
        c.args(["-p", &port, "--"])
            .args(SLEEP)
            .env("BULKHEAD_FAULT", point);
        let out = run_cmd(c, lab.io.path(), common::cmd_timeout());
        // The network is set up by the detached sandbox's monitor (a
        // fork of the runtime): the fault point SIGKILLs it, and the CLI
        // says so (or, without a monitor, the CLI itself is killed).
        let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(9);
        assert!(
            killed
                || out
                    .stderr
                    .contains("monitor exited before the sandbox started"),
            "not killed at {point}: {out}"
        );
        lab.bh(&["delete", "--force", &name]).ok();
        // The sandbox directory: the CLI removes it when its monitor dies
        // first; `rm` otherwise.
        if Path::new(SANDBOXES).join(&name).exists() {
            lab.bh(&["rm", "-f", &name]).ok();
        }
        let n = lab.inspect(&net);
        assert_eq!(
            n["attachments"],
            serde_json::json!([]),
            "after {point}: {n}"
        );
        assert_eq!(lab.veths(), Vec::<String>::new(), "veth left after {point}");
        assert!(
            !lab.ruleset().contains(&format!("dport {}", 9300 + i)),
            "rule left after {point}"
        );
        assert!(
            !Path::new(SANDBOXES).join(&name).exists(),
            "sandbox directory left after {point}"
        );
    }
}

#[test]
fn spoofed_sources_do_not_leave_the_network() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("spoof", "10.201.12.0/24", &[]);
    // The wan routes the spoofed range back to the host, so only the policy
    // stands between a spoofed request and its answer.
    lab.in_ns(
        &lab.wan,
        &["ip", "route", "add", "10.250.0.0/24", "via", HOST_IP],
    )
    .ok();
    let name = lab.sleeper(&net, &["--cap-add", "NET_ADMIN"]);
    lab.bh(&[
        "exec",
        &name,
        "ip",
        "addr",
        "add",
        "10.250.0.5/32",
        "dev",
        "eth0",
    ])
    .ok();
    // …and the host knows where the spoofed address lives (as a routed
    // network would): without the policy, the answer comes back.
    let ip = lab.ip_of(&net, &name);
    lab.in_ns(
        &lab.host,
        &["ip", "route", "add", "10.250.0.5/32", "via", &ip],
    )
    .ok();
    let spoofed =
        |lab: &Lab| lab.curl_from_src(&name, "10.250.0.5", &format!("http://{WAN_IP}/cgi-bin/ip"));
    // The network's own address still gets out (masqueraded).
    assert_eq!(
        lab.curl_from(&name, &format!("http://{WAN_IP}/cgi-bin/ip"))
            .as_deref(),
        Some(HOST_IP)
    );
    assert_eq!(spoofed(&lab), None);
    // Control: without bulkhead's table the spoofed request gets through.
    lab.drop_policy();
    assert_eq!(spoofed(&lab).as_deref(), Some("10.250.0.5"));
}

#[test]
fn linked_containers_reach_each_other_and_no_one_else() {
    require_lab!();
    let lab = Lab::new();
    let net = lab.network("link", "10.201.9.0/24", &[]);
    let other = lab.network("lother", "10.201.10.0/24", &[]);
    let a = lab.web(&net, &[]);
    let b = lab.web(&net, &[]);
    let c = lab.web(&net, &["--link", &format!("{a}:db")]);
    let (ip_a, ip_b, ip_c) = (
        lab.ip_of(&net, &a),
        lab.ip_of(&net, &b),
        lab.ip_of(&net, &c),
    );
    let get = |from: &str, host: &str| lab.curl_from(from, &format!("http://{host}:8080/id"));
    // The pair, both ways, by address and by name (and c's alias for a).
    for host in [ip_a.as_str(), a.as_str(), "db"] {
        assert_eq!(get(&c, host).as_deref(), Some(a.as_str()), "c -> {host}");
    }
    for host in [ip_c.as_str(), c.as_str()] {
        assert_eq!(get(&a, host).as_deref(), Some(c.as_str()), "a -> {host}");
    }
    // Nobody else: b is on the network but not linked.
    for (from, to) in [(&b, &ip_a), (&b, &ip_c), (&a, &ip_b), (&c, &ip_b)] {
        assert_eq!(get(from, to), None, "{from} -> {to}");
    }
    let isolated = |name: &str| {
        let veth = lab.attachment(&net, name)["veth"].clone();
        let veth = veth.as_str().unwrap();
        let out = lab.in_ns(&lab.host, &["ip", "-d", "link", "show", "dev", veth]);
        out.ok();
        out.stdout.contains("isolated on")
    };
    assert!(!isolated(&a) && !isolated(&c) && isolated(&b));

    // Removing c removes the pair: a's port is isolated again, its hosts
    // file forgets c, and b still reaches no one.
    lab.bh(&["rm", "-f", &c]).ok();
    assert!(isolated(&a));
    let hosts = lab.hosts_file(&a);
    assert!(!hosts.contains(&c), "{hosts}");
    assert!(!lab.ruleset().contains(&ip_c));
    assert_eq!(get(&b, &ip_a), None);

    // Bad links: nothing is created.
    let before = (lab.links(), lab.ruleset(), lab.inspect(&net));
    let name = unique_id();
    for (flags, needle) in [
        (
            vec!["--network", &net, "--link", "nosuch"],
            "--link: \"nosuch\": no container of that name is on network",
        ),
        (
            vec!["--network", &other, "--link", &a],
            "no container of that name is on network",
        ),
        (
            vec!["--network", &net, "--link", &name],
            "cannot be linked to itself",
        ),
        (
            vec!["--network", &net, "--link", "x:not_a_host!"],
            "is not a host name",
        ),
        (
            vec!["--link", &a],
            "links are between containers of one bridge network",
        ),
    ] {
        lab.refused(&name, &flags, needle);
    }
    assert!(!Path::new(SANDBOXES).join(&name).exists());
    assert_eq!((lab.links(), lab.ruleset(), lab.inspect(&net)), before);
}

#[test]
fn hairpin_to_published_ports_follows_the_intra_policy() {
    require_lab!();
    let lab = Lab::new();
    let iso = lab.network("hpiso", "10.201.11.0/24", &[]);
    let open = lab.network("hpopen", "10.201.12.0/24", &["--allow-intra"]);
    let a = lab.web(&iso, &["-p", "18090:8080"]);
    let b = lab.web(&iso, &[]);
    let c = lab.web(&iso, &["--link", &a]);
    let d = lab.web(&open, &["-p", "18091:8080"]);
    let e = lab.web(&open, &[]);
    let via_host =
        |from: &str, port: &str| lab.curl_from(from, &format!("http://{HOST_IP}:{port}/id"));
    // Itself and its linked peer reach a's published port by the host's
    // address; b, a neighbour on the isolated network, does not.
    assert_eq!(via_host(&a, "18090").as_deref(), Some(a.as_str()));
    assert_eq!(via_host(&c, "18090").as_deref(), Some(a.as_str()));
    assert_eq!(via_host(&b, "18090"), None);
    // By the gateway (a host address too): the same.
    assert_eq!(
        lab.curl_from(&c, "http://10.201.11.1:18090/id").as_deref(),
        Some(a.as_str())
    );
    assert_eq!(lab.curl_from(&b, "http://10.201.11.1:18090/id"), None);
    // On an --allow-intra network, any neighbour.
    assert_eq!(via_host(&e, "18091").as_deref(), Some(d.as_str()));
    // From another network a published port is what it is from the wan:
    // public.
    assert_eq!(via_host(&b, "18091").as_deref(), Some(d.as_str()));
}

#[test]
fn dual_stack_networks_keep_the_ipv6_policy() {
    require_lab!();
    let lab = Lab::new();
    // The wan link gets IPv6 too.
    lab.add_ipv6();
    lab.serve(&lab.host, "7002", "host-service");
    let net = lab.network("dual", "10.201.14.0/24", &["--subnet", "fd00:201:14::/64"]);
    assert_eq!(lab.inspect(&net)["subnet6"], "fd00:201:14::/64");
    let ls = lab.bh(&["network", "ls"]);
    assert!(
        ls.ok().stdout.contains("10.201.14.0/24,fd00:201:14::/64"),
        "{ls}"
    );
    let a = lab.web(&net, &[]);
    let b = lab.web(&net, &[]);
    let ip6 = |name: &str| {
        let out = lab.bh(&[
            "exec", name, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global",
        ]);
        out.ok();
        let addr = out.stdout.split_whitespace().nth(3).unwrap_or_default();
        addr.split('/').next().unwrap().to_string()
    };
    let (a6, b6) = (ip6(&a), ip6(&b));
    assert!(a6.starts_with("fd00:201:14::") && a6 != b6, "{a6} {b6}");
    // Egress, masqueraded to the host's address.
    assert_eq!(
        lab.curl_from(&a, "http://[2001:db8:ff::2]/cgi-bin/ip")
            .as_deref(),
        Some("2001:db8:ff::1")
    );
    // Not the neighbour, not the host (gateway or other address).
    assert_eq!(lab.curl_from(&a, &format!("http://[{b6}]:8080/id")), None);
    assert_eq!(lab.curl_from(&a, "http://[fd00:201:14::1]:7002/id"), None);
    assert_eq!(lab.curl_from(&a, "http://[2001:db8:ff::1]:7002/id"), None);
    // …which the host itself reaches (the container is served on IPv6).
    assert_eq!(
        lab.curl_ns(&lab.host, &format!("http://[{b6}]:8080/id"))
            .as_deref(),
        Some(b.as_str())
    );
    let hosts = lab.hosts_file(&a);
    assert!(hosts.contains(&format!("{a6}\tsandbox {a}")), "{hosts}");

    // A spoofed IPv6 source does not get out, though the wan and the host
    // route it back (control: without the table it does).
    let spoofer = lab.sleeper(&net, &["--cap-add", "NET_ADMIN"]);
    let s6 = ip6(&spoofer);
    lab.bh(&[
        "exec",
        &spoofer,
        "ip",
        "-6",
        "addr",
        "add",
        "fd99::5/128",
        "dev",
        "eth0",
        "nodad",
    ])
    .ok();
    lab.in_ns(
        &lab.wan,
        &["ip", "-6", "route", "add", "fd99::/64", "via", HOST_IP6],
    )
    .ok();
    lab.in_ns(
        &lab.host,
        &["ip", "-6", "route", "add", "fd99::5/128", "via", &s6],
    )
    .ok();
    let spoofed = |lab: &Lab| {
        lab.curl_from_src(
            &spoofer,
            "fd99::5",
            &format!("http://[{WAN_IP6}]/cgi-bin/ip"),
        )
    };
    assert_eq!(spoofed(&lab), None);

    // Bad IPv6 subnets: nothing created.
    let before = lab.footprint();
    for (subnets, needle) in [
        (
            ["10.202.0.0/16", "fd00:201:15::/120"],
            "fewer addresses than 10.202.0.0/16",
        ),
        (
            ["fd00:201:15::/64", "fd00:201:16::/64"],
            "at most one IPv6 subnet",
        ),
        (
            ["10.201.15.0/24", "fd00:201:14:0:1::/80"],
            "overlaps network",
        ),
        (
            ["10.201.15.0/24", "2001:db8:ff::/64"],
            "the host's route to 2001:db8:ff::/64 on wan0",
        ),
        (["10.201.15.0/24", "fe80::/64"], "not a unicast network"),
    ] {
        let out = lab.bh(&[
            "network", "create", "--subnet", subnets[0], "--subnet", subnets[1], "x6",
        ]);
        out.fails_with(&[needle]);
    }
    assert_eq!(lab.footprint(), before);
    lab.drop_policy();
    assert_eq!(spoofed(&lab).as_deref(), Some("fd99::5"));
}
