//! Entries from other replicas: the Lamport rule, decoding into the view, one commit; and
//! messages queued until their sender's chain key arrives.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use actix::prelude::*;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::GroupStoreActor;
use crate::{
    crypto::ReceiverChain,
    error::Error,
    group::GroupContext,
    log::{Entry, EntryId, LogId, LogKind, OrderKey},
    metrics::LogKindLabels,
    replication::decode::{decode_messages, decode_metadata, open_headers},
    replication::ports::{AppendRemote, RemoteOutcome},
    sealed_values::SealedValues,
    storage::{
        value_keys::{ValueKey, ValuePrefix},
        Appended, Commit, Direction, NewEntry, NewEvent, OrderRange, Storage,
    },
};

/// The value of a queued message's key: its key says it all.
const QUEUED_MARKER: &[u8] = b"q";
/// Queued messages opened per commit when their chain key arrives.
const REPLAY_CHUNK: usize = 4096;

/// The place in the total order a queue key names (`.../<lamport>/<id>`).
fn queued_order_key(key: &str) -> Option<OrderKey> {
    match ValueKey::parse(key) {
        Ok(ValueKey::Queued { order, .. }) => Some(order),
        _ => None,
    }
}

/// The entries of `queued` (in total order), read with range scans over the log rather than
/// one lookup per entry.
async fn read_entries(
    storage: &dyn Storage,
    log: &LogId,
    queued: &[(String, OrderKey)],
) -> Result<Vec<Entry>, Error> {
    let (Some((_, first)), Some((_, last))) = (queued.first(), queued.last()) else {
        return Ok(Vec::new());
    };
    let wanted: HashSet<EntryId> = queued.iter().map(|(_, k)| k.id).collect();
    let mut entries = Vec::with_capacity(queued.len());
    let mut lower = std::ops::Bound::Included(*first);
    loop {
        let page = storage
            .range(
                log,
                &OrderRange {
                    lower,
                    upper: std::ops::Bound::Included(*last),
                    direction: Direction::Forward,
                    limit: REPLAY_CHUNK as u32,
                },
            )
            .await?;
        let Some(end) = page.last().map(|e| e.order_key()) else {
            break;
        };
        let full = page.len() == REPLAY_CHUNK;
        for stored in page {
            if wanted.contains(&stored.id) {
                if let Ok(entry) = Entry::decode(&stored.bytes) {
                    entries.push(entry);
                }
            }
        }
        if !full || entries.len() == wanted.len() {
            break;
        }
        lower = std::ops::Bound::Excluded(end);
    }
    Ok(entries)
}

/// Loads the device-to-member bindings of a group.
pub(super) async fn load_members(
    values: &SealedValues,
    group_pk: &[u8; 32],
) -> Result<HashMap<[u8; 32], [u8; 32]>, Error> {
    let prefix = ValuePrefix::Members {
        group_pk: *group_pk,
    };
    let mut members = HashMap::new();
    for (key, member) in values.list(prefix).await? {
        let device = match ValueKey::parse(&key) {
            Ok(ValueKey::Member { device_pk, .. }) => Some(device_pk),
            _ => None,
        };
        let member = <[u8; 32]>::try_from(member).ok();
        if let (Some(device), Some(member)) = (device, member) {
            members.insert(device, member);
        }
    }
    Ok(members)
}

/// Loads the stored receiver chain of `device`, if any.
async fn load_chain(
    values: &SealedValues,
    group_pk: &[u8; 32],
    device: &[u8; 32],
) -> Result<Option<ReceiverChain>, Error> {
    let key = ValueKey::Receiver {
        group_pk: *group_pk,
        device_pk: *device,
    };
    match values.get(&key.to_string()).await? {
        Some(bytes) => ReceiverChain::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("stored receiver chain does not parse: {e}"))),
        None => Ok(None),
    }
}

