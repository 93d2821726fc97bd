//! Refusing connections with given peers: partitions and direct-connection refusals (test
//! controls) and penalties (a peer refused for a while).
//!
//! [`PeerGate`] is a `NetworkBehaviour` with no protocol of its own: it only answers the
//! swarm's "may this connection proceed?" questions. A refused connection is closed before any
//! protocol runs on it and counted in `berty_node_p2p_connections_denied_total{reason}`.

use std::{
    collections::HashMap,
    convert::Infallible,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use libp2p::{
    core::{transport::PortUse, Endpoint},
    multiaddr::Protocol,
    swarm::{
        dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};
use prometheus_client::metrics::{counter::Counter, family::Family};

use crate::{defaults::MAX_DURATION_SECS, metrics::DenialLabels};

/// How a connection reaches the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight over TCP or QUIC.
    Direct,
    /// Through a circuit relay (the address holds `/p2p-circuit`).
    Relayed,
}

impl Route {
    /// The route of a connection using `addr` (the dialled address, or the local address of an
    /// inbound connection).
    pub fn of(addr: &Multiaddr) -> Self {
        if addr.iter().any(|p| p == Protocol::P2pCircuit) {
            Self::Relayed
        } else {
            Self::Direct
        }
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relayed => "relayed",
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The peer is partitioned from this node (test control).
    Partition,
    /// Only relayed connections with the peer are allowed (test control).
    DirectRefused,
    /// The peer is serving a penalty.
    Penalty,
}

impl RefusalReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Partition => "partition",
            Self::DirectRefused => "direct_refused",
            Self::Penalty => "penalty",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Partition => "partitioned from this node",
            Self::DirectRefused => "only relayed connections are allowed",
            Self::Penalty => "penalised",
        })
    }
}

/// The cause carried by a [`ConnectionDenied`] from the gate.
#[derive(Debug, thiserror::Error)]
#[error("connection with {peer} refused: {reason}")]
pub struct Refused {
    /// The peer.
    pub peer: PeerId,
    /// Why.
    pub reason: RefusalReason,
}

#[derive(Debug, Default, Clone, Copy)]
struct PeerRules {
    partitioned: bool,
    direct_refused: bool,
    penalised_until: Option<Instant>,
}

impl PeerRules {
    fn is_empty(&self, now: Instant) -> bool {
        !self.partitioned && !self.direct_refused && !self.penalised(now)
    }

    fn penalised(&self, now: Instant) -> bool {
        self.penalised_until.is_some_and(|until| until > now)
    }

    /// The reason to refuse any connection with the peer, whatever its route.
    fn refuses_peer(&self, now: Instant) -> Option<RefusalReason> {
        if self.partitioned {
            Some(RefusalReason::Partition)
        } else if self.penalised(now) {
            Some(RefusalReason::Penalty)
        } else {
            None
        }
    }

    fn refuses(&self, route: Route, now: Instant) -> Option<RefusalReason> {
        self.refuses_peer(now)
            .or((self.direct_refused && route == Route::Direct)
                .then_some(RefusalReason::DirectRefused))
    }
}

/// A peer the gate refuses now, as reported to operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPeer {
    /// The peer.
    pub peer: PeerId,
    /// Partitioned (test control).
    pub partitioned: bool,
    /// Direct connections refused (test control).
    pub direct_refused: bool,
    /// Penalised until then.
    pub penalised_until: Option<Instant>,
}

/// The behaviour that refuses connections with given peers.
pub struct PeerGate {
    rules: HashMap<PeerId, PeerRules>,
    denied: Family<DenialLabels, Counter>,
}

impl PeerGate {
    /// A gate refusing nobody; refusals are counted in `denied`.
    pub fn new(denied: Family<DenialLabels, Counter>) -> Self {
        Self {
            rules: HashMap::new(),
            denied,
        }
    }

    /// Refuses every connection with `peer` until [`heal`](Self::heal).
    pub fn partition(&mut self, peer: PeerId) {
        self.rules.entry(peer).or_default().partitioned = true;
    }

