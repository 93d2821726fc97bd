//! Which entries of a received batch may be stored: the check every replica (a member's group
//! store, a mirror's blind store) runs between verifying entries and committing them. It needs
//! the log's stored ids and Lamport clocks, never the group's secrets.

use std::collections::{HashMap, HashSet};

use crate::{
    error::Error,
    log::{Entry, EntryId, LogId, OrderKey},
    replication::ports::RemoteOutcome,
    storage::Storage,
};

/// The entries that may be stored, in order: up to the first with an unknown parent or a
/// wrong Lamport clock; entries already stored are left out. `pending` are entries of a commit
/// in flight (they count as stored). `heads` are the log's heads when no commit is in flight:
/// a batch that only builds on them (and on itself) needs no lookup, since an entry whose
/// parents are all still heads cannot be stored yet.
pub async fn admissible(
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
