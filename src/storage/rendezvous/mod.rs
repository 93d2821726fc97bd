//! Rendezvous registrations: what the rendezvous server ([`crate::rendezvous`]) persists.
//!
//! Registrations live in the database rather than in memory, so they survive a restart and
//! every node sharing one PostgreSQL database answers the same discovers.
//!
//! This file holds what the server sees: the registration types and the
//! [`RendezvousStore`] trait. Behind it:
//!
//! - `plan`: what one batch of registrations does (replacements, caps), decided in memory
//!   before anything is written (pure).
//! - `sql`: the store's SQL, generic over the engine, and [`RendezvousStore`] for the
//!   `SqlStorage` of either engine (one implementation, through its health guard).
//! - `counters`: the state row and the per-peer counts every write keeps in step.
//! - `columns`: values bound to and read back from the tables.
//! - `dialect`: what differs between the engines (list parameters, key lookups, `ANALYZE`).
//!
//! # Tables
//!
//! - `rendezvous_registrations`: one row per (namespace, peer) with the signed peer record
//!   exactly as received and its expiry in unix seconds. A refresh deletes the old row and
//!   inserts a new one, so it gets a new id.
//! - `rendezvous_peers`: how many registrations each peer holds, so the per-peer cap never
//!   counts a peer's rows (a peer may hold thousands).
//! - `rendezvous_state`: one row holding the id sequence (`last_id`) and the row count. Every
//!   write transaction updates it first, which serialises writers (across every node on
//!   PostgreSQL), so ids are committed in increasing order and a reader never sees id `n + 1`
//!   before id `n`: a discover cookie holding the last id a client saw never skips a
//!   registration. Taking it first also gives every writer one lock order (no deadlocks).
//!
//! # Batches
//!
//! [`RendezvousStore::register_batch`] stores many registrations in one transaction (the
//! server coalesces concurrent registrations). It deletes the expired rows (updating their
//! peers' counts), looks up the batch's exact (peer, namespace) keys and its peers' counts
//! (index lookups, whatever the table's size), decides each outcome
//! (`plan_registrations`), then deletes the replaced rows, inserts the new ones and writes
//! the counts in multi-row statements. The caps count only unexpired rows, since expired ones
//! were deleted first.
//!
//! Discovers read one range of the `(namespace, id)` index (or of the primary key when they
//! ask for every namespace) from the cookie's id, skipping expired rows. On SQLite that index
//! covers the record, so a page reads contiguous pages; PostgreSQL needs fresh statistics to
//! walk it in order, so a batch that doubles the registration count runs `ANALYZE` on the
//! table (`RendezvousDialect::ANALYZE`).

mod columns;
mod counters;
mod dialect;
mod plan;
mod sql;

pub(crate) use dialect::RendezvousDialect;

use async_trait::async_trait;

use super::Result;

/// Most values bound in one `IN` list or multi-row `INSERT` (5 columns a row: well under
/// SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// A registration to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// The namespace: 1 to 255 bytes of UTF-8, without NUL (checked by the caller).
    pub namespace: String,
    /// The registering peer's id ([`libp2p::PeerId::to_bytes`]).
    pub peer_id: Vec<u8>,
    /// The signed peer record envelope exactly as received.
    pub record: Vec<u8>,
    /// Unix second from which the registration is expired.
    pub expires_at: u64,
}

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    /// Its place in the id sequence shared by every node on the database (never reused; a
    /// refresh gets a new one).
    pub id: u64,
    /// The namespace.
    pub namespace: String,
    /// The registering peer's id bytes.
    pub peer_id: Vec<u8>,
    /// The signed peer record envelope exactly as received.
    pub record: Vec<u8>,
    /// Unix second from which the registration is expired.
    pub expires_at: u64,
}

/// The caps [`RendezvousStore::register_batch`] enforces, counting unexpired registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationCaps {
    /// Most registrations one peer holds (over all namespaces).
    pub per_peer: u32,
    /// Most registrations stored in all.
    pub total: u64,
}

/// What [`RendezvousStore::register_batch`] did with one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Stored and committed.
    Registered {
        /// It replaced the peer's earlier registration in the namespace (stored, or earlier in
        /// the same batch); the counts are unchanged.
        replaced: bool,
    },
    /// Refused: the peer already holds [`RegistrationCaps::per_peer`] registrations.
    PeerLimit,
    /// Refused: [`RegistrationCaps::total`] registrations are stored.
    TotalLimit,
}

/// Persistence of the rendezvous server's registrations. Every write is committed on return.
#[async_trait]
pub trait RendezvousStore: Send + Sync {
    /// Stores registrations in one transaction, in the given order, and returns one outcome
    /// per registration. First deletes every registration expired at `now`. A registration
    /// replaces the same peer's registration in the same namespace (which keeps the counts);
    /// otherwise it is refused when the peer or the whole store is at its cap.
    async fn register_batch(
        &self,
        registrations: &[NewRegistration],
        caps: RegistrationCaps,
        now: u64,
    ) -> Result<Vec<RegisterOutcome>>;

    /// Deletes the peer's registration in the namespace; `false` when there was none.
    async fn unregister(&self, namespace: &str, peer_id: &[u8]) -> Result<bool>;

    /// Registrations with an id above `after_id`, in `namespace` (every namespace when
    /// `None`), not expired at `now`, in id order, at most `limit`.
    async fn discover(
        &self,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<StoredRegistration>>;

    /// Deletes every registration expired at `now`; returns how many.
    async fn purge_expired(&self, now: u64) -> Result<u64>;

    /// Number of registrations not expired at `now`.
    async fn count(&self, now: u64) -> Result<u64>;

    /// The namespaces holding registrations not expired at `now`, each with how many, the
    /// fullest first (then by name), at most `limit`.
    async fn namespaces(&self, now: u64, limit: u32) -> Result<Vec<(String, u64)>>;
}
