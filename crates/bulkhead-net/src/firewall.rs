//! The nftables policy, in tables `inet bulkhead` and `bridge bulkhead`
//! (bulkhead's own; no other table is read or touched). Every network has
//! base chains of its own, named after its bridge (`bh-NAME-input`, …):
//! after every change, one state root's networks have their chains flushed
//! and refilled from the records, and removed networks' chains deleted, in
//! one `nft -j -f -` transaction, so the kernel holds the old or the new
//! policy, never a mix, and another state root's chains are left alone.
//! When no chain is left, both tables are deleted.
//!
//! Per network (bridge B, subnet S, gateway G):
//! - `guard` (prerouting, raw): from B, nothing for 127.0.0.0/8. B has
//!   `route_localnet=1` so that ports published on 127.0.0.1 work; without
//!   this rule a container could route to the host's loopback services
//!   (the CVE-2020-8558 pattern).
//! - `input`: from B only replies reach the host (no host address, no host
//!   service, unless published).
//! - `forward`: into B only replies and published (DNAT-ed) connections;
//!   out of B only IPv4 from S (no spoofed sources, no IPv6), and nothing
//!   on `--internal` networks. Frames between two ports
//!   of B also pass here through br_netfilter (iif = oif = B): they are
//!   left to the L2 policy below and to bridge port isolation.
//! - `forward` of `bridge bulkhead`: without `--allow-intra`, no frame
//!   goes from one port to another (on top of the ports' `isolated` flag),
//!   except between the ports of a linked pair (`--link`), whose ports are
//!   not isolated.
//! - hairpin (a container reaching a published port by a host address):
//!   allowed and masqueraded only for itself, a linked pair, or any two
//!   on an `--allow-intra` network; dropped otherwise.
//! - NAT: masquerade S leaving by another interface (not `--internal`);
//!   DNAT for each published port, in prerouting (from outside) and output
//!   (from the host itself, 127.0.0.1 included), and masquerade of 127/8
//!   sources sent to B.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::error::{NetError, Result};
use crate::state::Network;

pub const TABLE: &str = "bulkhead";

fn table(family: &str) -> Value {
    json!({"table": {"family": family, "name": TABLE}})
}

fn chain(family: &str, name: &str, ty: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": family, "table": TABLE, "name": name,
        "type": ty, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn rule(family: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": family, "table": TABLE, "chain": chain, "expr": expr}}})
}

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

fn ne(left: Value, right: Value) -> Value {
    json!({"match": {"op": "!=", "left": left, "right": right}})
}

fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn prefix(addr: &str, len: u8) -> Value {
    json!({"prefix": {"addr": addr, "len": len}})
}

fn replies() -> Value {
    json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}})
}

fn verdict(v: &str) -> Value {
    json!({ v: null })
}

/// The base chains of one network: (family, name suffix, type, hook,
/// priority). Each network has its own, so a state root rewrites only the
/// chains of its own networks and leaves another root's alone.
const CHAINS: [(&str, &str, &str, &str, i32); 7] = [
    ("inet", "guard", "filter", "prerouting", -300),
    ("inet", "input", "filter", "input", 0),
    ("inet", "forward", "filter", "forward", 0),
    ("inet", "nat-pre", "nat", "prerouting", -100),
    ("inet", "nat-out", "nat", "output", -100),
    ("inet", "nat-post", "nat", "postrouting", 100),
    ("bridge", "forward", "filter", "forward", 0),
];

fn chain_name(bridge: &str, suffix: &str) -> String {
    format!("{bridge}-{suffix}")
}

/// The batch that sets the chains of `nets` (one state root's networks)
/// and deletes those of the networks on the `removed` bridges.
pub fn ruleset(nets: &[Network], removed: &[&str]) -> Value {
    let mut cmds = vec![
        json!({"add": table("inet")}),
        json!({"add": table("bridge")}),
    ];
    for bridge in removed {
        for (family, suffix, ty, hook, prio) in CHAINS {
            let name = chain_name(bridge, suffix);
            // add + delete: gone whether or not it existed.
            cmds.push(chain(family, &name, ty, hook, prio));
            cmds.push(
                json!({"delete": {"chain": {"family": family, "table": TABLE, "name": name}}}),
            );
        }
    }
    for n in nets {
        for (family, suffix, ty, hook, prio) in CHAINS {
            let name = chain_name(&n.bridge, suffix);
            cmds.push(chain(family, &name, ty, hook, prio));
            cmds.push(
                json!({"flush": {"chain": {"family": family, "table": TABLE, "name": name}}}),
            );
        }
        network_rules(n, &mut cmds);
    }
    json!({ "nftables": cmds })
}

