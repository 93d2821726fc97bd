//! What the SQLite and PostgreSQL backends share: one store generic over sqlx's [`Database`],
//! running the same SQL on both engines, and the pure planning of an append.
//!
//! Both engines accept every statement here: `$N` placeholders in fixed statements (SQLite
//! reads `$N` as the N-th argument), each engine's own placeholders in statements built with
//! [`Statement`], `ON CONFLICT`, `RETURNING` and row-value comparisons. What differs between
//! them (connection settings, pools, column types in the migrations, the few [`Dialect`]
//! clauses) stays in the backend files.
//!
//! # Encoding
//!
//! - A log's 33-byte id ([`LogId::to_bytes`]) is stored once, in `logs`; every other table
//!   names the log by its integer `log_key`, which keeps the indexes narrow (1.5 times the
//!   append throughput of 33-byte keys on a 100,000-entry SQLite log). Reads look the key up
//!   in the same statement ([`LOG_IS_PARAM_1`]); writes get it from [`LOCK_LOG`].
//! - Entry ids are stored as their 32 bytes.
//! - Lamport clocks are `u64` but both engines store signed 64-bit integers, so a `lamport`
//!   column holds the clock with its top bit flipped ([`lamport_to_sql`]): every `u64` fits and
//!   SQL ordering matches `u64` ordering, so ranges and `ORDER BY` need no special case. Clock 1
//!   is stored as `-9223372036854775807`.
//! - Cursors are positive `i64`s (a log would need 2^63 entries to run out).
//! - An entry's parents are one blob of concatenated 32-byte ids, in the entry's order.
//!
//! # Heads
//!
//! Parents are always stored before their children (checked with the log locked), so a new
//! entry can only be named as parent by entries of its own batch. Each append therefore works
//! out the heads from the batch alone ([`plan_append`]): the new entries no other new entry
//! names become heads, the stored parents they name stop being heads. No table of parent
//! links is kept: it would halve append throughput for no read it serves.

use std::{
    collections::{HashMap, HashSet},
    ops::Bound,
};

use sqlx::{
    Arguments, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};

use super::{
    Appended, Commit, Committed, Direction, NewEntry, NewEvent, OrderRange, Result, StorageError,
    StoredEntry, StoredEvent,
};
use crate::log::{EntryId, LogId, OrderKey, ENTRY_ID_LEN};

/// Most ids looked up by one statement (both engines accept far more bind parameters).
const IDS_PER_STATEMENT: usize = 1000;
/// Most rows put in one multi-row `INSERT`.
const ROWS_PER_INSERT: usize = 500;
/// The largest cursor: cursors are stored as signed 64-bit integers.
const MAX_CURSOR: u64 = i64::MAX as u64;
/// The bit flipped to map a Lamport clock onto a signed 64-bit integer.
const LAMPORT_SIGN_BIT: u64 = 1 << 63;

/// Columns read to build a [`StoredEvent`], in the order [`SqlStore::decode_event`] expects.
const EVENT_COLUMNS: &str = "entry_id, lamport, parents, kind, body, cursor";

/// Puts a node value, replacing the previous one.
const DELETE_VALUE: &str = "DELETE FROM node_values WHERE key = $1";
const PUT_VALUE: &str = "INSERT INTO node_values (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// Columns read to build a [`StoredEntry`], in the order [`SqlStore::decode_entry`] expects.
const ENTRY_COLUMNS: &str = "entry_id, lamport, parents, bytes, cursor";

/// The first statement of every append: creates the log's row on first use and locks it until
/// commit. On PostgreSQL the row lock serialises appends to one log, so cursors are committed
/// in increasing order; on SQLite it is a write, so the transaction holds the write lock from
/// its first statement and never has to upgrade a read snapshot (which `busy_timeout` would
/// not retry).
const LOCK_LOG: &str = "INSERT INTO logs (log_id, last_cursor, entry_count) VALUES ($1, 0, 0) \
     ON CONFLICT (log_id) DO UPDATE SET last_cursor = logs.last_cursor \
     RETURNING log_key, last_cursor, last_event_cursor";

/// The last statement of a write that added entries or events: the log's counters, in one
/// statement.
const ADVANCE_LOG: &str = "UPDATE logs SET last_cursor = $2, entry_count = entry_count + $3, \
     last_event_cursor = $4 WHERE log_key = $1";

/// Selects the rows of the log whose id is `$1`.
const LOG_IS_PARAM_1: &str = "log_key = (SELECT log_key FROM logs WHERE log_id = $1)";

/// Maps a Lamport clock to its stored form, preserving order over the whole `u64` range.
pub(crate) fn lamport_to_sql(lamport: u64) -> i64 {
    i64::from_be_bytes((lamport ^ LAMPORT_SIGN_BIT).to_be_bytes())
}

/// Inverse of [`lamport_to_sql`].
pub(crate) fn lamport_from_sql(stored: i64) -> u64 {
    u64::from_be_bytes(stored.to_be_bytes()) ^ LAMPORT_SIGN_BIT
}

/// A cursor as a bind parameter; cursors past the stored range clamp to the largest one.
fn cursor_to_sql(cursor: u64) -> i64 {
    i64::try_from(cursor).unwrap_or(i64::MAX)
}

/// A count or cursor read back from the database; negative values mean corruption.
fn non_negative(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt(format!("negative {what}: {value}")))
}

/// Maps a failed database call to [`StorageError::Unavailable`], saying what was being done.
fn unavailable(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |err| StorageError::Unavailable(format!("{doing}: {err}"))
}

/// An entry's parents as stored: their ids concatenated.
fn parents_blob(parents: &[EntryId]) -> Vec<u8> {
    parents
        .iter()
        .flat_map(|p| p.as_bytes().iter().copied())
        .collect()
}

/// Parses a stored entry id.
fn entry_id(bytes: &[u8]) -> Result<EntryId> {
    EntryId::from_slice(bytes).ok_or_else(|| {
        StorageError::Corrupt(format!(
            "entry id of {} bytes, expected {ENTRY_ID_LEN}",
            bytes.len()
        ))
    })
}

