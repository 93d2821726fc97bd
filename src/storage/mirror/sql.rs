//! The mirror store's SQL, generic over the engine, and [`MirrorStore`] for [`SqlStorage`].

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    AppendedBatch, GroupRegistration, MirrorStore, MirroredGroup, NewMirroredGroup, NewToken,
    Purged, TokenUsage,
};
use crate::{
    log::{LogId, LogKind},
    storage::{
        rendezvous::RendezvousDialect,
        sql::{
            columns::{column, cursor_to_sql as to_sql, non_negative, unavailable},
            LOCK_LOG_ROW,
        },
        value_keys::ValueKey,
        Result, SqlStorage, StorageError,
    },
};

/// A token row with its usage, in the order [`MirrorSql::decode_token`] reads.
const TOKEN_USAGE: &str = "SELECT t.id, t.label, t.max_groups, t.max_bytes, t.created_at, \
     COUNT(g.group_pk), CAST(COALESCE(SUM(g.bytes), 0) AS BIGINT) \
     FROM mirror_tokens t LEFT JOIN mirror_groups g ON g.token_id = t.id";
/// What follows [`TOKEN_USAGE`] and its condition.
const TOKEN_USAGE_GROUPING: &str =
    " GROUP BY t.id, t.label, t.max_groups, t.max_bytes, t.created_at ORDER BY t.created_at, t.id";
/// A group row, in the order [`MirrorSql::decode_group`] reads.
const GROUP_COLUMNS: &str = "group_pk, signing_pk, link_key, creation_proof, token_id, \
     registered_at, entries, bytes, last_activity";

/// Generic SQL of the mirror store (the rendezvous store's dialect gives `rows_affected`).
struct MirrorSql<DB>(PhantomData<DB>);

