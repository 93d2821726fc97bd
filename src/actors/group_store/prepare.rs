//! Checking and decoding a batch of remote entries before its commit: the Lamport rule and
//! parents against storage (and the commit in flight), then the group view with the decoding
//! state ([`RemoteState`]) the previous batch left.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{
    decode::{decode_messages, decode_metadata, open_headers, queue::QUEUED_MARKER},
    load::load_chain,
};
use crate::{
    crypto::{ReceiverChain, VerifyingKey},
    error::Error,
    group::{GroupContext, GroupReference},
    log::{
        parallel::{off_async_threads, PARALLEL_FROM},
        Entry, EntryId, LogId, LogKind, OrderKey,
    },
    replication::{admission::admissible, ports::RemoteOutcome},
    storage::{value_keys::ValueKey, NewEntry, NewEvent, Sealed, SealedValues, Storage},
};

/// The decoding state of remote entries: what a failed commit rolls back to.
#[derive(Clone, Default)]
pub(super) struct RemoteState {
    /// Devices of the group and their members.
    pub(super) members: HashMap<[u8; 32], [u8; 32]>,
    /// Messages log: receiver chains of other devices, loaded as they are needed.
    pub(super) chains: HashMap<[u8; 32], ReceiverChain>,
}

/// What checking and decoding a batch of remote entries reads.
pub(super) struct PrepareContext {
    pub(super) storage: Arc<dyn Storage>,
    pub(super) values: SealedValues,
    pub(super) group: Arc<GroupContext>,
    pub(super) log: LogId,
    /// Entries of an earlier batch whose commit is in flight: they count as stored.
    pub(super) pending: Arc<HashMap<EntryId, u64>>,
    /// The log's heads in storage before the commit in flight, if any (see [`admissible`]).
    pub(super) heads: Vec<OrderKey>,
}

/// Checks (Lamport rule, parents) and decodes a batch of remote entries with the decoding
/// state `state` (advanced in place).
pub(super) async fn prepare_append(
    context: &PrepareContext,
    entries: Vec<Entry>,
    state: &mut RemoteState,
    outcome: &mut RemoteOutcome,
) -> Result<(Vec<NewEntry>, Decoded), Error> {
    let log = context.log;
    let accepted = admissible(
        context.storage.as_ref(),
        &log,
        entries,
        &context.pending,
        &context.heads,
        outcome,
    )
    .await?;
    if accepted.is_empty() {
        return Ok((Vec::new(), Decoded::default()));
    }
    let decoded = match log.kind() {
        LogKind::Metadata => {
            decode_metadata_entries(
                &context.group,
                &context.values,
                &mut state.members,
                &accepted,
                outcome,
            )
            .await?
        }
        LogKind::Messages => {
            decode_message_entries(
                context.group.clone(),
                &context.values,
                &state.members,
                &mut state.chains,
                accepted.clone(),
                outcome,
            )
            .await?
        }
    };
    let entries = accepted.into_iter().map(NewEntry::from).collect();
    Ok((entries, decoded))
}

/// What one commit of remote entries or replayed messages writes.
#[derive(Default)]
pub(super) struct Decoded {
    /// View events to commit.
    pub(super) events: Vec<NewEvent>,
    /// Node values to write (sealed where secret).
    pub(super) values: Vec<(String, Sealed)>,
    /// Node values to delete.
    pub(super) deletes: Vec<String>,
    /// Members seen for the first time (metadata log): they get this device's chain key.
    pub(super) new_members: Vec<[u8; 32]>,
    /// Devices whose chain key reached this member (metadata log): their queued messages
    /// can be opened now.
    pub(super) new_chains: Vec<[u8; 32]>,
    /// Account log: groups another device of the account joined (see [`super::Learnt`]).
    pub(super) joined: Vec<(GroupReference, Option<VerifyingKey>)>,
    /// Account log: groups another device of the account left.
    pub(super) left: Vec<[u8; 32]>,
}

impl Decoded {
    /// Whether there is nothing to write.
    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.values.is_empty() && self.deletes.is_empty()
    }
}

