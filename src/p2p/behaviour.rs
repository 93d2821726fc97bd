//! The composed network behaviour: every protocol the node speaks, and the gates in front.

// The derive generates a `BehaviourEvent` enum that cannot carry doc comments.
#![allow(missing_docs)]

use libp2p::{
    autonat, connection_limits, dcutr, gossipsub, identify,
    identity::Keypair,
    kad::{self, store::MemoryStore},
    mdns, ping, relay, request_response,
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour},
    PeerId, StreamProtocol,
};

use super::{
    inbound_streams::InboundStreams,
    mirror_message::{MirrorCodec, MIRROR_PROTOCOL},
    peer_gate::PeerGate,
    relay_server::RelayServer,
    settings::{relay_server_config, P2pSettings},
    sync_codec::{SyncCodec, SYNC_PROTOCOL},
};
use crate::{
    metrics::P2pMetrics,
    rendezvous::{RendezvousCodec, RENDEZVOUS_PROTOCOL},
};

/// Identify protocol version announced to peers.
pub const IDENTIFY_PROTOCOL: &str = "/berty-node/id/1.0.0";
/// Kademlia protocol id: our own DHT, versioned, apart from the public IPFS one.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/berty-node/kad/1.0.0");

/// Provider keys the DHT store holds, this node's and other peers' together (this node provides
/// two rotating keys per replicated group).
const KAD_MAX_PROVIDED_KEYS: usize = 65_536;
/// Value records the DHT store holds: none. berty-node uses provider records only; taking
/// values (up to 65 KiB each) would let any peer park gigabytes in this node's memory.
const KAD_MAX_RECORDS: usize = 0;

/// Sync streams open at once per connection.
const SYNC_MAX_STREAMS: usize = 256;
/// Inbound rendezvous streams open at once per connection (request-response's default, which
/// the server had when it read one request per stream).
const RENDEZVOUS_MAX_STREAMS: usize = 100;

/// All protocols of the node, composed. The gates come first, so a refused connection never
/// reaches a protocol.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// `p2p.max_connections`, `p2p.max_connections_per_peer`, `p2p.max_pending_incoming`.
    pub limits: connection_limits::Behaviour,
    /// Partitions, direct-connection refusals and penalties.
    pub gate: PeerGate,
    /// Exchanges listen addresses, observed addresses and protocols with peers.
    pub identify: identify::Behaviour,
    /// Keeps measuring round trips.
    pub ping: ping::Behaviour,
    /// The DHT, in server mode.
    pub kad: kad::Behaviour<MemoryStore>,
    /// Circuit relay v2 server, when `relay.enabled` (wrapped: see [`RelayServer`]).
    pub relay_server: Toggle<RelayServer>,
    /// Circuit relay v2 client: reservations on other relays, dials through them.
    pub relay_client: relay::client::Behaviour,
    /// Upgrades relayed connections to direct ones by hole punching.
    pub dcutr: dcutr::Behaviour,
    /// Confirms which observed addresses are reachable from outside.
    pub autonat: autonat::Behaviour,
    /// Local network discovery, when `p2p.mdns` (and the socket could be opened).
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    /// Our sync protocol (`/berty-node/sync/1.0.0`): link-key proofs, heads, batched fetches.
    pub sync: request_response::Behaviour<SyncCodec>,
    /// Heads announcements, one topic per group named and sealed with its link key.
    pub gossipsub: Gossipsub,
    /// `/rendezvous/1.0.0` as a client: registering and discovering at rendezvous servers.
    pub rendezvous: request_response::Behaviour<RendezvousCodec>,
    /// `/berty-node/mirror/1.0.0`: asking mirrors to keep our groups, and (with
    /// `mirror.enabled`) answering such requests; without the role they are refused with a
    /// clear reason rather than left unanswered.
    pub mirror: request_response::Behaviour<MirrorCodec>,
    /// `/rendezvous/1.0.0` as a server, when `rendezvous.enabled`: inbound streams, each
    /// served (several requests in a row) by the rendezvous server.
    pub rendezvous_inbound: Toggle<InboundStreams>,
    /// Whole streams opened and accepted by protocol: the contact handshake
    /// (`/berty/contact_req/1.0.0`), driven outside the swarm through a
    /// [`libp2p_stream::Control`].
    pub streams: libp2p_stream::Behaviour,
}

/// Gossipsub with a subscription filter sized for a node in thousands of groups (libp2p's
/// defaults accept about a hundred topics).
pub type Gossipsub = gossipsub::Behaviour<
    gossipsub::IdentityTransform,
    gossipsub::MaxCountSubscriptionFilter<gossipsub::AllowAllSubscriptionFilter>,
>;

/// Topics this node subscribes to at most (one per replicated group).
const GOSSIP_MAX_TOPICS: usize = 100_000;
/// Subscriptions one peer may announce in one message.
const GOSSIP_MAX_SUBSCRIPTIONS_PER_REQUEST: usize = 10_000;
/// Largest gossip message (announcements carry only small batches inline).
pub const GOSSIP_MAX_TRANSMIT: usize = 256 * 1024;

