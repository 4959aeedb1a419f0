//! Pure parsing: network names, IPv4 subnets and `-p` port specs.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{NetError, Result};

/// Longest network name: the bridge is `bh-NAME` and interface names have
/// at most 15 bytes.
pub const MAX_NAME: usize = 12;

/// Network names become interface names: short, and only characters every
/// tool accepts there.
pub fn validate_name(name: &str) -> Result<()> {
    let field = "network name";
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(NetError::invalid(
            field,
            format!("{name:?} must have 1 to {MAX_NAME} characters"),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(NetError::invalid(
            field,
            format!("{name:?} must start with a letter or digit"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(NetError::invalid(
            field,
            format!("{name:?} may only contain a-z, 0-9, '-' and '_'"),
        ));
    }
    if matches!(name, "none" | "host" | "bridge") {
        return Err(NetError::invalid(
            field,
            format!("{name:?} is reserved (it is a --network mode)"),
        ));
    }
    Ok(())
}

/// An IPv4 network: address with the host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        let m = self.mask() & other.mask();
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The bridge's own address: the first one.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses containers get: after the gateway, before broadcast.
    pub fn hosts(self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 2;
        let broadcast = u32::from(self.addr) | !self.mask();
        (first..broadcast).map(Ipv4Addr::from)
    }
}

impl Subnet {
    /// Any `A.B.C.D[/N]` as the kernel prints routes (host bits cleared,
    /// no size limit); None if it is not one.
    pub fn from_route(dst: &str) -> Option<Subnet> {
        let (a, p) = dst.split_once('/').unwrap_or((dst, "32"));
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        let s = Subnet { addr, prefix };
        Some(Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & s.mask()),
            prefix,
        })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Subnet {
    type Error = NetError;
    fn try_from(s: String) -> Result<Subnet> {
        s.parse()
    }
}

impl FromStr for Subnet {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = |reason: String| NetError::invalid("--subnet", format!("{s:?}: {reason}"));
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected an IPv4 CIDR such as 10.89.0.0/24".into()))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| bad(format!("{a:?} is not an IPv4 address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad(format!("prefix {p:?} is not a number from 0 to 32")))?;
        // Room for the gateway, one container and broadcast at least.
        if !(8..=29).contains(&prefix) {
            return Err(bad(format!(
                "prefix /{prefix} is not supported (use /8 to /29)"
            )));
        }
        let net = Subnet { addr, prefix };
        let clean = Subnet {
            addr: Ipv4Addr::from(u32::from(addr) & net.mask()),
            prefix,
        };
        if clean != net {
            return Err(bad(format!("host bits are set (did you mean {clean}?)")));
        }
        if addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() || addr.is_broadcast()
        {
            return Err(bad("not a unicast network".into()));
        }
        Ok(net)
    }
}

/// An IPv6 network of a dual-stack network: a container's address is the
/// one at the same offset as its IPv4 address (no second allocator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet6 {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl Subnet6 {
    fn mask(self) -> u128 {
        if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - self.prefix)
        }
    }

    pub fn overlaps(self, other: Subnet6) -> bool {
        let m = self.mask() & other.mask();
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }

    /// The bridge's address: the first one.
    pub fn gateway(self) -> Ipv6Addr {
        self.at(1)
    }

    /// The address at `offset` from the network's.
    pub fn at(self, offset: u32) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) + u128::from(offset))
    }

    /// Whether it holds as many addresses as `v4` (its offsets fit).
    pub fn fits(self, v4: Subnet) -> bool {
        128 - u32::from(self.prefix) >= 32 - u32::from(v4.prefix)
    }

    /// Any `ADDR[/N]` as the kernel prints IPv6 routes; None if not one.
    pub fn from_route(dst: &str) -> Option<Subnet6> {
        let (a, p) = dst.split_once('/').unwrap_or((dst, "128"));
        let addr: Ipv6Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 128)?;
        let s = Subnet6 { addr, prefix };
        Some(Subnet6 {
            addr: Ipv6Addr::from(u128::from(addr) & s.mask()),
            prefix,
        })
    }
}

