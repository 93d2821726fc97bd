//! Rendezvous registrations: what the rendezvous server ([`crate::rendezvous`]) persists.
//!
//! Registrations live in the database rather than in memory, so they survive a restart and
//! every node sharing one PostgreSQL database answers the same discovers.
//!
//! # Layout
//!
//! - `rendezvous_registrations`: one row per (namespace, peer) with the signed peer record
//!   exactly as received and its expiry in unix seconds. A refresh deletes the old row and
//!   inserts a new one, so it gets a new id.
//! - `rendezvous_peers`: how many registrations each peer holds, so the per-peer cap never
//!   counts a peer's rows (a peer may hold thousands).
//! - `rendezvous_state`: one row holding the id sequence (`last_id`) and the row count. Every
//!   write transaction updates it first, which serialises writers (across every node on
//!   PostgreSQL), so ids are committed in increasing order and a reader never sees id `n + 1`
//!   before id `n`: a discover cookie holding the last id a client saw never skips a
//!   registration. Taking it first also gives every writer one lock order (no deadlocks).
//!
//! # Batches
//!
//! [`RendezvousStore::register_batch`] stores many registrations in one transaction (the
//! server coalesces concurrent registrations). It deletes the expired rows (updating their
//! peers' counts), looks up the batch's exact (peer, namespace) keys and its peers' counts
//! (index lookups, whatever the table's size), decides each outcome
//! ([`plan_registrations`]), then deletes the replaced rows, inserts the new ones and writes
//! the counts in multi-row statements. The caps count only unexpired rows, since expired ones
//! were deleted first.
//!
//! Discovers read one range of the `(namespace, id)` index (or of the primary key when they
//! ask for every namespace) from the cookie's id, skipping expired rows. On SQLite that index
//! covers the record, so a page reads contiguous pages; PostgreSQL needs fresh statistics to
//! walk it in order, so a batch that doubles the registration count runs `ANALYZE` on the
//! table ([`RendezvousDialect::ANALYZE`]).

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Postgres, Row, Sqlite,
    Type,
};

use super::{
    sql::{SqlStore, Statement},
    Result, StorageError,
};

/// Most values bound in one `IN` list or multi-row `INSERT` (5 columns a row: well under
/// SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 500;

/// A registration to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    /// The namespace: 1 to 255 bytes of UTF-8, without NUL (checked by the caller).
    pub namespace: String,
    /// The registering peer's id ([`libp2p::PeerId::to_bytes`]).
    pub peer_id: Vec<u8>,
    /// The signed peer record envelope exactly as received.
    pub record: Vec<u8>,
    /// Unix second from which the registration is expired.
    pub expires_at: u64,
}

/// A stored registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistration {
    /// Its place in the id sequence shared by every node on the database (never reused; a
    /// refresh gets a new one).
    pub id: u64,
    /// The namespace.
    pub namespace: String,
    /// The registering peer's id bytes.
    pub peer_id: Vec<u8>,
    /// The signed peer record envelope exactly as received.
    pub record: Vec<u8>,
    /// Unix second from which the registration is expired.
    pub expires_at: u64,
}

/// The caps [`RendezvousStore::register_batch`] enforces, counting unexpired registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationCaps {
    /// Most registrations one peer holds (over all namespaces).
    pub per_peer: u32,
    /// Most registrations stored in all.
    pub total: u64,
}

/// What [`RendezvousStore::register_batch`] did with one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Stored and committed.
    Registered {
        /// It replaced the peer's earlier registration in the namespace (stored, or earlier in
        /// the same batch); the counts are unchanged.
        replaced: bool,
    },
    /// Refused: the peer already holds [`RegistrationCaps::per_peer`] registrations.
    PeerLimit,
    /// Refused: [`RegistrationCaps::total`] registrations are stored.
    TotalLimit,
}

/// Persistence of the rendezvous server's registrations. Every write is committed on return.
#[async_trait]
pub trait RendezvousStore: Send + Sync {
    /// Stores registrations in one transaction, in the given order, and returns one outcome
    /// per registration. First deletes every registration expired at `now`. A registration
    /// replaces the same peer's registration in the same namespace (which keeps the counts);
    /// otherwise it is refused when the peer or the whole store is at its cap.
    async fn register_batch(
        &self,
        registrations: &[NewRegistration],
        caps: RegistrationCaps,
        now: u64,
    ) -> Result<Vec<RegisterOutcome>>;

