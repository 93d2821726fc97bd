//! Actors: one [`AccountActor`] per local account, one [`GroupStoreActor`] per group log.
//!
//! Actors own state and serialise the work on it; storage does the persisting. The gRPC and
//! admin servers translate requests into actor messages.

pub mod account;
pub mod contacts;
pub mod export;
pub mod group_store;

pub use account::AccountActor;
pub use group_store::{GroupStoreActor, Heads, LocalWrite, ReplayQueued, WatchEvents, Write};
