//! Entries and heads: appends (inside a transaction holding the log's lock), reads of entries
//! and heads, the log's counters.

use std::{
    collections::{HashMap, HashSet},
    marker::PhantomData,
};

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::{
        column, cursor_to_sql, entry_id, lamport_from_sql, lamport_to_sql, non_negative,
        parents_blob, parents_from_blob, unavailable,
    },
    plan::{ids_to_look_up, plan_append, NewRow},
    statement::{ids_in_log, push_log, push_order_range, Column, LogRef, Statement},
    writes::{self, Writes},
    Dialect, IDS_PER_STATEMENT, LOCK_LOG_ROW,
};
use crate::{
    log::{EntryId, LogId, OrderKey},
    storage::{Appended, NewEntry, OrderRange, Result, StorageError, StoredEntry},
};

/// Columns read to build a [`StoredEntry`], in the order [`Entries::decode_entry`] expects.
const ENTRY_COLUMNS: &str = "entry_id, lamport, parents, bytes, cursor";

/// Selects the rows of the log whose id is `$1`.
pub(super) const LOG_IS_PARAM_1: &str = "log_key = (SELECT log_key FROM logs WHERE log_id = $1)";

/// The first statement of every write on a log: creates the log's row on first use and locks
/// it until commit. On PostgreSQL the row lock serialises appends to one log, so cursors are
/// committed in increasing order; on SQLite it is a write, so the transaction holds the write
/// lock from its first statement and never has to upgrade a read snapshot (which
/// `busy_timeout` would not retry). It also returns the log's highest stored Lamport clock
/// (NULL before the first entry), which spares appends most lookups (see
/// [`ids_to_look_up`]); it is a column of the locked row rather than a read of `entries`
/// because PostgreSQL reads other tables in the statement's snapshot, taken before a
/// concurrent append it waited for had committed. Last, the log's heads (up to 64,
/// hex-encoded end to end, [`Dialect::HEADS_AS_HEX`]): a batch built on
/// them needs no lookup of its parents. On PostgreSQL that read takes a key-share lock on each
/// head row, so a head another transaction deleted meanwhile is left out rather than read
/// from the stale snapshot.
fn lock_log_sql<DB: Dialect>() -> String {
    format!(
        "{LOCK_LOG_ROW} RETURNING log_key, last_cursor, last_event_cursor, max_lamport, {}",
        DB::HEADS_AS_HEX
    )
}

/// A log's key, counters and (some of its) heads: read under its lock by a write transaction
/// ([`lock_log_sql`]), or known from the last commit this storage made on it
/// ([`super::known_logs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogState {
    pub(super) log_key: i64,
    pub(super) last_cursor: u64,
    pub(super) last_event_cursor: u64,
    /// The highest Lamport clock the log has stored (an upper bound once entries were
    /// deleted); `None` before its first entry.
    pub(super) max_lamport: Option<u64>,
    /// Heads of the log (all of them, or some of them): entries stored.
    pub(super) heads: HashSet<EntryId>,
}

impl LogState {
    /// The log's state once a planned append (and events up to `last_event_cursor`) is
    /// committed on this one. Heads stay a subset of the log's heads: the ones the append
    /// retires go, its own come, at most [`MAX_KNOWN_HEADS`] are kept.
    pub(super) fn after(
        &self,
        appended: &AppendedIn,
        rows: &EntryRows<'_>,
        last_event_cursor: u64,
    ) -> Self {
        let mut heads = self.heads.clone();
        for former in &rows.former_heads {
            heads.remove(former);
        }
        heads.extend(rows.new_heads.iter().map(|entry| entry.id));
        if heads.len() > MAX_KNOWN_HEADS {
            heads = heads.into_iter().take(MAX_KNOWN_HEADS).collect();
        }
        Self {
            log_key: self.log_key,
            last_cursor: appended.last_cursor,
            last_event_cursor,
            max_lamport: appended.max_lamport,
            heads,
        }
    }
}

