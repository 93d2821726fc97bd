//! Persistence: one [`Storage`] trait, two sqlx backends.
//!
//! - [`sqlite`]: the embedded default, one file in the data dir, WAL mode with full sync.
//! - [`postgres`]: production, and how several nodes share one state.
//!
//! Each storage keeps its [`health`]: a background probe of the database, from which
//! readiness answers at once and by which calls fail at once while the database is down.
//!
//! Every method that writes returns only once the transaction is committed, so a reply that
//! says "stored" means durable. Migrations live in `migrations/sqlite` and
//! `migrations/postgres` and are applied by [`open`]. Queries are checked at run time, so
//! building never needs a database. Nothing here loads a whole log into memory: reads are
//! ranges with a limit.

pub mod account_lock;
mod collector;
pub mod health;
pub mod mirror;
pub mod postgres;
pub mod rendezvous;
pub mod sealed;
mod sql;
pub mod sqlite;
pub mod value_keys;

use std::{ops::Bound, path::Path, sync::Arc};

use async_trait::async_trait;

use crate::log::{EntryId, LogId, OrderKey};

pub use collector::CommitPathsCollector;
pub use health::{Health, StorageHealth};
pub use sealed::{Sealed, SealedValues};
pub use sql::SqlStorage;

/// What can go wrong in storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached or refused the operation (disk full, connection lost).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database does not answer (its health probe, or a call, says so): the error names
    /// the database and the cause.
    #[error("database unavailable ({database}): {cause}")]
    Down {
        /// Which database (`PostgreSQL at host:port/db`, `SQLite at path`).
        database: String,
        /// Why, as the connection or the query failed ("Connection refused (os error 111)").
        cause: String,
    },
    /// An appended entry names a parent that is neither stored nor earlier in the batch.
    #[error("entry {entry} names parent {parent} which is not stored")]
    MissingParent {
        /// The entry being appended.
        entry: EntryId,
        /// The parent that is missing.
        parent: EntryId,
    },
    /// An event names an entry that is neither stored nor in its commit (a caller's bug).
    #[error("an event names entry {0}, which is not stored")]
    EventWithoutEntry(EntryId),
    /// Stored data does not parse (a bug or tampering); never silently ignored.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A node value could not be sealed (a bug: sealing fails only on impossible sizes).
    #[error("sealing a node value failed: {0}")]
    Sealing(String),
    /// The database URL or data dir is not usable.
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        StorageError::Unavailable(err.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StorageError::Unavailable(format!("migration failed: {err}"))
    }
}

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An entry to append: already parsed and verified by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// SHA-256 of `bytes`.
    pub id: EntryId,
    /// The entry's Lamport clock.
    pub lamport: u64,
    /// The entry's parents (its writer's heads when it was written).
    pub parents: Vec<EntryId>,
    /// The entry exactly as received or written.
    pub bytes: Vec<u8>,
}

impl From<crate::log::Entry> for NewEntry {
    fn from(entry: crate::log::Entry) -> Self {
        Self {
            id: entry.id(),
            lamport: entry.lamport(),
            parents: entry.parents().to_vec(),
            bytes: entry.into_bytes(),
        }
    }
}

/// An entry as stored, with this replica's arrival cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// SHA-256 of `bytes`.
    pub id: EntryId,
    /// The entry's Lamport clock.
    pub lamport: u64,
    /// The entry's parents.
    pub parents: Vec<EntryId>,
    /// The entry exactly as received or written.
    pub bytes: Vec<u8>,
    /// This replica's arrival sequence in the log: 1 for the first stored entry, then +1.
    pub cursor: u64,
}

impl StoredEntry {
    /// The entry's position in the log's total order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            id: self.id,
        }
    }
}

/// A decoded event (a "view" of an entry) to store beside the log; subscriptions replay these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The entry the event decodes.
    pub entry_id: EntryId,
    /// The entry's Lamport clock (events sort in the log's total order).
    pub lamport: u64,
    /// The entry's parents (reported as `EventBase.parent_ids`).
    pub parents: Vec<EntryId>,
    /// Which subscription the event belongs to (a small closed set, see `group::EventKind`).
    pub kind: u8,
    /// The encoded event (`group::ViewEvent`), as subscribers see it.
    pub body: Vec<u8>,
    /// What storage keeps instead of `body` when it is smaller and the event can be rebuilt
    /// from its entry (a message's key instead of its plaintext); `None` keeps `body`.
    pub stored: Option<Vec<u8>>,
}

