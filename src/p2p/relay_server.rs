//! [`RelayServer`]: libp2p's circuit relay v2 server, minus the notifications it sends to
//! relayed connections.
//!
//! libp2p-relay 0.22 gives a relayed connection a placeholder handler (it serves no relay
//! streams over a circuit) but still tracks the connection, and when its status changes (an
//! external address confirmed or lost) it notifies every tracked connection. The placeholder
//! side of the handler's `Either` then hits `unreachable!()` in libp2p-swarm, and the panic
//! kills that connection (rust-libp2p#5412). The wrapper drops those notifications and passes
//! everything else through; see docs/decisions.md for when to remove it.

use std::{
    collections::HashSet,
    task::{Context, Poll},
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    relay,
    swarm::{
        behaviour::{ExternalAddrConfirmed, ExternalAddrExpired},
        ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};

use super::peer_gate::Route;

/// The relay server behaviour, with the same handler and events as [`relay::Behaviour`].
pub struct RelayServer {
    inner: relay::Behaviour,
    /// Connections the inner behaviour gave its placeholder handler: the relayed ones.
    relayed: HashSet<ConnectionId>,
    /// Notifications dropped so far (each would have killed a relayed connection).
    dropped: u64,
}

impl RelayServer {
    /// Wraps a relay server for `local_peer_id` configured with `config`.
    pub fn new(local_peer_id: PeerId, config: relay::Config) -> Self {
        Self {
            inner: relay::Behaviour::new(local_peer_id, config),
            relayed: HashSet::new(),
            dropped: 0,
        }
    }

    /// Notes a connection of `route`, judged by the address libp2p-relay itself looks at (the
    /// local address of an inbound connection, the dialled one of an outbound connection) and
    /// with its test (any `/p2p-circuit`).
    fn note(&mut self, connection: ConnectionId, route: Route) {
        if route == Route::Relayed {
            self.relayed.insert(connection);
        }
    }

    /// Whether `action` is a notification for a connection holding the placeholder handler.
    fn aimed_at_relayed(&self, action: &ToSwarm<relay::Event, THandlerInEvent<Self>>) -> bool {
        matches!(
            action,
            ToSwarm::NotifyHandler { handler: NotifyHandler::One(id), .. }
                if self.relayed.contains(id)
        )
    }
}

impl NetworkBehaviour for RelayServer {
    type ConnectionHandler = THandler<relay::Behaviour>;
    type ToSwarm = relay::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let handler = self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        self.note(connection_id, Route::of(local_addr));
        Ok(handler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let handler = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        self.note(connection_id, Route::of(addr));
        Ok(handler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionClosed(closed) => {
                self.relayed.remove(&closed.connection_id);
            }
            // Another behaviour refused the connection after this one accepted it.
            FromSwarm::DialFailure(failure) => {
                self.relayed.remove(&failure.connection_id);
            }
            FromSwarm::ListenFailure(failure) => {
                self.relayed.remove(&failure.connection_id);
            }
            // An address through another relay (the relay client confirms its reservation's
            // `/p2p-circuit` address) is no address to serve circuits on: libp2p's relay
            // would count it and advertise itself as a relay, then refuse every circuit
            // over it. Only direct addresses turn the server on.
            FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed { addr })
            | FromSwarm::ExternalAddrExpired(ExternalAddrExpired { addr })
                if Route::of(addr) == Route::Relayed =>
            {
                return;
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            let action = std::task::ready!(self.inner.poll(cx));
            if !self.aimed_at_relayed(&action) {
                return Poll::Ready(action);
            }
            self.dropped += 1;
            tracing::debug!(
                dropped = self.dropped,
                "relay server: a notification for a relayed connection dropped \
                 (rust-libp2p#5412)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::{core::ConnectedPoint, swarm::behaviour::ConnectionEstablished};

    use super::*;

    /// Polls until the behaviour has nothing more to say.
    fn drain(server: &mut RelayServer) -> Vec<ToSwarm<relay::Event, THandlerInEvent<RelayServer>>> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        std::iter::from_fn(|| match server.poll(&mut cx) {
            Poll::Ready(action) => Some(action),
            Poll::Pending => None,
        })
        .collect()
    }

    /// Connections the actions notify.
    fn notified(
        actions: &[ToSwarm<relay::Event, THandlerInEvent<RelayServer>>],
    ) -> Vec<ConnectionId> {
        let mut ids: Vec<ConnectionId> = actions
            .iter()
            .filter_map(|action| match action {
                ToSwarm::NotifyHandler {
                    handler: NotifyHandler::One(id),
                    ..
                } => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_status_change_notifies_direct_connections_only() {
        let mut server = RelayServer::new(PeerId::random(), relay::Config::default());
        let peer = PeerId::random();
        let direct: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let relayed: Multiaddr = format!("/ip4/127.0.0.1/tcp/4002/p2p/{}/p2p-circuit", peer)
            .parse()
            .unwrap();
        let remote: Multiaddr = "/ip4/127.0.0.1/tcp/5000".parse().unwrap();
        let connections = [
            (1, direct.clone(), true),
            (2, relayed.clone(), true),
            (3, direct, false),
            (4, relayed, false),
        ];
        for (id, addr, inbound) in &connections {
            let id = ConnectionId::new_unchecked(*id);
            let endpoint = if *inbound {
                assert!(server
                    .handle_established_inbound_connection(id, peer, addr, &remote)
                    .is_ok());
                ConnectedPoint::Listener {
                    local_addr: addr.clone(),
                    send_back_addr: remote.clone(),
                }
            } else {
                assert!(server
                    .handle_established_outbound_connection(
                        id,
                        peer,
                        addr,
                        Endpoint::Dialer,
                        PortUse::Reuse
                    )
                    .is_ok());
                ConnectedPoint::Dialer {
                    address: addr.clone(),
                    role_override: Endpoint::Dialer,
                    port_use: PortUse::Reuse,
                }
            };
            server.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id: id,
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: 0,
            }));
        }

        let external: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().unwrap();
        server.on_swarm_event(FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed {
            addr: &external,
        }));
        let actions = drain(&mut server);
        let direct_ones = vec![
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(3),
        ];
        assert_eq!(notified(&actions), direct_ones);
        assert!(actions.iter().any(|a| matches!(
            a,
            ToSwarm::GenerateEvent(relay::Event::StatusChanged {
                status: relay::Status::Enable
            })
        )));
        assert_eq!(server.dropped, 2);

        server.on_swarm_event(FromSwarm::ExternalAddrExpired(ExternalAddrExpired {
            addr: &external,
        }));
        assert_eq!(notified(&drain(&mut server)), direct_ones);
        assert_eq!(server.dropped, 4);
    }

    /// A reservation's `/p2p-circuit` address, confirmed as external by the relay client,
    /// does not turn the server on; a direct address does.
    #[test]
    fn only_direct_external_addresses_turn_the_server_on() {
        let mut server = RelayServer::new(PeerId::random(), relay::Config::default());
        let circuit: Multiaddr = format!(
            "/ip4/192.0.2.9/tcp/4001/p2p/{}/p2p-circuit",
            PeerId::random()
        )
        .parse()
        .unwrap();
        server.on_swarm_event(FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed {
            addr: &circuit,
        }));
        let status_changed = |actions: &[ToSwarm<relay::Event, THandlerInEvent<RelayServer>>]| {
            actions.iter().any(|a| {
                matches!(
                    a,
                    ToSwarm::GenerateEvent(relay::Event::StatusChanged { .. })
                )
            })
        };
        assert!(!status_changed(&drain(&mut server)));
        let direct: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().unwrap();
        server.on_swarm_event(FromSwarm::ExternalAddrConfirmed(ExternalAddrConfirmed {
            addr: &direct,
        }));
        assert!(status_changed(&drain(&mut server)));
    }
}
