//! Decoding entries written by other devices into view events (what subscriptions replay).
//!
//! The log keeps every structurally valid, correctly signed entry; the rules of the group are
//! applied here, by each replica's view: a device must be bound to its member by the member's
//! signature, metadata must be signed by its device, group settings count only from the
//! creator, messages open only with the sender's chain key. An entry that breaks a rule stays
//! in the log and shows nothing.
//!
//! - [`metadata`]: the metadata view (members, chain keys shared with us, settings).
//! - [`messages`]: the messages view (headers, keys from the senders' chains, bodies and
//!   author signatures checked in batches on every core).
//! - [`queue`]: messages waiting for their sender's chain key.
//!
//! What decoding learns is kept in node values, committed with the events:
//!
//! | key ([`crate::storage::value_keys::ValueKey`]) | value |
//! |---|---|
//! | `Member` | the member key a device belongs to (sealed) |
//! | `Receiver` | the receiver chain of a device (sealed [`ReceiverChain`]) |
//! | `Queued` | a message waiting for its sender's chain key |
//!
//! [`ReceiverChain`]: crate::crypto::ReceiverChain

pub mod messages;
pub mod metadata;
pub mod queue;

#[cfg(test)]
mod fixtures;

pub use messages::{decode_messages, open_headers, MessagesDecoded, OpenedMessage};
pub use metadata::{decode_metadata, MetadataDecoded};

use crate::{group::ViewEvent, log::Entry, storage::NewEvent};

/// A view event for `entry` saying `event`, stored as `stored` when given.
fn new_event(entry: &Entry, event: &ViewEvent, stored: Option<&ViewEvent>) -> NewEvent {
    NewEvent {
        entry_id: entry.id(),
        lamport: entry.lamport(),
        parents: entry.parents().to_vec(),
        kind: event.kind().as_u8(),
        body: event.encode(),
        stored: stored.map(ViewEvent::encode),
    }
}
