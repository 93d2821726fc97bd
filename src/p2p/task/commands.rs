//! Answering [`SwarmCommand`]s.

use std::time::Instant;

use libp2p::{
    multiaddr::Protocol,
    swarm::{dial_opts::DialOpts, ConnectionId},
    Multiaddr, PeerId,
};
use tokio::sync::oneshot;

use super::{peer_of, with_peer, SwarmTask, MAINTENANCE_INTERVAL};
use crate::p2p::{
    error::P2pError,
    handle::{ConnectedPeer, Pending, SwarmCommand, SwarmInfo, TestControl},
    peer_gate::Route,
};

impl SwarmTask {
    pub(super) fn handle_command(&mut self, command: SwarmCommand) {
        match command {
            SwarmCommand::Info(reply) => {
                let _ = reply.send(self.info());
            }
            SwarmCommand::ConnectedPeers(reply) => {
                let _ = reply.send(self.connected_peers());
            }
            SwarmCommand::Dial { addr, reply } => self.dial(addr, reply),
            SwarmCommand::FindPeer { peer, reply } => self.find_peer(peer, reply),
            SwarmCommand::ListenOnRelay { relay, reply } => self.listen_on_relay(relay, reply),
            SwarmCommand::Provide { key, reply } => self.provide(&key, reply),
            SwarmCommand::StopProviding { key } => self
                .swarm
                .behaviour_mut()
                .kad
                .stop_providing(&libp2p::kad::RecordKey::new(&key)),
            SwarmCommand::Topics {
                subscribe,
                unsubscribe,
            } => self.set_topics(subscribe, unsubscribe),
            SwarmCommand::Publish { topic, data } => {
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(libp2p::gossipsub::IdentTopic::new(topic), data)
                {
                    tracing::debug!(%e, "gossip publish");
                }
            }
            SwarmCommand::FindProviders { key, reply } => self.find_providers(&key, reply),
            SwarmCommand::RelayStats(reply) => {
                let external = self.swarm.external_addresses().cloned().collect();
                let _ = reply.send(self.relay.stats(external));
            }
            SwarmCommand::Penalise {
                peer,
                duration,
                reply,
            } => {
                self.penalise(peer, duration);
                let _ = reply.send(());
            }
            SwarmCommand::Forgive { peer, reply } => {
                let forgiven = self
                    .swarm
                    .behaviour_mut()
                    .gate
                    .forgive(peer, Instant::now());
                if forgiven {
                    tracing::info!(%peer, "peer penalty lifted");
                }
                let _ = reply.send(forgiven);
            }
            SwarmCommand::RefusedPeers(reply) => {
                let _ = reply.send(self.swarm.behaviour().gate.refused_peers(Instant::now()));
            }
            SwarmCommand::Sync {
                peer,
                request,
                reply,
            } => self.send_sync(peer, request, reply),
            SwarmCommand::Mirror {
                peer,
                addrs,
                request,
                reply,
            } => self.send_mirror(peer, addrs, request, reply),
            SwarmCommand::RendezvousRegister {
                server,
                namespace,
                ttl,
                reply,
            } => self.rendezvous_register(server, namespace, ttl, reply),
            SwarmCommand::RendezvousDiscover {
                server,
                namespace,
                cookie,
                reply,
            } => self.rendezvous_discover(server, namespace, cookie, reply),
            SwarmCommand::RendezvousUnregister { server, namespace } => {
                self.rendezvous_unregister(server, namespace)
            }
            SwarmCommand::Test { control, reply } => {
                let _ = reply.send(self.test_control(control));
            }
        }
    }

    fn provide(&mut self, key: &[u8], reply: oneshot::Sender<Result<(), P2pError>>) {
        let result = self
            .swarm
            .behaviour_mut()
            .kad
            .start_providing(libp2p::kad::RecordKey::new(&key))
            .map(|_| ())
            .map_err(|e| P2pError::Dht(e.to_string()));
        let _ = reply.send(result);
    }

    fn set_topics(&mut self, subscribe: Vec<String>, unsubscribe: Vec<String>) {
        let gossip = &mut self.swarm.behaviour_mut().gossipsub;
        for topic in unsubscribe {
            gossip.unsubscribe(&libp2p::gossipsub::IdentTopic::new(topic));
        }
        for topic in subscribe {
            if let Err(e) = gossip.subscribe(&libp2p::gossipsub::IdentTopic::new(topic)) {
                tracing::warn!(%e, "cannot subscribe to a group topic");
            }
        }
    }

    fn find_providers(
        &mut self,
        key: &[u8],
        reply: oneshot::Sender<Result<Vec<PeerId>, P2pError>>,
    ) {
        let query = self
            .swarm
            .behaviour_mut()
            .kad
            .get_providers(libp2p::kad::RecordKey::new(&key));
        let pending = Pending {
            reply,
            deadline: Instant::now()
                + self.settings.timings.kad_query_timeout
                + MAINTENANCE_INTERVAL,
        };
        self.provider_lookups.insert(query, (Vec::new(), pending));
    }

