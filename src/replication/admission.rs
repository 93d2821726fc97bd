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
/// in flight (they count as stored); `heads` are the log's heads in storage before that
/// commit (or empty when the caller does not track them). A batch that only builds on those
/// two (and on itself) needs no lookup: an entry whose parents are all heads or not stored yet
/// cannot be stored itself (parents are stored before their children). That is every page
/// of a sync after the first and nearly every live announcement.
pub async fn admissible(
    storage: &dyn Storage,
    log: &LogId,
    entries: Vec<Entry>,
    pending: &HashMap<EntryId, u64>,
    heads: &[OrderKey],
    outcome: &mut RemoteOutcome,
) -> Result<Vec<Entry>, Error> {
    let mut known: HashMap<EntryId, u64> = heads.iter().map(|h| (h.id, h.lamport)).collect();
    known.extend(pending.iter().map(|(id, lamport)| (*id, *lamport)));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        log::test_support::{build_dag, log_id},
        storage::{sqlite::SqliteStorage, NewEntry, Storage},
    };

    /// What `admissible` answers for `batch` on a log holding `stored`, with `pending` in a
    /// commit, given the log's heads (`with_heads`) or not.
    async fn admit(
        stored: &[Entry],
        pending: &[Entry],
        batch: &[Entry],
        with_heads: bool,
    ) -> (Vec<EntryId>, RemoteOutcome) {
        let storage = SqliteStorage::open_url("sqlite::memory:").await.unwrap();
        let log = log_id();
        let rows: Vec<NewEntry> = stored.iter().cloned().map(NewEntry::from).collect();
        storage.append(&log, &rows).await.unwrap();
        let heads = if with_heads {
            storage.heads(&log).await.unwrap()
        } else {
            Vec::new()
        };
        let pending: HashMap<EntryId, u64> =
            pending.iter().map(|e| (e.id(), e.lamport())).collect();
        let mut outcome = RemoteOutcome::default();
        let accepted = admissible(
            &storage,
            &log,
            batch.to_vec(),
            &pending,
            &heads,
            &mut outcome,
        )
        .await
        .unwrap();
        (accepted.iter().map(Entry::id).collect(), outcome)
    }

    /// Knowing the heads and the commit in flight (which spares the lookup when a batch
    /// builds on them) never changes the answer, for batches that do and do not build on
    /// them: duplicates, entries on older entries, a gap.
    #[tokio::test]
    async fn heads_and_pending_entries_give_the_answer_of_a_lookup() {
        // 0 <- 1 <- 2 <- 3 <- 4 <- 5 <- 6, with a branch 1 <- 7 and a merge 8 of 6 and 7.
        let dag = build_dag(&[
            vec![],
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
            vec![1],
            vec![6, 7],
        ]);
        let pick = |ids: &[usize]| ids.iter().map(|i| dag[*i].clone()).collect::<Vec<_>>();
        let cases: [(&[usize], &[usize], &[usize]); 8] = [
            // A sync page after the one in flight.
            (&[0, 1, 2], &[3, 4], &[5, 6]),
            // The same page arriving twice: already pending.
            (&[0, 1, 2], &[3, 4], &[3, 4, 5]),
            // On stored heads, nothing in flight.
            (&[0, 1, 2], &[], &[3, 4]),
            // Stored entries again, then new ones.
            (&[0, 1, 2, 3], &[], &[2, 3, 4]),
            // A branch from an entry that is no longer a head.
            (&[0, 1, 2, 3], &[4], &[7, 8]),
            (&[0, 1, 2, 3], &[4, 5], &[6, 7, 8]),
            // A gap: the parent is neither stored nor in flight.
            (&[0, 1], &[], &[3, 4]),
            // A root, which names no parent.
            (&[], &[], &[0, 1]),
        ];
        for (stored, pending, batch) in cases {
            let (stored, pending, batch) = (pick(stored), pick(pending), pick(batch));
            let looked_up = admit(&stored, &pending, &batch, false).await;
            let on_heads = admit(&stored, &pending, &batch, true).await;
            assert_eq!(on_heads, looked_up, "{stored:?} {pending:?} {batch:?}");
        }
        // And the answers are the right ones.
        let (accepted, outcome) =
            admit(&pick(&[0, 1, 2]), &pick(&[3, 4]), &pick(&[3, 4, 5]), true).await;
        assert_eq!(accepted, vec![dag[5].id()]);
        assert_eq!(outcome.existing, 2);
        let (accepted, outcome) = admit(&pick(&[0, 1]), &[], &pick(&[3, 4]), true).await;
        assert!(accepted.is_empty());
        assert_eq!(outcome.missing_parent, Some(dag[2].id()));
    }
}
