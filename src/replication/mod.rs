//! Replication of group logs between replicas over our sync protocol
//! (`/berty-node/sync/1.0.0`, byte layouts in `docs/protocol.md`).
//!
//! # Layout
//!
//! - [`replicator`]: [`Replicator`], the router: follows the network (through
//!   [`crate::p2p::NetworkEvent`]), starts one [`PeerActor`] per connected peer and routes to
//!   them (requests, commits to push, gossip), runs discovery rounds.
//! - [`peer`]: [`PeerActor`], the one owner of a connected peer: what it is (addresses,
//!   protocols, connections), the hello in both roles, the groups it proved, answering its
//!   requests, our syncs and announcements with it, its penalty.
//! - [`hello`]: the link-key hello as a pure state machine (requester and responder).
//! - [`admission`]: which entries of a verified batch may be stored (parents present, the
//!   Lamport rule), shared by the group stores and the mirror's blind stores.
//! - [`wire`]: the checks every received entry passes before it reaches a store
//!   ([`wire::verify_received`]), and why entries are refused ([`wire::Rejection`]).
//! - [`gossip_route`]: who answers for an announcement received by gossip (its author, or a
//!   forwarder that proved the group, for heads only).
//! - [`discovery`]: how members find each other under rotating discovery keys (DHT provider
//!   records, rendezvous registrations).
//! - [`ports`]: what replication and the group stores say to each other (the directory of
//!   replicated groups with their stores, entries to append, commits to announce).
//!
//! # How two replicas converge
//!
//! On connection each side runs the hello: fresh nonces, then tags that prove which link keys
//! each holds without naming a group. For each group both hold, the requester asks for the
//! heads of both logs and fetches what it lacks: entries in total order from the lowest
//! Lamport clock among the unknown heads, many per round trip; when an entry's parent is
//! still unknown it steps back (doubling the step) until the ancestry joins. Afterwards, each
//! commit (local or received) is announced to every other peer replicating the group, with the
//! entries inline when they are small.

pub mod admission;
pub mod discovery;
pub mod gossip_route;
pub mod hello;
pub mod peer;
pub mod ports;
pub mod replicator;
pub mod wire;

pub use peer::PeerActor;
pub use replicator::{PeerState, PeerStates, ReplicationSettings, Replicator};

/// Most entries in one fetch reply.
pub const MAX_FETCH_ENTRIES: u32 = 4096;
/// Most entry bytes in one fetch reply (the reply stops at the first entry over it).
pub const MAX_FETCH_BYTES: usize = 8 * 1024 * 1024;
/// Most entry bytes announced inline; beyond, only heads are announced and peers fetch.
pub const MAX_INLINE_BYTES: usize = 1024 * 1024;
/// Most logs in one heads request.
pub const MAX_HEADS_LOGS: usize = 1024;
/// Most tags in one hello reply or prove request (groups held by one node).
pub const MAX_TAGS: usize = 100_000;
/// How far back (in Lamport steps) one sync walks before giving up on a peer whose entries
/// never join our ancestry.
pub const MAX_SYNC_DEPTH_STEPS: u32 = 64;
