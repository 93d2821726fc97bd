//! The mirrors the account's groups are registered with: what a registration needs of a group
//! (its public parameters, never its secret), and the records of the mirrors it was
//! registered with (node values `mirror/<group>/<peer>`, sealed), which replication keeps
//! connected.

use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::*;
use crate::{
    crypto::{CreationProof, LinkKey},
    proto::wire,
};

/// Version written in mirror records; another version is corrupt.
const RECORD_VERSION: u32 = 1;

/// A mirror a group is registered with.
#[derive(Debug, Clone)]
pub struct MirrorOfGroup {
    /// The mirror's peer id.
    pub peer: PeerId,
    /// Where to reach it.
    pub addrs: Vec<Multiaddr>,
    /// The token the group was registered with.
    pub token: String,
    /// Unix seconds of the registration.
    pub registered_at: u64,
}

impl MirrorOfGroup {
    fn encode(&self) -> Vec<u8> {
        wire::MirrorRecord {
            version: RECORD_VERSION,
            peer_id: self.peer.to_bytes(),
            addrs: self.addrs.iter().map(ToString::to_string).collect(),
            token: self.token.clone(),
            registered_at: self.registered_at,
        }
        .encode_to_vec()
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |why: &str| Error::Internal(format!("stored mirror record: {why}"));
        let record = wire::MirrorRecord::decode(bytes)
            .map_err(|e| Error::decode("stored mirror record", e))?;
        if record.version != RECORD_VERSION {
            return Err(corrupt(&format!("unknown version {}", record.version)));
        }
        Ok(Self {
            peer: PeerId::from_bytes(&record.peer_id).map_err(|_| corrupt("bad peer id"))?,
            addrs: record
                .addrs
                .iter()
                .map(|a| a.parse().map_err(|_| corrupt("bad address")))
                .collect::<Result<_, _>>()?,
            token: record.token,
            registered_at: record.registered_at,
        })
    }
}

fn mirror_key(group_pk: &[u8; 32], peer: &PeerId) -> String {
    ValueKey::Mirror {
        group_pk: *group_pk,
        peer_hash: Sha256::digest(peer.to_bytes()).into(),
    }
    .to_string()
}

/// Every mirror record, by group (read at start).
pub(super) async fn load_mirrors(
    values: &SealedValues,
) -> Result<HashMap<[u8; 32], Vec<MirrorOfGroup>>, Error> {
    let mut mirrors: HashMap<[u8; 32], Vec<MirrorOfGroup>> = HashMap::new();
    for (key, plaintext) in values.list(ValuePrefix::Mirrors).await? {
        let Ok(ValueKey::Mirror { group_pk, .. }) = ValueKey::parse(&key) else {
            return Err(Error::Internal(format!("malformed mirror key {key}")));
        };
        mirrors
            .entry(group_pk)
            .or_default()
            .push(MirrorOfGroup::decode(&plaintext)?);
    }
    Ok(mirrors)
}

/// What a mirror registration sends: the group's public parameters.
#[derive(Debug, Clone)]
pub struct MirrorParams {
    /// The group public key.
    pub group_pk: VerifyingKey,
    /// Its signing public key.
    pub signing_pk: VerifyingKey,
    /// Its link key.
    pub link_key: LinkKey,
    /// Its creation proof.
    pub creation_proof: CreationProof,
}

/// The public parameters of a joined group, for registering it with a mirror.
#[derive(Message)]
#[rtype(result = "Result<MirrorParams, Error>")]
pub struct GetMirrorParams(pub [u8; 32]);

impl Handler<GetMirrorParams> for AccountActor {
    type Result = Result<MirrorParams, Error>;

    fn handle(&mut self, msg: GetMirrorParams, _: &mut Self::Context) -> Self::Result {
        let group = self.joined_group(&msg.0)?;
        let creation_proof = group.record.proof.clone().ok_or_else(|| {
            Error::FailedPrecondition(
                "this group has no creation proof (contact groups cannot be mirrored)".into(),
            )
        })?;
        let keys = group.keys();
        Ok(MirrorParams {
            group_pk: *keys.group_pk(),
            signing_pk: keys.signing_pk(),
            link_key: keys.link_key().clone(),
            creation_proof,
        })
    }
}

/// Remembers a mirror a group was registered with (replacing an earlier record of it), and
/// keeps it connected from now on.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct RememberMirror {
    /// The group.
    pub group_pk: [u8; 32],
    /// The mirror.
    pub mirror: MirrorOfGroup,
}

impl Handler<RememberMirror> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: RememberMirror, _: &mut Self::Context) -> Self::Result {
        let values = self.values.clone();
        let key = mirror_key(&msg.group_pk, &msg.mirror.peer);
        let record = msg.mirror.encode();
        AtomicResponse::new(Box::pin(
            async move { values.put(&key, &record).await.map_err(Error::from) }
                .into_actor(self)
                .map(move |result, actor, _| {
                    result?;
                    let mirrors = actor.mirrors.entry(msg.group_pk).or_default();
                    mirrors.retain(|m| m.peer != msg.mirror.peer);
                    mirrors.push(msg.mirror);
                    actor.publish_directory();
                    Ok(())
                }),
        ))
    }
}

/// The mirrors a group is registered with.
#[derive(Message)]
#[rtype(result = "Result<Vec<MirrorOfGroup>, Error>")]
pub struct ListMirrors(pub [u8; 32]);

impl Handler<ListMirrors> for AccountActor {
    type Result = Result<Vec<MirrorOfGroup>, Error>;

    fn handle(&mut self, msg: ListMirrors, _: &mut Self::Context) -> Self::Result {
        self.known_group(&msg.0)?;
        Ok(self.mirrors.get(&msg.0).cloned().unwrap_or_default())
    }
}

/// Forgets a mirror of a group (after it unregistered the group, or when the caller gives up
/// on it); answers its record, `NOT_FOUND` when the group has no such mirror.
#[derive(Message)]
#[rtype(result = "Result<MirrorOfGroup, Error>")]
pub struct ForgetMirror {
    /// The group.
    pub group_pk: [u8; 32],
    /// The mirror.
    pub peer: PeerId,
}

impl Handler<ForgetMirror> for AccountActor {
    type Result = AtomicResponse<Self, Result<MirrorOfGroup, Error>>;

    fn handle(&mut self, msg: ForgetMirror, _: &mut Self::Context) -> Self::Result {
        let found = self
            .mirrors
            .get(&msg.group_pk)
            .and_then(|mirrors| mirrors.iter().find(|m| m.peer == msg.peer))
            .cloned();
        let Some(found) = found else {
            let error = Error::NotFound(format!(
                "group {} is not registered with mirror {}",
                hex::encode(msg.group_pk),
                msg.peer
            ));
            return AtomicResponse::new(Box::pin(fut::ready(Err(error))));
        };
        let values = self.values.clone();
        let key = mirror_key(&msg.group_pk, &msg.peer);
        AtomicResponse::new(Box::pin(
            async move { values.delete(&key).await.map_err(Error::from) }
                .into_actor(self)
                .map(move |result, actor, _| {
                    result?;
                    if let Some(mirrors) = actor.mirrors.get_mut(&msg.group_pk) {
                        mirrors.retain(|m| m.peer != msg.peer);
                    }
                    actor.publish_directory();
                    Ok(found)
                }),
        ))
    }
}