    /// Deletes the peer's registration in the namespace; `false` when there was none.
    async fn unregister(&self, namespace: &str, peer_id: &[u8]) -> Result<bool>;

    /// Registrations with an id above `after_id`, in `namespace` (every namespace when
    /// `None`), not expired at `now`, in id order, at most `limit`.
    async fn discover(
        &self,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<StoredRegistration>>;

    /// Deletes every registration expired at `now`; returns how many.
    async fn purge_expired(&self, now: u64) -> Result<u64>;

    /// Number of registrations not expired at `now`.
    async fn count(&self, now: u64) -> Result<u64>;
}

/// What one batch writes, decided before writing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RegisterPlan<'a> {
    /// One per registration given, in order.
    pub(crate) outcomes: Vec<RegisterOutcome>,
    /// Ids of stored registrations replaced by the batch.
    pub(crate) replaced: Vec<i64>,
    /// Registrations to insert, in batch order (a registration replaced later in the same
    /// batch is left out).
    pub(crate) inserts: Vec<&'a NewRegistration>,
    /// The registrations held by each peer that gets a new one, once the batch commits.
    pub(crate) peer_counts: HashMap<&'a [u8], u64>,
    /// Number of stored registrations once the batch commits.
    pub(crate) count: u64,
}

/// Decides what storing `batch` does, given the stored registrations with the batch's
/// (peer, namespace) keys (`(id, peer id, namespace)`), the number of registrations each of
/// the batch's peers holds (absent: none) and the number of stored registrations, none of
/// them expired.
pub(crate) fn plan_registrations<'a>(
    batch: &'a [NewRegistration],
    stored: &[(i64, Vec<u8>, String)],
    peer_counts: &HashMap<Vec<u8>, u64>,
    count: u64,
    caps: RegistrationCaps,
) -> RegisterPlan<'a> {
    let mut existing: HashMap<(&[u8], &str), i64> = stored
        .iter()
        .map(|(id, peer, namespace)| ((peer.as_slice(), namespace.as_str()), *id))
        .collect();
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut replaced = Vec::new();
    let mut inserts: Vec<Option<&NewRegistration>> = Vec::with_capacity(batch.len());
    let mut planned: HashMap<(&[u8], &str), usize> = HashMap::new();
    let mut counts: HashMap<&'a [u8], u64> = HashMap::new();
    let mut count = count;
    for registration in batch {
        let peer = registration.peer_id.as_slice();
        let key = (peer, registration.namespace.as_str());
        let replacing = if let Some(earlier) = planned.get(&key) {
            inserts[*earlier] = None;
            true
        } else if let Some(id) = existing.remove(&key) {
            replaced.push(id);
            true
        } else {
            false
        };
        if !replacing {
            let held = counts
                .entry(peer)
                .or_insert_with(|| peer_counts.get(peer).copied().unwrap_or(0));
            if *held >= u64::from(caps.per_peer) {
                outcomes.push(RegisterOutcome::PeerLimit);
                continue;
            }
            if count >= caps.total {
                outcomes.push(RegisterOutcome::TotalLimit);
                continue;
            }
            *held += 1;
            count += 1;
        }
        planned.insert(key, inserts.len());
        inserts.push(Some(registration));
        outcomes.push(RegisterOutcome::Registered {
            replaced: replacing,
        });
    }
    let peer_counts = counts
        .into_iter()
        .filter(|(peer, held)| peer_counts.get(*peer).copied().unwrap_or(0) != *held)
        .collect();
    RegisterPlan {
        outcomes,
        replaced,
        inserts: inserts.into_iter().flatten().collect(),
        peer_counts,
        count,
    }
}

/// What differs between the engines in the rendezvous statements.
pub(crate) trait RendezvousDialect: Database {
    /// Appends a condition true when `column` holds one of `values`.
    fn push_bytes_in<'a>(statement: &mut Statement<'a, Self>, column: &str, values: &'a [&'a [u8]]);

    /// Appends a condition true when `column` holds one of `ids`.
    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]);

    /// Rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// `SELECT id, peer_id, namespace` of the stored registrations with one of `keys`
    /// (`(peer id, namespace)`): one unique-index lookup per key, whatever the table's size.
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self>;

    /// A statement refreshing the planner's statistics of the registrations table, run when
    /// the registration count doubles ([`statistics_are_stale`]); `None` when the engine
    /// plans discovers well without.
    const ANALYZE: Option<&'static str>;
}