fn network_rules(n: &Network, cmds: &mut Vec<Value>) {
    let (i, b) = ("inet", "bridge");
    let c = |suffix: &str| chain_name(&n.bridge, suffix);
    let iif = || eq(meta("iifname"), json!(n.bridge));
    let oif = || eq(meta("oifname"), json!(n.bridge));
    let subnet = prefix(&n.subnet.addr.to_string(), n.subnet.prefix);
    cmds.push(rule(
        i,
        &c("guard"),
        vec![
            iif(),
            eq(payload("ip", "daddr"), prefix("127.0.0.0", 8)),
            verdict("drop"),
        ],
    ));
    // IPv6 has no route_localnet, but the guard costs nothing.
    cmds.push(rule(
        i,
        &c("guard"),
        vec![
            iif(),
            eq(payload("ip6", "daddr"), json!("::1")),
            verdict("drop"),
        ],
    ));
    cmds.push(rule(
        i,
        &c("input"),
        vec![iif(), replies(), verdict("accept")],
    ));
    if n.subnet6.is_some() {
        // Neighbour discovery with the gateway: IPv6's ARP.
        cmds.push(rule(
            i,
            &c("input"),
            vec![
                iif(),
                eq(
                    payload("icmpv6", "type"),
                    json!({"set": ["nd-neighbor-solicit", "nd-neighbor-advert"]}),
                ),
                verdict("accept"),
            ],
        ));
    }
    cmds.push(rule(i, &c("input"), vec![iif(), verdict("drop")]));

    hairpin_rules(n, cmds);
    cmds.push(rule(
        i,
        &c("forward"),
        vec![iif(), oif(), verdict("accept")],
    ));
    cmds.push(rule(
        i,
        &c("forward"),
        vec![oif(), replies(), verdict("accept")],
    ));
    cmds.push(rule(
        i,
        &c("forward"),
        vec![oif(), dnat(), verdict("accept")],
    ));
    cmds.push(rule(i, &c("forward"), vec![oif(), verdict("drop")]));
    // Only the network's own addresses leave it (no spoofed sources); the
    // networks are IPv4-only, so no IPv6 either.
    cmds.push(rule(
        i,
        &c("forward"),
        vec![
            iif(),
            ne(payload("ip", "saddr"), subnet.clone()),
            verdict("drop"),
        ],
    ));
    match n.subnet6 {
        Some(s6) => cmds.push(rule(
            i,
            &c("forward"),
            vec![
                iif(),
                ne(
                    payload("ip6", "saddr"),
                    prefix(&s6.addr.to_string(), s6.prefix),
                ),
                verdict("drop"),
            ],
        )),
        None => cmds.push(rule(
            i,
            &c("forward"),
            vec![iif(), eq(meta("nfproto"), json!("ipv6")), verdict("drop")],
        )),
    }
    if n.internal {
        cmds.push(rule(i, &c("forward"), vec![iif(), verdict("drop")]));
    } else {
        cmds.push(rule(
            i,
            &c("nat-post"),
            vec![
                eq(payload("ip", "saddr"), subnet.clone()),
                ne(meta("oifname"), json!(n.bridge)),
                json!({"masquerade": null}),
            ],
        ));
        if let Some(s6) = n.subnet6 {
            cmds.push(rule(
                i,
                &c("nat-post"),
                vec![
                    eq(
                        payload("ip6", "saddr"),
                        prefix(&s6.addr.to_string(), s6.prefix),
                    ),
                    ne(meta("oifname"), json!(n.bridge)),
                    json!({"masquerade": null}),
                ],
            ));
        }
    }
    cmds.push(rule(
        i,
        &c("nat-post"),
        vec![
            eq(payload("ip", "saddr"), prefix("127.0.0.0", 8)),
            oif(),
            json!({"masquerade": null}),
        ],
    ));
    if !n.allow_intra {
        // Linked pairs (`--link`) talk; no other frame goes from one port
        // to another (ARP and IPv6 included).
        for (x, y) in n.linked_pairs() {
            for (from, to) in [(x, y), (y, x)] {
                cmds.push(rule(
                    b,
                    &c("forward"),
                    vec![
                        eq(meta("iifname"), json!(from.veth)),
                        eq(meta("oifname"), json!(to.veth)),
                        verdict("accept"),
                    ],
                ));
            }
        }
        // A container's own hairpin (its published port by a host
        // address, bridged back to its port).
        for a in n.attachments.iter().filter(|a| !a.publish.is_empty()) {
            cmds.push(rule(
                b,
                &c("forward"),
                vec![
                    eq(meta("iifname"), json!(a.veth)),
                    eq(meta("oifname"), json!(a.veth)),
                    verdict("accept"),
                ],
            ));
        }
        // By the network's ports (`meta ibrname` needs a module kernels
        // often lack).
        let ports: Vec<&str> = n.attachments.iter().map(|a| a.veth.as_str()).collect();
        if !ports.is_empty() {
            cmds.push(rule(
                b,
                &c("forward"),
                vec![
                    eq(meta("iifname"), json!({ "set": ports })),
                    verdict("drop"),
                ],
            ));
        }
    }
    for a in &n.attachments {
        for p in &a.publish {
            let dst = match p.host_ip {
                Some(ip) => eq(payload("ip", "daddr"), json!(ip.to_string())),
                None => eq(
                    json!({"fib": {"result": "type", "flags": ["daddr"]}}),
                    json!("local"),
                ),
            };
            let proto = p.proto.to_string();
            let expr = vec![
                eq(meta("nfproto"), json!("ipv4")),
                dst,
                eq(payload(&proto, "dport"), json!(p.host_port)),
                json!({"dnat": {"family": "ip", "addr": a.ip.to_string(), "port": p.container_port}}),
            ];
            cmds.push(rule(i, &c("nat-pre"), expr.clone()));
            cmds.push(rule(i, &c("nat-out"), expr));
        }
    }
}

