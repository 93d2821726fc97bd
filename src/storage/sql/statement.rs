//! Building statements with many parameters: [`Statement`] and the clauses the log queries
//! share (a log, a list of entry ids, a page of the total order, a list of event kinds).

use std::ops::Bound;

use sqlx::{Arguments, Database, Encode, Type};

use super::{columns::lamport_to_sql, Dialect};
use crate::{
    log::EntryId,
    storage::{Direction, OrderRange, Result, StorageError},
};

/// A statement with many parameters, built with the engine's own placeholders (`?` on SQLite,
/// `$N` on PostgreSQL): sqlx looks numbered SQLite parameters up by name, which costs time
/// quadratic in their number. (sqlx's `QueryBuilder` cannot be used from code generic over
/// the engine: the borrow it needs outlives the builder.)
pub(crate) struct Statement<'a, DB: Database> {
    sql: String,
    args: DB::Arguments<'a>,
    /// The first argument that failed to encode, reported when the statement is run.
    error: Option<String>,
}

impl<'a, DB: Database> Statement<'a, DB> {
    /// A statement starting with `sql`.
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            args: Default::default(),
            error: None,
        }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Puts SQL text before the statement's text.
    pub(crate) fn prefix(&mut self, sql: &str) -> &mut Self {
        self.sql.insert_str(0, sql);
        self
    }

    /// How many arguments are bound.
    pub(crate) fn arguments(&self) -> usize {
        self.args.len()
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind<T: 'a + Encode<'a, DB> + Type<DB>>(&mut self, value: T) -> &mut Self {
        if self.error.is_none() {
            if let Err(err) = self.args.add(value) {
                self.error = Some(err.to_string());
            } else if self.args.format_placeholder(&mut self.sql).is_err() {
                self.error = Some("cannot format a placeholder".into());
            }
        }
        self
    }

    /// Starts a comma-separated list of placeholders.
    pub(crate) fn list(&mut self) -> List<'_, 'a, DB> {
        List {
            statement: self,
            empty: true,
        }
    }

    /// Appends `VALUES (...), (...)`: one row per item, its placeholders bound by `row`.
    pub(crate) fn push_values<I: IntoIterator>(
        &mut self,
        items: I,
        mut row: impl FnMut(&mut List<'_, 'a, DB>, I::Item),
    ) -> &mut Self {
        self.push("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            self.push(if i == 0 { "(" } else { ", (" });
            row(&mut self.list(), item);
            self.push(")");
        }
        self
    }

    /// The SQL text and its arguments.
    pub(crate) fn finish(self) -> Result<(String, DB::Arguments<'a>)> {
        match self.error {
            Some(err) => Err(StorageError::Unavailable(format!(
                "cannot encode an argument: {err}"
            ))),
            None => Ok((self.sql, self.args)),
        }
    }
}

/// One column of the rows a multi-row `INSERT` writes ([`super::Dialect::push_rows`]); every
/// column of a statement holds the same number of rows.
pub(crate) enum Column<'a> {
    /// 64-bit integers.
    Int(Vec<i64>),
    /// Byte strings.
    Blob(Vec<&'a [u8]>),
}

impl Column<'_> {
    /// Its number of rows.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Int(values) => values.len(),
            Self::Blob(values) => values.len(),
        }
    }
}

/// Placeholders separated by commas, in a [`Statement`].
pub(crate) struct List<'s, 'a, DB: Database> {
    statement: &'s mut Statement<'a, DB>,
    empty: bool,
}

impl<'a, DB: Database> List<'_, 'a, DB> {
    /// Appends a placeholder for `value`, after a comma unless it is the first.
    pub(crate) fn bind<T: 'a + Encode<'a, DB> + Type<DB>>(&mut self, value: T) -> &mut Self {
        if !self.empty {
            self.statement.push(", ");
        }
        self.empty = false;
        self.statement.bind(value);
        self
    }
}

