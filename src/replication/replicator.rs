//! [`Replicator`]: follows the network, keeps one [`PeerActor`] per connected peer, answers
//! other replicas' sync requests and pushes new entries to the peers of their group.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use libp2p::PeerId;
use prost::Message as _;
use rand::{rngs::OsRng, seq::SliceRandom, RngCore};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::{
    discovery,
    gossip_route::{route_gossip, GossipRoute},
    peer::{Announced, GetState, PeerActor, PeerContext, Push, Rehello, SyncGroups},
    wire::{self, ERROR_MALFORMED, ERROR_NOT_PROVEN, ERROR_UNAVAILABLE},
    MAX_FETCH_BYTES, MAX_FETCH_ENTRIES, MAX_HEADS_LOGS, MAX_TAGS,
};
use crate::{
    actors::{account::AccountActor, LogAppended},
    crypto::{
        discovery_keys, gossip_topic, link_proof_tag, open_announcement, seal_announcement,
        LinkKey, VerifyingKey, LINK_NONCE_LEN,
    },
    log::{EntryId, LogId, OrderKey},
    metrics::Metrics,
    p2p::{NetworkEvent, SwarmHandle},
    proto::wire::{
        sync_request::Request, sync_response::Response, SyncAnnounce, SyncFetch, SyncFetchReply,
        SyncHeadsReply, SyncHelloReply, SyncLogHeads, SyncProve, SyncProveReply, SyncResponse,
    },
    storage::{Direction, OrderRange, Storage},
};

/// Entries ride inline in a gossip announcement up to this many bytes (idle deliveries);
/// larger batches announce heads only.
const GOSSIP_INLINE_BYTES: usize = 16 * 1024;

/// How often the groups' discovery keys are provided and looked up in the DHT and at the
/// rendezvous servers.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// Hellos of one peer answered and waiting for its proof, at most.
const MAX_HELLOS_PER_PEER: usize = 8;

/// What replication needs of one group: never its secret.
#[derive(Clone)]
pub struct GroupLinks {
    /// The link key (hello tags).
    pub link_key: LinkKey,
    /// The public half of the group signing key (checks every received entry).
    pub signing_pk: VerifyingKey,
}

/// The groups this node replicates, by group public key.
pub type Directory = Arc<HashMap<[u8; 32], GroupLinks>>;

