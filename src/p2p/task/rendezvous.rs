//! `/rendezvous/1.0.0` in the swarm task: the client side (registering this node and
//! discovering others at the servers of `p2p.rendezvous`, one request per stream) and the
//! server side (each inbound stream served by our own server,
//! [`crate::rendezvous::RendezvousServer`], on the runtime, off the swarm task).

use libp2p::{
    core::PeerRecord,
    multiaddr::Protocol,
    request_response::{self, OutboundRequestId},
    swarm::dial_opts::{DialOpts, PeerCondition},
    Multiaddr, PeerId,
};
use tokio::sync::oneshot;

use super::{peer_of, SwarmTask};
use crate::{
    p2p::{error::P2pError, handle::Discovered, inbound_streams::InboundStream},
    rendezvous::{
        record,
        wire::{Discover, Message, MessageType, Register, ResponseStatus, Unregister},
    },
};

/// Where the answer to an outbound rendezvous request goes.
#[derive(Debug)]
pub(super) enum RendezvousReply {
    /// A registration: the TTL granted.
    Register(oneshot::Sender<Result<u64, P2pError>>),
    /// A discover: the peers found and the next cookie.
    Discover(oneshot::Sender<Result<Discovered, P2pError>>),
    /// An unregistration: the protocol has no answer to it, so nobody waits.
    Unregister,
}

impl RendezvousReply {
    fn fail(self, error: P2pError) {
        match self {
            Self::Register(reply) => {
                let _ = reply.send(Err(error));
            }
            Self::Discover(reply) => {
                let _ = reply.send(Err(error));
            }
            // The server closes the stream without an answer: nothing failed.
            Self::Unregister => {}
        }
    }
}

type RendezvousEvent = request_response::Event<Message, Message>;

/// The status of a response as text, for errors.
fn status_text(status: Option<i32>, text: Option<&str>) -> String {
    let name = status
        .and_then(|s| ResponseStatus::try_from(s).ok())
        .map_or_else(|| format!("{status:?}"), |s| s.as_str_name().to_string());
    match text {
        Some(text) if !text.is_empty() => format!("{name}: {text}"),
        _ => name,
    }
}

/// Reads a discover response: every registration whose record verifies (the others are
/// skipped and logged), and the cookie.
fn discovered(server: PeerId, message: Message) -> Result<Discovered, P2pError> {
    let refused = |reason: String| P2pError::Rendezvous { server, reason };
    let response = message
        .discover_response
        .ok_or_else(|| refused("answer is not a discover response".into()))?;
    if response.status.unwrap_or(ResponseStatus::Ok as i32) != ResponseStatus::Ok as i32 {
        return Err(refused(status_text(
            response.status,
            response.status_text.as_deref(),
        )));
    }
    let mut peers = Vec::with_capacity(response.registrations.len());
    for registration in response.registrations {
        match record::verify(registration.signed_peer_record()) {
            Ok(verified) => peers.push((verified.peer_id, verified.addresses)),
            Err(e) => tracing::debug!(%server, %e, "discovered registration skipped"),
        }
    }
    Ok(Discovered {
        peers,
        cookie: response.cookie.unwrap_or_default(),
    })
}

