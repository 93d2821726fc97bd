//! The mirror registration protocol (`/berty-node/mirror/1.0.0`) as domain messages,
//! converted from and to the generated ones here with one [`MirrorParseError`] per defect;
//! and its codec (the sync protocol's framing: a varint length, then the protobuf message).

use std::fmt;

use libp2p::{PeerId, StreamProtocol};
use tokio::sync::oneshot;

use super::sync_codec::FramedCodec;
use crate::{
    crypto::{parse_public_key, CreationProof, LinkKey, VerifyingKey},
    proto::wire::{self, mirror_request},
};

/// The mirror protocol's id.
pub const MIRROR_PROTOCOL: StreamProtocol = StreamProtocol::new("/berty-node/mirror/1.0.0");
/// Largest frame either way (a registration is a few hundred bytes).
pub const MAX_MIRROR_FRAME_BYTES: usize = 16 * 1024;

/// What a member's node asks a mirror.
#[derive(Debug, Clone)]
pub enum MirrorRequest {
    /// Keep a group.
    Register(Box<MirrorRegistration>),
    /// Stop keeping a group registered under `token`.
    Unregister {
        /// The group public key.
        group_pk: [u8; 32],
        /// The token it was registered under.
        token: String,
    },
}

/// A group's public parameters and the token to keep it under.
#[derive(Debug, Clone)]
pub struct MirrorRegistration {
    /// The group public key.
    pub group_pk: VerifyingKey,
    /// The group's signing public key.
    pub signing_pk: VerifyingKey,
    /// The group's link key.
    pub link_key: LinkKey,
    /// The group key's signature over these (and the creator).
    pub creation_proof: CreationProof,
    /// A bearer token the mirror's operator issued.
    pub token: String,
}

/// A request from another peer, for this node's mirror, with where its answer goes (a dropped
/// reply closes the stream).
#[derive(Debug)]
pub struct InboundMirrorRequest {
    /// Who asks.
    pub peer: PeerId,
    /// What.
    pub request: MirrorRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<MirrorResponse>,
}

/// Why a mirror refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorRefusal {
    /// `mirror.enabled` is false there.
    Disabled,
    /// Unknown or revoked token.
    BadToken,
    /// The token mirrors as many groups as it may.
    GroupQuota,
    /// The token's groups hold as many bytes as it may.
    ByteQuota,
    /// The creation proof does not verify.
    BadProof,
    /// The request does not parse.
    Malformed,
    /// The mirror cannot serve now.
    Unavailable,
    /// Not mirrored under this token.
    NotFound,
}

/// A mirror's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorResponse {
    /// Done; `already` when a registration found the group mirrored already.
    Done {
        /// Nothing changed: it was so already.
        already: bool,
    },
    /// Refused, and why.
    Refused {
        /// The reason.
        reason: MirrorRefusal,
        /// Detail for a human.
        message: String,
    },
}

impl MirrorResponse {
    /// A refusal.
    pub fn refused(reason: MirrorRefusal, message: impl Into<String>) -> Self {
        Self::Refused {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for MirrorRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disabled => "the mirror role is disabled on that node",
            Self::BadToken => "unknown or revoked mirror token",
            Self::GroupQuota => "the token's group quota is reached",
            Self::ByteQuota => "the token's byte quota is reached",
            Self::BadProof => "the creation proof does not verify",
            Self::Malformed => "malformed mirror request",
            Self::Unavailable => "the mirror is unavailable; retry later",
            Self::NotFound => "the group is not mirrored under this token",
        })
    }
}

/// Why a mirror message does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorParseError(pub &'static str);

impl fmt::Display for MirrorParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for MirrorParseError {}

fn key(bytes: &[u8], what: &'static str) -> Result<VerifyingKey, MirrorParseError> {
    parse_public_key(bytes).map_err(|_| MirrorParseError(what))
}

impl TryFrom<wire::MirrorRequest> for MirrorRequest {
    type Error = MirrorParseError;

    fn try_from(request: wire::MirrorRequest) -> Result<Self, Self::Error> {
        match request.request {
            Some(mirror_request::Request::Register(r)) => {
                let link_key: [u8; 32] = r
                    .link_key
                    .as_slice()
                    .try_into()
                    .map_err(|_| MirrorParseError("link key is not 32 bytes"))?;
                Ok(Self::Register(Box::new(MirrorRegistration {
                    group_pk: key(&r.group_pk, "group key is not an Ed25519 public key")?,
                    signing_pk: key(&r.signing_pk, "signing key is not an Ed25519 public key")?,
                    link_key: LinkKey::from_bytes(link_key),
                    creation_proof: CreationProof::decode(&r.creation_proof)
                        .map_err(|_| MirrorParseError("creation proof does not parse"))?,
                    token: r.token,
                })))
            }
            Some(mirror_request::Request::Unregister(u)) => Ok(Self::Unregister {
                group_pk: key(&u.group_pk, "group key is not an Ed25519 public key")?.to_bytes(),
                token: u.token,
            }),
            None => Err(MirrorParseError("empty request")),
        }
    }
}