    /// Refuses direct connections with `peer` until [`heal`](Self::heal); relayed ones pass.
    pub fn refuse_direct(&mut self, peer: PeerId) {
        self.rules.entry(peer).or_default().direct_refused = true;
    }

    /// Lifts the partition and direct-connection refusal of `peer` (not a penalty).
    pub fn heal(&mut self, peer: PeerId) {
        if let Some(rules) = self.rules.get_mut(&peer) {
            rules.partitioned = false;
            rules.direct_refused = false;
        }
        self.prune(Instant::now());
    }

    /// Refuses every connection with `peer` from `now` for `duration` (a later penalty extends
    /// it). The duration is capped at [`MAX_DURATION_SECS`], so no input can overflow the clock.
    pub fn penalise(&mut self, peer: PeerId, now: Instant, duration: Duration) {
        let duration = duration.min(Duration::from_secs(MAX_DURATION_SECS));
        // Ten years after a monotonic `now` fits every clock we run on; should it not, a day is
        // the fallback (never a panic).
        let until = now
            .checked_add(duration)
            .or_else(|| now.checked_add(Duration::from_secs(24 * 60 * 60)))
            .unwrap_or(now);
        let rules = self.rules.entry(peer).or_default();
        rules.penalised_until = Some(rules.penalised_until.map_or(until, |u| u.max(until)));
    }

    /// Lifts the penalty of `peer` (not a partition); `false` when it served none at `now`.
    pub fn forgive(&mut self, peer: PeerId, now: Instant) -> bool {
        let penalised = self
            .rules
            .get_mut(&peer)
            .and_then(|rules| rules.penalised_until.take())
            .is_some_and(|until| until > now);
        self.prune(now);
        penalised
    }

    /// Whether a connection with `peer` over `route` would be refused now, and why.
    pub fn verdict(&self, peer: &PeerId, route: Route, now: Instant) -> Option<RefusalReason> {
        self.rules.get(peer).and_then(|r| r.refuses(route, now))
    }

    /// The peers refused now.
    pub fn refused_peers(&self, now: Instant) -> Vec<RefusedPeer> {
        let mut peers: Vec<RefusedPeer> = self
            .rules
            .iter()
            .filter(|(_, rules)| !rules.is_empty(now))
            .map(|(peer, rules)| RefusedPeer {
                peer: *peer,
                partitioned: rules.partitioned,
                direct_refused: rules.direct_refused,
                penalised_until: rules.penalised_until.filter(|u| *u > now),
            })
            .collect();
        peers.sort_by_key(|p| p.peer);
        peers
    }

    /// Forgets expired penalties.
    pub fn prune(&mut self, now: Instant) {
        self.rules.retain(|_, rules| !rules.is_empty(now));
    }

    fn deny(&self, peer: PeerId, reason: RefusalReason) -> ConnectionDenied {
        tracing::debug!(%peer, %reason, "connection refused");
        self.denied
            .get_or_create(&DenialLabels {
                reason: reason.label(),
            })
            .inc();
        ConnectionDenied::new(Refused { peer, reason })
    }

    fn check(&self, peer: PeerId, route: Route) -> Result<(), ConnectionDenied> {
        match self.verdict(&peer, route, Instant::now()) {
            Some(reason) => Err(self.deny(peer, reason)),
            None => Ok(()),
        }
    }
}

