//! What the SQLite and PostgreSQL backends share: [`SqlStorage`], one [`Storage`] generic over
//! sqlx's [`Database`], running the same SQL on both engines.
//!
//! Both engines accept every statement here: `$N` placeholders in fixed statements (SQLite
//! reads `$N` as the N-th argument), each engine's own placeholders in statements built with
//! [`Statement`], `ON CONFLICT`, `RETURNING` and row-value comparisons. What differs between
//! them (connection settings, pools, column types in the migrations, the few [`Dialect`]
//! clauses) stays in the backend files.
//!
//! # Layout
//!
//! - this file: [`SqlStorage`] and its one [`Storage`] implementation, each method run
//!   through the storage's health guard;
//! - `statement`: [`Statement`] and the clauses the queries share;
//! - `columns`: how values are stored and read back;
//! - `plan`: what an append writes, decided before writing (pure);
//! - `entries`: appends, entries and heads; `events`: decoded events; `values`: node
//!   values; `commit`: the transaction writing all three (often without the log's lock, from
//!   what `known_logs` remembers of the log: on PostgreSQL one statement); `writes`: a transaction's writes, queued
//!   once its reads are done and run in as few round trips as the engine allows.
//!
//! # Encoding
//!
//! - A log's 33-byte id ([`LogId::to_bytes`]) is stored once, in `logs`; every other table
//!   names the log by its integer `log_key`, which keeps the indexes narrow (1.5 times the
//!   append throughput of 33-byte keys on a 100,000-entry SQLite log). Reads look the key up
//!   in the same statement; writes get it from the statement locking the log.
//! - Entry ids are stored as their 32 bytes.
//! - Lamport clocks are `u64` but both engines store signed 64-bit integers, so a `lamport`
//!   column holds the clock with its top bit flipped: every `u64` fits and SQL ordering
//!   matches `u64` ordering, so ranges and `ORDER BY` need no special case. Clock 1 is stored
//!   as `-9223372036854775807`.
//! - Cursors are positive `i64`s (a log would need 2^63 entries to run out).
//! - An entry's parents are one blob of concatenated 32-byte ids, in the entry's order.
//!
//! # Heads
//!
//! Parents are always stored before their children (checked with the log locked), so a new
//! entry can only be named as parent by entries of its own batch. Each append therefore works
//! out the heads from the batch alone (`plan`): the new entries no other new entry names
//! become heads, the stored parents they name stop being heads. No table of parent links is
//! kept: it would halve append throughput for no read it serves.

pub(super) mod analyze;
pub(super) mod columns;
mod commit;
mod entries;
mod events;
mod known_logs;
mod plan;
mod statement;
mod values;
mod writes;

use std::future::Future;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

pub(crate) use statement::{Column, Statement};
pub(crate) use writes::Combined;

use self::{entries::Entries, events::Events, values::Values};
use super::{
    health::HealthMonitor, rendezvous::RendezvousStore, Appended, Commit, CommitPaths, Committed,
    NewEntry, OrderRange, Result, Sealed, Storage, StorageHealth, StoredEntry, StoredEvent,
};
use crate::log::{EntryId, LogId, OrderKey};

/// Most ids looked up by one statement (both engines accept far more bind parameters).
const IDS_PER_STATEMENT: usize = 1000;
/// Most rows put in one multi-row `INSERT` with one placeholder per value (node values).
const ROWS_PER_INSERT: usize = 500;

/// How many of `appended` were newly stored.
fn new_entries(appended: &[Appended]) -> usize {
    appended
        .iter()
        .filter(|a| matches!(a, Appended::New { .. }))
        .count()
}

/// Locks a log's row until commit, creating it on first use (`$1`: the log's id): the first
/// statement of every write on a log (appends, `entries::lock_log_sql`, and the mirror's
/// deletion of a log). An upsert, so it also waits for a log's first append still in flight.
pub(in crate::storage) const LOCK_LOG_ROW: &str =
    "INSERT INTO logs (log_id, last_cursor, entry_count) VALUES ($1, 0, 0) \
     ON CONFLICT (log_id) DO UPDATE SET last_cursor = logs.last_cursor";

