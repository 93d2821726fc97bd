//! `berty.node.v1.MirrorService`: registering the account's groups with mirrors. The node asks
//! the mirror over `/berty-node/mirror/1.0.0` with the group's public parameters (from the
//! account) and remembers the mirrors that accepted; replication keeps them connected.

use actix::Addr;
use libp2p::{multiaddr::Protocol, Multiaddr, PeerId};
use tonic::{Request, Response, Status};

use crate::{
    actors::{
        account::mirrors::{
            ForgetMirror, GetMirrorParams, ListMirrors, MirrorOfGroup, RememberMirror,
        },
        AccountActor,
    },
    clock::unix_now,
    error::Error,
    group::parse_key,
    metrics::Metrics,
    mirror::register::refusal_error,
    p2p::{
        mirror_message::{MirrorRegistration, MirrorRequest, MirrorResponse},
        SwarmHandle,
    },
    proto::node_api::{self as pb, mirror_service_server::MirrorService},
};

/// Times a mirror request is sent before the call fails as unavailable.
const MIRROR_ATTEMPTS: u32 = 3;
/// Longest mirror token accepted from a client.
const MAX_TOKEN_BYTES: usize = 1024;

/// The mirror calls over a running node.
#[derive(Clone)]
pub struct MirrorApi {
    swarm: SwarmHandle,
    account: Addr<AccountActor>,
    metrics: Metrics,
}

impl MirrorApi {
    /// The calls over the node's swarm and account.
    pub fn new(swarm: SwarmHandle, account: Addr<AccountActor>, metrics: Metrics) -> Self {
        Self {
            swarm,
            account,
            metrics,
        }
    }

    async fn ask<M>(&self, msg: M) -> Result<M::Result, Error>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        AccountActor: actix::Handler<M>,
    {
        self.account
            .send(msg)
            .await
            .map_err(|_| Error::stopped("the account actor is not running"))
    }

    fn finish<T>(
        &self,
        method: &'static str,
        result: Result<T, Error>,
    ) -> Result<Response<T>, Status> {
        let result = result.map(Response::new).map_err(Status::from);
        let code = result.as_ref().err().map_or(tonic::Code::Ok, Status::code);
        self.metrics.observe_grpc(method, code);
        result
    }

    /// Asks `peer` at `addrs`; a refusal becomes the matching error. A request lost with its
    /// connection (two nodes dialling each other at once close one of the connections) is
    /// sent again, [`MIRROR_ATTEMPTS`] times in all: registering and unregistering are
    /// idempotent.
    async fn ask_mirror(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        request: MirrorRequest,
    ) -> Result<bool, Error> {
        let mut attempt = 1;
        let response = loop {
            match self
                .swarm
                .mirror(peer, addrs.clone(), request.clone())
                .await
            {
                Ok(response) => break response,
                Err(e) if attempt < MIRROR_ATTEMPTS => {
                    tracing::debug!(%peer, %e, attempt, "mirror request lost; sending it again");
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Unavailable(format!("cannot reach the mirror: {e}")));
                }
            }
        };
        match response {
            MirrorResponse::Done { already } => Ok(already),
            MirrorResponse::Refused { reason, message } => Err(refusal_error(reason, &message)),
        }
    }

    async fn register(
        &self,
        request: pb::mirror_register::Request,
    ) -> Result<pb::mirror_register::Reply, Error> {
        let group_pk = group_key(&request.group_pk)?;
        let (peer, addr) = mirror_addr(&request.mirror_addr)?;
        let token = request.token.trim().to_owned();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(Error::InvalidArgument(format!(
                "token: 1 to {MAX_TOKEN_BYTES} bytes expected"
            )));
        }
        let params = self.ask(GetMirrorParams(group_pk)).await??;
        let registration = MirrorRegistration {
            group_pk: params.group_pk,
            signing_pk: params.signing_pk,
            link_key: params.link_key,
            creation_proof: params.creation_proof,
            token: token.clone(),
        };
        let already = self
            .ask_mirror(
                peer,
                vec![addr.clone()],
                MirrorRequest::Register(Box::new(registration)),
            )
            .await?;
        let mirror = MirrorOfGroup {
            peer,
            addrs: vec![addr],
            token,
            registered_at: unix_now(),
        };
        self.ask(RememberMirror { group_pk, mirror }).await??;
        Ok(pb::mirror_register::Reply {
            mirror_peer_id: peer.to_string(),
            already,
        })
    }

    async fn unregister(
        &self,
        request: pb::mirror_unregister::Request,
    ) -> Result<pb::mirror_unregister::Reply, Error> {
        let group_pk = group_key(&request.group_pk)?;
        let peer: PeerId = request.mirror_peer_id.parse().map_err(|_| {
            Error::InvalidArgument(format!(
                "mirror_peer_id: {:?} is not a peer id",
                request.mirror_peer_id
            ))
        })?;
        let known = self.ask(ListMirrors(group_pk)).await??;
        let mirror = known.into_iter().find(|m| m.peer == peer).ok_or_else(|| {
            Error::NotFound(format!(
                "group {} is not registered with mirror {peer}",
                hex::encode(group_pk)
            ))
        })?;
        let request = MirrorRequest::Unregister {
            group_pk,
            token: mirror.token.clone(),
        };
        match self.ask_mirror(peer, mirror.addrs.clone(), request).await {
            // Gone there already (not mirrored under our token, or the token was revoked, which
            // deleted the group there): forgetting it here is what is left to do.
            Ok(_) | Err(Error::NotFound(_) | Error::PermissionDenied(_)) => {}
            Err(e) => return Err(e),
        }
        self.ask(ForgetMirror { group_pk, peer }).await??;
        Ok(pb::mirror_unregister::Reply {})
    }
}

