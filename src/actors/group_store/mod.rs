//! [`GroupStoreActor`]: the single writer of one log of one group on this node.
//!
//! Local writes (messages, metadata events) are queued and written in batches: while one
//! transaction commits, new writes wait in the queue and go into the next one (group
//! commit), each chained on the previous entry. A write is acknowledged only after its
//! transaction committed, together with the advanced chain state and the decoded event.
//! Entries from other replicas ([`AppendRemote`]) are checked against the Lamport rule and
//! stored the same way; batches of remote entries are pipelined (the next is checked and
//! decoded while the previous commits; a failed commit rolls the decoding state back and
//! refuses what was decoded after it). Every commit keeps its new events in a bounded ring
//! ([`RecentEvents`]) and bumps the log's event cursor in a `watch` channel, which is how
//! subscribers learn there is something new; one that keeps up takes the events from the
//! ring, one that fell behind reads storage at its own pace, so a slow subscriber never holds
//! a writer back.
//!
//! The actor is started on first use by the account actor and stops itself after a period
//! with no traffic and no subscriber.
//!
//! Storage outages: a store whose state cannot be loaded, or whose commit failed, does not
//! stop; it is *stale*. A failed commit may still have reached the database (the connection
//! broke after `COMMIT` was sent), so before its next job a stale store reloads its heads,
//! chain and members from storage instead of trusting memory: what was committed is then
//! built upon, never written again under the same chain key. While storage is down the reload
//! fails at once (storage fails fast, see `storage::health`) and every waiting write or
//! remote batch gets that `UNAVAILABLE` error; the first job after the database is back
//! reloads and goes on.
//!
//! `remote`: entries from other replicas ([`AppendRemote`]) and messages queued until their
//! sender's chain key arrives ([`ReplayQueued`]).

mod remote;

pub use remote::{Learnt, ReplayQueued};

use std::{collections::HashMap, sync::Arc, time::Instant};

use libp2p::PeerId;

use actix::prelude::*;
use prost::Message as _;
use rand::rngs::OsRng;
use tokio::sync::{oneshot, watch};

use crate::{
    crypto::{seal_message, seal_metadata, ReceiverChain, SenderChain},
    defaults,
    error::Error,
    group::{GroupContext, ViewBody, ViewEvent},
    log::{Entry, EntryId, LogId, LogKind, OrderKey, MAX_PARENTS},
    metrics::{LogKindLabels, Metrics},
    proto::wire,
    replication::ports::LogAppended,
    sealed_values::SealedValues,
    storage::{value_keys::ValueKey, Appended, Commit, NewEntry, NewEvent, Storage, StoredEvent},
};

/// What a local write puts in the log.
#[derive(Debug, Clone)]
pub enum LocalWrite {
    /// A message (messages log only): encrypted with this device's chain.
    Message {
        /// The plaintext.
        payload: Vec<u8>,
    },
    /// A metadata event (metadata log only), and the decoded event to show for it, if any.
    Metadata {
        /// The plaintext event.
        event: wire::MetadataEvent,
        /// What subscriptions show for it (internal events such as chain keys show nothing).
        view: Option<ViewBody>,
    },
}

/// Where the outcome of one write goes.
type Reply = oneshot::Sender<Result<EntryId, Error>>;

struct Pending {
    write: LocalWrite,
    reply: Reply,
}

