//! Node values sealed at rest: group records, chain states, contact records and other
//! account state are encrypted (XChaCha20-Poly1305) under a storage key that lives in the
//! data dir (`storage.key`, mode 0600), so a database dump (PostgreSQL in production) holds no
//! usable secret. The value's key is the associated data, so a sealed value cannot be moved
//! to another key.
//!
//! [`SealedValues`] is the node's only way to its node values: every read opens, every write
//! seals (alone, or through [`SealedValues::seal`] into a [`crate::storage::Commit`]), and it
//! never hands out the storage underneath. The [`Storage`] methods for values take and give
//! [`Sealed`] bytes, which only this module makes (the SQL backends rebuild them from rows), so
//! no path stores a value that was not sealed. Keys come from [`crate::storage::value_keys`].

use std::{path::Path, sync::Arc};

use rand::rngs::OsRng;

use crate::{
    crypto::{labels, open, seal, SymmetricKey},
    defaults,
    keystore::{self, KeystoreError},
    storage::{value_keys::ValuePrefix, Storage, StorageError},
};

/// A node value as stored: sealed under the storage key, bound to its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// Bytes read back from the database (they were sealed when written).
    pub(in crate::storage) fn from_stored(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The sealed bytes (ciphertext; to store, or to check that nothing is in the clear).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Node values read per page when listing a prefix.
const LIST_PAGE: u32 = 4096;

/// Loads the data dir's storage key, creating it on first use.
pub fn load_or_create_storage_key(data_dir: &Path) -> Result<SymmetricKey, KeystoreError> {
    let path = data_dir.join(defaults::STORAGE_KEY_FILE);
    if let Some(bytes) = keystore::read_secret_file(&path)? {
        return SymmetricKey::from_slice(&bytes).map_err(|_| KeystoreError::Malformed {
            path,
            reason: "a storage key is 32 bytes".into(),
        });
    }
    keystore::ensure_dir(data_dir)?;
    let key = SymmetricKey::generate(&mut OsRng);
    keystore::write_secret_file(&path, key.as_bytes())?;
    Ok(key)
}

/// Node values, sealed on the way in and opened on the way out.
#[derive(Clone)]
pub struct SealedValues {
    storage: Arc<dyn Storage>,
    key: Arc<SymmetricKey>,
}

impl SealedValues {
    /// Values of `storage` sealed under `key`.
    pub fn new(storage: Arc<dyn Storage>, key: SymmetricKey) -> Self {
        Self {
            storage,
            key: Arc::new(key),
        }
    }

    /// Seals `plaintext` for storing under `key` (for writes batched into a commit).
    pub fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Sealed, StorageError> {
        seal(&self.key, &associated_data(key), plaintext, &mut OsRng)
            .map(Sealed)
            .map_err(|e| StorageError::Sealing(format!("{key}: {e}")))
    }

    /// Opens a value read from storage under `key`.
    pub fn open(&self, key: &str, sealed: &Sealed) -> Result<Vec<u8>, StorageError> {
        open(&self.key, &associated_data(key), &sealed.0).map_err(|_| {
            StorageError::Corrupt(format!(
                "stored value {key} does not open with this data dir's storage key \
                 (wrong data dir for this database?)"
            ))
        })
    }

    /// Reads and opens one value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self.storage.get_value(key).await? {
            Some(sealed) => self.open(key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Seals and writes one value (committed on return).
    pub async fn put(&self, key: &str, plaintext: &[u8]) -> Result<(), StorageError> {
        let sealed = self.seal(key, plaintext)?;
        self.storage.put_value(key, &sealed).await
    }

    /// Whether a value is stored under `key` (without reading it).
    pub async fn contains(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.storage.get_value(key).await?.is_some())
    }

    /// Deletes one value; deleting a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.storage.delete_value(key).await
    }

    /// One page of the values under `prefix`, opened, in key order: keys strictly after
    /// `after` when given, at most `limit`.
    pub async fn page(
        &self,
        prefix: ValuePrefix,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let page = self
            .storage
            .values_with_prefix(&prefix.to_string(), after, limit)
            .await?;
        page.into_iter()
            .map(|(key, sealed)| {
                let plaintext = self.open(&key, &sealed)?;
                Ok((key, plaintext))
            })
            .collect()
    }

    /// Every value under `prefix`, opened, in key order.
    pub async fn list(&self, prefix: ValuePrefix) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let after = out.last().map(|(key, _)| key.clone());
            let page = self.page(prefix, after.as_deref(), LIST_PAGE).await?;
            let done = page.len() < LIST_PAGE as usize;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Every key under `prefix`, in key order, without reading their values (markers such as
    /// queued messages, whose key says it all).
    pub async fn keys(&self, prefix: ValuePrefix) -> Result<Vec<String>, StorageError> {
        let prefix = prefix.to_string();
        let mut keys: Vec<String> = Vec::new();
        loop {
            let page = self
                .storage
                .values_with_prefix(&prefix, keys.last().map(String::as_str), LIST_PAGE)
                .await?;
            let done = page.len() < LIST_PAGE as usize;
            keys.extend(page.into_iter().map(|(key, _)| key));
            if done {
                return Ok(keys);
            }
        }
    }
}

fn associated_data(key: &str) -> Vec<u8> {
    [labels::AD_SEALED_VALUE, key.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{sqlite::SqliteStorage, value_keys::ValueKey};

    async fn values(key: [u8; 32]) -> (Arc<dyn Storage>, SealedValues) {
        let storage: Arc<dyn Storage> =
            Arc::new(SqliteStorage::open_url("sqlite::memory:").await.unwrap());
        let values = SealedValues::new(storage.clone(), SymmetricKey::from_bytes(key));
        (storage, values)
    }

    #[tokio::test]
    async fn what_the_database_holds_is_sealed_and_bound_to_its_key() {
        let (storage, values) = values([1; 32]).await;
        let key = ValueKey::Chain { group_pk: [2; 32] }.to_string();
        let secret = [0x5a; 40];
        values.put(&key, &secret).await.unwrap();
        let stored = storage.get_value(&key).await.unwrap().unwrap();
        assert!(!stored.as_bytes().windows(secret.len()).any(|w| w == secret));
        assert_eq!(values.get(&key).await.unwrap().unwrap(), secret);

        // Moved under another key, it does not open.
        let other = ValueKey::Chain { group_pk: [3; 32] }.to_string();
        storage.put_value(&other, &stored).await.unwrap();
        assert!(matches!(
            values.get(&other).await,
            Err(StorageError::Corrupt(_))
        ));
    }

    #[tokio::test]
    async fn another_storage_key_opens_nothing() {
        let (storage, values) = values([1; 32]).await;
        values.put("contacts/settings", b"on").await.unwrap();
        let stranger = SealedValues::new(storage, SymmetricKey::from_bytes([9; 32]));
        let error = stranger.get("contacts/settings").await.unwrap_err();
        assert!(error.to_string().contains("wrong data dir"), "{error}");
    }
}
