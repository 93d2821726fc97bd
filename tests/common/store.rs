//! A fresh storage of one backend for the storage suites, and what keeps it alive (a temp
//! dir, a PostgreSQL test database).

use std::sync::Arc;

use berty_node::storage::{self, Backend, Storage};
use tempfile::TempDir;

use super::postgres::TestDatabase;

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
