//! A fresh storage of one backend for the storage suites, and what keeps it alive (a temp
//! dir, a PostgreSQL test database); [`Inspect`], the reads only the suites make.

use std::{ops::Bound, sync::Arc};

use berty_node::{
    log::{EntryId, LogId},
    storage::{self, Direction, OrderRange, Storage, StoredEntry},
};
use tempfile::TempDir;

use super::postgres::TestDatabase;

/// Which backend a storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Entries read per page when [`Inspect`] walks a log.
const WALK_PAGE: u32 = 10_000;

/// Reads the suites make and the node never does, written with the [`Storage`] trait's own
/// methods (the trait holds only what the node uses).
#[allow(async_fn_in_trait)]
pub trait Inspect {
    /// One entry by id.
    async fn entry(&self, log: &LogId, id: &EntryId) -> storage::Result<Option<StoredEntry>>;
    /// The number of entries stored in the log.
    async fn count(&self, log: &LogId) -> storage::Result<u64>;
    /// The highest cursor of the log (0 when empty).
    async fn last_cursor(&self, log: &LogId) -> storage::Result<u64>;
    /// Succeeds when the database answers a query.
    async fn ping(&self) -> storage::Result<()>;
    /// Which backend this is, as its health names the database.
    fn backend(&self) -> Backend;
}

impl Inspect for dyn Storage {
    async fn entry(&self, log: &LogId, id: &EntryId) -> storage::Result<Option<StoredEntry>> {
        let Some(key) = self.order_keys(log, &[*id]).await?.pop() else {
            return Ok(None);
        };
        let only = OrderRange {
            lower: Bound::Included(key),
            upper: Bound::Included(key),
            direction: Direction::Forward,
            limit: 1,
        };
        Ok(self.range(log, &only).await?.pop())
    }

    async fn count(&self, log: &LogId) -> storage::Result<u64> {
        Ok(walk(self, log).await?.0)
    }

    async fn last_cursor(&self, log: &LogId) -> storage::Result<u64> {
        Ok(walk(self, log).await?.1)
    }

    async fn ping(&self) -> storage::Result<()> {
        self.logs().await.map(drop)
    }

    fn backend(&self) -> Backend {
        if self.health().database().starts_with("PostgreSQL") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The number of entries of `log` and its highest cursor, walking it by cursor.
async fn walk(storage: &dyn Storage, log: &LogId) -> storage::Result<(u64, u64)> {
    let (mut count, mut last) = (0, 0);
    loop {
        let page = storage.since_cursor(log, last, WALK_PAGE).await?;
        let Some(end) = page.last() else {
            return Ok((count, last));
        };
        count += page.len() as u64;
        last = end.cursor;
    }
}

/// One storage opened on a fresh SQLite file or PostgreSQL database.
pub struct StoreFixture {
    /// The open storage.
    pub storage: Arc<dyn Storage>,
    /// Which backend it is.
    pub backend: Backend,
    /// The URL given to [`storage::open`]: empty for SQLite (a file in `data_dir`).
    pub url: String,
    /// The data dir (the SQLite file).
    pub data_dir: TempDir,
    /// The PostgreSQL test database, dropped with the fixture.
    pub database: Option<TestDatabase>,
}

impl StoreFixture {
    /// SQLite in a new temp dir.
    pub async fn sqlite() -> Self {
        Self::open(Backend::Sqlite, String::new(), None).await
    }

    /// PostgreSQL in a new test database.
    pub async fn postgres() -> Self {
        let database = TestDatabase::create().await;
        let url = database.url().to_owned();
        Self::open(Backend::Postgres, url, Some(database)).await
    }

    async fn open(backend: Backend, url: String, database: Option<TestDatabase>) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let storage = storage::open(&url, data_dir.path()).await.unwrap();
        Self {
            storage,
            backend,
            url,
            data_dir,
            database,
        }
    }

    /// Another handle on the storage.
    pub fn storage(&self) -> Arc<dyn Storage> {
        Arc::clone(&self.storage)
    }

    /// Another storage opened on the same data (as a second node would open it).
    pub async fn open_again(&self) -> Arc<dyn Storage> {
        storage::open(&self.url, self.data_dir.path())
            .await
            .unwrap()
    }

    /// Closes the storage (the caller must hold no other handle), then opens the same data
    /// again.
    pub async fn reopen(self) -> Self {
        let Self {
            storage,
            backend,
            url,
            data_dir,
            database,
        } = self;
        assert_eq!(
            Arc::strong_count(&storage),
            1,
            "a storage handle is still held"
        );
        drop(storage);
        let storage = storage::open(&url, data_dir.path()).await.unwrap();
        Self {
            storage,
            backend,
            url,
            data_dir,
            database,
        }
    }
}
