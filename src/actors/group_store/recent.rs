//! The newest committed events of a log, kept in memory for live subscribers.

use std::sync::Arc;

use crate::storage::{NewEvent, StoredEvent};

/// Most events kept in [`RecentEvents`] at rest.
const RECENT_EVENTS: usize = 1024;
/// Most event body bytes kept in [`RecentEvents`] at rest.
const RECENT_BYTES: usize = 1 << 20;
/// Most events kept while commits come in with subscribers watching: two sync pages, so a
/// subscriber reading one page's events while the next commits still reads memory.
const BURST_EVENTS: usize = 8192;
/// Most event body bytes kept while commits come in with subscribers watching.
const BURST_BYTES: usize = 8 << 20;

/// How long after its last commit a ring above its resting bounds is settled.
pub(super) const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// How many events a push may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// The resting bounds (1,024 events, 1 MiB): nobody is watching.
    Rest,
    /// The burst bounds (8,192 events, 8 MiB): subscribers are watching; the store
    /// [settles](RecentEvents::settle) the ring back to the resting bounds once commits stop.
    Burst,
}

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

    /// Drops the oldest events until at most `events` events and `bytes` body bytes are kept.
    fn trim(&mut self, events: usize, bytes: usize) {
        while self.events.len() > events || self.bytes > bytes {
            match self.events.pop_front() {
                Some(dropped) => self.bytes -= dropped.body.len(),
                None => break,
            }
        }
    }
}

impl RecentEvents {
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the events of a commit (`cursors` in the same order), keeping at most what `keep`
    /// allows. Events whose cursor is not above `known` (the last cursor before the commit)
    /// existed already and are left out; a cursor that does not follow the newest kept one
    /// starts the ring afresh. Returns whether the ring holds more than its resting bounds.
    pub(super) fn push(
        &self,
        known: u64,
        events: Vec<NewEvent>,
        cursors: &[u64],
        keep: Keep,
    ) -> bool {
        let (max_events, max_bytes) = match keep {
            Keep::Rest => (RECENT_EVENTS, RECENT_BYTES),
            Keep::Burst => (BURST_EVENTS, BURST_BYTES),
        };
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
                entry: None,
            }));
            ring.trim(max_events, max_bytes);
        }
        ring.events.len() > RECENT_EVENTS || ring.bytes > RECENT_BYTES
    }

    /// Trims the ring back to its resting bounds (commits stopped).
    pub(super) fn settle(&self) {
        self.ring().trim(RECENT_EVENTS, RECENT_BYTES);
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
            stored: None,
        }
    }

    /// Pushes `count` events with cursors 1..=count, as one commit; returns what `push` says.
    fn push_numbered(recent: &RecentEvents, count: u64, keep: Keep) -> bool {
        let events = (1..=count).map(|c| event(c as u8, 1)).collect();
        let cursors: Vec<u64> = (1..=count).collect();
        recent.push(0, events, &cursors, keep)
    }

    fn cursors(events: &[Arc<StoredEvent>]) -> Vec<u64> {
        events.iter().map(|e| e.cursor).collect()
    }

    #[test]
    fn recent_events_serve_only_a_gapless_range() {
        let recent = RecentEvents::default();
        recent.push(
            4,
            vec![event(5, 1), event(6, 2), event(7, 1)],
            &[5, 6, 7],
            Keep::Rest,
        );
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
        recent.push(7, vec![event(1, 1), event(8, 1)], &[3, 8], Keep::Rest);
        assert_eq!(cursors(&recent.after(6, 8, &[], 10).unwrap().0), vec![7, 8]);
        recent.push(9, vec![event(11, 1)], &[11], Keep::Rest);
        assert!(recent.after(8, 11, &[], 10).is_none());
        assert_eq!(cursors(&recent.after(10, 11, &[], 10).unwrap().0), vec![11]);
    }

    #[test]
    fn recent_events_are_bounded() {
        let recent = RecentEvents::default();
        let count = RECENT_EVENTS as u64 + 10;
        assert!(!push_numbered(&recent, count, Keep::Rest));
        assert!(recent.after(0, count, &[], usize::MAX).is_none());
        let (events, _) = recent.after(10, count, &[], usize::MAX).unwrap();
        assert_eq!(events.len(), RECENT_EVENTS);
    }

    #[test]
    fn a_burst_keeps_more_until_the_ring_settles() {
        let recent = RecentEvents::default();
        let count = BURST_EVENTS as u64 + 10;
        assert!(push_numbered(&recent, count, Keep::Burst));
        assert!(recent.after(9, count, &[], usize::MAX).is_none());
        let (events, _) = recent.after(10, count, &[], usize::MAX).unwrap();
        assert_eq!(events.len(), BURST_EVENTS);

        recent.settle();
        assert!(recent.after(10, count, &[], usize::MAX).is_none());
        let first_kept = count - RECENT_EVENTS as u64;
        let (events, _) = recent.after(first_kept, count, &[], usize::MAX).unwrap();
        assert_eq!(events.len(), RECENT_EVENTS);

        // Bytes bound the burst too: 9 events of 1 MiB keep 8.
        let recent = RecentEvents::default();
        let big = |c: u64| NewEvent {
            body: vec![0; 1 << 20],
            ..event(c as u8, 1)
        };
        assert!(recent.push(
            0,
            (1..=9).map(big).collect(),
            &[1, 2, 3, 4, 5, 6, 7, 8, 9],
            Keep::Burst
        ));
        assert!(recent.after(0, 9, &[], usize::MAX).is_none());
        assert_eq!(
            recent.after(1, 9, &[], usize::MAX).map(|(e, _)| e.len()),
            Some(8)
        );
        recent.settle();
        assert_eq!(
            recent.after(8, 9, &[], usize::MAX).map(|(e, _)| e.len()),
            Some(1)
        );
        assert!(recent.after(7, 9, &[], usize::MAX).is_none());
    }
}
