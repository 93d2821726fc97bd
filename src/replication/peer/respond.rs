//! The peer's requests, answered: the hello and its proof (the responder's role of
//! [`HelloResponder`](super::super::hello::HelloResponder)), heads and fetches of the groups
//! it proved (served from storage off the actor), and its announcements (stored in order).

use actix::prelude::*;
use rand::{rngs::OsRng, seq::SliceRandom, RngCore};
use tokio::sync::oneshot;

use super::{announce::Announced, PeerActor};
use crate::{
    log::{EntryId, LogId, OrderKey},
    p2p::{Fetch, SyncRequest, SyncResponse, ERROR_MALFORMED, ERROR_NOT_PROVEN, ERROR_UNAVAILABLE},
    replication::{
        hello::{HelloError, Proof},
        MAX_FETCH_BYTES, MAX_FETCH_ENTRIES, MAX_HEADS_LOGS, MAX_TAGS,
    },
    storage::{Direction, OrderRange, Storage},
};

impl From<HelloError> for SyncResponse {
    fn from(error: HelloError) -> Self {
        let code = match error {
            HelloError::Malformed(_) => ERROR_MALFORMED,
            HelloError::NotProven(_) => ERROR_NOT_PROVEN,
            HelloError::Busy => ERROR_UNAVAILABLE,
        };
        SyncResponse::error(code, error.to_string())
    }
}

impl PeerActor {
    /// Answers one request of the peer (now, or from a task when it reads storage).
    pub(super) fn on_request(
        &mut self,
        request: SyncRequest,
        reply: oneshot::Sender<SyncResponse>,
        ctx: &mut Context<Self>,
    ) {
        let answer = match request {
            SyncRequest::Hello { nonce } => self.answer_hello(nonce),
            SyncRequest::Prove {
                requester_nonce,
                responder_nonce,
                tags,
            } => {
                let proof = Proof {
                    requester_nonce,
                    responder_nonce,
                    tags,
                };
                self.answer_proof(&proof, ctx)
            }
            SyncRequest::Heads { logs } => {
                if logs.len() > MAX_HEADS_LOGS {
                    SyncResponse::error(ERROR_MALFORMED, "too many logs")
                } else if logs.iter().any(|l| !self.proved(l.group_pk())) {
                    SyncResponse::error(ERROR_NOT_PROVEN, "link key not proven for every log")
                } else {
                    let storage = self.context.storage.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(serve_heads(storage.as_ref(), logs).await);
                    });
                    return;
                }
            }
            SyncRequest::Fetch(fetch) => {
                if !self.proved(fetch.log.group_pk()) {
                    SyncResponse::error(ERROR_NOT_PROVEN, "link key not proven")
                } else {
                    let storage = self.context.storage.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(serve_fetch(storage.as_ref(), fetch).await);
                    });
                    return;
                }
            }
            SyncRequest::Announce(announcement) => {
                if !self.proved(announcement.log.group_pk()) {
                    SyncResponse::error(ERROR_NOT_PROVEN, "link key not proven")
                } else {
                    return self.take_announcement(
                        Announced {
                            announcement,
                            reply: Some(reply),
                        },
                        ctx,
                    );
                }
            }
        };
        let _ = reply.send(answer);
    }

    /// Hello: a fresh nonce and one tag per group we hold, in random order.
    fn answer_hello(&mut self, requester_nonce: [u8; 32]) -> SyncResponse {
        let mut nonce = [0u8; 32];
        OsRng.fill_bytes(&mut nonce);
        let local = self.context.swarm.peer_id().to_bytes();
        let keys = self.directory.values().map(|g| &g.link_key);
        match self.responder.hello(requester_nonce, nonce, keys, &local) {
            Ok(mut reply) => {
                reply.tags.shuffle(&mut OsRng);
                SyncResponse::Hello {
                    nonce: reply.nonce,
                    tags: reply.tags,
                }
            }
            Err(e) => e.into(),
        }
    }

    /// Prove: the peer's tags for our last hello with it; the groups it proved are synced.
    fn answer_proof(&mut self, proof: &Proof, ctx: &mut Context<Self>) -> SyncResponse {
        let peer = self.peer.to_bytes();
        let groups = self.directory.iter().map(|(pk, g)| (pk, &g.link_key));
        match self.responder.prove(proof, groups, &peer, MAX_TAGS) {
            Ok(proven) => {
                let accepted = u32::try_from(proven.len()).unwrap_or(u32::MAX);
                let new = self.add_groups(&proven);
                self.sync_groups(new, ctx);
                SyncResponse::Prove { accepted }
            }
            Err(e) => e.into(),
        }
    }
}

/// The heads of each log.
async fn serve_heads(storage: &dyn Storage, logs: Vec<LogId>) -> SyncResponse {
    let mut out = Vec::with_capacity(logs.len());
    for log in logs {
        match storage.heads(&log).await {
            Ok(heads) => out.push((log, heads)),
            Err(e) => return SyncResponse::error(ERROR_UNAVAILABLE, e.to_string()),
        }
    }
    SyncResponse::Heads(out)
}

/// Entries in total order from `from_lamport` (after `after`), within the caps.
async fn serve_fetch(storage: &dyn Storage, fetch: Fetch) -> SyncResponse {
    let lower = match fetch.after {
        Some(after) => std::ops::Bound::Excluded(after),
        None => std::ops::Bound::Included(OrderKey {
            lamport: fetch.from_lamport,
            id: EntryId([0; 32]),
        }),
    };
    let limit = fetch.limit.clamp(1, MAX_FETCH_ENTRIES);
    let range = OrderRange {
        lower,
        upper: std::ops::Bound::Unbounded,
        direction: Direction::Forward,
        limit,
    };
    let stored = match storage.range(&fetch.log, &range).await {
        Ok(stored) => stored,
        Err(e) => return SyncResponse::error(ERROR_UNAVAILABLE, e.to_string()),
    };
    let mut more = stored.len() == limit as usize;
    let mut bytes = 0usize;
    let mut entries = Vec::with_capacity(stored.len());
    for entry in stored {
        bytes += entry.bytes.len();
        if bytes > MAX_FETCH_BYTES && !entries.is_empty() {
            more = true;
            break;
        }
        entries.push(entry.bytes);
    }
    SyncResponse::Fetch { entries, more }
}
