//! Groups as this account sees them: local records, references, the events of metadata logs,
//! and the decoded events (views) that subscriptions replay. Conversions between wire types and domain types happen
//! here, with one clear error per malformed input.

pub mod context;
pub mod metadata;
pub mod reference;
pub mod view;

pub use context::{GroupContext, GroupKind, GroupRecord};
pub use metadata::MetadataEvent;
pub use reference::{ContactReference, GroupReference};
pub use view::{EventKind, ViewBody, ViewEvent};

use crate::{crypto::VerifyingKey, error::Error};

/// Parses a 32-byte Ed25519 public key given by a client, naming the field when it is not one.
pub fn parse_key(field: &str, bytes: &[u8]) -> Result<VerifyingKey, Error> {
    crate::crypto::parse_public_key(bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "{field}: not a valid 32-byte Ed25519 public key ({} bytes given: {e})",
            bytes.len()
        ))
    })
}
