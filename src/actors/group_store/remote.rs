//! Batches of entries from other replicas ([`AppendRemote`]): each is prepared (checked and
//! decoded, see `prepare`) then committed in its turn; a commit of metadata that taught new
//! members or chain keys tells the account ([`Learnt`]).

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{
    pipeline::{Job, Ticket},
    prepare::{prepare_append, Decoded, PrepareContext, RemoteState},
    replay::ReplayQueued,
    GroupStoreActor, EARLIER_COMMIT_FAILED,
};
use crate::{
    crypto::VerifyingKey,
    error::Error,
    group::GroupReference,
    replication::ports::{AppendRemote, RemoteOutcome},
    storage::{Appended, Commit, NewEntry},
};

/// A batch of remote entries waiting for its turn.
pub(super) struct RemoteAppend {
    pub(super) msg: AppendRemote,
    pub(super) reply: oneshot::Sender<Result<RemoteOutcome, Error>>,
}

/// A replay of queued messages waiting for its turn.
pub(super) struct RemoteReplay {
    pub(super) msg: ReplayQueued,
    pub(super) reply: oneshot::Sender<Result<usize, Error>>,
}

/// A job from other replicas, in the store's pipeline.
pub(super) type RemoteJob = Job<RemoteAppend, RemoteReplay>;

impl RemoteJob {
    /// Answers `error` instead of running.
    pub(super) fn fail(self, error: Error) {
        match self {
            Job::Append(job) => {
                let _ = job.reply.send(Err(error));
            }
            Job::Replay(job) => {
                let _ = job.reply.send(Err(error));
            }
        }
    }
}

/// A batch of remote entries checked and decoded, waiting for (or in) its commit.
pub(super) struct PreparedAppend {
    /// The decoding state before this batch (restored if its commit fails).
    before: RemoteState,
    outcome: RemoteOutcome,
    entries: Vec<NewEntry>,
    decoded: Decoded,
    source: Option<PeerId>,
    reply: oneshot::Sender<Result<RemoteOutcome, Error>>,
}

impl PreparedAppend {
    /// Whether the batch writes nothing (its entries are stored already, or none was
    /// admissible).
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.decoded.is_empty()
    }

    /// Answers a batch that needed no commit.
    pub(super) fn answer_unchanged(self) {
        let _ = self.reply.send(Ok(self.outcome));
    }

    /// Answers `error` instead of committing.
    pub(super) fn fail(self, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// What a commit of remote metadata taught that needs work elsewhere (sent by the metadata
/// store to the account, which shares its chain key with the new members, has the messages
/// store open what waited for the new chains, and follows the groups the account's other
/// devices joined or left).
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct Learnt {
    /// The group.
    pub group_pk: [u8; 32],
    /// Members seen for the first time.
    pub new_members: Vec<[u8; 32]>,
    /// Devices whose chain key reached this member.
    pub new_chains: Vec<[u8; 32]>,
    /// Account log: groups another device of the account joined (`GroupJoined`), each with
    /// the contact's account key for a contact group.
    pub joined: Vec<(GroupReference, Option<VerifyingKey>)>,
    /// Account log: groups another device of the account left (`GroupLeft`).
    pub left: Vec<[u8; 32]>,
}

impl Learnt {
    fn is_empty(&self) -> bool {
        self.new_members.is_empty()
            && self.new_chains.is_empty()
            && self.joined.is_empty()
            && self.left.is_empty()
    }
}

/// Counts only: references hold group secrets.
impl std::fmt::Debug for Learnt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Learnt")
            .field("new_members", &self.new_members.len())
            .field("new_chains", &self.new_chains.len())
            .field("joined", &self.joined.len())
            .field("left", &self.left.len())
            .finish_non_exhaustive()
    }
}

impl Handler<AppendRemote> for GroupStoreActor {
    type Result = ResponseFuture<Result<RemoteOutcome, Error>>;

    fn handle(&mut self, msg: AppendRemote, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.enqueue_remote(Job::Append(RemoteAppend { msg, reply }), ctx);
        Box::pin(super::answer_of(answer))
    }
}