/// Parses a stored parents blob.
fn parents_from_blob(blob: &[u8]) -> Result<Vec<EntryId>> {
    if !blob.len().is_multiple_of(ENTRY_ID_LEN) {
        return Err(StorageError::Corrupt(format!(
            "parents blob of {} bytes is not a list of {ENTRY_ID_LEN}-byte ids",
            blob.len()
        )));
    }
    blob.chunks_exact(ENTRY_ID_LEN).map(entry_id).collect()
}

/// A statement with many parameters, built with the engine's own placeholders (`?` on SQLite,
/// `$N` on PostgreSQL): sqlx looks numbered SQLite parameters up by name, which costs time
/// quadratic in their number. (sqlx's `QueryBuilder` cannot be used from code generic over
/// the engine: the borrow it needs outlives the builder.)
pub(crate) struct Statement<'a, DB: Database> {
    sql: String,
    args: DB::Arguments<'a>,
    /// The first argument that failed to encode, reported when the statement is run.
    error: Option<String>,
}

impl<'a, DB: Database> Statement<'a, DB> {
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Default::default(),
            error: None,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind<T: 'a + Encode<'a, DB> + Type<DB>>(&mut self, value: T) -> &mut Self {
        if self.error.is_none() {
            if let Err(err) = self.args.add(value) {
                self.error = Some(err.to_string());
            } else if self.args.format_placeholder(&mut self.sql).is_err() {
                self.error = Some("cannot format a placeholder".into());
            }
        }
        self
    }

    /// Starts a comma-separated list of placeholders.
    pub(crate) fn list(&mut self) -> List<'_, 'a, DB> {
        List {
            statement: self,
            empty: true,
        }
    }

    /// Appends `VALUES (...), (...)`: one row per item, its placeholders bound by `row`.
    pub(crate) fn push_values<I: IntoIterator>(
        &mut self,
        items: I,
        mut row: impl FnMut(&mut List<'_, 'a, DB>, I::Item),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            row(&mut self.list(), item);
            self.push(")");
        }
        self
    }

    /// The SQL text and its arguments.
    pub(crate) fn finish(self) -> Result<(String, DB::Arguments<'a>)> {
        match self.error {
            Some(err) => Err(StorageError::Unavailable(format!(
                "cannot encode an argument: {err}"
            ))),
            None => Ok((self.sql, self.args)),
        }
    }
}

/// Placeholders separated by commas, in a [`Statement`].
pub(crate) struct List<'s, 'a, DB: Database> {
    statement: &'s mut Statement<'a, DB>,
    empty: bool,
}

impl<'a, DB: Database> List<'_, 'a, DB> {
    /// Appends a placeholder for `value`, after a comma unless it is the first.
    pub(crate) fn bind<T: 'a + Encode<'a, DB> + Type<DB>>(&mut self, value: T) -> &mut Self {
        if !self.empty {
            self.statement.push(", ");
        }
        self.empty = false;
        self.statement.bind(value);
        self
    }
}

/// What differs between the engines' SQL, beyond what sqlx hides.
pub(crate) trait Dialect: Database {
    /// Appends a condition true when `column` holds one of `ids`.
    fn push_id_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [EntryId]);
}

/// A log in a statement: by its id, or by its key once a transaction has locked it.
#[derive(Debug, Clone, Copy)]
enum LogRef<'a> {
    /// The log's id bytes ([`LogId::to_bytes`]).
    Id(&'a [u8]),
    /// The log's `logs.log_key`.
    Key(i64),
}

/// Appends a condition selecting the rows of `log`.
fn push_log<'a, DB>(query: &mut Statement<'a, DB>, log: LogRef<'a>)
where
    DB: Database,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    match log {
        LogRef::Id(id) => query
            .push("log_key = (SELECT log_key FROM logs WHERE log_id = ")
            .bind(id)
            .push(")"),
        LogRef::Key(key) => query.push("log_key = ").bind(key),
    };
}

/// `{statement} WHERE <log> AND entry_id` in `ids`, with the log and `ids` bound.
fn ids_in_log<'a, DB>(statement: &str, log: LogRef<'a>, ids: &'a [EntryId]) -> Statement<'a, DB>
where
    DB: Dialect,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut query = Statement::new(statement);
    query.push(" WHERE ");
    push_log(&mut query, log);
    query.push(" AND ");
    DB::push_id_in(&mut query, "entry_id", ids);
    query
}

/// Appends the bounds of `range` on the total order `(lamport, entry_id)`, then its order
/// and limit: ` AND (lamport, entry_id) > (?, ?) ... ORDER BY lamport, entry_id LIMIT ?`.
/// Row-value comparisons walk the `(log_key, lamport, entry_id)` indexes on both engines.
fn push_order_range<'a, DB>(query: &mut Statement<'a, DB>, range: &'a OrderRange)
where
    DB: Database,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    for (bound, included, excluded) in [(&range.lower, ">=", ">"), (&range.upper, "<=", "<")] {
        let (key, op) = match bound {
            Bound::Included(key) => (key, included),
            Bound::Excluded(key) => (key, excluded),
            Bound::Unbounded => continue,
        };
        query
            .push(&format!(" AND (lamport, entry_id) {op} ("))
            .bind(lamport_to_sql(key.lamport))
            .push(", ")
            .bind(&key.id.as_bytes()[..])
            .push(")");
    }
    let order = match range.direction {
        Direction::Forward => "ASC",
        Direction::Backward => "DESC",
    };
    query
        .push(&format!(
            " ORDER BY lamport {order}, entry_id {order} LIMIT "
        ))
        .bind(i64::from(range.limit));
}

/// Every id an append must look up: the batch's entries and their parents, each once.
pub(crate) fn ids_to_look_up(entries: &[NewEntry]) -> Vec<EntryId> {
    let mut seen = HashSet::with_capacity(entries.len() * 2);
    entries
        .iter()
        .flat_map(|e| std::iter::once(&e.id).chain(&e.parents))
        .filter(|id| seen.insert(**id))
        .copied()
        .collect()
}

