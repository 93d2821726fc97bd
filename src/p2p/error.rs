//! What can go wrong in the networking layer.

use libp2p::{Multiaddr, PeerId};

/// An error from starting the swarm or from one of its commands.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// Building the transport failed.
    #[error("libp2p transport: {0}")]
    Transport(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address from `p2p.listen`.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The swarm task is gone.
    #[error("the swarm task has stopped")]
    Stopped,
    /// A dial failed or was refused.
    #[error("dialling {addr}: {reason}")]
    Dial {
        /// The address dialled.
        addr: Multiaddr,
        /// Why it failed.
        reason: String,
    },
    /// The DHT does not know the peer.
    #[error("peer {0} not found in the DHT")]
    PeerNotFound(PeerId),
    /// A relay address is malformed, or the relay refused or dropped the reservation.
    #[error("relay reservation on {addr}: {reason}")]
    Relay {
        /// The relay address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// A mirror request failed (no connection, timeout, refused stream, bad answer).
    #[error("mirror request to {peer}: {reason}")]
    Mirror {
        /// The mirror asked.
        peer: PeerId,
        /// Why it failed.
        reason: String,
    },
    /// A sync request failed (no connection, timeout, refused stream, bad answer).
    #[error("sync request to {peer}: {reason}")]
    Sync {
        /// The peer asked.
        peer: PeerId,
        /// Why it failed.
        reason: String,
    },
    /// A peer's answer to a sync request does not parse (it broke the protocol).
    #[error("sync answer of {peer} does not parse: {reason}")]
    SyncMalformed {
        /// The peer.
        peer: PeerId,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A rendezvous server refused or failed a request (or could not be reached).
    #[error("rendezvous server {server}: {reason}")]
    Rendezvous {
        /// The server asked.
        server: PeerId,
        /// Why it failed.
        reason: String,
    },
    /// The DHT refused a local record (its store is full).
    #[error("DHT store: {0}")]
    Dht(String),
    /// A test-only command was sent while `p2p.test_controls` is off.
    #[error("test controls are off (p2p.test_controls = false)")]
    TestControlsDisabled,
}