impl<DB> MirrorSql<DB>
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
    fn decode_token(row: &DB::Row) -> Result<TokenUsage> {
        let number = |index: usize, what: &str| -> Result<u64> {
            non_negative(column::<DB, i64>(row, index)?, what)
        };
        Ok(TokenUsage {
            id: column::<DB, String>(row, 0)?,
            label: column::<DB, String>(row, 1)?,
            max_groups: number(2, "max_groups")?,
            max_bytes: number(3, "max_bytes")?,
            created_at: number(4, "created_at")?,
            groups: number(5, "group count")?,
            bytes: number(6, "byte count")?,
        })
    }

    fn decode_group(row: &DB::Row) -> Result<MirroredGroup> {
        let number = |index: usize, what: &str| -> Result<u64> {
            non_negative(column::<DB, i64>(row, index)?, what)
        };
        let key = |index: usize, what: &str| -> Result<[u8; 32]> {
            column::<DB, Vec<u8>>(row, index)?
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("mirror_groups.{what} is not 32 bytes")))
        };
        Ok(MirroredGroup {
            group_pk: key(0, "group_pk")?,
            signing_pk: key(1, "signing_pk")?,
            link_key: key(2, "link_key")?,
            creation_proof: column::<DB, Vec<u8>>(row, 3)?,
            token_id: column::<DB, String>(row, 4)?,
            registered_at: number(5, "registered_at")?,
            entries: number(6, "entries")?,
            bytes: number(7, "bytes")?,
            last_activity: number(8, "last_activity")?,
        })
    }

    async fn insert_token(writer: &Pool<DB>, token: &NewToken) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO mirror_tokens (id, token_hash, label, max_groups, max_bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id.as_str())
        .bind(&token.token_hash[..])
        .bind(token.label.as_str())
        .bind(to_sql(token.max_groups))
        .bind(to_sql(token.max_bytes))
        .bind(to_sql(token.created_at))
        .execute(writer)
        .await
        .map_err(unavailable("storing a mirror token"))?;
        Ok(())
    }

    async fn token_where(
        reader: &Pool<DB>,
        condition: &str,
        value: &[u8],
        text: Option<&str>,
    ) -> Result<Option<TokenUsage>> {
        let sql = format!("{TOKEN_USAGE} WHERE {condition}{TOKEN_USAGE_GROUPING}");
        let query = sqlx::query::<DB>(&sql);
        let query = match text {
            Some(text) => query.bind(text),
            None => query.bind(value),
        };
        let row = query
            .fetch_optional(reader)
            .await
            .map_err(unavailable("reading a mirror token"))?;
        row.as_ref().map(Self::decode_token).transpose()
    }

    async fn tokens(reader: &Pool<DB>) -> Result<Vec<TokenUsage>> {
        let sql = format!("{TOKEN_USAGE}{TOKEN_USAGE_GROUPING}");
        sqlx::query::<DB>(&sql)
            .fetch_all(reader)
            .await
            .map_err(unavailable("listing mirror tokens"))?
            .iter()
            .map(Self::decode_token)
            .collect()
    }

    async fn groups(reader: &Pool<DB>) -> Result<Vec<MirroredGroup>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM mirror_groups ORDER BY group_pk");
        sqlx::query::<DB>(&sql)
            .fetch_all(reader)
            .await
            .map_err(unavailable("listing mirrored groups"))?
            .iter()
            .map(Self::decode_group)
            .collect()
    }

    /// Locks token `id`'s row for the transaction (an update that changes nothing takes the
    /// row lock on both engines); whether the token exists.
    async fn lock_token(tx: &mut DB::Connection, id: &str) -> Result<bool> {
        let done = sqlx::query::<DB>("UPDATE mirror_tokens SET id = id WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable("locking a mirror token"))?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn register_group(
        writer: &Pool<DB>,
        group: &NewMirroredGroup,
        now: u64,
    ) -> Result<GroupRegistration> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a mirror registration"))?;
        if !Self::lock_token(&mut tx, &group.token_id).await? {
            return Ok(GroupRegistration::UnknownToken);
        }
        let existing = sqlx::query::<DB>("SELECT token_id FROM mirror_groups WHERE group_pk = $1")
            .bind(&group.group_pk[..])
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable("looking a mirrored group up"))?;
        if existing.is_some() {
            return Ok(GroupRegistration::AlreadyMirrored);
        }
        let row = sqlx::query::<DB>(
            "SELECT t.max_groups, (SELECT COUNT(*) FROM mirror_groups g WHERE g.token_id = t.id) \
             FROM mirror_tokens t WHERE t.id = $1",
        )
        .bind(group.token_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable("counting a token's groups"))?;
        let max_groups = non_negative(column::<DB, i64>(&row, 0)?, "max_groups")?;
        let count = non_negative(column::<DB, i64>(&row, 1)?, "group count")?;
        if count >= max_groups {
            return Ok(GroupRegistration::GroupQuota);
        }
        let sql = format!(
            "INSERT INTO mirror_groups ({GROUP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 0, 0, $6)"
        );
        sqlx::query::<DB>(&sql)
            .bind(&group.group_pk[..])
            .bind(&group.signing_pk[..])
            .bind(&group.link_key[..])
            .bind(&group.creation_proof[..])
            .bind(group.token_id.as_str())
            .bind(to_sql(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable("storing a mirrored group"))?;
        tx.commit()
            .await
            .map_err(unavailable("committing a mirror registration"))?;
        Ok(GroupRegistration::Registered)
    }

    /// Deletes the log data (events, heads, entries, log rows) of `groups`, except those this
    /// node's account is a member of (they have a group record): the log tables are shared,
    /// and a member's own copy is not the mirror's to delete.
    async fn delete_logs(tx: &mut DB::Connection, groups: &[[u8; 32]]) -> Result<()> {
        for group in groups {
            for kind in [LogKind::Metadata, LogKind::Messages] {
                sqlx::query::<DB>("DELETE FROM mirror_batches WHERE log_id = $1")
                    .bind(&LogId::new(*group, kind).to_bytes()[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("forgetting a mirrored log's batches"))?;
            }
            let record = ValueKey::Group { group_pk: *group }.to_string();
            let member = sqlx::query::<DB>("SELECT 1 FROM node_values WHERE key = $1")
                .bind(record.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable("looking a group record up"))?;
            if member.is_some() {
                continue;
            }
            for kind in [LogKind::Metadata, LogKind::Messages] {
                let log = LogId::new(*group, kind).to_bytes();
                // Take the log's row lock first, as every append does: an append in flight
                // commits before the deletes start, so none can add heads between the delete
                // of heads and that of entries (PostgreSQL refused the entries' delete with
                // a foreign-key violation then). The appends' upsert, not an `UPDATE`, which
                // found no row while the log's first append had not committed yet and so
                // waited for nothing. On SQLite the transaction already writes.
                sqlx::query::<DB>(LOCK_LOG_ROW)
                    .bind(&log[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("locking a mirrored log"))?;
                for table in ["events", "heads", "entries"] {
                    let sql = format!(
                        "DELETE FROM {table} WHERE log_key IN \
                         (SELECT log_key FROM logs WHERE log_id = $1)"
                    );
                    sqlx::query::<DB>(&sql)
                        .bind(&log[..])
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable("deleting a mirrored log"))?;
                }
                sqlx::query::<DB>("DELETE FROM logs WHERE log_id = $1")
                    .bind(&log[..])
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("deleting a mirrored log"))?;
            }
        }
        Ok(())
    }

    async fn revoke_token(writer: &Pool<DB>, id: &str) -> Result<Option<Vec<[u8; 32]>>> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a token revocation"))?;
        if !Self::lock_token(&mut tx, id).await? {
            return Ok(None);
        }
        let groups: Vec<[u8; 32]> =
            sqlx::query::<DB>("SELECT group_pk FROM mirror_groups WHERE token_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable("listing a token's groups"))?
                .iter()
                .map(|row| {
                    column::<DB, Vec<u8>>(row, 0)?.try_into().map_err(|_| {
                        StorageError::Corrupt("mirror_groups.group_pk is not 32 bytes".into())
                    })
                })
                .collect::<Result<_>>()?;
        Self::delete_logs(&mut tx, &groups).await?;
        for sql in [
            "DELETE FROM mirror_groups WHERE token_id = $1",
            "DELETE FROM mirror_tokens WHERE id = $1",
        ] {
            sqlx::query::<DB>(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("revoking a mirror token"))?;
        }
        tx.commit()
            .await
            .map_err(unavailable("committing a token revocation"))?;
        Ok(Some(groups))
    }

    async fn unregister_group(
        writer: &Pool<DB>,
        group_pk: &[u8; 32],
        token_id: &str,
    ) -> Result<bool> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a mirror unregistration"))?;
        let done =
            sqlx::query::<DB>("DELETE FROM mirror_groups WHERE group_pk = $1 AND token_id = $2")
                .bind(&group_pk[..])
                .bind(token_id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("unregistering a mirrored group"))?;
        let removed = DB::rows_affected(&done) > 0;
        if removed {
            Self::delete_logs(&mut tx, &[*group_pk]).await?;
        }
        tx.commit()
            .await
            .map_err(unavailable("committing a mirror unregistration"))?;
        Ok(removed)
    }

    async fn record_append(writer: &Pool<DB>, batch: &AppendedBatch) -> Result<()> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a mirrored append's record"))?;
        let done = sqlx::query::<DB>(
            "UPDATE mirror_groups SET entries = entries + $2, bytes = bytes + $3, \
             last_activity = $4 WHERE group_pk = $1",
        )
        .bind(&batch.log.group_pk()[..])
        .bind(to_sql(batch.entries))
        .bind(to_sql(batch.bytes))
        .bind(to_sql(batch.at))
        .execute(&mut *tx)
        .await
        .map_err(unavailable("counting a mirrored append"))?;
        if DB::rows_affected(&done) > 0 {
            sqlx::query::<DB>(
                "INSERT INTO mirror_batches (log_id, last_cursor, stored_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (log_id, last_cursor) DO NOTHING",
            )
            .bind(&batch.log.to_bytes()[..])
            .bind(to_sql(batch.last_cursor))
            .bind(to_sql(batch.at))
            .execute(&mut *tx)
            .await
            .map_err(unavailable("recording a mirrored batch"))?;
        }
        tx.commit()
            .await
            .map_err(unavailable("committing a mirrored append's record"))?;
        Ok(())
    }

    async fn purge_before(writer: &Pool<DB>, cutoff: u64) -> Result<Purged> {
        let mut tx = writer
            .begin()
            .await
            .map_err(unavailable("starting a retention purge"))?;
        let due = sqlx::query::<DB>(
            "SELECT log_id, MAX(last_cursor) FROM mirror_batches WHERE stored_at < $1 \
             GROUP BY log_id",
        )
        .bind(to_sql(cutoff))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable("listing batches past retention"))?;
        let mut purged = Purged::default();
        for row in &due {
            let log_id: Vec<u8> = column::<DB, _>(row, 0)?;
            let upto: i64 = column::<DB, _>(row, 1)?;
            let found = Self::purge_log(&mut tx, &log_id, upto).await?;
            purged.entries += found.entries;
            purged.bytes += found.bytes;
            sqlx::query::<DB>("DELETE FROM mirror_batches WHERE log_id = $1 AND last_cursor <= $2")
                .bind(&log_id[..])
                .bind(upto)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("forgetting purged batches"))?;
        }
        tx.commit()
            .await
            .map_err(unavailable("committing a retention purge"))?;
        Ok(purged)
    }

    /// Deletes the entries of `log_id` up to cursor `upto` that are not heads, and takes them
    /// off the log's and the group's counts.
    async fn purge_log(tx: &mut DB::Connection, log_id: &[u8], upto: i64) -> Result<Purged> {
        const DOOMED: &str = "FROM entries e JOIN logs l ON l.log_key = e.log_key \
             WHERE l.log_id = $1 AND e.cursor <= $2 AND NOT EXISTS \
             (SELECT 1 FROM heads h WHERE h.log_key = e.log_key AND h.entry_id = e.entry_id)";
        let row = sqlx::query::<DB>(&format!(
            "SELECT COUNT(*), CAST(COALESCE(SUM(LENGTH(e.bytes)), 0) AS BIGINT) {DOOMED}"
        ))
        .bind(log_id)
        .bind(upto)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable("measuring entries past retention"))?;
        let purged = Purged {
            entries: non_negative(column::<DB, i64>(&row, 0)?, "purged entries")?,
            bytes: non_negative(column::<DB, i64>(&row, 1)?, "purged bytes")?,
        };
        if purged.entries == 0 {
            return Ok(purged);
        }
        sqlx::query::<DB>(
            "DELETE FROM entries WHERE log_key = (SELECT log_key FROM logs WHERE log_id = $1) \
             AND cursor <= $2 AND NOT EXISTS (SELECT 1 FROM heads h \
             WHERE h.log_key = entries.log_key AND h.entry_id = entries.entry_id)",
        )
        .bind(log_id)
        .bind(upto)
        .execute(&mut *tx)
        .await
        .map_err(unavailable("deleting entries past retention"))?;
        sqlx::query::<DB>("UPDATE logs SET entry_count = entry_count - $2 WHERE log_id = $1")
            .bind(log_id)
            .bind(to_sql(purged.entries))
            .execute(&mut *tx)
            .await
            .map_err(unavailable("counting purged entries"))?;
        sqlx::query::<DB>(
            "UPDATE mirror_groups SET entries = entries - $2, bytes = bytes - $3 \
             WHERE group_pk = $1",
        )
        .bind(&log_id[..32])
        .bind(to_sql(purged.entries))
        .bind(to_sql(purged.bytes))
        .execute(&mut *tx)
        .await
        .map_err(unavailable("counting purged entries"))?;
        Ok(purged)
    }
}