impl fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl From<Subnet6> for String {
    fn from(s: Subnet6) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Subnet6 {
    type Error = NetError;
    fn try_from(s: String) -> Result<Subnet6> {
        s.parse()
    }
}

impl FromStr for Subnet6 {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Subnet6> {
        let bad = |reason: String| NetError::invalid("--subnet", format!("{s:?}: {reason}"));
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| bad("expected an IPv6 CIDR such as fd00:89::/64".into()))?;
        let addr: Ipv6Addr = a
            .parse()
            .map_err(|_| bad(format!("{a:?} is not an IPv6 address")))?;
        let prefix: u8 = p
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| bad(format!("prefix {p:?} is not a number from 0 to 128")))?;
        if !(48..=120).contains(&prefix) {
            return Err(bad(format!(
                "prefix /{prefix} is not supported (use /48 to /120)"
            )));
        }
        let net = Subnet6 { addr, prefix };
        let clean = Subnet6 {
            addr: Ipv6Addr::from(u128::from(addr) & net.mask()),
            prefix,
        };
        if clean != net {
            return Err(bad(format!("host bits are set (did you mean {clean}?)")));
        }
        let first = addr.segments()[0];
        // Link-local (fe80::/10) and multicast are not networks to route.
        if addr.is_loopback()
            || addr.is_unspecified()
            || addr.is_multicast()
            || (first & 0xffc0) == 0xfe80
        {
            return Err(bad("not a unicast network".into()));
        }
        Ok(net)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// None: every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl Publish {
    /// Two publications that would claim the same host socket.
    pub fn clashes(&self, other: &Publish) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

impl FromStr for Publish {
    type Err = NetError;
    fn from_str(s: &str) -> Result<Publish> {
        let bad = |reason: String| NetError::invalid("-p", format!("{s:?}: {reason}"));
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((_, p)) => return Err(bad(format!("protocol {p:?} (expected tcp or udp)"))),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, hp, cp) = match parts.as_slice() {
            [hp, cp] => (None, *hp, *cp),
            [ip, hp, cp] => (Some(*ip), *hp, *cp),
            _ => {
                return Err(bad(
                    "expected [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp]".into()
                ));
            }
        };
        let port = |what: &str, p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(format!("{what} {p:?} is not a port from 1 to 65535")))
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(ip) => {
                let a: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| bad(format!("host address {ip:?} is not an IPv4 address")))?;
                (!a.is_unspecified()).then_some(a)
            }
        };
        Ok(Publish {
            host_ip,
            host_port: port("host port", hp)?,
            container_port: port("container port", cp)?,
            proto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s: Subnet = "10.89.3.0/24".parse().unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 89, 3, 1));
        assert_eq!(s.hosts().next(), Some(Ipv4Addr::new(10, 89, 3, 2)));
        assert_eq!(s.hosts().last(), Some(Ipv4Addr::new(10, 89, 3, 254)));
        assert!(s.overlaps("10.89.0.0/16".parse().unwrap()));
        assert!(!s.overlaps("10.89.4.0/24".parse().unwrap()));
        let host = Subnet::from_route("10.89.3.7").unwrap();
        assert!(host.overlaps(s) && host.prefix == 32);
        assert!(
            Subnet::from_route("198.18.0.0/30")
                .unwrap()
                .overlaps("198.18.0.0/29".parse().unwrap())
        );
        assert!(Subnet::from_route("fe80::/64").is_none());
        let small: Subnet = "192.168.7.8/29".parse().unwrap();
        assert_eq!(small.hosts().count(), 5);
        for (bad, needle) in [
            ("10.89.3.1/24", "did you mean 10.89.3.0/24"),
            ("10.89.3.0", "expected an IPv4 CIDR"),
            ("10.89.300.0/24", "not an IPv4 address"),
            ("10.89.3.0/33", "prefix \"33\""),
            ("10.89.3.0/31", "not supported"),
            ("127.0.0.0/8", "not a unicast network"),
        ] {
            let e = bad.parse::<Subnet>().unwrap_err().to_string();
            assert!(
                e.starts_with("--subnet") && e.contains(needle),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn subnets6() {
        let s: Subnet6 = "fd00:89:1::/64".parse().unwrap();
        assert_eq!(s.gateway().to_string(), "fd00:89:1::1");
        assert_eq!(s.at(0x0102).to_string(), "fd00:89:1::102");
        assert!(s.overlaps("fd00:89:1::/48".parse().unwrap()));
        assert!(!s.overlaps("fd00:89::/48".parse().unwrap()));
        assert!(!s.overlaps("fd00:89:2::/64".parse().unwrap()));
        assert!(s.fits("10.0.0.0/8".parse().unwrap()));
        let small: Subnet6 = "fd00::/120".parse().unwrap();
        assert!(!small.fits("10.0.0.0/16".parse().unwrap()));
        assert!(Subnet6::from_route("fd00:89:1::5").unwrap().overlaps(s));
        for (bad, needle) in [
            ("fd00:89:1::1/64", "did you mean fd00:89:1::/64"),
            ("fd00::", "expected an IPv6 CIDR"),
            ("fd00::/32", "not supported"),
            ("fe80::/64", "not a unicast network"),
            ("10.0.0.0/64", "not an IPv6 address"),
        ] {
            let e = bad.parse::<Subnet6>().unwrap_err().to_string();
            assert!(
                e.starts_with("--subnet") && e.contains(needle),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn names() {
        validate_name("front-1").unwrap();
        for bad in ["", "thirteen-char", "-x", "Upper", "a.b", "host"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn publish() {
        let p: Publish = "127.0.0.1:8080:80/udp".parse().unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (p.host_port, p.container_port, p.proto),
            (8080, 80, Proto::Udp)
        );
        let any: Publish = "8080:80".parse().unwrap();
        assert_eq!(any.host_ip, None);
        assert_eq!(any.proto, Proto::Tcp);
        assert!(any.clashes(&"127.0.0.1:8080:81".parse().unwrap()));
        assert!(!any.clashes(&"8080:80/udp".parse().unwrap()));
        assert!(!p.clashes(&"127.0.0.2:8080:80/udp".parse().unwrap()));
        for bad in [
            "80",
            "0:80",
            "8080:80/sctp",
            "x:8080:80",
            "1:2:3:4",
            "8080:99999",
        ] {
            let e = bad.parse::<Publish>().unwrap_err().to_string();
            assert!(e.starts_with("-p"), "{bad}: {e}");
        }
    }
}
