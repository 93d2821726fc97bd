//! Why an entry or a log operation was refused.

use super::id::{EntryId, LogId};

/// An entry that is malformed, badly signed, or does not fit the log.
///
/// Every variant means "drop this entry"; none is a local failure worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The encoded entry is longer than [`MAX_ENTRY_BYTES`](super::MAX_ENTRY_BYTES).
    #[error("log entry is {len} bytes, more than the {max} allowed")]
    EntryTooLarge {
        /// Length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is longer than [`MAX_PAYLOAD_BYTES`](super::MAX_PAYLOAD_BYTES).
    #[error("log entry payload is {len} bytes, more than the {max} allowed")]
    PayloadTooLarge {
        /// Length of the payload.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The entry names more than [`MAX_PARENTS`](super::MAX_PARENTS) parents.
    #[error("log entry names {count} parents, more than the {max} allowed")]
    TooManyParents {
        /// Number of parents named (counted up to one past the limit when decoding).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not the canonical encoding of an entry.
    #[error("malformed log entry: {0}")]
    Malformed(&'static str),
    /// The Lamport clock is not the maximum of the parents' clocks plus one (1 for a root).
    #[error("log entry has Lamport clock {found}, expected {expected}")]
    LamportMismatch {
        /// The clock the parents imply.
        expected: u64,
        /// The entry's clock.
        found: u64,
    },
    /// An entry with parents has a Lamport clock below 2, which no parent clock can explain.
    #[error("log entry with parents has Lamport clock {found}, expected at least 2")]
    LamportTooLow {
        /// The entry's clock.
        found: u64,
    },
    /// A parent's Lamport clock is `u64::MAX`, so no entry can follow it.
    #[error("Lamport clock overflow")]
    LamportOverflow,
    /// The signature does not verify with the log's signing key.
    #[error("log entry signature does not verify")]
    BadSignature,
    /// The entry belongs to another log.
    #[error("log entry belongs to {found:?}, not {expected:?}")]
    WrongLog {
        /// The log being written.
        expected: LogId,
        /// The log named by the entry.
        found: LogId,
    },
    /// A parent of the entry was rejected, so the entry can never join the log.
    #[error("log entry descends from rejected entry {parent}")]
    RejectedParent {
        /// The rejected ancestor.
        parent: EntryId,
    },
}
