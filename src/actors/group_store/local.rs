//! Local writes: each batch of queued writes is encrypted, signed and chained on the current
//! heads, then committed in one transaction with the advanced sender chain.

use rand::rngs::OsRng;
use tokio::sync::oneshot;

use actix::prelude::*;

use super::GroupStoreActor;
use crate::{
    crypto::{seal_message, seal_metadata, MessageKey, SenderChain},
    error::Error,
    group::{MetadataEvent, ViewBody, ViewEvent},
    log::{Entry, EntryId, LogKind, OrderKey, MAX_PARENTS},
    storage::{value_keys::ValueKey, Appended, Commit, NewEntry, NewEvent, Sealed},
};

/// What a local write puts in the log.
#[derive(Debug, Clone)]
pub enum LocalWrite {
    /// A message (messages log only): encrypted with this device's chain.
    Message {
        /// The plaintext.
        payload: Vec<u8>,
    },
    /// A metadata event (metadata log only); subscriptions show its [`MetadataEvent::view`].
    Metadata(Box<MetadataEvent>),
}

impl LocalWrite {
    /// A metadata write.
    pub fn metadata(event: MetadataEvent) -> Self {
        Self::Metadata(Box::new(event))
    }
}

/// Where the outcome of one write goes.
type Reply = oneshot::Sender<Result<EntryId, Error>>;

/// A write waiting for its batch.
pub(super) struct Pending {
    pub(super) write: LocalWrite,
    pub(super) reply: Reply,
}

impl Pending {
    /// Answers `error` instead of writing.
    pub(super) fn fail(self, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// Built entries of one batch, before they are committed.
struct Batch {
    entries: Vec<NewEntry>,
    events: Vec<NewEvent>,
    values: Vec<(String, Sealed)>,
    replies: Vec<(Reply, Result<EntryId, Error>)>,
    heads: Vec<OrderKey>,
    sender: Option<SenderChain>,
}

impl GroupStoreActor {
    /// Builds `writes` into one batch and commits it, then reports to the pipeline.
    pub(super) fn commit_local(&mut self, writes: Vec<Pending>, ctx: &mut Context<Self>) {
        let batch = self.build(writes);
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
        self.spawn_job(ctx, fut, |(batch, result), actor, ctx| {
            let Batch {
                entries,
                events,
                replies,
                heads,
                sender,
                ..
            } = batch;
            let ok = result.is_ok();
            match result {
                Ok(committed) => {
                    let new = committed
                        .appended
                        .iter()
                        .filter(|a| matches!(a, Appended::New { .. }))
                        .count();
                    actor.count_appended(new);
                    actor.heads = heads;
                    if sender.is_some() {
                        actor.sender = sender;
                    }
                    actor.events_committed(events, &committed.event_cursors, ctx);
                    for (reply, outcome) in replies {
                        let _ = reply.send(outcome);
                    }
                    actor.announce(entries.into_iter().map(|e| e.bytes).collect(), None);
                }
                Err(e) => {
                    let e = Error::from(e);
                    tracing::warn!(%e, "commit failed; writes not acknowledged");
                    for (reply, outcome) in replies {
                        let _ = reply.send(outcome.and(Err(e.clone())));
                    }
                }
            }
            let actions = actor.pipeline.committed(ok);
            actor.run(actions, ctx);
        });
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
                            *outcome = Err(e.clone().into());
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

    /// Seals one write (a message advances `sender`).
    fn seal(
        &self,
        write: LocalWrite,
        sender: &mut Option<SenderChain>,
    ) -> Result<SealedWrite, Error> {
        let group = &self.group;
        let device = &group.record.device;
        match (write, self.log.kind()) {
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
                Ok(SealedWrite {
                    payload: sealed,
                    view: Some(ViewBody::Message { payload }),
                    keyed: Some((counter, key)),
                })
            }
            (LocalWrite::Metadata(event), LogKind::Metadata) => {
                let view = event.view();
                let sealed = seal_metadata(group.keys(), device, &event.encode(), &mut OsRng)
                    .map_err(|e| Error::Internal(format!("sealing metadata: {e}")))?;
                Ok(SealedWrite {
                    payload: sealed,
                    view,
                    keyed: None,
                })
            }
            _ => Err(Error::Internal(
                "write sent to the wrong log of the group".into(),
            )),
        }
    }

    fn build_one(
        &self,
        write: LocalWrite,
        batch: &mut Batch,
        sender: &mut Option<SenderChain>,
    ) -> Result<EntryId, Error> {
        let SealedWrite {
            payload,
            view,
            keyed,
        } = self.seal(write, sender)?;
        let group = &self.group;
        let device = &group.record.device;
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
            let (member_pk, device_pk) = (
                group.member.verifying_key().to_bytes(),
                device.verifying_key().to_bytes(),
            );
            let event = ViewEvent {
                member_pk,
                device_pk,
                body,
            };
            let stored = keyed.map(|(counter, key)| {
                ViewEvent::keyed_message(member_pk, device_pk, counter, &key).encode()
            });
            batch.events.push(NewEvent {
                entry_id: id,
                lamport,
                parents: parents.clone(),
                kind: event.kind().as_u8(),
                body: event.encode(),
                stored,
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

/// One write sealed ([`GroupStoreActor::seal`]).
struct SealedWrite {
    /// The entry's payload.
    payload: Vec<u8>,
    /// What it shows subscribers, if anything.
    view: Option<ViewBody>,
    /// A message's counter and key: storage keeps them instead of `view`
    /// ([`ViewEvent::keyed_message`]).
    keyed: Option<(u64, MessageKey)>,
}

/// Parents of the next local entry: the current heads, at most [`MAX_PARENTS`] (the highest in
/// total order when there are more).
fn parents_of(heads: &[OrderKey]) -> Vec<EntryId> {
    let mut heads = heads.to_vec();
    heads.sort();
    heads.iter().rev().take(MAX_PARENTS).map(|h| h.id).collect()
}
