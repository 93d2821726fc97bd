//! What a store reads back from storage: its heads, event cursor, sender chain, the members
//! decoding has learnt and the receiver chains.

use std::{collections::HashMap, sync::Arc};

use crate::{
    crypto::{ReceiverChain, SenderChain},
    error::Error,
    log::{LogId, LogKind, OrderKey},
    storage::SealedValues,
    storage::{
        value_keys::{ValueKey, ValuePrefix},
        Storage,
    },
};

/// The state of a store as storage has it.
pub(super) struct Loaded {
    pub(super) heads: Vec<OrderKey>,
    pub(super) last_event_cursor: u64,
    pub(super) sender: Option<SenderChain>,
    pub(super) members: HashMap<[u8; 32], [u8; 32]>,
}

/// Reads the state of `log` from storage.
pub(super) async fn load(
    log: LogId,
    storage: Arc<dyn Storage>,
    values: SealedValues,
) -> Result<Loaded, Error> {
    let heads = storage.heads(&log).await?;
    let last_event_cursor = storage.last_event_cursor(&log).await?;
    let sender = if log.kind() == LogKind::Messages {
        let key = ValueKey::Chain {
            group_pk: *log.group_pk(),
        };
        match values.get(&key.to_string()).await? {
            Some(bytes) => Some(SenderChain::from_bytes(&bytes).map_err(|e| {
                Error::Internal(format!("stored sender chain does not parse: {e}"))
            })?),
            None => None,
        }
    } else {
        None
    };
    let members = load_members(&values, log.group_pk()).await?;
    Ok(Loaded {
        heads,
        last_event_cursor,
        sender,
        members,
    })
}

/// Loads the device-to-member bindings of a group.
pub(super) async fn load_members(
    values: &SealedValues,
    group_pk: &[u8; 32],
) -> Result<HashMap<[u8; 32], [u8; 32]>, Error> {
    let prefix = ValuePrefix::Members {
        group_pk: *group_pk,
    };
    let mut members = HashMap::new();
    for (key, member) in values.list(prefix).await? {
        let device = match ValueKey::parse(&key) {
            Ok(ValueKey::Member { device_pk, .. }) => Some(device_pk),
            _ => None,
        };
        let member = <[u8; 32]>::try_from(member).ok();
        if let (Some(device), Some(member)) = (device, member) {
            members.insert(device, member);
        }
    }
    Ok(members)
}

/// Loads the stored receiver chain of `device`, if any.
pub(super) async fn load_chain(
    values: &SealedValues,
    group_pk: &[u8; 32],
    device: &[u8; 32],
) -> Result<Option<ReceiverChain>, Error> {
    let key = ValueKey::Receiver {
        group_pk: *group_pk,
        device_pk: *device,
    };
    match values.get(&key.to_string()).await? {
        Some(bytes) => ReceiverChain::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| Error::Internal(format!("stored receiver chain does not parse: {e}"))),
        None => Ok(None),
    }
}
