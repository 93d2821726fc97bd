//! Announcements with the peer: ours (new entries of a group it proved) sent one request at
//! a time, merged per log; the peer's (pushed, or routed from gossip) stored one at a time, in
//! the order they came.

use std::{
    collections::{HashSet, VecDeque},
    time::Duration,
};

use actix::prelude::*;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{
    sync::{store_of, SyncStop},
    PeerActor, PeerContext,
};
use crate::{
    crypto::VerifyingKey,
    log::{EntryId, LogId, OrderKey},
    p2p::{Announcement, SyncRequest, SyncResponse, ERROR_UNAVAILABLE},
    replication::{
        ports::{AppendRemote, RemoteOutcome},
        wire::{verify_received, Rejection},
        MAX_INLINE_BYTES,
    },
};

/// Announcements of one peer waiting to be stored, at most.
const MAX_INBOX: usize = 32;
/// Ids of entries stored from a peer's announcements (and their heads) that its actor
/// remembers: more than a busy writer commits in [`GOSSIP_GRACE`], 64 KiB.
const RECENT_IDS: usize = 2048;
/// How long an announcement that came by gossip waits before it is stored. A writer pushes
/// every commit to each member connected to it and gossips it as well; the push waits for the
/// previous one to be answered, so the gossip copy often overtakes it, and then either names
/// heads without entries (a large commit) or builds on entries not yet stored: both would be
/// fetched from the peer, though the push brings them a moment later. After the wait the
/// push has usually been stored and the gossip copy is dropped without a lookup.
const GOSSIP_GRACE: Duration = Duration::from_millis(150);
/// Gossip announcements of one peer waiting out [`GOSSIP_GRACE`], at most (each holds at most
/// the gossip's inline entries, 16 KiB); beyond it they are taken at once.
const MAX_DEFERRED: usize = 128;

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

/// The peer announced new entries (directly, with a reply slot answered once they are
/// stored, or by gossip).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announced {
    /// The announcement.
    pub announcement: Announcement,
    /// Where the answer goes (direct announcements).
    pub reply: Option<oneshot::Sender<SyncResponse>>,
}

impl Announced {
    fn answer(self, response: SyncResponse) {
        if let Some(reply) = self.reply {
            let _ = reply.send(response);
        }
    }
}

/// Our pushes waiting to be sent.
#[derive(Default)]
pub(super) struct Outbox {
    queue: VecDeque<Push>,
    sending: bool,
}

impl Outbox {
    /// The next request: queued pushes of the same log merged while they stay under the inline
    /// cap (beyond it, heads only).
    fn next(&mut self) -> Option<Announcement> {
        let mut push = self.queue.pop_front()?;
        while let Some(next) = self.queue.front() {
            let size: usize = push.entries.iter().chain(&next.entries).map(Vec::len).sum();
            if next.log != push.log || size > MAX_INLINE_BYTES {
                break;
            }
            if let Some(next) = self.queue.pop_front() {
                push.entries.extend(next.entries);
                push.heads = next.heads;
            }
        }
        if push.entries.iter().map(Vec::len).sum::<usize>() > MAX_INLINE_BYTES {
            push.entries.clear();
        }
        Some(Announcement {
            log: push.log,
            heads: push.heads,
            entries: push.entries,
        })
    }
}

/// The peer's announcements waiting to be stored, and the heads stored lately.
#[derive(Default)]
pub(super) struct Inbox {
    queue: VecDeque<Announced>,
    receiving: bool,
    /// Ids of entries stored lately from announcements, heads included (at most
    /// [`RECENT_IDS`]): a writer's pushes merge several commits, whose gossip copies name
    /// heads inside the merged batch.
    recent: HashSet<EntryId>,
    recent_order: VecDeque<EntryId>,
    /// Gossip announcements waiting out [`GOSSIP_GRACE`].
    deferred: usize,
}

