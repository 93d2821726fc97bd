//! Planning an append, before anything is written (pure): which entries are new and their
//! cursors, which parents are missing, which entries become heads and which stop being heads
//! (see the parent module's *Heads*).

use std::collections::{HashMap, HashSet};

use super::columns::MAX_CURSOR;
use crate::{
    log::EntryId,
    storage::{Appended, NewEntry, Result, StorageError},
};

/// Every id an append must look up, each once: those of the batch's entries that may be
/// stored, and the parents the batch does not hold, unless they are among `heads` (stored
/// entries the caller knows of). An entry whose clock is above `max_lamport`, the log's highest
/// stored clock (`None`: the log is empty), cannot be stored; a parent the batch holds is either
/// such an entry or one looked up as an entry. A page of a sync, or a live batch, built on the
/// log's heads thus looks up nothing, instead of every id twice.
pub(super) fn ids_to_look_up(
    entries: &[NewEntry],
    max_lamport: Option<u64>,
    heads: &HashSet<EntryId>,
) -> Vec<EntryId> {
    let may_be_stored = |e: &NewEntry| max_lamport.is_some_and(|max| e.lamport <= max);
    let in_batch: HashSet<EntryId> = entries.iter().map(|e| e.id).collect();
    let mut seen = HashSet::with_capacity(entries.len());
    let ids = entries.iter().filter(|e| may_be_stored(e)).map(|e| &e.id);
    let parents = entries
        .iter()
        .flat_map(|e| &e.parents)
        .filter(|id| !in_batch.contains(*id) && !heads.contains(*id));
    ids.chain(parents)
        .filter(|id| seen.insert(**id))
        .copied()
        .collect()
}

/// An entry an append stores, with the cursor it gets.
#[derive(Debug)]
pub(super) struct NewRow<'a> {
    pub(super) entry: &'a NewEntry,
    pub(super) cursor: u64,
}

/// What one append writes, decided before writing anything.
#[derive(Debug)]
pub(super) struct AppendPlan<'a> {
    /// The reply: one outcome per entry given, in order.
    pub(super) outcomes: Vec<Appended>,
    /// Entries to store, in batch order with consecutive cursors.
    pub(super) new: Vec<NewRow<'a>>,
    /// The log's last cursor once the append commits.
    pub(super) last_cursor: u64,
    /// New entries that become heads: those no other new entry names as parent. (No stored
    /// entry can name a new one: parents are always stored first.)
    pub(super) new_heads: Vec<&'a NewEntry>,
    /// Stored entries that new entries name as parents: no longer heads.
    pub(super) former_heads: Vec<EntryId>,
}

