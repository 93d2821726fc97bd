//! The sync protocol in the swarm task: inbound requests go to the replicator with a reply
//! slot, answers come back through `sync_answers`; outbound requests wait in
//! `sync_requests`; unparsable frames become [`NetworkEvent::Violation`]. This is the edge of
//! the wire: frames are converted from and to the domain messages of
//! [`sync_message`](crate::p2p::sync_message) here; a request that decodes but does not parse
//! is answered `ERROR_MALFORMED` at once.

use futures::{future::BoxFuture, FutureExt};
use libp2p::{request_response, PeerId};
use tokio::sync::{mpsc::error::TrySendError, oneshot};

use super::SwarmTask;
use crate::{
    p2p::{
        error::P2pError,
        network_event::NetworkEvent,
        sync_codec::Frame,
        sync_message::{SyncRequest, SyncResponse, ERROR_MALFORMED},
    },
    proto::wire,
};

/// Where the answer to an outbound request goes.
pub(super) type SyncReply = oneshot::Sender<Result<SyncResponse, P2pError>>;

/// The replicator's answer to an inbound request (or its refusal), and where it goes.
pub(super) type PendingAnswer = BoxFuture<
    'static,
    (
        Result<SyncResponse, oneshot::error::RecvError>,
        request_response::ResponseChannel<Frame<wire::SyncResponse>>,
    ),
>;

type SyncEvent = request_response::Event<Frame<wire::SyncRequest>, Frame<wire::SyncResponse>>;

impl SwarmTask {
    /// Sends `event` to the replicator without waiting; a full queue drops it (counted).
    pub(super) fn tell(&self, event: NetworkEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                self.metrics.network_events_dropped.inc();
                tracing::warn!(?event, "replicator queue full; network event dropped");
            }
            // No replicator (it stopped, or a bare swarm): nothing to tell.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    pub(super) fn send_sync(&mut self, peer: PeerId, request: SyncRequest, reply: SyncReply) {
        self.metrics.sync_request("outbound", request.kind());
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, Frame::Message(request.into()));
        self.sync_requests.insert(id, (peer, reply));
    }

    pub(super) fn send_sync_answer(
        &mut self,
        answer: Result<SyncResponse, oneshot::error::RecvError>,
        channel: request_response::ResponseChannel<Frame<wire::SyncResponse>>,
    ) {
        // A dropped reply slot drops the channel: the requester sees the stream fail.
        if let Ok(response) = answer {
            let _ = self
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, Frame::Message(response.into()));
        }
    }

    pub(super) fn on_sync(&mut self, event: SyncEvent) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => match request {
                Frame::Message(request) => {
                    let request = match SyncRequest::try_from(request) {
                        Ok(request) => {
                            self.metrics.sync_request("inbound", request.kind());
                            request
                        }
                        Err(e) => {
                            let refusal = SyncResponse::error(ERROR_MALFORMED, e.to_string());
                            return self.send_sync_answer(Ok(refusal), channel);
                        }
                    };
                    let (reply, answer) = oneshot::channel();
                    self.sync_answers
                        .push(answer.map(move |answer| (answer, channel)).boxed());
                    self.tell(NetworkEvent::SyncRequest {
                        peer,
                        request,
                        reply,
                    });
                }
                Frame::Garbage(reason) => self.tell(NetworkEvent::Violation { peer, reason }),
            },
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((_, reply)) = self.sync_requests.remove(&request_id) else {
                    return;
                };
                let result = match response {
                    Frame::Message(response) => SyncResponse::try_from(response)
                        .map_err(|e| P2pError::SyncMalformed { peer, reason: e.0 }),
                    Frame::Garbage(reason) => {
                        self.tell(NetworkEvent::Violation {
                            peer,
                            reason: reason.clone(),
                        });
                        Err(P2pError::Sync { peer, reason })
                    }
                };
                let _ = reply.send(result);
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.sync_requests.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Sync {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
