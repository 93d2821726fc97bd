//! PostgreSQL backend: for production, and for several nodes sharing one state.
//!
//! Appends to one log are serialised by a row lock on the log's row (see [`super::sql`]), so
//! cursors are committed in increasing order even with several writers on one database;
//! appends to different logs run in parallel.

use std::{str::FromStr, time::Duration};

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    Postgres,
};

use super::{
    sql::{Dialect, SqlStore, Statement},
    Backend, Result, StorageError,
};
use crate::log::EntryId;

/// Migrations of the PostgreSQL schema, applied at connect time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Most connections the pool opens to the server.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a free connection (or for the server to accept one).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage in a PostgreSQL database.
#[derive(Debug)]
pub struct PostgresStorage {
    store: SqlStore<Postgres>,
}

impl PostgresStorage {
    /// Connects to the database named by a `postgres://` URL and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|err| StorageError::Config(format!("bad PostgreSQL URL: {err}")))?
            // Plan every statement for its parameters: a generic plan cached while a log was
            // empty makes id lookups slower and slower as the log grows.
            .options([("plan_cache_mode", "force_custom_plan")]);
        let target = format!(
            "database {:?} on {}:{}",
            options.get_database().unwrap_or_default(),
            options.get_host(),
            options.get_port()
        );
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|err| {
                StorageError::Unavailable(format!("cannot connect to PostgreSQL {target}: {err}"))
            })?;
        MIGRATOR.run(&pool).await?;
        // Fresh planner statistics: without them (autovacuum off or not yet run) cursor scans
        // fall back to reading whole logs.
        sqlx::query("ANALYZE")
            .execute(&pool)
            .await
            .map_err(|err| StorageError::Unavailable(format!("ANALYZE failed: {err}")))?;
        Ok(Self {
            store: SqlStore::new(pool.clone(), pool),
        })
    }
}

impl Dialect for Postgres {
    /// `column = ANY(?)` with one `bytea[]` parameter. A long `IN ($2, $3, ...)` list is
    /// planned without knowing its values and, on a table without fresh statistics, checked
    /// row by row against every id: seconds per batch once a log holds a few 10,000 entries.
    fn push_id_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [EntryId]) {
        let ids: Vec<&'a [u8]> = ids.iter().map(|id| &id.as_bytes()[..]).collect();
        statement.push(column).push(" = ANY(").bind(ids).push(")");
    }
}

super::sql::storage_via_sql_store!(PostgresStorage, Backend::Postgres);
