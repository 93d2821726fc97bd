//! Append-only logs: entries, ids, the Merkle DAG and its deterministic total order (pure, no I/O).
//!
//! - [`LogId`], [`EntryId`], [`OrderKey`]: which log, which entry, and the key of the total order.
//! - [`Entry`]: the canonical wire encoding (`docs/log-format.md`), signing and decoding.
//! - [`verify_batch`], [`check_lamport`]: the signature and Lamport checks.
//! - [`MemLog`]: one log's DAG in memory, its heads and total order.
//! - [`parallel`]: CPU-bound work on large batches split across the cores (one `rayon` pool).
//! - The limits every replica enforces: [`MAX_PARENTS`], [`MAX_PAYLOAD_BYTES`],
//!   [`MAX_ENTRY_BYTES`].

mod dag;
mod entry;
mod error;
mod id;
mod limits;
pub mod parallel;
#[cfg(test)]
pub(crate) mod test_support;
mod verify;

pub use dag::{InsertOutcome, MemLog, NextAppend};
pub use entry::{Entry, ENTRY_SIGNATURE_LABEL};
pub use error::LogError;
pub use id::{EntryId, LogId, LogKind, OrderKey, ENTRY_ID_LEN, PUBLIC_KEY_LEN};
pub use limits::{MAX_ENTRY_BYTES, MAX_PARENTS, MAX_PAYLOAD_BYTES, SIGNATURE_LEN};
pub use verify::{check_lamport, verify_batch, VERIFY_BATCH_SIZE};