impl NewEvent {
    /// The bytes storage keeps: [`Self::stored`] if any, else [`Self::body`].
    pub fn stored_body(&self) -> &[u8] {
        self.stored.as_deref().unwrap_or(&self.body)
    }
}

/// A stored event with this replica's event cursor (its arrival order in the view).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The entry the event decodes.
    pub entry_id: EntryId,
    /// The entry's Lamport clock.
    pub lamport: u64,
    /// The entry's parents.
    pub parents: Vec<EntryId>,
    /// The event kind.
    pub kind: u8,
    /// The encoded event: [`NewEvent::stored_body`] when read from storage, [`NewEvent::body`]
    /// when kept in memory.
    pub body: Vec<u8>,
    /// Arrival sequence of the event in its log's view: 1, 2, 3... without gaps, committed in
    /// increasing order.
    pub cursor: u64,
    /// The bytes of the event's entry, when the read asked for them (`entries_of` of
    /// [`Storage::events_range`] and [`Storage::events_since_cursor`]); `None` otherwise.
    pub entry: Option<Vec<u8>>,
}

impl StoredEvent {
    /// The event's position in the log's total order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            id: self.entry_id,
        }
    }
}

/// Everything one transaction writes: entries of one log, the events decoded from them (or
/// from entries stored earlier), and node values (such as an advanced chain state).
#[derive(Debug, Clone, Copy, Default)]
pub struct Commit<'a> {
    /// Entries to append (as [`Storage::append`]).
    pub entries: &'a [NewEntry],
    /// Events to add to the log's view; an event whose entry already has one is left alone.
    pub events: &'a [NewEvent],
    /// Node values to put (replacing previous values), sealed by [`SealedValues::seal`].
    pub values: &'a [(String, Sealed)],
    /// Node values to delete (after the puts).
    pub deletes: &'a [String],
}

/// How a storage's commits ran since it was opened ([`Storage::commit_paths`]). A commit on a
/// log this storage committed to last is planned from the state that commit left and written
/// only if the log is still in it (one statement on PostgreSQL, one execution between `BEGIN`
/// and `COMMIT` on SQLite); otherwise it reads the log under its lock first (docs/decisions.md,
/// "One statement per commit on PostgreSQL", "Commits from the known state on SQLite").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitPaths {
    /// Commits made from the known state (the name says what they are on PostgreSQL).
    pub one_statement: u64,
    /// Commits tried from the known state that found the log moved on (by another writer on
    /// the same database, or a concurrent commit), then made under the lock.
    pub missed: u64,
    /// Commits made under the log's lock (the first on a log, or after a miss or an error).
    pub locked: u64,
}

/// What a [`Commit`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    /// One outcome per entry, as [`Storage::append`].
    pub appended: Vec<Appended>,
    /// One event cursor per event (the existing cursor for an event already stored).
    pub event_cursors: Vec<u64>,
}

/// What [`Storage::append`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored with this cursor.
    New {
        /// The arrival cursor given to the entry.
        cursor: u64,
    },
    /// Already stored (appends are idempotent); its existing cursor.
    Existing {
        /// The cursor the entry got when it was first stored.
        cursor: u64,
    },
}

impl Appended {
    /// The entry's cursor, new or existing.
    pub fn cursor(self) -> u64 {
        match self {
            Appended::New { cursor } | Appended::Existing { cursor } => cursor,
        }
    }
}

/// Walking direction of a range read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first, in ascending total order.
    Forward,
    /// Newest first, in descending total order.
    Backward,
}

/// A page of a log in total order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRange {
    /// Lowest order key to include (or exclude).
    pub lower: Bound<OrderKey>,
    /// Highest order key to include (or exclude).
    pub upper: Bound<OrderKey>,
    /// Walk up from `lower` or down from `upper`.
    pub direction: Direction,
    /// Largest number of entries returned.
    pub limit: u32,
}

impl OrderRange {
    /// The whole log, forward, at most `limit` entries.
    pub fn all(limit: u32) -> Self {
        Self {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
            direction: Direction::Forward,
            limit,
        }
    }
}

