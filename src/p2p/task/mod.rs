//! The task that owns the `Swarm`: answers [`SwarmCommand`]s ([`commands`]) and follows swarm
//! events ([`events`]).

mod commands;
mod events;
mod mirror;
mod rendezvous;
mod sync;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use futures::{stream::FuturesUnordered, StreamExt};
use libp2p::{
    core::transport::ListenerId,
    identity::Keypair,
    kad,
    multiaddr::Protocol,
    request_response::OutboundRequestId,
    swarm::{ConnectionId, SwarmEvent},
    Multiaddr, PeerId, Swarm,
};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::{
    behaviour::Behaviour,
    error::P2pError,
    handle::{PeerConnection, Pending, SwarmCommand},
    listen::Expected,
    network_event::NetworkEvent,
    relay_ledger::{RelayLedger, NO_EXTERNAL_ADDRESS},
    settings::P2pSettings,
};
use crate::metrics::{ConnectionLabels, P2pMetrics};

/// How often expired replies and penalties are swept.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// What identify and ping told us about a connected peer.
#[derive(Debug, Default)]
struct PeerDetails {
    agent_version: Option<String>,
    rtt: Option<Duration>,
}

/// The swarm and everything the task tracks beside it.
pub(super) struct SwarmTask {
    swarm: Swarm<Behaviour>,
    settings: P2pSettings,
    metrics: P2pMetrics,
    libp2p_metrics: libp2p::metrics::Metrics,
    relay: RelayLedger,
    connections: HashMap<PeerId, HashMap<ConnectionId, PeerConnection>>,
    details: HashMap<PeerId, PeerDetails>,
    dials: HashMap<ConnectionId, (Multiaddr, Pending<PeerId>)>,
    finds: HashMap<kad::QueryId, (PeerId, Pending<Vec<Multiaddr>>)>,
    provider_lookups: HashMap<kad::QueryId, (Vec<PeerId>, Pending<Vec<PeerId>>)>,
    relay_listens: HashMap<ListenerId, (Multiaddr, Pending<Multiaddr>)>,
    kad_bootstrapped: bool,
    events: mpsc::Sender<NetworkEvent>,
    sync_requests: HashMap<OutboundRequestId, (PeerId, sync::SyncReply)>,
    sync_answers: FuturesUnordered<sync::PendingAnswer>,
    /// Signs the peer records this node registers at rendezvous servers.
    record_key: Keypair,
    rendezvous_requests: HashMap<OutboundRequestId, (PeerId, rendezvous::RendezvousReply)>,
    mirror_requests: HashMap<OutboundRequestId, mirror::MirrorReply>,
    mirror_answers: FuturesUnordered<mirror::PendingMirrorAnswer>,
    /// The inbound rendezvous streams being served (aborted when the task ends).
    rendezvous_streams: JoinSet<()>,
}

impl SwarmTask {
    pub(super) fn new(
        swarm: Swarm<Behaviour>,
        settings: P2pSettings,
        metrics: P2pMetrics,
        libp2p_metrics: libp2p::metrics::Metrics,
        events: mpsc::Sender<NetworkEvent>,
        record_key: Keypair,
    ) -> Self {
        let relay = RelayLedger::new(swarm.behaviour().relay_server.is_enabled(), metrics.clone());
        Self {
            swarm,
            settings,
            metrics,
            libp2p_metrics,
            relay,
            connections: HashMap::new(),
            details: HashMap::new(),
            dials: HashMap::new(),
            finds: HashMap::new(),
            provider_lookups: HashMap::new(),
            relay_listens: HashMap::new(),
            kad_bootstrapped: false,
            events,
            sync_requests: HashMap::new(),
            sync_answers: FuturesUnordered::new(),
            record_key,
            rendezvous_requests: HashMap::new(),
            mirror_requests: HashMap::new(),
            mirror_answers: FuturesUnordered::new(),
            rendezvous_streams: JoinSet::new(),
        }
    }

    /// Drives the swarm until every listener in `pending` reported its addresses: one for a
    /// specific IP, one per interface address for `0.0.0.0` / `::` (so the addresses printed
    /// at start-up are all of them). A listener that reported some but not all of its
    /// interfaces by the deadline counts as bound (an interface may be down); one that
    /// reported none is an error.
    pub(super) async fn wait_for_listeners(
        &mut self,
        mut pending: HashMap<ListenerId, (Multiaddr, Expected)>,
    ) -> Result<(), P2pError> {
        let mut bound: HashSet<ListenerId> = HashSet::new();
        let deadline = tokio::time::sleep(crate::defaults::LISTEN_TIMEOUT);
        tokio::pin!(deadline);
        while !pending.is_empty() {
            tokio::select! {
                _ = &mut deadline => {
                    if let Some((addr, _)) = pending
                        .iter()
                        .find(|(id, _)| !bound.contains(id))
                        .map(|(_, p)| p)
                    {
                        return Err(P2pError::Listen {
                            addr: addr.clone(),
                            reason: format!("not bound after {:?}", crate::defaults::LISTEN_TIMEOUT),
                        });
                    }
                    tracing::debug!(?pending, "some interfaces reported no listen address");
                    return Ok(());
                }
                event = self.swarm.select_next_some() => match event {
                    SwarmEvent::NewListenAddr { listener_id, address } => {
                        tracing::info!(%address, "listening");
                        bound.insert(listener_id);
                        if let Some((_, expected)) = pending.get_mut(&listener_id) {
                            if expected.reported(&address) {
                                pending.remove(&listener_id);
                            }
                        }
                    }
                    SwarmEvent::ListenerClosed { listener_id, addresses, reason }
                        if pending.contains_key(&listener_id) =>
                    {
                        let configured = pending[&listener_id].0.clone();
                        return Err(P2pError::Listen {
                            addr: addresses.first().cloned().unwrap_or(configured),
                            reason: match reason {
                                Ok(()) => "the listener closed".to_string(),
                                Err(e) => crate::error::one_line(&e),
                            },
                        });
                    }
                    SwarmEvent::ListenerError { listener_id, error }
                        if pending.contains_key(&listener_id) =>
                    {
                        return Err(P2pError::Listen {
                            addr: pending[&listener_id].0.clone(),
                            reason: crate::error::one_line(&error),
                        });
                    }
                    other => self.handle_event(other),
                }
            }
        }
        Ok(())
    }

