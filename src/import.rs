//! `berty-node init --import FILE` and `--restore`: a data dir made from an export.
//!
//! - **Import** makes a **new device** of the same account: new device key, new per-group
//!   device keys, no chain state. On its first start the node sets the new device up in every
//!   group (member event, fresh chain key shared with the members).
//! - **Restore** keeps the old device identity (device keys and chains, counters included) and
//!   is only for an instance that is gone: two live instances writing as one device would
//!   reuse message keys.
//!
//! Logs and decoded history are copied as they are, so the new instance shows the same groups
//! and history at once.

use std::path::Path;

use prost::Message as _;
use rand::rngs::OsRng;

use crate::{
    actors::{account::GROUP_PREFIX, export::EXPORT_VERSION},
    crypto::{AccountKeys, SigningKey},
    error::Error,
    group::GroupRecord,
    keystore,
    log::{Entry, LogId},
    proto::wire,
    sealed_values::{self, SealedValues},
    storage::{self, Commit, NewEntry, NewEvent, Storage},
};

/// Entries or events written per transaction while importing.
const IMPORT_BATCH: usize = 500;

/// Which identity the imported instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// A new device of the same account.
    NewDevice,
    /// The same device (only when the exported instance is gone).
    Restore,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Node values written.
    pub values: usize,
    /// Logs written.
    pub logs: usize,
    /// Entries written.
    pub entries: usize,
    /// Decoded events written.
    pub events: usize,
}

fn invalid(what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("export file: {what}"))
}

/// Fills an empty data dir (and database) from an export.
pub async fn import(
    data_dir: &Path,
    database_url: &str,
    export: &[u8],
    mode: ImportMode,
) -> Result<ImportSummary, Error> {
    let export =
        wire::Export::decode(export).map_err(|e| invalid(format!("not an export ({e})")))?;
    if export.version != EXPORT_VERSION {
        return Err(invalid(format!("unsupported version {}", export.version)));
    }
    let keys = AccountKeys::from_bytes(&export.account_keys).map_err(invalid)?;
    let keys = match mode {
        ImportMode::NewDevice => keys.with_new_device(&mut OsRng),
        ImportMode::Restore => keys,
    };
    let internal = |e: keystore::KeystoreError| Error::Internal(e.to_string());
    if keystore::load_account(data_dir)
        .map_err(internal)?
        .is_some()
    {
        return Err(Error::FailedPrecondition(format!(
            "{} already holds an account; import into an empty data dir",
            data_dir.display()
        )));
    }
    let storage = storage::open(database_url, data_dir).await?;
    if !storage.logs().await?.is_empty() {
        return Err(Error::FailedPrecondition(
            "the database already holds logs; import into an empty database".into(),
        ));
    }
    keystore::load_or_create_peer_key(data_dir).map_err(internal)?;
    let storage_key = sealed_values::load_or_create_storage_key(data_dir).map_err(internal)?;
    let values = SealedValues::new(storage.clone(), storage_key);

    let mut summary = ImportSummary::default();
    for value in export.values {
        let Some(plaintext) = adapt_value(&value.key, value.value, mode)? else {
            continue;
        };
        values.put(&value.key, &plaintext).await?;
        summary.values += 1;
    }
    for log in export.logs {
        import_log(&*storage, log, &mut summary).await?;
    }
    // Written last: a data dir with an account key is a complete one.
    keystore::save_account(data_dir, &keys).map_err(internal)?;
    Ok(summary)
}

/// What to store for an exported value: a new device gets new per-group device keys and no
/// chains (it makes its own on first start).
fn adapt_value(key: &str, value: Vec<u8>, mode: ImportMode) -> Result<Option<Vec<u8>>, Error> {
    if mode == ImportMode::Restore {
        return Ok(Some(value));
    }
    if key.starts_with("chain/") {
        return Ok(None);
    }
    if key.starts_with(GROUP_PREFIX) {
        let mut record = GroupRecord::decode(&value).map_err(invalid)?;
        record.device = SigningKey::generate(&mut OsRng);
        return Ok(Some(record.encode()));
    }
    Ok(Some(value))
}

async fn import_log(
    storage: &dyn Storage,
    log: wire::ExportLog,
    summary: &mut ImportSummary,
) -> Result<(), Error> {
    let log_id = LogId::from_bytes(&log.log_id).ok_or_else(|| invalid("malformed log id"))?;
    let mut entries = Vec::with_capacity(log.entries.len());
    for bytes in log.entries {
        let entry = Entry::decode(&bytes).map_err(|e| invalid(format!("log entry: {e}")))?;
        if entry.log_id() != log_id {
            return Err(invalid("an entry belongs to another log"));
        }
        entries.push(NewEntry {
            id: entry.id(),
            lamport: entry.lamport(),
            parents: entry.parents().to_vec(),
            bytes,
        });
    }
    for batch in entries.chunks(IMPORT_BATCH) {
        storage.append(&log_id, batch).await?;
    }
    let by_id: std::collections::HashMap<_, _> = entries
        .iter()
        .map(|e| (e.id, (e.lamport, e.parents.clone())))
        .collect();
    let mut events = Vec::with_capacity(log.events.len());
    for event in log.events {
        let entry_id = crate::log::EntryId::from_slice(&event.entry_id)
            .ok_or_else(|| invalid("malformed event id"))?;
        let (lamport, parents) = by_id
            .get(&entry_id)
            .cloned()
            .ok_or_else(|| invalid("an event names an entry the log does not hold"))?;
        let kind = u8::try_from(event.kind).map_err(|_| invalid("event kind out of range"))?;
        events.push(NewEvent {
            entry_id,
            lamport,
            parents,
            kind,
            body: event.body,
        });
    }
    for batch in events.chunks(IMPORT_BATCH) {
        storage
            .commit(
                &log_id,
                Commit {
                    events: batch,
                    ..Commit::default()
                },
            )
            .await?;
    }
    summary.logs += 1;
    summary.entries += entries.len();
    summary.events += events.len();
    Ok(())
}
