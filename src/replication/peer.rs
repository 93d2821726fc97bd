//! [`PeerActor`]: one connected peer. It keeps what identify and the connections say about
//! the peer, runs the hello that proves which groups both replicate, syncs those groups'
//! logs, sends our new entries to it one batch at a time, takes its announcements in order,
//! and penalises it when it sends invalid data.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};
use rand::{rngs::OsRng, RngCore};
use tokio::sync::oneshot;

use super::{
    replicator::{Directory, PeerProved, PeerState, Replicator},
    wire::{self, verify_received, Rejection},
    MAX_FETCH_ENTRIES, MAX_INLINE_BYTES, MAX_SYNC_DEPTH_STEPS, MAX_TAGS,
};
use crate::{
    actors::{
        account::{AccountActor, OpenLog, ShareChainKey},
        AppendRemote, GroupStoreActor, RemoteOutcome, ReplayQueued,
    },
    crypto::{link_proof_tag, VerifyingKey, LINK_NONCE_LEN},
    error::Error,
    log::{Entry, EntryId, LogId, LogKind, OrderKey},
    metrics::Metrics,
    p2p::{PeerConnection, SwarmHandle},
    proto::wire::{
        sync_request::Request, sync_response::Response, SyncAnnounce, SyncAnnounceReply, SyncFetch,
        SyncHeads, SyncHello, SyncProve, SyncResponse,
    },
    storage::Storage,
};

/// Announcements of one peer waiting to be stored, at most.
const MAX_INBOX: usize = 32;
/// Heads of stored announcements a peer actor remembers.
const RECENT_HEADS: usize = 256;

/// What every peer actor shares.
#[derive(Clone)]
pub struct PeerContext {
    /// The swarm.
    pub swarm: SwarmHandle,
    /// The account (group stores, chain key shares).
    pub account: Addr<AccountActor>,
    /// Storage (reads only).
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

    async fn open_log(&self, log: LogId) -> Result<Addr<GroupStoreActor>, Error> {
        let (store, _) = self
            .account
            .send(OpenLog {
                group_pk: *log.group_pk(),
                kind: log.kind(),
            })
            .await
            .map_err(|_| Error::Unavailable("account actor is gone".into()))??;
        Ok(store)
    }

    /// Appends verified entries and acts on what the store learnt (chain keys to share,
    /// queued messages to open).
    async fn append(
        &self,
        log: LogId,
        entries: Vec<Entry>,
        source: PeerId,
    ) -> Result<RemoteOutcome, Error> {
        let store = self.open_log(log).await?;
        let outcome = store
            .send(AppendRemote {
                entries,
                source: Some(source),
            })
            .await
            .map_err(|_| Error::Unavailable("group store is gone".into()))??;
        self.appended(log, &outcome, source).await?;
        Ok(outcome)
    }

    /// Acts on what a store learnt from appended entries (chain keys to share, queued
    /// messages to open).
    async fn appended(
        &self,
        log: LogId,
        outcome: &RemoteOutcome,
        source: PeerId,
    ) -> Result<(), Error> {
        self.metrics
            .replication_entries_received
            .inc_by(outcome.stored as u64);
        tracing::debug!(%source, ?log, ?outcome, "remote entries appended");
        if !outcome.new_members.is_empty() {
            self.account
                .send(ShareChainKey {
                    group_pk: *log.group_pk(),
                    members: outcome.new_members.clone(),
                })
                .await
                .map_err(|_| Error::Unavailable("account actor is gone".into()))??;
        }
        if !outcome.new_chains.is_empty() {
            let messages = self
                .open_log(LogId::new(*log.group_pk(), LogKind::Messages))
                .await?;
            messages
                .send(ReplayQueued {
                    devices: outcome.new_chains.clone(),
                })
                .await
                .map_err(|_| Error::Unavailable("group store is gone".into()))??;
        }
        Ok(())
    }
}

/// Why a sync with a peer stopped early.
enum SyncStop {
    /// The peer sent invalid data: penalise it.
    Rejected(Rejection),
    /// Anything else (the peer went away, storage hiccup): try again later.
    Failed(String),
}