    /// Announces the configured external addresses (or warns that a relay cannot serve
    /// without one) and joins the network through the bootstrap peers.
    pub(super) fn start_networking(&mut self) {
        for addr in self.settings.external_addresses.clone() {
            tracing::info!(%addr, "external address (configured)");
            self.swarm.add_external_address(addr);
        }
        if self.relay.enabled() && self.swarm.external_addresses().next().is_none() {
            tracing::warn!("relay.enabled, but {NO_EXTERNAL_ADDRESS}");
        }
        for addr in self.settings.bootstrap.clone() {
            if let Some(peer) = peer_of(&addr) {
                self.swarm
                    .behaviour_mut()
                    .kad
                    .add_address(&peer, addr.clone());
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, %e, "cannot dial bootstrap peer");
            }
        }
        self.bootstrap_kad();
    }

    /// Runs until `shutdown` turns true (or its sender is dropped) or every handle is dropped.
    pub(super) async fn run(
        mut self,
        mut inbox: mpsc::Receiver<SwarmCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut maintenance = tokio::time::interval(MAINTENANCE_INTERVAL);
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() { break; }
                }
                command = inbox.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.handle_event(event),
                Some((answer, channel)) = self.sync_answers.next(), if !self.sync_answers.is_empty() => {
                    self.send_sync_answer(answer, channel);
                }
                Some((answer, channel)) = self.mirror_answers.next(), if !self.mirror_answers.is_empty() => {
                    self.send_mirror_answer(answer, channel);
                }
                Some(_) = self.rendezvous_streams.join_next(), if !self.rendezvous_streams.is_empty() => {}
                _ = maintenance.tick() => self.expire(Instant::now()),
            }
        }
        tracing::debug!("swarm task stopped");
    }

    fn bootstrap_kad(&mut self) {
        if self.kad_bootstrapped {
            return;
        }
        match self.swarm.behaviour_mut().kad.bootstrap() {
            Ok(_) => {
                tracing::debug!("DHT bootstrap started");
                self.kad_bootstrapped = true;
            }
            Err(kad::NoKnownPeers()) => {
                tracing::debug!("DHT bootstrap waits for a first peer");
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        self.swarm.behaviour_mut().gate.prune(now);
        expire_map(
            &mut self.dials,
            now,
            |(_, p)| p.deadline,
            |(_, p)| {
                let _ = p.reply.send(Err(P2pError::Timeout("dial")));
            },
        );
        expire_map(
            &mut self.provider_lookups,
            now,
            |(_, p)| p.deadline,
            |(found, p)| {
                let _ = p.reply.send(Ok(found));
            },
        );
        expire_map(
            &mut self.finds,
            now,
            |(_, p)| p.deadline,
            |(_, p)| {
                let _ = p.reply.send(Err(P2pError::Timeout("DHT lookup")));
            },
        );
        let expired: Vec<ListenerId> = self
            .relay_listens
            .iter()
            .filter(|(_, (_, p))| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((_, pending)) = self.relay_listens.remove(&id) {
                self.swarm.remove_listener(id);
                let _ = pending
                    .reply
                    .send(Err(P2pError::Timeout("relay reservation")));
            }
        }
    }
}

fn labels(connection: &PeerConnection) -> ConnectionLabels {
    ConnectionLabels {
        direction: if connection.inbound {
            "inbound"
        } else {
            "outbound"
        },
        route: connection.route.label(),
    }
}

/// The peer id an address ends with, if any.
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    super::peer_id_of(addr)
}

/// `addr` ending in `/p2p/<peer>`.
fn with_peer(addr: Multiaddr, peer: PeerId) -> Multiaddr {
    if peer_of(&addr) == Some(peer) {
        addr
    } else {
        addr.with(Protocol::P2p(peer))
    }
}

/// Removes the entries whose deadline has passed, handing each to `expired`.
fn expire_map<K: Copy + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    now: Instant,
    deadline: impl Fn(&V) -> Instant,
    mut expired: impl FnMut(V),
) {
    let keys: Vec<K> = map
        .iter()
        .filter(|(_, v)| deadline(v) <= now)
        .map(|(k, _)| *k)
        .collect();
    for key in keys {
        if let Some(value) = map.remove(&key) {
            expired(value);
        }
    }
}
