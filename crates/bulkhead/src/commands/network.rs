//! `bulkhead network create|ls|inspect|rm`, the network half of `bulkhead
//! sandbox --network NAME -p …`, and the release of a container's network
//! resources when it is deleted.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bulkhead_lifecycle::{LifecycleError, Store};
use bulkhead_net::usernet::{self, Backend};
use bulkhead_net::{NetStore, Network, Publish};

#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a bridge network.
    Create {
        /// IPv4 subnet, e.g. 10.89.5.0/24 (default: the first free
        /// 10.89.N.0/24); given a second time with an IPv6 one (e.g.
        /// fd00:89:5::/64), the network is dual-stack.
        #[arg(long)]
        subnet: Vec<String>,
        /// No egress: containers reach only each other (if allowed) and
        /// published ports reach them.
        #[arg(long)]
        internal: bool,
        /// Let containers on this network reach each other (denied by default).
        #[arg(long)]
        allow_intra: bool,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Names only.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Print networks (with their containers and addresses) as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks no container uses.
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

fn net_store(store: &Store) -> NetStore {
    NetStore::new(&store.root)
}

/// Whether a container still exists; only a definite "no such container"
/// lets its addresses go.
fn alive(store: &Store) -> impl Fn(&str) -> bool + '_ {
    |id| !matches!(store.load(id), Err(LifecycleError::NotExist(_)))
}

pub fn dispatch(store: &Store, cmd: &NetworkCmd) -> Result<()> {
    if matches!(cmd, NetworkCmd::Create { .. } | NetworkCmd::Rm { .. })
        && !rustix::process::geteuid().is_root()
    {
        bail!(
            "network: bridge networks need root (a rootless sandbox has --network pasta: docs/network.md)"
        );
    }
    let ns = net_store(store);
    match cmd {
        NetworkCmd::Create {
            subnet,
            internal,
            allow_intra,
            name,
        } => {
            let (mut v4, mut v6) = (None, None);
            for s in subnet {
                if s.contains(':') {
                    if v6.replace(s.parse::<bulkhead_net::Subnet6>()?).is_some() {
                        bail!("--subnet {s}: a network has at most one IPv6 subnet");
                    }
                } else if v4.replace(s.parse::<bulkhead_net::Subnet>()?).is_some() {
                    bail!("--subnet {s}: a network has at most one IPv4 subnet");
                }
            }
            let req = bulkhead_net::CreateRequest {
                name: name.clone(),
                subnet: v4,
                subnet6: v6,
                internal: *internal,
                allow_intra: *allow_intra,
            };
            let n = bulkhead_net::create(&ns, &req)
                .with_context(|| format!("network create {name}"))?;
            outln!("{}", n.name)?;
        }
        NetworkCmd::Ls { quiet } => {
            let nets = bulkhead_net::list(&ns, &alive(store))?;
            let mut out = std::io::stdout().lock();
            if *quiet {
                for n in &nets {
                    writeln!(out, "{}", n.name)?;
                }
            } else {
                writeln!(
                    out,
                    "{:<12}  {:<18}  {:<15}  {:<8}  {:<5}  CONTAINERS",
                    "NAME", "SUBNET", "BRIDGE", "INTERNAL", "INTRA"
                )?;
                for n in &nets {
                    // A dual-stack network shows both, IPv4 first.
                    let subnet = match n.subnet6 {
                        Some(s6) => format!("{},{s6}", n.subnet),
                        None => n.subnet.to_string(),
                    };
                    writeln!(
                        out,
                        "{:<12}  {:<18}  {:<15}  {:<8}  {:<5}  {}",
                        n.name,
                        subnet,
                        n.bridge,
                        n.internal,
                        n.allow_intra,
                        n.attachments.len()
                    )?;
                }
            }
        }
        NetworkCmd::Inspect { names } => {
            let nets = bulkhead_net::list(&ns, &alive(store))?;
            let mut found = Vec::new();
            for name in names {
                match nets.iter().find(|n| &n.name == name) {
                    Some(n) => found.push(n),
                    None => bail!(
                        "network inspect: {}",
                        bulkhead_net::NetError::UnknownNetwork(name.clone())
                    ),
                }
            }
            outln!("{}", serde_json::to_string_pretty(&found)?)?;
        }
        NetworkCmd::Rm { names } => {
            for name in names {
                bulkhead_net::remove(&ns, name, &alive(store))
                    .with_context(|| format!("network rm {name}"))?;
            }
        }
    }
    Ok(())
}

