//! What the swarm is built from: the `p2p.*` and `relay.*` configuration plus timings.

use std::{num::NonZeroU32, time::Duration};

use libp2p::{relay, Multiaddr};

use super::mirror_message::InboundMirrorRequest;

use crate::{
    config::{ConnectionLimitsConfig, NodeConfig, RelayConfig},
    rendezvous::RendezvousServer,
};

/// Connections without traffic are closed after this long.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// AutoNAT waits this long after start before its first probe (peers need time to connect).
pub const AUTONAT_BOOT_DELAY: Duration = Duration::from_secs(15);
/// AutoNAT probes again this often while reachability is unknown or unconfirmed.
pub const AUTONAT_RETRY_INTERVAL: Duration = Duration::from_secs(90);
/// AutoNAT re-checks a confirmed status this often.
pub const AUTONAT_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A Kademlia query (find a peer, bootstrap) gives up after this long.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// `ListenOnRelay` gives up if the relay has not accepted the reservation by then.
pub const RELAY_LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// A sync request (hello, heads, fetch, announce) fails if unanswered after this long.
pub const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Timings of the swarm's protocols. The defaults suit the Internet; tests on loopback shorten
/// the AutoNAT ones so reachability is confirmed within a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// See [`IDLE_CONNECTION_TIMEOUT`].
    pub idle_connection: Duration,
    /// See [`AUTONAT_BOOT_DELAY`].
    pub autonat_boot_delay: Duration,
    /// See [`AUTONAT_RETRY_INTERVAL`].
    pub autonat_retry_interval: Duration,
    /// See [`AUTONAT_REFRESH_INTERVAL`].
    pub autonat_refresh_interval: Duration,
    /// See [`KAD_QUERY_TIMEOUT`].
    pub kad_query_timeout: Duration,
    /// See [`RELAY_LISTEN_TIMEOUT`].
    pub relay_listen_timeout: Duration,
    /// See [`SYNC_REQUEST_TIMEOUT`].
    pub sync_request_timeout: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            idle_connection: IDLE_CONNECTION_TIMEOUT,
            autonat_boot_delay: AUTONAT_BOOT_DELAY,
            autonat_retry_interval: AUTONAT_RETRY_INTERVAL,
            autonat_refresh_interval: AUTONAT_REFRESH_INTERVAL,
            kad_query_timeout: KAD_QUERY_TIMEOUT,
            relay_listen_timeout: RELAY_LISTEN_TIMEOUT,
            sync_request_timeout: SYNC_REQUEST_TIMEOUT,
        }
    }
}

/// Everything [`spawn`](super::spawn) needs besides the key.
#[derive(Debug, Clone)]
pub struct P2pSettings {
    /// `p2p.listen`.
    pub listen: Vec<Multiaddr>,
    /// `p2p.bootstrap`: dialled at start and added to the DHT when they name their peer id.
    pub bootstrap: Vec<Multiaddr>,
    /// `p2p.rendezvous`: rendezvous servers (each address ends with `/p2p/<peer id>`).
    pub rendezvous_servers: Vec<Multiaddr>,
    /// Our rendezvous server, when `rendezvous.enabled` (it needs the storage, so the node
    /// sets it after [`P2pSettings::from_config`]).
    pub rendezvous_server: Option<RendezvousServer>,
    /// Where inbound mirror requests go, when `mirror.enabled` (the node sets it after
    /// [`P2pSettings::from_config`]); without it they are refused as disabled.
    pub mirror_server: Option<tokio::sync::mpsc::Sender<InboundMirrorRequest>>,
    /// `p2p.external_addresses`: announced as confirmed external addresses from the start.
    pub external_addresses: Vec<Multiaddr>,
    /// `p2p.mdns`.
    pub mdns: bool,
    /// `relay.*`: the circuit relay server and its limits.
    pub relay: RelayConfig,
    /// `p2p.max_connections`, `p2p.max_connections_per_peer`, `p2p.max_pending_incoming`.
    pub connection_limits: ConnectionLimitsConfig,
    /// `p2p.test_controls`.
    pub test_controls: bool,
    /// Protocol timings (not operator settings).
    pub timings: Timings,
}

