//! [`KnownLogs`]: what this storage knows of the logs it last committed to, so that the next
//! commit on one of them can skip reading it under its lock (see [`super::commit`]).
//!
//! The knowledge is only ever a starting point: a commit made from it writes nothing unless
//! the log's row still holds the counters it was planned on (another writer on the same
//! database, or a concurrent commit of this one, moved them on), and then takes the lock as
//! usual. So a stale or missing state costs one round trip, never a wrong write.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use super::entries::LogState;
use crate::{log::LogId, storage::CommitPaths};

/// Most logs remembered; past it, an arbitrary one is forgotten (a few hundred bytes each).
const MAX_KNOWN_LOGS: usize = 4096;

/// How a commit ran, for [`CommitPaths`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Path {
    /// From the known state, without the lock (one statement on PostgreSQL).
    OneStatement,
    /// Tried from the known state, which was out of date; then under the lock.
    Missed,
    /// Under the log's lock.
    Locked,
}

/// The state of each log as this storage's last commit on it left it, and how commits ran.
#[derive(Debug, Default)]
pub(super) struct KnownLogs {
    logs: Mutex<HashMap<LogId, LogState>>,
    one_statement: AtomicU64,
    missed: AtomicU64,
    locked: AtomicU64,
}

impl KnownLogs {
    /// The state of `log` after this storage's last commit on it, if known.
    pub(super) fn get(&self, log: &LogId) -> Option<LogState> {
        self.lock().get(log).cloned()
    }

    /// Remembers the state a commit on `log` left, unless a later one is known already (two
    /// commits on one log may finish in either order).
    pub(super) fn remember(&self, log: &LogId, state: LogState) {
        let mut logs = self.lock();
        if let Some(known) = logs.get(log) {
            let later = known.log_key == state.log_key
                && known.last_cursor >= state.last_cursor
                && known.last_event_cursor >= state.last_event_cursor;
            if later {
                return;
            }
        } else if logs.len() >= MAX_KNOWN_LOGS {
            if let Some(any) = logs.keys().next().copied() {
                logs.remove(&any);
            }
        }
        logs.insert(*log, state);
    }

    /// Forgets `log` (a commit on it failed or found its state out of date).
    pub(super) fn forget(&self, log: &LogId) {
        self.lock().remove(log);
    }

    /// Counts one commit that ran by `path`.
    pub(super) fn count(&self, path: Path) {
        let counter = match path {
            Path::OneStatement => &self.one_statement,
            Path::Missed => &self.missed,
            Path::Locked => &self.locked,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The commits counted so far.
    pub(super) fn paths(&self) -> CommitPaths {
        CommitPaths {
            one_statement: self.one_statement.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            locked: self.locked.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LogId, LogState>> {
        // The map is a cache: one a panicking thread left half-updated is still usable.
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::log::LogKind;

    fn state(log_key: i64, last_cursor: u64, last_event_cursor: u64) -> LogState {
        LogState {
            log_key,
            last_cursor,
            last_event_cursor,
            max_lamport: Some(last_cursor),
            heads: HashSet::new(),
        }
    }

    #[test]
    fn the_later_of_two_commits_is_kept_whatever_order_they_finish_in() {
        let known = KnownLogs::default();
        let log = LogId::new([1; 32], LogKind::Messages);
        assert_eq!(known.get(&log), None);
        known.remember(&log, state(1, 5, 5));
        known.remember(&log, state(1, 4, 4));
        assert_eq!(known.get(&log), Some(state(1, 5, 5)));
        known.remember(&log, state(1, 5, 6));
        assert_eq!(known.get(&log), Some(state(1, 5, 6)));
        // The log was deleted and made again: a new key wins whatever its counters.
        known.remember(&log, state(2, 1, 0));
        assert_eq!(known.get(&log), Some(state(2, 1, 0)));
        known.forget(&log);
        assert_eq!(known.get(&log), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let known = KnownLogs::default();
        for n in 0..(MAX_KNOWN_LOGS + 10) {
            let mut group = [0; 32];
            group[..8].copy_from_slice(&(n as u64).to_be_bytes());
            known.remember(&LogId::new(group, LogKind::Metadata), state(1, 1, 1));
        }
        assert_eq!(known.lock().len(), MAX_KNOWN_LOGS);
    }
}
