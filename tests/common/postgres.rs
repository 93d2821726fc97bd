//! A fresh PostgreSQL database per test.
//!
//! Tests call [`TestDatabase::create`]; it connects to the admin URL from
//! `BERTY_NODE_TEST_POSTGRES_URL` (default [`DEFAULT_ADMIN_URL`]), creates a database with a
//! unique name and drops it (terminating any connection still open) when the guard is dropped.
//! A server that cannot be reached fails the test: PostgreSQL tests never skip silently.
#![allow(clippy::panic)]

use std::{
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

use sqlx::{Connection, PgConnection};

/// Environment variable naming a PostgreSQL URL whose user may create and drop databases.
pub const ADMIN_URL_ENV: &str = "BERTY_NODE_TEST_POSTGRES_URL";
/// Admin URL used when [`ADMIN_URL_ENV`] is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// The admin URL the tests use.
pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_ENV).unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A database created for one test, dropped with this guard.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database named `berty_test_<pid>_<n>_<random>`.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached or refuses to create the database, with a message
    /// saying how to provide one.
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let name = format!(
            "berty_test_{}_{}_{:08x}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(err) => panic!(
                "cannot reach PostgreSQL at {admin_url}: {err}\n\
                 The PostgreSQL storage tests need a server whose user may CREATE DATABASE. \
                 Start one (e.g. `pg_ctlcluster 15 main start`, or \
                 `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres`) \
                 or point {ADMIN_URL_ENV} at one (default {DEFAULT_ADMIN_URL})."
            ),
        };
        if let Err(err) = sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
        {
            panic!("cannot create test database {name} via {admin_url} ({ADMIN_URL_ENV}): {err}");
        }
        let _ = admin.close().await;
        let url = with_database(&admin_url, &name);
        Self {
            admin_url,
            name,
            url,
        }
    }

    /// The URL of the test database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of the test database.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside or outside a runtime: do the async work on a thread of its own.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|err| err.to_string())?;
                sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .map_err(|err| err.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("could not drop test database {}: {err}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_or_adds_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
    }
}
