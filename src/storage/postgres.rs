//! PostgreSQL backend: for production, and for several nodes sharing one state.
//!
//! Appends to one log are serialised by a row lock on the log's row (see `storage/sql`), so
//! cursors are committed in increasing order even with several writers on one database;
//! appends to different logs run in parallel.
//!
//! Opening the database tries one direct connection first, with [`CONNECT_TIMEOUT`], so an
//! unreachable server is reported at once with the real cause ("Connection refused") instead
//! of the pool's "pool timed out" after its acquire timeout. That connection then becomes the
//! [`health`](super::health) probe's: `SELECT 1` on it every probe, a new one when it breaks.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    Connection, PgConnection, Postgres,
};

use super::{
    health::{cause_of, HealthMonitor, Probe, PING_TIMEOUT, RECONNECT_TIMEOUT},
    sql::{Column, Combined, Dialect, Statement},
    Result, SqlStorage, StorageError,
};
use crate::log::EntryId;

/// Migrations of the PostgreSQL schema, applied at connect time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// Most connections the pool opens to the server.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a free connection. (A server that went away is found by the
/// health probe, which fails the waiting calls well before this.)
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening the database waits for the first connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Storage in a PostgreSQL database.
pub type PostgresStorage = SqlStorage<Postgres>;

/// The health probe: `SELECT 1` on a connection of its own (never one of the pool's, so a
/// busy pool does not look like an outage).
struct PgProbe {
    options: PgConnectOptions,
    connection: Option<PgConnection>,
}

#[async_trait]
impl Probe for PgProbe {
    async fn probe(&mut self) -> std::result::Result<(), String> {
        if let Some(connection) = &mut self.connection {
            if let Ok(Ok(())) = tokio::time::timeout(PING_TIMEOUT, connection.ping()).await {
                return Ok(());
            }
            // Broken or not answering: a new connection says why (or that all is well).
            self.connection = None;
        }
        self.connection = Some(connect(&self.options, RECONNECT_TIMEOUT).await?);
        Ok(())
    }
}

/// One direct connection, with a timeout; the error is the cause as an operator reads it.
async fn connect(
    options: &PgConnectOptions,
    timeout: Duration,
) -> std::result::Result<PgConnection, String> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(err)) => Err(cause_of(&err)),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

impl SqlStorage<Postgres> {
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
        // One connection first: an unreachable server is reported at once, with its cause.
        let first = connect(&options, CONNECT_TIMEOUT).await.map_err(|cause| {
            StorageError::Unavailable(format!("cannot connect to PostgreSQL {target}: {cause}"))
        })?;
        let database = format!(
            "PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        );
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
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
        let probe = PgProbe {
            options,
            connection: Some(first),
        };
        let health = HealthMonitor::spawn(database, probe);
        let analyzer = super::sql::analyze::Analyzer::new(pool.clone());
        Ok(Self::new(pool.clone(), pool, health, None).with_analyzer(analyzer))
    }
}

impl Dialect for Postgres {
    /// Arrays have no practical length limit; a sync page is 4,096 rows.
    const ROWS_PER_INSERT: usize = 16_384;
    const COMBINED_WRITES: Combined = Combined::WithQueries;
    /// The heads, hex-encoded and concatenated, each head row key-share locked (a head a
    /// concurrent transaction deleted is skipped instead of read from the statement's
    /// snapshot).
    const HEADS_AS_HEX: &'static str = "(SELECT string_agg(encode(entry_id, 'hex'), '') FROM \
         (SELECT entry_id FROM heads WHERE heads.log_key = logs.log_key LIMIT 64 \
          FOR KEY SHARE) h)";

    fn push_rows<'a>(statement: &mut Statement<'a, Self>, columns: Vec<Column<'a>>) {
        statement.push("SELECT * FROM unnest(");
        for (i, column) in columns.into_iter().enumerate() {
            if i > 0 {
                statement.push(", ");
            }
            match column {
                Column::Int(values) => statement.bind(values).push("::int8[]"),
                Column::Blob(values) => statement.bind(values).push("::bytea[]"),
            };
        }
        statement.push(")");
    }

    /// `column = ANY(?)` with one `bytea[]` parameter. A long `IN ($2, $3, ...)` list is
    /// planned without knowing its values and, on a table without fresh statistics, checked
    /// row by row against every id: seconds per batch once a log holds a few 10,000 entries.
    fn push_id_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [EntryId]) {
        let ids: Vec<&'a [u8]> = ids.iter().map(|id| &id.as_bytes()[..]).collect();
        statement.push(column).push(" = ANY(").bind(ids).push(")");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// Nothing listens on port 1: the error comes at once and says why (it used to take the
    /// pool's 10 s acquire timeout and say "pool timed out").
    #[tokio::test]
    async fn an_unreachable_server_is_reported_at_once_with_its_cause() {
        let started = Instant::now();
        let err = PostgresStorage::connect("postgres://postgres@127.0.0.1:1/x")
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, StorageError::Unavailable(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains("refused"), "{message}");
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(!message.contains("timed out"), "{message}");
    }
}