impl NetworkBehaviour for PeerGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer, Route::of(local_addr))?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        if let Some(peer) = maybe_peer {
            let now = Instant::now();
            if let Some(rules) = self.rules.get(&peer) {
                if let Some(reason) = rules.refuses_peer(now) {
                    return Err(self.deny(peer, reason));
                }
                // Addresses added by other behaviours are checked once the connection exists.
                let all_direct = !addresses.is_empty()
                    && addresses.iter().all(|a| Route::of(a) == Route::Direct);
                if all_direct {
                    if let Some(reason) = rules.refuses(Route::Direct, now) {
                        return Err(self.deny(peer, reason));
                    }
                }
            }
        }
        Ok(Vec::new())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer, Route::of(addr))?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayed() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .unwrap()
    }

    #[test]
    fn routes_are_told_by_the_circuit_protocol() {
        assert_eq!(Route::of(&relayed()), Route::Relayed);
        assert_eq!(
            Route::of(&"/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()),
            Route::Direct
        );
    }

    #[test]
    fn partition_refuses_every_route_until_healed() {
        let mut gate = PeerGate::new(Family::default());
        let peer = PeerId::random();
        let now = Instant::now();
        gate.partition(peer);
        assert_eq!(
            gate.verdict(&peer, Route::Direct, now),
            Some(RefusalReason::Partition)
        );
        assert_eq!(
            gate.verdict(&peer, Route::Relayed, now),
            Some(RefusalReason::Partition)
        );
        assert_eq!(gate.verdict(&PeerId::random(), Route::Direct, now), None);
        gate.heal(peer);
        assert_eq!(gate.verdict(&peer, Route::Direct, now), None);
        assert!(gate.refused_peers(now).is_empty());
    }

    #[test]
    fn direct_refusal_lets_relayed_connections_through() {
        let mut gate = PeerGate::new(Family::default());
        let peer = PeerId::random();
        let now = Instant::now();
        gate.refuse_direct(peer);
        assert_eq!(
            gate.verdict(&peer, Route::Direct, now),
            Some(RefusalReason::DirectRefused)
        );
        assert_eq!(gate.verdict(&peer, Route::Relayed, now), None);
    }

    #[test]
    fn penalties_expire_and_outlive_a_heal() {
        let mut gate = PeerGate::new(Family::default());
        let peer = PeerId::random();
        let now = Instant::now();
        gate.penalise(peer, now, Duration::from_secs(10));
        gate.heal(peer);
        assert_eq!(
            gate.verdict(&peer, Route::Relayed, now),
            Some(RefusalReason::Penalty)
        );
        let later = now + Duration::from_secs(11);
        assert_eq!(gate.verdict(&peer, Route::Relayed, later), None);
        gate.prune(later);
        assert!(gate.refused_peers(later).is_empty());
    }

    #[test]
    fn forgiving_lifts_a_penalty_but_not_a_partition() {
        let mut gate = PeerGate::new(Family::default());
        let peer = PeerId::random();
        let now = Instant::now();
        assert!(!gate.forgive(peer, now), "nothing to forgive");
        gate.penalise(peer, now, Duration::from_secs(10));
        assert!(gate.forgive(peer, now));
        assert_eq!(gate.verdict(&peer, Route::Direct, now), None);
        assert!(gate.refused_peers(now).is_empty());
        gate.partition(peer);
        gate.penalise(peer, now, Duration::from_secs(10));
        assert!(gate.forgive(peer, now));
        assert_eq!(
            gate.verdict(&peer, Route::Direct, now),
            Some(RefusalReason::Partition)
        );
    }

    #[test]
    fn any_penalty_length_is_capped_instead_of_overflowing_the_clock() {
        let mut gate = PeerGate::new(Family::default());
        let peer = PeerId::random();
        let now = Instant::now();
        gate.penalise(peer, now, Duration::MAX);
        gate.penalise(peer, now, Duration::from_secs(u64::MAX / 2));
        let cap = Duration::from_secs(MAX_DURATION_SECS);
        assert_eq!(
            gate.verdict(&peer, Route::Direct, now + cap - Duration::from_secs(1)),
            Some(RefusalReason::Penalty)
        );
        assert_eq!(gate.verdict(&peer, Route::Direct, now + cap), None);
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let denied = Family::<DenialLabels, Counter>::default();
        let mut gate = PeerGate::new(denied.clone());
        let peer = PeerId::random();
        gate.refuse_direct(peer);
        let direct: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        assert!(gate
            .handle_pending_outbound_connection(
                ConnectionId::new_unchecked(1),
                Some(peer),
                &[direct],
                Endpoint::Dialer
            )
            .is_err());
        assert!(gate
            .handle_established_inbound_connection(
                ConnectionId::new_unchecked(2),
                peer,
                &relayed(),
                &Multiaddr::empty()
            )
            .is_ok());
        let count = denied
            .get_or_create(&DenialLabels {
                reason: "direct_refused",
            })
            .get();
        assert_eq!(count, 1);
    }
}
