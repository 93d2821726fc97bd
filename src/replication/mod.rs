//! Replication of group logs between replicas over our sync protocol
//! (`/berty-node/sync/1.0.0`, byte layouts in `docs/protocol.md`).
//!
//! # Layout
//!
//! - [`replicator`]: [`Replicator`], the actor that follows the network (through
//!   [`crate::p2p::NetworkEvent`]), starts one [`PeerActor`] per connected peer, answers the
//!   sync requests of others and pushes new entries to the peers that replicate their group.
//! - [`peer`]: [`PeerActor`], what this node knows of one connected peer (addresses,
//!   protocols, connections, the groups it proved, its penalty) and the syncs it runs with it.
//! - [`wire`]: conversions between the protocol's messages and our types; the checks every
//!   received entry passes before it reaches a store ([`wire::verify_received`]).
//! - [`gossip_route`]: who answers for an announcement received by gossip (its author, or a
//!   forwarder that proved the group, for heads only).
//! - [`discovery`]: how members find each other under rotating discovery keys (DHT provider
//!   records, rendezvous registrations).
//! - [`decode`]: the view of entries written by other devices (members, chain keys, settings,
//!   messages, the queue of messages waiting for their chain key).
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

pub mod decode;
pub mod discovery;
pub mod gossip_route;
pub mod peer;
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
