//! Bridge networks for `bulkhead sandbox --network NAME`.
//!
//! A network is a record under `<state root>/networks/` ([`state`]), a
//! Linux bridge `bh-NAME` holding the gateway address, and its share of the
//! nftables policy ([`firewall`]). A container on it gets a veth pair (host
//! end a bridge port, `eth0` inside), the next free address of the subnet
//! and a default route through the gateway ([`link`]).
//!
//! Every change runs under the store's lock, writes the record before the
//! kernel is changed (so a crash leaves something [`gc`] or `rm` can find)
//! and undoes its own kernel changes when a later step fails.
#![forbid(unsafe_code)]

pub mod addr;
pub mod error;
pub mod firewall;
pub mod link;
pub mod netdev;
pub mod ports;
pub mod state;
pub mod usernet;

use std::net::Ipv4Addr;

pub use addr::{Proto, Publish, Subnet, Subnet6, validate_name};
pub use error::{NetError, Result};
pub use state::{Attachment, Lock, NetStore, Network};

/// `network create` options.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<Subnet>,
    /// Dual stack: the IPv6 network beside the IPv4 one.
    pub subnet6: Option<Subnet6>,
    pub internal: bool,
    pub allow_intra: bool,
}

pub fn bridge_name(network: &str) -> String {
    format!("bh-{network}")
}