fn dnat() -> Value {
    json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}})
}

/// Hairpin: a container reaching a published port through a host address
/// comes back into B DNAT-ed. Allowed, and masqueraded so that the reply
/// returns through the host, only where the two may talk directly anyway:
/// a container and itself, a linked pair, any two on an `--allow-intra`
/// network. Dropped otherwise (one-way UDP included), before B-to-B
/// traffic is accepted.
fn hairpin_rules(n: &Network, cmds: &mut Vec<Value>) {
    let i = "inet";
    let fwd = chain_name(&n.bridge, "forward");
    let post = chain_name(&n.bridge, "nat-post");
    let iif = eq(meta("iifname"), json!(n.bridge));
    let oif = eq(meta("oifname"), json!(n.bridge));
    let subnet = prefix(&n.subnet.addr.to_string(), n.subnet.prefix);
    let addr = |ip: std::net::Ipv4Addr| json!(ip.to_string());
    // br_netfilter bridges these packets (the new destination is on the
    // same bridge), where `masquerade` finds no route: the gateway is
    // named. The server sees the gateway as its client.
    let snat = json!({"snat": {"family": "ip", "addr": n.gateway.to_string()}});
    if n.allow_intra {
        cmds.push(rule(
            i,
            &post,
            vec![
                eq(payload("ip", "saddr"), subnet.clone()),
                eq(payload("ip", "daddr"), subnet),
                oif,
                dnat(),
                snat,
            ],
        ));
        return;
    }
    let mut allowed = Vec::new();
    for a in n.attachments.iter().filter(|a| !a.publish.is_empty()) {
        allowed.push((a.ip, a.ip));
    }
    for (x, y) in n.linked_pairs() {
        for (from, to) in [(x, y), (y, x)] {
            if !to.publish.is_empty() {
                allowed.push((from.ip, to.ip));
            }
        }
    }
    for (from, to) in allowed {
        let m = |s, d| {
            vec![
                eq(payload("ip", "saddr"), addr(s)),
                eq(payload("ip", "daddr"), addr(d)),
                oif.clone(),
                dnat(),
            ]
        };
        // Both directions: replies are DNAT-ed connections too.
        for (s, d) in [(from, to), (to, from)] {
            let mut accept = m(s, d);
            accept.push(verdict("accept"));
            cmds.push(rule(i, &fwd, accept));
        }
        let mut nat = m(from, to);
        nat.push(snat.clone());
        cmds.push(rule(i, &post, nat));
    }
    cmds.push(rule(i, &fwd, vec![iif, oif, dnat(), verdict("drop")]));
}

/// Sets the chains of `nets` (all networks of one state root) and deletes
/// those of the `removed` bridges, in one transaction; then deletes our
/// tables if no chain is left in them (no network in any state root).
pub fn apply(nets: &[Network], removed: &[&str]) -> Result<()> {
    // One host-wide lock: state roots have locks of their own, but share
    // the tables.
    let _lock = crate::state::lock_file(std::path::Path::new(HOST_LOCK))?;
    nft(&["-j", "-f", "-"], Some(ruleset(nets, removed).to_string()))?;
    if nets.is_empty() {
        for family in ["inet", "bridge"] {
            let listed = nft(&["-j", "list", "table", family, TABLE], None)?;
            let v: Value = serde_json::from_str(&listed).unwrap_or(Value::Null);
            let chains = v["nftables"]
                .as_array()
                .map(|a| a.iter().filter(|o| o.get("chain").is_some()).count())
                .unwrap_or(0);
            if chains == 0 {
                nft(&["delete", "table", family, TABLE], None)?;
            }
        }
    }
    Ok(())
}

/// Serializes changes of the tables across state roots.
pub const HOST_LOCK: &str = "/run/lock/bulkhead-nft.lock";

/// Runs `nft ARGS` with `input` on stdin; its stdout.
fn nft(args: &[&str], input: Option<String>) -> Result<String> {
    let command = format!("nft {}", args.join(" "));
    let fail = |stderr: String| NetError::Command {
        command: command.clone(),
        stderr,
    };
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "{e} (bridge networks need nftables' nft command: apt-get install nftables)"
            ))
        })?;
    // Taken either way: the child's stdin closes when this drops.
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