/// An entry an append stores, with the cursor it gets.
#[derive(Debug)]
pub(crate) struct NewRow<'a> {
    pub(crate) entry: &'a NewEntry,
    pub(crate) cursor: u64,
}

/// What one append writes, decided before writing anything.
#[derive(Debug)]
pub(crate) struct AppendPlan<'a> {
    /// The reply: one outcome per entry given, in order.
    pub(crate) outcomes: Vec<Appended>,
    /// Entries to store, in batch order with consecutive cursors.
    pub(crate) new: Vec<NewRow<'a>>,
    /// The log's last cursor once the append commits.
    pub(crate) last_cursor: u64,
    /// New entries that become heads: those no other new entry names as parent. (No stored
    /// entry can name a new one: parents are always stored first.)
    pub(crate) new_heads: Vec<&'a NewEntry>,
    /// Stored entries that new entries name as parents: no longer heads.
    pub(crate) former_heads: Vec<EntryId>,
}

/// Decides what appending `entries` does, given the cursors of those of the batch's ids and
/// parent ids that are stored, and the log's last cursor.
pub(crate) fn plan_append<'a>(
    entries: &'a [NewEntry],
    stored: &HashMap<EntryId, u64>,
    last_cursor: u64,
) -> Result<AppendPlan<'a>> {
    let mut added: HashMap<EntryId, u64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut new = Vec::new();
    let mut cursor = last_cursor;
    for entry in entries {
        if let Some(&existing) = stored.get(&entry.id).or_else(|| added.get(&entry.id)) {
            outcomes.push(Appended::Existing { cursor: existing });
            continue;
        }
        let missing = entry
            .parents
            .iter()
            .find(|parent| !stored.contains_key(*parent) && !added.contains_key(*parent));
        if let Some(parent) = missing {
            return Err(StorageError::MissingParent {
                entry: entry.id,
                parent: *parent,
            });
        }
        cursor = cursor
            .checked_add(1)
            .filter(|c| *c <= MAX_CURSOR)
            .ok_or_else(|| StorageError::Unavailable("the log has run out of cursors".into()))?;
        added.insert(entry.id, cursor);
        outcomes.push(Appended::New { cursor });
        new.push(NewRow { entry, cursor });
    }
    let named: HashSet<EntryId> = new
        .iter()
        .flat_map(|row| row.entry.parents.iter().copied())
        .collect();
    let new_heads = new
        .iter()
        .map(|row| row.entry)
        .filter(|entry| !named.contains(&entry.id))
        .collect();
    let former_heads = named
        .into_iter()
        .filter(|id| stored.contains_key(id))
        .collect();
    Ok(AppendPlan {
        outcomes,
        new,
        last_cursor: cursor,
        new_heads,
        former_heads,
    })
}

/// A log locked by a write transaction ([`LOCK_LOG`]), with its counters as of the lock.
struct LockedLog {
    log_key: i64,
    last_cursor: u64,
    last_event_cursor: u64,
}

/// What an append inside a transaction did.
struct AppendedIn {
    /// One outcome per entry given, in order.
    outcomes: Vec<Appended>,
    /// Entries newly stored.
    added: usize,
    /// The log's last cursor after them.
    last_cursor: u64,
    /// Ids of the entries newly stored (no event can exist for them yet).
    new_ids: HashSet<EntryId>,
}

