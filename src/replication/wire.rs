//! The sync protocol's messages to and from our types, and the checks on received entries.

use crate::log::parallel::{in_parallel, off_async_threads};

use crate::{
    crypto::{open_announcement, LinkKey, VerifyingKey},
    log::{verify_batch, Entry, LogId},
    metrics::{Metrics, RejectionLabels},
    p2p::Announcement,
};

pub use crate::p2p::{ERROR_MALFORMED, ERROR_NOT_PROVEN, ERROR_UNAVAILABLE};

/// Why received entries were refused (each penalises the sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// An entry does not parse or is over a cap.
    Malformed(String),
    /// An entry belongs to another log than the one asked for.
    WrongLog,
    /// An entry's signature is not the group signing key's.
    BadSignature,
    /// An entry breaks the Lamport rule.
    Lamport(String),
    /// The sender cannot provide an entry's ancestry.
    MissingParent,
    /// An unparsable or oversized frame.
    Protocol(String),
}

impl Rejection {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::WrongLog => "wrong_log",
            Self::BadSignature => "bad_signature",
            Self::Lamport(_) => "lamport",
            Self::MissingParent => "missing_parent",
            Self::Protocol(_) => "protocol",
        }
    }

    /// Counts `entries` rejected entries for this reason (penalising counts one more).
    pub fn count(&self, metrics: &Metrics, entries: usize) {
        metrics
            .replication_rejected
            .get_or_create(&RejectionLabels {
                reason: self.label(),
            })
            .inc_by(entries as u64);
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed entry: {why}"),
            Self::WrongLog => f.write_str("entry of another log"),
            Self::BadSignature => f.write_str("entry not signed by the group signing key"),
            Self::Lamport(why) => write!(f, "Lamport rule broken: {why}"),
            Self::MissingParent => f.write_str("entry whose ancestry the sender cannot provide"),
            Self::Protocol(why) => write!(f, "protocol violation: {why}"),
        }
    }
}

/// Decodes entries received for `log` and checks each: canonical encoding within the caps
/// (the id is the hash of the bytes received), the log it names, and the group signing key's
/// signature (in batches, split across the cores for large batches). One bad entry refuses
/// the whole batch.
///
/// CPU-bound: [`verify_received`] runs it off the async threads, but for a few entries. Also the entry point
/// of the fuzz target `sync_frames`.
pub fn check_received(
    log: LogId,
    signing_pk: &VerifyingKey,
    raw: &[Vec<u8>],
) -> Result<Vec<Entry>, Rejection> {
    let parts = in_parallel(raw, |chunk| {
        let mut entries = Vec::with_capacity(chunk.len());
        for bytes in chunk {
            let entry = Entry::decode(bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
            if entry.log_id() != log {
                return Err(Rejection::WrongLog);
            }
            entries.push(entry);
        }
        if verify_batch(&entries, signing_pk).iter().any(|ok| !ok) {
            return Err(Rejection::BadSignature);
        }
        Ok(entries)
    });
    let mut entries = Vec::with_capacity(raw.len());
    for part in parts {
        entries.extend(part?);
    }
    Ok(entries)
}

/// [`check_received`] on a blocking thread (on the calling one for a few entries:
/// [`off_async_threads`]).
pub async fn verify_received(
    log: LogId,
    signing_pk: VerifyingKey,
    raw: Vec<Vec<u8>>,
) -> Result<Vec<Entry>, Rejection> {
    off_async_threads(raw.len(), move || check_received(log, &signing_pk, &raw))
        .await
        .map_err(|e| Rejection::Malformed(format!("verification task failed: {e}")))?
}

/// Opens a gossip announcement received on `topic` (the group's [`crate::crypto::gossip_topic`]) with the
/// group's link key and parses it; `None` when it does not open or does not parse.
///
/// Also the entry point of the fuzz target `gossip`.
pub fn open_gossip(link_key: &LinkKey, topic: &str, sealed: &[u8]) -> Option<Announcement> {
    let plain = open_announcement(link_key, topic, sealed).ok()?;
    Announcement::decode(&plain).ok()
}
