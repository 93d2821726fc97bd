//! [`RendezvousStats`], the counters the server reports for metrics, and [`Counters`],
//! where its clones count.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Refusal;

/// Counters since the server was built (shared by its clones), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RendezvousStats {
    /// REGISTERs answered OK (new registrations and refreshes).
    pub registered: u64,
    /// Of those, refreshes that replaced the peer's registration in the namespace.
    pub refreshed: u64,
    /// UNREGISTERs that removed a registration.
    pub unregistered: u64,
    /// DISCOVERs answered OK.
    pub discovers: u64,
    /// Registrations returned by those discovers.
    pub discovered: u64,
    /// Requests without a known request type (no answer sent).
    pub malformed: u64,
    /// Registration transactions committed (or attempted): `registered / batches` is the
    /// mean batch size.
    pub batches: u64,
    refused: [u64; Refusal::ALL.len()],
}

impl RendezvousStats {
    /// Requests refused for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }
}

/// The live counters behind [`RendezvousStats`], shared by a server's clones.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) registered: AtomicU64,
    pub(super) refreshed: AtomicU64,
    pub(super) unregistered: AtomicU64,
    pub(super) discovers: AtomicU64,
    pub(super) discovered: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) refused: [AtomicU64; Refusal::ALL.len()],
}

impl Counters {
    /// Adds `n` to `counter`.
    pub(super) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counts now.
    pub(super) fn snapshot(&self) -> RendezvousStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RendezvousStats {
            registered: get(&self.registered),
            refreshed: get(&self.refreshed),
            unregistered: get(&self.unregistered),
            discovers: get(&self.discovers),
            discovered: get(&self.discovered),
            malformed: get(&self.malformed),
            batches: get(&self.batches),
            refused: std::array::from_fn(|i| get(&self.refused[i])),
        }
    }
}
