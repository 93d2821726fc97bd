//! Messages waiting for their sender's chain key: where their keys
//! ([`ValueKey::Queued`], in total order) place them, and reading them back when the key
//! arrives.

use std::collections::HashSet;

use crate::{
    error::Error,
    log::{Entry, EntryId, LogId, OrderKey},
    storage::{value_keys::ValueKey, Direction, OrderRange, Storage},
};

/// Queued messages opened per commit when their chain key arrives (and entries read per page).
pub(crate) const REPLAY_CHUNK: usize = 4096;

/// The value of a queued message's key: its key says it all.
pub(crate) const QUEUED_MARKER: &[u8] = b"q";

/// The place in the total order a queue key names (`.../<lamport>/<id>`).
pub fn queued_order_key(key: &str) -> Option<OrderKey> {
    match ValueKey::parse(key) {
        Ok(ValueKey::Queued { order, .. }) => Some(order),
        _ => None,
    }
}

/// The entries of `queued` (in total order), read with range scans over the log rather than
/// one lookup per entry.
pub(crate) async fn read_entries(
    storage: &dyn Storage,
    log: &LogId,
    queued: &[(String, OrderKey)],
) -> Result<Vec<Entry>, Error> {
    let (Some((_, first)), Some((_, last))) = (queued.first(), queued.last()) else {
        return Ok(Vec::new());
    };
    let wanted: HashSet<EntryId> = queued.iter().map(|(_, k)| k.id).collect();
    let mut entries = Vec::with_capacity(queued.len());
    let mut lower = std::ops::Bound::Included(*first);
    loop {
        let page = storage
            .range(
                log,
                &OrderRange {
                    lower,
                    upper: std::ops::Bound::Included(*last),
                    direction: Direction::Forward,
                    limit: REPLAY_CHUNK as u32,
                },
            )
            .await?;
        let Some(end) = page.last().map(|e| e.order_key()) else {
            break;
        };
        let full = page.len() == REPLAY_CHUNK;
        for stored in page {
            if wanted.contains(&stored.id) {
                if let Ok(entry) = Entry::decode(&stored.bytes) {
                    entries.push(entry);
                }
            }
        }
        if !full || entries.len() == wanted.len() {
            break;
        }
        lower = std::ops::Bound::Excluded(end);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_name_their_place_in_the_total_order() {
        let id = EntryId([9; 32]);
        let key = ValueKey::Queued {
            group_pk: [1; 32],
            device_pk: [2; 32],
            order: OrderKey { lamport: 42, id },
        }
        .to_string();
        assert_eq!(queued_order_key(&key), Some(OrderKey { lamport: 42, id }));
        assert_eq!(queued_order_key("queue/x/y/notanumber/00"), None);
    }
}