/// The groups to replicate changed (sent by the account actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupsChanged(pub Directory);

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
    peers: HashMap<PeerId, Addr<PeerActor>>,
    /// Hellos answered and not proven yet: (peer, our nonce) -> their nonce.
    sessions: HashMap<(PeerId, [u8; LINK_NONCE_LEN]), [u8; LINK_NONCE_LEN]>,
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
        account: Addr<AccountActor>,
        storage: Arc<dyn Storage>,
        metrics: Metrics,
        settings: ReplicationSettings,
        events: mpsc::Receiver<NetworkEvent>,
        lifeline: crate::supervision::Lifeline,
    ) -> Self {
        Self {
            context: PeerContext {
                swarm,
                account,
                storage,
                metrics,
                penalty: settings.penalty,
            },
            events: Some(events),
            directory: Arc::new(HashMap::new()),
            peers: HashMap::new(),
            sessions: HashMap::new(),
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let keys: Vec<[u8; 32]> = self
            .directory
            .values()
            .flat_map(|g| discovery_keys(&g.link_key, now))
            .collect();
        let servers = self.settings.rendezvous_servers.clone();
        let round = discovery::Round {
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

    fn local_peer(&self) -> PeerId {
        self.context.swarm.peer_id()
    }

    fn proven(&self, peer: &PeerId, group_pk: &[u8; 32]) -> bool {
        self.peer_groups
            .get(peer)
            .is_some_and(|groups| groups.contains(group_pk))
    }

    fn update_peer_gauge(&self) {
        let replicating = self.peer_groups.values().filter(|g| !g.is_empty()).count();
        self.context
            .metrics
            .replication_peers
            .set(i64::try_from(replicating).unwrap_or(i64::MAX));
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: Option<Request>,
        reply: oneshot::Sender<SyncResponse>,
    ) {
        let answer = match request {
            Some(Request::Hello(hello)) => Some(self.hello(peer, &hello.nonce)),
            Some(Request::Prove(prove)) => Some(self.prove(peer, prove)),
            Some(Request::Heads(heads)) => {
                let logs: Option<Vec<LogId>> = heads
                    .logs
                    .iter()
                    .map(|l| wire::log_from_wire(Some(l)))
                    .collect();
                match logs {
                    None => Some(wire::error(ERROR_MALFORMED, "malformed log")),
                    Some(logs) if logs.len() > MAX_HEADS_LOGS => {
                        Some(wire::error(ERROR_MALFORMED, "too many logs"))
                    }
                    Some(logs) if logs.iter().any(|l| !self.proven(&peer, l.group_pk())) => Some(
                        wire::error(ERROR_NOT_PROVEN, "link key not proven for every log"),
                    ),
                    Some(logs) => {
                        let storage = self.context.storage.clone();
                        tokio::spawn(async move {
                            let _ = reply.send(serve_heads(storage.as_ref(), logs).await);
                        });
                        return;
                    }
                }
            }
            Some(Request::Fetch(fetch)) => match wire::log_from_wire(fetch.log.as_ref()) {
                None => Some(wire::error(ERROR_MALFORMED, "malformed log")),
                Some(log) if !self.proven(&peer, log.group_pk()) => {
                    Some(wire::error(ERROR_NOT_PROVEN, "link key not proven"))
                }
                Some(log) => {
                    let storage = self.context.storage.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(serve_fetch(storage.as_ref(), log, fetch).await);
                    });
                    return;
                }
            },
            Some(Request::Announce(announce)) => match wire::log_from_wire(announce.log.as_ref()) {
                None => Some(wire::error(ERROR_MALFORMED, "malformed log")),
                Some(log) if !self.proven(&peer, log.group_pk()) => {
                    Some(wire::error(ERROR_NOT_PROVEN, "link key not proven"))
                }
                Some(log) => match (self.peers.get(&peer), self.directory.get(log.group_pk())) {
                    (Some(actor), Some(links)) => {
                        actor.do_send(Announced {
                            log,
                            signing_pk: links.signing_pk,
                            heads: announce
                                .heads
                                .iter()
                                .filter_map(wire::head_from_wire)
                                .collect(),
                            entries: announce.entries,
                            reply,
                        });
                        return;
                    }
                    _ => Some(wire::error(ERROR_UNAVAILABLE, "not ready for this peer")),
                },
            },
            None => Some(wire::error(ERROR_MALFORMED, "empty request")),
        };
        if let Some(answer) = answer {
            let _ = reply.send(answer);
        }
    }

    /// Hello: a fresh nonce and one tag per group we hold, in random order.
    fn hello(&mut self, peer: PeerId, nonce: &[u8]) -> SyncResponse {
        let Ok(requester_nonce) = <[u8; LINK_NONCE_LEN]>::try_from(nonce) else {
            return wire::error(ERROR_MALFORMED, "nonce must be 32 bytes");
        };
        let mut responder_nonce = [0u8; LINK_NONCE_LEN];
        OsRng.fill_bytes(&mut responder_nonce);
        if self.sessions.keys().filter(|(p, _)| *p == peer).count() >= MAX_HELLOS_PER_PEER {
            return wire::error(ERROR_UNAVAILABLE, "too many hellos in progress");
        }
        self.sessions
            .insert((peer, responder_nonce), requester_nonce);
        let prover = self.local_peer().to_bytes();
        let mut tags: Vec<Vec<u8>> = self
            .directory
            .values()
            .map(|g| {
                link_proof_tag(&g.link_key, &requester_nonce, &responder_nonce, &prover).to_vec()
            })
            .collect();
        tags.shuffle(&mut OsRng);
        wire::response(Response::Hello(SyncHelloReply {
            nonce: responder_nonce.to_vec(),
            tags,
        }))
    }

    /// Prove: the requester's tags for our last hello with it.
    fn prove(&mut self, peer: PeerId, prove: SyncProve) -> SyncResponse {
        let Ok(responder_nonce) =
            <[u8; LINK_NONCE_LEN]>::try_from(prove.responder_nonce.as_slice())
        else {
            return wire::error(ERROR_MALFORMED, "nonce must be 32 bytes");
        };
        let Some(requester_nonce) = self.sessions.remove(&(peer, responder_nonce)) else {
            return wire::error(ERROR_NOT_PROVEN, "no hello in progress with this nonce");
        };
        if prove.requester_nonce != requester_nonce {
            return wire::error(ERROR_NOT_PROVEN, "nonces do not match the hello");
        }
        if prove.tags.len() > MAX_TAGS {
            return wire::error(ERROR_MALFORMED, "too many tags");
        }
        let tags: HashSet<&[u8]> = prove.tags.iter().map(Vec::as_slice).collect();
        let prover = peer.to_bytes();
        let proven: Vec<[u8; 32]> = self
            .directory
            .iter()
            .filter(|(_, g)| {
                let tag = link_proof_tag(&g.link_key, &requester_nonce, &responder_nonce, &prover);
                tags.contains(tag.as_slice())
            })
            .map(|(pk, _)| *pk)
            .collect();
        let accepted = u32::try_from(proven.len()).unwrap_or(u32::MAX);
        let new = self.add_peer_groups(peer, &proven);
        if !new.is_empty() {
            if let Some(actor) = self.peers.get(&peer) {
                actor.do_send(SyncGroups(new));
            }
        }
        wire::response(Response::Prove(SyncProveReply { accepted }))
    }

    /// Records groups a peer proved; returns those it had not proved before.
    fn add_peer_groups(&mut self, peer: PeerId, groups: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let known = self.peer_groups.entry(peer).or_default();
        let new: Vec<[u8; 32]> = groups
            .iter()
            .copied()
            .filter(|g| known.insert(*g))
            .collect();
        self.update_peer_gauge();
        new
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
        let announce = SyncAnnounce {
            log: Some(wire::log_to_wire(&msg.log)),
            heads: msg.heads.iter().map(wire::head_to_wire).collect(),
            entries: if inline <= GOSSIP_INLINE_BYTES {
                msg.entries.clone()
            } else {
                Vec::new()
            },
        };
        let topic = gossip_topic(&links.link_key);
        match seal_announcement(
            &links.link_key,
            &topic,
            &announce.encode_to_vec(),
            &mut OsRng,
        ) {
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
        let announce = open_announcement(&links.link_key, topic, data)
            .ok()
            .and_then(|plain| SyncAnnounce::decode(plain.as_slice()).ok());
        let Some(announce) = announce else {
            tracing::debug!(%source, "gossip announcement does not open");
            return;
        };
        let Some(log) =
            wire::log_from_wire(announce.log.as_ref()).filter(|l| l.group_pk() == group)
        else {
            return;
        };
        let Some(route) = route_gossip(author, source, |peer| self.proven(peer, group)) else {
            tracing::debug!(%source, "gossip from peers that proved nothing: dropped");
            return;
        };
        let (peer, entries) = match route {
            GossipRoute::FromAuthor(author) => (author, announce.entries),
            GossipRoute::HeadsFrom(forwarder) => (forwarder, Vec::new()),
        };
        if let Some(actor) = self.peers.get(&peer) {
            let (reply, _) = oneshot::channel();
            actor.do_send(Announced {
                log,
                signing_pk: links.signing_pk,
                heads: announce
                    .heads
                    .iter()
                    .filter_map(wire::head_from_wire)
                    .collect(),
                entries,
                reply,
            });
        }
    }
}

/// The heads of each log.
async fn serve_heads(storage: &dyn Storage, logs: Vec<LogId>) -> SyncResponse {
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        match storage.heads(&log).await {
            Ok(heads) => out.push(SyncLogHeads {
                log: Some(wire::log_to_wire(&log)),
                heads: heads.iter().map(wire::head_to_wire).collect(),
            }),
            Err(e) => return wire::error(ERROR_UNAVAILABLE, e.to_string()),
        }
    }
    wire::response(Response::Heads(SyncHeadsReply { logs: out }))
}

