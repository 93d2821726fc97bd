//! Secret keys at rest: files in the data dir, readable by the owner only (mode 0600).
//!
//! Files are written atomically (temporary file, fsync, rename), so a crash never leaves a
//! half-written key. A key file readable by group or others is refused, as ssh does.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use libp2p::identity::Keypair;

use crate::{crypto::AccountKeys, defaults};

/// What can go wrong with key files.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Reading or writing failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is readable by others.
    #[error("key file {path} has mode {mode:o}; it must be 600 (run: chmod 600 {path})")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key of the expected format.
    #[error("key file {path} is not a valid key: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and parents) if missing, with mode 0700 for a new directory.
pub fn ensure_dir(dir: &Path) -> Result<(), KeystoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent() {
        if let Ok(dir) = fs::File::open(parent) {
            // Make the rename itself durable; failure here only weakens crash safety.
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Reads a secret file, refusing one that group or others may read. `None` if it is missing.
pub fn read_secret_file(path: &Path) -> Result<Option<Vec<u8>>, KeystoreError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeystoreError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    fs::read(path).map(Some).map_err(io_err(path))
}

/// Loads the libp2p peer key from the data dir, creating and saving a new Ed25519 key if none.
pub fn load_or_create_peer_key(data_dir: &Path) -> Result<Keypair, KeystoreError> {
    let path = data_dir.join(defaults::PEER_KEY_FILE);
    if let Some(bytes) = read_secret_file(&path)? {
        return Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeystoreError::Malformed {
            path,
            reason: e.to_string(),
        });
    }
    ensure_dir(data_dir)?;
    let keypair = Keypair::generate_ed25519();
    let encoded = keypair
        .to_protobuf_encoding()
        .map_err(|e| KeystoreError::Malformed {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    write_secret_file(&path, &encoded)?;
    Ok(keypair)
}

/// Loads the account's keys from the data dir; `None` when the data dir has no account yet.
pub fn load_account(data_dir: &Path) -> Result<Option<AccountKeys>, KeystoreError> {
    let path = data_dir.join(defaults::ACCOUNT_KEY_FILE);
    let Some(bytes) = read_secret_file(&path)? else {
        return Ok(None);
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    AccountKeys::from_bytes(&bytes)
        .map(Some)
        .map_err(|e| KeystoreError::Malformed {
            path,
            reason: e.to_string(),
        })
}

/// Saves the account's keys in the data dir (mode 0600), replacing any previous ones.
pub fn save_account(data_dir: &Path, keys: &AccountKeys) -> Result<(), KeystoreError> {
    ensure_dir(data_dir)?;
    write_secret_file(
        &data_dir.join(defaults::ACCOUNT_KEY_FILE),
        keys.to_bytes().as_ref(),
    )
}

/// Loads the account, creating a new one (fresh random keys) if the data dir has none.
pub fn load_or_create_account(data_dir: &Path) -> Result<AccountKeys, KeystoreError> {
    if let Some(keys) = load_account(data_dir)? {
        return Ok(keys);
    }
    let keys = AccountKeys::generate(&mut rand::rngs::OsRng);
    save_account(data_dir, &keys)?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_key_is_created_once_with_mode_600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create_peer_key(&data).unwrap();
        let path = data.join(defaults::PEER_KEY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = load_or_create_peer_key(&data).unwrap();
        assert_eq!(first.public(), second.public());
    }

    #[test]
    fn loose_permissions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_peer_key(dir.path()).unwrap();
        let path = dir.path().join(defaults::PEER_KEY_FILE);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_peer_key(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            KeystoreError::Permissions { mode: 0o644, .. }
        ));
    }

    #[test]
    fn account_is_created_once_with_mode_600() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_account(dir.path()).unwrap().is_none());
        let first = load_or_create_account(dir.path()).unwrap();
        let second = load_or_create_account(dir.path()).unwrap();
        assert_eq!(first.account_pk(), second.account_pk());
        assert_eq!(first.device_pk(), second.device_pk());
        let path = dir.path().join(defaults::ACCOUNT_KEY_FILE);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        write_secret_file(&dir.path().join(defaults::PEER_KEY_FILE), b"garbage").unwrap();
        let err = load_or_create_peer_key(dir.path()).unwrap_err();
        assert!(matches!(err, KeystoreError::Malformed { .. }));
    }
}