/// The actor owning one log.
pub struct GroupStoreActor {
    log: LogId,
    group: Arc<GroupContext>,
    storage: Arc<dyn Storage>,
    values: SealedValues,
    metrics: Metrics,
    heads: Vec<OrderKey>,
    sender: Option<SenderChain>,
    events: watch::Sender<u64>,
    queue: Vec<Pending>,
    writing: bool,
    last_activity: Instant,
    /// Devices of the group and their members (what decoding has learnt).
    members: HashMap<[u8; 32], [u8; 32]>,
    /// Messages log: receiver chains of other devices, loaded as they are needed.
    chains: HashMap<[u8; 32], ReceiverChain>,
    replicator: Option<Recipient<LogAppended>>,
    /// Where what remote metadata taught goes (the account).
    follow_ups: Option<Recipient<Learnt>>,
    remote_jobs: std::collections::VecDeque<remote::RemoteJob>,
    /// A batch of remote entries is being checked and decoded (it may overlap the commit of
    /// the previous one).
    preparing: bool,
    /// Batches decoded and waiting for their commit, in order.
    prepared: std::collections::VecDeque<remote::PreparedAppend>,
    /// Entries of the remote batch being committed (they count as stored when the next
    /// batch is checked).
    committing_ids: Arc<HashMap<EntryId, u64>>,
    /// Bumped when a remote commit fails: batches decoded before that are refused.
    epoch: u64,
    /// The newest committed events, for live subscribers.
    recent: Arc<RecentEvents>,
    /// The state in memory may differ from storage (never loaded, or a commit failed): it is
    /// reloaded before the next job.
    stale: bool,
    /// A reload is running.
    loading: bool,
    lifeline: crate::supervision::Lifeline,
}

impl GroupStoreActor {
    /// A store for `log` of `group`; its state is loaded when it starts.
    pub fn new(
        log: LogId,
        group: Arc<GroupContext>,
        storage: Arc<dyn Storage>,
        values: SealedValues,
        metrics: Metrics,
        replicator: Option<Recipient<LogAppended>>,
        follow_ups: Option<Recipient<Learnt>>,
        lifeline: crate::supervision::Lifeline,
    ) -> Self {
        let (events, _) = watch::channel(0);
        Self {
            log,
            group,
            storage,
            values,
            metrics,
            heads: Vec::new(),
            sender: None,
            events,
            queue: Vec::new(),
            writing: false,
            last_activity: Instant::now(),
            members: HashMap::new(),
            chains: HashMap::new(),
            replicator,
            follow_ups,
            remote_jobs: std::collections::VecDeque::new(),
            preparing: false,
            prepared: std::collections::VecDeque::new(),
            committing_ids: Arc::default(),
            epoch: 0,
            recent: Arc::new(RecentEvents::default()),
            stale: true,
            loading: false,
            lifeline,
        }
    }

    /// Takes the state loaded from storage; what decoding had cached is dropped (it is loaded
    /// again as needed).
    fn apply(&mut self, loaded: Loaded) {
        self.heads = loaded.heads;
        self.sender = loaded.sender;
        self.members = loaded.members;
        self.chains.clear();
        self.stale = false;
        self.events.send_if_modified(|current| {
            let changed = loaded.last_event_cursor > *current;
            *current = (*current).max(loaded.last_event_cursor);
            changed
        });
    }

    /// A commit failed: the state is reloaded before the next job.
    fn commit_failed(&mut self) {
        self.stale = true;
    }

    /// Whether a job is running (a commit, a replay, a batch being decoded or waiting).
    fn busy(&self) -> bool {
        self.writing || self.preparing || !self.prepared.is_empty()
    }

    /// Reloads the state from storage when it is stale and no job runs; `true` while the
    /// state is not usable (jobs must wait).
    fn ensure_loaded(&mut self, ctx: &mut Context<Self>) -> bool {
        if self.loading {
            return true;
        }
        if !self.stale {
            return false;
        }
        if self.busy() || (self.queue.is_empty() && self.remote_jobs.is_empty()) {
            // Reload once what runs has ended, and only for a job that needs it.
            return true;
        }
        self.loading = true;
        let loading = load(self.log, self.storage.clone(), self.values.clone());
        ctx.spawn(loading.into_actor(self).map(|loaded, actor, ctx| {
            actor.loading = false;
            match loaded {
                Ok(loaded) => {
                    actor.apply(loaded);
                    actor.pump(ctx);
                }
                Err(e) => {
                    tracing::warn!(log = ?actor.log, %e, "cannot load group store state");
                    actor.fail_waiting(&e);
                }
            }
        }));
        true
    }

