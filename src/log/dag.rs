//! An in-memory log: the Merkle DAG of one log's entries and its deterministic total order.
//!
//! [`MemLog`] is the reference model of a stored log (the storage backends must behave the same
//! way), the buffer replication uses while parents are still missing, and a test double.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::entry::Entry;
use super::error::LogError;
use super::id::{EntryId, LogId, OrderKey};
use super::limits::MAX_PARENTS;
use super::verify::check_lamport;

/// What [`MemLog::insert`] did with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The entry joined the log, and so did every pending entry it completed.
    Inserted {
        /// Ids that joined the log in this call, parents before children: the inserted entry
        /// first, then the pending entries it completed.
        added: Vec<EntryId>,
        /// Pending entries this call completed that broke the Lamport rule, and their pending
        /// descendants ([`LogError::RejectedParent`]); all dropped.
        rejected: Vec<(EntryId, LogError)>,
    },
    /// The entry was already in the log; nothing changed.
    Duplicate,
    /// Some parents are missing: the entry waits for them ([`MemLog::missing`]) and joins the
    /// log in the insert that completes it.
    Pending,
}

/// The parents and Lamport clock of the next local append, from [`MemLog::next_append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextAppend {
    /// The heads to name as parents (at most [`MAX_PARENTS`]), ascending.
    pub parents: Vec<EntryId>,
    /// The clock the new entry must carry.
    pub lamport: u64,
}

/// One log in memory: its entries in total order, its heads, and entries waiting for parents.
///
/// Inserting the same entries in any order, any number of times, gives the same log.
#[derive(Debug)]
pub struct MemLog {
    log: LogId,
    /// Every entry of the log, in total order.
    entries: BTreeMap<OrderKey, Entry>,
    /// The Lamport clock of every entry of the log, to find it by id.
    lamports: HashMap<EntryId, u64>,
    /// Entries no other entry names as parent.
    heads: BTreeSet<OrderKey>,
    /// Entries with parents not yet in the log.
    pending: HashMap<EntryId, PendingEntry>,
    /// For each missing parent, the pending entries that name it.
    waiting: HashMap<EntryId, Vec<EntryId>>,
    /// Entries refused for breaking the Lamport rule or descending from such an entry: their
    /// descendants are refused on arrival instead of waiting forever.
    rejected: HashSet<EntryId>,
}

#[derive(Debug)]
struct PendingEntry {
    entry: Entry,
    /// How many of its parents are not in the log yet.
    missing: usize,
}

impl MemLog {
    /// An empty log of `log`.
    pub fn new(log: LogId) -> Self {
        Self {
            log,
            entries: BTreeMap::new(),
            lamports: HashMap::new(),
            heads: BTreeSet::new(),
            pending: HashMap::new(),
            waiting: HashMap::new(),
            rejected: HashSet::new(),
        }
    }

    /// The log this is.
    pub fn log_id(&self) -> LogId {
        self.log
    }

