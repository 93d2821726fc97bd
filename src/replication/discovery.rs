//! How members of a group find each other: under the group's rotating discovery keys
//! ([`crate::crypto::discovery_keys`], derived from the link key), as DHT provider records and
//! as registrations at the rendezvous servers of `p2p.rendezvous`. Knowing a group's public
//! key is not enough to list its members. mDNS needs no names: peers found on the local
//! network are dialled and the link-key hello tells which groups they share.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use libp2p::{multiaddr::Protocol, Multiaddr, PeerId};

use crate::{
    metrics::{DiscoveryLabels, Metrics},
    p2p::SwarmHandle,
};

/// TTL asked for when registering at a rendezvous server (the protocol's minimum: keys rotate
/// daily, and a node that stops should not be listed long).
pub const RENDEZVOUS_TTL_SECS: u64 = 2 * 60 * 60;

/// A registration is renewed once less than this is left of it.
const RENEW_BEFORE: Duration = Duration::from_secs(60 * 60);

/// A discovery key as a rendezvous namespace: unpadded base64url (43 characters).
pub fn namespace(key: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

/// What discovery remembers between rounds: where this node is registered, until when.
#[derive(Debug, Default)]
pub struct Registrations {
    until: HashMap<(PeerId, [u8; 32]), Instant>,
}

impl Registrations {
    /// The (server, key) pairs to register now: new ones and those close to expiry.
    pub fn due(
        &mut self,
        servers: &[PeerId],
        keys: &[[u8; 32]],
        now: Instant,
    ) -> Vec<(PeerId, [u8; 32])> {
        let wanted: HashSet<(PeerId, [u8; 32])> = servers
            .iter()
            .flat_map(|server| keys.iter().map(move |key| (*server, *key)))
            .collect();
        // Keys that rotated out are forgotten (their registrations expire at the server).
        self.until.retain(|pair, _| wanted.contains(pair));
        wanted
            .into_iter()
            .filter(|pair| {
                self.until
                    .get(pair)
                    .is_none_or(|until| until.saturating_duration_since(now) < RENEW_BEFORE)
            })
            .collect()
    }

    /// Records a registration the server accepted for `ttl`.
    pub fn registered(&mut self, pair: (PeerId, [u8; 32]), at: Instant, ttl: Duration) {
        self.until.insert(pair, at + ttl);
    }
}

/// One discovery round: what to look up and where.
pub struct Round {
    /// The swarm.
    pub swarm: SwarmHandle,
    /// Current discovery keys of every replicated group.
    pub keys: Vec<[u8; 32]>,
    /// Rendezvous servers (`p2p.rendezvous`).
    pub servers: Vec<PeerId>,
    /// (server, key) pairs to register this round.
    pub register: Vec<(PeerId, [u8; 32])>,
    /// Peers connected already (not dialled again).
    pub connected: HashSet<PeerId>,
    /// Replicas known by address (the groups' mirrors): dialled when not connected.
    pub replicas: Vec<(PeerId, Vec<Multiaddr>)>,
    /// Counts the members found, by source.
    pub metrics: Metrics,
}

/// What a round did: registrations accepted (with their TTL) and peers dialled.
#[derive(Debug, Default)]
pub struct RoundOutcome {
    /// Registrations the servers accepted, and for how long.
    pub registered: Vec<((PeerId, [u8; 32]), Duration)>,
    /// Members found and connected.
    pub connected: Vec<PeerId>,
}

impl Round {
    /// Provides and looks up every key in the DHT, registers and discovers them at every
    /// rendezvous server, then dials the members found that are not connected.
    pub async fn run(self) -> RoundOutcome {
        let swarm = &self.swarm;
        let local = swarm.peer_id();
        let mut outcome = RoundOutcome::default();
        let mut found: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for (peer, addrs) in &self.replicas {
            found
                .entry(*peer)
                .or_default()
                .extend(addrs.iter().cloned());
        }
        for key in &self.keys {
            if let Err(e) = swarm.provide(key.to_vec()).await {
                tracing::debug!(%e, "cannot provide a discovery key");
            }
            match swarm.find_providers(key.to_vec()).await {
                Ok(providers) => {
                    for peer in providers.into_iter().filter(|p| *p != local) {
                        self.count_found("dht");
                        found.entry(peer).or_default();
                    }
                }
                Err(e) => tracing::debug!(%e, "provider lookup failed"),
            }
        }
        for (server, key) in &self.register {
            match swarm
                .rendezvous_register(*server, namespace(key), Some(RENDEZVOUS_TTL_SECS))
                .await
            {
                Ok(ttl) => outcome
                    .registered
                    .push(((*server, *key), Duration::from_secs(ttl))),
                Err(e) => tracing::debug!(%e, "rendezvous registration failed"),
            }
        }
        for server in &self.servers {
            for key in &self.keys {
                match swarm
                    .rendezvous_discover(*server, namespace(key), None)
                    .await
                {
                    Ok(page) => {
                        for (peer, addrs) in page.peers.into_iter().filter(|(p, _)| *p != local) {
                            self.count_found("rendezvous");
                            found.entry(peer).or_default().extend(addrs);
                        }
                    }
                    Err(e) => tracing::debug!(%e, "rendezvous discover failed"),
                }
            }
        }
        for (peer, mut addrs) in found {
            if self.connected.contains(&peer) {
                continue;
            }
            if addrs.is_empty() {
                match swarm.find_peer(peer).await {
                    Ok(known) => addrs = known,
                    Err(e) => {
                        tracing::debug!(%peer, %e, "member found has no known address");
                        continue;
                    }
                }
            }
            if dial_any(swarm, peer, addrs).await {
                outcome.connected.push(peer);
            }
        }
        outcome
    }
}

impl Round {
    fn count_found(&self, via: &'static str) {
        self.metrics
            .members_found
            .get_or_create(&DiscoveryLabels { via })
            .inc();
    }
}

/// Dials `peer` at each address in turn until one connects.
pub async fn dial_any(swarm: &SwarmHandle, peer: PeerId, addrs: Vec<Multiaddr>) -> bool {
    for addr in addrs {
        let addr = if addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
            addr
        } else {
            addr.with(Protocol::P2p(peer))
        };
        match swarm.dial(addr.clone()).await {
            Ok(_) => {
                tracing::debug!(%peer, %addr, "connected to a member found by discovery");
                return true;
            }
            Err(e) => tracing::debug!(%peer, %addr, %e, "dial failed"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_due_when_new_or_close_to_expiry() {
        let server = PeerId::random();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let now = Instant::now();
        let mut regs = Registrations::default();
        let mut due = regs.due(&[server], &[a, b], now);
        due.sort();
        assert_eq!(due, vec![(server, a), (server, b)]);
        regs.registered((server, a), now, Duration::from_secs(RENDEZVOUS_TTL_SECS));
        assert_eq!(regs.due(&[server], &[a, b], now), vec![(server, b)]);
        let later =
            now + Duration::from_secs(RENDEZVOUS_TTL_SECS) - RENEW_BEFORE + Duration::from_secs(1);
        let mut due = regs.due(&[server], &[a, b], later);
        due.sort();
        assert_eq!(due, vec![(server, a), (server, b)]);
        // A key that rotated out is forgotten.
        regs.registered((server, b), now, Duration::from_secs(RENDEZVOUS_TTL_SECS));
        assert!(regs.due(&[server], &[b], now).is_empty());
        assert_eq!(regs.due(&[server], &[a, b], now), vec![(server, a)]);
    }

    #[test]
    fn namespaces_are_43_url_safe_characters() {
        let ns = namespace(&[0xfb; 32]);
        assert_eq!(ns.len(), 43);
        assert!(ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