#[async_trait]
impl<DB> MirrorStore for SqlStorage<DB>
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
    async fn insert_token(&self, token: &NewToken) -> Result<()> {
        self.guard(MirrorSql::<DB>::insert_token(self.writer(), token))
            .await
    }

    async fn token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<TokenUsage>> {
        let call =
            MirrorSql::<DB>::token_where(self.reader(), "t.token_hash = $1", token_hash, None);
        self.guard(call).await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenUsage>> {
        let call = MirrorSql::<DB>::token_where(self.reader(), "t.id = $1", &[], Some(id));
        self.guard(call).await
    }

    async fn tokens(&self) -> Result<Vec<TokenUsage>> {
        self.guard(MirrorSql::<DB>::tokens(self.reader())).await
    }

    async fn revoke_token(&self, id: &str) -> Result<Option<Vec<[u8; 32]>>> {
        self.guard(MirrorSql::<DB>::revoke_token(self.writer(), id))
            .await
    }

    async fn register_group(
        &self,
        group: &NewMirroredGroup,
        now: u64,
    ) -> Result<GroupRegistration> {
        let call = MirrorSql::<DB>::register_group(self.writer(), group, now);
        self.guard(call).await
    }

    async fn unregister_group(&self, group_pk: &[u8; 32], token_id: &str) -> Result<bool> {
        let call = MirrorSql::<DB>::unregister_group(self.writer(), group_pk, token_id);
        self.guard(call).await
    }

    async fn groups(&self) -> Result<Vec<MirroredGroup>> {
        self.guard(MirrorSql::<DB>::groups(self.reader())).await
    }

    async fn record_append(&self, batch: &AppendedBatch) -> Result<()> {
        self.guard(MirrorSql::<DB>::record_append(self.writer(), batch))
            .await
    }

    async fn purge_before(&self, cutoff: u64) -> Result<Purged> {
        self.guard(MirrorSql::<DB>::purge_before(self.writer(), cutoff))
            .await
    }
}