impl GroupStoreActor {
    /// Checks and decodes a batch off the actor's thread, from the decoding state the previous
    /// batch left; it is committed in its turn ([`Self::commit_remote`]).
    pub(super) fn prepare_remote(
        &mut self,
        job: RemoteAppend,
        ticket: Ticket,
        ctx: &mut Context<Self>,
    ) {
        let RemoteAppend { msg, reply } = job;
        let pending = self.committing_ids.clone();
        let context = PrepareContext {
            storage: self.storage.clone(),
            values: self.values.clone(),
            group: self.group.clone(),
            log: self.log,
            // Updated when a commit ends: during one, storage's heads before it.
            heads: self.heads.clone(),
            pending,
        };
        let before = self.decoding.clone();
        let mut state = RemoteState {
            members: self.decoding.members.clone(),
            chains: std::mem::take(&mut self.decoding.chains),
        };
        let source = msg.source;
        let fut = async move {
            let mut outcome = RemoteOutcome::default();
            let result = prepare_append(&context, msg.entries, &mut state, &mut outcome).await;
            (result, outcome, state)
        };
        self.spawn_job(ctx, fut, move |(result, outcome, state), actor, ctx| {
            let batch = if !actor.pipeline.is_current(ticket) {
                // An earlier commit failed meanwhile: this batch was decoded from state that
                // never reached storage (the state is already rolled back).
                let _ = reply.send(Err(Error::Unavailable(EARLIER_COMMIT_FAILED.into())));
                None
            } else {
                match result {
                    Ok((entries, decoded)) => {
                        actor.decoding = state;
                        Some(PreparedAppend {
                            before,
                            outcome,
                            entries,
                            decoded,
                            source,
                            reply,
                        })
                    }
                    Err(e) => {
                        actor.decoding = before;
                        let _ = reply.send(Err(e));
                        None
                    }
                }
            };
            let actions = actor.pipeline.prepared(ticket, batch);
            actor.run(actions, ctx);
        });
    }

    /// Commits a prepared batch; meanwhile the next batch may be prepared. A failed commit
    /// rolls the decoding state back to before the batch (the pipeline refuses what was
    /// prepared after it).
    pub(super) fn commit_remote(&mut self, prepared: PreparedAppend, ctx: &mut Context<Self>) {
        let PreparedAppend {
            before,
            mut outcome,
            entries,
            mut decoded,
            source,
            reply,
        } = prepared;
        let learnt = Learnt {
            group_pk: *self.log.group_pk(),
            new_members: std::mem::take(&mut decoded.new_members),
            new_chains: std::mem::take(&mut decoded.new_chains),
            joined: std::mem::take(&mut decoded.joined),
            left: std::mem::take(&mut decoded.left),
        };
        self.committing_ids = Arc::new(
            entries
                .iter()
                .map(|e| (e.id, e.lamport))
                .collect::<HashMap<_, _>>(),
        );
        let storage = self.storage.clone();
        let log = self.log;
        let fut = async move {
            let result = storage
                .commit(
                    &log,
                    Commit {
                        entries: &entries,
                        events: &decoded.events,
                        values: &decoded.values,
                        deletes: &decoded.deletes,
                    },
                )
                .await;
            (result, entries, decoded.events)
        };
        self.spawn_job(ctx, fut, move |(result, entries, events), actor, ctx| {
            actor.committing_ids = Arc::default();
            let ok = result.is_ok();
            match result {
                Ok(committed) => {
                    let new: Vec<&NewEntry> = entries
                        .iter()
                        .zip(&committed.appended)
                        .filter(|(_, a)| matches!(a, Appended::New { .. }))
                        .map(|(e, _)| e)
                        .collect();
                    outcome.stored = new.len();
                    actor.heads_after(&new);
                    actor.events_committed(events, &committed.event_cursors, ctx);
                    actor.count_appended(outcome.stored);
                    actor.announce(entries.into_iter().map(|e| e.bytes).collect(), source);
                    actor.follow_up(learnt);
                    let _ = reply.send(Ok(outcome));
                }
                Err(e) => {
                    let e = Error::from(e);
                    tracing::warn!(%e, "commit of remote entries failed");
                    actor.decoding = before;
                    let _ = reply.send(Err(e));
                }
            }
            let actions = actor.pipeline.committed(ok);
            actor.run(actions, ctx);
        });
    }

    /// Hands what a commit taught to the account (see [`Learnt`]).
    fn follow_up(&self, learnt: Learnt) {
        if learnt.is_empty() {
            return;
        }
        tracing::debug!(
            new_members = learnt.new_members.len(),
            new_chains = learnt.new_chains.len(),
            joined = learnt.joined.len(),
            left = learnt.left.len(),
            "remote metadata taught new members, chain keys or groups of other devices"
        );
        if let Some(account) = &self.follow_ups {
            account.do_send(learnt);
        }
    }
}
