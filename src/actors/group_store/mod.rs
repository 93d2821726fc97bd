//! [`GroupStoreActor`]: the single writer of one log of one group on this node.
//!
//! Local writes (messages, metadata events) are queued and written in batches: while one
//! transaction commits, new writes wait in the queue and go into the next one (group
//! commit), each chained on the previous entry. A write is acknowledged only after its
//! transaction committed, together with the advanced chain state and the decoded event.
//! Entries from other replicas ([`AppendRemote`](crate::replication::ports::AppendRemote)) are checked against the Lamport rule and
//! stored the same way; batches of remote entries are pipelined (the next is checked and
//! decoded while the previous commits; a failed commit rolls the decoding state back and
//! refuses what was decoded after it). A commit of remote metadata that taught new members
//! or chain keys tells the account ([`Learnt`]), which shares this device's chain key and has
//! the messages store replay what waited ([`ReplayQueued`]). Every commit keeps its new
//! events in a bounded ring ([`RecentEvents`]) and bumps the log's event cursor in a `watch`
//! channel, which is how subscribers learn there is something new; one that keeps up takes
//! the events from the ring, one that fell behind reads storage at its own pace, so a slow
//! subscriber never holds a writer back.
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
//! The order of jobs is plain data (`pipeline`); the actor is the shell that feeds it the
//! messages and runs the futures it asks for:
//! - `local`: building and committing a batch of local writes;
//! - `remote`: batches from other replicas, prepared (`prepare`) and committed in turn;
//! - `replay`: messages queued until their sender's chain key arrives;
//! - `load`: the state read back from storage; `recent`: the ring of recent events;
//! - [`decode`]: the group view of entries written by other devices.
//!
//! Every store logs within its own span (`group_store`, with the group key's first bytes and
//! the log kind), never with payloads or key material.

pub mod decode;
mod load;
mod local;
mod pipeline;
mod prepare;
mod recent;
mod remote;
mod replay;

pub use local::LocalWrite;
use recent::Keep;
pub use recent::RecentEvents;
pub use remote::Learnt;
pub use replay::ReplayQueued;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    future::Future,
    sync::Arc,
    time::Instant,
};

use actix::prelude::*;
use libp2p::PeerId;
use tokio::sync::{oneshot, watch};
use tracing::Instrument as _;

use self::{
    load::{load, Loaded},
    local::Pending,
    pipeline::{Action, Actions, Pipeline},
    prepare::RemoteState,
    remote::{PreparedAppend, RemoteAppend, RemoteJob, RemoteReplay},
};
use crate::{
    crypto::SenderChain,
    defaults,
    error::Error,
    group::GroupContext,
    log::{EntryId, LogId, LogKind, OrderKey},
    metrics::{LogKindLabels, Metrics},
    replication::ports::LogAppended,
    storage::SealedValues,
    storage::{NewEntry, NewEvent, Storage},
};

/// The pipeline of one store, with its jobs.
type StorePipeline = Pipeline<Pending, RemoteAppend, RemoteReplay, PreparedAppend>;

/// What the store's pipeline asks it to run.
type StoreActions = Actions<Pending, RemoteAppend, RemoteReplay, PreparedAppend>;

/// Why prepared batches are refused after a failed commit.
const EARLIER_COMMIT_FAILED: &str = "an earlier commit of the log failed";

/// The actor owning one log.
pub struct GroupStoreActor {
    log: LogId,
    group: Arc<GroupContext>,
    storage: Arc<dyn Storage>,
    values: SealedValues,
    metrics: Metrics,
    replicator: Option<Recipient<LogAppended>>,
    /// Where what remote metadata taught goes (the account).
    follow_ups: Option<Recipient<Learnt>>,
    /// The store's span: its group and log kind.
    span: tracing::Span,
    /// What waits and what runs.
    pipeline: StorePipeline,
    heads: Vec<OrderKey>,
    sender: Option<SenderChain>,
    /// What decoding remote entries has learnt (rolled back when their commit fails).
    decoding: RemoteState,
    /// Entries of the remote batch being committed (they count as stored when the next
    /// batch is checked).
    committing_ids: Arc<HashMap<EntryId, u64>>,
    events: watch::Sender<u64>,
    /// The newest committed events, for live subscribers.
    recent: Arc<RecentEvents>,
    /// When events were last committed, and whether a settling of `recent` is scheduled.
    last_events: Instant,
    settle_scheduled: bool,
    last_activity: Instant,
    /// Held for the store's life: released when it stops on its own (idle).
    lifeline: crate::supervision::Lifeline,
}