/// Most heads a [`LogState`] keeps (as many as the lock reads).
const MAX_KNOWN_HEADS: usize = 64;

/// Entry ids concatenated in hex (either case), as [`Dialect::HEADS_AS_HEX`] returns them.
fn heads_from_hex(hex_ids: &str) -> Result<HashSet<EntryId>> {
    let bytes = hex::decode(hex_ids)
        .map_err(|e| StorageError::Corrupt(format!("heads of a log not in hex: {e}")))?;
    bytes
        .chunks(crate::log::ENTRY_ID_LEN)
        .map(entry_id)
        .collect()
}

/// What an append inside a transaction did.
pub(super) struct AppendedIn {
    /// One outcome per entry given, in order.
    pub(super) outcomes: Vec<Appended>,
    /// Entries newly stored.
    pub(super) added: usize,
    /// The log's last cursor after them.
    pub(super) last_cursor: u64,
    /// Ids of the entries newly stored (no event can exist for them yet).
    pub(super) new_ids: HashSet<EntryId>,
    /// The log's highest stored clock after them.
    pub(super) max_lamport: Option<u64>,
}

/// What a planned append writes ([`Entries::plan_in`], [`Entries::queue_rows`]).
#[derive(Default)]
pub(super) struct EntryRows<'a> {
    /// Entries to store, with their cursors.
    new: Vec<NewRow<'a>>,
    /// Their parents, as stored ([`parents_blob`]).
    parents: Vec<Vec<u8>>,
    /// Stored entries that stop being heads.
    former_heads: Vec<EntryId>,
    /// New entries that become heads.
    new_heads: Vec<&'a NewEntry>,
}

/// What appending `entries` to the log in `state` writes, given the cursors of those of the
/// batch's ids and parent ids that are stored (all that [`ids_to_look_up`] names): pure, the
/// reads are the caller's.
pub(super) fn plan_known<'a>(
    state: &LogState,
    entries: &'a [NewEntry],
    stored: &HashMap<EntryId, u64>,
) -> Result<(AppendedIn, EntryRows<'a>)> {
    let plan = plan_append(entries, stored, &state.heads, state.last_cursor)?;
    let new_max = plan.new.iter().map(|row| row.entry.lamport).max();
    let appended = AppendedIn {
        added: plan.new.len(),
        max_lamport: state.max_lamport.max(new_max),
        last_cursor: plan.last_cursor,
        new_ids: plan.new.iter().map(|row| row.entry.id).collect(),
        outcomes: plan.outcomes,
    };
    let rows = EntryRows {
        parents: plan
            .new
            .iter()
            .map(|row| parents_blob(&row.entry.parents))
            .collect(),
        new: plan.new,
        former_heads: plan.former_heads,
        new_heads: plan.new_heads,
    };
    Ok((appended, rows))
}

/// The SQL of entries and heads, for one engine.
pub(super) struct Entries<DB>(PhantomData<DB>);