impl From<MirrorRequest> for wire::MirrorRequest {
    fn from(request: MirrorRequest) -> Self {
        let request = match request {
            MirrorRequest::Register(r) => mirror_request::Request::Register(wire::MirrorRegister {
                group_pk: r.group_pk.to_bytes().to_vec(),
                signing_pk: r.signing_pk.to_bytes().to_vec(),
                link_key: r.link_key.as_bytes().to_vec(),
                creation_proof: r.creation_proof.encode(),
                token: r.token,
            }),
            MirrorRequest::Unregister { group_pk, token } => {
                mirror_request::Request::Unregister(wire::MirrorUnregister {
                    group_pk: group_pk.to_vec(),
                    token,
                })
            }
        };
        Self {
            request: Some(request),
        }
    }
}

impl TryFrom<wire::MirrorResponse> for MirrorResponse {
    type Error = MirrorParseError;

    fn try_from(response: wire::MirrorResponse) -> Result<Self, Self::Error> {
        use wire::MirrorStatus as S;
        let reason = match S::try_from(response.status) {
            Ok(S::Ok) => {
                return Ok(Self::Done {
                    already: response.already,
                })
            }
            Ok(S::Disabled) => MirrorRefusal::Disabled,
            Ok(S::BadToken) => MirrorRefusal::BadToken,
            Ok(S::GroupQuota) => MirrorRefusal::GroupQuota,
            Ok(S::ByteQuota) => MirrorRefusal::ByteQuota,
            Ok(S::BadProof) => MirrorRefusal::BadProof,
            Ok(S::Malformed) => MirrorRefusal::Malformed,
            Ok(S::Unavailable) => MirrorRefusal::Unavailable,
            Ok(S::NotFound) => MirrorRefusal::NotFound,
            Err(_) => return Err(MirrorParseError("unknown mirror status")),
        };
        Ok(Self::Refused {
            reason,
            message: response.message,
        })
    }
}

impl From<MirrorResponse> for wire::MirrorResponse {
    fn from(response: MirrorResponse) -> Self {
        use wire::MirrorStatus as S;
        match response {
            MirrorResponse::Done { already } => Self {
                status: S::Ok as i32,
                message: String::new(),
                already,
            },
            MirrorResponse::Refused { reason, message } => {
                let status = match reason {
                    MirrorRefusal::Disabled => S::Disabled,
                    MirrorRefusal::BadToken => S::BadToken,
                    MirrorRefusal::GroupQuota => S::GroupQuota,
                    MirrorRefusal::ByteQuota => S::ByteQuota,
                    MirrorRefusal::BadProof => S::BadProof,
                    MirrorRefusal::Malformed => S::Malformed,
                    MirrorRefusal::Unavailable => S::Unavailable,
                    MirrorRefusal::NotFound => S::NotFound,
                };
                Self {
                    status: status as i32,
                    message,
                    already: false,
                }
            }
        }
    }
}

/// The codec of [`MIRROR_PROTOCOL`].
pub type MirrorCodec = FramedCodec<
    wire::MirrorRequest,
    wire::MirrorResponse,
    MAX_MIRROR_FRAME_BYTES,
    MAX_MIRROR_FRAME_BYTES,
>;

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::*;
    use crate::crypto::{GroupGenesis, SigningKey};

    #[test]
    fn requests_and_responses_round_trip_and_garbage_is_named() {
        let creator = SigningKey::generate(&mut OsRng).verifying_key();
        let (keys, proof) = GroupGenesis::generate(&mut OsRng).finish(&creator).unwrap();
        let request = MirrorRequest::Register(Box::new(MirrorRegistration {
            group_pk: *keys.group_pk(),
            signing_pk: keys.signing_pk(),
            link_key: LinkKey::from_bytes(*keys.link_key().as_bytes()),
            creation_proof: proof,
            token: "t".into(),
        }));
        let back = MirrorRequest::try_from(wire::MirrorRequest::from(request)).unwrap();
        let MirrorRequest::Register(back) = back else {
            panic!("not a registration")
        };
        back.creation_proof
            .verify(&back.group_pk, &back.signing_pk, &back.link_key)
            .unwrap();
        assert_eq!(back.token, "t");

        for response in [
            MirrorResponse::Done { already: true },
            MirrorResponse::refused(MirrorRefusal::ByteQuota, "full"),
        ] {
            let back = MirrorResponse::try_from(wire::MirrorResponse::from(response.clone()));
            assert_eq!(back.unwrap(), response);
        }

        let empty = MirrorRequest::try_from(wire::MirrorRequest { request: None });
        assert_eq!(empty.unwrap_err().0, "empty request");
        let short_key = wire::MirrorRequest {
            request: Some(mirror_request::Request::Unregister(
                wire::MirrorUnregister {
                    group_pk: vec![1; 5],
                    token: String::new(),
                },
            )),
        };
        assert!(MirrorRequest::try_from(short_key).is_err());
        let status = wire::MirrorResponse {
            status: 99,
            ..Default::default()
        };
        assert!(MirrorResponse::try_from(status).is_err());
    }
}
