//! The nftables policy: tables `inet bulkhead` and `bridge bulkhead`, both
//! bulkhead's own, rebuilt as a whole from the network records after every
//! change and loaded in one `nft -j -f -` transaction, so the kernel holds
//! either the old or the new policy and never a mix. No other table is read
//! or touched. With no networks left, both tables are gone.
//!
//! Per network (bridge B, subnet S, gateway G):
//! - `guard` (prerouting, raw): from B, nothing for 127.0.0.0/8. B has
//!   `route_localnet=1` so that ports published on 127.0.0.1 work; without
//!   this rule a container could route to the host's loopback services
//!   (the CVE-2020-8558 pattern).
//! - `input`: from B only replies reach the host (no host address, no host
//!   service, unless published).
//! - `forward`: into B only replies and published (DNAT-ed) connections;
//!   out of B anything (or nothing, `--internal`). Frames between two ports
//!   of B also pass here through br_netfilter (iif = oif = B): they are
//!   left to the L2 policy below and to bridge port isolation.
//! - `bridge bulkhead forward`: without `--allow-intra`, IPv4 from S to S
//!   between ports is dropped (on top of the ports' `isolated` flag).
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

/// The whole batch for these networks.
pub fn ruleset(nets: &[Network]) -> Value {
    // add + delete: removes our tables whether or not they exist.
    let mut cmds = vec![
        json!({"add": table("inet")}),
        json!({"delete": table("inet")}),
        json!({"add": table("bridge")}),
        json!({"delete": table("bridge")}),
    ];
    if nets.is_empty() {
        return json!({ "nftables": cmds });
    }
    let (i, b) = ("inet", "bridge");
    cmds.push(json!({"add": table(i)}));
    cmds.push(chain(i, "guard", "filter", "prerouting", -300));
    cmds.push(chain(i, "input", "filter", "input", 0));
    cmds.push(chain(i, "forward", "filter", "forward", 0));
    cmds.push(chain(i, "nat_prerouting", "nat", "prerouting", -100));
    cmds.push(chain(i, "nat_output", "nat", "output", -100));
    cmds.push(chain(i, "nat_postrouting", "nat", "postrouting", 100));
    cmds.push(json!({"add": table(b)}));
    cmds.push(chain(b, "forward", "filter", "forward", 0));

    let iif = |n: &Network| eq(meta("iifname"), json!(n.bridge));
    let oif = |n: &Network| eq(meta("oifname"), json!(n.bridge));
    for n in nets {
        let subnet = prefix(&n.subnet.addr.to_string(), n.subnet.prefix);
        cmds.push(rule(
            i,
            "guard",
            vec![
                iif(n),
                eq(payload("ip", "daddr"), prefix("127.0.0.0", 8)),
                verdict("drop"),
            ],
        ));
        cmds.push(rule(i, "input", vec![iif(n), replies(), verdict("accept")]));
        cmds.push(rule(i, "input", vec![iif(n), verdict("drop")]));

        cmds.push(rule(i, "forward", vec![iif(n), oif(n), verdict("accept")]));
        cmds.push(rule(
            i,
            "forward",
            vec![oif(n), replies(), verdict("accept")],
        ));
        cmds.push(rule(
            i,
            "forward",
            vec![
                oif(n),
                json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
                verdict("accept"),
            ],
        ));
        cmds.push(rule(i, "forward", vec![oif(n), verdict("drop")]));
        if n.internal {
            cmds.push(rule(i, "forward", vec![iif(n), verdict("drop")]));
        } else {
            cmds.push(rule(
                i,
                "nat_postrouting",
                vec![
                    eq(payload("ip", "saddr"), subnet.clone()),
                    ne(meta("oifname"), json!(n.bridge)),
                    json!({"masquerade": null}),
                ],
            ));
        }
        cmds.push(rule(
            i,
            "nat_postrouting",
            vec![
                eq(payload("ip", "saddr"), prefix("127.0.0.0", 8)),
                oif(n),
                json!({"masquerade": null}),
            ],
        ));
        if !n.allow_intra {
            cmds.push(rule(
                b,
                "forward",
                vec![
                    eq(payload("ether", "type"), json!("ip")),
                    eq(payload("ip", "saddr"), subnet.clone()),
                    eq(payload("ip", "daddr"), subnet.clone()),
                    verdict("drop"),
                ],
            ));
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
                cmds.push(rule(i, "nat_prerouting", expr.clone()));
                cmds.push(rule(i, "nat_output", expr));
            }
        }
    }
    json!({ "nftables": cmds })
}

/// Loads the policy for `nets` (all networks of the store) in one
/// transaction.
pub fn apply(nets: &[Network]) -> Result<()> {
    let batch = ruleset(nets).to_string();
    let command = "nft -j -f -".to_string();
    let fail = |stderr: String| NetError::Command {
        command: command.clone(),
        stderr,
    };
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(format!(
                "{e} (bridge networks need nftables' nft command: apt-get install nftables)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}
