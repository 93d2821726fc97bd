//! Our own rendezvous server, speaking the libp2p rendezvous protocol (`/rendezvous/1.0.0`).
//!
//! libp2p's server keeps registrations in memory, keeps a refreshed registration beside the
//! old one until the old TTL ends, and reads only rust-libp2p's legacy peer record format.
//! This one stores registrations in the node's database (so they survive a restart, and
//! several nodes sharing one PostgreSQL answer the same discovers), replaces a registration
//! on refresh, and accepts both record formats.
//!
//! # Layout
//!
//! - [`wire`]: the protobuf messages, [`wire::Request`] (what a message asks; a message
//!   without `type` is a REGISTER) and [`wire::RendezvousCodec`], our client's request-response
//!   codec (varint-length-prefixed frames, capped reads). No I/O beyond the stream.
//! - [`record`]: verification of signed peer records in the legacy and the standard format
//!   (pure).
//! - [`server`]: [`server::RendezvousServer`], which validates requests, batches registration
//!   writes (group commit) and answers discovers with cookie paging, over the storage's
//!   [`crate::storage::rendezvous::RendezvousStore`]; one file per request path, plus its
//!   limits, cookie, refusals and stats.
//! - [`upkeep`]: running it in the node: built from `rendezvous.*`, its metrics, the periodic
//!   purge of expired registrations.
//!
//! The swarm task accepts the streams: it hands each inbound stream to
//! [`server::RendezvousServer::serve_stream`] with the sending peer, in a task of its own,
//! which answers its requests in order (none for UNREGISTER) until the stream ends.

pub mod record;
pub mod server;
pub mod upkeep;
pub mod wire;

pub use record::{RecordError, RecordFormat, VerifiedRecord};
pub use server::{
    DiscoverCookie, Refusal, RegistrationInfo, RendezvousLimits, RendezvousServer, RendezvousStats,
};
pub use upkeep::{server_for, RendezvousCollector};
pub use wire::{RendezvousCodec, RENDEZVOUS_PROTOCOL};