/// Releases a deleted container's addresses, veths and published ports.
pub fn release(store: &Store, id: &str) -> Result<()> {
    let ns = net_store(store);
    let peers = bulkhead_net::detach(&ns, id)
        .with_context(|| format!("release the network resources of {id}"))?;
    // The peers' /etc/hosts lose its line (in place: bind-mounted).
    if !peers.is_empty()
        && let Ok(base) = super::sandbox::sandbox_base(store)
    {
        let _lock = ns.lock()?;
        let mark = peer_mark(id);
        for p in peers {
            let theirs = base.join(&p).join("hosts");
            if let Ok(text) = std::fs::read_to_string(&theirs) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.ends_with(&mark))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = std::fs::write(&theirs, kept);
            }
        }
    }
    usernet::stop(&store.root, id)
        .with_context(|| format!("stop the user-mode network helper of {id}"))?;
    Ok(())
}

/// A sandbox's bridge network, checked before anything is created.
pub struct SandboxNet {
    pub network: Network,
    pub publish: Vec<Publish>,
    links: Vec<Link>,
    hosts: PathBuf,
    resolv: PathBuf,
}

/// `--link NAME[:ALIAS]`.
#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub alias: Option<String>,
}

impl std::str::FromStr for Link {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Link> {
        let (name, alias) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        bulkhead_spec::id::validate(name).map_err(|e| anyhow::anyhow!("--link {s:?}: {e}"))?;
        if let Some(a) = alias {
            // A host name: it goes into /etc/hosts.
            let ok = !a.is_empty()
                && a.len() <= 63
                && !a.starts_with('-')
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                bail!("--link {s:?}: alias {a:?} is not a host name (letters, digits, '-', '.')");
            }
        }
        Ok(Link {
            name: name.to_string(),
            alias: alias.map(str::to_string),
        })
    }
}

/// A bridge network to put a sandbox on.
pub struct BridgePlan {
    network: String,
    publish: Vec<Publish>,
    links: Vec<Link>,
}

/// The mark ending the /etc/hosts line a container gets in its peers'
/// files (linked containers, neighbours on an --allow-intra network), so
/// that it goes again with the container.
fn peer_mark(id: &str) -> String {
    format!("# bulkhead peer {id}")
}

/// What `--network` asks of the CLI beyond the spec's own namespace.
pub enum Plan {
    /// A bridge network (root).
    Bridge(BridgePlan),
    /// User-mode networking (rootless): pasta or slirp4netns.
    User(UserNet),
}

/// `--network NAME|pasta|slirp4netns` (not none/host) and `-p`: None for
/// none/host. Everything is checked before anything is created.
pub fn for_sandbox(
    store: &Store,
    network: &str,
    container: &str,
    publish: &[String],
    links: &[String],
) -> Result<Option<Plan>> {
    let links: Vec<Link> = links.iter().map(|l| l.parse()).collect::<Result<_>>()?;
    let bridge = !matches!(network, "none" | "host" | "pasta" | "slirp4netns");
    if let (Some(l), false) = (links.first(), bridge) {
        bail!(
            "--link {}: links are between containers of one bridge network (--network NAME)",
            l.name
        );
    }
    if matches!(network, "none" | "host") {
        if let Some(p) = publish.first() {
            bail!(
                "-p {p}: publishing needs a network (--network NAME, see `bulkhead network create`; \
                 rootless: --network pasta)"
            );
        }
        return Ok(None);
    }
    let publish: Vec<Publish> = publish
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, _>>()?;
    if let Ok(backend) = network.parse::<Backend>() {
        if !store.rootless {
            bail!(
                "--network {network}: user-mode networking is for rootless sandboxes; as root, \
                 use a bridge network (`bulkhead network create NAME`, --network NAME)"
            );
        }
        let (backend, program) = usernet::choose(Some(backend)).or_else(|e| match backend {
            // pasta is the default: slirp4netns stands in where it is missing.
            Backend::Pasta => usernet::choose(None),
            _ => Err(e),
        })?;
        usernet::precheck(backend, &publish)?;
        return Ok(Some(Plan::User(UserNet {
            backend,
            program,
            publish,
        })));
    }
    let names: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
    bulkhead_net::precheck(&net_store(store), network, container, &publish, &names)
        .map_err(|e| anyhow::anyhow!("--network {network}: {e}"))?;
    Ok(Some(Plan::Bridge(BridgePlan {
        network: network.to_string(),
        publish,
        links,
    })))
}

/// A rootless sandbox's pasta or slirp4netns.
pub struct UserNet {
    pub backend: Backend,
    program: PathBuf,
    publish: Vec<Publish>,
}

