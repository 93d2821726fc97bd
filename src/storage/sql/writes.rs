//! [`Writes`]: the statements that write one transaction, queued once its reads are done and
//! run in as few round trips as the engine allows.

use sqlx::{Executor, IntoArguments};

use super::{columns::unavailable, Dialect, Statement};
use crate::storage::Result;

/// The writes of one transaction, in order. On SQLite they run as one execution of several
/// statements: one command to sqlx's worker thread instead of one per statement (fewer
/// thread hand-offs; no change this machine could measure, docs/decisions.md). PostgreSQL's
/// extended protocol takes one statement per execution, so there each runs on its own.
pub(super) struct Writes<'a, DB: Dialect> {
    done: Vec<Statement<'a, DB>>,
    current: Option<Statement<'a, DB>>,
}

impl<'a, DB: Dialect> Writes<'a, DB> {
    /// No writes yet.
    pub(super) fn new() -> Self {
        Self {
            done: Vec::new(),
            current: None,
        }
    }

    /// Starts a statement with `sql`: bind and extend the statement returned.
    pub(super) fn statement(&mut self, sql: &str) -> &mut Statement<'a, DB> {
        match self.current.take() {
            Some(mut current) if DB::COMBINES_STATEMENTS => {
                current.push(";\n").push(sql);
                self.current.insert(current)
            }
            Some(current) => {
                self.done.push(current);
                self.current.insert(Statement::new(sql))
            }
            None => self.current.insert(Statement::new(sql)),
        }
    }

    /// The SQL texts and their arguments, to give to [`run`]. (sqlx ties a statement's text
    /// and arguments to one lifetime, so the texts must outlive the arguments' borrows: the
    /// caller holds them.)
    pub(super) fn finish(self) -> Result<(Vec<String>, Vec<DB::Arguments<'a>>)> {
        let mut texts = Vec::with_capacity(self.done.len() + 1);
        let mut arguments = Vec::with_capacity(self.done.len() + 1);
        for statement in self.done.into_iter().chain(self.current) {
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
