//! [`crate::storage::Storage::commit`]: entries, events and node values of one log in one
//! transaction, under the log's lock.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::unavailable,
    entries::Entries,
    events::Events,
    values::Values,
    writes::{self, Writes},
    Dialect,
};
use crate::{
    log::LogId,
    storage::{Commit, Committed, Result},
};

/// As [`crate::storage::Storage::commit`].
pub(super) async fn commit<DB>(
    writer: &Pool<DB>,
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
    // A value both put and deleted must see the writes in order; every other write of a
    // commit touches its own rows.
    let mut writes = if commit
        .deletes
        .iter()
        .any(|key| commit.values.iter().any(|(put, _)| put == key))
    {
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
    Ok(Committed {
        appended: appended.outcomes,
        event_cursors,
    })
}
