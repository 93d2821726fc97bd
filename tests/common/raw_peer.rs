//! A bare libp2p peer inside the test process: TCP, Noise and Yamux, and only the behaviour a
//! test gives it. It connects to a node process and speaks a protocol byte by byte, as another
//! implementation or a hostile peer would.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    identity::Keypair,
    noise,
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, Stream, StreamProtocol, Swarm, SwarmBuilder,
};

use super::protocol::{within, TestNode};

/// A swarm with nothing but TCP, Noise, Yamux and the behaviour `behaviour` builds.
pub fn swarm_with<B: NetworkBehaviour>(
    key: Keypair,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Swarm<B> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("TCP transport")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// Connects `swarm` to the node and waits for the connection; returns the node's peer id.
pub async fn connect<B: NetworkBehaviour>(swarm: &mut Swarm<B>, node: &TestNode) -> PeerId {
    let addr: Multiaddr = node.process.p2p_addrs[0].parse().unwrap();
    let server: PeerId = node.process.peer_id.parse().unwrap();
    swarm.dial(addr).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = swarm.select_next_some().await {
            if peer_id == server {
                return server;
            }
        }
    }
}

/// A peer with `libp2p_stream::Behaviour`, connected to one node, that opens raw streams to
/// it. Its swarm runs in a task of its own for as long as the test's runtime.
pub struct RawPeer {
    control: libp2p_stream::Control,
    node: PeerId,
    /// This peer's id.
    pub peer_id: PeerId,
}

impl RawPeer {
    /// A peer with a fresh key, connected to `node`.
    pub async fn connect(node: &TestNode) -> Self {
        Self::connect_with(node, Keypair::generate_ed25519()).await
    }

    /// A peer with `key`, connected to `node`.
    pub async fn connect_with(node: &TestNode, key: Keypair) -> Self {
        let peer_id = key.public().to_peer_id();
        let mut swarm = swarm_with(key, |_| libp2p_stream::Behaviour::new());
        let control = swarm.behaviour().new_control();
        let node = within("the raw peer connects", connect(&mut swarm, node)).await;
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        Self {
            control,
            node,
            peer_id,
        }
    }

    /// A new stream of `protocol` to the node.
    pub async fn open(&mut self, protocol: StreamProtocol) -> Stream {
        within(
            "a raw stream opens",
            self.control.open_stream(self.node, protocol.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("the node accepts {protocol} streams: {e}"))
    }
}
