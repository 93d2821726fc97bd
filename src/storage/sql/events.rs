//! Decoded events: adding them inside a commit (each entry has at most one, with the log's
//! next event cursor), and reading them by entry, in total order or by cursor.

use std::{
    collections::{HashMap, HashSet},
    marker::PhantomData,
};

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::{
        column, cursor_to_sql, entry_id, lamport_from_sql, lamport_to_sql, non_negative,
        parents_blob, parents_from_blob, unavailable, MAX_CURSOR,
    },
    entries::{LogState, LOG_IS_PARAM_1},
    statement::{ids_in_log, push_kinds, push_log, push_order_range, Column, LogRef, Statement},
    writes::Writes,
    Dialect, IDS_PER_STATEMENT,
};
use crate::{
    log::{EntryId, LogId},
    storage::{NewEvent, OrderRange, Result, StorageError, StoredEvent},
};

/// Columns read to build a [`StoredEvent`], in the order [`Events::decode_event`] expects.
const EVENT_COLUMNS: &str = "entry_id, lamport, parents, kind, body, cursor";

/// The events a commit adds ([`Events::plan_in`]): each with its cursor and its parents as
/// stored.
#[derive(Default)]
pub(super) struct EventRows<'a> {
    new: Vec<(&'a NewEvent, u64, Vec<u8>)>,
}

/// Which of `events` are new in the log in `state`, given the event cursors of those already
/// stored (`known`): the cursor of each event, the log's last event cursor after them and the
/// rows to write ([`Events::queue_rows`]). Pure: the reads are the caller's.
pub(super) fn plan_known<'a>(
    state: &LogState,
    events: &'a [NewEvent],
    mut known: HashMap<EntryId, u64>,
) -> Result<(Vec<u64>, u64, EventRows<'a>)> {
    let mut last = state.last_event_cursor;
    let mut cursors = Vec::with_capacity(events.len());
    let mut new = Vec::new();
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
    Ok((cursors, last, EventRows { new }))
}

/// `SELECT` [`EVENT_COLUMNS`] `FROM events`, and when `entries_of` names kinds, after them the
/// bytes of the entry of each event of those kinds (NULL for the others): one index lookup
/// per such row in the same statement, instead of a second query by id and a second set of
/// rows.
fn push_select_page<'a, DB>(entries_of: &[u8]) -> Statement<'a, DB>
where
    DB: Dialect,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut query = Statement::<DB>::new(&format!("SELECT {EVENT_COLUMNS}"));
    if !entries_of.is_empty() {
        query.push(", CASE WHEN kind IN (");
        let mut list = query.list();
        for kind in entries_of {
            list.bind(i64::from(*kind));
        }
        query.push(
            ") THEN (SELECT en.bytes FROM entries en \
             WHERE en.log_key = events.log_key AND en.entry_id = events.entry_id) END",
        );
    }
    query.push(" FROM events");
    query
}

/// The SQL of decoded events, for one engine.
pub(super) struct Events<DB>(PhantomData<DB>);

