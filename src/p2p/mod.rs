//! libp2p networking. One task owns the `Swarm`; everything else talks to it through
//! [`SwarmHandle`], a command channel with reply slots.
//!
//! # Layout
//!
//! - [`settings`]: what the swarm is built from (`p2p.*`, `relay.*`, protocol timings).
//! - [`behaviour`]: the composed behaviour: connection limits, the peer gate, identify, ping,
//!   Kademlia (server mode), circuit relay v2 server and client, DCUtR, AutoNAT, mDNS, sync.
//! - [`peer_gate`]: refusing connections with given peers (partitions and direct-connection
//!   refusals for tests, penalties).
//! - [`relay_server`]: the circuit relay server, keeping its notifications off relayed
//!   connections (rust-libp2p#5412).
//! - [`relay_ledger`]: what the relay server has served (reservations, circuits, bytes).
//! - [`relay_bytes`]: counting the bytes the relay server forwards (a muxer wrapper).
//! - [`inbound_streams`]: inbound streams of one protocol handed to the swarm task whole
//!   (the rendezvous server reads several requests per stream).
//! - [`handle`]: [`SwarmHandle`], its commands and the shapes of their replies.
//! - [`network_event`]: [`NetworkEvent`], what the swarm tells the replicator.
//! - [`sync_codec`]: framing of our sync protocol (`/berty-node/sync/1.0.0`).
//! - [`swarm`]: building the swarm and starting its task ([`spawn`]).
//! - `task`: the task that owns the swarm, answers commands and follows events.
//! - [`error`]: what can go wrong ([`P2pError`]).

pub mod behaviour;
pub mod error;
pub mod handle;
pub mod inbound_streams;
pub mod listen;
pub mod mirror_message;
pub mod network_event;
pub mod peer_gate;
pub mod relay_bytes;
pub mod relay_ledger;
pub mod relay_server;
pub mod settings;
pub mod swarm;
pub mod sync_codec;
pub mod sync_message;
mod task;

pub use error::P2pError;
pub use handle::{
    ConnectedPeer, Discovered, PeerConnection, SwarmCommand, SwarmHandle, SwarmInfo, TestControl,
};
pub use network_event::NetworkEvent;
pub use peer_gate::{RefusalReason, RefusedPeer, Route};
pub use relay_ledger::RelayStats;
pub use settings::{P2pSettings, Timings};
pub use swarm::spawn;
pub use sync_message::{
    Announcement, Fetch, SyncParseError, SyncRequest, SyncResponse, ERROR_MALFORMED,
    ERROR_NOT_PROVEN, ERROR_UNAVAILABLE,
};

/// The peer id an address ends with (`.../p2p/<peer id>`), if any.
pub fn peer_id_of(addr: &libp2p::Multiaddr) -> Option<libp2p::PeerId> {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}