/// What differs between the engines' SQL, beyond what sqlx hides.
pub(crate) trait Dialect: Database {
    /// Most rows [`Dialect::push_rows`] puts in one statement.
    const ROWS_PER_INSERT: usize;
    /// How several writes run in one execution ([`writes::Writes`]).
    const COMBINED_WRITES: writes::Combined;
    /// An expression, in a statement on `logs`, of the log's heads (at most 64) as their ids'
    /// hex concatenated (NULL when it has none).
    const HEADS_AS_HEX: &'static str;

    /// Appends a condition true when `column` holds one of `ids`.
    fn push_id_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [EntryId]);

    /// Appends the rows of an `INSERT INTO table (columns) `, given column by column in the
    /// order of the column list: `VALUES (?, ...), ...` on SQLite; on PostgreSQL
    /// `SELECT * FROM unnest($1, ...)` with one array per column, a statement whose text does
    /// not depend on the number of rows (parsed once per connection, a few bind parameters
    /// instead of thousands).
    fn push_rows<'a>(statement: &mut Statement<'a, Self>, columns: Vec<Column<'a>>);
}

/// Storage in a SQL database: a pool for reads and one for writes (may be the same pool), and
/// the database's health, which every call goes through. Built by
/// [`super::sqlite`] and [`super::postgres`].
#[derive(Debug)]
pub struct SqlStorage<DB: Database> {
    reader: Pool<DB>,
    writer: Pool<DB>,
    health: HealthMonitor,
    /// A task that lives as long as the storage (SQLite's WAL checkpointer).
    background: Option<tokio::task::JoinHandle<()>>,
    /// PostgreSQL: refreshes planner statistics as the logs grow (see [`analyze`]).
    analyzer: Option<analyze::Analyzer>,
    /// The logs' states as this storage's last commits left them (see `commit`).
    known: known_logs::KnownLogs,
}

impl<DB: Database> Drop for SqlStorage<DB> {
    fn drop(&mut self) {
        if let Some(task) = self.background.take() {
            task.abort();
        }
    }
}

impl<DB: Database> SqlStorage<DB> {
    /// A storage reading through `reader` and writing through `writer`; `background` is
    /// stopped when the storage is dropped.
    pub(super) fn new(
        reader: Pool<DB>,
        writer: Pool<DB>,
        health: HealthMonitor,
        background: Option<tokio::task::JoinHandle<()>>,
    ) -> Self {
        Self {
            reader,
            writer,
            health,
            background,
            analyzer: None,
            known: known_logs::KnownLogs::default(),
        }
    }

    /// Refreshes planner statistics in the background as the logs grow (PostgreSQL).
    pub(super) fn with_analyzer(mut self, analyzer: analyze::Analyzer) -> Self {
        self.analyzer = Some(analyzer);
        self
    }

    /// Counts rows written, for the statistics refresher.
    fn wrote(&self, rows: usize) {
        if let Some(analyzer) = &self.analyzer {
            analyzer.wrote(rows as u64);
        }
    }

    /// The read and write pools, for tests that inspect connection settings.
    #[cfg(test)]
    pub(crate) fn pools(&self) -> [&Pool<DB>; 2] {
        [&self.reader, &self.writer]
    }

    /// The pool for reads (the rendezvous store in [`super::rendezvous`] runs its own SQL).
    pub(crate) fn reader(&self) -> &Pool<DB> {
        &self.reader
    }

    /// The pool for writes (the rendezvous store in [`super::rendezvous`] runs its own SQL).
    pub(crate) fn writer(&self) -> &Pool<DB> {
        &self.writer
    }

