//! Helpers shared by the log module's tests.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::{Entry, EntryId, LogId, LogKind};

/// The signing key of the test logs.
pub(crate) fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The test log.
pub(crate) fn log_id() -> LogId {
    LogId::new([42; 32], LogKind::Messages)
}

/// Signs the entries of a DAG: `shape[i]` lists the parents of entry `i`, all below `i`. The
/// Lamport clocks follow the rule; each payload names its index, so ids differ.
pub(crate) fn build_dag(shape: &[Vec<usize>]) -> Vec<Entry> {
    let key = signing_key();
    let mut entries: Vec<Entry> = Vec::with_capacity(shape.len());
    for (index, parent_indices) in shape.iter().enumerate() {
        let parents: Vec<EntryId> = parent_indices.iter().map(|p| entries[*p].id()).collect();
        let lamport = parent_indices
            .iter()
            .map(|p| entries[*p].lamport())
            .max()
            .map_or(1, |max| max + 1);
        let payload = format!("entry {index}");
        entries.push(Entry::sign(&key, log_id(), parents, lamport, payload.as_bytes()).unwrap());
    }
    entries
}

/// DAG shapes of 1 to `max_len` entries, each with up to 3 parents among the earlier ones
/// (entries without parents are extra roots).
pub(crate) fn dag_shape(max_len: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1..=max_len).prop_flat_map(|len| {
        (0..len)
            .map(|index| {
                proptest::collection::btree_set(0..index.max(1), 0..=index.min(3))
                    .prop_map(move |set| set.into_iter().filter(|p| *p < index).collect())
                    .boxed()
            })
            .collect::<Vec<_>>()
    })
}
