//! The counters every write keeps in step with the rows, inside its transaction: the state
//! row (`rendezvous_state`: the id sequence and the row count, locked first by every write)
//! and the per-peer counts (`rendezvous_peers`).

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::{
    columns::{column, from_sql, to_sql, unavailable},
    dialect::RendezvousDialect,
    sql::RendezvousSql,
    ROWS_PER_STATEMENT,
};
use crate::storage::{sql::Statement, Result, StorageError};

/// The first statement of every write transaction: locks the state row (see the
/// [parent module](super)'s docs) and reads the last id and the row count.
const LOCK_STATE: &str = "UPDATE rendezvous_state SET last_id = last_id WHERE singleton = 1 \
     RETURNING last_id, registrations";
/// Stores the last id and the row count (with the state row locked).
const SAVE_STATE: &str =
    "UPDATE rendezvous_state SET last_id = $1, registrations = $2 WHERE singleton = 1";
/// Deletes the rows expired at `$1`, walking the expiry index; returns their peers.
const DELETE_EXPIRED: &str =
    "DELETE FROM rendezvous_registrations WHERE expires_at <= $1 RETURNING peer_id";

impl<DB> RendezvousSql<DB>
where
    DB: RendezvousDialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Locks the state row; returns the last id and the row count.
    pub(super) async fn lock_state(tx: &mut DB::Connection) -> Result<(u64, u64)> {
        let row = sqlx::query::<DB>(LOCK_STATE)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable("locking the rendezvous state"))?
            .ok_or_else(|| StorageError::Corrupt("the rendezvous state row is missing".into()))?;
        Ok((
            from_sql(column::<DB, i64>(&row, 0)?, "last registration id")?,
            from_sql(column::<DB, i64>(&row, 1)?, "registration count")?,
        ))
    }

    /// Stores the last id and row count (with the state row locked).
    pub(super) async fn save_state(
        tx: &mut DB::Connection,
        last_id: u64,
        count: u64,
    ) -> Result<()> {
        sqlx::query::<DB>(SAVE_STATE)
            .bind(to_sql(last_id))
            .bind(to_sql(count))
            .execute(&mut *tx)
            .await
            .map_err(unavailable("updating the rendezvous state"))?;
        Ok(())
    }

    /// Deletes the rows expired at `now` (with the state row locked); returns how many each
    /// peer lost.
    pub(super) async fn delete_expired(
        tx: &mut DB::Connection,
        now: u64,
    ) -> Result<HashMap<Vec<u8>, u64>> {
        let rows = sqlx::query::<DB>(DELETE_EXPIRED)
            .bind(to_sql(now))
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable("deleting expired registrations"))?;
        let mut lost: HashMap<Vec<u8>, u64> = HashMap::new();
        for row in &rows {
            *lost.entry(column::<DB, Vec<u8>>(row, 0)?).or_default() += 1;
        }
        Ok(lost)
    }

    /// The registrations held by each of `peers` (absent: none).
    pub(super) async fn peer_counts(
        tx: &mut DB::Connection,
        peers: &[&[u8]],
    ) -> Result<HashMap<Vec<u8>, u64>> {
        let mut counts = HashMap::with_capacity(peers.len());
        for chunk in peers.chunks(ROWS_PER_STATEMENT) {
            let mut query =
                Statement::<DB>::new("SELECT peer_id, registrations FROM rendezvous_peers WHERE ");
            DB::push_bytes_in(&mut query, "peer_id", chunk);
            let (sql, args) = query.finish()?;
            for row in sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("reading peer registration counts"))?
            {
                counts.insert(
                    column::<DB, Vec<u8>>(&row, 0)?,
                    from_sql(column::<DB, i64>(&row, 1)?, "peer registration count")?,
                );
            }
        }
        Ok(counts)
    }

    /// Stores peer registration counts (deleting the peers left with none).
    pub(super) async fn save_peer_counts(
        tx: &mut DB::Connection,
        counts: &[(&[u8], u64)],
    ) -> Result<()> {
        let held: Vec<(&[u8], u64)> = counts.iter().copied().filter(|(_, n)| *n > 0).collect();
        let gone: Vec<&[u8]> = counts
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(peer, _)| *peer)
            .collect();
        for chunk in held.chunks(ROWS_PER_STATEMENT) {
            let mut upsert =
                Statement::<DB>::new("INSERT INTO rendezvous_peers (peer_id, registrations) ");
            upsert.push_values(chunk, |values, (peer, count)| {
                values.bind(*peer).bind(to_sql(*count));
            });
            upsert.push(
                " ON CONFLICT (peer_id) DO UPDATE SET registrations = excluded.registrations",
            );
            let (sql, args) = upsert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("storing peer registration counts"))?;
        }
        for chunk in gone.chunks(ROWS_PER_STATEMENT) {
            let mut delete = Statement::<DB>::new("DELETE FROM rendezvous_peers WHERE ");
            DB::push_bytes_in(&mut delete, "peer_id", chunk);
            let (sql, args) = delete.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("deleting peer registration counts"))?;
        }
        Ok(())
    }

    /// `count` less `lost`, or corruption when the counters say fewer rows than were deleted.
    pub(super) fn less(count: u64, lost: u64, what: &str) -> Result<u64> {
        count.checked_sub(lost).ok_or_else(|| {
            StorageError::Corrupt(format!(
                "{what} counts {count} registrations, {lost} deleted"
            ))
        })
    }
}
