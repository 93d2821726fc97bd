//! One attempt at delivering a contact request: find the target where its rendezvous points
//! are advertised (every rendezvous server of `p2p.rendezvous`, then the DHT), dial each peer
//! found and run the handshake with it; the first peer that completes it was the target.

use std::{collections::HashMap, num::NonZeroU64, time::Duration};

use libp2p::{Multiaddr, PeerId};

use super::{CONTACT_PROTOCOL, POINT_MARGIN_SECS};
use crate::{
    clock::unix_now,
    crypto::{points_to_advertise, SigningKey},
    group::ContactReference,
    handshake::{self, OutgoingContact},
    p2p::SwarmHandle,
    replication::discovery::{dial_any, namespace},
};

/// The longest one lookup may take (a DHT query that finds nothing runs to Kademlia's own
/// timeout, a minute, otherwise).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What one attempt needs.
pub struct Attempt {
    /// The swarm.
    pub swarm: SwarmHandle,
    /// This account's key (it proves who asks).
    pub account: SigningKey,
    /// Rendezvous servers to look the target up at.
    pub servers: Vec<PeerId>,
    /// Length of a rendezvous period.
    pub period: NonZeroU64,
    /// Timeout of each handshake step.
    pub step_timeout: Duration,
    /// Whom to reach.
    pub target: ContactReference,
    /// What to tell them.
    pub contact: OutgoingContact,
}

impl Attempt {
    /// Runs the attempt; the error says why nobody took the request.
    pub async fn run(self) -> Result<PeerId, String> {
        let candidates = self.find().await;
        if candidates.is_empty() {
            return Err(
                "the target's rendezvous point is not advertised anywhere reachable".into(),
            );
        }
        let mut reasons = Vec::new();
        for (peer, addrs) in candidates {
            match self.try_peer(peer, addrs).await {
                Ok(()) => return Ok(peer),
                Err(reason) => {
                    tracing::debug!(%peer, %reason, "contact handshake failed");
                    reasons.push(format!("{peer}: {reason}"));
                }
            }
        }
        Err(reasons.join("; "))
    }

    /// The peers registered under the target's current points, with the addresses known.
    async fn find(&self) -> HashMap<PeerId, Vec<Multiaddr>> {
        let local = self.swarm.peer_id();
        let points = points_to_advertise(
            &self.target.account_pk,
            &self.target.rendezvous_seed,
            unix_now(),
            self.period,
            POINT_MARGIN_SECS,
        );
        let mut found: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
        for point in &points {
            for server in &self.servers {
                let discover =
                    self.swarm
                        .rendezvous_discover(*server, namespace(point.as_bytes()), None);
                match tokio::time::timeout(LOOKUP_TIMEOUT, discover).await {
                    Err(_) => tracing::debug!(%server, "rendezvous discover timed out"),
                    Ok(Ok(page)) => {
                        for (peer, addrs) in page.peers {
                            found.entry(peer).or_default().extend(addrs);
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(%server, %e, "rendezvous discover failed"),
                }
            }
            let providers = self.swarm.find_providers(point.as_bytes().to_vec());
            match tokio::time::timeout(LOOKUP_TIMEOUT, providers).await {
                Ok(Ok(providers)) => {
                    for peer in providers {
                        found.entry(peer).or_default();
                    }
                }
                Ok(Err(e)) => tracing::debug!(%e, "provider lookup failed"),
                Err(_) => tracing::debug!("provider lookup timed out"),
            }
        }
        found.remove(&local);
        found
    }

    /// Connects to `peer` (unless connected) and runs the handshake with it.
    async fn try_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
        let connected = self
            .swarm
            .connected_peers()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .any(|c| c.peer_id == peer);
        if !connected {
            let addrs = if addrs.is_empty() {
                tokio::time::timeout(LOOKUP_TIMEOUT, self.swarm.find_peer(peer))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            } else {
                addrs
            };
            if !dial_any(&self.swarm, peer, addrs).await {
                return Err("cannot connect".into());
            }
        }
        let mut control = self.swarm.streams();
        let mut stream = tokio::time::timeout(
            self.step_timeout,
            control.open_stream(peer, CONTACT_PROTOCOL),
        )
        .await
        .map_err(|_| "opening the stream timed out".to_string())?
        .map_err(|e| format!("cannot open the stream: {e}"))?;
        handshake::request(
            &mut stream,
            &self.account,
            &self.target.account_pk,
            &self.contact,
            self.step_timeout,
        )
        .await
        .map_err(|e| e.to_string())
    }
}