impl UserNet {
    /// The sandbox's `/etc/hosts` (loopback names) and `/etc/resolv.conf`
    /// (the host's nameservers but loopback ones, which the sandbox cannot
    /// reach by design), as read-only volumes from its directory.
    pub fn prepare(
        &self,
        dir: &Path,
        hostname: &str,
    ) -> Result<Vec<bulkhead_spec::sandbox::Volume>> {
        let hosts = dir.join("hosts");
        let resolv = dir.join("resolv.conf");
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let files = [
            (
                &hosts,
                format!(
                    "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                ),
                "/etc/hosts",
            ),
            (
                &resolv,
                bulkhead_net::resolv_conf(&host, false),
                "/etc/resolv.conf",
            ),
        ];
        let mut volumes = Vec::new();
        for (path, text, dest) in files {
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
            volumes.push(bulkhead_spec::sandbox::Volume {
                source: path.clone(),
                destination: PathBuf::from(dest),
                readonly: true,
            });
        }
        Ok(volumes)
    }

    /// Starts the helper for the created (not yet started) container `id`
    /// whose init is `pid`.
    pub fn attach(&self, store: &Store, id: &str, pid: i32) -> Result<()> {
        let req = usernet::Request {
            backend: self.backend,
            program: &self.program,
            pid,
            publish: &self.publish,
            state_root: &store.root,
            container: id,
        };
        usernet::start(&req).with_context(|| format!("--network {}", self.backend))
    }
}

impl SandboxNet {
    /// Creates the sandbox's `/etc/hosts` and `/etc/resolv.conf` files in
    /// its directory (filled in once its address is known) and returns the
    /// read-only volumes that put them in place.
    pub fn prepare(
        store: &Store,
        plan: BridgePlan,
        dir: &Path,
    ) -> Result<(SandboxNet, Vec<bulkhead_spec::sandbox::Volume>)> {
        let network = net_store(store).load(&plan.network)?;
        let hosts = dir.join("hosts");
        let resolv = dir.join("resolv.conf");
        let mut volumes = Vec::new();
        for (path, dest) in [(&hosts, "/etc/hosts"), (&resolv, "/etc/resolv.conf")] {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(path)
                .with_context(|| format!("create {}", path.display()))?;
            volumes.push(bulkhead_spec::sandbox::Volume {
                source: path.clone(),
                destination: PathBuf::from(dest),
                readonly: true,
            });
        }
        Ok((
            SandboxNet {
                network,
                publish: plan.publish,
                links: plan.links,
                hosts,
                resolv,
            },
            volumes,
        ))
    }

    /// Puts the created (not yet started) container `id`, whose init is
    /// `pid`, on the network and writes its hosts and resolv.conf.
    pub fn attach(&self, store: &Store, id: &str, hostname: &str, pid: i32) -> Result<()> {
        let req = bulkhead_net::AttachRequest {
            network: &self.network.name,
            container: id,
            pid,
            publish: self.publish.clone(),
            links: self.links.iter().map(|l| l.name.clone()).collect(),
        };
        let (net, a) = bulkhead_net::attach(&net_store(store), &req, &alive(store))
            .with_context(|| format!("--network {}", self.network.name))?;
        let mut names = vec![hostname];
        if id != hostname {
            names.push(id);
        }
        let mut hosts = bulkhead_net::hosts_file(a.ip, net.ip6_of(a.ip), &names);
        // Under the store's lock: the peers' files are read and rewritten
        // by every attach and release of the network.
        let ns = net_store(store);
        let _lock = ns.lock()?;
        let net = ns.load(&net.name)?;
        let base = super::sandbox::sandbox_base(store)?;
        let mark = peer_mark(id);
        for peer in bulkhead_net::peers(&net, id) {
            let alias = self
                .links
                .iter()
                .find(|l| l.name == peer.container)
                .and_then(|l| l.alias.as_deref())
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            hosts.push_str(&format!("{}\t{}{alias}\n", peer.ip, peer.container));
            if let Some(ip6) = net.ip6_of(peer.ip) {
                hosts.push_str(&format!("{ip6}\t{}{alias}\n", peer.container));
            }
            // The peer learns the new container's name too.
            let theirs = base.join(&peer.container).join("hosts");
            if let Ok(text) = std::fs::read_to_string(&theirs)
                && !text.lines().any(|l| l.ends_with(&mark))
            {
                let mut line = format!("{}\t{id}\t{mark}\n", a.ip);
                if let Some(ip6) = net.ip6_of(a.ip) {
                    line.push_str(&format!("{ip6}\t{id}\t{mark}\n"));
                }
                std::fs::write(&theirs, text + &line)
                    .with_context(|| format!("write {}", theirs.display()))?;
            }
        }
        // In place: the container's bind mounts hold these inodes.
        std::fs::write(&self.hosts, hosts)
            .with_context(|| format!("write {}", self.hosts.display()))?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        std::fs::write(&self.resolv, bulkhead_net::resolv_conf(&host, net.internal))
            .with_context(|| format!("write {}", self.resolv.display()))?;
        Ok(())
    }
}