/// A log in a statement: by its id, or by its key once a transaction has locked it.
#[derive(Debug, Clone, Copy)]
pub(super) enum LogRef<'a> {
    /// The log's id bytes ([`crate::log::LogId::to_bytes`]).
    Id(&'a [u8]),
    /// The log's `logs.log_key`.
    Key(i64),
}

/// Appends a condition selecting the rows of `log`.
pub(super) fn push_log<'a, DB>(query: &mut Statement<'a, DB>, log: LogRef<'a>)
where
    DB: Database,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    match log {
        LogRef::Id(id) => query
            .push("log_key = (SELECT log_key FROM logs WHERE log_id = ")
            .bind(id)
            .push(")"),
        LogRef::Key(key) => query.push("log_key = ").bind(key),
    };
}

/// `{statement} WHERE <log> AND entry_id` in `ids`, with the log and `ids` bound.
pub(super) fn ids_in_log<'a, DB>(
    statement: &str,
    log: LogRef<'a>,
    ids: &'a [EntryId],
) -> Statement<'a, DB>
where
    DB: Dialect,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let mut query = Statement::new(statement);
    query.push(" WHERE ");
    push_log(&mut query, log);
    query.push(" AND ");
    DB::push_id_in(&mut query, "entry_id", ids);
    query
}

/// Appends the bounds of `range` on the total order `(lamport, entry_id)`, then its order
/// and limit: ` AND (lamport, entry_id) > (?, ?) ... ORDER BY lamport, entry_id LIMIT ?`.
/// Row-value comparisons walk the `(log_key, lamport, entry_id)` indexes on both engines.
pub(super) fn push_order_range<'a, DB>(query: &mut Statement<'a, DB>, range: &'a OrderRange)
where
    DB: Database,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    for (bound, included, excluded) in [(&range.lower, ">=", ">"), (&range.upper, "<=", "<")] {
        let (key, op) = match bound {
            Bound::Included(key) => (key, included),
            Bound::Excluded(key) => (key, excluded),
            Bound::Unbounded => continue,
        };
        query
            .push(&format!(" AND (lamport, entry_id) {op} ("))
            .bind(lamport_to_sql(key.lamport))
            .push(", ")
            .bind(&key.id.as_bytes()[..])
            .push(")");
    }
    let order = match range.direction {
        Direction::Forward => "ASC",
        Direction::Backward => "DESC",
    };
    query
        .push(&format!(
            " ORDER BY lamport {order}, entry_id {order} LIMIT "
        ))
        .bind(i64::from(range.limit));
}

/// ` AND kind IN (...)` for a non-empty list of kinds.
pub(super) fn push_kinds<'a, DB>(query: &mut Statement<'a, DB>, kinds: &[u8])
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    if kinds.is_empty() {
        return;
    }
    query.push(" AND kind IN (");
    let mut list = query.list();
    for kind in kinds {
        list.bind(i64::from(*kind));
    }
    query.push(")");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{OrderKey, ENTRY_ID_LEN};

    #[test]
    fn order_range_binds_lower_then_upper_then_limit() {
        let key = OrderKey {
            lamport: 1,
            id: EntryId([1; ENTRY_ID_LEN]),
        };
        let range = OrderRange {
            lower: Bound::Excluded(key),
            upper: Bound::Included(key),
            direction: Direction::Backward,
            limit: 5,
        };
        let mut query = Statement::<sqlx::Postgres>::new("WHERE log_key = 1");
        push_order_range(&mut query, &range);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(
            sql,
            "WHERE log_key = 1 AND (lamport, entry_id) > ($1, $2) AND (lamport, entry_id) <= ($3, $4) \
             ORDER BY lamport DESC, entry_id DESC LIMIT $5"
        );
        let all = OrderRange::all(1);
        let mut query = Statement::<sqlx::Sqlite>::new("WHERE log_key = 1");
        push_order_range(&mut query, &all);
        let (sql, _) = query.finish().unwrap();
        assert_eq!(
            sql,
            "WHERE log_key = 1 ORDER BY lamport ASC, entry_id ASC LIMIT ?"
        );
    }
}
