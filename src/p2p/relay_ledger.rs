//! Bookkeeping of the circuit relay server: who holds a reservation, how many circuits run, and
//! what was accepted or denied. libp2p's relay keeps this to itself; the ledger follows its
//! events so the admin API, tests and metrics can see it. The bytes relayed are counted by the
//! connections' muxers (`super::relay_bytes`) and read here from their counter.

use std::collections::HashMap;

use libp2p::{relay, Multiaddr, PeerId};

use crate::metrics::{P2pMetrics, RelayOutcomeLabels};

/// Why a relay with no external address refuses reservations (logged once at start and
/// reported by the admin API): libp2p's relay serves only once one is confirmed.
pub const NO_EXTERNAL_ADDRESS: &str = "no external address: reservations are refused until \
     p2p.external_addresses is set or AutoNAT confirms one";

/// What the relay server has served, as reported by [`RelayStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// `relay.enabled`: the relay server runs.
    pub enabled: bool,
    /// The relay serves reservations now (it needs a confirmed external address).
    pub serving: bool,
    /// The node's confirmed external addresses (configured, or confirmed by AutoNAT).
    pub external_addresses: Vec<Multiaddr>,
    /// Peers holding a reservation now, sorted.
    pub reserved_peers: Vec<PeerId>,
    /// Reservations held now (a peer may hold several, one per connection).
    pub active_reservations: u64,
    /// Circuits open now.
    pub active_circuits: u64,
    /// New reservations accepted since start.
    pub reservations_accepted: u64,
    /// Reservations renewed since start.
    pub reservations_renewed: u64,
    /// Reservation requests denied since start.
    pub reservations_denied: u64,
    /// Circuits accepted since start.
    pub circuits_accepted: u64,
    /// Circuit requests denied since start.
    pub circuits_denied: u64,
    /// Bytes forwarded in circuits since start, both directions together
    /// (`berty_node_relay_bytes_total`).
    pub bytes_relayed: u64,
}

impl RelayStats {
    /// Why the relay refuses reservations now; `None` while it serves them.
    pub fn refusal(&self) -> Option<&'static str> {
        if !self.enabled {
            Some("relay.enabled is false")
        } else if self.serving {
            None
        } else if self.external_addresses.is_empty() {
            Some(NO_EXTERNAL_ADDRESS)
        } else {
            Some("an external address is confirmed; the relay is about to serve")
        }
    }
}

/// Follows the relay server's events.
#[derive(Debug)]
pub struct RelayLedger {
    enabled: bool,
    serving: bool,
    reservations: HashMap<PeerId, u64>,
    stats: RelayStats,
    metrics: P2pMetrics,
}

impl RelayLedger {
    /// An empty ledger; `enabled` tells whether a relay server runs at all.
    pub fn new(enabled: bool, metrics: P2pMetrics) -> Self {
        Self {
            enabled,
            serving: false,
            reservations: HashMap::new(),
            stats: RelayStats::default(),
            metrics,
        }
    }