    /// Answers `error` to every queued write and remote job.
    fn fail_waiting(&mut self, error: &Error) {
        for pending in self.queue.drain(..) {
            let _ = pending.reply.send(Err(error.clone()));
        }
        for job in self.remote_jobs.drain(..) {
            job.fail(error.clone());
        }
    }

    /// Tells the replicator about entries just committed.
    fn announce(&self, entries: Vec<Vec<u8>>, source: Option<PeerId>) {
        if entries.is_empty() {
            return;
        }
        if let Some(replicator) = &self.replicator {
            replicator.do_send(LogAppended {
                log: self.log,
                heads: self.heads.clone(),
                entries,
                source,
            });
        }
    }

    /// Keeps the events a commit added for live subscribers, then bumps the event cursor
    /// watch (subscribers wake up). `cursors` are those the commit gave `events`, in order.
    fn events_committed(&self, events: Vec<NewEvent>, cursors: &[u64]) {
        let Some(last) = cursors.iter().max().copied() else {
            return;
        };
        let known = *self.events.borrow();
        self.recent.push(known, events, cursors);
        self.events.send_if_modified(|current| {
            let changed = last > *current;
            *current = (*current).max(last);
            changed
        });
    }

    /// The heads once `new` entries (just stored) are added: their parents stop being heads,
    /// those of them no other names become heads (as storage works them out).
    fn heads_after(&mut self, new: &[&NewEntry]) {
        if new.is_empty() {
            return;
        }
        let named: std::collections::HashSet<EntryId> =
            new.iter().flat_map(|e| e.parents.iter().copied()).collect();
        self.heads.retain(|h| !named.contains(&h.id));
        self.heads.extend(
            new.iter()
                .filter(|e| !named.contains(&e.id))
                .map(|e| OrderKey {
                    lamport: e.lamport,
                    id: e.id,
                }),
        );
        self.heads.sort();
        self.heads.dedup();
    }

    fn kind_label(&self) -> &'static str {
        match self.log.kind() {
            LogKind::Metadata => "metadata",
            LogKind::Messages => "messages",
        }
    }
}

struct Loaded {
    heads: Vec<OrderKey>,
    last_event_cursor: u64,
    sender: Option<SenderChain>,
    members: HashMap<[u8; 32], [u8; 32]>,
}

async fn load(
    log: LogId,
    storage: Arc<dyn Storage>,
    values: SealedValues,
) -> Result<Loaded, Error> {
    let heads = storage.heads(&log).await?;
    let last_event_cursor = storage.last_event_cursor(&log).await?;
    let sender = if log.kind() == LogKind::Messages {
        let key = ValueKey::Chain {
            group_pk: *log.group_pk(),
        };
        match values.get(&key.to_string()).await? {
            Some(bytes) => Some(SenderChain::from_bytes(&bytes).map_err(|e| {
                Error::Internal(format!("stored sender chain does not parse: {e}"))
            })?),
            None => None,
        }
    } else {
        None
    };
    let members = remote::load_members(&values, log.group_pk()).await?;
    Ok(Loaded {
        heads,
        last_event_cursor,
        sender,
        members,
    })
}

