//! Incoming contact requests: every stream of `/berty/contact_req/1.0.0` is answered by the
//! responder side of the handshake, and each request that completes it goes to the account,
//! which decides what to do with it.
//!
//! A slow or hostile peer cannot hold the door: at most [`MAX_CONCURRENT`] handshakes run at
//! once and [`MAX_PER_PEER`] per peer (a stream beyond is reset), and a whole handshake gets
//! [`DEADLINE`] on top of the driver's timeout per step.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::Recipient;
use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::sync::Semaphore;

use super::IncomingRequest;
use crate::{crypto::SigningKey, handshake, metrics::Metrics};

/// Handshakes answered at once; a stream beyond is dropped (which resets it).
pub const MAX_CONCURRENT: usize = 32;
/// Handshakes answered at once for one peer.
pub const MAX_PER_PEER: usize = 4;
/// The longest one handshake may take, all steps together.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Handshakes running per peer; a slot is freed when its [`PeerSlot`] is dropped.
#[derive(Default)]
struct PerPeer(Mutex<HashMap<PeerId, usize>>);

/// One running handshake of a peer.
struct PeerSlot {
    peers: Arc<PerPeer>,
    peer: PeerId,
}

impl PerPeer {
    /// A slot for `peer`, unless it runs [`MAX_PER_PEER`] already.
    fn take(self: &Arc<Self>, peer: PeerId) -> Option<PeerSlot> {
        let mut counts = self.0.lock().ok()?;
        let count = counts.entry(peer).or_default();
        if *count >= MAX_PER_PEER {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: Arc::clone(self),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.peers.0.lock() {
            if let Some(count) = counts.get_mut(&self.peer) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.peer);
                }
            }
        }
    }
}

/// Answers the incoming streams until the swarm stops; returns at once if another part
/// already accepts the protocol.
pub async fn serve(
    mut control: libp2p_stream::Control,
    account: SigningKey,
    step_timeout: Duration,
    deliver_to: Recipient<IncomingRequest>,
    metrics: Metrics,
) {
    let mut incoming = match control.accept(super::CONTACT_PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::error!(%e, "cannot accept contact requests");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    let per_peer = Arc::new(PerPeer::default());
    let account = Arc::new(account);
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many contact handshakes at once: stream dropped");
            count(&metrics, "busy");
            continue;
        };
        let Some(slot) = per_peer.take(peer) else {
            tracing::debug!(%peer, "too many contact handshakes from this peer: stream dropped");
            count(&metrics, "busy");
            continue;
        };
        let account = account.clone();
        let deliver_to = deliver_to.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let answer = handshake::respond(&mut stream, &account, step_timeout);
            let Ok(answer) = tokio::time::timeout(DEADLINE, answer).await else {
                count(&metrics, "refused");
                tracing::info!(%peer, "contact handshake took longer than {DEADLINE:?}: dropped");
                return;
            };
            match answer {
                Ok(contact) => {
                    count(&metrics, "completed");
                    deliver_to.do_send(IncomingRequest { peer, contact });
                }
                Err(e) => {
                    count(&metrics, "refused");
                    log_refusal(peer, &e);
                }
            }
        });
    }
}

fn log_refusal(peer: PeerId, error: &handshake::HandshakeError) {
    tracing::info!(%peer, %error, "contact handshake refused");
}

fn count(metrics: &Metrics, outcome: &'static str) {
    metrics.contact_handshakes(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_holds_at_most_its_share_of_handshakes() {
        let peers = Arc::new(PerPeer::default());
        let (a, b) = (PeerId::random(), PeerId::random());
        let slots: Vec<PeerSlot> = (0..MAX_PER_PEER).filter_map(|_| peers.take(a)).collect();
        assert_eq!(slots.len(), MAX_PER_PEER);
        assert!(
            peers.take(a).is_none(),
            "one more from the same peer is refused"
        );
        assert!(peers.take(b).is_some(), "another peer still gets in");
        drop(slots);
        assert!(
            peers.take(a).is_some(),
            "slots come back when handshakes end"
        );
        assert!(
            peers.0.lock().unwrap().get(&b).is_none(),
            "idle peers are forgotten"
        );
    }
}
