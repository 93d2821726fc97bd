//! Following swarm and protocol events: connections, listeners, identify, ping, the DHT,
//! the relay, AutoNAT, mDNS, and the metrics they feed.

use std::collections::HashMap;

use libp2p::{
    connection_limits,
    core::ConnectedPoint,
    identify, kad,
    metrics::Recorder,
    ping, relay,
    swarm::{dial_opts::DialOpts, ConnectionId, DialError, ListenError, SwarmEvent},
    Multiaddr, PeerId,
};

use super::{labels, with_peer, PeerDetails, SwarmTask};
use crate::{
    metrics::DenialLabels,
    p2p::{
        behaviour::{BehaviourEvent, KAD_PROTOCOL},
        error::P2pError,
        handle::PeerConnection,
        network_event::NetworkEvent,
        peer_gate::Route,
    },
};

impl SwarmTask {
    pub(super) fn handle_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::Behaviour(event) => self.handle_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connection_established(peer_id, connection_id, &endpoint),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                self.on_connection_closed(peer_id, connection_id);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(?peer_id, %error, "outgoing connection failed");
                self.count_denial_by_limits(&error);
                if let Some((addr, pending)) = self.dials.remove(&connection_id) {
                    let _ = pending.reply.send(Err(P2pError::Dial {
                        addr,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
                if let ListenError::Denied { cause } = &error {
                    if cause
                        .downcast_ref::<connection_limits::Exceeded>()
                        .is_some()
                    {
                        self.count_denial("limit");
                    }
                }
            }
            other => self.on_address_event(other),
        }
    }

    /// Listeners and addresses: ours, and the relayed listens waiting for their address.
    fn on_address_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                tracing::info!(%address, "listening");
                if let Some((_, pending)) = self.relay_listens.remove(&listener_id) {
                    let local = *self.swarm.local_peer_id();
                    let _ = pending.reply.send(Ok(with_peer(address, local)));
                }
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                if let Some((addr, pending)) = self.relay_listens.remove(&listener_id) {
                    let reason = match reason {
                        Ok(()) => "the relay closed the reservation".to_string(),
                        Err(e) => e.to_string(),
                    };
                    let _ = pending.reply.send(Err(P2pError::Relay { addr, reason }));
                }
            }
            SwarmEvent::ListenerError { listener_id, error } => {
                tracing::debug!(?listener_id, %error, "listener error");
                if let Some((addr, pending)) = self.relay_listens.remove(&listener_id) {
                    self.swarm.remove_listener(listener_id);
                    let _ = pending.reply.send(Err(P2pError::Relay {
                        addr,
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                tracing::debug!(%address, "external address candidate");
            }
            _ => {}
        }
    }

    fn on_connection_established(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let connection = PeerConnection {
            remote_addr: endpoint.get_remote_address().clone(),
            route: if endpoint.is_relayed() {
                Route::Relayed
            } else {
                Route::Direct
            },
            inbound: endpoint.is_listener(),
        };
        tracing::debug!(%peer_id, addr = %connection.remote_addr, "connection established");
        self.metrics
            .connections_established
            .get_or_create(&labels(&connection))
            .inc();
        let open = self.connections.entry(peer_id).or_default();
        open.insert(connection_id, connection.clone());
        let first = open.len() == 1;
        self.update_connection_gauge();
        self.tell(NetworkEvent::Connected {
            peer: peer_id,
            connection,
            first,
        });
        if let Some((_, pending)) = self.dials.remove(&connection_id) {
            let _ = pending.reply.send(Ok(peer_id));
        }
    }

    fn on_connection_closed(&mut self, peer_id: PeerId, connection_id: ConnectionId) {
        if let Some(connections) = self.connections.get_mut(&peer_id) {
            if let Some(connection) = connections.remove(&connection_id) {
                self.metrics
                    .connections_closed
                    .get_or_create(&labels(&connection))
                    .inc();
            }
            if connections.is_empty() {
                self.connections.remove(&peer_id);
                self.details.remove(&peer_id);
                self.tell(NetworkEvent::Disconnected { peer: peer_id });
            }
        }
        self.update_connection_gauge();
    }

    /// A ping answered: its round trip, for `/admin/v1/peers`.
    fn on_ping(&mut self, event: ping::Event) {
        let ping::Event {
            peer,
            result: Ok(rtt),
            ..
        } = event
        else {
            return;
        };
        if let Some(details) = self.details.get_mut(&peer) {
            details.rtt = Some(rtt);
        } else if self.connections.contains_key(&peer) {
            self.details.insert(
                peer,
                PeerDetails {
                    rtt: Some(rtt),
                    ..PeerDetails::default()
                },
            );
        }
    }

    /// Peers found on the local network: known to the DHT, and dialled.
    fn on_mdns_discovered(&mut self, found: Vec<(PeerId, Multiaddr)>) {
        for (peer, addr) in found {
            tracing::debug!(%peer, %addr, "discovered on the local network");
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            if !self.swarm.is_connected(&peer) {
                let _ = self
                    .swarm
                    .dial(DialOpts::peer_id(peer).addresses(vec![addr]).build());
            }
        }
    }

    fn handle_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Limits(never) | BehaviourEvent::Gate(never) => match never {},
            BehaviourEvent::Identify(event) => {
                self.libp2p_metrics.record(&event);
                if let identify::Event::Received { peer_id, info, .. } = event {
                    self.on_identified(peer_id, info);
                }
            }
            BehaviourEvent::Ping(event) => {
                self.libp2p_metrics.record(&event);
                self.on_ping(event);
            }
            BehaviourEvent::Kad(event) => {
                self.libp2p_metrics.record(&event);
                self.on_kad(event);
            }
            BehaviourEvent::RelayServer(event) => {
                self.libp2p_metrics.record(&event);
                self.relay.record(&event);
            }
            BehaviourEvent::RelayClient(event) => match event {
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                } => {
                    tracing::info!(relay = %relay_peer_id, renewal, "relay reservation accepted");
                }
                other => tracing::debug!(?other, "relay client"),
            },
            BehaviourEvent::Dcutr(event) => {
                self.libp2p_metrics.record(&event);
                tracing::debug!(peer = %event.remote_peer_id, result = ?event.result, "hole punch");
            }
            BehaviourEvent::Autonat(event) => match event {
                libp2p::autonat::Event::StatusChanged { old, new } => {
                    tracing::info!(?old, ?new, "reachability (AutoNAT)");
                }
                other => tracing::debug!(?other, "autonat"),
            },
            BehaviourEvent::Mdns(libp2p::mdns::Event::Discovered(found)) => {
                self.on_mdns_discovered(found);
            }
            BehaviourEvent::Mdns(libp2p::mdns::Event::Expired(_)) => {}
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Gossipsub(libp2p::gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => self.tell(NetworkEvent::Gossip {
                author: message.source,
                source: propagation_source,
                topic: message.topic.into_string(),
                data: message.data,
            }),
            BehaviourEvent::Gossipsub(event) => tracing::trace!(?event, "gossipsub"),
            BehaviourEvent::Rendezvous(event) => self.on_rendezvous(event),
            BehaviourEvent::Mirror(event) => self.on_mirror(event),
            BehaviourEvent::RendezvousInbound(inbound) => self.serve_rendezvous_stream(inbound),
            BehaviourEvent::Streams(()) => {}
        }
    }

