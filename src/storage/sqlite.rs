//! SQLite backend: the embedded default, one database file in the data dir.
//!
//! The file runs in WAL mode with `synchronous = FULL`, so a committed append survives a power
//! cut, and readers never block the writer. Writes go through a pool of one connection, so
//! appends from this process queue in the pool instead of spinning in SQLite's busy handler;
//! reads use a few more connections. Every write transaction writes first (see
//! `storage/sql`), so another process holding the file only ever makes us wait
//! (`busy_timeout`), never fail with a stale snapshot.

use std::{path::Path, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
        SqliteSynchronous,
    },
    Connection, Sqlite,
};

use super::{
    health::{cause_of, AlwaysUp, HealthMonitor, Probe, PING_TIMEOUT, RECONNECT_TIMEOUT},
    sql::{Column, Combined, Dialect, Statement},
    Result, SqlStorage, StorageError,
};
use crate::log::EntryId;

/// Migrations of the SQLite schema, applied when the database is opened.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Connections used for reads (WAL lets them read while the writer writes).
const READ_CONNECTIONS: u32 = 4;
/// How often the WAL is checkpointed (by a reader connection, off the commit path).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How soon the next checkpoint runs after one that found a busy WAL (see `Checkpoints`).
const BUSY_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(50);
/// A WAL holding this many frames (4 MiB of 4 KiB pages) at a checkpoint is busy.
const BUSY_WAL_FRAMES: i64 = 1024;
/// The WAL size beyond which a checkpoint also truncates the file (see [`Checkpoints`]).
const WAL_TRUNCATE_BYTES: u64 = 64 * 1024 * 1024;
/// The writer's page cache: 64 MiB (a negative `cache_size` is in KiB).
const WRITER_CACHE_SIZE: &str = "-65536";
/// How long a statement waits for another process's lock on the file before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage in one SQLite database file. A file-backed storage runs a WAL checkpointer, which
/// copies the WAL back into the database file off the commit path (see `Checkpoints`).
pub type SqliteStorage = SqlStorage<Sqlite>;

/// The health probe of a database file: reads its schema on a connection of its own (which
/// never creates the file: a file gone is an outage, not a new empty database).
struct SqliteProbe {
    options: SqliteConnectOptions,
    connection: Option<SqliteConnection>,
}

#[async_trait]
impl Probe for SqliteProbe {
    async fn probe(&mut self) -> std::result::Result<(), String> {
        if self.connection.is_none() {
            let connect = SqliteConnection::connect_with(&self.options);
            self.connection = Some(
                tokio::time::timeout(RECONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| format!("no answer within {RECONNECT_TIMEOUT:?}"))?
                    .map_err(|err| cause_of(&err))?,
            );
        }
        let Some(connection) = &mut self.connection else {
            return Err("no connection".into());
        };
        let read = sqlx::query("SELECT count(*) FROM sqlite_schema").execute(&mut *connection);
        let outcome = match tokio::time::timeout(PING_TIMEOUT, read).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(cause_of(&err)),
            Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
        };
        if outcome.is_err() {
            self.connection = None;
        }
        outcome
    }
}

/// When the WAL is checkpointed, and when it is cut back to nothing.
///
/// The writer connection never checkpoints itself (`wal_autocheckpoint = 0`): an automatic
/// checkpoint runs inside the commit that crosses the threshold, which is what made the slow
/// tail of single-message commits. Instead a reader connection runs a passive checkpoint every
/// `interval`: it never blocks the writer nor waits for readers, and what it cannot copy yet,
/// the next one does. The WAL is synced at every commit (`synchronous = FULL`), so durability
/// does not depend on checkpoints.
///
/// A passive checkpoint never makes the WAL file smaller, and under writes that never pause it
/// never lets the writer start the file over either (new frames always land after the copied
/// ones), so the file grew for as long as a load lasted: 19.9 GB for 1,020,000 messages. Once
/// the WAL holds more than `truncate_bytes` and a passive checkpoint could copy all of it (no
/// reader holds older frames), a `TRUNCATE` checkpoint follows at once: it waits (within the
/// busy timeout) for the current write and readers, and empties the file. A `TRUNCATE` that
/// started while a reader held older frames would block every write until that reader ended
/// or the busy timeout ran out (commits then fail with "database is locked").
///
/// Under bulk writes (a catch-up writes 60 MB/s) a checkpoint a second falls behind: the WAL
/// reached the limit every second or two, each `TRUNCATE` held the writer for up to 0.7 s,
/// and the emptied file was grown again page by page (the kernel zeroing every new page was
/// a fifth of the writer's time). So a checkpoint that finds at least `busy_frames` in the
/// WAL is followed by the next one after `busy_interval`: the passive checkpoints keep up,
/// and once one has copied every frame the writer starts the file over, overwriting pages
/// it already has. The writer's `journal_size_limit` cuts a file that grew past
/// `truncate_bytes` back to it when the WAL starts over.
#[derive(Debug, Clone, Copy)]
struct Checkpoints {
    interval: Duration,
    busy_interval: Duration,
    busy_frames: i64,
    truncate_bytes: u64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self {
            interval: CHECKPOINT_INTERVAL,
            busy_interval: BUSY_CHECKPOINT_INTERVAL,
            busy_frames: BUSY_WAL_FRAMES,
            truncate_bytes: WAL_TRUNCATE_BYTES,
        }
    }
}