    /// Runs one call through the health guard: it fails at once while the database is down.
    pub(crate) async fn guard<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.health.health().guard(call).await
    }
}

#[async_trait]
impl<DB> Storage for SqlStorage<DB>
where
    DB: Dialect + super::rendezvous::RendezvousDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn health(&self) -> StorageHealth {
        self.health.health().clone()
    }

    fn commit_paths(&self) -> CommitPaths {
        self.known.paths()
    }

    async fn append(&self, log: &LogId, entries: &[NewEntry]) -> Result<Vec<Appended>> {
        let appended = self
            .guard(Entries::append(&self.writer, log, entries))
            .await?;
        self.wrote(new_entries(&appended));
        Ok(appended)
    }

    async fn order_keys(&self, log: &LogId, ids: &[EntryId]) -> Result<Vec<OrderKey>> {
        self.guard(Entries::order_keys(&self.reader, log, ids))
            .await
    }

    async fn entries(&self, log: &LogId, ids: &[EntryId]) -> Result<Vec<StoredEntry>> {
        self.guard(Entries::by_ids(&self.reader, log, ids)).await
    }

    async fn heads(&self, log: &LogId) -> Result<Vec<OrderKey>> {
        self.guard(Entries::heads(&self.reader, log)).await
    }

    async fn range(&self, log: &LogId, range: &OrderRange) -> Result<Vec<StoredEntry>> {
        self.guard(Entries::range(&self.reader, log, range)).await
    }

    async fn since_cursor(&self, log: &LogId, after: u64, limit: u32) -> Result<Vec<StoredEntry>> {
        self.guard(Entries::since_cursor(&self.reader, log, after, limit))
            .await
    }

    async fn commit(&self, log: &LogId, commit: Commit<'_>) -> Result<Committed> {
        let events = commit.events.len();
        let committed = self
            .guard(commit::commit(&self.writer, &self.known, log, commit))
            .await?;
        self.wrote(new_entries(&committed.appended) + events);
        Ok(committed)
    }

    async fn event(&self, log: &LogId, entry_id: &EntryId) -> Result<Option<StoredEvent>> {
        self.guard(Events::event(&self.reader, log, entry_id)).await
    }

    async fn events_range(
        &self,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        range: &OrderRange,
        max_cursor: u64,
    ) -> Result<Vec<StoredEvent>> {
        let call = Events::range(&self.reader, log, kinds, entries_of, range, max_cursor);
        self.guard(call).await
    }

    async fn events_since_cursor(
        &self,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let call = Events::since_cursor(&self.reader, log, kinds, entries_of, after, limit);
        self.guard(call).await
    }

    async fn last_event_cursor(&self, log: &LogId) -> Result<u64> {
        let call = Entries::log_counter(&self.reader, log, "last_event_cursor");
        self.guard(call).await
    }

    async fn logs(&self) -> Result<Vec<LogId>> {
        self.guard(Entries::logs(&self.reader)).await
    }

    async fn values_with_prefix(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Sealed)>> {
        let call = Values::with_prefix(&self.reader, prefix, after, limit);
        let rows = self.guard(call).await?;
        Ok(rows
            .into_iter()
            .map(|(key, value)| (key, Sealed::from_stored(value)))
            .collect())
    }

    async fn delete_value(&self, key: &str) -> Result<()> {
        self.guard(Values::delete(&self.writer, key)).await
    }

    async fn get_value(&self, key: &str) -> Result<Option<Sealed>> {
        let value = self.guard(Values::get(&self.reader, key)).await?;
        Ok(value.map(Sealed::from_stored))
    }

    async fn put_value(&self, key: &str, value: &Sealed) -> Result<()> {
        let call = Values::put(&self.writer, key, value.as_bytes());
        self.guard(call).await
    }

    fn rendezvous(&self) -> &dyn RendezvousStore {
        self
    }

    fn mirror(&self) -> &dyn super::mirror::MirrorStore {
        self
    }
}