    /// Inbound peers are only routable through the listen addresses identify reports.
    fn on_identified(&mut self, peer: PeerId, info: identify::Info) {
        if self.connections.contains_key(&peer) {
            self.details.entry(peer).or_default().agent_version = Some(info.agent_version.clone());
        }
        self.tell(NetworkEvent::Identified {
            peer,
            protocols: info.protocols.iter().map(ToString::to_string).collect(),
            listen_addrs: info.listen_addrs.clone(),
            agent_version: info.agent_version,
        });
        if info.protocols.contains(&KAD_PROTOCOL) {
            for addr in info.listen_addrs {
                self.swarm.behaviour_mut().kad.add_address(&peer, addr);
            }
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, .. } => {
                tracing::debug!(%peer, "DHT routing table updated");
                self.bootstrap_kad();
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                step,
                ..
            } => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                self.on_closest_peers(id, peers, step.last);
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetProviders(result),
                step,
                ..
            } => self.on_providers(id, result, step.last),
            kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::Bootstrap(result),
                ..
            } => match result {
                Ok(ok) => tracing::debug!(remaining = ok.num_remaining, "DHT bootstrap step"),
                Err(e) => tracing::debug!(%e, "DHT bootstrap step failed"),
            },
            _ => {}
        }
    }

    fn on_providers(
        &mut self,
        query: kad::QueryId,
        result: Result<kad::GetProvidersOk, kad::GetProvidersError>,
        last: bool,
    ) {
        let local = *self.swarm.local_peer_id();
        let Some((found, _)) = self.provider_lookups.get_mut(&query) else {
            return;
        };
        if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
            for peer in providers {
                if peer != local && !found.contains(&peer) {
                    found.push(peer);
                }
            }
        }
        if last {
            if let Some((found, pending)) = self.provider_lookups.remove(&query) {
                let _ = pending.reply.send(Ok(found));
            }
        }
    }

    fn on_closest_peers(&mut self, query: kad::QueryId, peers: Vec<kad::PeerInfo>, last: bool) {
        let Some((target, _)) = self.finds.get(&query) else {
            return;
        };
        let target = *target;
        let mut addrs: Vec<Multiaddr> = peers
            .into_iter()
            .filter(|p| p.peer_id == target)
            .flat_map(|p| p.addrs)
            .collect();
        if addrs.is_empty() && !last {
            return;
        }
        if addrs.is_empty() {
            addrs = self.routing_table_addresses(target);
        }
        if let Some((_, pending)) = self.finds.remove(&query) {
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&query) {
                q.finish();
            }
            let result = if addrs.is_empty() {
                Err(P2pError::PeerNotFound(target))
            } else {
                addrs.sort();
                addrs.dedup();
                Ok(addrs)
            };
            let _ = pending.reply.send(result);
        }
    }

    fn routing_table_addresses(&mut self, peer: PeerId) -> Vec<Multiaddr> {
        let kad = &mut self.swarm.behaviour_mut().kad;
        let Some(bucket) = kad.kbucket(peer) else {
            return Vec::new();
        };
        bucket
            .iter()
            .filter(|entry| *entry.node.key.preimage() == peer)
            .flat_map(|entry| entry.node.value.iter().cloned().collect::<Vec<_>>())
            .collect()
    }

    fn update_connection_gauge(&self) {
        let open: usize = self.connections.values().map(HashMap::len).sum();
        self.metrics
            .connections_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    fn count_denial(&self, reason: &'static str) {
        self.metrics
            .connections_denied
            .get_or_create(&DenialLabels { reason })
            .inc();
    }

    /// Denials by the gate count themselves; the connection limits' are counted here.
    pub(super) fn count_denial_by_limits(&self, error: &DialError) {
        if let DialError::Denied { cause } = error {
            if cause
                .downcast_ref::<connection_limits::Exceeded>()
                .is_some()
            {
                self.count_denial("limit");
            }
        }
    }
}