impl Inbox {
    /// Remembers heads whose entries are stored, so the same announcement coming again (by
    /// gossip after directly, or the other way round) is dropped without a lookup.
    fn remember(&mut self, ids: impl IntoIterator<Item = EntryId>) {
        for id in ids {
            if self.recent.insert(id) {
                self.recent_order.push_back(id);
            }
        }
        while self.recent_order.len() > RECENT_IDS {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    fn all_known(&self, heads: &[OrderKey]) -> bool {
        !heads.is_empty() && heads.iter().all(|h| self.recent.contains(&h.id))
    }
}

impl PeerActor {
    /// Sends the queued pushes, one request at a time.
    fn send_next(&mut self, ctx: &mut Context<Self>) {
        if self.outbox.sending || self.penalty.is_some() {
            return;
        }
        let Some(announcement) = self.outbox.next() else {
            return;
        };
        self.outbox.sending = true;
        let swarm = self.context.swarm.clone();
        let peer = self.peer;
        let request = SyncRequest::Announce(announcement);
        ctx.spawn(
            async move { swarm.sync(peer, request).await }
                .into_actor(self)
                .map(|result, actor, ctx| {
                    actor.outbox.sending = false;
                    if let Err(e) = result {
                        tracing::debug!(peer = %actor.peer, %e, "announce failed");
                    }
                    actor.send_next(ctx);
                }),
        );
    }

    /// Takes an announcement of the peer. One that came by gossip first waits
    /// [`GOSSIP_GRACE`] for the direct push of the same commit, after which it is known and
    /// dropped without a lookup or a fetch.
    pub(super) fn take_announcement(&mut self, msg: Announced, ctx: &mut Context<Self>) {
        let by_gossip = msg.reply.is_none();
        if by_gossip && self.inbox.all_known(&msg.announcement.heads) {
            return;
        }
        if by_gossip && self.inbox.deferred < MAX_DEFERRED {
            self.inbox.deferred += 1;
            ctx.run_later(GOSSIP_GRACE, move |actor, ctx| {
                actor.inbox.deferred -= 1;
                actor.queue_announcement(msg, ctx);
            });
            return;
        }
        self.queue_announcement(msg, ctx);
    }

    /// Queues an announcement of the peer; beyond the cap, its entries are dropped and what
    /// its heads name is fetched instead.
    fn queue_announcement(&mut self, msg: Announced, ctx: &mut Context<Self>) {
        if self.inbox.queue.len() >= MAX_INBOX {
            let log = msg.announcement.log;
            let heads = msg.announcement.heads.clone();
            msg.answer(SyncResponse::error(
                ERROR_UNAVAILABLE,
                "too many announcements waiting; fetching instead",
            ));
            self.sync_log(log, heads, ctx);
            return;
        }
        self.inbox.queue.push_back(msg);
        self.receive_next(ctx);
    }

    /// Stores the peer's announcements in order, one at a time.
    fn receive_next(&mut self, ctx: &mut Context<Self>) {
        if self.inbox.receiving {
            return;
        }
        let Some(Announced {
            announcement,
            reply,
        }) = self.inbox.queue.pop_front()
        else {
            return;
        };
        let Announcement {
            log,
            heads,
            entries: raw,
        } = announcement;
        let answer = move |response: SyncResponse| {
            if let Some(reply) = reply {
                let _ = reply.send(response);
            }
        };
        // Already here (the same commit announced directly and by gossip): nothing to do.
        if self.inbox.all_known(&heads) {
            answer(SyncResponse::Announce);
            return self.receive_next(ctx);
        }
        let Some(signing_pk) = self.directory.get(log.group_pk()).map(|g| g.signing_pk) else {
            answer(SyncResponse::error(
                ERROR_UNAVAILABLE,
                "not ready for this peer",
            ));
            return self.receive_next(ctx);
        };
        self.inbox.receiving = true;
        let context = self.context.clone();
        let peer = self.peer;
        let store = store_of(&self.directory, log);
        let (heads_known, raw) = (heads.clone(), raw);
        let fut = async move {
            store_announced(&context, store?, peer, log, signing_pk, heads_known, raw).await
        };
        ctx.spawn(fut.into_actor(self).map(move |result, actor, ctx| {
            actor.inbox.receiving = false;
            answer(SyncResponse::Announce);
            match result {
                Ok(None) => actor.sync_log(log, heads, ctx),
                Ok(Some((outcome, stored_ids))) => {
                    actor.entries_received += outcome.stored as u64;
                    if let Some(violation) = outcome.violation {
                        return actor.penalise(Rejection::Lamport(violation), ctx);
                    }
                    if outcome.missing_parent.is_some() {
                        actor.sync_log(log, heads, ctx);
                    } else {
                        actor
                            .inbox
                            .remember(heads.iter().map(|h| h.id).chain(stored_ids));
                    }
                }
                // Storage trouble is ours, not the peer's: fetch again later.
                Err(SyncStop::Failed(reason)) => {
                    tracing::warn!(peer = %actor.peer, reason, "cannot store announced entries");
                }
                // Storing an announcement asks the peer nothing.
                Err(SyncStop::NotProvenYet) => {}
                Err(SyncStop::Rejected(rejection)) => return actor.penalise(rejection, ctx),
            }
            actor.receive_next(ctx);
        }));
    }
}

impl Handler<Push> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Push, ctx: &mut Self::Context) {
        self.outbox.queue.push_back(msg);
        self.send_next(ctx);
    }
}

impl Handler<Announced> for PeerActor {
    type Result = ();

    fn handle(&mut self, msg: Announced, ctx: &mut Self::Context) {
        self.take_announcement(msg, ctx);
    }
}

/// Stores announced entries: inline entries are verified and go straight to the store (which
/// leaves out what it holds); heads alone are looked up first. `Ok(None)`: heads we lack,
/// to fetch; otherwise the outcome and the ids of the inline entries.
async fn store_announced(
    context: &PeerContext,
    store: Recipient<AppendRemote>,
    peer: PeerId,
    log: LogId,
    signing_pk: VerifyingKey,
    heads: Vec<OrderKey>,
    raw: Vec<Vec<u8>>,
) -> Result<Option<(RemoteOutcome, Vec<EntryId>)>, SyncStop> {
    if raw.is_empty() {
        if !heads.is_empty() {
            let ids: Vec<_> = heads.iter().map(|h| h.id).collect();
            if let Ok(known) = context.storage.order_keys(&log, &ids).await {
                if known.len() == ids.len() {
                    return Ok(Some((RemoteOutcome::default(), Vec::new())));
                }
            }
        }
        return Ok(None);
    }
    let count = raw.len();
    let entries = verify_received(log, signing_pk, raw).await.map_err(|r| {
        r.count(&context.metrics, count.saturating_sub(1));
        SyncStop::Rejected(r)
    })?;
    let ids = entries.iter().map(|e| e.id()).collect();
    let outcome = context.append(&store, log, entries, peer).await?;
    Ok(Some((outcome, ids)))
}