impl GroupStoreActor {
    /// A store for `log` of `group`; its state is loaded when it starts. `replicator` hears
    /// of every commit that added entries, `follow_ups` of what remote metadata taught.
    #[allow(clippy::too_many_arguments)]
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
        let span = tracing::info_span!(
            "group_store",
            group = %hex::encode(&log.group_pk()[..8]),
            log = LogKindLabels::of(log.kind()).kind,
        );
        Self {
            log,
            group,
            storage,
            values,
            metrics,
            replicator,
            follow_ups,
            span,
            pipeline: Pipeline::new(log.kind() == LogKind::Messages),
            heads: Vec::new(),
            sender: None,
            decoding: RemoteState::default(),
            committing_ids: Arc::default(),
            events,
            recent: Arc::new(RecentEvents::default()),
            last_events: Instant::now(),
            settle_scheduled: false,
            last_activity: Instant::now(),
            lifeline,
        }
    }

    /// Runs what the pipeline asks for, in order.
    fn run(&mut self, actions: StoreActions, ctx: &mut Context<Self>) {
        let mut todo = VecDeque::from(actions);
        while let Some(action) = todo.pop_front() {
            match action {
                Action::Load => self.reload(ctx),
                Action::CommitLocal(writes) => self.commit_local(writes, ctx),
                Action::Prepare(job, ticket) => self.prepare_remote(job, ticket, ctx),
                Action::CommitRemote(prepared) if prepared.is_empty() => {
                    // Nothing to write (entries already stored, or none admissible).
                    prepared.answer_unchanged();
                    todo.extend(self.pipeline.committed(true));
                }
                Action::CommitRemote(prepared) => self.commit_remote(prepared, ctx),
                Action::Replay(job) => self.replay_queued(job, ctx),
                Action::Refuse(prepared) => {
                    for batch in prepared {
                        batch.fail(Error::Unavailable(EARLIER_COMMIT_FAILED.into()));
                    }
                }
            }
        }
    }

    /// Queues a job from another replica and runs what may start.
    fn enqueue_remote(&mut self, job: RemoteJob, ctx: &mut Context<Self>) {
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_activity = Instant::now();
        let actions = self.pipeline.remote(job);
        self.run(actions, ctx);
    }

    /// Spawns `job` within the store's span; `then` gets its outcome on the actor.
    fn spawn_job<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        job: impl Future<Output = T> + 'static,
        then: impl FnOnce(T, &mut Self, &mut Context<Self>) + 'static,
    ) {
        let span = self.span.clone();
        ctx.spawn(
            job.instrument(span.clone())
                .into_actor(self)
                .map(move |outcome, actor, ctx| {
                    let _entered = span.enter();
                    then(outcome, actor, ctx);
                }),
        );
    }

    /// Reloads the state from storage (the pipeline asked: it is stale and a job waits).
    fn reload(&mut self, ctx: &mut Context<Self>) {
        let fut = load(self.log, self.storage.clone(), self.values.clone());
        self.spawn_job(ctx, fut, |loaded, actor, ctx| actor.loaded(loaded, ctx));
    }

    /// A load ended: jobs go on, or every waiting job gets the error.
    fn loaded(&mut self, loaded: Result<Loaded, Error>, ctx: &mut Context<Self>) {
        match loaded {
            Ok(loaded) => {
                self.apply(loaded);
                let actions = self.pipeline.loaded();
                self.run(actions, ctx);
            }
            Err(e) => {
                tracing::warn!(%e, "cannot load group store state");
                let (writes, jobs) = self.pipeline.load_failed();
                for pending in writes {
                    pending.fail(e.clone());
                }
                for job in jobs {
                    job.fail(e.clone());
                }
            }
        }
    }

    /// Takes the state loaded from storage; what decoding had cached is dropped (it is loaded
    /// again as needed).
    fn apply(&mut self, loaded: Loaded) {
        self.heads = loaded.heads;
        self.sender = loaded.sender;
        self.decoding = RemoteState {
            members: loaded.members,
            chains: HashMap::new(),
        };
        self.events.send_if_modified(|current| {
            let changed = loaded.last_event_cursor > *current;
            *current = (*current).max(loaded.last_event_cursor);
            changed
        });
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
    /// With subscribers watching, the ring keeps a burst's events (a sync page is more than
    /// its resting bounds hold) and settles back once commits stop.
    fn events_committed(
        &mut self,
        events: Vec<NewEvent>,
        cursors: &[u64],
        ctx: &mut Context<Self>,
    ) {
        let Some(last) = cursors.iter().max().copied() else {
            return;
        };
        let known = *self.events.borrow();
        let keep = if self.events.receiver_count() > 0 {
            Keep::Burst
        } else {
            Keep::Rest
        };
        let above_rest = self.recent.push(known, events, cursors, keep);
        self.last_events = Instant::now();
        if above_rest && !self.settle_scheduled {
            self.settle_scheduled = true;
            ctx.run_later(recent::SETTLE_AFTER, Self::settle_recent);
        }
        self.events.send_if_modified(|current| {
            let changed = last > *current;
            *current = (*current).max(last);
            changed
        });
    }

    /// Settles the ring of recent events once no events were committed for
    /// [`recent::SETTLE_AFTER`]; checks again later otherwise.
    fn settle_recent(&mut self, ctx: &mut Context<Self>) {
        let quiet = self.last_events.elapsed();
        if quiet < recent::SETTLE_AFTER {
            ctx.run_later(recent::SETTLE_AFTER - quiet, Self::settle_recent);
        } else {
            self.recent.settle();
            self.settle_scheduled = false;
        }
    }

    /// Counts entries a commit newly stored.
    fn count_appended(&self, new: usize) {
        self.metrics
            .entries_appended
            .get_or_create(&LogKindLabels::of(self.log.kind()))
            .inc_by(new as u64);
    }

    /// The heads once `new` entries (just stored) are added: their parents stop being heads,
    /// those of them no other names become heads (as storage works them out).
    fn heads_after(&mut self, new: &[&NewEntry]) {
        if new.is_empty() {
            return;
        }
        let named: HashSet<EntryId> = new.iter().flat_map(|e| e.parents.iter().copied()).collect();
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
}

impl Actor for GroupStoreActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        self.metrics.group_store_actors.inc();
        let span = self.span.clone();
        let _entered = span.enter();
        tracing::debug!("group store starting");
        // Hold every message until the state is loaded. If it cannot be (storage down), the
        // store stays stale: each job tries again, and fails at once while storage is down.
        self.pipeline.start();
        let in_span = span.clone();
        ctx.wait(
            load(self.log, self.storage.clone(), self.values.clone())
                .instrument(span.clone())
                .into_actor(self)
                .map(move |loaded, actor, ctx| {
                    let _entered = in_span.enter();
                    actor.loaded(loaded, ctx);
                }),
        );
        ctx.run_interval(defaults::GROUP_STORE_IDLE_CHECK, |actor, ctx| {
            let idle = actor.last_activity.elapsed() >= defaults::GROUP_STORE_IDLE;
            if idle && actor.events.receiver_count() == 0 && actor.pipeline.is_idle() {
                let _entered = actor.span.enter();
                tracing::debug!("group store idle, stopping");
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
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_activity = Instant::now();
        let (reply, answer) = oneshot::channel();
        let actions = self.pipeline.write(Pending {
            write: msg.0,
            reply,
        });
        self.run(actions, ctx);
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