/// What one checkpoint found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpointed {
    /// Frames in the WAL when it ran.
    frames: i64,
    /// The WAL size cut by a truncating checkpoint, if one ran.
    truncated: Option<u64>,
}

impl Checkpoints {
    /// Checkpoints the WAL of the database `reader` reads, forever.
    async fn run(self, reader: sqlx::SqlitePool) {
        // A WAL database's page size never changes: read once.
        let mut page_size = None;
        let mut wait = self.interval;
        loop {
            tokio::time::sleep(wait).await;
            wait = self.interval;
            match self.checkpoint(&reader, &mut page_size).await {
                Ok(done) => {
                    if let Some(bytes) = done.truncated {
                        tracing::debug!(bytes, "SQLite WAL truncated");
                    }
                    if done.frames >= self.busy_frames {
                        wait = self.busy_interval;
                    }
                }
                Err(e) => tracing::warn!(%e, "SQLite WAL checkpoint failed"),
            }
        }
    }

    /// One checkpoint: passive, then truncating when the WAL is over the limit.
    async fn checkpoint(
        &self,
        reader: &sqlx::SqlitePool,
        page_size: &mut Option<i64>,
    ) -> sqlx::Result<Checkpointed> {
        // (busy, frames in the WAL, frames copied back); -1 when not in WAL mode.
        let (_, frames, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(reader)
            .await?;
        let mut done = Checkpointed {
            frames,
            truncated: None,
        };
        let page_size = match *page_size {
            Some(size) => size,
            None => *page_size.insert(
                sqlx::query_scalar("PRAGMA page_size")
                    .fetch_one(reader)
                    .await?,
            ),
        };
        // Each frame is a 24-byte header and one page; the file has a 32-byte header.
        let wal_bytes = u64::try_from(frames.max(0) * (page_size + 24)).unwrap_or(0);
        // Only once every frame could be copied: a reader still on older frames would make
        // the truncating checkpoint wait for it, and block the writer meanwhile.
        if wal_bytes > self.truncate_bytes && copied == frames {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(reader)
                .await?;
            done.truncated = (busy == 0).then_some(wal_bytes);
        }
        Ok(done)
    }
}

/// Options of both pools. A SQLite connection is a worker thread of sqlx's; its "ping" only
/// asks that thread to answer, so testing a connection before each acquire costs a hand-off
/// between threads (two wake-ups on an idle node) and tests nothing a query would not: a
/// dead worker fails the next query, and sqlx closes the connection when it is returned.
fn pool_options() -> SqlitePoolOptions {
    SqlitePoolOptions::new().test_before_acquire(false)
}

impl SqlStorage<Sqlite> {
    /// Opens (creating it and its parent dir if missing) the database file at `path`, and
    /// applies pending migrations.
    pub async fn open_file(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options, false, Checkpoints::default()).await
    }