    /// Adds a structurally valid entry whose signature was checked.
    ///
    /// Idempotent. An entry whose parents are all in the log must satisfy the Lamport rule or
    /// is rejected with an error; so is an entry of another log, and one that descends from a
    /// rejected entry. Rejecting an entry also drops the pending entries that descend from it,
    /// since they can never join the log (listed in [`InsertOutcome::Inserted`] when the
    /// rejected entry was itself pending, not listed when this insert fails). The log remembers
    /// the ids it rejected and refuses their descendants on arrival.
    pub fn insert(&mut self, entry: Entry) -> Result<InsertOutcome, LogError> {
        if entry.log_id() != self.log {
            return Err(LogError::WrongLog {
                expected: self.log,
                found: entry.log_id(),
            });
        }
        let id = entry.id();
        if self.lamports.contains_key(&id) {
            return Ok(InsertOutcome::Duplicate);
        }
        if self.pending.contains_key(&id) {
            return Ok(InsertOutcome::Pending);
        }
        if let Some(parent) = entry.parents().iter().find(|p| self.rejected.contains(p)) {
            let parent = *parent;
            self.rejected.insert(id);
            return Err(LogError::RejectedParent { parent });
        }

        let missing = entry
            .parents()
            .iter()
            .filter(|parent| !self.lamports.contains_key(parent))
            .count();
        if missing > 0 {
            for parent in entry.parents() {
                if !self.lamports.contains_key(parent) {
                    self.waiting.entry(*parent).or_default().push(id);
                }
            }
            self.pending.insert(id, PendingEntry { entry, missing });
            return Ok(InsertOutcome::Pending);
        }

        let mut rejected = Vec::new();
        if let Err(error) = self.attach(entry) {
            self.rejected.insert(id);
            self.drop_descendants(id, &mut rejected);
            return Err(error);
        }

        // Release the pending entries this one completes, and the ones those complete.
        let mut added = vec![id];
        let mut next = 0;
        while let Some(&parent) = added.get(next) {
            next += 1;
            for child in self.waiting.remove(&parent).unwrap_or_default() {
                let Some(pending) = self.pending.get_mut(&child) else {
                    continue;
                };
                pending.missing = pending.missing.saturating_sub(1);
                if pending.missing > 0 {
                    continue;
                }
                let Some(pending) = self.pending.remove(&child) else {
                    continue;
                };
                match self.attach(pending.entry) {
                    Ok(()) => added.push(child),
                    Err(error) => {
                        self.rejected.insert(child);
                        rejected.push((child, error));
                        self.drop_descendants(child, &mut rejected);
                    }
                }
            }
        }
        Ok(InsertOutcome::Inserted { added, rejected })
    }

    /// Number of entries in the log (pending entries excluded).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the log has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the entry is in the log (pending entries excluded).
    pub fn contains(&self, id: &EntryId) -> bool {
        self.lamports.contains_key(id)
    }

    /// The entry with this id, if it is in the log.
    pub fn get(&self, id: &EntryId) -> Option<&Entry> {
        let lamport = *self.lamports.get(id)?;
        self.entries.get(&OrderKey { lamport, id: *id })
    }