/// The node's persistence, as the actors see it.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// The database's health, kept up to date in the background (never waits).
    fn health(&self) -> StorageHealth;

    /// How commits ran since the storage was opened.
    fn commit_paths(&self) -> CommitPaths;

    /// Appends entries to a log in one committed transaction, in the given order.
    ///
    /// Each entry's parents must be stored already or come earlier in `entries`; otherwise
    /// nothing is stored and [`StorageError::MissingParent`] is returned. An entry already stored
    /// is left alone ([`Appended::Existing`]). New entries get consecutive cursors in the order
    /// given; cursors of one log are committed in increasing order, even with several writers.
    /// Heads are kept up to date: a new entry becomes a head and its parents stop being heads.
    async fn append(&self, log: &LogId, entries: &[NewEntry]) -> Result<Vec<Appended>>;

    /// The order keys of the given ids that are stored (unknown ids are left out).
    async fn order_keys(&self, log: &LogId, ids: &[EntryId]) -> Result<Vec<OrderKey>>;

    /// The stored entries among `ids` (unknown ids are left out), in no particular order.
    async fn entries(&self, log: &LogId, ids: &[EntryId]) -> Result<Vec<StoredEntry>>;

    /// The current heads (entries no other entry names as parent), ascending total order.
    async fn heads(&self, log: &LogId) -> Result<Vec<OrderKey>>;

    /// A page of the log in total order.
    async fn range(&self, log: &LogId, range: &OrderRange) -> Result<Vec<StoredEntry>>;

    /// Entries whose cursor is strictly greater than `after`, ascending cursor, at most `limit`.
    async fn since_cursor(&self, log: &LogId, after: u64, limit: u32) -> Result<Vec<StoredEntry>>;

    /// Appends entries, adds decoded events and puts node values in one committed
    /// transaction: all of it is stored, or none. Entries follow the rules of
    /// [`Storage::append`]; each event must name an entry stored before or in this commit;
    /// new events get the log's next event cursors in the order given.
    async fn commit(&self, log: &LogId, commit: Commit<'_>) -> Result<Committed>;

    /// One decoded event by its entry id.
    async fn event(&self, log: &LogId, entry_id: &EntryId) -> Result<Option<StoredEvent>>;

    /// A page of the log's events of the given kinds (all kinds when `kinds` is empty) in
    /// total order, leaving out events whose cursor is above `max_cursor`. Events whose kind
    /// is among `entries_of` come with their entry's bytes ([`StoredEvent::entry`]).
    async fn events_range(
        &self,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        range: &OrderRange,
        max_cursor: u64,
    ) -> Result<Vec<StoredEvent>>;

    /// Events of the given kinds (all when empty) with cursor strictly above `after`,
    /// ascending cursor, at most `limit`; those whose kind is among `entries_of` with their
    /// entry's bytes.
    async fn events_since_cursor(
        &self,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// The highest event cursor of the log (0 when it has no event).
    async fn last_event_cursor(&self, log: &LogId) -> Result<u64>;

    /// Every log holding at least one entry, in id order.
    async fn logs(&self) -> Result<Vec<LogId>>;

    /// Node values whose key starts with `prefix`, in key order, keys strictly after `after`
    /// when given, at most `limit`.
    async fn values_with_prefix(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Sealed)>>;

    /// Deletes a node value; deleting a missing key is not an error.
    async fn delete_value(&self, key: &str) -> Result<()>;

    /// A node-level value (small state such as flags and counters) by key.
    async fn get_value(&self, key: &str) -> Result<Option<Sealed>>;

    /// Stores a node-level value, replacing any previous one; committed on return.
    async fn put_value(&self, key: &str, value: &Sealed) -> Result<()>;

    /// The rendezvous server's registrations, in the same database.
    fn rendezvous(&self) -> &dyn rendezvous::RendezvousStore;

    /// The mirror's tokens and groups, in the same database.
    fn mirror(&self) -> &dyn mirror::MirrorStore;
}

/// Opens the storage named by `database_url` and applies pending migrations.
///
/// An empty URL means SQLite in `data_dir/berty-node.db`; `sqlite:` URLs name a file;
/// `postgres://` and `postgresql://` URLs name a PostgreSQL database.
pub async fn open(database_url: &str, data_dir: &Path) -> Result<Arc<dyn Storage>> {
    if database_url.is_empty() {
        let path = data_dir.join(crate::defaults::SQLITE_FILE_NAME);
        return Ok(Arc::new(sqlite::SqliteStorage::open_file(&path).await?));
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        return Ok(Arc::new(
            postgres::PostgresStorage::connect(database_url).await?,
        ));
    }
    if database_url.starts_with("sqlite:") {
        return Ok(Arc::new(
            sqlite::SqliteStorage::open_url(database_url).await?,
        ));
    }
    Err(StorageError::Config(format!(
        "storage.database_url must be empty, sqlite:..., or postgres://...; got a URL with scheme {:?}",
        database_url.split(':').next().unwrap_or_default()
    )))
}