/// Decides what appending `entries` does, given the cursors of those of the batch's ids and
/// parent ids that are stored, other entries known to be stored (`heads`: their cursors are
/// not needed, parents only have to exist), and the log's last cursor.
pub(super) fn plan_append<'a>(
    entries: &'a [NewEntry],
    stored: &HashMap<EntryId, u64>,
    heads: &HashSet<EntryId>,
    last_cursor: u64,
) -> Result<AppendPlan<'a>> {
    let is_stored = |id: &EntryId| stored.contains_key(id) || heads.contains(id);
    let mut added: HashMap<EntryId, u64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut new = Vec::new();
    let mut cursor = last_cursor;
    for entry in entries {
        if let Some(&existing) = stored.get(&entry.id).or_else(|| added.get(&entry.id)) {
            outcomes.push(Appended::Existing { cursor: existing });
            continue;
        }
        let missing = entry
            .parents
            .iter()
            .find(|parent| !is_stored(parent) && !added.contains_key(*parent));
        if let Some(parent) = missing {
            return Err(StorageError::MissingParent {
                entry: entry.id,
                parent: *parent,
            });
        }
        cursor = cursor
            .checked_add(1)
            .filter(|c| *c <= MAX_CURSOR)
            .ok_or_else(|| StorageError::Unavailable("the log has run out of cursors".into()))?;
        added.insert(entry.id, cursor);
        outcomes.push(Appended::New { cursor });
        new.push(NewRow { entry, cursor });
    }
    let named: HashSet<EntryId> = new
        .iter()
        .flat_map(|row| row.entry.parents.iter().copied())
        .collect();
    let new_heads = new
        .iter()
        .map(|row| row.entry)
        .filter(|entry| !named.contains(&entry.id))
        .collect();
    let former_heads = named.into_iter().filter(|id| is_stored(id)).collect();
    Ok(AppendPlan {
        outcomes,
        new,
        last_cursor: cursor,
        new_heads,
        former_heads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::ENTRY_ID_LEN;

    fn id(n: u8) -> EntryId {
        EntryId([n; ENTRY_ID_LEN])
    }

    fn none() -> HashSet<EntryId> {
        HashSet::new()
    }

    fn entry(n: u8, parents: &[u8]) -> NewEntry {
        NewEntry {
            id: id(n),
            lamport: u64::from(n),
            parents: parents.iter().map(|p| id(*p)).collect(),
            bytes: vec![n],
        }
    }

    #[test]
    fn plan_gives_consecutive_cursors_and_reports_duplicates() {
        let batch = [entry(1, &[]), entry(2, &[1]), entry(1, &[]), entry(3, &[2])];
        let plan = plan_append(&batch, &HashMap::new(), &none(), 7).unwrap();
        assert_eq!(
            plan.outcomes,
            vec![
                Appended::New { cursor: 8 },
                Appended::New { cursor: 9 },
                Appended::Existing { cursor: 8 },
                Appended::New { cursor: 10 },
            ]
        );
        assert_eq!(plan.last_cursor, 10);
        assert_eq!(
            plan.new_heads.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![id(3)]
        );
        assert!(
            plan.former_heads.is_empty(),
            "parents inside the batch were never heads"
        );
    }

    #[test]
    fn plan_rejects_parents_missing_or_later_in_the_batch() {
        let stored = HashMap::from([(id(1), 1)]);
        let later = [entry(3, &[2]), entry(2, &[1])];
        assert!(matches!(
            plan_append(&later, &stored, &none(), 1),
            Err(StorageError::MissingParent { entry, parent }) if entry == id(3) && parent == id(2)
        ));
        let own = [entry(4, &[4])];
        assert!(matches!(
            plan_append(&own, &stored, &none(), 1),
            Err(StorageError::MissingParent { .. })
        ));
    }

    #[test]
    fn plan_retires_stored_parents_as_heads() {
        let stored = HashMap::from([(id(1), 1), (id(2), 2)]);
        let batch = [entry(2, &[1]), entry(3, &[1, 2]), entry(4, &[2])];
        let plan = plan_append(&batch, &stored, &none(), 2).unwrap();
        assert_eq!(plan.outcomes[0], Appended::Existing { cursor: 2 });
        let mut former = plan.former_heads.clone();
        former.sort();
        assert_eq!(former, vec![id(1), id(2)]);
        let heads: Vec<_> = plan.new_heads.iter().map(|e| e.id).collect();
        assert_eq!(heads, vec![id(3), id(4)]);
    }

    #[test]
    fn ids_to_look_up_lists_each_id_once() {
        let batch = [entry(1, &[9]), entry(2, &[1, 9]), entry(1, &[9])];
        assert_eq!(
            ids_to_look_up(&batch, Some(9), &none()),
            vec![id(1), id(2), id(9)]
        );
    }

    #[test]
    fn ids_above_the_highest_stored_clock_are_not_looked_up() {
        // Clocks 5..=7 on top of stored entry 4 (the log's highest clock is 4).
        let batch = [entry(5, &[4]), entry(6, &[5]), entry(7, &[6, 3])];
        assert_eq!(ids_to_look_up(&batch, Some(4), &none()), vec![id(4), id(3)]);
        // Entry 5 may be stored when the log's clock reached 5: it is looked up, its
        // children are not.
        assert_eq!(
            ids_to_look_up(&batch, Some(5), &none()),
            vec![id(5), id(4), id(3)]
        );
        // An empty log holds nothing: only the parents from outside the batch are named.
        assert_eq!(ids_to_look_up(&batch, None, &none()), vec![id(4), id(3)]);
    }

    #[test]
    fn plan_from_a_partial_lookup_matches_a_full_one() {
        // Stored: 1..=4 (4 is the head). The batch repeats 3 and 4 and adds 5 and 6.
        let stored_all = HashMap::from([(id(1), 1), (id(2), 2), (id(3), 3), (id(4), 4)]);
        let batch = [
            entry(3, &[2]),
            entry(4, &[3]),
            entry(5, &[4]),
            entry(6, &[5]),
        ];
        let looked_up: HashMap<EntryId, u64> = ids_to_look_up(&batch, Some(4), &none())
            .into_iter()
            .filter_map(|id| stored_all.get(&id).map(|c| (id, *c)))
            .collect();
        let partial = plan_append(&batch, &looked_up, &none(), 4).unwrap();
        let full = plan_append(&batch, &stored_all, &none(), 4).unwrap();
        assert_eq!(partial.outcomes, full.outcomes);
        assert_eq!(partial.former_heads, full.former_heads);
        let heads = |p: &AppendPlan<'_>| p.new_heads.iter().map(|e| e.id).collect::<Vec<_>>();
        assert_eq!(heads(&partial), heads(&full));
        assert_eq!(partial.outcomes[0], Appended::Existing { cursor: 3 });
        assert_eq!(partial.former_heads, vec![id(4)]);
    }

    #[test]
    fn parents_among_the_heads_are_not_looked_up_and_plan_as_stored() {
        // Stored: 1..=4, heads 4 and 2 (two branches). The batch merges them and goes on.
        let stored_all = HashMap::from([(id(1), 1), (id(2), 2), (id(3), 3), (id(4), 4)]);
        let heads = HashSet::from([id(2), id(4)]);
        let batch = [entry(5, &[4, 2]), entry(6, &[5, 3])];
        assert_eq!(ids_to_look_up(&batch, Some(4), &heads), vec![id(3)]);
        let looked_up: HashMap<EntryId, u64> = ids_to_look_up(&batch, Some(4), &heads)
            .into_iter()
            .filter_map(|id| stored_all.get(&id).map(|c| (id, *c)))
            .collect();
        let with_heads = plan_append(&batch, &looked_up, &heads, 4).unwrap();
        let full = plan_append(&batch, &stored_all, &none(), 4).unwrap();
        assert_eq!(with_heads.outcomes, full.outcomes);
        let sorted = |p: &AppendPlan<'_>| {
            let mut ids = p.former_heads.clone();
            ids.sort();
            ids
        };
        assert_eq!(sorted(&with_heads), sorted(&full));
        // Without the heads, their absence from the lookup is a missing parent.
        assert!(plan_append(&batch, &looked_up, &none(), 4).is_err());
    }
}
