//! Node values sealed at rest: group records, chain states, contact records and other
//! account state are encrypted (XChaCha20-Poly1305) under a storage key that lives in the
//! data dir (`storage.key`, mode 0600), so a database dump (PostgreSQL in production) holds no
//! usable secret. The value's key is the associated data, so a sealed value cannot be moved
//! to another key.

use std::{path::Path, sync::Arc};

use rand::rngs::OsRng;

use crate::{
    crypto::{labels, open, seal, SymmetricKey},
    defaults,
    error::Error,
    keystore::{self, KeystoreError},
    storage::Storage,
};

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

    /// The underlying storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Seals `plaintext` for storing under `key` (for writes batched into a commit).
    pub fn seal(&self, key: &str, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        seal(&self.key, &associated_data(key), plaintext, &mut OsRng)
            .map_err(|e| Error::crypto(format!("sealing {key}"), e))
    }

    /// Opens a value read from storage under `key`.
    pub fn open(&self, key: &str, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        open(&self.key, &associated_data(key), sealed).map_err(|_| {
            Error::Internal(format!(
                "stored value {key} does not open with this data dir's storage key \
                 (wrong data dir for this database?)"
            ))
        })
    }

    /// Reads and opens one value.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.storage.get_value(key).await? {
            Some(sealed) => self.open(key, &sealed).map(Some),
            None => Ok(None),
        }
    }

    /// Seals and writes one value (committed on return).
    pub async fn put(&self, key: &str, plaintext: &[u8]) -> Result<(), Error> {
        let sealed = self.seal(key, plaintext)?;
        Ok(self.storage.put_value(key, &sealed).await?)
    }
}

fn associated_data(key: &str) -> Vec<u8> {
    [labels::AD_SEALED_VALUE, key.as_bytes()].concat()
}