impl SwarmTask {
    /// Dials `server` at its configured address unless connected (or being dialled).
    fn reach_rendezvous(&mut self, server: PeerId) {
        if self.swarm.is_connected(&server) {
            return;
        }
        let addresses: Vec<Multiaddr> = self
            .settings
            .rendezvous_servers
            .iter()
            .filter(|addr| peer_of(addr) == Some(server))
            .cloned()
            .collect();
        let opts = DialOpts::peer_id(server)
            .addresses(addresses)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::debug!(%server, %e, "cannot dial the rendezvous server");
        }
    }

    /// The addresses this node registers: its confirmed external addresses, or else (a node
    /// on a local network, or in tests) the addresses it listens on.
    fn addresses_to_register(&self) -> Vec<Multiaddr> {
        let external: Vec<Multiaddr> = self.swarm.external_addresses().cloned().collect();
        if !external.is_empty() {
            return external;
        }
        self.swarm
            .listeners()
            .filter(|addr| {
                !addr.iter().any(|p| match p {
                    Protocol::Ip4(ip) => ip.is_unspecified(),
                    Protocol::Ip6(ip) => ip.is_unspecified(),
                    _ => false,
                })
            })
            .cloned()
            .collect()
    }

    fn send_rendezvous(&mut self, server: PeerId, request: Message, reply: RendezvousReply) {
        self.reach_rendezvous(server);
        let id = self
            .swarm
            .behaviour_mut()
            .rendezvous
            .send_request(&server, request);
        self.rendezvous_requests.insert(id, (server, reply));
    }

    pub(super) fn rendezvous_register(
        &mut self,
        server: PeerId,
        namespace: String,
        ttl: Option<u64>,
        reply: oneshot::Sender<Result<u64, P2pError>>,
    ) {
        let addresses = self.addresses_to_register();
        if addresses.is_empty() {
            let _ = reply.send(Err(P2pError::Rendezvous {
                server,
                reason: "this node has no address to register".into(),
            }));
            return;
        }
        // The specification's record format (what go, js and our own servers read).
        let record = match PeerRecord::new_interop(&self.record_key, addresses) {
            Ok(record) => record,
            Err(e) => {
                let _ = reply.send(Err(P2pError::Rendezvous {
                    server,
                    reason: format!("cannot sign the peer record: {e}"),
                }));
                return;
            }
        };
        let request = Message {
            r#type: Some(MessageType::Register as i32),
            register: Some(Register {
                ns: Some(namespace),
                signed_peer_record: Some(record.into_signed_envelope().into_protobuf_encoding()),
                ttl,
            }),
            ..Message::default()
        };
        self.send_rendezvous(server, request, RendezvousReply::Register(reply));
    }

    pub(super) fn rendezvous_discover(
        &mut self,
        server: PeerId,
        namespace: String,
        cookie: Option<Vec<u8>>,
        reply: oneshot::Sender<Result<Discovered, P2pError>>,
    ) {
        let request = Message {
            r#type: Some(MessageType::Discover as i32),
            discover: Some(Discover {
                ns: Some(namespace),
                limit: None,
                cookie,
            }),
            ..Message::default()
        };
        self.send_rendezvous(server, request, RendezvousReply::Discover(reply));
    }

    /// Asks `server` to drop this node's registration under `namespace` (no answer comes).
    pub(super) fn rendezvous_unregister(&mut self, server: PeerId, namespace: String) {
        let request = Message {
            r#type: Some(MessageType::Unregister as i32),
            unregister: Some(Unregister {
                ns: Some(namespace),
                id: None,
            }),
            ..Message::default()
        };
        self.send_rendezvous(server, request, RendezvousReply::Unregister);
    }

    pub(super) fn on_rendezvous(&mut self, event: RendezvousEvent) {
        match event {
            // Inbound streams are served whole by `serve_rendezvous_stream`; request-response
            // only sends our requests, so no request arrives here.
            request_response::Event::Message {
                message: request_response::Message::Request { .. },
                ..
            } => {}
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => self.on_rendezvous_response(peer, request_id, response),
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.rendezvous_requests.remove(&request_id) {
                    reply.fail(P2pError::Rendezvous {
                        server: peer,
                        reason: error.to_string(),
                    });
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound rendezvous request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_rendezvous_response(&mut self, server: PeerId, id: OutboundRequestId, response: Message) {
        let Some((_, reply)) = self.rendezvous_requests.remove(&id) else {
            return;
        };
        match reply {
            RendezvousReply::Register(reply) => {
                let result = match response.register_response {
                    Some(r)
                        if r.status.unwrap_or(ResponseStatus::Ok as i32)
                            == ResponseStatus::Ok as i32 =>
                    {
                        Ok(r.ttl.unwrap_or_default())
                    }
                    Some(r) => Err(P2pError::Rendezvous {
                        server,
                        reason: status_text(r.status, r.status_text.as_deref()),
                    }),
                    None => Err(P2pError::Rendezvous {
                        server,
                        reason: "answer is not a register response".into(),
                    }),
                };
                let _ = reply.send(result);
            }
            RendezvousReply::Discover(reply) => {
                let _ = reply.send(discovered(server, response));
            }
            RendezvousReply::Unregister => {}
        }
    }

    /// Serves an inbound stream with our rendezvous server, on the runtime (it verifies
    /// records and writes to the database), several requests in a row.
    pub(super) fn serve_rendezvous_stream(&mut self, inbound: InboundStream) {
        let Some(server) = self.settings.rendezvous_server.clone() else {
            return;
        };
        let per_request = self.settings.timings.sync_request_timeout;
        self.rendezvous_streams.spawn(async move {
            let mut inbound = inbound;
            server
                .serve_stream(inbound.peer, &mut inbound.stream, per_request)
                .await;
        });
    }
}
