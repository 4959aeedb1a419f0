//! Whether a host port is free, by binding it for a moment (as
//! docker-proxy and rootlessport find out): a port another process
//! listens on is refused before anything is set up, naming the `-p`
//! value, instead of leaving a publication that silently loses to it.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use crate::addr::{Proto, Publish};
use crate::error::{NetError, Result};

/// Fails on the first publication whose host socket cannot be bound now:
/// in use by a process of this host (this network namespace), a port
/// below `net.ipv4.ip_unprivileged_port_start` for an unprivileged
/// caller, or a host address the host does not have.
pub fn check_free(publish: &[Publish]) -> Result<()> {
    for p in publish {
        let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let at = SocketAddr::from((ip, p.host_port));
        // Dropped at once: the socket only answers whether bind works.
        let bound = match p.proto {
            Proto::Tcp => TcpListener::bind(at).map(drop),
            Proto::Udp => UdpSocket::bind(at).map(drop),
        };
        if let Err(e) = bound {
            let reason = match e.kind() {
                ErrorKind::AddrInUse => {
                    format!("host port {} is in use by another process", p.host_port)
                }
                ErrorKind::PermissionDenied => format!(
                    "binding host port {} is not permitted (ports below \
                     net.ipv4.ip_unprivileged_port_start need privileges)",
                    p.host_port
                ),
                ErrorKind::AddrNotAvailable => {
                    format!("{ip} is not an address of this host")
                }
                _ => format!("binding host {at}: {e}"),
            };
            return Err(NetError::PortInUse {
                spec: p.to_string(),
                reason,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_port_is_refused_and_a_free_one_passes() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let spec: Publish = format!("127.0.0.1:{port}:80").parse().unwrap();
        let e = check_free(&[spec]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("-p 127.0.0.1:{port}:80/tcp")), "{e}");
        assert!(e.contains("in use by another process"), "{e}");
        // Every address: also taken by a listener on one of them.
        let any: Publish = format!("{port}:80").parse().unwrap();
        assert!(check_free(&[any]).is_err());
        // The same number over UDP is another socket.
        let udp: Publish = format!("127.0.0.1:{port}:80/udp").parse().unwrap();
        check_free(&[udp]).unwrap();
        drop(held);
        check_free(&[spec]).unwrap();
    }

    #[test]
    fn a_foreign_address_is_named() {
        let spec: Publish = "203.0.113.254:8080:80".parse().unwrap();
        let e = check_free(&[spec]).unwrap_err().to_string();
        assert!(e.contains("not an address of this host"), "{e}");
    }
}
