//! [`Replicator`]: the router of replication. It follows the network, keeps one [`PeerActor`]
//! per connected peer (which owns everything about that peer) and routes to them: the peer's
//! requests to its actor, each commit to the actors of the peers that proved its group, gossip
//! out (our commits, sealed on the group's topic) and in (to the actor that answers for it);
//! and it runs the discovery rounds. Its one table of its own is the routing index (which
//! peers proved which groups), fed by the peer actors ([`PeerProved`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};
use rand::rngs::OsRng;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    discovery,
    gossip_route::{route_gossip, GossipRoute},
    peer::{
        Announced, ConnectionOpened, Disconnected, GetState, Identified, Inbound, PeerActor,
        PeerContext, Penalise, Push, Rehello,
    },
    ports::{merge_directories, Directory, DirectorySource, GroupsChanged, LogAppended},
    wire,
};
use crate::{
    crypto::{discovery_keys, gossip_topic, seal_announcement},
    metrics::Metrics,
    p2p::{Announcement, NetworkEvent, SwarmHandle},
    storage::Storage,
};

/// Entries ride inline in a gossip announcement up to this many bytes (idle deliveries);
/// larger batches announce heads only.
const GOSSIP_INLINE_BYTES: usize = 16 * 1024;

/// How often the groups' discovery keys are provided and looked up in the DHT and at the
/// rendezvous servers.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// A peer proved it holds these groups' link keys (sent by its [`PeerActor`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerProved {
    /// The peer.
    pub peer: PeerId,
    /// The groups.
    pub groups: Vec<[u8; 32]>,
}

/// What this node knows of one connected peer (`/admin/v1/peers`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerState {
    /// The peer id.
    pub peer_id: String,
    /// Addresses it listens on (identify).
    pub listen_addrs: Vec<String>,
    /// Protocols it speaks (identify).
    pub protocols: Vec<String>,
    /// Its agent version (identify).
    pub agent_version: Option<String>,
    /// Open connections.
    pub connections: usize,
    /// How many groups it replicates with this node (proved through the link key).
    pub replicated_groups: usize,
    /// Entries received from it and newly stored.
    pub entries_received: u64,
    /// Set when it was penalised: why.
    pub penalty: Option<String>,
}

/// The state of every connected peer.
#[derive(Message)]
#[rtype(result = "Vec<PeerState>")]
pub struct PeerStates;

/// What the replicator is configured with.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    /// How long a peer that sent invalid data is refused (`p2p.penalty_secs`).
    pub penalty: Duration,
    /// Rendezvous servers where the groups' discovery keys are registered (`p2p.rendezvous`).
    pub rendezvous_servers: Vec<PeerId>,
}

/// The replicator actor.
pub struct Replicator {
    context: PeerContext,
    events: Option<mpsc::Receiver<NetworkEvent>>,
    directory: Directory,
    /// The directory of each source; `directory` merges them.
    sources: HashMap<DirectorySource, Directory>,
    peers: HashMap<PeerId, Addr<PeerActor>>,
    /// The routing index: groups each peer proved (told by its actor).
    peer_groups: HashMap<PeerId, HashSet<[u8; 32]>>,
    discovering: bool,
    rediscover: bool,
    settings: ReplicationSettings,
    registrations: discovery::Registrations,
    /// Gossip topic of each replicated group.
    topics: HashMap<String, [u8; 32]>,
    lifeline: crate::supervision::Lifeline,
}

impl Replicator {
    /// A replicator fed by `events` from the swarm.
    pub fn new(
        swarm: SwarmHandle,
        storage: Arc<dyn Storage>,
        metrics: Metrics,
        settings: ReplicationSettings,
        events: mpsc::Receiver<NetworkEvent>,
        lifeline: crate::supervision::Lifeline,
    ) -> Self {
        Self {
            context: PeerContext {
                swarm,
                storage,
                metrics,
                penalty: settings.penalty,
            },
            events: Some(events),
            directory: Arc::new(HashMap::new()),
            sources: HashMap::new(),
            peers: HashMap::new(),
            peer_groups: HashMap::new(),
            discovering: false,
            rediscover: false,
            settings,
            registrations: discovery::Registrations::default(),
            topics: HashMap::new(),
            lifeline,
        }
    }

