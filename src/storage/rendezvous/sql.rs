//! The rendezvous store's SQL, generic over the engine ([`RendezvousDialect`] holds what
//! differs), and [`RendezvousStore`] for [`SqlStorage`] on either engine.
//!
//! Every write transaction locks the state row first (`RendezvousSql::lock_state`); see the
//! parent module on why.

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::{column, decode_registration, from_sql, to_sql, unavailable, REGISTRATION_COLUMNS},
    dialect::{statistics_are_stale, RendezvousDialect},
    plan::plan_registrations,
    NewRegistration, RegisterOutcome, RegistrationCaps, RendezvousStore, StoredRegistration,
    ROWS_PER_STATEMENT,
};
use crate::storage::{sql::Statement, Result, SqlStorage, StorageError};

/// Generic SQL of the rendezvous store, run by both engines.
pub(super) struct RendezvousSql<DB>(PhantomData<DB>);

impl<DB> RendezvousSql<DB>
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
    async fn register_batch(
        writer: &Pool<DB>,
        batch: &[NewRegistration],
        caps: RegistrationCaps,
        now: u64,
    ) -> Result<Vec<RegisterOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a rendezvous batch"))?;
        let (last_id, count) = Self::lock_state(&mut tx).await?;
        let lost = Self::delete_expired(&mut tx, now).await?;
        let count = Self::less(count, lost.values().sum(), "the rendezvous state")?;

        let mut keys: Vec<(&[u8], &str)> = batch
            .iter()
            .map(|r| (r.peer_id.as_slice(), r.namespace.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let stored = Self::stored_with_keys(&mut tx, &keys).await?;

        // The counts of the batch's peers and of the peers that lost expired registrations.
        let mut peers: Vec<&[u8]> = keys.iter().map(|(peer, _)| *peer).collect();
        peers.extend(lost.keys().map(Vec::as_slice));
        peers.sort_unstable();
        peers.dedup();
        let mut counts = Self::peer_counts(&mut tx, &peers).await?;
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

        Self::delete_ids(&mut tx, &plan.replaced).await?;
        let next_id = Self::insert(&mut tx, last_id, &plan.inserts).await?;

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
        Self::save_peer_counts(&mut tx, &changed).await?;
        Self::save_state(&mut tx, next_id, plan.count).await?;
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

    /// `(id, peer id, namespace)` of the stored registrations with one of `keys`.
    async fn stored_with_keys(
        tx: &mut DB::Connection,
        keys: &[(&[u8], &str)],
    ) -> Result<Vec<(i64, Vec<u8>, String)>> {
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
        Ok(stored)
    }

    /// Deletes the registrations with the given ids (replaced by the batch).
    async fn delete_ids(tx: &mut DB::Connection, ids: &[i64]) -> Result<()> {
        for ids in ids.chunks(ROWS_PER_STATEMENT) {
            let mut delete = Statement::<DB>::new("DELETE FROM rendezvous_registrations WHERE ");
            DB::push_ids_in(&mut delete, "id", ids);
            let (sql, args) = delete.finish()?;
            sqlx::query_with(&sql, args)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("replacing registrations"))?;
        }
        Ok(())
    }

    /// Inserts registrations with the ids following `last_id`; returns the last id given.
    async fn insert(
        tx: &mut DB::Connection,
        last_id: u64,
        inserts: &[&NewRegistration],
    ) -> Result<u64> {
        let mut next_id = last_id;
        let mut rows = Vec::with_capacity(inserts.len());
        for registration in inserts {
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
        Ok(next_id)
    }

    async fn unregister(writer: &Pool<DB>, namespace: &str, peer_id: &[u8]) -> Result<bool> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting an unregister"))?;
        let (last_id, count) = Self::lock_state(&mut tx).await?;
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
        let held = Self::peer_counts(&mut tx, &[peer_id])
            .await?
            .remove(peer_id)
            .unwrap_or(0);
        let held = Self::less(held, deleted, "a peer's count")?;
        Self::save_peer_counts(&mut tx, &[(peer_id, held)]).await?;
        let count = Self::less(count, deleted, "the rendezvous state")?;
        Self::save_state(&mut tx, last_id, count).await?;
        tx.commit()
            .await
            .map_err(unavailable("committing an unregister"))?;
        Ok(true)
    }

    async fn purge_expired(writer: &Pool<DB>, now: u64) -> Result<u64> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a purge"))?;
        let (last_id, count) = Self::lock_state(&mut tx).await?;
        let lost = Self::delete_expired(&mut tx, now).await?;
        if lost.is_empty() {
            tx.rollback().await.map_err(unavailable("ending a purge"))?;
            return Ok(0);
        }
        let peers: Vec<&[u8]> = lost.keys().map(Vec::as_slice).collect();
        let counts = Self::peer_counts(&mut tx, &peers).await?;
        let mut changed = Vec::with_capacity(lost.len());
        for (peer, lost) in &lost {
            let held = counts.get(peer).copied().unwrap_or(0);
            changed.push((peer.as_slice(), Self::less(held, *lost, "a peer's count")?));
        }
        Self::save_peer_counts(&mut tx, &changed).await?;
        let purged = lost.values().sum();
        Self::save_state(
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

    async fn discover(
        reader: &Pool<DB>,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<StoredRegistration>> {
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

    async fn count(reader: &Pool<DB>, now: u64) -> Result<u64> {
        let row = sqlx::query::<DB>(
            "SELECT COUNT(*) FROM rendezvous_registrations WHERE expires_at > $1",
        )
        .bind(to_sql(now))
        .fetch_one(reader)
        .await
        .map_err(unavailable("counting registrations"))?;
        from_sql(column::<DB, i64>(&row, 0)?, "registration count")
    }

    async fn namespaces(reader: &Pool<DB>, now: u64, limit: u32) -> Result<Vec<(String, u64)>> {
        sqlx::query::<DB>(
            "SELECT namespace, COUNT(*) FROM rendezvous_registrations WHERE expires_at > $1 \
             GROUP BY namespace ORDER BY COUNT(*) DESC, namespace LIMIT $2",
        )
        .bind(to_sql(now))
        .bind(i64::from(limit))
        .fetch_all(reader)
        .await
        .map_err(unavailable("counting registrations per namespace"))?
        .iter()
        .map(|row| {
            Ok((
                column::<DB, String>(row, 0)?,
                from_sql(column::<DB, i64>(row, 1)?, "namespace count")?,
            ))
        })
        .collect()
    }
}

/// The rendezvous store of a [`SqlStorage`]: the same database, through the same health guard.
#[async_trait]
impl<DB> RendezvousStore for SqlStorage<DB>
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
    async fn register_batch(
        &self,
        registrations: &[NewRegistration],
        caps: RegistrationCaps,
        now: u64,
    ) -> Result<Vec<RegisterOutcome>> {
        let call = RendezvousSql::<DB>::register_batch(self.writer(), registrations, caps, now);
        self.guard(call).await
    }

    async fn unregister(&self, namespace: &str, peer_id: &[u8]) -> Result<bool> {
        let call = RendezvousSql::<DB>::unregister(self.writer(), namespace, peer_id);
        self.guard(call).await
    }

    async fn discover(
        &self,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
        now: u64,
    ) -> Result<Vec<StoredRegistration>> {
        let call = RendezvousSql::<DB>::discover(self.reader(), namespace, after_id, limit, now);
        self.guard(call).await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        let call = RendezvousSql::<DB>::purge_expired(self.writer(), now);
        self.guard(call).await
    }

    async fn count(&self, now: u64) -> Result<u64> {
        self.guard(RendezvousSql::<DB>::count(self.reader(), now))
            .await
    }

    async fn namespaces(&self, now: u64, limit: u32) -> Result<Vec<(String, u64)>> {
        self.guard(RendezvousSql::<DB>::namespaces(self.reader(), now, limit))
            .await
    }
}
