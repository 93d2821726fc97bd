//! Values bound to and read back from the rendezvous tables: unix times, ids and counts
//! (`u64` stored as `i64`), columns that must decode, and a whole [`StoredRegistration`].

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use super::StoredRegistration;
use crate::storage::{Result, StorageError};

/// Columns read to build a [`StoredRegistration`], in the order [`decode_registration`] expects.
pub(super) const REGISTRATION_COLUMNS: &str = "id, namespace, peer_id, record, expires_at";

/// A unix time or id as a bind parameter (values past `i64::MAX` clamp to it).
pub(super) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored id, time or count; negative values mean corruption.
pub(super) fn from_sql(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt(format!("negative {what}: {value}")))
}

/// Maps a failed database call to [`StorageError::Unavailable`], saying what was being done.
pub(super) fn unavailable(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |err| StorageError::Unavailable(format!("{doing}: {err}"))
}

/// Column `index` of `row`; a value that does not decode is corruption.
pub(super) fn column<'r, DB, T>(row: &'r DB::Row, index: usize) -> Result<T>
where
    DB: Database,
    T: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    row.try_get(index)
        .map_err(|err| StorageError::Corrupt(format!("rendezvous column {index}: {err}")))
}

/// A row of [`REGISTRATION_COLUMNS`].
pub(super) fn decode_registration<DB>(row: &DB::Row) -> Result<StoredRegistration>
where
    DB: Database,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    Ok(StoredRegistration {
        id: from_sql(column::<DB, i64>(row, 0)?, "registration id")?,
        namespace: column::<DB, String>(row, 1)?,
        peer_id: column::<DB, Vec<u8>>(row, 2)?,
        record: column::<DB, Vec<u8>>(row, 3)?,
        expires_at: from_sql(column::<DB, i64>(row, 4)?, "expiry")?,
    })
}
