//! [`PeerActor`]: the one owner of everything about one connected peer: what identify and
//! the connections say about it, the link-key hello in both roles ([`super::hello`]), the
//! groups it proved, answering its requests (hello, proof, heads, fetch, announcements),
//! the syncs we run with it, the announcements we send it one batch at a time, and its
//! penalty when it sends invalid data. The [`Replicator`] only routes to it.
//!
//! - `respond`: the peer's requests, answered.
//! - `sync`: our side: the hello as requester, syncing a log (heads, pipelined fetches).
//! - `announce`: announcements: ours sent in order, the peer's stored in order.

mod announce;
mod respond;
mod sync;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

pub use announce::{Announced, Push};

use super::{
    hello::HelloResponder,
    ports::Directory,
    replicator::{PeerProved, PeerState, Replicator},
    wire::Rejection,
};
use crate::{
    log::{LogId, LogKind},
    metrics::Metrics,
    p2p::{PeerConnection, SwarmHandle, SyncRequest, SyncResponse},
    storage::Storage,
};

/// What every peer actor shares.
#[derive(Clone)]
pub struct PeerContext {
    /// The swarm.
    pub swarm: SwarmHandle,
    /// Storage (reads only: heads and fetches are served from it).
    pub storage: Arc<dyn Storage>,
    /// Metrics.
    pub metrics: Metrics,
    /// How long a penalised peer is refused (`p2p.penalty_secs`).
    pub penalty: Duration,
}

impl PeerContext {
    /// Counts the rejection, disconnects `peer` and refuses it for the configured time.
    pub async fn penalise(&self, peer: PeerId, rejection: &Rejection) {
        tracing::warn!(%peer, %rejection, "penalising peer");
        rejection.count(&self.metrics, 1);
        if let Err(e) = self.swarm.penalise(peer, self.penalty).await {
            tracing::warn!(%peer, %e, "cannot penalise peer");
        }
    }
}

/// The actor of one connected peer.
pub struct PeerActor {
    peer: PeerId,
    context: PeerContext,
    replicator: Addr<Replicator>,
    directory: Directory,
    connections: Vec<PeerConnection>,
    listen_addrs: Vec<Multiaddr>,
    protocols: Vec<String>,
    agent_version: Option<String>,
    /// Groups the peer proved it holds (in either role of the hello).
    groups: HashSet<[u8; 32]>,
    /// Hellos of the peer we answered and it has not proven yet.
    responder: HelloResponder,
    entries_received: u64,
    penalty: Option<String>,
    /// Hellos of ours that failed in a row (a stream reset, a timeout): retried with backoff.
    hello_failures: u32,
    /// Syncs refused as "not proven" in a row, by log (the peer's hello with us was still in
    /// flight): retried with backoff.
    not_proven: HashMap<LogId, u32>,
    /// Logs being synced, and whether another round was asked for meanwhile.
    syncing: HashMap<LogId, bool>,
    outbox: announce::Outbox,
    inbox: announce::Inbox,
    span: tracing::Span,
    lifeline: crate::supervision::Lifeline,
}

impl PeerActor {
    /// The actor of `peer`.
    pub fn new(
        peer: PeerId,
        context: PeerContext,
        replicator: Addr<Replicator>,
        directory: Directory,
        lifeline: crate::supervision::Lifeline,
    ) -> Self {
        Self {
            peer,
            context,
            replicator,
            directory,
            connections: Vec::new(),
            listen_addrs: Vec::new(),
            protocols: Vec::new(),
            agent_version: None,
            groups: HashSet::new(),
            responder: HelloResponder::default(),
            entries_received: 0,
            penalty: None,
            hello_failures: 0,
            not_proven: HashMap::new(),
            syncing: HashMap::new(),
            outbox: announce::Outbox::default(),
            inbox: announce::Inbox::default(),
            span: tracing::debug_span!("peer", %peer),
            lifeline,
        }
    }

    fn penalise(&mut self, rejection: Rejection, ctx: &mut Context<Self>) {
        if self.penalty.is_some() {
            return;
        }
        self.penalty = Some(rejection.to_string());
        let context = self.context.clone();
        let peer = self.peer;
        ctx.spawn(async move { context.penalise(peer, &rejection).await }.into_actor(self));
    }

    /// Whether the peer proved `group`.
    fn proved(&self, group: &[u8; 32]) -> bool {
        self.groups.contains(group)
    }

    /// Records groups the peer proved and tells the replicator (which routes by group);
    /// returns those it had not proved before.
    fn add_groups(&mut self, groups: &[[u8; 32]]) -> Vec<[u8; 32]> {
        let new: Vec<[u8; 32]> = groups
            .iter()
            .copied()
            .filter(|g| self.groups.insert(*g))
            .collect();
        if !new.is_empty() {
            self.replicator.do_send(PeerProved {
                peer: self.peer,
                groups: new.clone(),
            });
        }
        new
    }

    /// Syncs both logs of each group.
    fn sync_groups(&mut self, groups: Vec<[u8; 32]>, ctx: &mut Context<Self>) {
        for group in groups {
            for kind in [LogKind::Metadata, LogKind::Messages] {
                self.sync_log(LogId::new(group, kind), Vec::new(), ctx);
            }
        }
    }
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        let _span = self.span.clone().entered();
        tracing::debug!("peer actor started");
        self.hello(ctx);
    }
}

/// A connection with the peer opened.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConnectionOpened(pub PeerConnection);

impl Handler<ConnectionOpened> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionOpened, _: &mut Self::Context) {
        self.connections.push(msg.0);
    }
}

/// The last connection with the peer closed: the actor stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnected;

impl Handler<Disconnected> for PeerActor {
    type Result = ();

    fn handle(&mut self, _: Disconnected, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        tracing::debug!("peer actor stops");
        self.lifeline.release();
        ctx.stop();
    }
}

/// What identify said about the peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Identified {
    /// Its protocols.
    pub protocols: Vec<String>,
    /// Its listen addresses.
    pub listen_addrs: Vec<Multiaddr>,
    /// Its agent version.
    pub agent_version: String,
}

impl Handler<Identified> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Identified, _: &mut Self::Context) {
        self.protocols = msg.protocols;
        self.listen_addrs = msg.listen_addrs;
        self.agent_version = Some(msg.agent_version);
    }
}

/// Penalise the peer (it broke a protocol of ours).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Penalise(pub Rejection);

impl Handler<Penalise> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Penalise, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        self.penalise(msg.0, ctx);
    }
}

/// Our groups changed: run the hello again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Rehello(pub Directory);

impl Handler<Rehello> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Rehello, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        self.directory = msg.0;
        self.hello(ctx);
    }
}

/// A sync request of the peer; `reply` takes the answer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    /// The request.
    pub request: SyncRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<SyncResponse>,
}

impl Handler<Inbound> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        let _span = self.span.clone().entered();
        self.on_request(msg.request, msg.reply, ctx);
    }
}

/// The peer's state.
#[derive(Message)]
#[rtype(result = "PeerState")]
pub struct GetState;

impl Handler<GetState> for PeerActor {
    type Result = MessageResult<GetState>;

    fn handle(&mut self, _: GetState, _: &mut Self::Context) -> Self::Result {
        MessageResult(PeerState {
            peer_id: self.peer.to_string(),
            listen_addrs: self.listen_addrs.iter().map(ToString::to_string).collect(),
            protocols: self.protocols.clone(),
            agent_version: self.agent_version.clone(),
            connections: self.connections.len(),
            replicated_groups: self.groups.len(),
            entries_received: self.entries_received,
            penalty: self.penalty.clone(),
        })
    }
}