/// Decodes metadata entries and the node values they teach.
async fn decode_metadata_entries(
    group: &GroupContext,
    values: &SealedValues,
    members: &mut HashMap<[u8; 32], [u8; 32]>,
    entries: &[Entry],
    outcome: &mut RemoteOutcome,
) -> Result<Decoded, Error> {
    let group_pk = group.record.group_pk().to_bytes();
    let own_device = group.record.device.verifying_key().to_bytes();
    let decoded = decode_metadata(group, members, entries);
    let mut out = Decoded {
        events: decoded.events,
        ..Decoded::default()
    };
    for (device, member) in decoded.members {
        let key = ValueKey::Member {
            group_pk,
            device_pk: device,
        }
        .to_string();
        out.values.push((key.clone(), values.seal(&key, &member)?));
    }
    for (device, chain) in decoded.chains {
        let key = ValueKey::Receiver {
            group_pk,
            device_pk: device,
        }
        .to_string();
        // The first share wins: the messages store owns the chain once it exists.
        if device == own_device || values.contains(&key).await? {
            continue;
        }
        out.values
            .push((key.clone(), values.seal(&key, &chain.to_bytes())?));
        out.new_chains.push(device);
    }
    out.new_members = decoded.new_members;
    out.joined = decoded.joined;
    out.left = decoded.left;
    outcome.skipped += decoded.skipped;
    Ok(out)
}

/// Decodes message entries with the receiver chains (loading those not in `chains`), off the
/// actor's thread; queues those whose sender has no chain here yet.
pub(super) async fn decode_message_entries(
    group: Arc<GroupContext>,
    values: &SealedValues,
    members: &HashMap<[u8; 32], [u8; 32]>,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    entries: Vec<Entry>,
    outcome: &mut RemoteOutcome,
) -> Result<Decoded, Error> {
    let group_pk = group.record.group_pk().to_bytes();
    // A large batch (a sync page) is opened on every core, off this thread; a live one here.
    let (opened, skipped) = if entries.len() < PARALLEL_FROM {
        open_headers(&group, entries)
    } else {
        let context = group.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            open_headers(&context, entries)
        })
        .await
        .map_err(|e| Error::Internal(format!("header opening task failed: {e}")))?
    };
    outcome.skipped += skipped;
    let mut members = members.clone();
    // Each sender device is looked up once per batch, found or not.
    let devices: HashSet<[u8; 32]> = opened.iter().map(|m| m.header.device.to_bytes()).collect();
    for device in devices {
        if let std::collections::hash_map::Entry::Vacant(slot) = chains.entry(device) {
            if let Some(chain) = load_chain(values, &group_pk, &device).await? {
                slot.insert(chain);
            }
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = members.entry(device) {
            let key = ValueKey::Member {
                group_pk,
                device_pk: device,
            }
            .to_string();
            if let Some(member) = values.get(&key).await? {
                if let Ok(member) = <[u8; 32]>::try_from(member) {
                    slot.insert(member);
                }
            }
        }
    }
    let mut moved = std::mem::take(chains);
    let context = group.clone();
    let span = tracing::Span::current();
    let (decoded, moved) = off_async_threads(opened.len(), move || {
        let _entered = span.enter();
        let decoded = decode_messages(&context, &mut moved, &members, &opened);
        (decoded, moved)
    })
    .await
    .map_err(|e| Error::Internal(format!("message decoding task failed: {e}")))?;
    *chains = moved;
    outcome.skipped += decoded.skipped;
    let mut out = Decoded {
        events: decoded.events,
        ..Decoded::default()
    };
    for device in decoded.touched {
        if let Some(chain) = chains.get(&device) {
            let key = ValueKey::Receiver {
                group_pk,
                device_pk: device,
            }
            .to_string();
            out.values
                .push((key.clone(), values.seal(&key, &chain.to_bytes())?));
        }
    }
    for (device, lamport, id) in decoded.queued {
        let key = ValueKey::Queued {
            group_pk,
            device_pk: device,
            order: OrderKey { lamport, id },
        }
        .to_string();
        let marker = values.seal(&key, QUEUED_MARKER)?;
        out.values.push((key, marker));
    }
    Ok(out)
}
