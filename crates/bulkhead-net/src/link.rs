//! Links, addresses and routes, through iproute2's `ip`.
//!
//! Why the `ip` binary rather than netlink crates: every step is one
//! command whose error text users already know, the container's end is
//! configured from inside its namespace with `nsenter --net`, which keeps
//! this crate free of `unsafe` and of an async runtime, and iproute2 is on
//! every machine that runs containers. Moving to netlink-packet-route is a
//! local change behind these functions.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use crate::error::{NetError, Result};

/// The interface name inside the container.
pub const CONTAINER_IF: &str = "eth0";

/// Runs a command; its stdout, or its stderr as the error.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    tracing::debug!("{command}");
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Deletes a link; one that is already gone is fine.
pub fn delete(name: &str) -> Result<()> {
    if !exists(name) {
        return Ok(());
    }
    match run("ip", &["link", "del", "dev", name]) {
        Err(_) if !exists(name) => Ok(()),
        r => r.map(|_| ()),
    }
}

pub fn create_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    run("ip", &["link", "add", name, "type", "bridge"])?;
    let addr = format!("{gateway}/{prefix}");
    run("ip", &["addr", "add", &addr, "dev", name])?;
    run("ip", &["link", "set", name, "up"])?;
    Ok(())
}

/// Adds an IPv6 address to a link (without duplicate address detection:
/// the bridge's gateway address is ours).
pub fn add_address6(dev: &str, addr: Ipv6Addr, prefix: u8) -> Result<()> {
    let a = format!("{addr}/{prefix}");
    run("ip", &["-6", "addr", "add", &a, "dev", dev, "nodad"]).map(drop)
}

/// The IPv6 networks routed in this namespace's main table that are not
/// on one of `skip_devs` (link-local and multicast routes aside).
pub fn routed_networks6(skip_devs: &[&str]) -> Result<Vec<(String, String)>> {
    let out = run("ip", &["-j", "-6", "route", "show"])?;
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(routes
        .iter()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?;
            let dev = r["dev"].as_str().unwrap_or("");
            let local = dst.starts_with("fe80:") || dst.starts_with("ff");
            (dst != "default" && !local && !skip_devs.contains(&dev))
                .then(|| (dst.to_string(), dev.to_string()))
        })
        .collect())
}

/// The IPv4 networks routed in this namespace's main table that are not on
/// one of `skip_devs`: a new network must not shadow them.
pub fn routed_networks(skip_devs: &[&str]) -> Result<Vec<(String, String)>> {
    let out = run("ip", &["-j", "-4", "route", "show"])?;
    let routes: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(routes
        .iter()
        .filter_map(|r| {
            let dst = r["dst"].as_str()?;
            let dev = r["dev"].as_str().unwrap_or("");
            (dst != "default" && !skip_devs.contains(&dev))
                .then(|| (dst.to_string(), dev.to_string()))
        })
        .collect())
}

/// Writes a sysctl of this network namespace (`/proc/sys/net` is per
/// namespace).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| NetError::io(path, e))
}

/// What one container's link looks like.
pub struct VethPlan<'a> {
    pub veth: &'a str,
    pub bridge: &'a str,
    pub pid: i32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Bridge port isolation: the port cannot exchange frames with other
    /// isolated ports (all ports of a network without --allow-intra).
    pub isolated: bool,
    /// Hairpin mode: frames may leave by the port they came in by. A
    /// container reaching its own published port through a host address
    /// needs it: br_netfilter bridges a DNAT-ed packet whose new
    /// destination is on the same bridge instead of routing it.
    pub hairpin: bool,
    /// Dual stack: the container's IPv6 address, prefix and gateway.
    pub ip6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

/// Creates the veth pair with its peer directly in the namespace of `pid`,
/// puts the host end on the bridge and configures the container's end.
pub fn attach(p: &VethPlan) -> Result<()> {
    let pid = p.pid.to_string();
    run(
        "ip",
        &[
            "link",
            "add",
            p.veth,
            "type",
            "veth",
            "peer",
            "name",
            CONTAINER_IF,
            "netns",
            &pid,
        ],
    )?;
    run("ip", &["link", "set", "dev", p.veth, "master", p.bridge])?;
    if p.isolated {
        run(
            "ip",
            &[
                "link",
                "set",
                "dev",
                p.veth,
                "type",
                "bridge_slave",
                "isolated",
                "on",
            ],
        )?;
    }
    if p.hairpin {
        run(
            "ip",
            &[
                "link",
                "set",
                "dev",
                p.veth,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ],
        )?;
    }
    run("ip", &["link", "set", "dev", p.veth, "up"])?;
    let inside = |args: &[&str]| {
        let mut a = vec!["--target", pid.as_str(), "--net", "ip"];
        a.extend_from_slice(args);
        run("nsenter", &a)
    };
    let addr = format!("{}/{}", p.ip, p.prefix);
    inside(&["addr", "add", &addr, "dev", CONTAINER_IF])?;
    inside(&["link", "set", "dev", CONTAINER_IF, "up"])?;
    inside(&["route", "add", "default", "via", &p.gateway.to_string()])?;
    if let Some((ip6, prefix, gw6)) = p.ip6 {
        let addr = format!("{ip6}/{prefix}");
        // nodad: the address is ours by allocation; DAD would only delay it.
        inside(&["-6", "addr", "add", &addr, "dev", CONTAINER_IF, "nodad"])?;
        inside(&["-6", "route", "add", "default", "via", &gw6.to_string()])?;
    }
    Ok(())
}

/// Sets bridge port isolation of `veth` (a linked container's port is not
/// isolated: the bridge table's rules keep it to its peers).
pub fn set_isolated(veth: &str, on: bool) -> Result<()> {
    let flag = if on { "on" } else { "off" };
    run(
        "ip",
        &[
            "link",
            "set",
            "dev",
            veth,
            "type",
            "bridge_slave",
            "isolated",
            flag,
        ],
    )
    .map(drop)
}

/// The ports of `bridge` with their isolation flag.
pub fn port_isolation(bridge: &str) -> Result<Vec<(String, bool)>> {
    let out = run("ip", &["-j", "-d", "link", "show", "master", bridge])?;
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    Ok(links
        .iter()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?.to_string();
            let isolated = l["linkinfo"]["info_slave_data"]["isolated"]
                .as_bool()
                .unwrap_or(false);
            Some((name, isolated))
        })
        .collect())
}