/// Whether a batch that took the registration count from `before` to `after` crossed a
/// power of two from 1,024 up: the points where the planner's statistics are refreshed.
pub(crate) fn statistics_are_stale(before: u64, after: u64) -> bool {
    after >= 1024 && before.max(1).ilog2() < after.ilog2()
}

impl RendezvousDialect for Sqlite {
    /// SQLite walks the covering `(namespace, id, ...)` index without statistics.
    const ANALYZE: Option<&'static str> = None;

    fn push_bytes_in<'a>(
        statement: &mut Statement<'a, Self>,
        column: &str,
        values: &'a [&'a [u8]],
    ) {
        statement.push(column).push(" IN (");
        let mut list = statement.list();
        for value in values {
            list.bind(*value);
        }
        statement.push(")");
    }

    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]) {
        statement.push(column).push(" IN (");
        let mut list = statement.list();
        for id in ids {
            list.bind(*id);
        }
        statement.push(")");
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    /// A join from the keys (a `VALUES` list) to the registrations: SQLite's nested loop
    /// probes the `(peer_id, namespace)` index once per key. (`(peer_id, namespace) IN
    /// (VALUES ...)` would scan the whole index.)
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self> {
        let mut query = Statement::new("WITH k (peer_id, namespace) AS (");
        query.push_values(keys, |values, (peer, namespace)| {
            values.bind(*peer).bind(*namespace);
        });
        query.push(
            ") SELECT r.id, r.peer_id, r.namespace FROM k \
             JOIN rendezvous_registrations AS r \
             ON r.peer_id = k.peer_id AND r.namespace = k.namespace",
        );
        query
    }
}

impl RendezvousDialect for Postgres {
    /// Without statistics (or with those of a much smaller table), PostgreSQL reads a whole
    /// namespace with a bitmap scan and sorts it to return one page: 35 ms for a namespace of
    /// 100,000 registrations instead of well under one.
    const ANALYZE: Option<&'static str> = Some("ANALYZE rendezvous_registrations");

    /// `column = ANY(?)` with one array parameter (see the PostgreSQL backend on long lists).
    fn push_bytes_in<'a>(
        statement: &mut Statement<'a, Self>,
        column: &str,
        values: &'a [&'a [u8]],
    ) {
        statement
            .push(column)
            .push(" = ANY(")
            .bind(values.to_vec())
            .push(")");
    }

    fn push_ids_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [i64]) {
        statement
            .push(column)
            .push(" = ANY(")
            .bind(ids.to_vec())
            .push(")");
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    /// The keys as two array parameters, each probing the `(peer_id, namespace)` index in a
    /// `LATERAL` subquery: its `LIMIT` keeps the planner from turning the lookups into a hash
    /// join over the whole table.
    fn registrations_with_keys<'a>(keys: &'a [(&'a [u8], &'a str)]) -> Statement<'a, Self> {
        let peers: Vec<&'a [u8]> = keys.iter().map(|(peer, _)| *peer).collect();
        let namespaces: Vec<&'a str> = keys.iter().map(|(_, namespace)| *namespace).collect();
        let mut query = Statement::new("SELECT r.id, k.peer_id, k.namespace FROM unnest(");
        query.bind(peers).push("::bytea[], ").bind(namespaces).push(
            "::text[]) AS k (peer_id, namespace) CROSS JOIN LATERAL (SELECT id \
                 FROM rendezvous_registrations AS r \
                 WHERE r.peer_id = k.peer_id AND r.namespace = k.namespace LIMIT 1) AS r",
        );
        query
    }
}

/// The first statement of every write transaction: locks the state row (see the module
/// docs) and reads the last id and the row count.
const LOCK_STATE: &str = "UPDATE rendezvous_state SET last_id = last_id WHERE singleton = 1 \
     RETURNING last_id, registrations";
/// Stores the last id and the row count (with the state row locked).
const SAVE_STATE: &str =
    "UPDATE rendezvous_state SET last_id = $1, registrations = $2 WHERE singleton = 1";
/// Deletes the rows expired at `$1`, walking the expiry index; returns their peers.
const DELETE_EXPIRED: &str =
    "DELETE FROM rendezvous_registrations WHERE expires_at <= $1 RETURNING peer_id";
