//! [`Writes`]: the statements that write one transaction, queued once its reads are done and
//! run in as few round trips as the engine allows.

use sqlx::{Executor, IntoArguments};

use super::{columns::unavailable, Dialect, Statement};
use crate::storage::Result;

/// How an engine runs several writes in one execution ([`Dialect::COMBINED_WRITES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Combined {
    /// Statements separated by `;`, run in order: one command to sqlx's SQLite worker thread
    /// instead of one per statement (no change this machine could measure, docs/decisions.md).
    Sequence,
    /// One statement whose writes are data-modifying `WITH` queries: one round trip to the
    /// server instead of one per write (PostgreSQL's extended protocol takes one statement
    /// per execution). They run on one snapshot in no set order, so they must not touch one
    /// row twice: [`Writes::in_order`] keeps such writes apart.
    WithQueries,
}

/// Bind parameters one combined statement takes at most (PostgreSQL allows 65,535).
const MAX_COMBINED_ARGUMENTS: usize = 30_000;

/// Name of the first write of a combined statement: in a guarded one, the guard.
const GUARD: &str = "w0";

/// What a write adds to its SQL so that it applies only if the guard of its statement did
/// ([`Writes::guarded`]); nothing in unguarded writes. Take it before starting the write.
#[derive(Debug, Clone, Copy)]
pub(super) struct OnlyIf(bool);

impl OnlyIf {
    /// After rows given by a `SELECT` (an `INSERT`'s source, without `WHERE`).
    pub(super) fn as_where(self) -> &'static str {
        if self.0 {
            " WHERE EXISTS (SELECT 1 FROM w0)"
        } else {
            ""
        }
    }

    /// After a `WHERE` condition.
    pub(super) fn as_and(self) -> &'static str {
        if self.0 {
            " AND EXISTS (SELECT 1 FROM w0)"
        } else {
            ""
        }
    }

    /// Whether writes must add a condition.
    pub(super) fn is_guarded(self) -> bool {
        self.0
    }
}

/// The writes of one transaction, in order, combined into as few executions as the engine
/// allows ([`Combined`]).
pub(super) struct Writes<'a, DB: Dialect> {
    done: Vec<Statement<'a, DB>>,
    current: Option<Statement<'a, DB>>,
    /// Writes combined in `current`.
    in_current: usize,
    /// Whether writes may be combined.
    combine: bool,
    /// One statement whose first write is a guard the others depend on.
    guarded: bool,
}

impl<'a, DB: Dialect> Writes<'a, DB> {
    /// No writes yet; the writes to come touch each row at most once.
    pub(super) fn new() -> Self {
        Self {
            done: Vec::new(),
            current: None,
            in_current: 0,
            combine: true,
            guarded: false,
        }
    }

    /// No writes yet; the first write to come is the guard, an `UPDATE ... RETURNING` that
    /// returns a row only where it applies, and the others must apply only if it did
    /// ([`run_guarded`] tells whether it did). With [`Combined::WithQueries`] they all go in
    /// one statement: every later write adds [`Writes::only_if`] to its SQL, so the statement
    /// writes everything or nothing and returns the number of rows the guard wrote; they must
    /// touch each row at most once and stay under the engine's limit of bind parameters. With
    /// [`Combined::Sequence`] they run in order in a transaction, rolled back when the guard
    /// returned nothing.
    pub(super) fn guarded() -> Self {
        Self {
            guarded: true,
            ..Self::new()
        }
    }

    /// Whether the writes are one guarded statement with data-modifying `WITH` queries.
    fn guarded_with_queries(&self) -> bool {
        self.guarded && DB::COMBINED_WRITES == Combined::WithQueries
    }

    /// The condition the next write adds to its SQL (none before the guard is queued, none
    /// where a transaction holds the writes, [`Writes::guarded`]).
    pub(super) fn only_if(&self) -> OnlyIf {
        OnlyIf(self.guarded_with_queries() && self.current.is_some())
    }

    /// No writes yet; the writes to come may touch one row more than once, so each must see
    /// the ones before it (combined only where they still run in order).
    pub(super) fn in_order() -> Self {
        Self {
            combine: DB::COMBINED_WRITES == Combined::Sequence,
            ..Self::new()
        }
    }

