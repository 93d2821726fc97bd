//! Messages read back from storage. A message event is stored keyed to its entry
//! ([`ViewBody::KeyedMessage`]: the key that opens the body, not a second copy of the
//! plaintext), so a page read from storage has its keyed messages opened from their entries
//! before replies are built. Events kept in memory are whole already.
//!
//! [`ViewBody::KeyedMessage`]: crate::group::ViewBody::KeyedMessage

use std::collections::HashMap;

use crate::{
    error::Error,
    group::{EventKind, ViewEvent},
    log::{Entry, EntryId, LogId},
    storage::{Storage, StoredEvent},
};

/// Keyed messages opened inline up to this many in a page; more are opened on a blocking
/// thread (each one parses its entry and decrypts the body, a few microseconds).
const OPEN_INLINE: usize = 64;

/// The event kinds whose pages are read with their entries (`entries_of` of the storage's
/// event reads): messages, which may be keyed to their entry.
pub const WITH_ENTRIES: &[u8] = &[EventKind::Message.as_u8()];

/// `events` (read from `log`) with every keyed message opened: its body becomes the message's
/// plaintext view. The entries come with the events when they were read with
/// [`WITH_ENTRIES`]; those that did not are read by id. Errors mean corrupt local data or
/// unavailable storage.
pub async fn open_messages(
    storage: &dyn Storage,
    log: &LogId,
    mut events: Vec<StoredEvent>,
) -> Result<Vec<StoredEvent>, Error> {
    let message = EventKind::Message.as_u8();
    let mut keyed = Vec::new();
    for (index, event) in events.iter_mut().enumerate() {
        if event.kind != message {
            continue;
        }
        let view = ViewEvent::decode(&event.body)?;
        if view.needs_entry() {
            keyed.push((index, event.entry_id, view, event.entry.take()));
        }
    }
    if keyed.is_empty() {
        return Ok(events);
    }
    let missing: Vec<EntryId> = keyed
        .iter()
        .filter(|(_, _, _, entry)| entry.is_none())
        .map(|(_, id, _, _)| *id)
        .collect();
    let mut read: HashMap<EntryId, Vec<u8>> = if missing.is_empty() {
        HashMap::new()
    } else {
        storage
            .entries(log, &missing)
            .await?
            .into_iter()
            .map(|entry| (entry.id, entry.bytes))
            .collect()
    };
    let count = keyed.len();
    let group_pk = *log.group_pk();
    let open = move || -> Result<Vec<(usize, Vec<u8>)>, Error> {
        keyed
            .into_iter()
            .map(|(index, id, view, entry)| {
                let bytes = entry.or_else(|| read.remove(&id)).ok_or_else(|| {
                    Error::Internal(format!("the entry of stored message {id} is missing"))
                })?;
                let payload = Entry::payload_of(&bytes).map_err(|e| {
                    Error::Internal(format!("the entry of stored message {id}: {e}"))
                })?;
                Ok((index, view.opened(&group_pk, payload)?.encode()))
            })
            .collect()
    };
    let opened = if count <= OPEN_INLINE {
        open()?
    } else {
        tokio::task::spawn_blocking(open)
            .await
            .map_err(|e| Error::Internal(format!("opening stored messages: {e}")))??
    };
    for (index, body) in opened {
        if let Some(event) = events.get_mut(index) {
            event.body = body;
        }
    }
    Ok(events)
}
