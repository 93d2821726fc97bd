//! [`BlindStore`]: the single writer of one log of one mirrored group on this node. It stores
//! entries replication verified (hash, structure, the group's signing key) once their parents
//! are here and the Lamport rule holds, within the token's byte quota; it never opens them.
//! The stores of one token take turns (a lock the mirror actor hands them) from the quota
//! check to the counters' update, so on one node the quota is never passed.

use std::sync::Arc;

use tokio::sync::Mutex;

use actix::prelude::*;

use crate::{
    error::Error,
    log::LogId,
    metrics::{LogKindLabels, Metrics},
    replication::{
        admission::admissible,
        ports::{AppendRemote, LogAppended, RemoteOutcome},
    },
    storage::{mirror::AppendedBatch, Appended, NewEntry, Storage},
};

/// The blind store actor of one log.
pub struct BlindStore {
    storage: Arc<dyn Storage>,
    log: LogId,
    token_id: String,
    appended: Recipient<LogAppended>,
    metrics: Metrics,
    /// Held from the quota check to the counters' update, by every store of the token on this
    /// node, so their batches cannot pass the byte quota together.
    quota: Arc<Mutex<()>>,
}

impl BlindStore {
    /// The store of `log`, mirrored under `token_id`; commits are told to `appended`.
    pub fn new(
        storage: Arc<dyn Storage>,
        log: LogId,
        token_id: String,
        appended: Recipient<LogAppended>,
        metrics: Metrics,
        quota: Arc<Mutex<()>>,
    ) -> Self {
        Self {
            storage,
            log,
            token_id,
            appended,
            metrics,
            quota,
        }
    }
}

impl Actor for BlindStore {
    type Context = Context<Self>;
}

impl Handler<AppendRemote> for BlindStore {
    type Result = AtomicResponse<Self, Result<RemoteOutcome, Error>>;

    fn handle(&mut self, msg: AppendRemote, _: &mut Self::Context) -> Self::Result {
        let storage = self.storage.clone();
        let log = self.log;
        let token_id = self.token_id.clone();
        let appended = self.appended.clone();
        let metrics = self.metrics.clone();
        let quota = self.quota.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let _quota = quota.lock().await;
                let result = append(storage.as_ref(), log, &token_id, msg, &appended).await;
                match &result {
                    Ok(outcome) => {
                        metrics
                            .entries_appended
                            .get_or_create(&LogKindLabels::of(log.kind()))
                            .inc_by(outcome.stored as u64);
                    }
                    Err(Error::ResourceExhausted(reason)) => {
                        metrics.mirror_quota_refusals.inc();
                        tracing::warn!(?log, reason, "mirrored entries refused");
                    }
                    Err(_) => {}
                }
                result
            }
            .into_actor(self),
        ))
    }
}

/// Stores what is admissible of `msg` under the token's byte quota, counts it for the group
/// and tells replication.
async fn append(
    storage: &dyn Storage,
    log: LogId,
    token_id: &str,
    msg: AppendRemote,
    appended: &Recipient<LogAppended>,
) -> Result<RemoteOutcome, Error> {
    let mut outcome = RemoteOutcome::default();
    let accepted = admissible(
        storage,
        &log,
        msg.entries,
        &Default::default(),
        &[],
        &mut outcome,
    )
    .await?;
    if accepted.is_empty() {
        return Ok(outcome);
    }
    let bytes: u64 = accepted.iter().map(|e| e.bytes().len() as u64).sum();
    let token =
        storage.mirror().token(token_id).await?.ok_or_else(|| {
            Error::FailedPrecondition(format!("mirror token {token_id} was revoked"))
        })?;
    if token.bytes.saturating_add(bytes) > token.max_bytes {
        return Err(Error::ResourceExhausted(format!(
            "mirror token {token_id} holds {} of its {} bytes: entries refused",
            token.bytes, token.max_bytes
        )));
    }
    let entries: Vec<NewEntry> = accepted.into_iter().map(NewEntry::from).collect();
    let results = storage.append(&log, &entries).await?;
    let mut new_entries = Vec::new();
    let mut new_bytes = 0u64;
    let mut last_cursor = 0;
    for (result, bytes) in results.iter().zip(entries.into_iter().map(|e| e.bytes)) {
        match result {
            Appended::New { cursor } => {
                new_bytes += bytes.len() as u64;
                last_cursor = last_cursor.max(*cursor);
                new_entries.push(bytes);
            }
            Appended::Existing { .. } => outcome.existing += 1,
        }
    }
    outcome.stored = new_entries.len();
    if new_entries.is_empty() {
        return Ok(outcome);
    }
    let batch = AppendedBatch {
        log,
        entries: new_entries.len() as u64,
        bytes: new_bytes,
        last_cursor,
        at: crate::clock::unix_now(),
    };
    storage.mirror().record_append(&batch).await?;
    let heads = storage.heads(&log).await?;
    appended.do_send(LogAppended {
        log,
        heads,
        entries: new_entries,
        source: msg.source,
    });
    Ok(outcome)
}
