//! Binding the listen addresses: a TCP port never shared with another process, start-up
//! errors that say why, and which addresses a listener on `0.0.0.0` / `::` will report, so
//! start-up prints every one of them.

use std::{
    collections::HashSet,
    net::{IpAddr, SocketAddr, TcpListener},
};

use libp2p::{multiaddr::Protocol, Multiaddr};

use super::error::P2pError;

/// Refuses a TCP listen address whose port another socket already listens on.
///
/// libp2p's TCP transport sets `SO_REUSEPORT` on its listeners, so two processes of one user
/// could both listen on one port and the kernel would split incoming connections between
/// them (dials to one node's `/p2p/` address reaching the other). A probe bound without
/// `SO_REUSEPORT` fails on a port that has any listener, ours included, so each node probes
/// before it listens. Port 0 and non-TCP addresses need no probe.
pub fn check_tcp_port_free(addr: &Multiaddr) -> Result<(), P2pError> {
    let Some(socket) = tcp_socket_addr(addr) else {
        return Ok(());
    };
    if socket.port() == 0 {
        return Ok(());
    }
    TcpListener::bind(socket).map(drop).map_err(|e| {
        let reason = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                "TCP port {} is already in use by another process ({e})",
                socket.port()
            )
        } else {
            e.to_string()
        };
        P2pError::Listen {
            addr: addr.clone(),
            reason,
        }
    })
}

/// `/ip4|ip6/<ip>/tcp/<port>` (nothing after it) as a socket address.
fn tcp_socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) => IpAddr::V4(ip),
        Protocol::Ip6(ip) => IpAddr::V6(ip),
        _ => return None,
    };
    let Protocol::Tcp(port) = parts.next()? else {
        return None;
    };
    parts.next().is_none().then_some(SocketAddr::new(ip, port))
}

/// The addresses a listener reports before start-up counts it as bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A specific IP: its one address.
    One,
    /// `0.0.0.0` or `::`: one address per local interface address of that family.
    Each(HashSet<IpAddr>),
}

impl Expected {
    /// What a listener on `addr` will report, from the machine's interface addresses.
    pub fn for_listen_addr(addr: &Multiaddr) -> Self {
        let interfaces = if_addrs::get_if_addrs()
            .map(|list| list.into_iter().map(|i| i.ip()).collect::<Vec<_>>())
            .unwrap_or_default();
        Self::from_interfaces(addr, &interfaces)
    }

    fn from_interfaces(addr: &Multiaddr, interfaces: &[IpAddr]) -> Self {
        let wanted = |v4: bool| {
            interfaces
                .iter()
                .filter(|ip| ip.is_ipv4() == v4)
                .copied()
                .collect::<HashSet<_>>()
        };
        let each = match addr.iter().next() {
            Some(Protocol::Ip4(ip)) if ip.is_unspecified() => wanted(true),
            Some(Protocol::Ip6(ip)) if ip.is_unspecified() => wanted(false),
            _ => return Self::One,
        };
        if each.is_empty() {
            Self::One
        } else {
            Self::Each(each)
        }
    }

    /// Takes note of a reported address; true once every expected address was reported.
    pub fn reported(&mut self, addr: &Multiaddr) -> bool {
        match self {
            Self::One => true,
            Self::Each(left) => {
                match addr.iter().next() {
                    Some(Protocol::Ip4(ip)) => left.remove(&IpAddr::V4(ip)),
                    Some(Protocol::Ip6(ip)) => left.remove(&IpAddr::V6(ip)),
                    _ => false,
                };
                left.is_empty()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_tcp_port_with_a_listener_is_refused_with_a_reason() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = check_tcp_port_free(&ma(&format!("/ip4/127.0.0.1/tcp/{port}"))).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("already in use"), "{text}");
        drop(taken);
        check_tcp_port_free(&ma(&format!("/ip4/127.0.0.1/tcp/{port}"))).unwrap();
        check_tcp_port_free(&ma("/ip4/127.0.0.1/tcp/0")).unwrap();
        check_tcp_port_free(&ma("/ip4/127.0.0.1/udp/1/quic-v1")).unwrap();
    }

    #[test]
    fn an_unspecified_listener_waits_for_each_interface_of_its_family() {
        let interfaces: Vec<IpAddr> = vec![
            "127.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "::1".parse().unwrap(),
        ];
        let mut v4 = Expected::from_interfaces(&ma("/ip4/0.0.0.0/tcp/0"), &interfaces);
        assert!(!v4.reported(&ma("/ip4/127.0.0.1/tcp/5")));
        assert!(!v4.reported(&ma("/ip4/127.0.0.1/tcp/5")));
        assert!(v4.reported(&ma("/ip4/10.0.0.2/tcp/5")));
        let mut v6 = Expected::from_interfaces(&ma("/ip6/::/udp/0/quic-v1"), &interfaces);
        assert!(v6.reported(&ma("/ip6/::1/udp/5/quic-v1")));
        let mut one = Expected::from_interfaces(&ma("/ip4/127.0.0.1/tcp/0"), &interfaces);
        assert!(one.reported(&ma("/ip4/127.0.0.1/tcp/5")));
    }
}
