//! The composed network behaviour: every protocol the node speaks.

// The derive generates a `BehaviourEvent` enum that cannot carry doc comments.
#![allow(missing_docs)]

use libp2p::{identify, identity::Keypair, ping, swarm::NetworkBehaviour};

/// Identify protocol version announced to peers.
pub const IDENTIFY_PROTOCOL: &str = "/berty-node/id/1.0.0";

/// All protocols of the node, composed.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Exchanges listen addresses, observed addresses and protocols with peers.
    pub identify: identify::Behaviour,
    /// Keeps connections alive and measures round trips.
    pub ping: ping::Behaviour,
}

impl Behaviour {
    /// Builds the behaviour for the node's key.
    pub fn new(key: &Keypair) -> Self {
        let agent = format!("berty-node/{}", env!("CARGO_PKG_VERSION"));
        Self {
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version(agent),
            ),
            ping: ping::Behaviour::default(),
        }
    }
}