impl<DB> Events<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A row of [`EVENT_COLUMNS`], and the entry's bytes after them when `with_entry`
    /// ([`push_select_page`]).
    fn decode_event_with(row: &DB::Row, with_entry: bool) -> Result<StoredEvent> {
        let mut event = Self::decode_event(row)?;
        if with_entry {
            event.entry = column::<DB, Option<Vec<u8>>>(row, 6)?;
        }
        Ok(event)
    }

    /// A row of [`EVENT_COLUMNS`].
    fn decode_event(row: &DB::Row) -> Result<StoredEvent> {
        let cursor = non_negative(column::<DB, _>(row, 5)?, "event cursor")?;
        let kind: i64 = column::<DB, _>(row, 3)?;
        Ok(StoredEvent {
            entry_id: entry_id(&column::<DB, Vec<u8>>(row, 0)?)?,
            lamport: lamport_from_sql(column::<DB, _>(row, 1)?),
            parents: parents_from_blob(&column::<DB, Vec<u8>>(row, 2)?)?,
            kind: u8::try_from(kind)
                .map_err(|_| StorageError::Corrupt(format!("event kind {kind}")))?,
            body: column::<DB, _>(row, 4)?,
            cursor,
            entry: None,
        })
    }

    /// Decides which of `events` are new and their cursors, inside a transaction that holds
    /// the log's lock; returns the cursor of each event, the log's last event cursor after
    /// them (left to the caller to write) and the rows to write ([`Self::queue_rows`]). An
    /// entry has at most one event: only events of entries stored before this transaction
    /// (`new_ids` are the ones it stores) are looked up.
    pub(super) async fn plan_in<'a>(
        tx: &mut DB::Connection,
        locked: &LogState,
        new_ids: &HashSet<EntryId>,
        events: &'a [NewEvent],
    ) -> Result<(Vec<u64>, u64, EventRows<'a>)> {
        if events.is_empty() {
            return Ok((Vec::new(), locked.last_event_cursor, EventRows::default()));
        }
        let log_key = locked.log_key;
        let older: Vec<&NewEvent> = events
            .iter()
            .filter(|e| !new_ids.contains(&e.entry_id))
            .collect();
        let known = Self::stored_cursors(tx, log_key, &older).await?;
        let without_event: Vec<EntryId> = older
            .iter()
            .map(|e| e.entry_id)
            .filter(|id| !known.contains_key(id))
            .collect();
        Self::check_entries_stored(tx, log_key, &without_event).await?;
        plan_known(locked, events, known)
    }

    /// Queues the inserts of the new events ([`Self::plan_in`], [`Dialect::push_rows`]).
    pub(super) fn queue_rows<'w>(
        log_key: i64,
        rows: &'w EventRows<'_>,
        writes: &mut Writes<'w, DB>,
    ) {
        for rows in rows.new.chunks(DB::ROWS_PER_INSERT) {
            let only_if = writes.only_if();
            let insert = writes.statement(
                "INSERT INTO events (log_key, cursor, entry_id, lamport, parents, kind, body) ",
            );
            DB::push_rows(
                insert,
                vec![
                    Column::Int(vec![log_key; rows.len()]),
                    Column::Int(rows.iter().map(|(_, c, _)| cursor_to_sql(*c)).collect()),
                    Column::Blob(
                        rows.iter()
                            .map(|(e, _, _)| &e.entry_id.as_bytes()[..])
                            .collect(),
                    ),
                    Column::Int(
                        rows.iter()
                            .map(|(e, _, _)| lamport_to_sql(e.lamport))
                            .collect(),
                    ),
                    Column::Blob(rows.iter().map(|(_, _, b)| &b[..]).collect()),
                    Column::Int(rows.iter().map(|(e, _, _)| i64::from(e.kind)).collect()),
                    Column::Blob(rows.iter().map(|(e, _, _)| e.stored_body()).collect()),
                ],
            );
            insert.push(only_if.as_where());
        }
    }

    /// Fails unless every entry of `ids` is stored in the log. Events name their entries; the
    /// check is here rather than a foreign key, whose per-row `FOR KEY SHARE` lock made
    /// PostgreSQL's event inserts cost about a millisecond a row (docs/decisions.md).
    async fn check_entries_stored(
        tx: &mut DB::Connection,
        log_key: i64,
        ids: &[EntryId],
    ) -> Result<()> {
        for ids in ids.chunks(IDS_PER_STATEMENT) {
            let (sql, args) =
                ids_in_log::<DB>("SELECT entry_id FROM entries", LogRef::Key(log_key), ids)
                    .finish()?;
            let stored: HashSet<EntryId> = sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up the entries of events"))?
                .iter()
                .map(|row| entry_id(&column::<DB, Vec<u8>>(row, 0)?))
                .collect::<Result<_>>()?;
            if let Some(missing) = ids.iter().find(|id| !stored.contains(id)) {
                return Err(StorageError::EventWithoutEntry(*missing));
            }
        }
        Ok(())
    }

    /// The event cursors of those of `events` that are stored, found through their entries'
    /// clocks (`events_by_order` starts with `(log_key, lamport)`): events are not indexed by
    /// entry id alone (migrations `0006`/`0007`, "events by order").
    async fn stored_cursors(
        tx: &mut DB::Connection,
        log_key: i64,
        events: &[&NewEvent],
    ) -> Result<HashMap<EntryId, u64>> {
        let mut known = HashMap::new();
        for events in events.chunks(IDS_PER_STATEMENT) {
            let wanted: HashSet<EntryId> = events.iter().map(|e| e.entry_id).collect();
            let mut lamports: Vec<i64> = events.iter().map(|e| lamport_to_sql(e.lamport)).collect();
            lamports.sort_unstable();
            lamports.dedup();
            let mut query = Statement::<DB>::new("SELECT entry_id, cursor FROM events WHERE ");
            push_log(&mut query, LogRef::Key(log_key));
            query.push(" AND lamport IN (");
            let mut list = query.list();
            for lamport in lamports {
                list.bind(lamport);
            }
            query.push(")");
            let (sql, args) = query.finish()?;
            for row in sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up events"))?
            {
                let id = entry_id(&column::<DB, Vec<u8>>(&row, 0)?)?;
                if wanted.contains(&id) {
                    known.insert(id, non_negative(column::<DB, _>(&row, 1)?, "event cursor")?);
                }
            }
        }
        Ok(known)
    }

    /// As [`crate::storage::Storage::event`].
    pub(super) async fn event(
        reader: &Pool<DB>,
        log: &LogId,
        id: &EntryId,
    ) -> Result<Option<StoredEvent>> {
        // By the entry's clock: events are indexed in the log's order, not by entry id.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {LOG_IS_PARAM_1} AND lamport = \
             (SELECT lamport FROM entries WHERE {LOG_IS_PARAM_1} AND entry_id = $2) \
             AND entry_id = $2"
        );
        let row = sqlx::query::<DB>(&sql)
            .bind(&log.to_bytes()[..])
            .bind(&id.as_bytes()[..])
            .fetch_optional(reader)
            .await
            .map_err(unavailable("reading an event"))?;
        row.as_ref().map(Self::decode_event).transpose()
    }

    /// As [`crate::storage::Storage::events_range`].
    pub(super) async fn range(
        reader: &Pool<DB>,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        range: &OrderRange,
        max_cursor: u64,
    ) -> Result<Vec<StoredEvent>> {
        if range.limit == 0 {
            return Ok(Vec::new());
        }
        let log = log.to_bytes();
        let mut query = push_select_page::<DB>(entries_of);
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
            .fetch_all(reader)
            .await
            .map_err(unavailable("reading events"))?
            .iter()
            .map(|row| Self::decode_event_with(row, !entries_of.is_empty()))
            .collect()
    }

    /// As [`crate::storage::Storage::events_since_cursor`].
    pub(super) async fn since_cursor(
        reader: &Pool<DB>,
        log: &LogId,
        kinds: &[u8],
        entries_of: &[u8],
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let log = log.to_bytes();
        let mut query = push_select_page::<DB>(entries_of);
        query.push(" WHERE ");
        push_log(&mut query, LogRef::Id(&log));
        query.push(" AND cursor > ").bind(cursor_to_sql(after));
        push_kinds(&mut query, kinds);
        query.push(" ORDER BY cursor LIMIT ").bind(i64::from(limit));
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(reader)
            .await
            .map_err(unavailable("reading events by cursor"))?
            .iter()
            .map(|row| Self::decode_event_with(row, !entries_of.is_empty()))
            .collect()
    }
}
