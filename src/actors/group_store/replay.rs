//! Replaying messages queued until their sender's chain key arrives ([`ReplayQueued`]): each
//! device's queue is read in total order and decoded and committed chunk by chunk.

use std::{collections::HashMap, collections::HashSet, sync::Arc};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::{
    decode::queue::{queued_order_key, read_entries, REPLAY_CHUNK},
    load::load_members,
    pipeline::Job,
    prepare::{decode_message_entries, RemoteState},
    remote::RemoteReplay,
    GroupStoreActor,
};
use crate::{
    crypto::ReceiverChain,
    error::Error,
    group::GroupContext,
    log::{LogId, OrderKey},
    replication::ports::RemoteOutcome,
    storage::SealedValues,
    storage::{value_keys::ValuePrefix, Commit, NewEvent, Storage},
};

/// Decodes the queued messages of `devices` (messages log), now that their chain keys may
/// have arrived.
#[derive(Message)]
#[rtype(result = "Result<usize, Error>")]
pub struct ReplayQueued {
    /// The sender devices.
    pub devices: Vec<[u8; 32]>,
}

impl Handler<ReplayQueued> for GroupStoreActor {
    type Result = ResponseFuture<Result<usize, Error>>;

    fn handle(&mut self, msg: ReplayQueued, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.enqueue_remote(Job::Replay(RemoteReplay { msg, reply }), ctx);
        Box::pin(super::answer_of(answer))
    }
}

/// What a replay reads and writes.
struct ReplayContext {
    storage: Arc<dyn Storage>,
    values: SealedValues,
    group: Arc<GroupContext>,
    log: LogId,
}

/// What a replay committed, even if a later chunk failed (subscribers are told).
#[derive(Default)]
struct Replayed {
    events: Vec<NewEvent>,
    cursors: Vec<u64>,
}

impl GroupStoreActor {
    /// Runs a replay whole (nothing else runs meanwhile), then reports to the pipeline.
    pub(super) fn replay_queued(&mut self, job: RemoteReplay, ctx: &mut Context<Self>) {
        let RemoteReplay { msg, reply } = job;
        let context = ReplayContext {
            storage: self.storage.clone(),
            values: self.values.clone(),
            group: self.group.clone(),
            log: self.log,
        };
        let mut chains = std::mem::take(&mut self.decoding.chains);
        for device in &msg.devices {
            // Reload: the metadata store may have stored the chain since.
            chains.remove(device);
        }
        let fut = async move {
            let mut done = Replayed::default();
            let result = replay(&context, msg.devices, &mut chains, &mut done).await;
            (result, chains, done)
        };
        self.spawn_job(ctx, fut, |(result, chains, done), actor, ctx| {
            let replayed = done.events.len();
            actor.events_committed(done.events, &done.cursors, ctx);
            let ok = result.is_ok();
            let answer = match result {
                Ok(members) => {
                    actor.decoding = RemoteState { members, chains };
                    Ok(replayed)
                }
                Err(e) => {
                    // Chains may have moved past what storage holds: reload them.
                    actor.decoding.chains.clear();
                    Err(e)
                }
            };
            tracing::debug!(replayed, ok, "queued messages replayed");
            let _ = reply.send(answer);
            let actions = actor.pipeline.committed(ok);
            actor.run(actions, ctx);
        });
    }
}

/// Decodes and commits the queued messages of `devices`, chunk by chunk; the members of the
/// group as storage has them.
async fn replay(
    context: &ReplayContext,
    devices: Vec<[u8; 32]>,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    done: &mut Replayed,
) -> Result<HashMap<[u8; 32], [u8; 32]>, Error> {
    let group_pk = context.group.record.group_pk().to_bytes();
    let members = load_members(&context.values, &group_pk).await?;
    for device in devices {
        let prefix = ValuePrefix::Queued {
            group_pk,
            device_pk: device,
        };
        let queued: Vec<(String, OrderKey)> = context
            .values
            .keys(prefix)
            .await?
            .into_iter()
            .filter_map(|key| {
                let place = queued_order_key(&key)?;
                Some((key, place))
            })
            .collect();
        for chunk in queued.chunks(REPLAY_CHUNK) {
            replay_chunk(context, &members, chains, chunk, done).await?;
        }
    }
    Ok(members)
}

/// Decodes one chunk of queued messages and commits their events, the advanced chains and
/// the queue entries that opened (deleted).
async fn replay_chunk(
    context: &ReplayContext,
    members: &HashMap<[u8; 32], [u8; 32]>,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    chunk: &[(String, OrderKey)],
    done: &mut Replayed,
) -> Result<(), Error> {
    let entries = read_entries(context.storage.as_ref(), &context.log, chunk).await?;
    let mut outcome = RemoteOutcome::default();
    let mut decoded = decode_message_entries(
        context.group.clone(),
        &context.values,
        members,
        chains,
        entries,
        &mut outcome,
    )
    .await?;
    let still_queued: HashSet<String> = decoded.values.iter().map(|(k, _)| k.clone()).collect();
    decoded.deletes = chunk
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !still_queued.contains(k))
        .collect();
    let committed = context
        .storage
        .commit(
            &context.log,
            Commit {
                entries: &[],
                events: &decoded.events,
                values: &decoded.values,
                deletes: &decoded.deletes,
            },
        )
        .await?;
    done.events.extend(decoded.events);
    done.cursors.extend(committed.event_cursors);
    Ok(())
}