impl Actor for GroupStoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        self.metrics.group_store_actors.inc();
        tracing::debug!(log = ?self.log, "group store starting");
        // Hold every message until the state is loaded. If it cannot be (storage down), the
        // store stays stale: each job tries again, and fails at once while storage is down.
        let loading = load(self.log, self.storage.clone(), self.values.clone());
        ctx.wait(
            loading
                .into_actor(self)
                .map(|loaded, actor, _| match loaded {
                    Ok(loaded) => actor.apply(loaded),
                    Err(e) => {
                        tracing::warn!(log = ?actor.log, %e, "cannot load group store state yet");
                    }
                }),
        );
        ctx.run_interval(defaults::GROUP_STORE_IDLE_CHECK, |actor, ctx| {
            let idle = actor.last_activity.elapsed() >= defaults::GROUP_STORE_IDLE;
            if idle
                && actor.events.receiver_count() == 0
                && actor.queue.is_empty()
                && actor.remote_jobs.is_empty()
                && !actor.writing
                && !actor.loading
                && !actor.preparing
                && actor.prepared.is_empty()
            {
                tracing::debug!(log = ?actor.log, "group store idle, stopping");
                actor.lifeline.release();
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.group_store_actors.dec();
    }
}

/// Writes one local event; replies with the new entry's id once committed.
#[derive(Message)]
#[rtype(result = "Result<EntryId, Error>")]
pub struct Write(pub LocalWrite);

impl Handler<Write> for GroupStoreActor {
    type Result = ResponseFuture<Result<EntryId, Error>>;

    fn handle(&mut self, msg: Write, ctx: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        let (reply, answer) = oneshot::channel();
        self.queue.push(Pending {
            write: msg.0,
            reply,
        });
        self.pump(ctx);
        Box::pin(answer_of(answer))
    }
}

/// The outcome a job sends to `answer`; a store that stopped before answering is
/// `UNAVAILABLE`.
async fn answer_of<T>(answer: oneshot::Receiver<Result<T, Error>>) -> Result<T, Error> {
    answer
        .await
        .unwrap_or_else(|_| Err(Error::Unavailable("the group store stopped".into())))
}

/// Built entries of one batch, before they are committed.
struct Batch {
    entries: Vec<NewEntry>,
    events: Vec<NewEvent>,
    values: Vec<(String, Vec<u8>)>,
    replies: Vec<(Reply, Result<EntryId, Error>)>,
    heads: Vec<OrderKey>,
    sender: Option<SenderChain>,
}

impl GroupStoreActor {
    /// Starts the next job when none runs: local writes first (one batch), then one job of
    /// remote entries. Jobs run one at a time, as spawned futures (never `ctx.wait`, which
    /// would stop a running commit from being polled while holding the writer).
    fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            if self.ensure_loaded(ctx) {
                return;
            }
            if !self.writing {
                // A decoded batch commits first: later jobs were queued after it.
                if let Some(prepared) = self.prepared.pop_front() {
                    self.commit_remote(prepared, ctx);
                    continue;
                }
            }
            if self.preparing || !self.prepared.is_empty() {
                return;
            }
            if self.writing {
                // Decode the next batch of remote entries while this one commits.
                if self.committing_remote() && self.may_prepare_next() {
                    if let Some(job) = self.remote_jobs.pop_front() {
                        self.run_remote(job, ctx);
                    }
                }
                return;
            }
            if !self.queue.is_empty() {
                self.flush(ctx);
            } else if let Some(job) = self.remote_jobs.pop_front() {
                self.run_remote(job, ctx);
                continue;
            }
            return;
        }
    }

    /// Whether the commit in flight is one of remote entries.
    fn committing_remote(&self) -> bool {
        !self.committing_ids.is_empty()
    }

    /// Builds every queued write into one batch and commits it; when it is done, flushes
    /// whatever queued up meanwhile.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.queue.is_empty() {
            return;
        }
        self.writing = true;
        let queue = std::mem::take(&mut self.queue);
        let batch = self.build(queue);
        let storage = self.storage.clone();
        let log = self.log;
        let fut = async move {
            let result = storage
                .commit(
                    &log,
                    Commit {
                        entries: &batch.entries,
                        events: &batch.events,
                        values: &batch.values,
                        deletes: &[],
                    },
                )
                .await;
            (batch, result)
        };
        ctx.spawn(fut.into_actor(self).map(|(batch, result), actor, ctx| {
            actor.writing = false;
            let Batch {
                entries,
                events,
                replies,
                heads,
                sender,
                ..
            } = batch;
            match result {
                Ok(committed) => {
                    let new = committed
                        .appended
                        .iter()
                        .filter(|a| matches!(a, Appended::New { .. }))
                        .count();
                    actor
                        .metrics
                        .entries_appended
                        .get_or_create(&LogKindLabels {
                            kind: actor.kind_label(),
                        })
                        .inc_by(new as u64);
                    actor.heads = heads;
                    if sender.is_some() {
                        actor.sender = sender;
                    }
                    actor.events_committed(events, &committed.event_cursors);
                    for (reply, outcome) in replies {
                        let _ = reply.send(outcome);
                    }
                    actor.announce(entries.into_iter().map(|e| e.bytes).collect(), None);
                }
                Err(e) => {
                    let e = Error::from(e);
                    tracing::warn!(log = ?actor.log, %e, "commit failed; writes not acknowledged");
                    actor.commit_failed();
                    for (reply, outcome) in replies {
                        let _ = reply.send(outcome.and(Err(e.clone())));
                    }
                }
            }
            actor.pump(ctx);
        }));
    }

    /// Encrypts, signs and chains the queued writes. A write that cannot be built gets its
    /// error; the others go on.
    fn build(&self, queue: Vec<Pending>) -> Batch {
        let mut batch = Batch {
            entries: Vec::with_capacity(queue.len()),
            events: Vec::with_capacity(queue.len()),
            values: Vec::new(),
            replies: Vec::with_capacity(queue.len()),
            heads: self.heads.clone(),
            sender: None,
        };
        let mut sender = self.sender.clone();
        for pending in queue {
            let outcome = self.build_one(pending.write, &mut batch, &mut sender);
            batch.replies.push((pending.reply, outcome));
        }
        if let Some(chain) = sender {
            if !batch.entries.is_empty() && self.log.kind() == LogKind::Messages {
                let key = ValueKey::Chain {
                    group_pk: *self.log.group_pk(),
                }
                .to_string();
                match self.values.seal(&key, &chain.to_bytes()) {
                    Ok(sealed) => batch.values.push((key, sealed)),
                    Err(e) => {
                        // Without the chain state the batch must not commit (keys would repeat).
                        for (_, outcome) in &mut batch.replies {
                            *outcome = Err(e.clone());
                        }
                        batch.entries.clear();
                        batch.events.clear();
                        batch.heads = self.heads.clone();
                        return batch;
                    }
                }
            }
            batch.sender = Some(chain);
        }
        batch
    }

    fn build_one(
        &self,
        write: LocalWrite,
        batch: &mut Batch,
        sender: &mut Option<SenderChain>,
    ) -> Result<EntryId, Error> {
        let group = &self.group;
        let device = &group.record.device;
        let (payload, view) = match (write, self.log.kind()) {
            (LocalWrite::Message { payload }, LogKind::Messages) => {
                let chain = sender.as_mut().ok_or_else(|| {
                    Error::FailedPrecondition(
                        "this device has no message chain in the group".into(),
                    )
                })?;
                let (counter, key) = chain
                    .next_key()
                    .map_err(|e| Error::Internal(format!("advancing the chain: {e}")))?;
                let sealed = seal_message(
                    group.keys(),
                    device,
                    LogKind::Messages,
                    counter,
                    &key,
                    &payload,
                    &mut OsRng,
                )
                .map_err(|e| Error::Internal(format!("sealing a message: {e}")))?;
                (sealed, Some(ViewBody::Message { payload }))
            }
            (LocalWrite::Metadata { event, view }, LogKind::Metadata) => {
                let sealed =
                    seal_metadata(group.keys(), device, &event.encode_to_vec(), &mut OsRng)
                        .map_err(|e| Error::Internal(format!("sealing metadata: {e}")))?;
                (sealed, view)
            }
            _ => {
                return Err(Error::Internal(
                    "write sent to the wrong log of the group".into(),
                ))
            }
        };
        let parents = parents_of(&batch.heads);
        let lamport = batch
            .heads
            .iter()
            .map(|h| h.lamport)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| Error::Internal("Lamport clock overflow".into()))?;
        let entry = Entry::sign(
            group.keys().signing_key(),
            self.log,
            parents,
            lamport,
            &payload,
        )
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let id = entry.id();
        let parents = entry.parents().to_vec();
        // Heads the entry could not name (more than MAX_PARENTS) stay heads.
        batch.heads.retain(|h| !parents.contains(&h.id));
        if let Some(body) = view {
            let event = ViewEvent {
                member_pk: group.member.verifying_key().to_bytes(),
                device_pk: device.verifying_key().to_bytes(),
                body,
            };
            batch.events.push(NewEvent {
                entry_id: id,
                lamport,
                parents: parents.clone(),
                kind: event.kind().as_u8(),
                body: event.encode(),
            });
        }
        batch.entries.push(NewEntry {
            id,
            lamport,
            parents,
            bytes: entry.into_bytes(),
        });
        batch.heads.push(OrderKey { lamport, id });
        Ok(id)
    }
}