/// The host end of a container's veth: short (15 bytes at most) and
/// derived from both names, so a leftover is found again.
pub fn veth_name(network: &str, container: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in network.bytes().chain([0]).chain(container.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("bhv{h:08x}")
}

/// Why a subnet cannot be used: another network's, or a route of this host.
fn overlap(subnet: Subnet, nets: &[Network]) -> Result<Option<String>> {
    if let Some(n) = nets.iter().find(|n| n.subnet.overlaps(subnet)) {
        return Ok(Some(format!("network {:?} ({})", n.name, n.subnet)));
    }
    let ours: Vec<&str> = nets.iter().map(|n| n.bridge.as_str()).collect();
    for (dst, dev) in link::routed_networks(&ours)? {
        let Some(routed) = Subnet::from_route(&dst) else {
            continue;
        };
        if routed.overlaps(subnet) {
            return Ok(Some(format!("the host's route to {dst} on {dev}")));
        }
    }
    Ok(None)
}

/// Why an IPv6 subnet cannot be used: another network's, or a route of
/// this host.
fn overlap6(subnet: Subnet6, nets: &[Network]) -> Result<Option<String>> {
    if let Some(n) = nets
        .iter()
        .find(|n| n.subnet6.is_some_and(|s| s.overlaps(subnet)))
    {
        let theirs = n.subnet6.map(|s| s.to_string()).unwrap_or_default();
        return Ok(Some(format!("network {:?} ({theirs})", n.name)));
    }
    let ours: Vec<&str> = nets.iter().map(|n| n.bridge.as_str()).collect();
    for (dst, dev) in link::routed_networks6(&ours)? {
        if Subnet6::from_route(&dst).is_some_and(|r| r.overlaps(subnet)) {
            return Ok(Some(format!("the host's route to {dst} on {dev}")));
        }
    }
    Ok(None)
}

/// Creates a network: record, bridge, policy. All or nothing.
pub fn create(store: &NetStore, req: &CreateRequest) -> Result<Network> {
    validate_name(&req.name)?;
    let lock = store.lock()?;
    if store.exists(&req.name) {
        return Err(NetError::Exists(req.name.clone()));
    }
    let bridge = bridge_name(&req.name);
    if link::exists(&bridge) {
        return Err(NetError::invalid(
            "network name",
            format!(
                "{:?}: an interface {bridge} already exists (from another state root, or left over: `ip link del {bridge}`)",
                req.name
            ),
        ));
    }
    let mut nets = store.list()?;
    let subnet = match req.subnet {
        Some(s) => {
            if let Some(with) = overlap(s, &nets)? {
                return Err(NetError::Overlap {
                    subnet: s.to_string(),
                    with,
                });
            }
            s
        }
        None => {
            let mut found = None;
            for n in 0..=255u8 {
                let s = Subnet {
                    addr: Ipv4Addr::new(10, 89, n, 0),
                    prefix: 24,
                };
                if overlap(s, &nets)?.is_none() {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or_else(|| {
                NetError::invalid("--subnet", "no free 10.89.N.0/24 network: pass one")
            })?
        }
    };
    if let Some(s6) = req.subnet6 {
        if !s6.fits(subnet) {
            return Err(NetError::invalid(
                "--subnet",
                format!("{s6} has fewer addresses than {subnet} (container addresses are paired)"),
            ));
        }
        if let Some(with) = overlap6(s6, &nets)? {
            return Err(NetError::Overlap {
                subnet: s6.to_string(),
                with,
            });
        }
    }
    let net = Network {
        name: req.name.clone(),
        subnet,
        gateway: subnet.gateway(),
        subnet6: req.subnet6,
        bridge: bridge.clone(),
        internal: req.internal,
        allow_intra: req.allow_intra,
        attachments: Vec::new(),
    };
    store.save(&lock, &net)?;
    nets.push(net.clone());
    let configured = bring_up(&net, &nets);
    if let Err(e) = configured {
        let _ = link::delete(&bridge);
        let _ = store.remove(&lock, &net.name);
        nets.pop();
        let _ = firewall::apply(&nets, &[&bridge]);
        return Err(e);
    }
    Ok(net)
}

/// The bridge and the policy of `net` (one of `nets`), and the sysctls.
fn bring_up(net: &Network, nets: &[Network]) -> Result<()> {
    link::create_bridge(&net.bridge, net.gateway, net.subnet.prefix)?;
    if let Some(s6) = net.subnet6 {
        link::add_address6(&net.bridge, s6.gateway(), s6.prefix)?;
        link::sysctl("net.ipv6.conf.all.forwarding", "1")?;
    }
    // The guard rule is in place before route_localnet is turned on.
    firewall::apply(nets, &[])?;
    link::sysctl(&format!("net.ipv4.conf.{}.route_localnet", net.bridge), "1")?;
    link::sysctl("net.ipv4.ip_forward", "1")
}

/// Drops the attachments of containers that no longer exist (a crash, or
/// a delete by a runtime that does not know about networks); true if any.
pub fn gc(store: &NetStore, lock: &Lock, alive: &dyn Fn(&str) -> bool) -> Result<bool> {
    let mut changed = false;
    for mut n in store.list()? {
        let (gone, kept): (Vec<_>, Vec<_>) =
            n.attachments.drain(..).partition(|a| !alive(&a.container));
        n.attachments = kept;
        if !gone.is_empty() {
            for k in &mut n.attachments {
                k.links.retain(|l| !gone.iter().any(|g| &g.container == l));
            }
            for a in &gone {
                tracing::info!(
                    "network {}: releasing {} of removed container {}",
                    n.name,
                    a.ip,
                    a.container
                );
                link::delete(&a.veth)?;
            }
            store.save(lock, &n)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Every network, after dropping stale attachments.
pub fn list(store: &NetStore, alive: &dyn Fn(&str) -> bool) -> Result<Vec<Network>> {
    let lock = store.lock()?;
    if gc(store, &lock, alive)? {
        firewall::apply(&store.list()?, &[])?;
    }
    store.list()
}

/// Removes a network that no container uses.
pub fn remove(store: &NetStore, name: &str, alive: &dyn Fn(&str) -> bool) -> Result<()> {
    let lock = store.lock()?;
    let stale = gc(store, &lock, alive)?;
    let net = store.load(name)?;
    if !net.attachments.is_empty() {
        if stale {
            firewall::apply(&store.list()?, &[])?;
        }
        let containers: Vec<&str> = net
            .attachments
            .iter()
            .map(|a| a.container.as_str())
            .collect();
        return Err(NetError::InUse {
            name: name.to_string(),
            containers: containers.join(", "),
        });
    }
    link::delete(&net.bridge)?;
    store.remove(&lock, name)?;
    firewall::apply(&store.list()?, &[&net.bridge])
}

/// Fails if a publication is taken (by another container or twice in
/// `publish`).
fn check_publish(nets: &[Network], publish: &[Publish]) -> Result<()> {
    for (i, p) in publish.iter().enumerate() {
        if let Some(q) = publish[..i].iter().find(|q| q.clashes(p)) {
            return Err(NetError::PortInUse {
                spec: p.to_string(),
                reason: format!("given twice (clashes with -p {q})"),
            });
        }
        for n in nets {
            for a in &n.attachments {
                if let Some(q) = a.publish.iter().find(|q| q.clashes(p)) {
                    return Err(NetError::PortInUse {
                        spec: p.to_string(),
                        reason: format!(
                            "already published by container {:?} on network {:?} (-p {q})",
                            a.container, n.name
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The checks of [`attach`] that need no container, for failing before
/// `container` (a name not in use) is created: the network exists and the
/// ports are free. Records under that name are leftovers [`attach`] drops.
pub fn precheck(
    store: &NetStore,
    network: &str,
    container: &str,
    publish: &[Publish],
    links: &[String],
) -> Result<Network> {
    validate_name(network)?;
    let net = store.load(network)?;
    check_links(&net, container, links)?;
    let mut nets = store.list()?;
    for n in &mut nets {
        n.attachments.retain(|a| a.container != container);
    }
    check_publish(&nets, publish)?;
    // DNAT takes a port from under a host process listening on it:
    // refused while it listens.
    ports::check_free(publish)?;
    Ok(net)
}

/// `--link` targets: other containers on the network, each once.
fn check_links(net: &Network, container: &str, links: &[String]) -> Result<()> {
    for (i, l) in links.iter().enumerate() {
        let reason = if l == container {
            "a container cannot be linked to itself".to_string()
        } else if links[..i].contains(l) {
            "given twice".to_string()
        } else if !net.attachments.iter().any(|a| &a.container == l) {
            format!("no container of that name is on network {:?}", net.name)
        } else {
            continue;
        };
        return Err(NetError::invalid("--link", format!("{l:?}: {reason}")));
    }
    Ok(())
}

/// Port isolation as the links want it: off for the ports of linked
/// containers (the bridge table keeps them to their peers), on for the
/// others. Only ports whose flag differs are changed.
fn sync_isolation(net: &Network) -> Result<()> {
    if net.allow_intra || !link::exists(&net.bridge) {
        return Ok(());
    }
    let ports = link::port_isolation(&net.bridge)?;
    for a in &net.attachments {
        let want = !net.is_linked(&a.container);
        if ports.iter().any(|(p, on)| *p == a.veth && *on != want) {
            link::set_isolated(&a.veth, want)?;
        }
    }
    Ok(())
}

/// One container to put on a network.
pub struct AttachRequest<'a> {
    pub network: &'a str,
    pub container: &'a str,
    /// A process in the container's network namespace.
    pub pid: i32,
    pub publish: Vec<Publish>,
    /// `--link`: containers on the network it may talk to.
    pub links: Vec<String>,
}

/// Puts a container on a network: address, veth, route, policy. On
/// failure, nothing of it is left.
pub fn attach(
    store: &NetStore,
    req: &AttachRequest,
    alive: &dyn Fn(&str) -> bool,
) -> Result<(Network, Attachment)> {
    let lock = store.lock()?;
    gc(store, &lock, alive)?;
    let mut net = store.load(req.network)?;
    // A container is attached once, right after its creation: a record with
    // its name is a leftover of an earlier container of that name whose
    // release was missed (deleted by another runtime, or a crash).
    net.attachments.retain(|a| {
        let stale = a.container == req.container;
        if stale {
            tracing::info!(
                "network {}: dropping the leftover record of {} ({})",
                req.network,
                a.container,
                a.ip
            );
        }
        !stale
    });
    store.save(&lock, &net)?;
    check_publish(&store.list()?, &req.publish)?;
    check_links(&net, req.container, &req.links)?;
    // A record that outlived its bridge (a state root on disk, a reboot).
    if !link::exists(&net.bridge) {
        tracing::info!("network {}: recreating bridge {}", net.name, net.bridge);
        bring_up(&net, &store.list()?)?;
    }
    let a = Attachment {
        container: req.container.to_string(),
        ip: net.free_address()?,
        veth: veth_name(req.network, req.container),
        publish: req.publish.clone(),
        links: req.links.clone(),
    };
    // A leftover of the same name (a crash between creating the link and
    // recording it cannot happen, but a reused container name can).
    link::delete(&a.veth)?;
    net.attachments.push(a.clone());
    store.save(&lock, &net)?;
    bulkhead_sys::fault::point("net.recorded");
    let configured = link::attach(&link::VethPlan {
        veth: &a.veth,
        bridge: &net.bridge,
        pid: req.pid,
        ip: a.ip,
        prefix: net.subnet.prefix,
        gateway: net.gateway,
        isolated: !net.allow_intra,
        hairpin: !a.publish.is_empty(),
        ip6: net
            .subnet6
            .and_then(|s6| Some((net.ip6_of(a.ip)?, s6.prefix, s6.gateway()))),
    })
    .and_then(|_| {
        bulkhead_sys::fault::point("net.linked");
        firewall::apply(&store.list()?, &[])
    })
    // After the rules that keep linked ports to their peers.
    .and_then(|_| sync_isolation(&net));
    if let Err(e) = configured {
        let _ = link::delete(&a.veth);
        net.attachments.retain(|x| x.container != req.container);
        let _ = store.save(&lock, &net);
        if let Ok(nets) = store.list() {
            let _ = firewall::apply(&nets, &[]);
        }
        let _ = sync_isolation(&net);
        return Err(e);
    }
    Ok((net, a))
}

/// Releases everything a container holds on every network (address, veth,
/// published ports, links); its peers (see [`peers`]: linked ones get
/// their ports' isolation back). Idempotent.
pub fn detach(store: &NetStore, container: &str) -> Result<Vec<String>> {
    if !store.dir.exists() {
        return Ok(Vec::new());
    }
    let lock = store.lock()?;
    let mut changed = Vec::new();
    let mut peers = Vec::new();
    for mut n in store.list()? {
        let Some(pos) = n.attachments.iter().position(|a| a.container == container) else {
            continue;
        };
        peers.extend(peers_of(&n, container));
        let a = n.attachments.remove(pos);
        for other in &mut n.attachments {
            other.links.retain(|l| l != container);
        }
        link::delete(&a.veth)?;
        store.save(&lock, &n)?;
        changed.push(n);
    }
    if !changed.is_empty() {
        firewall::apply(&store.list()?, &[])?;
        if !peers.is_empty() {
            for n in &changed {
                sync_isolation(n)?;
            }
        }
    }
    Ok(peers)
}

fn peers_of(net: &Network, container: &str) -> Vec<String> {
    peers(net, container)
        .into_iter()
        .map(|p| p.container.clone())
        .collect()
}

/// The containers of `net` that `container` may reach by name: its linked
/// peers, or every other one on an `--allow-intra` network.
pub fn peers<'a>(net: &'a Network, container: &str) -> Vec<&'a Attachment> {
    net.attachments
        .iter()
        .filter(|p| p.container != container)
        .filter(|p| {
            net.allow_intra
                || net.linked_pairs().iter().any(|(x, y)| {
                    (x.container == container && y.container == p.container)
                        || (y.container == container && x.container == p.container)
                })
        })
        .collect()
}

/// `/etc/hosts` for a container.
pub fn hosts_file(ip: Ipv4Addr, ip6: Option<std::net::Ipv6Addr>, names: &[&str]) -> String {
    let mut s = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{}\n",
        names.join(" ")
    );
    if let Some(ip6) = ip6 {
        s.push_str(&format!("{ip6}\t{}\n", names.join(" ")));
    }
    s
}

/// `/etc/resolv.conf` for a container: the host's, without loopback
/// nameservers (a resolver on the host's 127.0.0.1 is out of reach, by
/// design); none at all on an internal network.
pub fn resolv_conf(host: &str, internal: bool) -> String {
    let mut out = String::from("# generated by bulkhead\n");
    if internal {
        out.push_str("# internal network: no nameserver\n");
        return out;
    }
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(ip)) => {
                let local = ip
                    .parse::<std::net::IpAddr>()
                    .map(|a| a.is_loopback())
                    .unwrap_or(true);
                if !local {
                    out.push_str(&format!("nameserver {ip}\n"));
                }
            }
            (Some("search" | "domain" | "options"), Some(_)) => {
                out.push_str(line.trim());
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interfaces() {
        assert_eq!(bridge_name("twelve-chars").len(), 15);
        let v = veth_name("net", "a-long-container-name-of-many-characters");
        assert_eq!(v.len(), 11);
        assert_eq!(
            v,
            veth_name("net", "a-long-container-name-of-many-characters")
        );
        assert_ne!(
            v,
            veth_name("net2", "a-long-container-name-of-many-characters")
        );
    }

    #[test]
    fn gc_releases_addresses_of_vanished_containers() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetStore::new(dir.path());
        let lock = store.lock().unwrap();
        let subnet: Subnet = "10.3.0.0/24".parse().unwrap();
        let mut n = Network {
            name: "n".into(),
            subnet,
            gateway: subnet.gateway(),
            subnet6: None,
            bridge: "bh-n".into(),
            internal: false,
            allow_intra: false,
            attachments: vec![],
        };
        for c in ["kept", "gone"] {
            n.attachments.push(Attachment {
                container: c.into(),
                ip: n.free_address().unwrap(),
                // No such link: gc only reads the link table here.
                veth: veth_name("n", c),
                publish: vec![],
                links: vec![],
            });
        }
        store.save(&lock, &n).unwrap();
        assert!(gc(&store, &lock, &|c| c == "kept").unwrap());
        let after = store.load("n").unwrap();
        assert_eq!(after.attachments.len(), 1);
        assert_eq!(after.attachments[0].container, "kept");
        assert!(!gc(&store, &lock, &|c| c == "kept").unwrap());
        assert_eq!(after.free_address().unwrap().to_string(), "10.3.0.3");
    }

    #[test]
    fn resolv_drops_loopback() {
        let host =
            "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch example.org\nnameserver ::1\n";
        let r = resolv_conf(host, false);
        assert!(r.contains("nameserver 192.0.2.53\n"), "{r}");
        assert!(r.contains("search example.org\n"), "{r}");
        assert!(!r.contains("127.0.0.53") && !r.contains("::1"), "{r}");
        assert!(!resolv_conf(host, true).contains("nameserver "));
    }

    #[test]
    fn publication_clashes_are_refused() {
        let mut n = Network {
            name: "n".into(),
            subnet: "10.2.0.0/24".parse().unwrap(),
            gateway: "10.2.0.1".parse().unwrap(),
            subnet6: None,
            bridge: "bh-n".into(),
            internal: false,
            allow_intra: false,
            attachments: vec![],
        };
        n.attachments.push(Attachment {
            container: "web".into(),
            ip: "10.2.0.2".parse().unwrap(),
            veth: "v".into(),
            publish: vec!["8080:80".parse().unwrap()],
            links: vec![],
        });
        let e = check_publish(&[n.clone()], &["127.0.0.1:8080:81".parse().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("already published by container \"web\""), "{e}");
        check_publish(&[n], &["8081:80".parse().unwrap()]).unwrap();
        let twice: Vec<Publish> = vec!["9000:1".parse().unwrap(), "9000:2".parse().unwrap()];
        assert!(
            check_publish(&[], &twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