impl From<Error> for SyncStop {
    fn from(e: Error) -> Self {
        Self::Failed(e.to_string())
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
    groups: HashSet<[u8; 32]>,
    entries_received: u64,
    penalty: Option<String>,
    /// Logs being synced, and whether another round was asked for meanwhile.
    syncing: HashMap<LogId, bool>,
    outbox: VecDeque<Push>,
    sending: bool,
    inbox: VecDeque<Announced>,
    receiving: bool,
    /// Heads of announcements stored lately (at most [`RECENT_HEADS`]), oldest first.
    recent_heads: HashSet<EntryId>,
    recent_order: VecDeque<EntryId>,
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
            entries_received: 0,
            penalty: None,
            syncing: HashMap::new(),
            outbox: VecDeque::new(),
            sending: false,
            inbox: VecDeque::new(),
            receiving: false,
            recent_heads: HashSet::new(),
            recent_order: VecDeque::new(),
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

    /// Runs the hello: learns which of our groups the peer holds and proves ours.
    fn hello(&mut self, ctx: &mut Context<Self>) {
        let swarm = self.context.swarm.clone();
        let directory = self.directory.clone();
        let peer = self.peer;
        let local = swarm.peer_id();
        let fut = async move {
            let mut requester_nonce = [0u8; LINK_NONCE_LEN];
            OsRng.fill_bytes(&mut requester_nonce);
            let reply = swarm
                .sync(
                    peer,
                    wire::request(Request::Hello(SyncHello {
                        nonce: requester_nonce.to_vec(),
                    })),
                )
                .await
                .map_err(|e| SyncStop::Failed(e.to_string()))?;
            let Some(Response::Hello(hello)) = reply.response else {
                return Err(SyncStop::Failed(format!("hello refused: {reply:?}")));
            };
            let responder_nonce = <[u8; LINK_NONCE_LEN]>::try_from(hello.nonce.as_slice())
                .map_err(|_| SyncStop::Rejected(Rejection::Protocol("bad hello nonce".into())))?;
            if hello.tags.len() > MAX_TAGS {
                return Err(SyncStop::Rejected(Rejection::Protocol(
                    "too many tags".into(),
                )));
            }
            let theirs: HashSet<&[u8]> = hello.tags.iter().map(Vec::as_slice).collect();
            let prover = peer.to_bytes();
            let shared: Vec<[u8; 32]> = directory
                .iter()
                .filter(|(_, g)| {
                    let tag =
                        link_proof_tag(&g.link_key, &requester_nonce, &responder_nonce, &prover);
                    theirs.contains(tag.as_slice())
                })
                .map(|(pk, _)| *pk)
                .collect();
            let ours = local.to_bytes();
            let tags = shared
                .iter()
                .filter_map(|pk| directory.get(pk))
                .map(|g| {
                    link_proof_tag(&g.link_key, &requester_nonce, &responder_nonce, &ours).to_vec()
                })
                .collect();
            let reply = swarm
                .sync(
                    peer,
                    wire::request(Request::Prove(SyncProve {
                        requester_nonce: requester_nonce.to_vec(),
                        responder_nonce: responder_nonce.to_vec(),
                        tags,
                    })),
                )
                .await
                .map_err(|e| SyncStop::Failed(e.to_string()))?;
            match reply.response {
                Some(Response::Prove(_)) => Ok(shared),
                other => Err(SyncStop::Failed(format!("proof refused: {other:?}"))),
            }
        };
        ctx.spawn(fut.into_actor(self).map(|result, actor, ctx| match result {
            Ok(shared) => {
                tracing::debug!(peer = %actor.peer, groups = shared.len(), "hello done");
                actor.replicator.do_send(PeerProved {
                    peer: actor.peer,
                    groups: shared.clone(),
                });
                actor.sync_groups(shared, ctx);
            }
            Err(SyncStop::Rejected(rejection)) => actor.penalise(rejection, ctx),
            Err(SyncStop::Failed(reason)) => {
                tracing::debug!(peer = %actor.peer, reason, "hello failed");
            }
        }));
    }

    /// Syncs both logs of each group.
    fn sync_groups(&mut self, groups: Vec<[u8; 32]>, ctx: &mut Context<Self>) {
        for group in groups {
            self.groups.insert(group);
            for kind in [LogKind::Metadata, LogKind::Messages] {
                self.sync_log(LogId::new(group, kind), Vec::new(), ctx);
            }
        }
    }

    /// Syncs one log with the peer: asks for its heads (unless given), fetches what we lack.
    /// A sync asked for while one runs runs once more after it.
    fn sync_log(&mut self, log: LogId, heads: Vec<OrderKey>, ctx: &mut Context<Self>) {
        if let Some(again) = self.syncing.get_mut(&log) {
            *again = true;
            return;
        }
        let Some(links) = self.directory.get(log.group_pk()) else {
            return;
        };
        self.syncing.insert(log, false);
        let context = self.context.clone();
        let peer = self.peer;
        let signing_pk = links.signing_pk;
        let fut = async move { sync_log(&context, peer, log, signing_pk, heads).await };
        ctx.spawn(fut.into_actor(self).map(move |result, actor, ctx| {
            let again = actor.syncing.remove(&log).unwrap_or(false);
            match result {
                Ok(stored) => {
                    tracing::debug!(peer = %actor.peer, ?log, stored, "sync done");
                    actor.entries_received += stored as u64;
                }
                Err(SyncStop::Rejected(rejection)) => return actor.penalise(rejection, ctx),
                Err(SyncStop::Failed(reason)) => {
                    tracing::debug!(peer = %actor.peer, ?log, reason, "sync stopped");
                }
            }
            if again {
                actor.sync_log(log, Vec::new(), ctx);
            }
        }));
    }

    /// Sends the queued pushes, merged per log, one request at a time.
    fn send_next(&mut self, ctx: &mut Context<Self>) {
        if self.sending || self.penalty.is_some() {
            return;
        }
        let Some(first) = self.outbox.pop_front() else {
            return;
        };
        let mut push = first;
        while let Some(next) = self.outbox.front() {
            let size: usize = push.entries.iter().chain(&next.entries).map(Vec::len).sum();
            if next.log != push.log || size > MAX_INLINE_BYTES {
                break;
            }
            if let Some(next) = self.outbox.pop_front() {
                push.entries.extend(next.entries);
                push.heads = next.heads;
            }
        }
        if push.entries.iter().map(Vec::len).sum::<usize>() > MAX_INLINE_BYTES {
            push.entries.clear();
        }
        self.sending = true;
        let swarm = self.context.swarm.clone();
        let peer = self.peer;
        let request = wire::request(Request::Announce(SyncAnnounce {
            log: Some(wire::log_to_wire(&push.log)),
            heads: push.heads.iter().map(wire::head_to_wire).collect(),
            entries: push.entries,
        }));
        ctx.spawn(
            async move { swarm.sync(peer, request).await }
                .into_actor(self)
                .map(|result, actor, ctx| {
                    actor.sending = false;
                    if let Err(e) = result {
                        tracing::debug!(peer = %actor.peer, %e, "announce failed");
                    }
                    actor.send_next(ctx);
                }),
        );
    }

    /// Remembers heads whose entries are stored, so the same announcement coming again (by
    /// gossip after directly, or the other way round) is dropped without a lookup.
    fn remember_heads(&mut self, heads: &[OrderKey]) {
        for head in heads {
            if self.recent_heads.insert(head.id) {
                self.recent_order.push_back(head.id);
            }
        }
        while self.recent_order.len() > RECENT_HEADS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent_heads.remove(&old);
            }
        }
    }

    /// Stores the peer's announcements in order, one at a time.
    fn receive_next(&mut self, ctx: &mut Context<Self>) {
        if self.receiving {
            return;
        }
        let Some(announced) = self.inbox.pop_front() else {
            return;
        };
        self.receiving = true;
        let context = self.context.clone();
        let peer = self.peer;
        let log = announced.log;
        let heads = announced.heads;
        let signing_pk = announced.signing_pk;
        let raw = announced.entries;
        let reply = announced.reply;
        let heads_known = heads.clone();
        // Already here (the same commit announced directly and by gossip): nothing to do.
        if !heads.is_empty() && heads.iter().all(|h| self.recent_heads.contains(&h.id)) {
            self.receiving = false;
            let _ = reply.send(wire::response(Response::Announce(SyncAnnounceReply {})));
            return self.receive_next(ctx);
        }
        let inline = !raw.is_empty();
        let fut = async move {
            // Entries inline go straight to the store (which leaves out what it holds);
            // heads alone are looked up first.
            if !inline && !heads_known.is_empty() {
                let ids: Vec<_> = heads_known.iter().map(|h| h.id).collect();
                if let Ok(known) = context.storage.order_keys(&log, &ids).await {
                    if known.len() == ids.len() {
                        return Ok(Some(RemoteOutcome::default()));
                    }
                }
            }
            if raw.is_empty() {
                return Ok(None);
            }
            let count = raw.len();
            let entries = verify_received(log, signing_pk, raw).await.map_err(|r| {
                r.count(&context.metrics, count.saturating_sub(1));
                SyncStop::Rejected(r)
            })?;
            let outcome = context.append(log, entries, peer).await?;
            Ok(Some(outcome))
        };
        ctx.spawn(fut.into_actor(self).map(move |result, actor, ctx| {
            actor.receiving = false;
            let _ = reply.send(wire::response(Response::Announce(SyncAnnounceReply {})));
            match result {
                Ok(None) => actor.sync_log(log, heads, ctx),
                Ok(Some(outcome)) => {
                    actor.entries_received += outcome.stored as u64;
                    if let Some(violation) = outcome.violation {
                        return actor.penalise(Rejection::Lamport(violation), ctx);
                    }
                    if outcome.missing_parent.is_some() {
                        actor.sync_log(log, heads, ctx);
                    } else {
                        actor.remember_heads(&heads);
                    }
                }
                // Storage trouble is ours, not the peer's: fetch again later.
                Err(SyncStop::Failed(reason)) => {
                    tracing::warn!(peer = %actor.peer, reason, "cannot store announced entries");
                }
                Err(SyncStop::Rejected(rejection)) => return actor.penalise(rejection, ctx),
            }
            actor.receive_next(ctx);
        }));
    }
}