    /// Provides every group's discovery keys in the DHT, registers them at the rendezvous
    /// servers, and dials the members found that are not connected yet. One round at a time.
    fn discover(&mut self, ctx: &mut Context<Self>) {
        if self.discovering {
            self.rediscover = true;
            return;
        }
        if self.directory.is_empty() {
            return;
        }
        self.discovering = true;
        let now = crate::clock::unix_now();
        let keys: Vec<[u8; 32]> = self
            .directory
            .values()
            .flat_map(|g| discovery_keys(&g.link_key, now))
            .collect();
        let servers = self.settings.rendezvous_servers.clone();
        let replicas: Vec<(PeerId, Vec<Multiaddr>)> = self
            .directory
            .values()
            .flat_map(|g| g.replicas.iter().cloned())
            .collect();
        let round = discovery::Round {
            replicas,
            swarm: self.context.swarm.clone(),
            register: self
                .registrations
                .due(&servers, &keys, std::time::Instant::now()),
            keys,
            servers,
            connected: self.peers.keys().copied().collect(),
            metrics: self.context.metrics.clone(),
        };
        let started = std::time::Instant::now();
        ctx.spawn(
            round
                .run()
                .into_actor(self)
                .map(move |outcome, actor, ctx| {
                    for (pair, ttl) in outcome.registered {
                        actor.registrations.registered(pair, started, ttl);
                    }
                    actor.discovering = false;
                    if std::mem::take(&mut actor.rediscover) {
                        actor.discover(ctx);
                    }
                }),
        );
    }

    /// Whether `peer` proved `group` (the routing index).
    fn proven(&self, peer: &PeerId, group: &[u8; 32]) -> bool {
        self.peer_groups
            .get(peer)
            .is_some_and(|groups| groups.contains(group))
    }

    fn update_peer_gauge(&self) {
        let replicating = self.peer_groups.values().filter(|g| !g.is_empty()).count();
        self.context
            .metrics
            .replication_peers
            .set(i64::try_from(replicating).unwrap_or(i64::MAX));
    }

    /// The actor of `peer`, started if it has none yet.
    /// A peer actor that died (its lifeline reported it) is replaced here, on the peer's
    /// next event.
    fn actor(&mut self, peer: PeerId, ctx: &mut Context<Self>) -> Addr<PeerActor> {
        if let Some(actor) = self.peers.get(&peer).filter(|a| a.connected()) {
            return actor.clone();
        }
        let actor = PeerActor::new(
            peer,
            self.context.clone(),
            ctx.address(),
            self.directory.clone(),
            self.lifeline
                .child("peer actor", crate::supervision::PEER_ACTOR_RESTART),
        )
        .start();
        self.peers.insert(peer, actor.clone());
        actor
    }
}

impl Replicator {
    /// Publishes a local commit's heads (and its entries when small) on the group's topic,
    /// sealed with the link key, for members not connected to us directly.
    fn gossip(&self, msg: &LogAppended) {
        let Some(links) = self.directory.get(msg.log.group_pk()) else {
            return;
        };
        let inline: usize = msg.entries.iter().map(Vec::len).sum();
        let announcement = Announcement {
            log: msg.log,
            heads: msg.heads.clone(),
            entries: if inline <= GOSSIP_INLINE_BYTES {
                msg.entries.clone()
            } else {
                Vec::new()
            },
        };
        let topic = gossip_topic(&links.link_key);
        match seal_announcement(&links.link_key, &topic, &announcement.encode(), &mut OsRng) {
            Ok(sealed) => self.context.swarm.publish(topic, sealed),
            Err(e) => tracing::warn!(%e, "cannot seal a gossip announcement"),
        }
    }

    /// An announcement received on a group topic: opened with the group's link key and
    /// handed to the peer actor that answers for it ([`route_gossip`]): its author's with the
    /// inline entries, or a forwarder's that proved the group with the heads only.
    fn on_gossip(&self, author: Option<PeerId>, source: PeerId, topic: &str, data: &[u8]) {
        let Some(group) = self.topics.get(topic) else {
            return;
        };
        let Some(links) = self.directory.get(group) else {
            return;
        };
        let announcement =
            wire::open_gossip(&links.link_key, topic, data).filter(|a| a.log.group_pk() == group);
        let Some(mut announcement) = announcement else {
            tracing::debug!(%source, "gossip announcement does not open");
            return;
        };
        let Some(route) = route_gossip(author, source, |peer| self.proven(peer, group)) else {
            tracing::debug!(%source, "gossip from peers that proved nothing: dropped");
            return;
        };
        let peer = match route {
            GossipRoute::FromAuthor(author) => author,
            GossipRoute::HeadsFrom(forwarder) => {
                announcement.entries.clear();
                forwarder
            }
        };
        if let Some(actor) = self.peers.get(&peer) {
            actor.do_send(Announced {
                announcement,
                reply: None,
            });
        }
    }
}