/// Columns read to build a [`StoredRegistration`], in the order [`decode_registration`] expects.
const REGISTRATION_COLUMNS: &str = "id, namespace, peer_id, record, expires_at";

/// A unix time or id as a bind parameter (values past `i64::MAX` clamp to it).
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored id, time or count; negative values mean corruption.
fn from_sql(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| StorageError::Corrupt(format!("negative {what}: {value}")))
}

/// Maps a failed database call to [`StorageError::Unavailable`], saying what was being done.
fn unavailable(doing: &'static str) -> impl FnOnce(sqlx::Error) -> StorageError {
    move |err| StorageError::Unavailable(format!("{doing}: {err}"))
}

/// Column `index` of `row`; a value that does not decode is corruption.
fn column<'r, DB, T>(row: &'r DB::Row, index: usize) -> Result<T>
where
    DB: Database,
    T: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    row.try_get(index)
        .map_err(|err| StorageError::Corrupt(format!("rendezvous column {index}: {err}")))
}

/// A row of [`REGISTRATION_COLUMNS`].
fn decode_registration<DB>(row: &DB::Row) -> Result<StoredRegistration>
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

/// Generic SQL of the rendezvous store, run by both engines.
struct RendezvousSql;

impl RendezvousSql {
    /// Locks the state row; returns the last id and the row count.
    async fn lock_state<DB>(tx: &mut DB::Connection) -> Result<(u64, u64)>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'r> i64: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
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
    async fn save_state<DB>(tx: &mut DB::Connection, last_id: u64, count: u64) -> Result<()>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
    {
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
    async fn delete_expired<DB>(tx: &mut DB::Connection, now: u64) -> Result<HashMap<Vec<u8>, u64>>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
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
    async fn peer_counts<DB>(
        tx: &mut DB::Connection,
        peers: &[&[u8]],
    ) -> Result<HashMap<Vec<u8>, u64>>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Decode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
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
    async fn save_peer_counts<DB>(tx: &mut DB::Connection, counts: &[(&[u8], u64)]) -> Result<()>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
    {
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
    fn less(count: u64, lost: u64, what: &str) -> Result<u64> {
        count.checked_sub(lost).ok_or_else(|| {
            StorageError::Corrupt(format!(
                "{what} counts {count} registrations, {lost} deleted"
            ))
        })
    }

    async fn register_batch<DB>(
        writer: &Pool<DB>,
        batch: &[NewRegistration],
        caps: RegistrationCaps,
        now: u64,
    ) -> Result<Vec<RegisterOutcome>>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        for<'r> String: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a rendezvous batch"))?;
        let (last_id, count) = Self::lock_state::<DB>(&mut tx).await?;
        let lost = Self::delete_expired::<DB>(&mut tx, now).await?;
        let count = Self::less(count, lost.values().sum(), "the rendezvous state")?;

        let mut keys: Vec<(&[u8], &str)> = batch
            .iter()
            .map(|r| (r.peer_id.as_slice(), r.namespace.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut stored = Vec::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let (sql, args) = DB::registrations_with_keys(chunk).finish()?;
            for row in sqlx::query_with(&sql, args)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("looking up registrations"))?
            {
                stored.push((
                    column::<DB, i64>(&row, 0)?,
                    column::<DB, Vec<u8>>(&row, 1)?,
                    column::<DB, String>(&row, 2)?,
                ));
            }
        }

        // The counts of the batch's peers and of the peers that lost expired registrations.
        let mut peers: Vec<&[u8]> = keys.iter().map(|(peer, _)| *peer).collect();
        peers.extend(lost.keys().map(Vec::as_slice));
        peers.sort_unstable();
        peers.dedup();
        let mut counts = Self::peer_counts::<DB>(&mut tx, &peers).await?;
        for (peer, lost) in &lost {
            let held = counts.entry(peer.clone()).or_default();
            *held = Self::less(*held, *lost, "a peer's count")?;
        }

        let plan = plan_registrations(batch, &stored, &counts, count, caps);
        if plan.inserts.is_empty() && lost.is_empty() {
            // Nothing written: rolling back releases the lock without a commit to sync.
            tx.rollback()
                .await
                .map_err(unavailable("ending a rendezvous batch"))?;
            return Ok(plan.outcomes);
        }

        for ids in plan.replaced.chunks(ROWS_PER_STATEMENT) {
            let mut delete = Statement::<DB>::new("DELETE FROM rendezvous_registrations WHERE ");
            DB::push_ids_in(&mut delete, "id", ids);
            let (sql, args) = delete.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("replacing registrations"))?;
        }

        let mut next_id = last_id;
        let mut rows = Vec::with_capacity(plan.inserts.len());
        for registration in &plan.inserts {
            next_id = next_id
                .checked_add(1)
                .filter(|id| i64::try_from(*id).is_ok())
                .ok_or_else(|| StorageError::Unavailable("registration ids have run out".into()))?;
            rows.push((to_sql(next_id), *registration));
        }
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut insert = Statement::<DB>::new(
                "INSERT INTO rendezvous_registrations \
                 (id, namespace, peer_id, record, expires_at) ",
            );
            insert.push_values(chunk, |values, (id, registration)| {
                values
                    .bind(*id)
                    .bind(registration.namespace.as_str())
                    .bind(registration.peer_id.as_slice())
                    .bind(registration.record.as_slice())
                    .bind(to_sql(registration.expires_at));
            });
            let (sql, args) = insert.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("inserting registrations"))?;
        }

        // New counts: the planned ones, and those of peers that only lost expired rows.
        let mut changed: Vec<(&[u8], u64)> = plan
            .peer_counts
            .iter()
            .map(|(peer, held)| (*peer, *held))
            .collect();
        for peer in lost.keys() {
            if !plan.peer_counts.contains_key(peer.as_slice()) {
                let held = counts.get(peer).copied().unwrap_or(0);
                changed.push((peer.as_slice(), held));
            }
        }
        Self::save_peer_counts::<DB>(&mut tx, &changed).await?;
        Self::save_state::<DB>(&mut tx, next_id, plan.count).await?;
        tx.commit()
            .await
            .map_err(unavailable("committing a rendezvous batch"))?;
        if let Some(analyze) = DB::ANALYZE.filter(|_| statistics_are_stale(count, plan.count)) {
            // The batch is committed: a failure here only leaves the statistics stale.
            if let Err(err) = sqlx::query::<DB>(analyze).execute(writer).await {
                tracing::warn!(%err, "cannot refresh the rendezvous table's statistics");
            }
        }
        Ok(plan.outcomes)
    }

    async fn unregister<DB>(writer: &Pool<DB>, namespace: &str, peer_id: &[u8]) -> Result<bool>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting an unregister"))?;
        let (last_id, count) = Self::lock_state::<DB>(&mut tx).await?;
        let result = sqlx::query::<DB>(
            "DELETE FROM rendezvous_registrations WHERE peer_id = $1 AND namespace = $2",
        )
        .bind(peer_id)
        .bind(namespace)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("deleting a registration"))?;
        let deleted = DB::rows_affected(&result);
        if deleted == 0 {
            tx.rollback()
                .await
                .map_err(unavailable("ending an unregister"))?;
            return Ok(false);
        }
        let held = Self::peer_counts::<DB>(&mut tx, &[peer_id])
            .await?
            .remove(peer_id)
            .unwrap_or(0);
        let held = Self::less(held, deleted, "a peer's count")?;
        Self::save_peer_counts::<DB>(&mut tx, &[(peer_id, held)]).await?;
        let count = Self::less(count, deleted, "the rendezvous state")?;
        Self::save_state::<DB>(&mut tx, last_id, count).await?;
        tx.commit()
            .await
            .map_err(unavailable("committing an unregister"))?;
        Ok(true)
    }

    async fn purge_expired<DB>(writer: &Pool<DB>, now: u64) -> Result<u64>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a purge"))?;
        let (last_id, count) = Self::lock_state::<DB>(&mut tx).await?;
        let lost = Self::delete_expired::<DB>(&mut tx, now).await?;
        if lost.is_empty() {
            tx.rollback().await.map_err(unavailable("ending a purge"))?;
            return Ok(0);
        }
        let peers: Vec<&[u8]> = lost.keys().map(Vec::as_slice).collect();
        let counts = Self::peer_counts::<DB>(&mut tx, &peers).await?;
        let mut changed = Vec::with_capacity(lost.len());
        for (peer, lost) in &lost {
            let held = counts.get(peer).copied().unwrap_or(0);
            changed.push((peer.as_slice(), Self::less(held, *lost, "a peer's count")?));
        }
        Self::save_peer_counts::<DB>(&mut tx, &changed).await?;
        let purged = lost.values().sum();
        Self::save_state::<DB>(
            &mut tx,
            last_id,
            Self::less(count, purged, "the rendezvous state")?,
        )
        .await?;
        tx.commit()
            .await
            .map_err(unavailable("committing a purge"))?;
        Ok(purged)
    }

    async fn discover<DB>(
        reader: &Pool<DB>,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<StoredRegistration>>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
        for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
        for<'r> String: Decode<'r, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut query = Statement::<DB>::new(&format!(
            "SELECT {REGISTRATION_COLUMNS} FROM rendezvous_registrations WHERE "
        ));
        if let Some(namespace) = namespace {
            query.push("namespace = ").bind(namespace).push(" AND ");
        }
        // `+expires_at`: the expiry is checked on the rows the id range yields, never used to
        // pick an index (the range is what makes a page cheap).
        query
            .push("id > ")
            .bind(to_sql(after_id))
            .push(" AND +expires_at > ")
            .bind(to_sql(now))
            .push(" ORDER BY id LIMIT ")
            .bind(i64::from(limit));
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(reader)
            .await
            .map_err(unavailable("discovering registrations"))?
            .iter()
            .map(decode_registration::<DB>)
            .collect()
    }

    async fn count<DB>(reader: &Pool<DB>, now: u64) -> Result<u64>
    where
        DB: RendezvousDialect,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
        usize: ColumnIndex<DB::Row>,
    {
        let row = sqlx::query::<DB>(
            "SELECT COUNT(*) FROM rendezvous_registrations WHERE expires_at > $1",
        )
        .bind(to_sql(now))
        .fetch_one(reader)
        .await
        .map_err(unavailable("counting registrations"))?;
        from_sql(column::<DB, i64>(&row, 0)?, "registration count")
    }
}

