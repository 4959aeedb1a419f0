//! `linux.netDevices`: moving host interfaces into a container's network
//! namespace, over rtnetlink.
//!
//! Unlike the sandbox's bridges (which use `ip`, see [`crate::link`]), this
//! runs on every `create` that asks for it, inside the runtime: a netlink
//! socket per namespace avoids a process per step and gives errno values to
//! tell "no such device" from "name taken". The socket for the container's
//! namespace is opened by a short-lived thread that `setns`es there first
//! (a socket stays in the namespace it was made in), so no process of ours
//! and no thread that goes on running ever changes namespace.
//!
//! What runtime-spec 1.2 asks, and how: the runtime checks that the move
//! can happen (the device exists on the host; no device of that name in the
//! container), moves and renames it in one message, re-adds its permanent
//! global-scope addresses (the kernel flushes addresses on a move) and sets
//! it up. It does not move devices back: when the namespace goes away the
//! kernel returns physical devices to the host and destroys virtual ones.

use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A failed move, naming the `linux.netDevices` entry.
#[derive(Debug, thiserror::Error)]
pub enum NetDevError {
    #[error("linux.netDevices.{host}: no network interface {host:?} on the host")]
    NoSuchDevice { host: String },
    #[error(
        "linux.netDevices.{host}.name: the container's network namespace already has an \
         interface named {name:?}"
    )]
    NameTaken { host: String, name: String },
    #[error(
        "linux.netDevices: the container's network namespace is the host's; devices can only \
         move into a namespace of the container's own"
    )]
    HostNamespace,
    #[error("linux.netDevices.{host}: {step}: {source}")]
    Netlink {
        host: String,
        step: &'static str,
        source: std::io::Error,
    },
}

/// One device to move: its name on the host and the name it gets inside.
#[derive(Debug, Clone)]
pub struct Move {
    pub host: String,
    pub name: String,
}

/// Moves every device into the network namespace `netns`; returns the names
/// they have there (a `%d` template resolved). Every device is checked
/// before the first one moves, so a bad entry leaves the host unchanged.
pub fn move_into(netns: BorrowedFd<'_>, moves: &[Move]) -> Result<Vec<String>, NetDevError> {
    let err = |host: &str, step: &'static str| {
        let host = host.to_string();
        move |source| NetDevError::Netlink { host, step, source }
    };
    let first = moves.first().map(|m| m.host.as_str()).unwrap_or_default();
    if same_namespace(netns).map_err(err(first, "compare network namespaces"))? {
        return Err(NetDevError::HostNamespace);
    }
    let mut host = Rtnl::here().map_err(err(first, "open a netlink socket"))?;
    let mut inside = Rtnl::in_namespace(netns).map_err(err(first, "open a netlink socket"))?;

    let mut found = Vec::new();
    for m in moves {
        let link = host
            .link_by_name(&m.host)
            .map_err(err(&m.host, "look the device up"))?
            .ok_or_else(|| NetDevError::NoSuchDevice {
                host: m.host.clone(),
            })?;
        if !m.name.contains('%')
            && inside
                .link_by_name(&m.name)
                .map_err(err(&m.host, "look the name up in the container"))?
                .is_some()
        {
            return Err(NetDevError::NameTaken {
                host: m.host.clone(),
                name: m.name.clone(),
            });
        }
        found.push(link.header.index);
    }

    let mut names = Vec::new();
    for (m, index) in moves.iter().zip(found) {
        let addrs = host
            .kept_addresses(index)
            .map_err(err(&m.host, "read its addresses"))?;
        host.move_link(index, netns, &m.name).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                NetDevError::NameTaken {
                    host: m.host.clone(),
                    name: m.name.clone(),
                }
            } else {
                err(&m.host, "move it into the container")(e)
            }
        })?;
        // The kernel keeps the index unless the namespace has it taken.
        let link = if m.name.contains('%') {
            inside.link_by_index(index)
        } else {
            inside.link_by_name(&m.name)
        }
        .map_err(err(&m.host, "find it in the container"))?
        .ok_or_else(|| NetDevError::Netlink {
            host: m.host.clone(),
            step: "find it in the container",
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        })?;
        let new_index = link.header.index;
        for a in addrs {
            inside
                .add_address(new_index, a)
                .map_err(err(&m.host, "restore its addresses"))?;
        }
        inside
            .set_up(new_index)
            .map_err(err(&m.host, "set it up"))?;
        let name = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_else(|| m.name.clone());
        tracing::debug!("linux.netDevices: moved {} in as {name}", m.host);
        names.push(name);
    }
    Ok(names)
}

