//! Our side with the peer: the hello as requester ([`HelloRequester`]), and syncing one log:
//! its heads, then what we lack, fetched in pipelined pages and handed to the log's store.

use std::collections::{HashSet, VecDeque};

use actix::prelude::*;
use libp2p::PeerId;
use rand::{rngs::OsRng, RngCore};

use super::{PeerActor, PeerContext};
use crate::replication::wire::ERROR_NOT_PROVEN;
use crate::{
    crypto::VerifyingKey,
    error::Error,
    log::{Entry, LogId, OrderKey},
    p2p::{Fetch, P2pError, SyncRequest, SyncResponse},
    replication::{
        hello::{HelloError, HelloReply, HelloRequester},
        ports::{AppendRemote, Directory, RemoteOutcome},
        wire::{verify_received, Rejection},
        MAX_FETCH_ENTRIES, MAX_SYNC_DEPTH_STEPS, MAX_TAGS,
    },
};

/// Pages of one sync handed to the store and not answered yet, at most: the store commits one
/// while it decodes the next, a third waits, and the page after is fetched and verified
/// meanwhile.
const SYNC_PAGES_IN_STORE: usize = 3;

/// Entries asked for in the first page of a sync pass; each next page asks for twice as many,
/// up to [`MAX_FETCH_ENTRIES`]. A fresh member's first page is stored sooner, and the pages
/// after it are fetched and verified while it is decoded and committed.
const FIRST_PAGE_ENTRIES: u32 = 512;

/// Our hello with a peer is tried again after a failure (not a rejection: the stream reset,
/// the peer did not answer) this many times, waiting [`HELLO_RETRY`] doubled each time;
/// without it, two replicas whose first hello failed would not sync until something else
/// changed.
const HELLO_RETRIES: u32 = 4;
/// The first wait before a hello is tried again.
const HELLO_RETRY: std::time::Duration = std::time::Duration::from_millis(250);

/// Why a sync with a peer stopped early.
pub(super) enum SyncStop {
    /// The peer sent invalid data: penalise it.
    Rejected(Rejection),
    /// Anything else (the peer went away, storage hiccup): try again later.
    Failed(String),
    /// The peer does not know yet that we hold the group: its side of the hello that proves
    /// it is still in flight (our requests can overtake it). Tried again shortly.
    NotProvenYet,
}

impl From<Error> for SyncStop {
    fn from(e: Error) -> Self {
        Self::Failed(e.to_string())
    }
}

impl From<P2pError> for SyncStop {
    fn from(e: P2pError) -> Self {
        match e {
            // The peer's answer does not parse: it broke the protocol.
            P2pError::SyncMalformed { reason, .. } => {
                Self::Rejected(Rejection::Protocol(reason.to_string()))
            }
            e => Self::Failed(e.to_string()),
        }
    }
}

impl From<HelloError> for SyncStop {
    fn from(e: HelloError) -> Self {
        Self::Rejected(Rejection::Protocol(e.to_string()))
    }
}

