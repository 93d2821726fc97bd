//! Group invitations and contact references: opaque bytes for clients, validated here.

use prost::Message;

use crate::{
    crypto::{CreationProof, GroupKeys, GroupSecret, RendezvousSeed, VerifyingKey},
    error::Error,
    group::parse_key,
    proto::wire,
};

/// Version of the reference encodings written by this node.
const REFERENCE_VERSION: u32 = 1;

/// A parsed, verified group invitation.
#[derive(Clone)]
pub struct GroupReference {
    /// The group's keys (from its public key and secret).
    pub keys: GroupKeys,
    /// The creation proof, checked against the keys.
    pub proof: CreationProof,
}

impl GroupReference {
    /// Encodes the invitation (`GroupInvite.Reply.reference`).
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// The wire form (also carried inside `GroupJoined` account events).
    pub fn to_wire(&self) -> wire::GroupReference {
        wire::GroupReference {
            version: REFERENCE_VERSION,
            group_pk: self.keys.group_pk().as_bytes().to_vec(),
            group_secret: self.keys.secret().as_bytes().to_vec(),
            creation_proof: self.proof.encode(),
        }
    }

    /// Parses and verifies an invitation: known version, valid keys, a creation proof signed
    /// by the group key over these parameters.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument(
                "reference: empty; pass the bytes that GroupInvite returned".into(),
            ));
        }
        let wire = wire::GroupReference::decode(bytes).map_err(|e| {
            Error::InvalidArgument(format!("reference: not a group reference ({e})"))
        })?;
        Self::from_wire(&wire)
    }

    /// Validates the wire form.
    pub fn from_wire(wire: &wire::GroupReference) -> Result<Self, Error> {
        if wire.version != REFERENCE_VERSION {
            return Err(Error::InvalidArgument(format!(
                "reference: unsupported group reference version {}",
                wire.version
            )));
        }
        let group_pk = parse_key("reference.group_pk", &wire.group_pk)?;
        let secret = GroupSecret::from_slice(&wire.group_secret).map_err(|_| {
            Error::InvalidArgument("reference: the group secret must be 32 bytes".into())
        })?;
        let keys = GroupKeys::new(group_pk, secret)
            .map_err(|e| Error::InvalidArgument(format!("reference: {e}")))?;
        let proof = CreationProof::decode(&wire.creation_proof)
            .map_err(|e| Error::InvalidArgument(format!("reference: creation proof: {e}")))?;
        proof.verify_for(&keys).map_err(|_| {
            Error::InvalidArgument(
                "reference: the creation proof is not signed by the group key".into(),
            )
        })?;
        Ok(Self { keys, proof })
    }
}

/// A parsed contact reference: an account key and its current rendezvous seed.
#[derive(Clone)]
pub struct ContactReference {
    /// The account to contact.
    pub account_pk: VerifyingKey,
    /// Where it listens for requests (rotating rendezvous points derive from it).
    pub rendezvous_seed: RendezvousSeed,
}

impl ContactReference {
    /// Encodes the reference (`ContactRequestReference.Reply.reference`).
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::ContactReference {
        wire::ContactReference {
            version: REFERENCE_VERSION,
            account_pk: self.account_pk.as_bytes().to_vec(),
            rendezvous_seed: self.rendezvous_seed.as_bytes().to_vec(),
        }
    }

    /// Parses a reference given by a client.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument(
                "reference: empty; pass the bytes that ContactRequestReference returned".into(),
            ));
        }
        let wire = wire::ContactReference::decode(bytes).map_err(|e| {
            Error::InvalidArgument(format!("reference: not a contact reference ({e})"))
        })?;
        Self::from_wire(&wire)
    }

    /// Validates the wire form.
    pub fn from_wire(wire: &wire::ContactReference) -> Result<Self, Error> {
        if wire.version != REFERENCE_VERSION {
            return Err(Error::InvalidArgument(format!(
                "reference: unsupported contact reference version {}",
                wire.version
            )));
        }
        let account_pk = parse_key("reference.account_pk", &wire.account_pk)?;
        let rendezvous_seed = RendezvousSeed::from_slice(&wire.rendezvous_seed).map_err(|_| {
            Error::InvalidArgument("reference: the rendezvous seed must be 32 bytes".into())
        })?;
        Ok(Self {
            account_pk,
            rendezvous_seed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AccountKeys, GroupGenesis};
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn reference() -> GroupReference {
        let account = AccountKeys::generate(&mut OsRng);
        let genesis = GroupGenesis::generate(&mut OsRng);
        let member = account.member_key(&genesis.group_pk()).unwrap();
        let (keys, proof) = genesis.finish(&member.verifying_key()).unwrap();
        GroupReference { keys, proof }
    }

    #[test]
    fn group_reference_round_trips() {
        let original = reference();
        let back = GroupReference::decode(&original.encode()).unwrap();
        assert_eq!(back.keys.group_pk(), original.keys.group_pk());
        assert_eq!(back.proof.creator(), original.proof.creator());
    }

    #[test]
    fn group_reference_with_foreign_proof_is_refused() {
        let mut wire = reference().to_wire();
        wire.creation_proof = reference().proof.encode();
        let err = GroupReference::from_wire(&wire).err().unwrap();
        assert!(matches!(err, Error::InvalidArgument(m) if m.contains("creation proof")));
    }

    #[test]
    fn neither_reference_parses_as_the_other() {
        let group = reference().encode();
        assert!(ContactReference::decode(&group).is_err());
        let account = AccountKeys::generate(&mut OsRng);
        let contact = ContactReference {
            account_pk: account.account_pk(),
            rendezvous_seed: RendezvousSeed::generate(&mut OsRng),
        }
        .encode();
        assert!(GroupReference::decode(&contact).is_err());
    }

    #[test]
    fn an_empty_reference_is_called_empty() {
        let group = GroupReference::decode(&[]).err().unwrap().to_string();
        assert!(group.contains("empty"), "{group}");
        let contact = ContactReference::decode(&[]).err().unwrap().to_string();
        assert!(contact.contains("empty"), "{contact}");
    }

    #[test]
    fn contact_reference_round_trips() {
        let account = AccountKeys::generate(&mut OsRng);
        let original = ContactReference {
            account_pk: account.account_pk(),
            rendezvous_seed: RendezvousSeed::generate(&mut OsRng),
        };
        let back = ContactReference::decode(&original.encode()).unwrap();
        assert_eq!(back.account_pk, original.account_pk);
        assert_eq!(
            back.rendezvous_seed.as_bytes(),
            original.rendezvous_seed.as_bytes()
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = GroupReference::decode(&bytes);
            let _ = ContactReference::decode(&bytes);
        }
    }
}
