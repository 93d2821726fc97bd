//! The newest committed events of a log, kept in memory for live subscribers.

use std::sync::Arc;

use crate::storage::{NewEvent, StoredEvent};

/// Most events kept in [`RecentEvents`].
const RECENT_EVENTS: usize = 1024;
/// Most event body bytes kept in [`RecentEvents`].
const RECENT_BYTES: usize = 1 << 20;

/// The newest committed events of a log, with consecutive cursors, bounded in count and
/// bytes. The store adds each commit's new events before it bumps the cursor watch, so a live
/// subscriber that keeps up takes them from here instead of reading them back from storage;
/// one that fell behind (or finds a gap) reads storage, as before.
#[derive(Default)]
pub struct RecentEvents {
    ring: std::sync::Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    events: std::collections::VecDeque<Arc<StoredEvent>>,
    bytes: usize,
}

impl Ring {
    fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
    }
}

impl RecentEvents {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the events of a commit (`cursors` in the same order). Events whose cursor is not
    /// above `known` (the last cursor before the commit) existed already and are left out; a
    /// cursor that does not follow the newest kept one starts the ring afresh.
    pub(super) fn push(&self, known: u64, events: Vec<NewEvent>, cursors: &[u64]) {
        let mut ring = self.ring();
        for (event, &cursor) in events.into_iter().zip(cursors) {
            if cursor <= known {
                continue;
            }
            let follows = ring
                .events
                .back()
                .is_none_or(|last| last.cursor.checked_add(1) == Some(cursor));
            if !follows {
                ring.clear();
            }
            ring.bytes += event.body.len();
            ring.events.push_back(Arc::new(StoredEvent {
                entry_id: event.entry_id,
                lamport: event.lamport,
                parents: event.parents,
                kind: event.kind,
                body: event.body,
                cursor,
            }));
            while ring.events.len() > RECENT_EVENTS || ring.bytes > RECENT_BYTES {
                match ring.events.pop_front() {
                    Some(dropped) => ring.bytes -= dropped.body.len(),
                    None => break,
                }
            }
        }
    }

    /// The kept events of `kinds` (all when empty) with cursors after `after`, at most
    /// `limit`, provided every event from `after` + 1 up to `upto` is kept; with the last
    /// cursor looked at. `None`: read storage instead.
    pub fn after(
        &self,
        after: u64,
        upto: u64,
        kinds: &[u8],
        limit: usize,
    ) -> Option<(Vec<Arc<StoredEvent>>, u64)> {
        let ring = self.ring();
        let first = ring.events.front()?.cursor;
        let last = ring.events.back()?.cursor;
        let next = after.checked_add(1)?;
        if next < first || upto > last || upto <= after {
            return None;
        }
        let skip = usize::try_from(next - first).ok()?;
        let mut out = Vec::new();
        let mut seen = after;
        for event in ring.events.iter().skip(skip) {
            if event.cursor > upto || out.len() >= limit {
                break;
            }
            seen = event.cursor;
            if kinds.is_empty() || kinds.contains(&event.kind) {
                out.push(event.clone());
            }
        }
        Some((out, seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryId;

    fn event(n: u8, kind: u8) -> NewEvent {
        NewEvent {
            entry_id: EntryId([n; 32]),
            lamport: u64::from(n),
            parents: Vec::new(),
            kind,
            body: vec![n; 10],
        }
    }

    fn cursors(events: &[Arc<StoredEvent>]) -> Vec<u64> {
        events.iter().map(|e| e.cursor).collect()
    }

    #[test]
    fn recent_events_serve_only_a_gapless_range() {
        let recent = RecentEvents::default();
        recent.push(4, vec![event(5, 1), event(6, 2), event(7, 1)], &[5, 6, 7]);
        let (events, seen) = recent.after(4, 7, &[], 10).unwrap();
        assert_eq!((cursors(&events), seen), (vec![5, 6, 7], 7));
        let (events, seen) = recent.after(4, 7, &[1], 10).unwrap();
        assert_eq!((cursors(&events), seen), (vec![5, 7], 7));
        let (events, seen) = recent.after(5, 7, &[], 1).unwrap();
        assert_eq!((cursors(&events), seen), (vec![6], 6));
        // Before the first kept event, or beyond the newest: storage.
        assert!(recent.after(3, 7, &[], 10).is_none());
        assert!(recent.after(5, 8, &[], 10).is_none());
        // An event that already existed (cursor not above the last known) is left out; a
        // gap starts afresh.
        recent.push(7, vec![event(1, 1), event(8, 1)], &[3, 8]);
        assert_eq!(cursors(&recent.after(6, 8, &[], 10).unwrap().0), vec![7, 8]);
        recent.push(9, vec![event(11, 1)], &[11]);
        assert!(recent.after(8, 11, &[], 10).is_none());
        assert_eq!(cursors(&recent.after(10, 11, &[], 10).unwrap().0), vec![11]);
    }

    #[test]
    fn recent_events_are_bounded() {
        let recent = RecentEvents::default();
        let count = RECENT_EVENTS as u64 + 10;
        let events = (1..=count).map(|c| event(c as u8, 1)).collect();
        let cursors: Vec<u64> = (1..=count).collect();
        recent.push(0, events, &cursors);
        assert!(recent.after(0, count, &[], usize::MAX).is_none());
        let (events, _) = recent.after(10, count, &[], usize::MAX).unwrap();
        assert_eq!(events.len(), RECENT_EVENTS);
    }
}