/// Implements [`RendezvousStore`] for the [`SqlStore`] of one engine.
macro_rules! rendezvous_via_sql_store {
    ($db:ty) => {
        #[async_trait]
        impl RendezvousStore for SqlStore<$db> {
            async fn register_batch(
                &self,
                registrations: &[NewRegistration],
                caps: RegistrationCaps,
                now: u64,
            ) -> Result<Vec<RegisterOutcome>> {
                RendezvousSql::register_batch::<$db>(self.writer(), registrations, caps, now).await
            }

            async fn unregister(&self, namespace: &str, peer_id: &[u8]) -> Result<bool> {
                RendezvousSql::unregister::<$db>(self.writer(), namespace, peer_id).await
            }

            async fn discover(
                &self,
                namespace: Option<&str>,
                after_id: u64,
                limit: u32,
                now: u64,
            ) -> Result<Vec<StoredRegistration>> {
                RendezvousSql::discover::<$db>(self.reader(), namespace, after_id, limit, now).await
            }

            async fn purge_expired(&self, now: u64) -> Result<u64> {
                RendezvousSql::purge_expired::<$db>(self.writer(), now).await
            }

            async fn count(&self, now: u64) -> Result<u64> {
                RendezvousSql::count::<$db>(self.reader(), now).await
            }
        }
    };
}