    /// Starts a statement with `sql`: bind and extend the statement returned.
    pub(super) fn statement(&mut self, sql: &str) -> &mut Statement<'a, DB> {
        let combine = self.current.as_ref().is_some_and(|c| {
            self.guarded_with_queries() || (self.combine && c.arguments() < MAX_COMBINED_ARGUMENTS)
        });
        match self.current.take() {
            Some(mut current) if combine => {
                match DB::COMBINED_WRITES {
                    Combined::Sequence => {
                        current.push(";\n");
                    }
                    Combined::WithQueries => {
                        if self.in_current == 1 {
                            current.prefix(&format!("WITH {GUARD} AS ("));
                        }
                        current.push(&format!("), w{} AS (", self.in_current));
                    }
                }
                current.push(sql);
                self.in_current += 1;
                self.current.insert(current)
            }
            previous => {
                if let Some(previous) = previous {
                    let closed = self.close(previous);
                    self.done.push(closed);
                }
                self.in_current = 1;
                self.current.insert(Statement::new(sql))
            }
        }
    }

    /// Ends a combined statement.
    fn close(&self, mut statement: Statement<'a, DB>) -> Statement<'a, DB> {
        if self.guarded_with_queries() {
            if self.in_current == 1 {
                statement.prefix(&format!("WITH {GUARD} AS ("));
            }
            statement.push(&format!(") SELECT count(*) FROM {GUARD}"));
        } else if DB::COMBINED_WRITES == Combined::WithQueries && self.in_current > 1 {
            statement.push(") SELECT 1");
        }
        statement
    }

    /// The SQL texts and their arguments, to give to [`run`]. (sqlx ties a statement's text
    /// and arguments to one lifetime, so the texts must outlive the arguments' borrows: the
    /// caller holds them.)
    pub(super) fn finish(mut self) -> Result<(Vec<String>, Vec<DB::Arguments<'a>>)> {
        if let Some(current) = self.current.take() {
            let closed = self.close(current);
            self.done.push(closed);
        }
        let mut texts = Vec::with_capacity(self.done.len());
        let mut arguments = Vec::with_capacity(self.done.len());
        for statement in self.done {
            let (sql, args) = statement.finish()?;
            texts.push(sql);
            arguments.push(args);
        }
        Ok((texts, arguments))
    }
}

/// Runs finished writes ([`Writes::finish`]) in the transaction on `tx`; `what` names them
/// in errors.
pub(super) async fn run<'a, DB: Dialect>(
    tx: &mut DB::Connection,
    texts: &'a [String],
    arguments: Vec<DB::Arguments<'a>>,
    what: &'static str,
) -> Result<()>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    for (sql, args) in texts.iter().zip(arguments) {
        sqlx::query_with(sql, args)
            .execute(&mut *tx)
            .await
            .map_err(unavailable(what))?;
    }
    Ok(())
}

/// Runs guarded writes ([`Writes::guarded`]) on their own, as one transaction: whether the
/// guard applied, and with it every write. When it did not, nothing was written. On SQLite a
/// write that fails before the transaction commits (a constraint the log's new state would
/// break) also leaves nothing written and returns `false`; only a failed `COMMIT`, which may
/// have landed, is an error there.
pub(super) async fn run_guarded<'a, DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    texts: &'a [String],
    mut arguments: Vec<DB::Arguments<'a>>,
    what: &'static str,
) -> Result<bool>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c sqlx::Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    if DB::COMBINED_WRITES == Combined::Sequence {
        return run_guarded_in_transaction(pool, texts, arguments, what).await;
    }
    let (Some(sql), Some(args), 1) = (texts.first(), arguments.pop(), texts.len()) else {
        return Err(crate::storage::StorageError::Unavailable(format!(
            "{what}: a guarded commit must be one statement"
        )));
    };
    let row = sqlx::query_with(sql, args)
        .fetch_one(pool)
        .await
        .map_err(unavailable(what))?;
    let applied: i64 = super::columns::column::<DB, _>(&row, 0)?;
    Ok(applied > 0)
}

