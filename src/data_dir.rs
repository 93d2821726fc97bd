//! The data dir: created with mode 0700, refused when group or others may enter it, and
//! locked for the life of the process, so two nodes never serve one account (they would fork
//! its logs and reuse message keys).
//!
//! The lock is an exclusive `flock` on [`defaults::LOCK_FILE`]; the kernel releases it when the
//! process ends, however it ends (SIGKILL included), so a crash never leaves a stale lock. The
//! file holds the holder's pid, which a second node names in its refusal.

use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{Read, Seek, SeekFrom, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::defaults;

/// What is wrong with the data dir.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The path exists and is something else than a directory.
    #[error("data dir {path} exists and is not a directory")]
    NotADirectory {
        /// `data_dir`.
        path: PathBuf,
    },
    /// The path could not be created, read or written.
    #[error("data dir {path}: {action}: {cause}")]
    Io {
        /// `data_dir`.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The system's answer.
        cause: std::io::Error,
    },
    /// Group or others may enter the directory.
    #[error(
        "data dir {path} has mode {mode:o}: other users could read the keys and the database \
         in it; it must be 700 (run: chmod 700 {path})"
    )]
    Permissions {
        /// `data_dir`.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another live process holds the lock.
    #[error(
        "data dir {path} is in use by another berty-node ({holder}); stop it, or give this \
         node its own data dir"
    )]
    InUse {
        /// `data_dir`.
        path: PathBuf,
        /// Who holds it, as far as the lock file says.
        holder: String,
    },
}

/// The data dir, checked and locked. Dropping it releases the lock.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `path` if missing (mode 0700), checks its mode, and takes its lock.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let io = |action| {
            move |cause| DataDirError::Io {
                path: path.to_path_buf(),
                action,
                cause,
            }
        };
        match fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(DataDirError::NotADirectory {
                    path: path.to_path_buf(),
                })
            }
            Ok(meta) => {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(DataDirError::Permissions {
                        path: path.to_path_buf(),
                        mode,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(path).map_err(io("cannot create it"))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                    .map_err(io("cannot set its mode to 700"))?;
            }
            Err(e) => return Err(io("cannot read it")(e)),
        }
        let lock_path = path.join(defaults::LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(
                "cannot open its lock file (is it writable by this user?)",
            ))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                return Err(DataDirError::InUse {
                    path: path.to_path_buf(),
                    holder: holder_of(&text),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock it")(e)),
        }
        let pid = std::process::id();
        lock.set_len(0)
            .and_then(|()| lock.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(lock, "pid {pid}"))
            .map_err(io("cannot write its lock file"))?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name` in the data dir with mode 0600 if it does not exist yet, so files that
    /// others create there (the SQLite database and its journals) start private.
    pub fn create_private_file(&self, name: &str) -> Result<(), DataDirError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.path.join(name))
            .map(drop)
            .map_err(|cause| DataDirError::Io {
                path: self.path.clone(),
                action: "cannot create a file in it",
                cause,
            })
    }
}

/// "pid N" from the lock file's text, or a plain description when it says nothing useful.
fn holder_of(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|line| line.strip_prefix("pid "))
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .map_or_else(|| "pid unknown".to_string(), |pid| format!("pid {pid}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_second_open_is_refused_and_names_the_holder_until_the_first_is_dropped() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        let first = DataDir::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let err = DataDir::open(&path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DataDirError::InUse { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        DataDir::open(&path).unwrap();
    }

    #[test]
    fn a_directory_others_may_enter_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let err = DataDir::open(&path).unwrap_err();
        assert!(matches!(err, DataDirError::Permissions { mode: 0o755, .. }));
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_named_as_such() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        fs::write(&path, b"x").unwrap();
        let err = DataDir::open(&path).unwrap_err();
        assert!(matches!(err, DataDirError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn private_files_are_created_0600_and_existing_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&parent.path().join("data")).unwrap();
        dir.create_private_file("db").unwrap();
        let file = dir.path().join("db");
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::write(&file, b"kept").unwrap();
        dir.create_private_file("db").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"kept");
    }

    #[test]
    fn the_holder_is_read_from_the_lock_file() {
        assert_eq!(holder_of("pid 42\n"), "pid 42");
        assert_eq!(holder_of(""), "pid unknown");
        assert_eq!(holder_of("garbage"), "pid unknown");
    }
}
