//! The mirror registration protocol in the swarm task: inbound requests go to this node's
//! mirror (or are refused at once when it has none), answers come back through
//! `mirror_answers`; outbound requests wait in `mirror_requests`. Frames are converted from
//! and to the domain messages of [`mirror_message`](crate::p2p::mirror_message) here.

use futures::{future::BoxFuture, FutureExt};
use libp2p::{request_response, Multiaddr, PeerId};
use tokio::sync::{mpsc::error::TrySendError, oneshot};

use super::SwarmTask;
use crate::{
    p2p::{
        error::P2pError,
        mirror_message::{InboundMirrorRequest, MirrorRefusal, MirrorRequest, MirrorResponse},
        sync_codec::Frame,
    },
    proto::wire,
};

/// Where the answer to an outbound request goes.
pub(super) type MirrorReply = oneshot::Sender<Result<MirrorResponse, P2pError>>;

/// The mirror's answer to an inbound request, and where it goes.
pub(super) type PendingMirrorAnswer = BoxFuture<
    'static,
    (
        Result<MirrorResponse, oneshot::error::RecvError>,
        request_response::ResponseChannel<Frame<wire::MirrorResponse>>,
    ),
>;

type MirrorEvent = request_response::Event<Frame<wire::MirrorRequest>, Frame<wire::MirrorResponse>>;

impl SwarmTask {
    pub(super) fn send_mirror(
        &mut self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: MirrorRequest,
        reply: MirrorReply,
    ) {
        for addr in addrs {
            self.swarm.add_peer_address(peer, addr);
        }
        let id = self
            .swarm
            .behaviour_mut()
            .mirror
            .send_request(&peer, Frame::Message(request.into()));
        self.mirror_requests.insert(id, reply);
    }

    pub(super) fn send_mirror_answer(
        &mut self,
        answer: Result<MirrorResponse, oneshot::error::RecvError>,
        channel: request_response::ResponseChannel<Frame<wire::MirrorResponse>>,
    ) {
        let response = answer.unwrap_or_else(|_| {
            MirrorResponse::refused(MirrorRefusal::Unavailable, "the mirror stopped")
        });
        let _ = self
            .swarm
            .behaviour_mut()
            .mirror
            .send_response(channel, Frame::Message(response.into()));
    }

    fn on_mirror_request(
        &mut self,
        peer: PeerId,
        request: Frame<wire::MirrorRequest>,
        channel: request_response::ResponseChannel<Frame<wire::MirrorResponse>>,
    ) {
        let request = match request {
            Frame::Message(request) => MirrorRequest::try_from(request),
            Frame::Garbage(reason) => {
                tracing::debug!(%peer, reason, "garbage mirror request");
                Err(crate::p2p::mirror_message::MirrorParseError(
                    "frame does not parse",
                ))
            }
        };
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                let refusal = MirrorResponse::refused(MirrorRefusal::Malformed, e.to_string());
                return self.send_mirror_answer(Ok(refusal), channel);
            }
        };
        let Some(server) = self.settings.mirror_server.clone() else {
            let refusal = MirrorResponse::refused(
                MirrorRefusal::Disabled,
                "this node does not run the mirror role (mirror.enabled = false, or p2p.replication = false)",
            );
            return self.send_mirror_answer(Ok(refusal), channel);
        };
        let (reply, answer) = oneshot::channel();
        match server.try_send(InboundMirrorRequest {
            peer,
            request,
            reply,
        }) {
            Ok(()) => self
                .mirror_answers
                .push(answer.map(move |answer| (answer, channel)).boxed()),
            Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                let refusal =
                    MirrorResponse::refused(MirrorRefusal::Unavailable, "the mirror is busy");
                self.send_mirror_answer(Ok(refusal), channel);
            }
        }
    }

    pub(super) fn on_mirror(&mut self, event: MirrorEvent) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_mirror_request(peer, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(reply) = self.mirror_requests.remove(&request_id) else {
                    return;
                };
                let result = match response {
                    Frame::Message(response) => {
                        MirrorResponse::try_from(response).map_err(|e| P2pError::Mirror {
                            peer,
                            reason: format!("the mirror's answer does not parse: {e}"),
                        })
                    }
                    Frame::Garbage(reason) => Err(P2pError::Mirror { peer, reason }),
                };
                let _ = reply.send(result);
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.mirror_requests.remove(&request_id) {
                    let _ = reply.send(Err(P2pError::Mirror {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound mirror request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
