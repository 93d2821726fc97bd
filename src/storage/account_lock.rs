//! One live node per account on a shared PostgreSQL database.
//!
//! Several nodes may share one PostgreSQL for the shared roles (rendezvous registrations,
//! mirrored logs), but two live nodes serving one account would fork its logs and reuse its
//! message keys. The data dir's lock stops that on one machine; on a shared database a
//! session-level advisory lock keyed by the account does, held on a connection of its own for
//! the life of the node.
//!
//! An advisory lock dies with its session. If the database goes away, the lock is lost with
//! it; [`AccountLock::hold`] reconnects and takes it again, and if another node took it in
//! the meantime, it reports that, which stops this node (the other one serves the account).

use std::{str::FromStr, time::Duration};

use sha2::{Digest, Sha256};
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};
use tokio::sync::watch;

/// How often the lock's connection is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Domain separation of the lock key.
const LOCK_LABEL: &[u8] = b"berty-node/account-lock/v1";

/// Why the account lock could not be taken or kept.
#[derive(Debug, thiserror::Error)]
pub enum AccountLockError {
    /// Another live node holds it.
    #[error(
        "account {account} is already served by another live node on this PostgreSQL database \
         (advisory lock {key} is held); stop that node first"
    )]
    Held {
        /// The account key, hex.
        account: String,
        /// The advisory lock key.
        key: i64,
    },
    /// The database could not be reached or refused the query.
    #[error("account lock on PostgreSQL: {0}")]
    Database(String),
}

/// The advisory lock on one account, held while this value lives (on PostgreSQL only).
pub struct AccountLock {
    options: PgConnectOptions,
    account: String,
    key: i64,
    connection: PgConnection,
}

impl AccountLock {
    /// Takes the lock of `account_pk` on the PostgreSQL database at `database_url`.
    pub async fn acquire(database_url: &str, account_pk: &[u8]) -> Result<Self, AccountLockError> {
        let options = PgConnectOptions::from_str(database_url)
            .map_err(|e| AccountLockError::Database(e.to_string()))?;
        let key = lock_key(account_pk);
        let account = hex::encode(account_pk);
        let mut connection = connect(&options).await?;
        if !try_lock(&mut connection, key).await? {
            return Err(AccountLockError::Held { account, key });
        }
        Ok(Self {
            options,
            account,
            key,
            connection,
        })
    }

    /// Keeps the lock until `shutdown` turns true: checks its connection every few seconds,
    /// and after a lost connection reconnects and takes the lock again. Ends with an error only
    /// when another node took the lock meanwhile.
    pub async fn hold(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let mut lost = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return Ok(());
            }
            if !lost {
                if self.connection.ping().await.is_ok() {
                    continue;
                }
                tracing::warn!(account = %self.account, "account lock connection lost");
                lost = true;
            }
            let Ok(mut connection) = connect(&self.options).await else {
                continue;
            };
            match try_lock(&mut connection, self.key).await {
                Ok(true) => {
                    tracing::info!(account = %self.account, "account lock taken again");
                    self.connection = connection;
                    lost = false;
                }
                Ok(false) => {
                    return Err(AccountLockError::Held {
                        account: self.account,
                        key: self.key,
                    }
                    .to_string())
                }
                Err(_) => {}
            }
        }
    }
}

/// Whether `database_url` names a PostgreSQL database (where the account lock applies).
pub fn is_postgres_url(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}

/// The advisory lock key of an account: 8 bytes of a labelled hash of its public key.
pub fn lock_key(account_pk: &[u8]) -> i64 {
    let digest = Sha256::new()
        .chain_update(LOCK_LABEL)
        .chain_update(account_pk)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, AccountLockError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(AccountLockError::Database(e.to_string())),
        Err(_) => Err(AccountLockError::Database(format!(
            "no connection within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

async fn try_lock(connection: &mut PgConnection, key: i64) -> Result<bool, AccountLockError> {
    sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(connection)
        .await
        .map_err(|e| AccountLockError::Database(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_account_and_are_stable() {
        assert_eq!(lock_key(&[1; 32]), lock_key(&[1; 32]));
        assert_ne!(lock_key(&[1; 32]), lock_key(&[2; 32]));
    }
}
