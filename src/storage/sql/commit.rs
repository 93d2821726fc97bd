//! [`crate::storage::Storage::commit`]: entries, events and node values of one log in one
//! transaction, under the log's lock, or planned from what this storage's last commit on the
//! log left ([`KnownLogs`]).
//!
//! # Commits from the known state
//!
//! A commit under the lock is `BEGIN`, the lock (which reads the log's counters and heads),
//! the reads the plan needs, the writes and `COMMIT`: four round trips to a PostgreSQL server
//! or to sqlx's SQLite worker thread at least. When this storage made the last commit on a
//! log it knows what the lock would read, and a commit that needs no other read (its entries'
//! parents are known heads or its own entries, its events are those of its new entries: a
//! local send, a live batch, a sync page built on the heads) skips the lock. Its first write
//! moves the log's counters on only if they are still the known ones, and the other writes
//! apply only if that one did ([`Writes::guarded`]): on PostgreSQL all of them are one
//! statement in its own transaction (one round trip), on SQLite they run in one execution
//! between `BEGIN` and `COMMIT` (three), rolled back when the guard wrote nothing. When the
//! counters were not the known ones (another writer on the same database, a concurrent
//! commit of this storage), nothing is written and the commit is made under the lock as
//! before.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::unavailable,
    entries::{self, Entries, LogState},
    events::{self, Events},
    known_logs::{KnownLogs, Path},
    plan::ids_to_look_up,
    values::Values,
    writes::{self, Writes},
    Dialect, IDS_PER_STATEMENT, ROWS_PER_INSERT,
};
use crate::{
    log::LogId,
    storage::{Commit, Committed, Result},
};

/// As [`crate::storage::Storage::commit`].
pub(super) async fn commit<DB>(
    writer: &Pool<DB>,
    known: &KnownLogs,
    log: &LogId,
    commit: Commit<'_>,
) -> Result<Committed>
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
    if commit.entries.is_empty()
        && commit.events.is_empty()
        && commit.values.is_empty()
        && commit.deletes.is_empty()
    {
        return Ok(Committed::default());
    }
    // A commit planned from the known state needs no lock (see the module's documentation).
    let mut path = Path::Locked;
    if let Some(state) = known.get(log) {
        match from_known(writer, &state, &commit).await {
            Ok(FromKnown::Done(committed, after)) => {
                known.remember(log, after);
                known.count(Path::OneStatement);
                return Ok(committed);
            }
            Ok(FromKnown::NeedsReads) => {}
            Ok(FromKnown::Missed) => {
                path = Path::Missed;
                known.forget(log);
            }
            Err(err) => {
                known.forget(log);
                return Err(err);
            }
        }
    }
    let done = under_lock(writer, log, commit).await;
    known.count(path);
    match done {
        Ok((committed, after)) => {
            known.remember(log, after);
            Ok(committed)
        }
        Err(err) => {
            known.forget(log);
            Err(err)
        }
    }
}

/// Whether a value is both put and deleted: its writes must then run in order, whereas every
/// other write of a commit touches its own rows.
fn puts_and_deletes_overlap(commit: &Commit<'_>) -> bool {
    commit
        .deletes
        .iter()
        .any(|key| commit.values.iter().any(|(put, _)| put == key))
}

/// What a commit planned from a known state did ([`from_known`]).
enum FromKnown {
    /// Committed: what it did, and the log's state after it.
    Done(Committed, LogState),
    /// Nothing written: the commit needs a read first (an entry that may be stored, a parent
    /// not among the known heads, an event of an older entry).
    NeedsReads,
    /// Nothing written: the log had moved on from the known state.
    Missed,
}

/// The commit planned from `state`, its writes guarded ([`Writes::guarded`]).
async fn from_known<DB>(
    writer: &Pool<DB>,
    state: &LogState,
    commit: &Commit<'_>,
) -> Result<FromKnown>
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
    let needs_reads = !ids_to_look_up(commit.entries, state.max_lamport, &state.heads).is_empty();
    // Values stay within one statement's bind parameters (two per value, one per key).
    let too_many_values =
        commit.values.len() > ROWS_PER_INSERT || commit.deletes.len() > IDS_PER_STATEMENT;
    if needs_reads || too_many_values || puts_and_deletes_overlap(commit) {
        return Ok(FromKnown::NeedsReads);
    }
    let (appended, entry_rows) = entries::plan_known(state, commit.entries, &HashMap::new())?;
    // Events of entries stored before would need a lookup of their events.
    if commit
        .events
        .iter()
        .any(|event| !appended.new_ids.contains(&event.entry_id))
    {
        return Ok(FromKnown::NeedsReads);
    }
    let (event_cursors, last_event_cursor, event_rows) =
        events::plan_known(state, commit.events, HashMap::new())?;
    let mut writes = Writes::guarded();
    Entries::<DB>::queue_guard(state, &appended, last_event_cursor, &mut writes);
    Entries::<DB>::queue_rows(state.log_key, &entry_rows, &mut writes);
    Events::<DB>::queue_rows(state.log_key, &event_rows, &mut writes);
    Values::<DB>::queue_put(commit.values, &mut writes);
    Values::<DB>::queue_delete(commit.deletes, &mut writes);
    let (texts, arguments) = writes.finish()?;
    if !writes::run_guarded(writer, &texts, arguments, "writing a commit").await? {
        return Ok(FromKnown::Missed);
    }
    let after = state.after(&appended, &entry_rows, last_event_cursor);
    let committed = Committed {
        appended: appended.outcomes,
        event_cursors,
    };
    Ok(FromKnown::Done(committed, after))
}

/// The commit in a transaction that first locks the log's row and reads its state; what it
/// did and the log's state after it.
async fn under_lock<DB>(
    writer: &Pool<DB>,
    log: &LogId,
    commit: Commit<'_>,
) -> Result<(Committed, LogState)>
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
    let mut tx = writer
        .begin()
        .await
        .map_err(unavailable("starting a commit"))?;
    // The log's lock comes first even without entries: event cursors are assigned under it.
    // Then every read the commit needs, then its writes (in one round trip where the engine
    // allows it).
    let locked = Entries::<DB>::lock_log(&mut tx, log).await?;
    let (appended, entry_rows) = Entries::<DB>::plan_in(&mut tx, &locked, commit.entries).await?;
    let (event_cursors, last_event_cursor, event_rows) =
        Events::<DB>::plan_in(&mut tx, &locked, &appended.new_ids, commit.events).await?;
    let mut writes = if puts_and_deletes_overlap(&commit) {
        Writes::in_order()
    } else {
        Writes::new()
    };
    Entries::<DB>::queue_rows(locked.log_key, &entry_rows, &mut writes);
    Events::<DB>::queue_rows(locked.log_key, &event_rows, &mut writes);
    if appended.added > 0 || last_event_cursor != locked.last_event_cursor {
        Entries::<DB>::queue_advance(&locked, &appended, last_event_cursor, &mut writes);
    }
    Values::<DB>::queue_put(commit.values, &mut writes);
    Values::<DB>::queue_delete(commit.deletes, &mut writes);
    let (texts, arguments) = writes.finish()?;
    writes::run(&mut tx, &texts, arguments, "writing a commit").await?;
    tx.commit().await.map_err(unavailable("committing"))?;
    let after = locked.after(&appended, &entry_rows, last_event_cursor);
    let committed = Committed {
        appended: appended.outcomes,
        event_cursors,
    };
    Ok((committed, after))
}