/// True when `netns` is the network namespace this process is in.
fn same_namespace(netns: BorrowedFd<'_>) -> std::io::Result<bool> {
    let theirs = rustix::fs::fstat(netns)?;
    let ours = rustix::fs::stat("/proc/thread-self/ns/net")?;
    Ok(theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev)
}

/// A blocking rtnetlink socket.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn here() -> std::io::Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.set_ext_ack(true).ok();
        Ok(Rtnl { sock, seq: 0 })
    }

    /// A socket of `netns`, made by a thread that moves there and ends.
    fn in_namespace(netns: BorrowedFd<'_>) -> std::io::Result<Rtnl> {
        let fd = netns.try_clone_to_owned()?;
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                fd.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            Rtnl::here()
        })
        .join()
        .map_err(|_| std::io::Error::other("the netlink thread panicked"))?
    }

    /// Sends a request and collects the replies up to its ack (or the end
    /// of a dump); a kernel error comes back as its errno.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send_to(&buf, &SocketAddr::new(0, 0), 0)?;
        let mut out = Vec::new();
        loop {
            let (bytes, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[at..])
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                at += len;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    fn get_link(&mut self, msg: LinkMessage) -> std::io::Result<Option<LinkMessage>> {
        match self.request(RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_by_name(&mut self, name: &str) -> std::io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    fn link_by_index(&mut self, index: u32) -> std::io::Result<Option<LinkMessage>> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    /// The addresses a move must keep (runtime-spec: permanent, global
    /// scope), made ready to be added again.
    fn kept_addresses(&mut self, index: u32) -> std::io::Result<Vec<AddressMessage>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(a) = r else {
                continue;
            };
            let flags = a
                .attributes
                .iter()
                .find_map(|x| match x {
                    AddressAttribute::Flags(f) => Some(*f),
                    _ => None,
                })
                .unwrap_or_else(|| AddressFlags::from_bits_retain(a.header.flags.bits().into()));
            if a.header.index != index
                || a.header.scope != AddressScope::Universe
                || !flags.contains(AddressFlags::Permanent)
            {
                continue;
            }
            let mut add = AddressMessage::default();
            add.header.family = a.header.family;
            add.header.prefix_len = a.header.prefix_len;
            add.header.scope = a.header.scope;
            add.header.flags = AddressHeaderFlags::Permanent;
            // The label carries the old name (the kernel wants it to start
            // with the device's), lifetimes are infinite for permanent ones.
            add.attributes = a
                .attributes
                .into_iter()
                .filter(|x| {
                    matches!(
                        x,
                        AddressAttribute::Address(_)
                            | AddressAttribute::Local(_)
                            | AddressAttribute::Broadcast(_)
                    )
                })
                .collect();
            let keep = flags & (AddressFlags::Nodad | AddressFlags::Noprefixroute);
            if !keep.is_empty() {
                add.attributes.push(AddressAttribute::Flags(keep));
            }
            out.push(add);
        }
        Ok(out)
    }

    fn move_link(&mut self, index: u32, netns: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }

    fn add_address(&mut self, index: u32, mut a: AddressMessage) -> std::io::Result<()> {
        a.header.index = index;
        let result = self.request(
            RouteNetlinkMessage::NewAddress(a.clone()),
            NLM_F_CREATE | NLM_F_EXCL,
        );
        result.map(drop).map_err(|e| {
            let addr = a.attributes.iter().find_map(|x| match x {
                AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            match addr {
                Some(ip) => {
                    std::io::Error::new(e.kind(), format!("{ip}/{}: {e}", a.header.prefix_len))
                }
                None => e,
            }
        })
    }

    fn set_up(&mut self, index: u32) -> std::io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map(drop)
    }
}