/// Parents of the next local entry: the current heads, at most [`MAX_PARENTS`] (the highest in
/// total order when there are more).
fn parents_of(heads: &[OrderKey]) -> Vec<EntryId> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads.iter().rev().take(MAX_PARENTS).map(|h| h.id).collect()
}

/// The log's current heads in total order.
#[derive(Message)]
#[rtype(result = "Vec<OrderKey>")]
pub struct Heads;

impl Handler<Heads> for GroupStoreActor {
    type Result = MessageResult<Heads>;

    fn handle(&mut self, _: Heads, _: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        MessageResult(self.heads.clone())
    }
}

/// What a live subscriber follows: the log's last event cursor (it changes after every commit
/// that added events) and the newest events themselves.
pub struct EventWatch {
    /// The last event cursor.
    pub cursor: watch::Receiver<u64>,
    /// The newest committed events, so a subscriber that keeps up reads them from memory.
    pub recent: Arc<RecentEvents>,
}

/// A receiver of the log's last event cursor and its newest events. Holding it keeps the
/// actor alive.
#[derive(Message)]
#[rtype(result = "EventWatch")]
pub struct WatchEvents;

impl Handler<WatchEvents> for GroupStoreActor {
    type Result = MessageResult<WatchEvents>;

    fn handle(&mut self, _: WatchEvents, _: &mut Self::Context) -> Self::Result {
        self.last_activity = Instant::now();
        MessageResult(EventWatch {
            cursor: self.events.subscribe(),
            recent: self.recent.clone(),
        })
    }
}

