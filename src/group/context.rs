//! A group's local record (what this device keeps about a group it is in) and the context a
//! group store actor writes with.

use prost::Message;

use crate::{
    crypto::{
        signing_key_from_seed, AccountKeys, CreationProof, GroupKeys, GroupSecret, SigningKey,
        VerifyingKey,
    },
    error::Error,
    group::parse_key,
    proto::wire,
};

/// Version of [`GroupRecord`] encodings.
const RECORD_VERSION: u32 = 1;

/// What kind of group this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// The account group: the private group of the account's devices.
    Account,
    /// A multi-member group.
    Multi,
    /// The group of this account and one contact.
    Contact,
}

/// What this device keeps about one group (sealed at rest).
#[derive(Clone)]
pub struct GroupRecord {
    /// The kind of group.
    pub kind: GroupKind,
    /// The group's keys.
    pub keys: GroupKeys,
    /// Multi-member groups: the creation proof naming the creator.
    pub proof: Option<CreationProof>,
    /// This device's key in the group.
    pub device: SigningKey,
    /// True after `GroupLeave`.
    pub left: bool,
    /// Contact groups: the contact's account key.
    pub contact_pk: Option<VerifyingKey>,
    /// Join order, for listing.
    pub joined_seq: u64,
}

impl GroupRecord {
    /// The group public key.
    pub fn group_pk(&self) -> &VerifyingKey {
        self.keys.group_pk()
    }

    /// Encodes the record (plaintext: seal it before storing).
    pub fn encode(&self) -> Vec<u8> {
        wire::GroupRecord {
            version: RECORD_VERSION,
            kind: match self.kind {
                GroupKind::Account => wire::GroupKind::Account,
                GroupKind::Multi => wire::GroupKind::Multi,
                GroupKind::Contact => wire::GroupKind::Contact,
            } as i32,
            group_pk: self.group_pk().as_bytes().to_vec(),
            group_secret: self.keys.secret().as_bytes().to_vec(),
            creation_proof: self.proof.as_ref().map(|p| p.encode()).unwrap_or_default(),
            device_seed: self.device.as_bytes().to_vec(),
            left: self.left,
            contact_pk: self
                .contact_pk
                .map(|pk| pk.as_bytes().to_vec())
                .unwrap_or_default(),
            joined_seq: self.joined_seq,
        }
        .encode_to_vec()
    }

    /// Decodes a stored record; errors mean corrupt local data.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |what: &str| Error::Internal(format!("stored group record: {what}"));
        let wire = wire::GroupRecord::decode(bytes)
            .map_err(|e| Error::decode("stored group record", e))?;
        if wire.version != RECORD_VERSION {
            return Err(corrupt(&format!("unknown version {}", wire.version)));
        }
        let kind = match wire::GroupKind::try_from(wire.kind) {
            Ok(wire::GroupKind::Account) => GroupKind::Account,
            Ok(wire::GroupKind::Multi) => GroupKind::Multi,
            Ok(wire::GroupKind::Contact) => GroupKind::Contact,
            _ => return Err(corrupt("unknown kind")),
        };
        let group_pk =
            parse_key("group_pk", &wire.group_pk).map_err(|e| corrupt(&e.to_string()))?;
        let secret = GroupSecret::from_slice(&wire.group_secret).map_err(|_| corrupt("secret"))?;
        let keys = GroupKeys::new(group_pk, secret).map_err(|e| corrupt(&e.to_string()))?;
        let proof = if wire.creation_proof.is_empty() {
            None
        } else {
            Some(CreationProof::decode(&wire.creation_proof).map_err(|e| corrupt(&e.to_string()))?)
        };
        let device = signing_key_from_seed(&wire.device_seed).map_err(|_| corrupt("device key"))?;
        let contact_pk = if wire.contact_pk.is_empty() {
            None
        } else {
            Some(parse_key("contact_pk", &wire.contact_pk).map_err(|e| corrupt(&e.to_string()))?)
        };
        Ok(Self {
            kind,
            keys,
            proof,
            device,
            left: wire.left,
            contact_pk,
            joined_seq: wire.joined_seq,
        })
    }
}

/// Everything needed to write to a group as this device: the record plus the derived member
/// key and the creator.
#[derive(Clone)]
pub struct GroupContext {
    /// The group's record.
    pub record: GroupRecord,
    /// This account's member key in the group.
    pub member: SigningKey,
    /// The creator's member key (multi-member groups), the only author of group settings.
    pub creator: Option<VerifyingKey>,
}

impl GroupContext {
    /// Builds the context of `record` for the account with `account` keys.
    pub fn new(record: GroupRecord, account: &AccountKeys) -> Result<Self, Error> {
        let member = match record.kind {
            GroupKind::Multi => account
                .member_key(record.group_pk())
                .map_err(|e| Error::crypto("deriving the member key", e))?,
            GroupKind::Account | GroupKind::Contact => account.account().clone(),
        };
        let creator = record.proof.as_ref().map(|p| *p.creator());
        Ok(Self {
            record,
            member,
            creator,
        })
    }

    /// The group's keys.
    pub fn keys(&self) -> &GroupKeys {
        &self.record.keys
    }

    /// True when this account created the group (or the group has no single creator).
    pub fn is_creator(&self) -> bool {
        self.creator
            .is_none_or(|creator| creator == self.member.verifying_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::GroupGenesis;
    use rand::rngs::OsRng;

    #[test]
    fn record_round_trips() {
        let account = AccountKeys::generate(&mut OsRng);
        let genesis = GroupGenesis::generate(&mut OsRng);
        let member = account.member_key(&genesis.group_pk()).unwrap();
        let (keys, proof) = genesis.finish(&member.verifying_key()).unwrap();
        let record = GroupRecord {
            kind: GroupKind::Multi,
            keys,
            proof: Some(proof),
            device: SigningKey::generate(&mut OsRng),
            left: true,
            contact_pk: None,
            joined_seq: 7,
        };
        let back = GroupRecord::decode(&record.encode()).unwrap();
        assert_eq!(back.encode(), record.encode());
        let context = GroupContext::new(back, &account).unwrap();
        assert!(context.is_creator());
        assert!(GroupRecord::decode(b"garbage").is_err());
    }
}
