//! Node values: small records by key (sealed by their writers), read by key or by key
//! prefix, written alone or inside a commit.

use std::{collections::HashMap, marker::PhantomData};

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{
    columns::{column, unavailable},
    statement::Statement,
    writes::Writes,
    Dialect, IDS_PER_STATEMENT, ROWS_PER_INSERT,
};
use crate::storage::{Result, Sealed};

/// Deletes a node value.
const DELETE_VALUE: &str = "DELETE FROM node_values WHERE key = $1";
/// Puts a node value, replacing the previous one.
const PUT_VALUE: &str = "INSERT INTO node_values (key, value) VALUES ($1, $2) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The SQL of node values, for one engine.
pub(super) struct Values<DB>(PhantomData<DB>);

impl<DB> Values<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// As [`crate::storage::Storage::get_value`].
    pub(super) async fn get(reader: &Pool<DB>, key: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query::<DB>("SELECT value FROM node_values WHERE key = $1")
            .bind(key)
            .fetch_optional(reader)
            .await
            .map_err(unavailable("reading a node value"))?;
        row.as_ref().map(|row| column::<DB, _>(row, 0)).transpose()
    }

    /// As [`crate::storage::Storage::put_value`].
    pub(super) async fn put(writer: &Pool<DB>, key: &str, value: &[u8]) -> Result<()> {
        sqlx::query::<DB>(PUT_VALUE)
            .bind(key)
            .bind(value)
            .execute(writer)
            .await
            .map_err(unavailable("storing a node value"))?;
        Ok(())
    }

    /// As [`crate::storage::Storage::delete_value`].
    pub(super) async fn delete(writer: &Pool<DB>, key: &str) -> Result<()> {
        sqlx::query::<DB>(DELETE_VALUE)
            .bind(key)
            .execute(writer)
            .await
            .map_err(unavailable("deleting a node value"))?;
        Ok(())
    }

    /// As [`crate::storage::Storage::values_with_prefix`].
    pub(super) async fn with_prefix(
        reader: &Pool<DB>,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Keys compare bytewise on both engines (PostgreSQL: `COLLATE "C"`), so the keys with
        // a prefix are one range of the primary key index.
        let end = prefix_end(prefix);
        let mut query = Statement::<DB>::new("SELECT key, value FROM node_values WHERE key >= ");
        query.bind(prefix);
        if let Some(end) = &end {
            query.push(" AND key < ").bind(end.as_str());
        }
        if let Some(after) = after {
            query.push(" AND key > ").bind(after);
        }
        query.push(" ORDER BY key LIMIT ").bind(i64::from(limit));
        let (sql, args) = query.finish()?;
        sqlx::query_with(&sql, args)
            .fetch_all(reader)
            .await
            .map_err(unavailable("listing node values"))?
            .iter()
            .map(|row| Ok((column::<DB, _>(row, 0)?, column::<DB, _>(row, 1)?)))
            .collect()
    }

    /// Queues the writes of node values in a transaction (the last value of a key given
    /// twice wins).
    pub(super) fn queue_put<'w>(values: &'w [(String, Sealed)], writes: &mut Writes<'w, DB>) {
        let mut latest: HashMap<&str, usize> = HashMap::with_capacity(values.len());
        for (index, (key, _)) in values.iter().enumerate() {
            latest.insert(key.as_str(), index);
        }
        let rows: Vec<&(String, Sealed)> = values
            .iter()
            .enumerate()
            .filter(|(index, (key, _))| latest.get(key.as_str()) == Some(index))
            .map(|(_, value)| value)
            .collect();
        for rows in rows.chunks(ROWS_PER_INSERT) {
            let only_if = writes.only_if();
            let insert = writes.statement("INSERT INTO node_values (key, value) ");
            // A guarded write needs a `WHERE`, which `VALUES` does not take.
            if only_if.is_guarded() {
                insert.push("SELECT * FROM (");
            }
            insert.push_values(rows, |values, (key, value)| {
                values.bind(key.as_str()).bind(value.as_bytes());
            });
            if only_if.is_guarded() {
                insert.push(") AS v").push(only_if.as_where());
            }
            insert.push(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
        }
    }

    /// Queues the deletion of node values in a transaction, many per statement.
    pub(super) fn queue_delete<'w>(keys: &'w [String], writes: &mut Writes<'w, DB>) {
        for keys in keys.chunks(IDS_PER_STATEMENT) {
            let only_if = writes.only_if();
            let delete = writes.statement("DELETE FROM node_values WHERE key IN (");
            let mut list = delete.list();
            for key in keys {
                list.bind(key.as_str());
            }
            delete.push(")").push(only_if.as_and());
        }
    }
}

/// The least string above every string starting with `prefix`, in code point (UTF-8 byte)
/// order; `None` when there is none (an empty prefix, or one of only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end("group/").as_deref(), Some("group0"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        let end = prefix_end("g/é").unwrap();
        for key in ["g/é", "g/é/x", "g/é\u{10FFFF}\u{10FFFF}"] {
            assert!(key < end.as_str(), "{key}");
        }
        assert!("g/ê" >= end.as_str());
    }
}