/// Most events kept in [`RecentEvents`].
const RECENT_EVENTS: usize = 1024;
/// Most event body bytes kept in [`RecentEvents`].
const RECENT_BYTES: usize = 1 << 20;

/// The newest committed events of a log, with consecutive cursors, bounded in count and
/// bytes. The store adds each commit's new events before it bumps the cursor watch, so a live
/// subscriber that keeps up takes them from here instead of reading them back from storage;
/// one that fell behind (or finds a gap) reads storage, as before.
#[derive(Default)]
pub struct RecentEvents {
    ring: std::sync::Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    events: std::collections::VecDeque<Arc<StoredEvent>>,
    bytes: usize,
}

impl Ring {
    fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
    }
}

impl RecentEvents {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the events of a commit (`cursors` in the same order). Events whose cursor is not
    /// above `known` (the last cursor before the commit) existed already and are left out; a
    /// cursor that does not follow the newest kept one starts the ring afresh.
    fn push(&self, known: u64, events: Vec<NewEvent>, cursors: &[u64]) {
        let mut ring = self.ring();
        for (event, &cursor) in events.into_iter().zip(cursors) {
            if cursor <= known {
                continue;
            }
            let follows = ring
                .events
                .back()
                .is_none_or(|last| last.cursor.checked_add(1) == Some(cursor));
            if !follows {
                ring.clear();
            }
            ring.bytes += event.body.len();
            ring.events.push_back(Arc::new(StoredEvent {
                entry_id: event.entry_id,
                lamport: event.lamport,
                parents: event.parents,
                kind: event.kind,
                body: event.body,
                cursor,
            }));
            while ring.events.len() > RECENT_EVENTS || ring.bytes > RECENT_BYTES {
                match ring.events.pop_front() {
                    Some(dropped) => ring.bytes -= dropped.body.len(),
                    None => break,
                }
            }
        }
    }

