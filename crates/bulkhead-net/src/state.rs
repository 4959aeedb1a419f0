//! The network records: one JSON file per network under
//! `<state root>/networks/`, changed only under one lock file, written by
//! rename so a crash leaves the old or the new record, never half of one.
//! The addresses a network hands out are in its record, so an address is
//! never given twice, across restarts and crashes alike.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::addr::{Publish, Subnet, Subnet6};
use crate::error::{NetError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The IPv6 half of a dual-stack network (`--subnet` given twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Subnet6>,
    pub bridge: String,
    /// No egress: no masquerade, nothing forwarded out of the bridge.
    pub internal: bool,
    /// Containers on it may reach each other.
    pub allow_intra: bool,
    pub attachments: Vec<Attachment>,
}

/// One container on a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub container: String,
    pub ip: Ipv4Addr,
    /// The host end of its veth, a port of the bridge.
    pub veth: String,
    pub publish: Vec<Publish>,
    /// Containers of this network it may reach and be reached by on a
    /// network without --allow-intra (`sandbox --link`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

impl Network {
    /// A container's IPv6 address on a dual-stack network: the one at the
    /// offset of its IPv4 address.
    pub fn ip6_of(&self, ip: Ipv4Addr) -> Option<std::net::Ipv6Addr> {
        let s6 = self.subnet6?;
        Some(s6.at(u32::from(ip) - u32::from(self.subnet.addr)))
    }

    /// The linked pairs of containers that are both on the network, each
    /// once.
    pub fn linked_pairs(&self) -> Vec<(&Attachment, &Attachment)> {
        let mut pairs = Vec::new();
        for a in &self.attachments {
            for l in &a.links {
                if let Some(b) = self.attachments.iter().find(|b| &b.container == l)
                    && !pairs.iter().any(|(x, y): &(&Attachment, &Attachment)| {
                        x.container == b.container && y.container == a.container
                    })
                {
                    pairs.push((a, b));
                }
            }
        }
        pairs
    }

    /// Whether container `c`'s port has a linked peer on the network.
    pub fn is_linked(&self, c: &str) -> bool {
        self.linked_pairs()
            .iter()
            .any(|(a, b)| a.container == c || b.container == c)
    }

    /// The first address no container holds.
    pub fn free_address(&self) -> Result<Ipv4Addr> {
        self.subnet
            .hosts()
            .find(|ip| !self.attachments.iter().any(|a| a.ip == *ip))
            .ok_or_else(|| NetError::Exhausted {
                name: self.name.clone(),
                subnet: self.subnet.to_string(),
            })
    }
}

/// The networks of one state root.
#[derive(Debug, Clone)]
pub struct NetStore {
    pub dir: PathBuf,
}

/// Held while records and the kernel's configuration are changed.
pub struct Lock {
    _file: File,
}

/// Opens (creating it and its directory) and locks `path` exclusively,
/// blocking; unlocked when the file is closed.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| NetError::io(dir, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| NetError::io(path, e))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| NetError::io(path, e.into()))?;
    Ok(file)
}

impl NetStore {
    pub fn new(state_root: &Path) -> NetStore {
        NetStore {
            dir: state_root.join("networks"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Takes the store's lock (creating the directory), blocking until it
    /// is free: every change is a short read-modify-write.
    pub fn lock(&self) -> Result<Lock> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| NetError::io(&self.dir, e))?;
        Ok(Lock {
            _file: lock_file(&self.dir.join(".lock"))?,
        })
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    pub fn load(&self, name: &str) -> Result<Network> {
        let path = self.path(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetError::UnknownNetwork(name.to_string()));
            }
            Err(e) => return Err(NetError::io(&path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| NetError::State { path, source })
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<Network>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetError::io(&self.dir, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(String::from)
            })
            .collect();
        names.sort();
        names.iter().map(|n| self.load(n)).collect()
    }

    /// Writes a record atomically (call with the lock held).
    pub fn save(&self, _lock: &Lock, net: &Network) -> Result<()> {
        let path = self.path(&net.name);
        let tmp = self.dir.join(format!(".{}.json.tmp", net.name));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| NetError::io(&tmp, e))?;
        let bytes = serde_json::to_vec_pretty(net).map_err(|source| NetError::State {
            path: path.clone(),
            source,
        })?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| NetError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| NetError::io(&path, e))
    }

    pub fn remove(&self, _lock: &Lock, name: &str) -> Result<()> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetError::io(&path, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, subnet: &str) -> Network {
        let subnet: Subnet = subnet.parse().unwrap();
        Network {
            name: name.into(),
            gateway: subnet.gateway(),
            subnet6: None,
            subnet,
            bridge: format!("bh-{name}"),
            internal: false,
            allow_intra: false,
            attachments: vec![],
        }
    }

    #[test]
    fn allocation_survives_a_reload_and_frees_on_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetStore::new(dir.path());
        let lock = store.lock().unwrap();
        let mut n = net("a", "10.1.0.0/29");
        for i in 0..5 {
            let ip = n.free_address().unwrap();
            n.attachments.push(Attachment {
                container: format!("c{i}"),
                ip,
                veth: format!("v{i}"),
                publish: vec![],
                links: vec![],
            });
            store.save(&lock, &n).unwrap();
            // A new process sees the same record.
            n = NetStore::new(dir.path()).load("a").unwrap();
        }
        let ips: Vec<_> = n.attachments.iter().map(|a| a.ip.to_string()).collect();
        assert_eq!(
            ips,
            ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
        );
        assert!(matches!(n.free_address(), Err(NetError::Exhausted { .. })));
        n.attachments.retain(|a| a.container != "c1");
        store.save(&lock, &n).unwrap();
        let n = store.load("a").unwrap();
        assert_eq!(n.free_address().unwrap().to_string(), "10.1.0.3");
        assert_eq!(store.list().unwrap(), vec![n]);
        store.remove(&lock, "a").unwrap();
        assert!(matches!(store.load("a"), Err(NetError::UnknownNetwork(_))));
    }

    #[test]
    fn corrupt_record_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = NetStore::new(dir.path());
        drop(store.lock().unwrap());
        std::fs::write(store.dir.join("x.json"), "{").unwrap();
        let e = store.load("x").unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("corrupt"), "{e}");
    }
}