impl PeerContext {
    async fn ask(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, SyncStop> {
        Ok(self.swarm.sync(peer, request).await?)
    }

    /// Appends verified entries to the log's store and counts them.
    pub(super) async fn append(
        &self,
        store: &Recipient<AppendRemote>,
        log: LogId,
        entries: Vec<Entry>,
        source: PeerId,
    ) -> Result<RemoteOutcome, Error> {
        let outcome = store
            .send(AppendRemote {
                entries,
                source: Some(source),
            })
            .await
            .map_err(|_| Error::stopped("the group store is not running"))??;
        self.appended(log, &outcome, source);
        Ok(outcome)
    }

    fn appended(&self, log: LogId, outcome: &RemoteOutcome, source: PeerId) {
        self.metrics
            .replication_entries_received
            .inc_by(outcome.stored as u64);
        tracing::debug!(%source, ?log, ?outcome, "remote entries appended");
    }
}

/// The store of `log`, when its group is replicated.
pub(super) fn store_of(
    directory: &Directory,
    log: LogId,
) -> Result<Recipient<AppendRemote>, SyncStop> {
    directory
        .get(log.group_pk())
        .map(|links| links.stores.of(log.kind()).clone())
        .ok_or_else(|| SyncStop::Failed("group no longer replicated".into()))
}

impl PeerActor {
    /// Runs the hello as requester: learns which of our groups the peer holds, proves them
    /// back, and syncs them.
    pub(super) fn hello(&mut self, ctx: &mut Context<Self>) {
        let context = self.context.clone();
        let directory = self.directory.clone();
        let peer = self.peer;
        let fut = async move {
            let mut nonce = [0u8; 32];
            OsRng.fill_bytes(&mut nonce);
            let hello = HelloRequester::new(nonce);
            let reply = match context.ask(peer, SyncRequest::Hello { nonce }).await? {
                SyncResponse::Hello { nonce, tags } => HelloReply { nonce, tags },
                other => return Err(SyncStop::Failed(format!("hello refused: {other:?}"))),
            };
            let groups = directory.iter().map(|(pk, g)| (pk, &g.link_key));
            let local = context.swarm.peer_id().to_bytes();
            let (shared, proof) =
                hello.on_reply(&reply, groups, &peer.to_bytes(), &local, MAX_TAGS)?;
            let request = SyncRequest::Prove {
                requester_nonce: proof.requester_nonce,
                responder_nonce: proof.responder_nonce,
                tags: proof.tags,
            };
            match context.ask(peer, request).await? {
                SyncResponse::Prove { .. } => Ok(shared),
                other => Err(SyncStop::Failed(format!("proof refused: {other:?}"))),
            }
        };
        ctx.spawn(fut.into_actor(self).map(|result, actor, ctx| {
            let _span = actor.span.clone().entered();
            match result {
                Ok(shared) => {
                    tracing::debug!(groups = shared.len(), "hello done");
                    actor.hello_failures = 0;
                    actor.add_groups(&shared);
                    actor.sync_groups(shared, ctx);
                }
                Err(SyncStop::Rejected(rejection)) => actor.penalise(rejection, ctx),
                // A hello asks nothing that needs a proof.
                Err(SyncStop::NotProvenYet) => {}
                Err(SyncStop::Failed(reason)) => {
                    tracing::debug!(reason, "hello failed");
                    if actor.hello_failures < HELLO_RETRIES && actor.penalty.is_none() {
                        let wait = HELLO_RETRY * 2u32.pow(actor.hello_failures);
                        actor.hello_failures += 1;
                        ctx.run_later(wait, |actor, ctx| actor.hello(ctx));
                    }
                }
            }
        }));
    }