fn group_key(bytes: &[u8]) -> Result<[u8; 32], Error> {
    let group_pk = parse_key("group_pk", bytes)?.to_bytes();
    super::record_group(&group_pk);
    Ok(group_pk)
}

/// A mirror's address: a multiaddr ending with `/p2p/<peer id>`.
fn mirror_addr(text: &str) -> Result<(PeerId, Multiaddr), Error> {
    let addr: Multiaddr = text.trim().parse().map_err(|e| {
        Error::InvalidArgument(format!("mirror_addr: {text:?} is not a multiaddr ({e})"))
    })?;
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(Error::InvalidArgument(format!(
            "mirror_addr: {text:?} must end with /p2p/<the mirror's peer id>"
        ))),
    }
}

#[tonic::async_trait]
impl MirrorService for MirrorApi {
    async fn mirror_register(
        &self,
        request: Request<pb::mirror_register::Request>,
    ) -> Result<Response<pb::mirror_register::Reply>, Status> {
        let result = self.register(request.into_inner()).await;
        self.finish("MirrorRegister", result)
    }

    async fn mirror_list(
        &self,
        request: Request<pb::mirror_list::Request>,
    ) -> Result<Response<pb::mirror_list::Reply>, Status> {
        let result = async {
            let group_pk = group_key(&request.into_inner().group_pk)?;
            let mirrors = self.ask(ListMirrors(group_pk)).await??;
            Ok(pb::mirror_list::Reply {
                mirrors: mirrors
                    .into_iter()
                    .map(|m| pb::Mirror {
                        peer_id: m.peer.to_string(),
                        addrs: m.addrs.iter().map(ToString::to_string).collect(),
                        registered_at: m.registered_at,
                    })
                    .collect(),
            })
        }
        .await;
        self.finish("MirrorList", result)
    }

    async fn mirror_unregister(
        &self,
        request: Request<pb::mirror_unregister::Request>,
    ) -> Result<Response<pb::mirror_unregister::Reply>, Status> {
        let result = self.unregister(request.into_inner()).await;
        self.finish("MirrorUnregister", result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_address_names_its_peer() {
        let peer = PeerId::random();
        let (found, _) = mirror_addr(&format!("/ip4/127.0.0.1/tcp/4040/p2p/{peer}")).unwrap();
        assert_eq!(found, peer);
        let error = mirror_addr("/ip4/127.0.0.1/tcp/4040").unwrap_err();
        assert!(error.to_string().contains("/p2p/"), "{error}");
        assert!(mirror_addr("not an address").is_err());
    }
}