    /// Opens the database named by a `sqlite:` URL (such as `sqlite:data/node.db` or
    /// `sqlite::memory:`), creating the file if missing, and applies pending migrations.
    pub async fn open_url(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|err| StorageError::Config(format!("bad SQLite URL: {err}")))?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Self::open_with(options, in_memory, Checkpoints::default()).await
    }

    async fn open_with(
        options: SqliteConnectOptions,
        in_memory: bool,
        checkpoints: Checkpoints,
    ) -> Result<Self> {
        if !in_memory {
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() {
                    tokio::fs::create_dir_all(dir).await.map_err(|err| {
                        StorageError::Config(format!("cannot create {}: {err}", dir.display()))
                    })?;
                }
            }
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let opening = |err: sqlx::Error| {
            StorageError::Unavailable(format!(
                "cannot open SQLite database {}: {err}",
                options.get_filename().display()
            ))
        };
        // A page of a catch-up (4,096 entries and their events, ~10 MB of pages) would spill
        // dirty pages mid-transaction from the default 2 MB cache, and each multi-row INSERT
        // would copy what it changes into a statement journal file: the writer gets a cache
        // that holds such a commit, and journals in memory. (The cache grows only as used.)
        let writer_options = options
            .clone()
            .pragma("cache_size", WRITER_CACHE_SIZE)
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", checkpoints.truncate_bytes.to_string());
        let writer = pool_options()
            .max_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(opening)?;
        MIGRATOR.run(&writer).await?;
        // Refresh the planner's statistics where they are stale (cheap when nothing changed).
        sqlx::query("PRAGMA optimize")
            .execute(&writer)
            .await
            .map_err(opening)?;
        // An in-memory database lives in shared-cache mode, where concurrent connections get
        // table locks that `busy_timeout` does not retry: one connection does everything.
        let reader = if in_memory {
            writer.clone()
        } else {
            pool_options()
                .max_connections(READ_CONNECTIONS)
                .connect_with(options.clone())
                .await
                .map_err(opening)?
        };
        let checkpointer = (!in_memory).then(|| tokio::spawn(checkpoints.run(reader.clone())));
        let database = format!("SQLite at {}", options.get_filename().display());
        let health = if in_memory {
            HealthMonitor::spawn(database, AlwaysUp)
        } else {
            let probe = SqliteProbe {
                options: options.clone().create_if_missing(false),
                connection: None,
            };
            HealthMonitor::spawn(database, probe)
        };
        Ok(Self::new(reader, writer, health, checkpointer))
    }
}

impl Dialect for Sqlite {
    /// With seven columns, 3,500 placeholders (SQLite allows 32,766).
    const ROWS_PER_INSERT: usize = 500;
    const COMBINED_WRITES: Combined = Combined::Sequence;
    /// The heads, hex-encoded and concatenated (`hex` is upper case here).
    const HEADS_AS_HEX: &'static str = "(SELECT group_concat(hex(entry_id), '') FROM \
         (SELECT entry_id FROM heads WHERE heads.log_key = logs.log_key LIMIT 64))";

