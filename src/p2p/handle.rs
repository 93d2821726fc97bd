//! [`SwarmHandle`]: how the rest of the node talks to the swarm task, one command with a reply
//! slot per question.

use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::{
    mirror_message::{MirrorRequest, MirrorResponse},
    sync_message::{SyncRequest, SyncResponse},
};

use super::{
    error::P2pError,
    peer_gate::{RefusedPeer, Route},
    relay_ledger::RelayStats,
};

/// A request to the swarm task.
#[derive(Debug)]
pub enum SwarmCommand {
    /// Identity, addresses and the state of optional parts.
    Info(oneshot::Sender<SwarmInfo>),
    /// Peers with an open connection, and how they are reached.
    ConnectedPeers(oneshot::Sender<Vec<ConnectedPeer>>),
    /// Dials an address; answers once connected (with the peer) or failed.
    Dial {
        /// With or without `/p2p/<peer id>`.
        addr: Multiaddr,
        /// The reply slot.
        reply: oneshot::Sender<Result<PeerId, P2pError>>,
    },
    /// Looks a peer's addresses up in the DHT.
    FindPeer {
        /// The peer.
        peer: PeerId,
        /// The reply slot.
        reply: oneshot::Sender<Result<Vec<Multiaddr>, P2pError>>,
    },
    /// Announces in the DHT that this node provides `key` (renewed by Kademlia while running).
    Provide {
        /// The key.
        key: Vec<u8>,
        /// The reply slot (the local record is stored; publication goes on in the background).
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
    /// Stops providing `key` in the DHT (the records other nodes hold expire).
    StopProviding {
        /// The key.
        key: Vec<u8>,
    },
    /// Subscribes to (`true`) or leaves (`false`) gossipsub topics.
    Topics {
        /// Topics to join.
        subscribe: Vec<String>,
        /// Topics to leave.
        unsubscribe: Vec<String>,
    },
    /// Publishes on a gossipsub topic (best effort: no peer on the topic is not an error).
    Publish {
        /// The topic.
        topic: String,
        /// The data.
        data: Vec<u8>,
    },
    /// Looks up the providers of `key` in the DHT.
    FindProviders {
        /// The key.
        key: Vec<u8>,
        /// The reply slot.
        reply: oneshot::Sender<Result<Vec<PeerId>, P2pError>>,
    },
    /// Takes a reservation on a relay; answers with the `/p2p-circuit` address once accepted.
    ListenOnRelay {
        /// The relay's address, with `/p2p/<relay peer id>`.
        relay: Multiaddr,
        /// The reply slot.
        reply: oneshot::Sender<Result<Multiaddr, P2pError>>,
    },
    /// What the relay server has served.
    RelayStats(oneshot::Sender<RelayStats>),
    /// Disconnects a peer and refuses it for a while.
    Penalise {
        /// The peer.
        peer: PeerId,
        /// How long it is refused.
        duration: Duration,
        /// The reply slot.
        reply: oneshot::Sender<()>,
    },
    /// Peers refused now.
    RefusedPeers(oneshot::Sender<Vec<RefusedPeer>>),
    /// Lifts a peer's penalty; answers whether it served one.
    Forgive {
        /// The peer.
        peer: PeerId,
        /// The reply slot.
        reply: oneshot::Sender<bool>,
    },
    /// Sends a request to a mirror (dialled at `addrs` when not connected).
    Mirror {
        /// The mirror.
        peer: PeerId,
        /// Where to reach it.
        addrs: Vec<Multiaddr>,
        /// What to ask.
        request: MirrorRequest,
        /// Its answer.
        reply: oneshot::Sender<Result<MirrorResponse, P2pError>>,
    },
    /// Sends a sync request to a connected peer; answers with its response.
    Sync {
        /// The peer.
        peer: PeerId,
        /// The request.
        request: SyncRequest,
        /// The reply slot.
        reply: oneshot::Sender<Result<SyncResponse, P2pError>>,
    },
    /// Registers this node's external addresses under `namespace` at a rendezvous server
    /// (dialled first when not connected); answers with the TTL the server granted.
    RendezvousRegister {
        /// The rendezvous server.
        server: PeerId,
        /// The namespace (at most 255 bytes).
        namespace: String,
        /// The TTL asked for, seconds (`None`: the server's default).
        ttl: Option<u64>,
        /// The reply slot.
        reply: oneshot::Sender<Result<u64, P2pError>>,
    },
    /// Asks a rendezvous server who registered under `namespace` since `cookie`.
    RendezvousDiscover {
        /// The rendezvous server.
        server: PeerId,
        /// The namespace.
        namespace: String,
        /// The cookie of the previous page, if any (only newer registrations come back).
        cookie: Option<Vec<u8>>,
        /// The reply slot.
        reply: oneshot::Sender<Result<Discovered, P2pError>>,
    },
    /// Asks a rendezvous server to drop this node's registration under `namespace`.
    RendezvousUnregister {
        /// The rendezvous server.
        server: PeerId,
        /// The namespace.
        namespace: String,
    },
    /// A test control (needs `p2p.test_controls`).
    Test {
        /// What to do.
        control: TestControl,
        /// The reply slot.
        reply: oneshot::Sender<Result<(), P2pError>>,
    },
}

/// Test-only controls, accepted when `p2p.test_controls` is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestControl {
    /// Disconnect the peer and refuse every connection with it.
    Partition(PeerId),
    /// Refuse direct connections with the peer (closing open ones): only relayed ones pass.
    RefuseDirect(PeerId),
    /// Lift a partition or a direct-connection refusal.
    Heal(PeerId),
    /// Confirm an external address, as `p2p.external_addresses` or AutoNAT would.
    AddExternalAddress(Multiaddr),
    /// Withdraw a confirmed external address, as AutoNAT would when it stops being reachable.
    RemoveExternalAddress(Multiaddr),
}

