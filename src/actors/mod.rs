//! Actors: one [`AccountActor`] per local account, one [`GroupStoreActor`] per group log.
//!
//! Actors own state and serialise the work on it; storage does the persisting. The gRPC and
//! admin servers translate requests into actor messages.

pub mod account;
pub mod group_store;

pub use account::{AccountActor, OpenGroupStore};
pub use group_store::{AppendEntries, GroupStoreActor, Heads, SubscribeLog};