/// Pages of one sync handed to the store and not answered yet, at most: the store commits one
/// while it decodes the next, a third waits, and the page after is fetched and verified
/// meanwhile.
const SYNC_PAGES_IN_STORE: usize = 3;

/// Fetches what `log` lacks from `peer`: entries in total order from the lowest Lamport clock
/// among the peer's unknown heads, stepping back while an entry's parent is still unknown.
/// Pages are pipelined: while the store decodes one page and commits the one before, the next
/// is fetched and verified. Returns how many entries were stored.
async fn sync_log(
    context: &PeerContext,
    peer: PeerId,
    log: LogId,
    signing_pk: VerifyingKey,
    heads: Vec<OrderKey>,
) -> Result<usize, SyncStop> {
    let heads = if heads.is_empty() {
        fetch_heads(context, peer, log).await?
    } else {
        heads
    };
    let ids: Vec<_> = heads.iter().map(|h| h.id).collect();
    let known: HashSet<_> = context
        .storage
        .order_keys(&log, &ids)
        .await
        .map_err(|e| SyncStop::Failed(e.to_string()))?
        .into_iter()
        .map(|k| k.id)
        .collect();
    let Some(lowest) = heads
        .iter()
        .filter(|h| !known.contains(&h.id))
        .map(|h| h.lamport)
        .min()
    else {
        return Ok(0);
    };
    let store = context.open_log(log).await?;
    let mut from = lowest;
    let mut step = 1u64;
    let mut steps = 0u32;
    let mut stored = 0usize;
    loop {
        let mut in_store = VecDeque::new();
        // Where the next page starts: `None` before the first page of this pass.
        let mut next: Option<Option<OrderKey>> = None;
        let mut missing = false;
        loop {
            let fetch_more = match next {
                None => true,
                Some(after) => after.is_some() && in_store.len() < SYNC_PAGES_IN_STORE && !missing,
            };
            if fetch_more {
                let after = next.flatten();
                let (entries, more) =
                    fetch_verified(context, peer, log, signing_pk, from, after).await?;
                next = Some(if more {
                    entries.last().map(Entry::order_key)
                } else {
                    None
                });
                // Sent now, in order: the store takes the pages in the order they come.
                in_store.push_back(store.send(AppendRemote {
                    entries,
                    source: Some(peer),
                }));
                continue;
            }
            let Some(answer) = in_store.pop_front() else {
                break;
            };
            let outcome = answer
                .await
                .map_err(|_| SyncStop::Failed("group store is gone".into()))?
                .map_err(SyncStop::from)?;
            stored += outcome.stored;
            context.appended(log, &outcome, peer).await?;
            if let Some(violation) = outcome.violation {
                return Err(SyncStop::Rejected(Rejection::Lamport(violation)));
            }
            // Pages already handed over stop at the same parent: let them answer, then step
            // back.
            missing |= outcome.missing_parent.is_some();
        }
        if !missing {
            return Ok(stored);
        }
        steps += 1;
        if from == 0 || steps > MAX_SYNC_DEPTH_STEPS {
            return Err(SyncStop::Rejected(Rejection::MissingParent));
        }
        from = from.saturating_sub(step);
        step = step.saturating_mul(2);
    }
}