rendezvous_via_sql_store!(Sqlite);
rendezvous_via_sql_store!(Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: RegistrationCaps = RegistrationCaps {
        per_peer: 2,
        total: 4,
    };

    fn registration(peer: u8, namespace: &str, expires_at: u64) -> NewRegistration {
        NewRegistration {
            namespace: namespace.to_owned(),
            peer_id: vec![peer],
            record: vec![peer, expires_at as u8],
            expires_at,
        }
    }

    fn registered(replaced: bool) -> RegisterOutcome {
        RegisterOutcome::Registered { replaced }
    }

    #[test]
    fn plan_inserts_new_registrations_within_the_caps() {
        let batch = [
            registration(1, "a", 10),
            registration(1, "b", 10),
            registration(1, "c", 10),
            registration(2, "a", 10),
            registration(3, "a", 10),
            registration(4, "a", 10),
        ];
        let plan = plan_registrations(&batch, &[], &HashMap::new(), 0, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(false),
                registered(false),
                RegisterOutcome::PeerLimit,
                registered(false),
                registered(false),
                RegisterOutcome::TotalLimit,
            ]
        );
        assert_eq!(
            plan.inserts,
            vec![&batch[0], &batch[1], &batch[3], &batch[4]]
        );
        assert!(plan.replaced.is_empty());
        assert_eq!(plan.count, 4);
        assert_eq!(
            plan.peer_counts,
            HashMap::from([(&[1][..], 2), (&[2][..], 1), (&[3][..], 1)])
        );
    }

    #[test]
    fn plan_replaces_stored_and_earlier_registrations_without_counting_them_twice() {
        let stored = vec![(7, vec![1], "a".to_owned()), (8, vec![1], "b".to_owned())];
        let counts = HashMap::from([(vec![1], 2)]);
        let batch = [
            registration(1, "a", 20),
            registration(1, "a", 30),
            registration(1, "c", 30),
            registration(1, "b", 40),
        ];
        let plan = plan_registrations(&batch, &stored, &counts, 4, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                registered(true),
                RegisterOutcome::PeerLimit,
                registered(true),
            ]
        );
        assert_eq!(plan.replaced, vec![7, 8]);
        assert_eq!(plan.inserts, vec![&batch[1], &batch[3]]);
        assert_eq!(plan.count, 4, "refreshes keep the count");
        assert!(plan.peer_counts.is_empty(), "no count changed");
    }

    #[test]
    fn plan_uses_the_stored_count_of_a_peer() {
        // Peer 1 holds 3 registrations (more than the cap, which was lowered), none in "c".
        let counts = HashMap::from([(vec![1], 3), (vec![2], 1)]);
        let stored = vec![(3, vec![1], "c".to_owned())];
        let batch = [
            registration(1, "c", 50),
            registration(1, "d", 50),
            registration(2, "d", 50),
            registration(2, "e", 50),
        ];
        let plan = plan_registrations(&batch, &stored, &counts, 4, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                RegisterOutcome::PeerLimit,
                RegisterOutcome::TotalLimit,
                RegisterOutcome::TotalLimit,
            ]
        );
        let plan = plan_registrations(&batch, &stored, &counts, 1, CAPS);
        assert_eq!(
            plan.outcomes,
            vec![
                registered(true),
                RegisterOutcome::PeerLimit,
                registered(false),
                RegisterOutcome::PeerLimit,
            ]
        );
        assert_eq!(plan.peer_counts, HashMap::from([(&[2][..], 2)]));
        assert_eq!(plan.count, 2);
    }

    #[test]
    fn statistics_are_refreshed_when_the_count_doubles() {
        assert!(!statistics_are_stale(0, 1023));
        assert!(statistics_are_stale(0, 1024));
        assert!(statistics_are_stale(1000, 1100));
        assert!(!statistics_are_stale(1024, 2047));
        assert!(statistics_are_stale(2047, 2048));
        assert!(statistics_are_stale(3000, 100_000));
        assert!(!statistics_are_stale(100_000, 100_000));
        assert!(!statistics_are_stale(5000, 10), "shrinking");
    }

    #[test]
    fn key_lookups_probe_the_unique_index() {
        let keys: Vec<(&[u8], &str)> = vec![(b"p1", "a"), (b"p2", "b")];
        let (sql, _) = Sqlite::registrations_with_keys(&keys).finish().unwrap();
        assert_eq!(
            sql,
            "WITH k (peer_id, namespace) AS (VALUES (?, ?), (?, ?)) \
             SELECT r.id, r.peer_id, r.namespace FROM k JOIN rendezvous_registrations AS r \
             ON r.peer_id = k.peer_id AND r.namespace = k.namespace"
        );
        let (sql, _) = Postgres::registrations_with_keys(&keys).finish().unwrap();
        assert!(
            sql.starts_with(
                "SELECT r.id, k.peer_id, k.namespace FROM unnest($1::bytea[], $2::text[])"
            ),
            "{sql}"
        );
    }

    #[test]
    fn postgres_lists_are_one_array_parameter() {
        let values: Vec<&[u8]> = vec![b"a", b"b"];
        let mut query = Statement::<Postgres>::new("SELECT 1 WHERE ");
        Postgres::push_bytes_in(&mut query, "peer_id", &values);
        query.push(" AND ");
        Postgres::push_ids_in(&mut query, "id", &[1, 2, 3]);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(sql, "SELECT 1 WHERE peer_id = ANY($1) AND id = ANY($2)");
        let mut query = Statement::<Sqlite>::new("SELECT 1 WHERE ");
        Sqlite::push_bytes_in(&mut query, "peer_id", &values);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(sql, "SELECT 1 WHERE peer_id IN (?, ?)");
    }
}