impl<DB> Entries<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A row of [`ENTRY_COLUMNS`].
    fn decode_entry(row: &DB::Row) -> Result<StoredEntry> {
        let cursor = non_negative(column::<DB, _>(row, 4)?, "cursor")?;
        if cursor == 0 {
            return Err(StorageError::Corrupt("entry with cursor 0".into()));
        }
        Ok(StoredEntry {
            id: entry_id(&column::<DB, Vec<u8>>(row, 0)?)?,
            lamport: lamport_from_sql(column::<DB, _>(row, 1)?),
            parents: parents_from_blob(&column::<DB, Vec<u8>>(row, 2)?)?,
            bytes: column::<DB, _>(row, 3)?,
            cursor,
        })
    }

    /// A row of `lamport, entry_id`.
    fn decode_order_key(row: &DB::Row) -> Result<OrderKey> {
        Ok(OrderKey {
            lamport: lamport_from_sql(column::<DB, _>(row, 0)?),
            id: entry_id(&column::<DB, Vec<u8>>(row, 1)?)?,
        })
    }

    /// As [`crate::storage::Storage::append`].
    pub(super) async fn append(
        writer: &Pool<DB>,
        log: &LogId,
        entries: &[NewEntry],
    ) -> Result<Vec<Appended>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting an append"))?;
        let locked = Self::lock_log(&mut tx, log).await?;
        let (appended, rows) = Self::plan_in(&mut tx, &locked, entries).await?;
        if appended.added > 0 {
            let mut writes = Writes::new();
            Self::queue_rows(locked.log_key, &rows, &mut writes);
            Self::queue_advance(&locked, &appended, locked.last_event_cursor, &mut writes);
            let (texts, arguments) = writes.finish()?;
            writes::run(&mut tx, &texts, arguments, "writing an append").await?;
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
    /// write transaction on a log (see [`lock_log_sql`]). Returns the log's key and counters.
    pub(super) async fn lock_log(tx: &mut DB::Connection, log: &LogId) -> Result<LogState> {
        let sql = lock_log_sql::<DB>();
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable("locking the log"))?;
        Ok(LogState {
            log_key: column::<DB, _>(&row, 0)?,
            last_cursor: non_negative(column::<DB, _>(&row, 1)?, "last cursor")?,
            last_event_cursor: non_negative(column::<DB, _>(&row, 2)?, "last event cursor")?,
            max_lamport: column::<DB, Option<i64>>(&row, 3)?.map(lamport_from_sql),
            heads: heads_from_hex(&column::<DB, Option<String>>(&row, 4)?.unwrap_or_default())?,
        })
    }

    /// Queues the log's counters after an append (and events): `UPDATE logs` for the log's
    /// row, returned so that [`Self::queue_guard`] can add its conditions.
    pub(super) fn queue_advance<'s, 'w>(
        state: &LogState,
        appended: &AppendedIn,
        last_event_cursor: u64,
        writes: &'s mut Writes<'w, DB>,
    ) -> &'s mut Statement<'w, DB> {
        writes
            .statement("UPDATE logs SET last_cursor = ")
            .bind(cursor_to_sql(appended.last_cursor))
            .push(", entry_count = entry_count + ")
            .bind(i64::try_from(appended.added).unwrap_or(i64::MAX))
            .push(", last_event_cursor = ")
            .bind(cursor_to_sql(last_event_cursor))
            .push(", max_lamport = ")
            // Clocks start at 1: 0 stands for "none yet" as well as NULL does.
            .bind(lamport_to_sql(appended.max_lamport.unwrap_or(0)))
            .push(" WHERE log_key = ")
            .bind(state.log_key)
    }

    /// Queues the guard of a commit made without the lock ([`Writes::guarded`]): the log's
    /// counters after the append, written only if they are still those of `known` (else the
    /// statement changes nothing and the commit takes the lock).
    pub(super) fn queue_guard(
        known: &LogState,
        appended: &AppendedIn,
        last_event_cursor: u64,
        writes: &mut Writes<'_, DB>,
    ) {
        Self::queue_advance(known, appended, last_event_cursor, writes)
            .push(" AND last_cursor = ")
            .bind(cursor_to_sql(known.last_cursor))
            .push(" AND last_event_cursor = ")
            .bind(cursor_to_sql(known.last_event_cursor))
            .push(" RETURNING log_key");
    }

    /// Decides what appending `entries` writes, inside the transaction on `tx`, which holds
    /// the lock of the log ([`Self::lock_log`]): reads what it must, writes nothing (see
    /// [`Self::queue_rows`]; the log's counters are left to [`Self::queue_advance`]).
    pub(super) async fn plan_in<'a>(
        tx: &mut DB::Connection,
        locked: &LogState,
        entries: &'a [NewEntry],
    ) -> Result<(AppendedIn, EntryRows<'a>)> {
        let stored = if entries.is_empty() {
            HashMap::new()
        } else {
            Self::stored_cursors(tx, locked, entries).await?
        };
        plan_known(locked, entries, &stored)
    }

    /// The cursors of those of the batch's ids and parent ids that are stored (only those
    /// that may be stored are looked up, see [`ids_to_look_up`]).
    async fn stored_cursors(
        tx: &mut DB::Connection,
        locked: &LogState,
        entries: &[NewEntry],
    ) -> Result<HashMap<EntryId, u64>> {
        let log_key = locked.log_key;
        let mut stored = HashMap::new();
        for ids in
            ids_to_look_up(entries, locked.max_lamport, &locked.heads).chunks(IDS_PER_STATEMENT)
        {
            let (sql, args) = ids_in_log::<DB>(
                "SELECT entry_id, cursor FROM entries",
                LogRef::Key(log_key),
                ids,
            )
            .finish()?;
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up entries"))?;
            for row in rows {
                let id = entry_id(&column::<DB, Vec<u8>>(&row, 0)?)?;
                stored.insert(id, non_negative(column::<DB, _>(&row, 1)?, "cursor")?);
            }
        }
        Ok(stored)
    }

    /// Queues the writes of a planned append ([`Self::plan_in`]): the new entries
    /// ([`Dialect::push_rows`]), then the heads they retire and the heads they are.
    pub(super) fn queue_rows<'w>(
        log_key: i64,
        rows: &'w EntryRows<'_>,
        writes: &mut Writes<'w, DB>,
    ) {
        let chunks = rows.new.chunks(DB::ROWS_PER_INSERT);
        for (new, parents) in chunks.zip(rows.parents.chunks(DB::ROWS_PER_INSERT)) {
            let only_if = writes.only_if();
            let insert = writes.statement(
                "INSERT INTO entries (log_key, entry_id, lamport, cursor, parents, bytes) ",
            );
            DB::push_rows(
                insert,
                vec![
                    Column::Int(vec![log_key; new.len()]),
                    Column::Blob(new.iter().map(|r| &r.entry.id.as_bytes()[..]).collect()),
                    Column::Int(
                        new.iter()
                            .map(|r| lamport_to_sql(r.entry.lamport))
                            .collect(),
                    ),
                    Column::Int(new.iter().map(|r| cursor_to_sql(r.cursor)).collect()),
                    Column::Blob(parents.iter().map(Vec::as_slice).collect()),
                    Column::Blob(new.iter().map(|r| &r.entry.bytes[..]).collect()),
                ],
            );
            insert.push(only_if.as_where());
        }
        for ids in rows.former_heads.chunks(IDS_PER_STATEMENT) {
            let only_if = writes.only_if();
            let delete = writes.statement("DELETE FROM heads WHERE ");
            push_log(delete, LogRef::Key(log_key));
            delete.push(" AND ");
            DB::push_id_in(delete, "entry_id", ids);
            delete.push(only_if.as_and());
        }
        for heads in rows.new_heads.chunks(DB::ROWS_PER_INSERT) {
            let only_if = writes.only_if();
            let insert = writes.statement("INSERT INTO heads (log_key, entry_id, lamport) ");
            DB::push_rows(
                insert,
                vec![
                    Column::Int(vec![log_key; heads.len()]),
                    Column::Blob(heads.iter().map(|e| &e.id.as_bytes()[..]).collect()),
                    Column::Int(heads.iter().map(|e| lamport_to_sql(e.lamport)).collect()),
                ],
            );
            insert.push(only_if.as_where());
        }
    }

    /// As [`crate::storage::Storage::order_keys`].
    pub(super) async fn order_keys(
        reader: &Pool<DB>,
        log: &LogId,
        ids: &[EntryId],
    ) -> Result<Vec<OrderKey>> {
        let mut keys = Self::select_by_ids(
            reader,
            log,
            ids,
            "lamport, entry_id",
            "reading order keys",
            Self::decode_order_key,
        )
        .await?;
        keys.sort_unstable();
        Ok(keys)
    }

    /// As [`crate::storage::Storage::entries`].
    pub(super) async fn by_ids(
        reader: &Pool<DB>,
        log: &LogId,
        ids: &[EntryId],
    ) -> Result<Vec<StoredEntry>> {
        Self::select_by_ids(
            reader,
            log,
            ids,
            ENTRY_COLUMNS,
            "reading entries",
            Self::decode_entry,
        )
        .await
    }

    /// `columns` of the stored entries among `ids` (each looked up once, in chunks of
    /// [`IDS_PER_STATEMENT`]), each row decoded with `decode`; in no particular order.
    async fn select_by_ids<T>(
        reader: &Pool<DB>,
        log: &LogId,
        ids: &[EntryId],
        columns: &str,
        doing: &'static str,
        decode: impl Fn(&DB::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let log = log.to_bytes();
        let mut unique: Vec<EntryId> = ids.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let select = format!("SELECT {columns} FROM entries");
        let mut found = Vec::with_capacity(unique.len());
        for ids in unique.chunks(IDS_PER_STATEMENT) {
            let (sql, args) = ids_in_log::<DB>(&select, LogRef::Id(&log), ids).finish()?;
            let rows = sqlx::query_with(&sql, args)
                .fetch_all(reader)
                .await
                .map_err(unavailable(doing))?;
            for row in rows {
                found.push(decode(&row)?);
            }
        }
        Ok(found)
    }

    /// As [`crate::storage::Storage::heads`].
    pub(super) async fn heads(reader: &Pool<DB>, log: &LogId) -> Result<Vec<OrderKey>> {
        let sql = format!(
            "SELECT lamport, entry_id FROM heads WHERE {LOG_IS_PARAM_1} ORDER BY lamport, entry_id"
        );
        sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .fetch_all(reader)
            .await
            .map_err(unavailable("reading heads"))?
            .iter()
            .map(Self::decode_order_key)
            .collect()
    }

    /// As [`crate::storage::Storage::range`].
    pub(super) async fn range(
        reader: &Pool<DB>,
        log: &LogId,
        range: &OrderRange,
    ) -> Result<Vec<StoredEntry>> {
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
            .fetch_all(reader)
            .await
            .map_err(unavailable("reading a range"))?
            .iter()
            .map(Self::decode_entry)
            .collect()
    }

    /// As [`crate::storage::Storage::since_cursor`].
    pub(super) async fn since_cursor(
        reader: &Pool<DB>,
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
            .fetch_all(reader)
            .await
            .map_err(unavailable("reading entries by cursor"))?
            .iter()
            .map(Self::decode_entry)
            .collect()
    }

    /// Column `column` (a non-negative counter) of the log's row; 0 when the log is empty.
    pub(super) async fn log_counter(
        reader: &Pool<DB>,
        log: &LogId,
        column_name: &'static str,
    ) -> Result<u64> {
        let sql = format!("SELECT {column_name} FROM logs WHERE log_id = $1");
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .fetch_optional(reader)
            .await
            .map_err(unavailable("reading a log"))?;
        match row {
            Some(row) => non_negative(column::<DB, _>(&row, 0)?, column_name),
            None => Ok(0),
        }
    }

    /// As [`crate::storage::Storage::logs`].
    pub(super) async fn logs(reader: &Pool<DB>) -> Result<Vec<LogId>> {
        sqlx::query::<DB>("SELECT log_id FROM logs WHERE entry_count > 0 ORDER BY log_id")
            .fetch_all(reader)
            .await
            .map_err(unavailable("listing logs"))?
            .iter()
            .map(|row| {
                let bytes: Vec<u8> = column::<DB, _>(row, 0)?;
                LogId::from_bytes(&bytes)
                    .ok_or_else(|| StorageError::Corrupt("malformed log id".into()))
            })
            .collect()
    }
}