impl Actor for Replicator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        if let Some(events) = self.events.take() {
            ctx.add_stream(ReceiverStream::new(events));
        }
        ctx.run_interval(DISCOVERY_INTERVAL, |actor, ctx| actor.discover(ctx));
    }
}

impl StreamHandler<NetworkEvent> for Replicator {
    fn handle(&mut self, event: NetworkEvent, ctx: &mut Self::Context) {
        match event {
            NetworkEvent::Connected {
                peer, connection, ..
            } => self.actor(peer, ctx).do_send(ConnectionOpened(connection)),
            NetworkEvent::Disconnected { peer } => {
                self.peer_groups.remove(&peer);
                self.update_peer_gauge();
                if let Some(actor) = self.peers.remove(&peer) {
                    actor.do_send(Disconnected);
                }
            }
            NetworkEvent::Identified {
                peer,
                protocols,
                listen_addrs,
                agent_version,
            } => {
                if let Some(actor) = self.peers.get(&peer) {
                    actor.do_send(Identified {
                        protocols,
                        listen_addrs,
                        agent_version,
                    });
                }
            }
            NetworkEvent::SyncRequest {
                peer,
                request,
                reply,
            } => self.actor(peer, ctx).do_send(Inbound { request, reply }),
            NetworkEvent::Gossip {
                author,
                source,
                topic,
                data,
            } => self.on_gossip(author, source, &topic, &data),
            NetworkEvent::Violation { peer, reason } => {
                let rejection = wire::Rejection::Protocol(reason);
                match self.peers.get(&peer) {
                    Some(actor) => actor.do_send(Penalise(rejection)),
                    None => {
                        let context = self.context.clone();
                        tokio::spawn(async move { context.penalise(peer, &rejection).await });
                    }
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        tracing::debug!("network events ended; replicator stops");
        ctx.stop();
    }
}

impl Handler<GroupsChanged> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: GroupsChanged, ctx: &mut Self::Context) {
        self.sources.insert(msg.source, msg.groups);
        self.directory = merge_directories(&self.sources);
        let topics: HashMap<String, [u8; 32]> = self
            .directory
            .iter()
            .map(|(pk, g)| (gossip_topic(&g.link_key), *pk))
            .collect();
        let subscribe: Vec<String> = topics
            .keys()
            .filter(|t| !self.topics.contains_key(*t))
            .cloned()
            .collect();
        let unsubscribe: Vec<String> = self
            .topics
            .keys()
            .filter(|t| !topics.contains_key(*t))
            .cloned()
            .collect();
        self.topics = topics;
        let swarm = self.context.swarm.clone();
        tokio::spawn(async move {
            if let Err(e) = swarm.set_topics(subscribe, unsubscribe).await {
                tracing::warn!(%e, "cannot update gossip topics");
            }
        });
        for actor in self.peers.values() {
            actor.do_send(Rehello(self.directory.clone()));
        }
        self.discover(ctx);
    }
}

impl Handler<PeerProved> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: PeerProved, _: &mut Self::Context) {
        if self.peers.contains_key(&msg.peer) {
            self.peer_groups
                .entry(msg.peer)
                .or_default()
                .extend(msg.groups);
            self.update_peer_gauge();
        }
    }
}

impl Handler<LogAppended> for Replicator {
    type Result = ();

    fn handle(&mut self, msg: LogAppended, _: &mut Self::Context) {
        let group = msg.log.group_pk();
        tracing::debug!(log = ?msg.log, entries = msg.entries.len(), peers = self.peer_groups.len(), "announcing");
        if msg.source.is_none() {
            self.gossip(&msg);
        }
        for (peer, groups) in &self.peer_groups {
            if Some(*peer) == msg.source || !groups.contains(group) {
                continue;
            }
            if let Some(actor) = self.peers.get(peer) {
                actor.do_send(Push {
                    log: msg.log,
                    heads: msg.heads.clone(),
                    entries: msg.entries.clone(),
                });
            }
        }
    }
}

impl Handler<PeerStates> for Replicator {
    type Result = ResponseFuture<Vec<PeerState>>;

    fn handle(&mut self, _: PeerStates, _: &mut Self::Context) -> Self::Result {
        let actors: Vec<Addr<PeerActor>> = self.peers.values().cloned().collect();
        Box::pin(async move {
            let mut states = Vec::with_capacity(actors.len());
            for actor in actors {
                if let Ok(state) = actor.send(GetState).await {
                    states.push(state);
                }
            }
            states.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
            states
        })
    }
}