    /// Syncs one log with the peer: asks for its heads (unless given), fetches what we lack.
    /// A sync asked for while one runs runs once more after it.
    pub(super) fn sync_log(&mut self, log: LogId, heads: Vec<OrderKey>, ctx: &mut Context<Self>) {
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
        let store = links.stores.of(log.kind()).clone();
        let fut = async move { sync_log(&context, &store, peer, log, signing_pk, heads).await };
        ctx.spawn(fut.into_actor(self).map(move |result, actor, ctx| {
            let _span = actor.span.clone().entered();
            let again = actor.syncing.remove(&log).unwrap_or(false);
            match result {
                Ok(stored) => {
                    actor.not_proven.remove(&log);
                    tracing::debug!(?log, stored, "sync done");
                    actor.entries_received += stored as u64;
                }
                Err(SyncStop::Rejected(rejection)) => return actor.penalise(rejection, ctx),
                Err(SyncStop::Failed(reason)) => tracing::debug!(?log, reason, "sync stopped"),
                Err(SyncStop::NotProvenYet) => {
                    let tries = actor.not_proven.entry(log).or_insert(0);
                    if *tries < HELLO_RETRIES {
                        let wait = HELLO_RETRY * 2u32.pow(*tries);
                        *tries += 1;
                        tracing::debug!(
                            ?log,
                            "the peer has not taken our proof yet; syncing later"
                        );
                        ctx.run_later(wait, move |actor, ctx| actor.sync_log(log, Vec::new(), ctx));
                        return;
                    }
                    tracing::debug!(?log, "the peer never took our proof; sync stopped");
                }
            }
            if again {
                actor.sync_log(log, Vec::new(), ctx);
            }
        }));
    }
}

/// Fetches what `log` lacks from `peer`: entries in total order from the lowest Lamport clock
/// among the peer's unknown heads, stepping back while an entry's parent is still unknown.
/// Pages are pipelined: while the store decodes one page and commits the one before, the next
/// is fetched and verified. Returns how many entries were stored.
async fn sync_log(
    context: &PeerContext,
    store: &Recipient<AppendRemote>,
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
    let local_heads = context
        .storage
        .heads(&log)
        .await
        .map_err(|e| SyncStop::Failed(e.to_string()))?;
    let mut from = first_lamport_to_fetch(lowest, &local_heads);
    let mut step = 1u64;
    let mut steps = 0u32;
    let mut stored = 0usize;
    loop {
        let (pass_stored, missing) = sync_pass(context, store, peer, log, signing_pk, from).await?;
        stored += pass_stored;
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

/// Where a sync starts: at the peer's lowest unknown head, or just above our own highest head
/// when that is lower (every entry above it is unknown here); at 0 when our log is empty. A
/// lower entry still missing (a concurrent branch) is found by stepping back from there; a
/// fresh member or a long-offline one thus fetches its gap in one pass instead of stepping
/// back from the peer's heads over the whole gap.
fn first_lamport_to_fetch(lowest_unknown_head: u64, local_heads: &[OrderKey]) -> u64 {
    let above_ours = local_heads
        .iter()
        .map(|h| h.lamport.saturating_add(1))
        .max()
        .unwrap_or(0);
    lowest_unknown_head.min(above_ours)
}

/// One pass of a sync from `from`: pages fetched, verified and handed to the store in order,
/// up to [`SYNC_PAGES_IN_STORE`] in flight. Returns the entries stored and whether the store
/// met a parent it does not have (the caller steps back).
async fn sync_pass(
    context: &PeerContext,
    store: &Recipient<AppendRemote>,
    peer: PeerId,
    log: LogId,
    signing_pk: VerifyingKey,
    from: u64,
) -> Result<(usize, bool), SyncStop> {
    let mut in_store = VecDeque::new();
    // Where the next page starts: `None` before the first page of this pass.
    let mut next: Option<Option<OrderKey>> = None;
    let mut missing = false;
    let mut stored = 0usize;
    let mut limit = FIRST_PAGE_ENTRIES.min(MAX_FETCH_ENTRIES);
    loop {
        let fetch_more = match next {
            None => true,
            Some(after) => after.is_some() && in_store.len() < SYNC_PAGES_IN_STORE && !missing,
        };
        if fetch_more {
            let after = next.flatten();
            let (entries, more) =
                fetch_verified(context, peer, log, signing_pk, from, after, limit).await?;
            limit = limit.saturating_mul(2).min(MAX_FETCH_ENTRIES);
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
            return Ok((stored, missing));
        };
        let outcome = answer
            .await
            .map_err(|_| SyncStop::Failed("group store is gone".into()))?
            .map_err(SyncStop::from)?;
        stored += outcome.stored;
        context.appended(log, &outcome, peer);
        if let Some(violation) = outcome.violation {
            return Err(SyncStop::Rejected(Rejection::Lamport(violation)));
        }
        // Pages already handed over stop at the same parent: let them answer, then step back.
        missing |= outcome.missing_parent.is_some();
    }
}

/// One page of a fetch of at most `limit` entries, checked: within the limit, every entry
/// verified ([`verify_received`]) and in total order from `from` on.
async fn fetch_verified(
    context: &PeerContext,
    peer: PeerId,
    log: LogId,
    signing_pk: VerifyingKey,
    from: u64,
    after: Option<OrderKey>,
    limit: u32,
) -> Result<(Vec<Entry>, bool), SyncStop> {
    let request = SyncRequest::Fetch(Fetch {
        log,
        from_lamport: from,
        after,
        limit,
    });
    let (raw, more) = match context.ask(peer, request).await? {
        SyncResponse::Fetch { entries, more } => (entries, more),
        SyncResponse::Error { code, .. } if code == ERROR_NOT_PROVEN => {
            return Err(SyncStop::NotProvenYet)
        }
        other => return Err(SyncStop::Failed(format!("fetch refused: {other:?}"))),
    };
    let count = raw.len();
    if count > limit as usize {
        return Err(SyncStop::Rejected(Rejection::Malformed(
            "fetch reply over the entry limit".into(),
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
    let request = SyncRequest::Heads { logs: vec![log] };
    match context.ask(peer, request).await? {
        SyncResponse::Heads(logs) => Ok(logs
            .into_iter()
            .filter(|(l, _)| *l == log)
            .flat_map(|(_, heads)| heads)
            .collect()),
        SyncResponse::Error { code, .. } if code == ERROR_NOT_PROVEN => Err(SyncStop::NotProvenYet),
        other => Err(SyncStop::Failed(format!("heads refused: {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryId;

    fn head(lamport: u64) -> OrderKey {
        OrderKey {
            lamport,
            id: EntryId([lamport as u8; 32]),
        }
    }

    #[test]
    fn an_empty_log_fetches_from_the_start() {
        assert_eq!(first_lamport_to_fetch(100_000, &[]), 0);
    }

    #[test]
    fn a_log_behind_fetches_from_just_above_its_highest_head() {
        assert_eq!(first_lamport_to_fetch(100_000, &[head(7), head(12)]), 13);
    }

    #[test]
    fn an_unknown_head_below_ours_is_where_the_sync_starts() {
        assert_eq!(first_lamport_to_fetch(5, &[head(12)]), 5);
        assert_eq!(first_lamport_to_fetch(13, &[head(12)]), 13);
    }
}