/// The entries that may be stored, in order: up to the first with an unknown parent or a
/// wrong Lamport clock; entries already stored are left out. `pending` are entries of a commit
/// in flight (they count as stored). `heads` are the log's heads when no commit is in flight:
/// a batch that only builds on them (and on itself) needs no lookup, since an entry whose
/// parents are all still heads cannot be stored yet.
async fn admissible(
    storage: &dyn Storage,
    log: &LogId,
    entries: Vec<Entry>,
    pending: &HashMap<EntryId, u64>,
    heads: &[OrderKey],
    outcome: &mut RemoteOutcome,
) -> Result<Vec<Entry>, Error> {
    let mut known: HashMap<EntryId, u64> = heads.iter().map(|h| (h.id, h.lamport)).collect();
    let mut batch: HashSet<EntryId> = HashSet::with_capacity(entries.len());
    let on_heads = !known.is_empty()
        && entries.iter().all(|e| {
            let builds_on_known = !e.parents().is_empty()
                && e.parents()
                    .iter()
                    .all(|p| known.contains_key(p) || batch.contains(p));
            builds_on_known && !known.contains_key(&e.id()) && batch.insert(e.id())
        });
    if !on_heads {
        let wanted: Vec<EntryId> = entries
            .iter()
            .flat_map(|e| e.parents().iter().copied().chain([e.id()]))
            .filter(|id| !pending.contains_key(id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        known = storage
            .order_keys(log, &wanted)
            .await?
            .into_iter()
            .map(|k| (k.id, k.lamport))
            .collect();
        known.extend(pending.iter().map(|(id, lamport)| (*id, *lamport)));
    }
    let mut accepted = Vec::with_capacity(entries.len());
    for entry in entries {
        if known.contains_key(&entry.id()) {
            outcome.existing += 1;
            continue;
        }
        let mut max = 0u64;
        let mut missing = None;
        for parent in entry.parents() {
            match known.get(parent) {
                Some(lamport) => max = max.max(*lamport),
                None => missing = Some(*parent),
            }
        }
        if let Some(parent) = missing {
            outcome.missing_parent = Some(parent);
            break;
        }
        if Some(entry.lamport()) != max.checked_add(1) {
            outcome.violation = Some(format!(
                "entry {} has Lamport clock {}, expected {}",
                entry.id(),
                entry.lamport(),
                max.saturating_add(1)
            ));
            break;
        }
        known.insert(entry.id(), entry.lamport());
        accepted.push(entry);
    }
    Ok(accepted)
}

/// What one commit of remote entries or replayed messages writes.
#[derive(Default)]
pub(super) struct Decoded {
    events: Vec<NewEvent>,
    values: Vec<(String, Vec<u8>)>,
    deletes: Vec<String>,
    /// Members seen for the first time (metadata log): they get this device's chain key.
    new_members: Vec<[u8; 32]>,
    /// Devices whose chain key reached this member (metadata log): their queued messages
    /// can be opened now.
    new_chains: Vec<[u8; 32]>,
}

impl Decoded {
    fn is_empty(&self) -> bool {
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
    outcome.skipped += decoded.skipped;
    Ok(out)
}

/// Decodes message entries with the receiver chains (loading those not in `chains`), off the
/// actor's thread; queues those whose sender has no chain here yet.
async fn decode_message_entries(
    group: std::sync::Arc<GroupContext>,
    values: &SealedValues,
    members: &HashMap<[u8; 32], [u8; 32]>,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    entries: Vec<Entry>,
    outcome: &mut RemoteOutcome,
) -> Result<Decoded, Error> {
    let group_pk = group.record.group_pk().to_bytes();
    let (opened, skipped) = open_headers(&group, entries);
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
    let (decoded, moved) = tokio::task::spawn_blocking(move || {
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

/// A remote job waiting for its turn in the store.
pub(crate) enum RemoteJob {
    Append(AppendRemote, oneshot::Sender<Result<RemoteOutcome, Error>>),
    Replay(ReplayQueued, oneshot::Sender<Result<usize, Error>>),
}

/// The decoding state of remote entries: what a failed commit rolls back to.
#[derive(Clone, Default)]
pub(super) struct RemoteState {
    members: HashMap<[u8; 32], [u8; 32]>,
    chains: HashMap<[u8; 32], ReceiverChain>,
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

impl RemoteJob {
    /// Answers `error` instead of running.
    pub(super) fn fail(self, error: Error) {
        match self {
            RemoteJob::Append(_, reply) => {
                let _ = reply.send(Err(error));
            }
            RemoteJob::Replay(_, reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

impl PreparedAppend {
    /// Answers `error` instead of committing.
    pub(super) fn fail(self, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

/// What checking and decoding a batch of remote entries reads.
struct PrepareContext {
    storage: Arc<dyn Storage>,
    values: SealedValues,
    group: Arc<GroupContext>,
    log: LogId,
    /// Entries of an earlier batch whose commit is in flight: they count as stored.
    pending: Arc<HashMap<EntryId, u64>>,
    /// The log's heads, when no commit is in flight (see [`admissible`]).
    heads: Vec<OrderKey>,
}

/// Checks (Lamport rule, parents) and decodes a batch of remote entries with the decoding
/// state `state` (advanced in place).
async fn prepare_append(
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
    let entries = accepted
        .into_iter()
        .map(|e| NewEntry {
            id: e.id(),
            lamport: e.lamport(),
            parents: e.parents().to_vec(),
            bytes: e.into_bytes(),
        })
        .collect();
    Ok((entries, decoded))
}

impl Handler<AppendRemote> for GroupStoreActor {
    type Result = ResponseFuture<Result<RemoteOutcome, Error>>;

    fn handle(&mut self, msg: AppendRemote, ctx: &mut Self::Context) -> Self::Result {
        self.enqueue_remote(|reply| RemoteJob::Append(msg, reply), ctx)
    }
}

impl GroupStoreActor {
    /// Queues a remote job; the answer comes when it has run.
    fn enqueue_remote<T: 'static>(
        &mut self,
        job: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> RemoteJob,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<T, Error>> {
        self.last_activity = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.remote_jobs.push_back(job(reply));
        self.pump(ctx);
        Box::pin(super::answer_of(answer))
    }

    /// Whether the next remote job may be prepared while the commit in flight runs: batches
    /// of the messages log follow each other (decoding the next while the previous commits).
    /// Metadata batches run one at a time (their decoding reads what the previous stored).
    pub(super) fn may_prepare_next(&self) -> bool {
        self.log.kind() == LogKind::Messages
            && self.queue.is_empty()
            && matches!(self.remote_jobs.front(), Some(RemoteJob::Append(..)))
    }

    /// Runs one remote job: a batch of entries is prepared (then committed in its turn), a
    /// replay runs whole.
    pub(super) fn run_remote(&mut self, job: RemoteJob, ctx: &mut Context<Self>) {
        match job {
            RemoteJob::Append(msg, reply) => self.prepare_remote(msg, reply, ctx),
            RemoteJob::Replay(msg, reply) => {
                self.writing = true;
                self.replay_queued(msg, reply, ctx)
            }
        }
    }

    /// Checks and decodes a batch off the actor's thread; it is committed once every earlier
    /// job has committed ([`Self::commit_remote`]).
    fn prepare_remote(
        &mut self,
        msg: AppendRemote,
        reply: oneshot::Sender<Result<RemoteOutcome, Error>>,
        ctx: &mut Context<Self>,
    ) {
        self.preparing = true;
        let pending = self.committing_ids.clone();
        let context = PrepareContext {
            storage: self.storage.clone(),
            values: self.values.clone(),
            group: self.group.clone(),
            log: self.log,
            // The heads are those of storage only when no commit is in flight.
            heads: if pending.is_empty() {
                self.heads.clone()
            } else {
                Vec::new()
            },
            pending,
        };
        let before = RemoteState {
            members: self.members.clone(),
            chains: self.chains.clone(),
        };
        let mut state = RemoteState {
            members: self.members.clone(),
            chains: std::mem::take(&mut self.chains),
        };
        let epoch = self.epoch;
        let source = msg.source;
        ctx.spawn(
            async move {
                let mut outcome = RemoteOutcome::default();
                let result = prepare_append(&context, msg.entries, &mut state, &mut outcome).await;
                (result, outcome, state)
            }
            .into_actor(self)
            .map(move |(result, outcome, state), actor, ctx| {
                actor.preparing = false;
                if actor.epoch != epoch {
                    // An earlier commit failed meanwhile: this batch was decoded from state that
                    // never reached storage (the state is already rolled back).
                    let _ = reply.send(Err(Error::Unavailable(
                        "an earlier commit of the log failed".into(),
                    )));
                } else {
                    match result {
                        Ok((entries, decoded)) => {
                            actor.members = state.members;
                            actor.chains = state.chains;
                            actor.prepared.push_back(PreparedAppend {
                                before,
                                outcome,
                                entries,
                                decoded,
                                source,
                                reply,
                            });
                        }
                        Err(e) => {
                            actor.members = before.members;
                            actor.chains = before.chains;
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                actor.pump(ctx);
            }),
        );
    }

    /// Commits a prepared batch; meanwhile the next batch may be prepared.
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
        };
        if entries.is_empty() && decoded.is_empty() {
            let _ = reply.send(Ok(outcome));
            return;
        }
        self.writing = true;
        self.committing_ids = Arc::new(entries.iter().map(|e| (e.id, e.lamport)).collect());
        let storage = self.storage.clone();
        let log = self.log;
        ctx.spawn(
            async move {
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
            }
            .into_actor(self)
            .map(move |(result, entries, events), actor, ctx| {
                actor.writing = false;
                actor.committing_ids = Arc::default();
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
                        actor.events_committed(events, &committed.event_cursors);
                        actor
                            .metrics
                            .entries_appended
                            .get_or_create(&LogKindLabels {
                                kind: actor.kind_label(),
                            })
                            .inc_by(outcome.stored as u64);
                        actor.announce(entries.into_iter().map(|e| e.bytes).collect(), source);
                        actor.follow_up(learnt);
                        let _ = reply.send(Ok(outcome));
                    }
                    Err(e) => {
                        let e = Error::from(e);
                        tracing::warn!(log = ?actor.log, %e, "commit of remote entries failed");
                        actor.roll_back(before);
                        actor.commit_failed();
                        let _ = reply.send(Err(e));
                    }
                }
                actor.pump(ctx);
            }),
        );
    }

    /// A commit failed: the decoding state goes back to `before`, and batches decoded after
    /// it (waiting or being decoded) fail too.
    fn roll_back(&mut self, before: RemoteState) {
        self.members = before.members;
        self.chains = before.chains;
        self.epoch += 1;
        for prepared in self.prepared.drain(..) {
            prepared.fail(Error::Unavailable(
                "an earlier commit of the log failed".into(),
            ));
        }
    }
}

/// What a commit of remote metadata taught that needs work elsewhere (sent by the metadata
/// store to the account, which shares its chain key with the new members and has the
/// messages store open what waited for the new chains).
#[derive(Message, Debug, Default)]
#[rtype(result = "()")]
pub struct Learnt {
    /// The group.
    pub group_pk: [u8; 32],
    /// Members seen for the first time.
    pub new_members: Vec<[u8; 32]>,
    /// Devices whose chain key reached this member.
    pub new_chains: Vec<[u8; 32]>,
}

impl Learnt {
    fn is_empty(&self) -> bool {
        self.new_members.is_empty() && self.new_chains.is_empty()
    }
}

impl GroupStoreActor {
    /// Hands what a commit taught to the account (see [`Learnt`]).
    fn follow_up(&self, learnt: Learnt) {
        if learnt.is_empty() {
            return;
        }
        if let Some(account) = &self.follow_ups {
            account.do_send(learnt);
        }
    }
}

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
        self.enqueue_remote(|reply| RemoteJob::Replay(msg, reply), ctx)
    }
}

impl GroupStoreActor {
    fn replay_queued(
        &mut self,
        msg: ReplayQueued,
        reply: oneshot::Sender<Result<usize, Error>>,
        ctx: &mut Context<Self>,
    ) {
        let storage = self.storage.clone();
        let values = self.values.clone();
        let group = self.group.clone();
        let log = self.log;
        let mut chains = std::mem::take(&mut self.chains);
        for device in &msg.devices {
            // Reload: the metadata store may have stored the chain since.
            chains.remove(device);
        }
        ctx.spawn(
            async move {
                // What committed, even if a later chunk fails: subscribers are told.
                let mut events = Vec::new();
                let mut cursors = Vec::new();
                let result = async {
                    let group_pk = group.record.group_pk().to_bytes();
                    let members = load_members(&values, &group_pk).await?;
                    let mut replayed = 0;
                    for device in msg.devices {
                        let prefix = ValuePrefix::Queued {
                            group_pk,
                            device_pk: device,
                        };
                        let queued: Vec<(String, OrderKey)> = values
                            .keys(prefix)
                            .await?
                            .into_iter()
                            .filter_map(|key| {
                                let place = queued_order_key(&key)?;
                                Some((key, place))
                            })
                            .collect();
                        for chunk in queued.chunks(REPLAY_CHUNK) {
                            let entries = read_entries(storage.as_ref(), &log, chunk).await?;
                            let mut outcome = RemoteOutcome::default();
                            let mut decoded = decode_message_entries(
                                group.clone(),
                                &values,
                                &members,
                                &mut chains,
                                entries,
                                &mut outcome,
                            )
                            .await?;
                            let still_queued: HashSet<String> =
                                decoded.values.iter().map(|(k, _)| k.clone()).collect();
                            decoded.deletes = chunk
                                .iter()
                                .map(|(k, _)| k.clone())
                                .filter(|k| !still_queued.contains(k))
                                .collect();
                            replayed += decoded.events.len();
                            let committed = storage
                                .commit(
                                    &log,
                                    Commit {
                                        entries: &[],
                                        events: &decoded.events,
                                        values: &decoded.values,
                                        deletes: &decoded.deletes,
                                    },
                                )
                                .await?;
                            events.extend(decoded.events);
                            cursors.extend(committed.event_cursors);
                        }
                    }
                    Ok::<_, Error>((replayed, members))
                }
                .await;
                (result, chains, events, cursors)
            }
            .into_actor(self)
            .map(|(result, chains, events, cursors), actor, ctx| {
                actor.writing = false;
                actor.events_committed(events, &cursors);
                let answer = match result {
                    Ok((replayed, members)) => {
                        actor.chains = chains;
                        actor.members = members;
                        Ok(replayed)
                    }
                    Err(e) => {
                        // Chains may have moved past what storage holds: reload them.
                        actor.chains.clear();
                        actor.commit_failed();
                        Err(e)
                    }
                };
                let _ = reply.send(answer);
                actor.pump(ctx);
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_name_their_place_in_the_total_order() {
        let id = EntryId([9; 32]);
        let key = ValueKey::Queued {
            group_pk: [1; 32],
            device_pk: [2; 32],
            order: OrderKey { lamport: 42, id },
        }
        .to_string();
        assert_eq!(queued_order_key(&key), Some(OrderKey { lamport: 42, id }));
        assert_eq!(queued_order_key("queue/x/y/notanumber/00"), None);
    }
}