/// One page of a fetch, checked: within the entry cap, every entry verified
/// ([`verify_received`]) and in total order from `from` on.
async fn fetch_verified(
    context: &PeerContext,
    peer: PeerId,
    log: LogId,
    signing_pk: VerifyingKey,
    from: u64,
    after: Option<OrderKey>,
) -> Result<(Vec<Entry>, bool), SyncStop> {
    let (raw, more) = fetch(context, peer, log, from, after).await?;
    let count = raw.len();
    if count > MAX_FETCH_ENTRIES as usize {
        return Err(SyncStop::Rejected(Rejection::Malformed(
            "fetch reply over the entry cap".into(),
        )));
    }
    let entries = verify_received(log, signing_pk, raw).await.map_err(|r| {
        r.count(&context.metrics, count.saturating_sub(1));
        SyncStop::Rejected(r)
    })?;
    check_order(&entries, from)?;
    Ok((entries, more))
}

/// Entries of a fetch reply must come in total order from `from` on.
fn check_order(entries: &[Entry], from: u64) -> Result<(), SyncStop> {
    let mut previous: Option<OrderKey> = None;
    for entry in entries {
        let key = entry.order_key();
        if key.lamport < from || previous.is_some_and(|p| p >= key) {
            return Err(SyncStop::Rejected(Rejection::Malformed(
                "fetch reply out of order".into(),
            )));
        }
        previous = Some(key);
    }
    Ok(())
}