/// What the swarm reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmInfo {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Addresses the node listens on (relay circuits included), each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Number of peers with an open connection.
    pub connected_peers: usize,
    /// Confirmed external addresses (configured, or observed and confirmed by AutoNAT).
    pub external_addrs: Vec<Multiaddr>,
    /// mDNS discovery runs.
    pub mdns: bool,
    /// The circuit relay server runs (`relay.enabled`).
    pub relay_server: bool,
    /// The relay server serves reservations now (it needs a confirmed external address).
    pub relay_serving: bool,
    /// The circuit relay client runs (always: the node can be reached through relays).
    pub relay_client: bool,
}

/// One open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConnection {
    /// The remote address (for a relayed inbound connection, the circuit's `/p2p/<peer id>`).
    pub remote_addr: Multiaddr,
    /// Direct or through a relay.
    pub route: Route,
    /// The peer dialled us.
    pub inbound: bool,
}

/// A peer with at least one open connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedPeer {
    /// The peer.
    pub peer_id: PeerId,
    /// Its open connections.
    pub connections: Vec<PeerConnection>,
    /// The agent version it announced through identify, once received.
    pub agent_version: Option<String>,
    /// The last ping round trip, once measured.
    pub rtt: Option<Duration>,
}

impl ConnectedPeer {
    /// Every open connection goes through a relay.
    pub fn relayed_only(&self) -> bool {
        !self.connections.is_empty() && self.connections.iter().all(|c| c.route == Route::Relayed)
    }
}

/// A page of registrations a rendezvous server returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// Who registered, with the addresses of their signed peer records.
    pub peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Pass it to the next discover to get only newer registrations.
    pub cookie: Vec<u8>,
}

/// A cheap, cloneable handle to the swarm task.
#[derive(Clone)]
pub struct SwarmHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<SwarmCommand>,
    streams: libp2p_stream::Control,
}

