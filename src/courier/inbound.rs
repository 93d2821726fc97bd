//! Incoming contact requests: every stream of `/berty/contact_req/1.0.0` is answered by the
//! responder side of the handshake (at most [`MAX_CONCURRENT`] at once; more are reset), and
//! each request that completes it goes to the account, which decides what to do with it.

use std::{sync::Arc, time::Duration};

use actix::Recipient;
use futures::StreamExt as _;
use libp2p::PeerId;
use tokio::sync::Semaphore;

use super::IncomingRequest;
use crate::{crypto::SigningKey, handshake, metrics::Metrics};

/// Handshakes answered at once; a stream beyond is dropped (which resets it).
pub const MAX_CONCURRENT: usize = 32;

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
    let account = Arc::new(account);
    while let Some((peer, mut stream)) = incoming.next().await {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "too many contact handshakes at once: stream dropped");
            count(&metrics, "busy");
            continue;
        };
        let account = account.clone();
        let deliver_to = deliver_to.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match handshake::respond(&mut stream, &account, step_timeout).await {
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
