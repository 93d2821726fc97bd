//! Values bound to and read back from the rendezvous tables: unix times, ids and counts
//! (`u64` stored as `i64`), columns that must decode, and a whole [`StoredRegistration`].

use sqlx::{ColumnIndex, Database, Decode, Type};

use super::StoredRegistration;
use crate::storage::Result;

/// Columns read to build a [`StoredRegistration`], in the order [`decode_registration`] expects.
pub(super) const REGISTRATION_COLUMNS: &str = "id, namespace, peer_id, record, expires_at";

// The same conversions as the log's tables: a `u64` bound as `i64` (clamped), read back
// non-negative; columns that must decode; failed calls said as what was being done.
pub(super) use crate::storage::sql::columns::{
    column, cursor_to_sql as to_sql, non_negative as from_sql, unavailable,
};

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
