//! The mirror store's SQL, generic over the engine, and [`MirrorStore`] for [`SqlStorage`].

use std::marker::PhantomData;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    GroupRegistration, MirrorStore, MirroredGroup, NewMirroredGroup, NewToken, TokenUsage,
};
use crate::{
    log::{LogId, LogKind},
    storage::{
        rendezvous::RendezvousDialect,
        sql::columns::{column, cursor_to_sql as to_sql, non_negative, unavailable},
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

    async fn record_append(
        writer: &Pool<DB>,
        group_pk: &[u8; 32],
        entries: u64,
        bytes: u64,
        now: u64,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE mirror_groups SET entries = entries + $2, bytes = bytes + $3, \
             last_activity = $4 WHERE group_pk = $1",
        )
        .bind(&group_pk[..])
        .bind(to_sql(entries))
        .bind(to_sql(bytes))
        .bind(to_sql(now))
        .execute(writer)
        .await
        .map_err(unavailable("counting a mirrored append"))?;
        Ok(())
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

    async fn record_append(
        &self,
        group_pk: &[u8; 32],
        entries: u64,
        bytes: u64,
        now: u64,
    ) -> Result<()> {
        let call = MirrorSql::<DB>::record_append(self.writer(), group_pk, entries, bytes, now);
        self.guard(call).await
    }
}
