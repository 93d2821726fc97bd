//! How values are stored in the log tables, and read back: Lamport clocks, cursors, entry
//! ids, parent lists (see the parent module's *Encoding*).

use sqlx::{ColumnIndex, Database, Decode, Row, Type};

use crate::{
    log::{EntryId, ENTRY_ID_LEN},
    storage::{Result, StorageError},
};

/// The largest cursor: cursors are stored as signed 64-bit integers.
pub(super) const MAX_CURSOR: u64 = i64::MAX as u64;
/// The bit flipped to map a Lamport clock onto a signed 64-bit integer.
const LAMPORT_SIGN_BIT: u64 = 1 << 63;

/// Maps a Lamport clock to its stored form, preserving order over the whole `u64` range.
pub(super) fn lamport_to_sql(lamport: u64) -> i64 {
    i64::from_be_bytes((lamport ^ LAMPORT_SIGN_BIT).to_be_bytes())
}

/// Inverse of [`lamport_to_sql`].
pub(super) fn lamport_from_sql(stored: i64) -> u64 {
    u64::from_be_bytes(stored.to_be_bytes()) ^ LAMPORT_SIGN_BIT
}

/// A cursor as a bind parameter; cursors past the stored range clamp to the largest one.
pub(in crate::storage) fn cursor_to_sql(cursor: u64) -> i64 {
    i64::try_from(cursor).unwrap_or(i64::MAX)
}

/// A count or cursor read back from the database; negative values mean corruption.
pub(in crate::storage) fn non_negative(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt(format!("negative {what}: {value}")))
}

/// Maps a failed database call to [`StorageError::Unavailable`], saying what was being done.
pub(in crate::storage) fn unavailable(
    doing: &'static str,
) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |err| StorageError::Unavailable(format!("{doing}: {err}"))
}

/// Column `index` of `row`; a value that does not decode is corruption.
pub(in crate::storage) fn column<'r, DB, T>(row: &'r DB::Row, index: usize) -> Result<T>
where
    DB: Database,
    T: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    row.try_get(index)
        .map_err(|err| StorageError::Corrupt(format!("column {index}: {err}")))
}

/// An entry's parents as stored: their ids concatenated.
pub(super) fn parents_blob(parents: &[EntryId]) -> Vec<u8> {
    parents
        .iter()
        .flat_map(|p| p.as_bytes().iter().copied())
        .collect()
}

/// Parses a stored entry id.
pub(super) fn entry_id(bytes: &[u8]) -> Result<EntryId> {
    EntryId::from_slice(bytes).ok_or_else(|| {
        StorageError::Corrupt(format!(
            "entry id of {} bytes, expected {ENTRY_ID_LEN}",
            bytes.len()
        ))
    })
}

/// Parses a stored parents blob.
pub(super) fn parents_from_blob(blob: &[u8]) -> Result<Vec<EntryId>> {
    if !blob.len().is_multiple_of(ENTRY_ID_LEN) {
        return Err(StorageError::Corrupt(format!(
            "parents blob of {} bytes is not a list of {ENTRY_ID_LEN}-byte ids",
            blob.len()
        )));
    }
    blob.chunks_exact(ENTRY_ID_LEN).map(entry_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EntryId {
        EntryId([n; ENTRY_ID_LEN])
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
}
