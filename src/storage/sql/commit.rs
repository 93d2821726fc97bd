//! [`crate::storage::Storage::commit`]: entries, events and node values of one log in one
//! transaction, under the log's lock.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{columns::unavailable, entries::Entries, events::Events, values::Values, Dialect};
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
    let locked = Entries::<DB>::lock_log(&mut tx, log).await?;
    let appended = Entries::<DB>::append_in(&mut tx, &locked, commit.entries).await?;
    let (event_cursors, last_event_cursor) =
        Events::<DB>::add_in(&mut tx, &locked, &appended.new_ids, commit.events).await?;
    if appended.added > 0 || last_event_cursor != locked.last_event_cursor {
        Entries::<DB>::advance_log(&mut tx, &locked, &appended, last_event_cursor).await?;
    }
    Values::<DB>::put_in(&mut tx, commit.values).await?;
    Values::<DB>::delete_in(&mut tx, commit.deletes).await?;
    tx.commit().await.map_err(unavailable("committing"))?;
    Ok(Committed {
        appended: appended.outcomes,
        event_cursors,
    })
}