impl P2pSettings {
    /// The settings of a configured node.
    pub fn from_config(config: &NodeConfig) -> Self {
        Self {
            listen: config.p2p_listen.clone(),
            bootstrap: config.bootstrap.clone(),
            rendezvous_servers: config.rendezvous_servers.clone(),
            rendezvous_server: None,
            mirror_server: None,
            external_addresses: config.external_addresses.clone(),
            mdns: config.mdns,
            relay: config.relay.clone(),
            connection_limits: config.connection_limits,
            test_controls: config.test_controls,
            timings: Timings::default(),
        }
    }
}

/// libp2p's relay server configuration for `relay.*`: our limits, libp2p's per-peer and per-IP
/// rate limiters.
pub fn relay_server_config(relay: &RelayConfig) -> relay::Config {
    let max_circuit_duration_secs = relay.max_circuit_duration_secs.min(u64::from(u32::MAX));
    if max_circuit_duration_secs != relay.max_circuit_duration_secs {
        tracing::warn!(
            configured = relay.max_circuit_duration_secs,
            used = max_circuit_duration_secs,
            "relay.max_circuit_duration_secs is above what the protocol can carry; capped"
        );
    }
    let mut config = relay::Config {
        max_reservations: usize_of(relay.max_reservations),
        max_reservations_per_peer: usize_of(relay.max_reservations_per_peer),
        reservation_duration: Duration::from_secs(relay.reservation_duration_secs),
        max_circuits: usize_of(relay.max_circuits),
        max_circuits_per_peer: usize_of(relay.max_circuits_per_peer),
        max_circuit_duration: Duration::from_secs(max_circuit_duration_secs),
        max_circuit_bytes: relay.max_circuit_bytes,
        // Ours replace libp2p's default limiters (60 per IP per hour: too few behind a NAT).
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
    };
    if let Some((burst, every)) = per_hour(relay.reservations_per_peer_per_hour) {
        config = config.reservation_rate_per_peer(burst, every);
    }
    if let Some((burst, every)) = per_hour(relay.reservations_per_ip_per_hour) {
        config = config.reservation_rate_per_ip(burst, every);
    }
    if let Some((burst, every)) = per_hour(relay.circuits_per_peer_per_hour) {
        config = config.circuit_src_per_peer(burst, every);
    }
    if let Some((burst, every)) = per_hour(relay.circuits_per_ip_per_hour) {
        config = config.circuit_src_per_ip(burst, every);
    }
    config
}

/// `n` per hour as libp2p's token bucket: a burst of `n`, one token back every hour / `n`.
/// `None` (no limiter) for 0.
fn per_hour(n: u32) -> Option<(NonZeroU32, Duration)> {
    let burst = NonZeroU32::new(n)?;
    Some((burst, Duration::from_secs(3600) / n))
}

fn usize_of(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_limits_come_from_the_config() {
        let relay = RelayConfig {
            enabled: true,
            max_reservations: 1,
            max_reservations_per_peer: 2,
            reservation_duration_secs: 3,
            max_circuits: 4,
            max_circuits_per_peer: 5,
            max_circuit_duration_secs: u64::MAX,
            max_circuit_bytes: 7,
            reservations_per_peer_per_hour: 30,
            reservations_per_ip_per_hour: 0,
            circuits_per_peer_per_hour: 7200,
            circuits_per_ip_per_hour: 1,
        };
        let config = relay_server_config(&relay);
        assert_eq!(config.reservation_rate_limiters.len(), 1, "0 is no limiter");
        assert_eq!(config.circuit_src_rate_limiters.len(), 2);
        assert_eq!(
            per_hour(30),
            Some((NonZeroU32::new(30).unwrap(), Duration::from_secs(120))),
            "libp2p's per-peer default, as a rate per hour"
        );
        assert_eq!(per_hour(0), None);
        assert_eq!(config.max_reservations, 1);
        assert_eq!(config.max_reservations_per_peer, 2);
        assert_eq!(config.reservation_duration, Duration::from_secs(3));
        assert_eq!(config.max_circuits, 4);
        assert_eq!(config.max_circuits_per_peer, 5);
        assert_eq!(
            config.max_circuit_duration,
            Duration::from_secs(u64::from(u32::MAX)),
            "capped so libp2p does not panic"
        );
        assert_eq!(config.max_circuit_bytes, 7);
    }
}