/// Entries in total order from `from_lamport` (after `after`), within the caps.
async fn serve_fetch(storage: &dyn Storage, log: LogId, fetch: SyncFetch) -> SyncResponse {
    let lower = match fetch.after.as_ref() {
        Some(after) => match wire::head_from_wire(after) {
            Some(after) => std::ops::Bound::Excluded(after),
            None => return wire::error(ERROR_MALFORMED, "malformed `after`"),
        },
        None => std::ops::Bound::Included(OrderKey {
            lamport: fetch.from_lamport,
            id: EntryId([0; 32]),
        }),
    };
    let limit = fetch.limit.clamp(1, MAX_FETCH_ENTRIES);
    let range = OrderRange {
        lower,
        upper: std::ops::Bound::Unbounded,
        direction: Direction::Forward,
        limit,
    };
    let stored = match storage.range(&log, &range).await {
        Ok(stored) => stored,
        Err(e) => return wire::error(ERROR_UNAVAILABLE, e.to_string()),
    };
    let mut more = stored.len() == limit as usize;
    let mut bytes = 0usize;
    let mut entries = Vec::with_capacity(stored.len());
    for entry in stored {
        bytes += entry.bytes.len();
        if bytes > MAX_FETCH_BYTES && !entries.is_empty() {
            more = true;
            break;
        }
        entries.push(entry.bytes);
    }
    wire::response(Response::Fetch(SyncFetchReply { entries, more }))
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
            } => {
                let actor = self.peers.entry(peer).or_insert_with(|| {
                    PeerActor::new(
                        peer,
                        self.context.clone(),
                        ctx.address(),
                        self.directory.clone(),
                        self.lifeline
                            .child("peer actor", crate::supervision::PEER_ACTOR_RESTART),
                    )
                    .start()
                });
                actor.do_send(super::peer::ConnectionOpened(connection));
            }
            NetworkEvent::Disconnected { peer } => {
                self.sessions.retain(|(p, _), _| *p != peer);
                self.peer_groups.remove(&peer);
                self.update_peer_gauge();
                if let Some(actor) = self.peers.remove(&peer) {
                    actor.do_send(super::peer::Disconnected);
                }
            }
            NetworkEvent::Identified {
                peer,
                protocols,
                listen_addrs,
                agent_version,
            } => {
                if let Some(actor) = self.peers.get(&peer) {
                    actor.do_send(super::peer::Identified {
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
            } => self.on_request(peer, request.request, reply),
            NetworkEvent::Gossip {
                author,
                source,
                topic,
                data,
            } => self.on_gossip(author, source, &topic, &data),
            NetworkEvent::Violation { peer, reason } => {
                let rejection = wire::Rejection::Protocol(reason);
                match self.peers.get(&peer) {
                    Some(actor) => actor.do_send(super::peer::Penalise(rejection)),
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
        self.directory = msg.0;
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
            self.add_peer_groups(msg.peer, &msg.groups);
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
