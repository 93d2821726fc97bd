//! An in-memory log: the Merkle DAG of one log's entries and its deterministic total order.
//!
//! [`MemLog`] is the reference model of a stored log (the storage backends must behave the same
//! way), the buffer replication uses while parents are still missing, and a test double.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
        }
    }

    /// The log this is.
    pub fn log_id(&self) -> LogId {
        self.log
    }

    /// Adds a structurally valid entry whose signature was checked.
    ///
    /// Idempotent. An entry whose parents are all in the log must satisfy the Lamport rule or
    /// is rejected with an error; so is an entry of another log. Rejecting an entry also drops
    /// the pending entries that descend from it, since they can never join the log.
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
                rejected.push((child, LogError::RejectedParent { parent }));
                stack.push(child);
            }
        }
    }
}