    /// The kept events of `kinds` (all when empty) with cursors after `after`, at most
    /// `limit`, provided every event from `after` + 1 up to `upto` is kept; with the last
    /// cursor looked at. `None`: read storage instead.
    pub fn after(
        &self,
        after: u64,
        upto: u64,
        kinds: &[u8],
        limit: usize,
    ) -> Option<(Vec<Arc<StoredEvent>>, u64)> {
        let ring = self.ring();
        let first = ring.events.front()?.cursor;
        let last = ring.events.back()?.cursor;
        let next = after.checked_add(1)?;
        if next < first || upto > last || upto <= after {
            return None;
        }
        let skip = usize::try_from(next - first).ok()?;
        let mut out = Vec::new();
        let mut seen = after;
        for event in ring.events.iter().skip(skip) {
            if event.cursor > upto || out.len() >= limit {
                break;
            }
            seen = event.cursor;
            if kinds.is_empty() || kinds.contains(&event.kind) {
                out.push(event.clone());
            }
        }
        Some((out, seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u8, kind: u8) -> NewEvent {
        NewEvent {
            entry_id: EntryId([n; 32]),
            lamport: u64::from(n),
            parents: Vec::new(),
            kind,
            body: vec![n; 10],
        }
    }

    fn cursors(events: &[Arc<StoredEvent>]) -> Vec<u64> {
        events.iter().map(|e| e.cursor).collect()
    }

    #[test]
    fn recent_events_serve_only_a_gapless_range() {
        let recent = RecentEvents::default();
        recent.push(4, vec![event(5, 1), event(6, 2), event(7, 1)], &[5, 6, 7]);
        let (events, seen) = recent.after(4, 7, &[], 10).unwrap();
        assert_eq!((cursors(&events), seen), (vec![5, 6, 7], 7));
        let (events, seen) = recent.after(4, 7, &[1], 10).unwrap();
        assert_eq!((cursors(&events), seen), (vec![5, 7], 7));
        let (events, seen) = recent.after(5, 7, &[], 1).unwrap();
        assert_eq!((cursors(&events), seen), (vec![6], 6));
        // Before the first kept event, or beyond the newest: storage.
        assert!(recent.after(3, 7, &[], 10).is_none());
        assert!(recent.after(5, 8, &[], 10).is_none());
        // An event that already existed (cursor not above the last known) is left out; a
        // gap starts afresh.
        recent.push(7, vec![event(1, 1), event(8, 1)], &[3, 8]);
        assert_eq!(cursors(&recent.after(6, 8, &[], 10).unwrap().0), vec![7, 8]);
        recent.push(9, vec![event(11, 1)], &[11]);
        assert!(recent.after(8, 11, &[], 10).is_none());
        assert_eq!(cursors(&recent.after(10, 11, &[], 10).unwrap().0), vec![11]);
    }

    #[test]
    fn recent_events_are_bounded() {
        let recent = RecentEvents::default();
        let count = RECENT_EVENTS as u64 + 10;
        let events = (1..=count).map(|c| event(c as u8, 1)).collect();
        let cursors: Vec<u64> = (1..=count).collect();
        recent.push(0, events, &cursors);
        assert!(recent.after(0, count, &[], usize::MAX).is_none());
        let (events, _) = recent.after(10, count, &[], usize::MAX).unwrap();
        assert_eq!(events.len(), RECENT_EVENTS);
    }
}