    fn push_rows<'a>(statement: &mut Statement<'a, Self>, columns: Vec<Column<'a>>) {
        let rows = columns.first().map_or(0, Column::len);
        statement.push_values(0..rows, |values, row| {
            for column in &columns {
                match column {
                    Column::Int(column) => values.bind(column[row]),
                    Column::Blob(column) => values.bind(column[row]),
                };
            }
        });
    }

    /// `column IN (?, ?, ...)`: SQLite probes the index once per id.
    fn push_id_in<'a>(statement: &mut Statement<'a, Self>, column: &str, ids: &'a [EntryId]) {
        statement.push(column).push(" IN (");
        let mut list = statement.list();
        for id in ids {
            list.bind(&id.as_bytes()[..]);
        }
        statement.push(")");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_durable_wal_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/node.db");
        let storage = SqliteStorage::open_file(&path).await.unwrap();
        assert!(path.is_file());
        for pool in storage.pools() {
            for (pragma, column, expected) in [
                ("journal_mode", "journal_mode", "wal"),
                ("synchronous", "synchronous", "2"),
                ("foreign_keys", "foreign_keys", "1"),
                ("busy_timeout", "timeout", "10000"),
            ] {
                let value: String = sqlx::query_scalar(&format!(
                    "SELECT CAST({column} AS TEXT) FROM pragma_{pragma}"
                ))
                .fetch_one(pool)
                .await
                .unwrap();
                assert_eq!(value.to_lowercase(), expected, "{pragma}");
            }
        }
    }

    /// Under writes with a reader holding old frames, the WAL only grows; once the reader is
    /// done, the checkpointer cuts the file back instead of leaving it at its peak for good.
    #[tokio::test]
    async fn a_wal_over_the_limit_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let wal = dir.path().join("node.db-wal");
        let limit = 1024 * 1024;
        let checkpoints = Checkpoints {
            interval: Duration::from_millis(250),
            truncate_bytes: limit,
            ..Checkpoints::default()
        };
        let options = SqliteConnectOptions::new().filename(&path);
        let storage = SqliteStorage::open_with(options.clone(), false, checkpoints)
            .await
            .unwrap();
        let [_, writer] = storage.pools();
        let put = |i: usize, value: &[u8]| {
            sqlx::query("INSERT OR REPLACE INTO node_values (key, value) VALUES ($1, $2)")
                .bind(format!("k{i}"))
                .bind(value.to_vec())
                .execute(writer)
        };

        // A reader in the middle of a read keeps every frame after its snapshot in the WAL.
        // (Its snapshot must include frames not yet copied back: a reader that starts on a
        // WAL copied back in full reads the database file alone and holds nothing.)
        let mut reader = SqliteConnection::connect_with(&options).await.unwrap();
        put(0, b"first").await.unwrap();
        let mut reading = reader.begin().await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM node_values")
            .fetch_one(&mut *reading)
            .await
            .unwrap();
        let value = vec![7u8; 16 * 1024];
        for i in 1..=256 {
            put(i, &value).await.unwrap();
        }
        let peak = std::fs::metadata(&wal).unwrap().len();
        assert!(peak > 4 * limit, "the WAL grew to {peak} bytes only");
        drop(reading);

        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
            if size <= limit {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the WAL stayed at {size} bytes (peak {peak})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Nothing written was lost on the way.
        let rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM node_values WHERE length(value) = 16384")
                .fetch_one(writer)
                .await
                .unwrap();
        assert_eq!(rows, 256);
    }

    /// Migration 0006 rebuilds the events table: every stored event survives it, and what it
    /// dropped (the index on the entry id, the foreign key) is gone.
    #[tokio::test]
    async fn the_events_rebuild_keeps_every_event() {
        let mut db = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        for script in [
            include_str!("../../migrations/sqlite/0001_storage.sql"),
            include_str!("../../migrations/sqlite/0002_views.sql"),
            include_str!("../../migrations/sqlite/0003_rendezvous.sql"),
            include_str!("../../migrations/sqlite/0004_mirror.sql"),
            include_str!("../../migrations/sqlite/0005_mirror_retention.sql"),
        ] {
            sqlx::raw_sql(script).execute(&mut db).await.unwrap();
        }
        sqlx::raw_sql(
            "INSERT INTO logs (log_key, log_id, last_cursor, entry_count) \
                 VALUES (1, zeroblob(33), 3, 3);
             INSERT INTO entries (log_key, entry_id, lamport, cursor, parents, bytes) VALUES
                 (1, randomblob(32), 1, 1, x'', x'01'),
                 (1, randomblob(32), 2, 2, x'', x'02'),
                 (1, randomblob(32), 2, 3, x'', x'03');
             INSERT INTO events (log_key, cursor, entry_id, lamport, parents, kind, body)
                 SELECT log_key, 4 - cursor, entry_id, lamport, parents, 3, bytes FROM entries;",
        )
        .execute(&mut db)
        .await
        .unwrap();
        let dump = "SELECT group_concat(hex(entry_id) || lamport || cursor || hex(body), ',') \
                    FROM (SELECT * FROM events ORDER BY cursor)";
        let before: String = sqlx::query_scalar(dump).fetch_one(&mut db).await.unwrap();

        sqlx::raw_sql(include_str!(
            "../../migrations/sqlite/0006_events_by_order.sql"
        ))
        .execute(&mut db)
        .await
        .unwrap();
        let after: String = sqlx::query_scalar(dump).fetch_one(&mut db).await.unwrap();
        assert_eq!(after, before);
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'events' \
             AND name NOT LIKE 'sqlite_autoindex%'",
        )
        .fetch_all(&mut db)
        .await
        .unwrap();
        assert_eq!(indexes, ["events_by_order"]);
        let keys: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_list('events')")
                .fetch_one(&mut db)
                .await
                .unwrap();
        assert_eq!(keys, 0);

        // Migration 0007 gives each log its highest stored clock.
        sqlx::raw_sql(include_str!(
            "../../migrations/sqlite/0007_logs_max_lamport.sql"
        ))
        .execute(&mut db)
        .await
        .unwrap();
        let max: Option<i64> = sqlx::query_scalar("SELECT max_lamport FROM logs")
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(max, Some(2));
    }
}