/// The storage logic of both backends over one engine: a pool for reads and one for writes.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Database> {
    reader: Pool<DB>,
    writer: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store reading through `reader` and writing through `writer` (may be the same pool).
    pub(crate) fn new(reader: Pool<DB>, writer: Pool<DB>) -> Self {
        Self { reader, writer }
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
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Column `index` of `row`; a value that does not decode is corruption.
    fn column<'r, T>(row: &'r DB::Row, index: usize) -> Result<T>
    where
        T: Decode<'r, DB> + Type<DB>,
    {
        row.try_get(index)
            .map_err(|err| StorageError::Corrupt(format!("column {index}: {err}")))
    }

    /// A row of [`ENTRY_COLUMNS`].
    fn decode_entry(row: &DB::Row) -> Result<StoredEntry> {
        let cursor = non_negative(Self::column(row, 4)?, "cursor")?;
        if cursor == 0 {
            return Err(StorageError::Corrupt("entry with cursor 0".into()));
        }
        Ok(StoredEntry {
            id: entry_id(&Self::column::<Vec<u8>>(row, 0)?)?,
            lamport: lamport_from_sql(Self::column(row, 1)?),
            parents: parents_from_blob(&Self::column::<Vec<u8>>(row, 2)?)?,
            bytes: Self::column(row, 3)?,
            cursor,
        })
    }

    /// A row of `lamport, entry_id`.
    fn decode_order_key(row: &DB::Row) -> Result<OrderKey> {
        Ok(OrderKey {
            lamport: lamport_from_sql(Self::column(row, 0)?),
            id: entry_id(&Self::column::<Vec<u8>>(row, 1)?)?,
        })
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        sqlx::query::<DB>("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(unavailable("ping"))?;
        Ok(())
    }

    pub(crate) async fn append(&self, log: &LogId, entries: &[NewEntry]) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(unavailable("starting an append"))?;
        let locked = Self::lock_log(&mut tx, log).await?;
        let appended = Self::append_in(&mut tx, &locked, entries).await?;
        if appended.added > 0 {
            Self::advance_log(&mut tx, &locked, &appended, locked.last_event_cursor).await?;
            tx.commit()
                .await
                .map_err(unavailable("committing an append"))?;
        } else {
            // Nothing new: rolling back releases the lock without a commit to sync.
            tx.rollback()
                .await
                .map_err(unavailable("ending an append"))?;
        }
        Ok(appended.outcomes)
    }

    /// Locks the log's row, creating it on first use: must be the first statement of every
    /// write transaction on a log (see [`LOCK_LOG`]). Returns the log's key and counters.
    async fn lock_log(tx: &mut DB::Connection, log: &LogId) -> Result<LockedLog> {
        let row = sqlx::query::<DB>(LOCK_LOG)
            .bind(&log.to_bytes()[..])
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable("locking the log"))?;
        Ok(LockedLog {
            log_key: Self::column(&row, 0)?,
            last_cursor: non_negative(Self::column(&row, 1)?, "last cursor")?,
            last_event_cursor: non_negative(Self::column(&row, 2)?, "last event cursor")?,
        })
    }

    /// Writes the log's counters after an append (and events) in the transaction on `tx`.
    async fn advance_log(
        tx: &mut DB::Connection,
        locked: &LockedLog,
        appended: &AppendedIn,
        last_event_cursor: u64,
    ) -> Result<()> {
        sqlx::query::<DB>(ADVANCE_LOG)
            .bind(locked.log_key)
            .bind(cursor_to_sql(appended.last_cursor))
            .bind(i64::try_from(appended.added).unwrap_or(i64::MAX))
            .bind(cursor_to_sql(last_event_cursor))
            .execute(&mut *tx)
            .await
            .map_err(unavailable("advancing the log's cursors"))?;
        Ok(())
    }

    /// Appends `entries` inside the transaction on `tx`, which holds the lock of the log
    /// ([`Self::lock_log`]). The log's counters are left to [`Self::advance_log`].
    async fn append_in(
        tx: &mut DB::Connection,
        locked: &LockedLog,
        entries: &[NewEntry],
    ) -> Result<AppendedIn> {
        let log_key = locked.log_key;
        let log = LogRef::Key(log_key);
        if entries.is_empty() {
            return Ok(AppendedIn {
                outcomes: Vec::new(),
                added: 0,
                last_cursor: locked.last_cursor,
                new_ids: HashSet::new(),
            });
        }

        let mut stored = HashMap::new();
        for ids in ids_to_look_up(entries).chunks(IDS_PER_STATEMENT) {
            let (sql, args) =
                ids_in_log::<DB>("SELECT entry_id, cursor FROM entries", log, ids).finish()?;
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up entries"))?;
            for row in rows {
                let id = entry_id(&Self::column::<Vec<u8>>(&row, 0)?)?;
                stored.insert(id, non_negative(Self::column(&row, 1)?, "cursor")?);
            }
        }

        let plan = plan_append(entries, &stored, locked.last_cursor)?;
        let mut appended = AppendedIn {
            outcomes: Vec::new(),
            added: plan.new.len(),
            last_cursor: plan.last_cursor,
            new_ids: plan.new.iter().map(|row| row.entry.id).collect(),
        };
        if plan.new.is_empty() {
            appended.outcomes = plan.outcomes;
            return Ok(appended);
        }

        let blobs: Vec<Vec<u8>> = plan
            .new
            .iter()
            .map(|row| parents_blob(&row.entry.parents))
            .collect();
        let rows: Vec<(&NewRow<'_>, &Vec<u8>)> = plan.new.iter().zip(&blobs).collect();
        for rows in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Statement::<DB>::new(
                "INSERT INTO entries (log_key, entry_id, lamport, cursor, parents, bytes) ",
            );
            insert.push_values(rows, |values, (row, blob)| {
                values
                    .bind(log_key)
                    .bind(&row.entry.id.as_bytes()[..])
                    .bind(lamport_to_sql(row.entry.lamport))
                    .bind(cursor_to_sql(row.cursor))
                    .bind(&blob[..])
                    .bind(&row.entry.bytes[..]);
            });
            let (sql, args) = insert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("inserting entries"))?;
        }

        for ids in plan.former_heads.chunks(IDS_PER_STATEMENT) {
            let (sql, args) = ids_in_log::<DB>("DELETE FROM heads", log, ids).finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("updating heads"))?;
        }

        for heads in plan.new_heads.chunks(ROWS_PER_INSERT) {
            let mut insert =
                Statement::<DB>::new("INSERT INTO heads (log_key, entry_id, lamport) ");
            insert.push_values(heads, |values, entry| {
                values
                    .bind(log_key)
                    .bind(&entry.id.as_bytes()[..])
                    .bind(lamport_to_sql(entry.lamport));
            });
            let (sql, args) = insert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("updating heads"))?;
        }

        appended.outcomes = plan.outcomes;
        Ok(appended)
    }

    pub(crate) async fn entry(&self, log: &LogId, id: &EntryId) -> Result<Option<StoredEntry>> {
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE {LOG_IS_PARAM_1} AND entry_id = $2");
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .bind(&id.as_bytes()[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable("reading an entry"))?;
        row.as_ref().map(Self::decode_entry).transpose()
    }

    pub(crate) async fn order_keys(&self, log: &LogId, ids: &[EntryId]) -> Result<Vec<OrderKey>> {
        let log = log.to_bytes();
        let mut unique: Vec<EntryId> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let mut keys = Vec::with_capacity(unique.len());
        for ids in unique.chunks(IDS_PER_STATEMENT) {
            let (sql, args) = ids_in_log::<DB>(
                "SELECT lamport, entry_id FROM entries",
                LogRef::Id(&log),
                ids,
            )
            .finish()?;
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(&self.reader)
                .await
                .map_err(unavailable("reading order keys"))?;
            for row in rows {
                keys.push(Self::decode_order_key(&row)?);
            }
        }
        keys.sort_unstable();
        Ok(keys)
    }

    pub(crate) async fn heads(&self, log: &LogId) -> Result<Vec<OrderKey>> {
        let sql = format!(
            "SELECT lamport, entry_id FROM heads WHERE {LOG_IS_PARAM_1} ORDER BY lamport, entry_id"
        );
        sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("reading heads"))?
            .iter()
            .map(Self::decode_order_key)
            .collect()
    }

    pub(crate) async fn range(&self, log: &LogId, range: &OrderRange) -> Result<Vec<StoredEntry>> {
        if range.limit == 0 {
            return Ok(Vec::new());
        }
        let log = log.to_bytes();
        let mut query =
            Statement::<DB>::new(&format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE "));
        push_log(&mut query, LogRef::Id(&log));
        push_order_range(&mut query, range);
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("reading a range"))?
            .iter()
            .map(Self::decode_entry)
            .collect()
    }

    pub(crate) async fn since_cursor(
        &self,
        log: &LogId,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE {LOG_IS_PARAM_1} AND cursor > $2 \
             ORDER BY cursor LIMIT $3"
        );
        sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .bind(cursor_to_sql(after))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("reading entries by cursor"))?
            .iter()
            .map(Self::decode_entry)
            .collect()
    }

    /// Column `column` (a non-negative counter) of the log's row; 0 when the log is empty.
    async fn log_counter(&self, log: &LogId, column: &'static str) -> Result<u64> {
        let sql = format!("SELECT {column} FROM logs WHERE log_id = $1");
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable("reading a log"))?;
        match row {
            Some(row) => non_negative(Self::column(&row, 0)?, column),
            None => Ok(0),
        }
    }

    pub(crate) async fn last_cursor(&self, log: &LogId) -> Result<u64> {
        self.log_counter(log, "last_cursor").await
    }

    pub(crate) async fn count(&self, log: &LogId) -> Result<u64> {
        self.log_counter(log, "entry_count").await
    }

    pub(crate) async fn get_value(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query::<DB>("SELECT value FROM node_values WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable("reading a node value"))?;
        row.as_ref().map(|row| Self::column(row, 0)).transpose()
    }

    pub(crate) async fn put_value(&self, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query::<DB>(PUT_VALUE)
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await
            .map_err(unavailable("storing a node value"))?;
        Ok(())
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A row of [`EVENT_COLUMNS`].
    fn decode_event(row: &DB::Row) -> Result<StoredEvent> {
        let cursor = non_negative(Self::column(row, 5)?, "event cursor")?;
        let kind: i64 = Self::column(row, 3)?;
        Ok(StoredEvent {
            entry_id: entry_id(&Self::column::<Vec<u8>>(row, 0)?)?,
            lamport: lamport_from_sql(Self::column(row, 1)?),
            parents: parents_from_blob(&Self::column::<Vec<u8>>(row, 2)?)?,
            kind: u8::try_from(kind)
                .map_err(|_| StorageError::Corrupt(format!("event kind {kind}")))?,
            body: Self::column(row, 4)?,
            cursor,
        })
    }

    pub(crate) async fn commit(&self, log: &LogId, commit: Commit<'_>) -> Result<Committed> {
        if commit.entries.is_empty()
            && commit.events.is_empty()
            && commit.values.is_empty()
            && commit.deletes.is_empty()
        {
            return Ok(Committed::default());
        }
        let mut tx = self
            .writer
            .begin()
            .await
            .map_err(unavailable("starting a commit"))?;
        // The log's lock comes first even without entries: event cursors are assigned under it.
        let locked = Self::lock_log(&mut tx, log).await?;
        let appended = Self::append_in(&mut tx, &locked, commit.entries).await?;
        let (event_cursors, last_event_cursor) =
            Self::add_events_in(&mut tx, &locked, &appended.new_ids, commit.events).await?;
        if appended.added > 0 || last_event_cursor != locked.last_event_cursor {
            Self::advance_log(&mut tx, &locked, &appended, last_event_cursor).await?;
        }
        Self::put_values_in(&mut tx, commit.values).await?;
        Self::delete_values_in(&mut tx, commit.deletes).await?;
        tx.commit().await.map_err(unavailable("committing"))?;
        Ok(Committed {
            appended: appended.outcomes,
            event_cursors,
        })
    }

    /// Puts node values inside a transaction, a few hundred per statement (the last value of
    /// a key given twice wins).
    async fn put_values_in(tx: &mut DB::Connection, values: &[(String, Vec<u8>)]) -> Result<()> {
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(values.len());
        for (index, (key, _)) in values.iter().enumerate() {
            latest.insert(key.as_str(), index);
        }
        let rows: Vec<&(String, Vec<u8>)> = values
            .iter()
            .enumerate()
            .filter(|(index, (key, _))| latest.get(key.as_str()) == Some(index))
            .map(|(_, value)| value)
            .collect();
        for rows in rows.chunks(ROWS_PER_INSERT) {
            let mut insert = Statement::<DB>::new("INSERT INTO node_values (key, value) ");
            insert.push_values(rows, |values, (key, value)| {
                values.bind(key.as_str()).bind(&value[..]);
            });
            insert.push(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
            let (sql, args) = insert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("storing node values"))?;
        }
        Ok(())
    }

    /// Deletes node values inside a transaction, many per statement.
    async fn delete_values_in(tx: &mut DB::Connection, keys: &[String]) -> Result<()> {
        for keys in keys.chunks(IDS_PER_STATEMENT) {
            let mut delete = Statement::<DB>::new("DELETE FROM node_values WHERE key IN (");
            let mut list = delete.list();
            for key in keys {
                list.bind(key.as_str());
            }
            delete.push(")");
            let (sql, args) = delete.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("deleting node values"))?;
        }
        Ok(())
    }

    /// Adds events inside a transaction that holds the log's lock; returns their cursors and
    /// the log's last event cursor after them (left to [`Self::advance_log`]). An entry has
    /// at most one event: only events of entries stored before this transaction (`new_ids`
    /// are the ones it stored) are looked up.
    async fn add_events_in(
        tx: &mut DB::Connection,
        locked: &LockedLog,
        new_ids: &HashSet<EntryId>,
        events: &[NewEvent],
    ) -> Result<(Vec<u64>, u64)> {
        let mut last = locked.last_event_cursor;
        if events.is_empty() {
            return Ok((Vec::new(), last));
        }
        let log_key = locked.log_key;
        let log = LogRef::Key(log_key);
        let ids: Vec<EntryId> = events
            .iter()
            .map(|e| e.entry_id)
            .filter(|id| !new_ids.contains(id))
            .collect();
        let mut known: HashMap<EntryId, u64> = HashMap::new();
        for ids in ids.chunks(IDS_PER_STATEMENT) {
            let (sql, args) =
                ids_in_log::<DB>("SELECT entry_id, cursor FROM events", log, ids).finish()?;
            for row in sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up events"))?
            {
                let id = entry_id(&Self::column::<Vec<u8>>(&row, 0)?)?;
                known.insert(id, non_negative(Self::column(&row, 1)?, "event cursor")?);
            }
        }
        let mut cursors = Vec::with_capacity(events.len());
        let mut new: Vec<(&NewEvent, u64, Vec<u8>)> = Vec::new();
        for event in events {
            let cursor = match known.get(&event.entry_id) {
                Some(cursor) => *cursor,
                None => {
                    last = last
                        .checked_add(1)
                        .filter(|c| *c <= MAX_CURSOR)
                        .ok_or_else(|| StorageError::Corrupt("event cursor overflow".into()))?;
                    known.insert(event.entry_id, last);
                    new.push((event, last, parents_blob(&event.parents)));
                    last
                }
            };
            cursors.push(cursor);
        }
        for rows in new.chunks(ROWS_PER_INSERT) {
            let mut insert = Statement::<DB>::new(
                "INSERT INTO events (log_key, cursor, entry_id, lamport, parents, kind, body) ",
            );
            insert.push_values(rows, |values, (event, cursor, blob)| {
                values
                    .bind(log_key)
                    .bind(cursor_to_sql(*cursor))
                    .bind(&event.entry_id.as_bytes()[..])
                    .bind(lamport_to_sql(event.lamport))
                    .bind(&blob[..])
                    .bind(i64::from(event.kind))
                    .bind(&event.body[..]);
            });
            let (sql, args) = insert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("inserting events"))?;
        }
        Ok((cursors, last))
    }

    pub(crate) async fn event(&self, log: &LogId, id: &EntryId) -> Result<Option<StoredEvent>> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE {LOG_IS_PARAM_1} AND entry_id = $2");
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .bind(&id.as_bytes()[..])
            .fetch_optional(&self.reader)
            .await
            .map_err(unavailable("reading an event"))?;
        row.as_ref().map(Self::decode_event).transpose()
    }

    pub(crate) async fn events_range(
        &self,
        log: &LogId,
        kinds: &[u8],
        range: &OrderRange,
        max_cursor: u64,
    ) -> Result<Vec<StoredEvent>> {
        if range.limit == 0 {
            return Ok(Vec::new());
        }
        let log = log.to_bytes();
        let mut query = Statement::<DB>::new(&format!("SELECT {EVENT_COLUMNS} FROM events"));
        query.push(" WHERE ");
        push_log(&mut query, LogRef::Id(&log));
        // `+cursor`: a filter only, never the index to walk (the order index is the right one;
        // without statistics SQLite would otherwise walk the cursor index and sort the log).
        query
            .push(" AND +cursor <= ")
            .bind(cursor_to_sql(max_cursor));
        push_kinds(&mut query, kinds);
        push_order_range(&mut query, range);
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("reading events"))?
            .iter()
            .map(Self::decode_event)
            .collect()
    }

    pub(crate) async fn events_since_cursor(
        &self,
        log: &LogId,
        kinds: &[u8],
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let log = log.to_bytes();
        let mut query = Statement::<DB>::new(&format!("SELECT {EVENT_COLUMNS} FROM events"));
        query.push(" WHERE ");
        push_log(&mut query, LogRef::Id(&log));
        query.push(" AND cursor > ").bind(cursor_to_sql(after));
        push_kinds(&mut query, kinds);
        query.push(" ORDER BY cursor LIMIT ").bind(i64::from(limit));
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("reading events by cursor"))?
            .iter()
            .map(Self::decode_event)
            .collect()
    }

    pub(crate) async fn last_event_cursor(&self, log: &LogId) -> Result<u64> {
        self.log_counter(log, "last_event_cursor").await
    }

    pub(crate) async fn logs(&self) -> Result<Vec<LogId>> {
        sqlx::query::<DB>("SELECT log_id FROM logs WHERE entry_count > 0 ORDER BY log_id")
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("listing logs"))?
            .iter()
            .map(|row| {
                let bytes: Vec<u8> = Self::column(row, 0)?;
                LogId::from_bytes(&bytes)
                    .ok_or_else(|| StorageError::Corrupt("malformed log id".into()))
            })
            .collect()
    }

    pub(crate) async fn values_with_prefix(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Keys compare bytewise on both engines (PostgreSQL: `COLLATE "C"`), so the keys with
        // a prefix are one range of the primary key index.
        let end = prefix_end(prefix);
        let mut query = Statement::<DB>::new("SELECT key, value FROM node_values WHERE key >= ");
        query.bind(prefix);
        if let Some(end) = &end {
            query.push(" AND key < ").bind(end.as_str());
        }
        if let Some(after) = after {
            query.push(" AND key > ").bind(after);
        }
        query.push(" ORDER BY key LIMIT ").bind(i64::from(limit));
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(&self.reader)
            .await
            .map_err(unavailable("listing node values"))?
            .iter()
            .map(|row| Ok((Self::column(row, 0)?, Self::column(row, 1)?)))
            .collect()
    }

    pub(crate) async fn delete_value(&self, key: &str) -> Result<()> {
        sqlx::query::<DB>(DELETE_VALUE)
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(unavailable("deleting a node value"))?;
        Ok(())
    }
}