async fn fetch_heads(
    context: &PeerContext,
    peer: PeerId,
    log: LogId,
) -> Result<Vec<OrderKey>, SyncStop> {
    let reply = context
        .swarm
        .sync(
            peer,
            wire::request(Request::Heads(SyncHeads {
                logs: vec![wire::log_to_wire(&log)],
            })),
        )
        .await
        .map_err(|e| SyncStop::Failed(e.to_string()))?;
    let Some(Response::Heads(heads)) = reply.response else {
        return Err(SyncStop::Failed(format!("heads refused: {reply:?}")));
    };
    let mut out = Vec::new();
    for log_heads in heads.logs {
        if wire::log_from_wire(log_heads.log.as_ref()) != Some(log) {
            continue;
        }
        for head in &log_heads.heads {
            out.push(
                wire::head_from_wire(head).ok_or_else(|| {
                    SyncStop::Rejected(Rejection::Protocol("malformed head".into()))
                })?,
            );
        }
    }
    Ok(out)
}

async fn fetch(
    context: &PeerContext,
    peer: PeerId,
    log: LogId,
    from: u64,
    after: Option<OrderKey>,
) -> Result<(Vec<Vec<u8>>, bool), SyncStop> {
    let reply: SyncResponse = context
        .swarm
        .sync(
            peer,
            wire::request(Request::Fetch(SyncFetch {
                log: Some(wire::log_to_wire(&log)),
                from_lamport: from,
                after: after.as_ref().map(wire::head_to_wire),
                limit: MAX_FETCH_ENTRIES,
            })),
        )
        .await
        .map_err(|e| SyncStop::Failed(e.to_string()))?;
    match reply.response {
        Some(Response::Fetch(fetched)) => Ok((fetched.entries, fetched.more)),
        other => Err(SyncStop::Failed(format!("fetch refused: {other:?}"))),
    }
}

impl Actor for PeerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        tracing::debug!(peer = %self.peer, "peer actor started");
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
        tracing::debug!(peer = %self.peer, "peer actor stops");
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
        self.directory = msg.0;
        self.hello(ctx);
    }
}

/// The peer proved these groups in its own hello: sync them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SyncGroups(pub Vec<[u8; 32]>);

impl Handler<SyncGroups> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: SyncGroups, ctx: &mut Self::Context) {
        self.sync_groups(msg.0, ctx);
    }
}

/// New entries of ours (or from another peer) to send to this peer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Push {
    /// The log.
    pub log: LogId,
    /// Its heads after them.
    pub heads: Vec<OrderKey>,
    /// The entries.
    pub entries: Vec<Vec<u8>>,
}

impl Handler<Push> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        self.outbox.push_back(msg);
        self.send_next(ctx);
    }
}

/// The peer announced new entries; `reply` is answered once they are stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announced {
    /// The log.
    pub log: LogId,
    /// The group signing key.
    pub signing_pk: VerifyingKey,
    /// Its heads.
    pub heads: Vec<OrderKey>,
    /// The entries, when inline.
    pub entries: Vec<Vec<u8>>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<SyncResponse>,
}

impl Handler<Announced> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Announced, ctx: &mut Self::Context) {
        // Each waiting announcement holds its entries: beyond the cap, drop the entries and
        // fetch what the heads say is missing instead.
        if self.inbox.len() >= MAX_INBOX {
            let _ = msg.reply.send(wire::error(
                wire::ERROR_UNAVAILABLE,
                "too many announcements waiting; fetching instead",
            ));
            self.sync_log(msg.log, msg.heads, ctx);
            return;
        }
        self.inbox.push_back(msg);
        self.receive_next(ctx);
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