    /// Records one relay server event.
    pub fn record(&mut self, event: &relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed,
            } => {
                if *renewed {
                    self.stats.reservations_renewed += 1;
                    self.count_reservation("renewed");
                } else {
                    *self.reservations.entry(*src_peer_id).or_default() += 1;
                    self.stats.reservations_accepted += 1;
                    self.count_reservation("accepted");
                }
            }
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => {
                tracing::debug!(peer = %src_peer_id, ?status, "relay reservation denied");
                self.stats.reservations_denied += 1;
                self.count_reservation("denied");
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                if let Some(count) = self.reservations.get_mut(src_peer_id) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        self.reservations.remove(src_peer_id);
                    }
                }
            }
            relay::Event::CircuitReqAccepted { .. } => {
                self.stats.active_circuits += 1;
                self.stats.circuits_accepted += 1;
                self.count_circuit("accepted");
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                status,
            } => {
                tracing::debug!(src = %src_peer_id, dst = %dst_peer_id, ?status, "relay circuit denied");
                self.stats.circuits_denied += 1;
                self.count_circuit("denied");
            }
            relay::Event::CircuitClosed { .. } => {
                self.stats.active_circuits = self.stats.active_circuits.saturating_sub(1);
            }
            relay::Event::StatusChanged { status } => {
                self.serving = *status == relay::Status::Enable;
                tracing::info!(serving = self.serving, "relay server status changed");
            }
            #[allow(deprecated)]
            relay::Event::ReservationReqAcceptFailed { .. }
            | relay::Event::ReservationReqDenyFailed { .. }
            | relay::Event::CircuitReqDenyFailed { .. }
            | relay::Event::CircuitReqOutboundConnectFailed { .. }
            | relay::Event::CircuitReqAcceptFailed { .. } => {}
        }
        self.stats.active_reservations = self.reservations.values().sum();
        self.metrics
            .relay_active_reservations
            .set(gauge_value(self.stats.active_reservations));
        self.metrics
            .relay_active_circuits
            .set(gauge_value(self.stats.active_circuits));
    }

    /// `relay.enabled`: the relay server runs.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The relay serves reservations now.
    pub fn serving(&self) -> bool {
        self.enabled && self.serving
    }

    /// The current statistics, with the node's confirmed `external_addresses`.
    pub fn stats(&self, external_addresses: Vec<Multiaddr>) -> RelayStats {
        let mut reserved_peers: Vec<PeerId> = self.reservations.keys().copied().collect();
        reserved_peers.sort();
        RelayStats {
            enabled: self.enabled,
            serving: self.serving(),
            external_addresses,
            reserved_peers,
            bytes_relayed: self.metrics.relay_bytes.get(),
            ..self.stats.clone()
        }
    }

    fn count_reservation(&self, outcome: &'static str) {
        self.metrics
            .relay_reservations
            .get_or_create(&RelayOutcomeLabels { outcome })
            .inc();
    }

    fn count_circuit(&self, outcome: &'static str) {
        self.metrics
            .relay_circuits
            .get_or_create(&RelayOutcomeLabels { outcome })
            .inc();
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use libp2p::relay::StatusCode;

    use super::*;

    #[test]
    fn the_refusal_says_why_reservations_are_refused() {
        let mut ledger = RelayLedger::new(true, P2pMetrics::default());
        assert_eq!(
            ledger.stats(Vec::new()).refusal(),
            Some(NO_EXTERNAL_ADDRESS)
        );
        let external: Multiaddr = "/ip4/192.0.2.1/tcp/4040".parse().unwrap();
        let confirmed = ledger.stats(vec![external.clone()]);
        assert!(!confirmed.serving);
        assert!(confirmed
            .refusal()
            .is_some_and(|r| r != NO_EXTERNAL_ADDRESS));
        ledger.record(&relay::Event::StatusChanged {
            status: relay::Status::Enable,
        });
        let serving = ledger.stats(vec![external.clone()]);
        assert_eq!((serving.serving, serving.refusal()), (true, None));
        assert_eq!(serving.external_addresses, vec![external]);
        let off = RelayLedger::new(false, P2pMetrics::default()).stats(Vec::new());
        assert_eq!(off.refusal(), Some("relay.enabled is false"));
    }

    #[test]
    fn follows_reservations_and_circuits() {
        let metrics = P2pMetrics::default();
        let mut ledger = RelayLedger::new(true, metrics.clone());
        let (a, b) = (PeerId::random(), PeerId::random());
        ledger.record(&relay::Event::StatusChanged {
            status: relay::Status::Enable,
        });
        ledger.record(&relay::Event::ReservationReqAccepted {
            src_peer_id: a,
            renewed: false,
        });
        ledger.record(&relay::Event::ReservationReqAccepted {
            src_peer_id: a,
            renewed: true,
        });
        ledger.record(&relay::Event::ReservationReqDenied {
            src_peer_id: b,
            status: StatusCode::ResourceLimitExceeded,
        });
        ledger.record(&relay::Event::CircuitReqAccepted {
            src_peer_id: b,
            dst_peer_id: a,
        });
        let stats = ledger.stats(Vec::new());
        assert!(stats.serving);
        assert_eq!(stats.refusal(), None);
        assert_eq!(stats.reserved_peers, vec![a]);
        assert_eq!(stats.active_reservations, 1);
        assert_eq!(stats.reservations_accepted, 1);
        assert_eq!(stats.reservations_renewed, 1);
        assert_eq!(stats.reservations_denied, 1);
        assert_eq!(stats.active_circuits, 1);
        assert_eq!(stats.bytes_relayed, 0);
        metrics.relay_bytes.inc_by(4096);
        assert_eq!(ledger.stats(Vec::new()).bytes_relayed, 4096);
        assert_eq!(metrics.relay_active_reservations.get(), 1);
        assert_eq!(
            metrics
                .relay_reservations
                .get_or_create(&RelayOutcomeLabels { outcome: "denied" })
                .get(),
            1
        );

        ledger.record(&relay::Event::CircuitClosed {
            src_peer_id: b,
            dst_peer_id: a,
            error: None,
        });
        ledger.record(&relay::Event::ReservationClosed { src_peer_id: a });
        let stats = ledger.stats(Vec::new());
        assert!(stats.reserved_peers.is_empty());
        assert_eq!((stats.active_reservations, stats.active_circuits), (0, 0));
        assert_eq!(metrics.relay_active_circuits.get(), 0);
    }
}
