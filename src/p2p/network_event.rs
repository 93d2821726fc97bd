//! [`NetworkEvent`]: what the swarm task tells the replication side, through a bounded
//! channel (the swarm never waits on it: when it is full, the event is dropped and counted).

use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::handle::PeerConnection;
use super::sync_message::{SyncRequest, SyncResponse};

/// An event of the network, for the replicator.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A connection with `peer` opened (`first` when it is the only one).
    Connected {
        /// The peer.
        peer: PeerId,
        /// The new connection.
        connection: PeerConnection,
        /// No other connection with the peer was open.
        first: bool,
    },
    /// The last connection with `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// Identify told what the peer speaks and where it listens.
    Identified {
        /// The peer.
        peer: PeerId,
        /// Its protocols.
        protocols: Vec<String>,
        /// Its listen addresses.
        listen_addrs: Vec<Multiaddr>,
        /// Its agent version.
        agent_version: String,
    },
    /// A sync request from `peer`; answer through `reply` (dropping it fails the request).
    SyncRequest {
        /// The requester.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<SyncResponse>,
    },
    /// A gossipsub message on a topic we subscribe to.
    Gossip {
        /// The peer that wrote and signed it (gossipsub's strict validation checked that).
        author: Option<PeerId>,
        /// The peer that passed it on.
        source: PeerId,
        /// The topic.
        topic: String,
        /// The (sealed) data.
        data: Vec<u8>,
    },
    /// `peer` broke a protocol of ours (an unparsable or oversized frame).
    Violation {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: String,
    },
}