    /// The entries of the log in total order (Lamport clock, then id).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> + '_ {
        self.entries.values()
    }

    /// The ids of the log in total order (Lamport clock, then id).
    pub fn total_order(&self) -> Vec<EntryId> {
        self.entries.keys().map(|key| key.id).collect()
    }

    /// The entries no other entry names as parent, ascending by id.
    pub fn heads(&self) -> Vec<EntryId> {
        let mut heads: Vec<EntryId> = self.heads.iter().map(|key| key.id).collect();
        heads.sort_unstable();
        heads
    }

    /// The parents and Lamport clock of the next local append: every head, or the
    /// [`MAX_PARENTS`] highest in total order when there are more (the others stay heads and
    /// are named by a later append).
    pub fn next_append(&self) -> Result<NextAppend, LogError> {
        let lamport = match self.heads.last() {
            None => 1,
            Some(highest) => highest
                .lamport
                .checked_add(1)
                .ok_or(LogError::LamportOverflow)?,
        };
        let mut parents: Vec<EntryId> = self
            .heads
            .iter()
            .rev()
            .take(MAX_PARENTS)
            .map(|key| key.id)
            .collect();
        parents.sort_unstable();
        Ok(NextAppend { parents, lamport })
    }

    /// Number of entries waiting for parents.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Whether the entry is waiting for parents.
    pub fn is_pending(&self, id: &EntryId) -> bool {
        self.pending.contains_key(id)
    }

    /// Parents that pending entries wait for and that are not pending themselves: what to
    /// fetch next. Ascending.
    pub fn missing(&self) -> Vec<EntryId> {
        let mut missing: Vec<EntryId> = self
            .waiting
            .keys()
            .filter(|id| !self.pending.contains_key(id))
            .copied()
            .collect();
        missing.sort_unstable();
        missing
    }

    /// Adds an entry whose parents are all in the log, if it satisfies the Lamport rule.
    fn attach(&mut self, entry: Entry) -> Result<(), LogError> {
        let mut parent_lamports = Vec::with_capacity(entry.parents().len());
        for parent in entry.parents() {
            if let Some(lamport) = self.lamports.get(parent) {
                parent_lamports.push(*lamport);
            }
        }
        check_lamport(&entry, &parent_lamports)?;
        for parent in entry.parents() {
            if let Some(lamport) = self.lamports.get(parent) {
                self.heads.remove(&OrderKey {
                    lamport: *lamport,
                    id: *parent,
                });
            }
        }
        let key = entry.order_key();
        self.lamports.insert(key.id, key.lamport);
        self.heads.insert(key);
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Drops every pending entry that descends from `rejected_id`.
    fn drop_descendants(&mut self, rejected_id: EntryId, rejected: &mut Vec<(EntryId, LogError)>) {
        let mut stack = vec![rejected_id];
        while let Some(parent) = stack.pop() {
            for child in self.waiting.remove(&parent).unwrap_or_default() {
                let Some(pending) = self.pending.remove(&child) else {
                    continue;
                };
                // Forget the child in the lists of its other missing parents.
                for other in pending.entry.parents() {
                    if let Some(children) = self.waiting.get_mut(other) {
                        children.retain(|waiting| *waiting != child);
                        if children.is_empty() {
                            self.waiting.remove(other);
                        }
                    }
                }
                self.rejected.insert(child);
                rejected.push((child, LogError::RejectedParent { parent }));
                stack.push(child);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::log::test_support::{build_dag, dag_shape, log_id, signing_key};
    use crate::log::LogKind;

    /// The total order and heads computed from scratch.
    fn reference(entries: &[Entry]) -> (Vec<EntryId>, Vec<EntryId>) {
        let mut keys: Vec<OrderKey> = entries.iter().map(Entry::order_key).collect();
        keys.sort();
        let named: HashSet<EntryId> = entries
            .iter()
            .flat_map(|e| e.parents().iter().copied())
            .collect();
        let mut heads: Vec<EntryId> = entries
            .iter()
            .map(Entry::id)
            .filter(|id| !named.contains(id))
            .collect();
        heads.sort();
        (keys.into_iter().map(|key| key.id).collect(), heads)
    }

    fn inserted(outcome: Result<InsertOutcome, LogError>) -> Vec<EntryId> {
        match outcome {
            Ok(InsertOutcome::Inserted { added, rejected }) => {
                assert!(rejected.is_empty(), "{rejected:?}");
                added
            }
            other => panic!("expected an insert, got {other:?}"),
        }
    }

    fn sign(parents: Vec<EntryId>, lamport: u64, payload: &str) -> Entry {
        Entry::sign(
            &signing_key(),
            log_id(),
            parents,
            lamport,
            payload.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn an_empty_log() {
        let log = MemLog::new(log_id());
        assert!(log.is_empty());
        assert_eq!(log.len(), 0);
        assert!(log.heads().is_empty());
        assert_eq!(
            log.next_append(),
            Ok(NextAppend {
                parents: vec![],
                lamport: 1
            })
        );
    }

    #[test]
    fn children_wait_for_their_parents() {
        let entries = build_dag(&[vec![], vec![0], vec![1]]);
        let ids: Vec<EntryId> = entries.iter().map(Entry::id).collect();
        let mut log = MemLog::new(log_id());

        assert_eq!(log.insert(entries[2].clone()), Ok(InsertOutcome::Pending));
        assert_eq!(log.missing(), vec![ids[1]]);
        assert_eq!(log.insert(entries[2].clone()), Ok(InsertOutcome::Pending));
        assert_eq!(log.insert(entries[1].clone()), Ok(InsertOutcome::Pending));
        assert_eq!(log.missing(), vec![ids[0]]);
        assert!(log.is_pending(&ids[1]) && !log.contains(&ids[1]));
        assert_eq!(log.pending_len(), 2);
        assert!(log.is_empty());

        assert_eq!(inserted(log.insert(entries[0].clone())), ids);
        assert_eq!(log.pending_len(), 0);
        assert!(log.missing().is_empty());
        assert_eq!(log.total_order(), ids);
        assert_eq!(log.heads(), vec![ids[2]]);
        assert_eq!(log.get(&ids[1]), Some(&entries[1]));
        assert_eq!(
            log.iter().map(Entry::id).rev().collect::<Vec<_>>(),
            ids.iter().rev().copied().collect::<Vec<_>>()
        );
        assert_eq!(log.insert(entries[1].clone()), Ok(InsertOutcome::Duplicate));
        assert_eq!(log.len(), 3);
        assert_eq!(
            log.next_append(),
            Ok(NextAppend {
                parents: vec![ids[2]],
                lamport: 4
            })
        );
    }

    #[test]
    fn entries_of_another_log_are_refused() {
        let mut log = MemLog::new(LogId::new([42; 32], LogKind::Metadata));
        let entry = sign(vec![], 1, "x");
        assert_eq!(
            log.insert(entry),
            Err(LogError::WrongLog {
                expected: log.log_id(),
                found: log_id()
            })
        );
        assert!(log.is_empty());
    }

    #[test]
    fn a_lamport_violation_is_rejected_with_its_descendants() {
        let root = sign(vec![], 1, "root");
        let bad = sign(vec![root.id()], 5, "bad");
        let child = sign(vec![bad.id()], 6, "child of bad");
        let other = sign(vec![], 1, "other");
        let grandchild = sign(vec![child.id(), other.id()], 7, "grandchild");

        // Arriving after its parent: refused at once.
        let mut log = MemLog::new(log_id());
        inserted(log.insert(root.clone()));
        assert_eq!(log.insert(child.clone()), Ok(InsertOutcome::Pending));
        assert_eq!(
            log.insert(bad.clone()),
            Err(LogError::LamportMismatch {
                expected: 2,
                found: 5
            })
        );
        assert_eq!(log.pending_len(), 0, "the child can never join");
        assert!(log.missing().is_empty());
        assert_eq!(log.total_order(), vec![root.id()]);
        assert_eq!(
            log.insert(child.clone()),
            Err(LogError::RejectedParent { parent: bad.id() }),
            "a later copy of the child is refused at once"
        );
        assert_eq!(
            log.insert(grandchild.clone()),
            Err(LogError::RejectedParent { parent: child.id() })
        );
        assert_eq!(
            log.insert(bad.clone()),
            Err(LogError::LamportMismatch {
                expected: 2,
                found: 5
            })
        );
        assert_eq!(log.pending_len(), 0);

        // Arriving before its parent: pending, then dropped with its descendants.
        let mut log = MemLog::new(log_id());
        for entry in [&grandchild, &child, &bad] {
            assert_eq!(log.insert(entry.clone()), Ok(InsertOutcome::Pending));
        }
        match log.insert(root.clone()) {
            Ok(InsertOutcome::Inserted { added, rejected }) => {
                assert_eq!(added, vec![root.id()]);
                assert_eq!(
                    rejected,
                    vec![
                        (
                            bad.id(),
                            LogError::LamportMismatch {
                                expected: 2,
                                found: 5
                            }
                        ),
                        (child.id(), LogError::RejectedParent { parent: bad.id() }),
                        (
                            grandchild.id(),
                            LogError::RejectedParent { parent: child.id() }
                        ),
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(log.pending_len(), 0);
        assert!(
            log.missing().is_empty(),
            "nothing waits for `other` any more"
        );
        inserted(log.insert(other.clone()));
        assert_eq!(log.heads(), {
            let mut heads = vec![root.id(), other.id()];
            heads.sort();
            heads
        });
    }

    #[test]
    fn next_append_names_the_highest_heads_when_there_are_too_many() {
        let mut log = MemLog::new(log_id());
        let roots: Vec<Entry> = (0..MAX_PARENTS + 6)
            .map(|i| sign(vec![], 1, &format!("root {i}")))
            .collect();
        for root in &roots {
            inserted(log.insert(root.clone()));
        }
        let mut ids: Vec<EntryId> = roots.iter().map(Entry::id).collect();
        ids.sort();
        assert_eq!(log.heads(), ids);

        let next = log.next_append().unwrap();
        assert_eq!(next.lamport, 2);
        assert_eq!(next.parents, ids[6..].to_vec());
        let merge = sign(next.parents, next.lamport, "merge");
        inserted(log.insert(merge.clone()));

        let next = log.next_append().unwrap();
        let mut expected = ids[..6].to_vec();
        expected.push(merge.id());
        expected.sort();
        assert_eq!(log.heads(), expected);
        assert_eq!(next.parents, expected);
        assert_eq!(next.lamport, 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_arrival_order_gives_the_same_log(
            (entries, order) in dag_shape(40).prop_flat_map(|shape| {
                let entries = build_dag(&shape);
                let len = entries.len();
                // Every index once, some twice, in a random order.
                let order = (
                    Just((0..len).collect::<Vec<usize>>()),
                    proptest::collection::vec(0..len, 0..len),
                )
                    .prop_map(|(mut all, duplicates)| {
                        all.extend(duplicates);
                        all
                    })
                    .prop_shuffle();
                (Just(entries), order)
            })
        ) {
            let (expected_order, expected_heads) = reference(&entries);
            let mut log = MemLog::new(log_id());
            let mut added = 0;
            for index in order {
                match log.insert(entries[index].clone()).unwrap() {
                    InsertOutcome::Inserted { added: ids, rejected } => {
                        prop_assert!(rejected.is_empty());
                        added += ids.len();
                    }
                    InsertOutcome::Duplicate | InsertOutcome::Pending => {}
                }
            }
            prop_assert_eq!(added, entries.len());
            prop_assert_eq!(log.pending_len(), 0);
            prop_assert!(log.missing().is_empty());
            prop_assert_eq!(log.len(), entries.len());
            prop_assert_eq!(log.total_order(), expected_order);
            prop_assert_eq!(log.heads(), expected_heads);

            // The order is causal: every parent comes before its children.
            let mut seen = HashSet::new();
            for entry in log.iter() {
                prop_assert!(entry.parents().iter().all(|p| seen.contains(p)));
                seen.insert(entry.id());
            }
        }

        #[test]
        fn lamport_violations_are_rejected_in_any_order(
            shape in dag_shape(20),
            parent_picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..3),
            skew in prop_oneof![-3i64..0, 1i64..4],
            position in any::<prop::sample::Index>(),
            child_position in any::<prop::sample::Index>(),
        ) {
            let entries = build_dag(&shape);
            let mut parents: Vec<EntryId> =
                parent_picks.iter().map(|pick| entries[pick.index(entries.len())].id()).collect();
            parents.sort();
            parents.dedup();
            let right = parents
                .iter()
                .filter_map(|p| entries.iter().find(|e| e.id() == *p))
                .map(Entry::lamport)
                .max()
                .unwrap_or(0)
                + 1;
            let wrong = (right as i64 + skew).max(2) as u64;
            prop_assume!(wrong != right);
            let bad = sign(parents, wrong, "bad");
            let child = sign(vec![bad.id()], wrong + 1, "child of bad");

            let mut arrivals = entries.clone();
            arrivals.insert(position.index(arrivals.len() + 1), bad.clone());
            arrivals.insert(child_position.index(arrivals.len() + 1), child.clone());

            let mut log = MemLog::new(log_id());
            let mut refused = HashSet::new();
            for entry in arrivals {
                let id = entry.id();
                match log.insert(entry) {
                    Err(LogError::LamportMismatch { found, .. }) => {
                        prop_assert_eq!(id, bad.id());
                        prop_assert_eq!(found, wrong);
                        refused.insert(id);
                    }
                    Err(LogError::RejectedParent { parent }) => {
                        prop_assert_eq!(id, child.id());
                        prop_assert_eq!(parent, bad.id());
                        refused.insert(id);
                    }
                    Err(error) => prop_assert!(false, "unexpected {error:?}"),
                    Ok(InsertOutcome::Inserted { rejected, .. }) => {
                        refused.extend(rejected.into_iter().map(|(id, _)| id));
                    }
                    Ok(_) => {}
                }
            }
            // The child is refused, or dropped silently with the bad entry when it was pending
            // as that entry was refused.
            prop_assert!(refused.contains(&bad.id()));
            prop_assert!(!log.contains(&bad.id()) && !log.contains(&child.id()));
            prop_assert_eq!(log.pending_len(), 0);
            let (expected_order, expected_heads) = reference(&entries);
            prop_assert_eq!(log.total_order(), expected_order);
            prop_assert_eq!(log.heads(), expected_heads);
        }
    }
}