impl std::fmt::Debug for SwarmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmHandle")
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl SwarmHandle {
    pub(super) fn new(
        peer_id: PeerId,
        commands: mpsc::Sender<SwarmCommand>,
        streams: libp2p_stream::Control,
    ) -> Self {
        Self {
            peer_id,
            commands,
            streams,
        }
    }

    /// Opens and accepts whole streams by protocol (each clone has its own slot for opening
    /// streams: see [`libp2p_stream::Control::open_stream`]).
    pub fn streams(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The swarm's current state.
    pub async fn info(&self) -> Result<SwarmInfo, P2pError> {
        self.ask(SwarmCommand::Info).await
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<ConnectedPeer>, P2pError> {
        self.ask(SwarmCommand::ConnectedPeers).await
    }

    /// Dials `addr`; returns the peer once a connection is established.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, P2pError> {
        self.ask(|reply| SwarmCommand::Dial { addr, reply }).await?
    }

    /// The addresses of `peer` known to the DHT (a Kademlia closest-peers lookup).
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, P2pError> {
        self.ask(|reply| SwarmCommand::FindPeer { peer, reply })
            .await?
    }

    /// Announces in the DHT that this node provides `key`.
    pub async fn provide(&self, key: Vec<u8>) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Provide { key, reply })
            .await?
    }

    /// Stops providing `key` in the DHT; does not wait.
    pub async fn stop_providing(&self, key: Vec<u8>) -> Result<(), P2pError> {
        self.commands
            .send(SwarmCommand::StopProviding { key })
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Joins and leaves gossipsub topics.
    pub async fn set_topics(
        &self,
        subscribe: Vec<String>,
        unsubscribe: Vec<String>,
    ) -> Result<(), P2pError> {
        self.commands
            .send(SwarmCommand::Topics {
                subscribe,
                unsubscribe,
            })
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Publishes `data` on `topic` without waiting (dropped when the command queue is full).
    pub fn publish(&self, topic: String, data: Vec<u8>) {
        let _ = self
            .commands
            .try_send(SwarmCommand::Publish { topic, data });
    }

    /// The peers the DHT knows as providers of `key` (this node left out).
    pub async fn find_providers(&self, key: Vec<u8>) -> Result<Vec<PeerId>, P2pError> {
        self.ask(|reply| SwarmCommand::FindProviders { key, reply })
            .await?
    }

    /// Takes a reservation on `relay` (an address ending in `/p2p/<relay peer id>`); returns
    /// the address others dial to reach this node through it
    /// (`<relay>/p2p-circuit/p2p/<our peer id>`).
    pub async fn listen_on_relay(&self, relay: Multiaddr) -> Result<Multiaddr, P2pError> {
        self.ask(|reply| SwarmCommand::ListenOnRelay { relay, reply })
            .await?
    }

    /// What the relay server has served.
    pub async fn relay_stats(&self) -> Result<RelayStats, P2pError> {
        self.ask(SwarmCommand::RelayStats).await
    }

    /// Disconnects `peer` and refuses it for `duration`.
    pub async fn penalise(&self, peer: PeerId, duration: Duration) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Penalise {
            peer,
            duration,
            reply,
        })
        .await
    }

    /// Lifts the penalty of `peer` (a ban), so it may connect again; `false` when it served
    /// none.
    pub async fn forgive(&self, peer: PeerId) -> Result<bool, P2pError> {
        self.ask(|reply| SwarmCommand::Forgive { peer, reply })
            .await
    }

    /// Peers refused now, and until when (`Instant`s are this process's clock).
    pub async fn refused_peers(&self) -> Result<Vec<RefusedPeer>, P2pError> {
        self.ask(SwarmCommand::RefusedPeers).await
    }

    /// Sends a sync request to `peer` (connected, or reachable at a known address) and waits
    /// for its response.
    pub async fn sync(&self, peer: PeerId, request: SyncRequest) -> Result<SyncResponse, P2pError> {
        self.ask(|reply| SwarmCommand::Sync {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Asks the mirror `peer` (reached at `addrs` when not connected) to register or unregister
    /// a group.
    pub async fn mirror(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: MirrorRequest,
    ) -> Result<MirrorResponse, P2pError> {
        self.ask(|reply| SwarmCommand::Mirror {
            peer,
            addrs,
            request,
            reply,
        })
        .await?
    }

    /// Registers this node under `namespace` at the rendezvous server `server` (one of
    /// `p2p.rendezvous`, or any connected peer); returns the TTL granted, in seconds.
    pub async fn rendezvous_register(
        &self,
        server: PeerId,
        namespace: String,
        ttl: Option<u64>,
    ) -> Result<u64, P2pError> {
        self.ask(|reply| SwarmCommand::RendezvousRegister {
            server,
            namespace,
            ttl,
            reply,
        })
        .await?
    }

    /// The peers registered under `namespace` at `server` (newer than `cookie` when given).
    pub async fn rendezvous_discover(
        &self,
        server: PeerId,
        namespace: String,
        cookie: Option<Vec<u8>>,
    ) -> Result<Discovered, P2pError> {
        self.ask(|reply| SwarmCommand::RendezvousDiscover {
            server,
            namespace,
            cookie,
            reply,
        })
        .await?
    }

    /// Asks `server` to drop this node's registration under `namespace`; does not wait (the
    /// protocol has no answer to it).
    pub async fn rendezvous_unregister(
        &self,
        server: PeerId,
        namespace: String,
    ) -> Result<(), P2pError> {
        self.commands
            .send(SwarmCommand::RendezvousUnregister { server, namespace })
            .await
            .map_err(|_| P2pError::Stopped)
    }

    /// Test control: disconnects `peer` and refuses every connection with it.
    pub async fn partition(&self, peer: PeerId) -> Result<(), P2pError> {
        self.test(TestControl::Partition(peer)).await
    }

    /// Test control: refuses direct connections with `peer`; relayed ones still pass.
    pub async fn refuse_direct(&self, peer: PeerId) -> Result<(), P2pError> {
        self.test(TestControl::RefuseDirect(peer)).await
    }

    /// Test control: lifts a partition or direct-connection refusal of `peer`.
    pub async fn heal(&self, peer: PeerId) -> Result<(), P2pError> {
        self.test(TestControl::Heal(peer)).await
    }

    /// Test control: confirms `addr` as an external address of this node.
    pub async fn add_external_address(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.test(TestControl::AddExternalAddress(addr)).await
    }

    /// Test control: withdraws the external address `addr`.
    pub async fn remove_external_address(&self, addr: Multiaddr) -> Result<(), P2pError> {
        self.test(TestControl::RemoveExternalAddress(addr)).await
    }

    async fn test(&self, control: TestControl) -> Result<(), P2pError> {
        self.ask(|reply| SwarmCommand::Test { control, reply })
            .await?
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> SwarmCommand,
    ) -> Result<T, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)
    }
}

/// A reply waiting for the swarm, given up on at `deadline`.
#[derive(Debug)]
pub(super) struct Pending<T> {
    pub reply: oneshot::Sender<Result<T, P2pError>>,
    pub deadline: Instant,
}
