//! When to try each outgoing contact request again: a pure schedule (no clock of its own, no
//! I/O). Attempts back off from one second, doubling, up to [`MAX_BACKOFF`], so a target that
//! comes back online is reached within that cap (plus the time its rendezvous registration
//! takes to show up).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// The longest wait between two attempts at one request.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// The wait after `attempts` failed attempts: 1 s, 2 s, 4 s, ... up to [`MAX_BACKOFF`].
pub fn backoff(attempts: u32) -> Duration {
    let secs = 1u64.checked_shl(attempts.min(16)).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// One request's place in the schedule.
#[derive(Debug, Clone)]
struct Slot<T> {
    item: T,
    attempts: u32,
    due: Instant,
    in_flight: bool,
}

/// The outgoing requests by target, each due at some instant, at most one attempt in flight
/// per target.
#[derive(Debug)]
pub struct Schedule<T> {
    slots: HashMap<[u8; 32], Slot<T>>,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Self {
            slots: HashMap::new(),
        }
    }
}

impl<T: Clone> Schedule<T> {
    /// Adds (or replaces) the request to `target`, due at `due`, after `attempts` failures.
    pub fn insert(&mut self, target: [u8; 32], item: T, attempts: u32, due: Instant) {
        self.slots.insert(
            target,
            Slot {
                item,
                attempts,
                due,
                in_flight: false,
            },
        );
    }

    /// Forgets the request to `target` (delivered, removed or blocked).
    pub fn remove(&mut self, target: &[u8; 32]) {
        self.slots.remove(target);
    }

    /// Requests waiting (in flight or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Attempts in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.values().filter(|s| s.in_flight).count()
    }

    /// The requests due at `now` (at most `max`, earliest first), marked in flight.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Vec<([u8; 32], T)> {
        let mut due: Vec<(&[u8; 32], &Slot<T>)> = self
            .slots
            .iter()
            .filter(|(_, s)| !s.in_flight && s.due <= now)
            .collect();
        due.sort_by_key(|(_, s)| s.due);
        let picked: Vec<[u8; 32]> = due.into_iter().take(max).map(|(k, _)| *k).collect();
        picked
            .into_iter()
            .filter_map(|target| {
                let slot = self.slots.get_mut(&target)?;
                slot.in_flight = true;
                Some((target, slot.item.clone()))
            })
            .collect()
    }

    /// Records a failed attempt at `target`; returns the attempts so far and when the next
    /// one is due (none if the request was removed meanwhile).
    pub fn failed(&mut self, target: &[u8; 32], now: Instant) -> Option<(u32, Instant)> {
        let slot = self.slots.get_mut(target)?;
        slot.in_flight = false;
        slot.attempts = slot.attempts.saturating_add(1);
        slot.due = now + backoff(slot.attempts.saturating_sub(1));
        Some((slot.attempts, slot.due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(16));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_request_is_taken_once_until_it_fails() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.insert([1; 32], "a", 0, now);
        schedule.insert([2; 32], "b", 0, now + Duration::from_secs(5));
        assert_eq!(schedule.take_due(now, 8), vec![([1; 32], "a")]);
        assert!(
            schedule.take_due(now, 8).is_empty(),
            "in flight: not taken twice"
        );
        let (attempts, due) = schedule.failed(&[1; 32], now).unwrap();
        assert_eq!((attempts, due), (1, now + Duration::from_secs(1)));
        assert!(schedule.take_due(now, 8).is_empty());
        let later = now + Duration::from_secs(5);
        let mut both = schedule.take_due(later, 8);
        both.sort();
        assert_eq!(both, vec![([1; 32], "a"), ([2; 32], "b")]);
        schedule.remove(&[1; 32]);
        assert_eq!(schedule.failed(&[1; 32], later), None);
        assert_eq!(schedule.len(), 1);
    }

    #[test]
    fn max_bounds_a_round() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        for i in 0..5u8 {
            schedule.insert([i; 32], i, 3, now);
        }
        assert_eq!(schedule.take_due(now, 2).len(), 2);
        assert_eq!(schedule.in_flight(), 2);
        assert_eq!(schedule.take_due(now, 8).len(), 3);
    }
}