/// [`run_guarded`] for writes in sequence: `BEGIN`, the writes (the guard first, its row
/// fetched), then `COMMIT`, or `ROLLBACK` when the guard returned nothing or a write failed.
async fn run_guarded_in_transaction<'a, DB: Dialect>(
    pool: &sqlx::Pool<DB>,
    texts: &'a [String],
    arguments: Vec<DB::Arguments<'a>>,
    what: &'static str,
) -> Result<bool>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut statements = texts.iter().zip(arguments);
    let Some((guard_sql, guard_args)) = statements.next() else {
        return Err(crate::storage::StorageError::Unavailable(format!(
            "{what}: guarded writes without a guard"
        )));
    };
    let mut tx = pool.begin().await.map_err(unavailable(what))?;
    let ran: sqlx::Result<bool> = async {
        // The guard is the first statement of the first execution, the only one with rows.
        let rows = sqlx::query_with(guard_sql, guard_args)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(false);
        }
        for (sql, args) in statements {
            sqlx::query_with(sql, args).execute(&mut *tx).await?;
        }
        Ok(true)
    }
    .await;
    if !matches!(ran, Ok(true)) {
        if let Err(err) = &ran {
            tracing::debug!(%err, "{what}: a write from the known state failed, rolled back");
        }
        tx.rollback().await.map_err(unavailable(what))?;
        return Ok(false);
    }
    tx.commit().await.map_err(unavailable(what))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    use super::*;

    /// An insert and a delete with one parameter each, as `writes` combines them.
    fn two_writes<DB: Dialect>(mut writes: Writes<'_, DB>) -> Vec<String>
    where
        for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        writes
            .statement("INSERT INTO a (x) VALUES (")
            .bind(1i64)
            .push(")");
        writes.statement("DELETE FROM b WHERE x = ").bind(2i64);
        writes.finish().map(|(texts, _)| texts).unwrap_or_default()
    }

    #[test]
    fn postgres_writes_become_with_queries_numbered_across_them() {
        assert_eq!(
            two_writes(Writes::<Postgres>::new()),
            vec![
                "WITH w0 AS (INSERT INTO a (x) VALUES ($1)), \
                 w1 AS (DELETE FROM b WHERE x = $2) SELECT 1"
            ]
        );
        assert_eq!(
            two_writes(Writes::<Postgres>::in_order()),
            vec![
                "INSERT INTO a (x) VALUES ($1)",
                "DELETE FROM b WHERE x = $1"
            ]
        );
        let mut one = Writes::<Postgres>::new();
        one.statement("DELETE FROM b WHERE x = ").bind(2i64);
        assert_eq!(
            one.finish().map(|(texts, _)| texts).unwrap_or_default(),
            vec!["DELETE FROM b WHERE x = $1"]
        );
    }

    #[test]
    fn guarded_writes_are_one_statement_that_counts_the_guards_rows() {
        let mut writes = Writes::<Postgres>::guarded();
        assert!(
            !writes.only_if().is_guarded(),
            "the guard itself has no condition"
        );
        writes
            .statement("UPDATE logs SET x = ")
            .bind(1i64)
            .push(" RETURNING log_key");
        let only_if = writes.only_if();
        writes
            .statement("DELETE FROM b WHERE x = ")
            .bind(2i64)
            .push(only_if.as_and());
        let only_if = writes.only_if();
        writes
            .statement("INSERT INTO a (x) SELECT * FROM unnest(")
            .bind(vec![3i64])
            .push(")")
            .push(only_if.as_where());
        assert_eq!(
            writes.finish().map(|(texts, _)| texts).unwrap_or_default(),
            vec![
                "WITH w0 AS (UPDATE logs SET x = $1 RETURNING log_key), \
                 w1 AS (DELETE FROM b WHERE x = $2 AND EXISTS (SELECT 1 FROM w0)), \
                 w2 AS (INSERT INTO a (x) SELECT * FROM unnest($3) \
                 WHERE EXISTS (SELECT 1 FROM w0)) SELECT count(*) FROM w0"
            ]
        );
        let mut alone = Writes::<Postgres>::guarded();
        alone
            .statement("UPDATE logs SET x = ")
            .bind(1i64)
            .push(" RETURNING log_key");
        assert_eq!(
            alone.finish().map(|(texts, _)| texts).unwrap_or_default(),
            vec!["WITH w0 AS (UPDATE logs SET x = $1 RETURNING log_key) SELECT count(*) FROM w0"]
        );
    }

    #[test]
    fn sqlite_writes_run_in_sequence_either_way() {
        let sequence = vec!["INSERT INTO a (x) VALUES (?);\nDELETE FROM b WHERE x = ?"];
        assert_eq!(two_writes(Writes::<Sqlite>::new()), sequence);
        assert_eq!(two_writes(Writes::<Sqlite>::in_order()), sequence);
        // Guarded writes run in a transaction: the guard is the first statement, the others
        // carry no condition.
        let mut guarded = Writes::<Sqlite>::guarded();
        guarded
            .statement("UPDATE logs SET x = ")
            .bind(1i64)
            .push(" RETURNING log_key");
        let only_if = guarded.only_if();
        assert!(!only_if.is_guarded());
        guarded
            .statement("DELETE FROM b WHERE x = ")
            .bind(2i64)
            .push(only_if.as_and());
        assert_eq!(
            guarded.finish().map(|(texts, _)| texts).unwrap_or_default(),
            vec!["UPDATE logs SET x = ? RETURNING log_key;\nDELETE FROM b WHERE x = ?"]
        );
    }
}