/// The least string above every string starting with `prefix`, in code point (UTF-8 byte)
/// order; `None` when there is none (an empty prefix, or one of only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// ` AND kind IN (...)` for a non-empty list of kinds.
fn push_kinds<'a, DB>(query: &mut Statement<'a, DB>, kinds: &[u8])
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if kinds.is_empty() {
        return;
    }
    query.push(" AND kind IN (");
    let mut list = query.list();
    for kind in kinds {
        list.bind(i64::from(*kind));
    }
    query.push(")");
}

/// Implements [`Storage`](super::Storage) for a backend type with a `store: SqlStore<_>` field
/// and a `health: HealthMonitor` field by handing every call to the store, through the
/// health's guard (calls fail at once while the database is down).
macro_rules! storage_via_sql_store {
    ($backend_type:ty, $backend:expr) => {
        #[async_trait::async_trait]
        impl $crate::storage::Storage for $backend_type {
            fn backend(&self) -> $crate::storage::Backend {
                $backend
            }

            fn health(&self) -> $crate::storage::StorageHealth {
                self.health.health().clone()
            }

            async fn ping(&self) -> $crate::storage::Result<()> {
                self.health.health().guard(self.store.ping()).await
            }

            async fn append(
                &self,
                log: &$crate::log::LogId,
                entries: &[$crate::storage::NewEntry],
            ) -> $crate::storage::Result<Vec<$crate::storage::Appended>> {
                self.health
                    .health()
                    .guard(self.store.append(log, entries))
                    .await
            }

            async fn entry(
                &self,
                log: &$crate::log::LogId,
                id: &$crate::log::EntryId,
            ) -> $crate::storage::Result<Option<$crate::storage::StoredEntry>> {
                self.health.health().guard(self.store.entry(log, id)).await
            }

            async fn order_keys(
                &self,
                log: &$crate::log::LogId,
                ids: &[$crate::log::EntryId],
            ) -> $crate::storage::Result<Vec<$crate::log::OrderKey>> {
                self.health
                    .health()
                    .guard(self.store.order_keys(log, ids))
                    .await
            }

            async fn heads(
                &self,
                log: &$crate::log::LogId,
            ) -> $crate::storage::Result<Vec<$crate::log::OrderKey>> {
                self.health.health().guard(self.store.heads(log)).await
            }

            async fn range(
                &self,
                log: &$crate::log::LogId,
                range: &$crate::storage::OrderRange,
            ) -> $crate::storage::Result<Vec<$crate::storage::StoredEntry>> {
                self.health
                    .health()
                    .guard(self.store.range(log, range))
                    .await
            }

            async fn since_cursor(
                &self,
                log: &$crate::log::LogId,
                after: u64,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::storage::StoredEntry>> {
                self.health
                    .health()
                    .guard(self.store.since_cursor(log, after, limit))
                    .await
            }

            async fn last_cursor(&self, log: &$crate::log::LogId) -> $crate::storage::Result<u64> {
                self.health
                    .health()
                    .guard(self.store.last_cursor(log))
                    .await
            }

            async fn count(&self, log: &$crate::log::LogId) -> $crate::storage::Result<u64> {
                self.health.health().guard(self.store.count(log)).await
            }

            async fn commit(
                &self,
                log: &$crate::log::LogId,
                commit: $crate::storage::Commit<'_>,
            ) -> $crate::storage::Result<$crate::storage::Committed> {
                self.health
                    .health()
                    .guard(self.store.commit(log, commit))
                    .await
            }

            async fn event(
                &self,
                log: &$crate::log::LogId,
                entry_id: &$crate::log::EntryId,
            ) -> $crate::storage::Result<Option<$crate::storage::StoredEvent>> {
                self.health
                    .health()
                    .guard(self.store.event(log, entry_id))
                    .await
            }

            async fn events_range(
                &self,
                log: &$crate::log::LogId,
                kinds: &[u8],
                range: &$crate::storage::OrderRange,
                max_cursor: u64,
            ) -> $crate::storage::Result<Vec<$crate::storage::StoredEvent>> {
                self.health
                    .health()
                    .guard(self.store.events_range(log, kinds, range, max_cursor))
                    .await
            }

            async fn events_since_cursor(
                &self,
                log: &$crate::log::LogId,
                kinds: &[u8],
                after: u64,
                limit: u32,
            ) -> $crate::storage::Result<Vec<$crate::storage::StoredEvent>> {
                self.health
                    .health()
                    .guard(self.store.events_since_cursor(log, kinds, after, limit))
                    .await
            }

            async fn last_event_cursor(
                &self,
                log: &$crate::log::LogId,
            ) -> $crate::storage::Result<u64> {
                self.health
                    .health()
                    .guard(self.store.last_event_cursor(log))
                    .await
            }

            async fn logs(&self) -> $crate::storage::Result<Vec<$crate::log::LogId>> {
                self.health.health().guard(self.store.logs()).await
            }

            async fn values_with_prefix(
                &self,
                prefix: &str,
                after: Option<&str>,
                limit: u32,
            ) -> $crate::storage::Result<Vec<(String, Vec<u8>)>> {
                self.health
                    .health()
                    .guard(self.store.values_with_prefix(prefix, after, limit))
                    .await
            }

            async fn delete_value(&self, key: &str) -> $crate::storage::Result<()> {
                self.health
                    .health()
                    .guard(self.store.delete_value(key))
                    .await
            }

            async fn get_value(&self, key: &str) -> $crate::storage::Result<Option<Vec<u8>>> {
                self.health.health().guard(self.store.get_value(key)).await
            }

            async fn put_value(&self, key: &str, value: &[u8]) -> $crate::storage::Result<()> {
                self.health
                    .health()
                    .guard(self.store.put_value(key, value))
                    .await
            }

            fn rendezvous(&self) -> &dyn $crate::storage::rendezvous::RendezvousStore {
                self
            }
        }

        /// The rendezvous store of the same database, through the same health guard.
        #[async_trait::async_trait]
        impl $crate::storage::rendezvous::RendezvousStore for $backend_type {
            async fn register_batch(
                &self,
                registrations: &[$crate::storage::rendezvous::NewRegistration],
                caps: $crate::storage::rendezvous::RegistrationCaps,
                now: u64,
            ) -> $crate::storage::Result<Vec<$crate::storage::rendezvous::RegisterOutcome>> {
                let store: &dyn $crate::storage::rendezvous::RendezvousStore = &self.store;
                let call = store.register_batch(registrations, caps, now);
                self.health.health().guard(call).await
            }

            async fn unregister(
                &self,
                namespace: &str,
                peer_id: &[u8],
            ) -> $crate::storage::Result<bool> {
                let store: &dyn $crate::storage::rendezvous::RendezvousStore = &self.store;
                let call = store.unregister(namespace, peer_id);
                self.health.health().guard(call).await
            }

            async fn discover(
                &self,
                namespace: Option<&str>,
                after_id: u64,
                limit: u32,
                now: u64,
            ) -> $crate::storage::Result<Vec<$crate::storage::rendezvous::StoredRegistration>> {
                let store: &dyn $crate::storage::rendezvous::RendezvousStore = &self.store;
                let call = store.discover(namespace, after_id, limit, now);
                self.health.health().guard(call).await
            }

            async fn purge_expired(&self, now: u64) -> $crate::storage::Result<u64> {
                let store: &dyn $crate::storage::rendezvous::RendezvousStore = &self.store;
                self.health.health().guard(store.purge_expired(now)).await
            }

            async fn count(&self, now: u64) -> $crate::storage::Result<u64> {
                let store: &dyn $crate::storage::rendezvous::RendezvousStore = &self.store;
                self.health.health().guard(store.count(now)).await
            }
        }
    };
}
pub(crate) use storage_via_sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EntryId {
        EntryId([n; ENTRY_ID_LEN])
    }

    fn entry(n: u8, parents: &[u8]) -> NewEntry {
        NewEntry {
            id: id(n),
            lamport: u64::from(n),
            parents: parents.iter().map(|p| id(*p)).collect(),
            bytes: vec![n],
        }
    }

    #[test]
    fn prefix_end_bounds_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end("group/").as_deref(), Some("group0"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        let end = prefix_end("g/é").unwrap();
        for key in ["g/é", "g/é/x", "g/é\u{10FFFF}\u{10FFFF}"] {
            assert!(key < end.as_str(), "{key}");
        }
        assert!("g/ê" >= end.as_str());
    }

    #[test]
    fn lamport_mapping_preserves_order_over_u64() {
        let clocks = [
            0,
            1,
            2,
            1 << 32,
            i64::MAX as u64,
            1 << 63,
            u64::MAX - 1,
            u64::MAX,
        ];
        for pair in clocks.windows(2) {
            assert!(
                lamport_to_sql(pair[0]) < lamport_to_sql(pair[1]),
                "{pair:?}"
            );
        }
        for clock in clocks {
            assert_eq!(lamport_from_sql(lamport_to_sql(clock)), clock);
        }
        assert_eq!(lamport_to_sql(0), i64::MIN);
        assert_eq!(lamport_to_sql(u64::MAX), i64::MAX);
    }

    #[test]
    fn parents_blob_round_trips_and_rejects_ragged_blobs() {
        let parents = vec![id(3), id(1), id(2)];
        assert_eq!(
            parents_from_blob(&parents_blob(&parents)).ok(),
            Some(parents)
        );
        assert_eq!(parents_from_blob(&[]).ok(), Some(vec![]));
        assert!(matches!(
            parents_from_blob(&[0; 33]),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn order_range_binds_lower_then_upper_then_limit() {
        let key = OrderKey {
            lamport: 1,
            id: id(1),
        };
        let range = OrderRange {
            lower: Bound::Excluded(key),
            upper: Bound::Included(key),
            direction: Direction::Backward,
            limit: 5,
        };
        let mut query = Statement::<sqlx::Postgres>::new("WHERE log_key = 1");
        push_order_range(&mut query, &range);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(
            sql,
            "WHERE log_key = 1 AND (lamport, entry_id) > ($1, $2) AND (lamport, entry_id) <= ($3, $4) \
             ORDER BY lamport DESC, entry_id DESC LIMIT $5"
        );
        let all = OrderRange::all(1);
        let mut query = Statement::<sqlx::Sqlite>::new("WHERE log_key = 1");
        push_order_range(&mut query, &all);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(
            sql,
            "WHERE log_key = 1 ORDER BY lamport ASC, entry_id ASC LIMIT ?"
        );
    }

    #[test]
    fn plan_gives_consecutive_cursors_and_reports_duplicates() {
        let batch = [entry(1, &[]), entry(2, &[1]), entry(1, &[]), entry(3, &[2])];
        let plan = plan_append(&batch, &HashMap::new(), 7).unwrap();
        assert_eq!(
            plan.outcomes,
            vec![
                Appended::New { cursor: 8 },
                Appended::New { cursor: 9 },
                Appended::Existing { cursor: 8 },
                Appended::New { cursor: 10 },
            ]
        );
        assert_eq!(plan.last_cursor, 10);
        assert_eq!(
            plan.new_heads.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![id(3)]
        );
        assert!(
            plan.former_heads.is_empty(),
            "parents inside the batch were never heads"
        );
    }

    #[test]
    fn plan_rejects_parents_missing_or_later_in_the_batch() {
        let stored = HashMap::from([(id(1), 1)]);
        let later = [entry(3, &[2]), entry(2, &[1])];
        assert!(matches!(
            plan_append(&later, &stored, 1),
            Err(StorageError::MissingParent { entry, parent }) if entry == id(3) && parent == id(2)
        ));
        let own = [entry(4, &[4])];
        assert!(matches!(
            plan_append(&own, &stored, 1),
            Err(StorageError::MissingParent { .. })
        ));
    }

    #[test]
    fn plan_retires_stored_parents_as_heads() {
        let stored = HashMap::from([(id(1), 1), (id(2), 2)]);
        let batch = [entry(2, &[1]), entry(3, &[1, 2]), entry(4, &[2])];
        let plan = plan_append(&batch, &stored, 2).unwrap();
        assert_eq!(plan.outcomes[0], Appended::Existing { cursor: 2 });
        let mut former = plan.former_heads.clone();
        former.sort();
        assert_eq!(former, vec![id(1), id(2)]);
        let heads: Vec<_> = plan.new_heads.iter().map(|e| e.id).collect();
        assert_eq!(heads, vec![id(3), id(4)]);
    }

    #[test]
    fn ids_to_look_up_lists_each_id_once() {
        let batch = [entry(1, &[9]), entry(2, &[1, 9]), entry(1, &[9])];
        assert_eq!(ids_to_look_up(&batch), vec![id(1), id(9), id(2)]);
    }
}