fn gossip(key: &Keypair) -> Result<Gossipsub, String> {
    let config = gossipsub::ConfigBuilder::default()
        .max_transmit_size(GOSSIP_MAX_TRANSMIT)
        .validation_mode(gossipsub::ValidationMode::Strict)
        // Content-addressed: the same announcement relayed twice is one message.
        .message_id_fn(|m: &gossipsub::Message| {
            use sha2::Digest;
            gossipsub::MessageId::from(sha2::Sha256::digest(&m.data).to_vec())
        })
        .build()
        .map_err(|e| e.to_string())?;
    gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        config,
        gossipsub::MaxCountSubscriptionFilter {
            filter: gossipsub::AllowAllSubscriptionFilter {},
            max_subscribed_topics: GOSSIP_MAX_TOPICS,
            max_subscriptions_per_request: GOSSIP_MAX_SUBSCRIPTIONS_PER_REQUEST,
        },
    )
    .map_err(ToString::to_string)
}

impl Behaviour {
    /// Builds the behaviour for the node's key. mDNS that cannot start is logged and left off.
    pub fn new(
        key: &Keypair,
        relay_client: relay::client::Behaviour,
        settings: &P2pSettings,
        metrics: &P2pMetrics,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let peer_id = key.public().to_peer_id();
        let agent = format!("berty-node/{}", env!("CARGO_PKG_VERSION"));
        let limits = settings.connection_limits;
        Ok(Self {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(limits.max_connections))
                    .with_max_established_per_peer(Some(limits.max_connections_per_peer))
                    .with_max_pending_incoming(Some(limits.max_pending_incoming)),
            ),
            gate: PeerGate::new(metrics.connections_denied.clone()),
            identify: identify::Behaviour::new(
                identify::Config::new(IDENTIFY_PROTOCOL.to_string(), key.public())
                    .with_agent_version(agent),
            ),
            ping: ping::Behaviour::default(),
            kad: kademlia(peer_id, settings),
            relay_server: Toggle::from(
                settings
                    .relay
                    .enabled
                    .then(|| RelayServer::new(peer_id, relay_server_config(&settings.relay))),
            ),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer_id),
            autonat: autonat::Behaviour::new(
                peer_id,
                autonat::Config {
                    boot_delay: settings.timings.autonat_boot_delay,
                    retry_interval: settings.timings.autonat_retry_interval,
                    refresh_interval: settings.timings.autonat_refresh_interval,
                    // Loopback and private networks are real deployments too (and the tests).
                    only_global_ips: false,
                    ..autonat::Config::default()
                },
            ),
            mdns: Toggle::from(mdns_behaviour(peer_id, settings.mdns)),
            sync: request_response::Behaviour::with_codec(
                SyncCodec::default(),
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(settings.timings.sync_request_timeout)
                    .with_max_concurrent_streams(SYNC_MAX_STREAMS),
            ),
            gossipsub: gossip(key)?,
            rendezvous: request_response::Behaviour::with_codec(
                RendezvousCodec,
                [(
                    RENDEZVOUS_PROTOCOL,
                    request_response::ProtocolSupport::Outbound,
                )],
                request_response::Config::default()
                    .with_request_timeout(settings.timings.sync_request_timeout),
            ),
            mirror: request_response::Behaviour::with_codec(
                MirrorCodec::default(),
                [(MIRROR_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(settings.timings.sync_request_timeout),
            ),
            rendezvous_inbound: Toggle::from(
                settings
                    .rendezvous_server
                    .is_some()
                    .then(|| InboundStreams::new(RENDEZVOUS_PROTOCOL, RENDEZVOUS_MAX_STREAMS)),
            ),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}

fn kademlia(peer_id: PeerId, settings: &P2pSettings) -> kad::Behaviour<MemoryStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config.set_query_timeout(settings.timings.kad_query_timeout);
    // libp2p's store holds 1,024 provided keys; a node in thousands of groups provides two
    // rotating keys per group.
    let mut kad = kad::Behaviour::with_config(peer_id, kad_store(peer_id), config);
    // Infrastructure nodes answer DHT queries whatever their observed reachability.
    kad.set_mode(Some(kad::Mode::Server));
    kad
}

/// The DHT store: many provider keys, no value records.
fn kad_store(peer_id: PeerId) -> MemoryStore {
    MemoryStore::with_config(
        peer_id,
        kad::store::MemoryStoreConfig {
            max_provided_keys: KAD_MAX_PROVIDED_KEYS,
            max_records: KAD_MAX_RECORDS,
            ..kad::store::MemoryStoreConfig::default()
        },
    )
}

fn mdns_behaviour(peer_id: PeerId, enabled: bool) -> Option<mdns::tokio::Behaviour> {
    if !enabled {
        return None;
    }
    match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
        Ok(mdns) => Some(mdns),
        Err(e) => {
            tracing::warn!(%e, "p2p.mdns is on but mDNS cannot start; running without it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use libp2p::kad::{store::RecordStore, ProviderRecord, Record, RecordKey};

    use super::*;

    #[test]
    fn the_dht_store_keeps_providers_and_refuses_values() {
        let mut store = kad_store(PeerId::random());
        let key = RecordKey::new(&b"a discovery key");
        assert!(store.put(Record::new(key.clone(), vec![0; 16])).is_err());
        let provider = ProviderRecord::new(key.clone(), PeerId::random(), Vec::new());
        assert!(store.add_provider(provider).is_ok());
        assert_eq!(store.providers(&key).len(), 1);
    }
}