    fn penalise(&mut self, peer: PeerId, duration: std::time::Duration) {
        tracing::info!(%peer, ?duration, "peer penalised");
        self.metrics.penalties.inc();
        self.swarm
            .behaviour_mut()
            .gate
            .penalise(peer, Instant::now(), duration);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn info(&self) -> SwarmInfo {
        let peer_id = *self.swarm.local_peer_id();
        SwarmInfo {
            peer_id,
            listen_addrs: self
                .swarm
                .listeners()
                .map(|addr| with_peer(addr.clone(), peer_id))
                .collect(),
            connected_peers: self.swarm.connected_peers().count(),
            external_addrs: self.swarm.external_addresses().cloned().collect(),
            mdns: self.swarm.behaviour().mdns.is_enabled(),
            relay_server: self.swarm.behaviour().relay_server.is_enabled(),
            relay_serving: self.relay.serving(),
            relay_client: true,
        }
    }

    fn connected_peers(&self) -> Vec<ConnectedPeer> {
        let mut peers: Vec<ConnectedPeer> = self
            .connections
            .iter()
            .map(|(peer_id, connections)| {
                let details = self.details.get(peer_id);
                ConnectedPeer {
                    peer_id: *peer_id,
                    connections: connections.values().cloned().collect(),
                    agent_version: details.and_then(|d| d.agent_version.clone()),
                    rtt: details.and_then(|d| d.rtt),
                }
            })
            .collect();
        peers.sort_by_key(|p| p.peer_id);
        peers
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, P2pError>>) {
        // Always a new connection on exactly this address (a relayed dial must not be
        // satisfied by an existing direct connection, nor the other way round).
        let opts = match peer_of(&addr) {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(libp2p::swarm::dial_opts::PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                let pending = Pending {
                    reply,
                    deadline: Instant::now() + crate::defaults::DIAL_REPLY_TIMEOUT,
                };
                self.dials.insert(id, (addr, pending));
            }
            Err(e) => {
                self.count_denial_by_limits(&e);
                let _ = reply.send(Err(P2pError::Dial {
                    addr,
                    reason: e.to_string(),
                }));
            }
        }
    }

    fn find_peer(
        &mut self,
        peer: PeerId,
        reply: oneshot::Sender<Result<Vec<Multiaddr>, P2pError>>,
    ) {
        if peer == *self.swarm.local_peer_id() {
            let _ = reply.send(Ok(self.info().listen_addrs));
            return;
        }
        let query = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
        let pending = Pending {
            reply,
            deadline: Instant::now()
                + self.settings.timings.kad_query_timeout
                + MAINTENANCE_INTERVAL,
        };
        self.finds.insert(query, (peer, pending));
    }

    fn listen_on_relay(
        &mut self,
        relay: Multiaddr,
        reply: oneshot::Sender<Result<Multiaddr, P2pError>>,
    ) {
        if peer_of(&relay).is_none() {
            let _ = reply.send(Err(P2pError::Relay {
                addr: relay,
                reason: "the address must end with /p2p/<relay peer id>".to_string(),
            }));
            return;
        }
        match self
            .swarm
            .listen_on(relay.clone().with(Protocol::P2pCircuit))
        {
            Ok(id) => {
                let pending = Pending {
                    reply,
                    deadline: Instant::now() + self.settings.timings.relay_listen_timeout,
                };
                self.relay_listens.insert(id, (relay, pending));
            }
            Err(e) => {
                let _ = reply.send(Err(P2pError::Relay {
                    addr: relay,
                    reason: e.to_string(),
                }));
            }
        }
    }

    fn test_control(&mut self, control: TestControl) -> Result<(), P2pError> {
        if !self.settings.test_controls {
            return Err(P2pError::TestControlsDisabled);
        }
        tracing::info!(?control, "test control");
        match control {
            TestControl::Partition(peer) => {
                self.swarm.behaviour_mut().gate.partition(peer);
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            TestControl::RefuseDirect(peer) => {
                self.swarm.behaviour_mut().gate.refuse_direct(peer);
                let direct: Vec<ConnectionId> = self
                    .connections
                    .get(&peer)
                    .into_iter()
                    .flatten()
                    .filter(|(_, c)| c.route == Route::Direct)
                    .map(|(id, _)| *id)
                    .collect();
                for id in direct {
                    self.swarm.close_connection(id);
                }
            }
            TestControl::Heal(peer) => self.swarm.behaviour_mut().gate.heal(peer),
            TestControl::AddExternalAddress(addr) => self.swarm.add_external_address(addr),
            TestControl::RemoveExternalAddress(addr) => self.swarm.remove_external_address(&addr),
        }
        Ok(())
    }
}
