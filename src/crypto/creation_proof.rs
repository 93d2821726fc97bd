//! The creation proof: the group key vouches for the group's parameters and its creator.
//!
//! Signed statement (Ed25519, by the group key):
//! [`labels::SIG_CREATION_PROOF`] || group pk (32) || signing pk (32) || link key (32) ||
//! creator member pk (32).
//!
//! Encoding ([`CreationProof::encode`], 97 bytes): version `1` (1 byte) || creator member pk
//! (32) || signature (64). The other signed fields are not carried: a verifier (a joiner, a
//! mirror) must already know them, and checks the proof against them.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{
    codec::Reader,
    group::{GroupKeys, LinkKey},
    keys::{KEY_LEN, SIGNATURE_LEN},
    labels, CryptoError,
};

/// Format version, the first byte of an encoded creation proof.
const VERSION: u8 = 1;

/// The group key's signature over the group's signing key, link key and creator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationProof {
    creator: VerifyingKey,
    signature: Signature,
}

fn statement(
    group_pk: &VerifyingKey,
    signing_pk: &VerifyingKey,
    link_key: &LinkKey,
    creator: &VerifyingKey,
) -> Vec<u8> {
    [
        labels::SIG_CREATION_PROOF,
        group_pk.as_bytes(),
        signing_pk.as_bytes(),
        link_key.as_bytes(),
        creator.as_bytes(),
    ]
    .concat()
}

impl CreationProof {
    /// Length of [`CreationProof::encode`].
    pub const ENCODED_LEN: usize = 1 + KEY_LEN + SIGNATURE_LEN;

    /// Signs the proof with the group's private key (see [`super::GroupGenesis::finish`]).
    pub fn sign(
        group_key: &SigningKey,
        signing_pk: &VerifyingKey,
        link_key: &LinkKey,
        creator_member_pk: &VerifyingKey,
    ) -> Self {
        let message = statement(
            &group_key.verifying_key(),
            signing_pk,
            link_key,
            creator_member_pk,
        );
        Self {
            creator: *creator_member_pk,
            signature: group_key.sign(&message),
        }
    }

    /// The member key of the group's creator.
    pub fn creator(&self) -> &VerifyingKey {
        &self.creator
    }

    /// Checks the proof against what the verifier knows of the group (a mirror knows exactly
    /// these three values).
    pub fn verify(
        &self,
        group_pk: &VerifyingKey,
        signing_pk: &VerifyingKey,
        link_key: &LinkKey,
    ) -> Result<(), CryptoError> {
        let message = statement(group_pk, signing_pk, link_key, &self.creator);
        group_pk
            .verify_strict(&message, &self.signature)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// Checks the proof against a member's group keys.
    pub fn verify_for(&self, keys: &GroupKeys) -> Result<(), CryptoError> {
        self.verify(keys.group_pk(), &keys.signing_pk(), keys.link_key())
    }

    /// The 97-byte encoding described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        out.push(VERSION);
        out.extend_from_slice(self.creator.as_bytes());
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Parses [`CreationProof::encode`]; any other input is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut reader = Reader::new(bytes, "creation proof");
        reader.version(VERSION)?;
        let creator = reader.public_key()?;
        let signature = reader.signature()?;
        reader.finish()?;
        Ok(Self { creator, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::GroupGenesis;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn new_group() -> (GroupKeys, CreationProof, VerifyingKey) {
        let creator = SigningKey::generate(&mut OsRng).verifying_key();
        let (keys, proof) = GroupGenesis::generate(&mut OsRng).finish(&creator).unwrap();
        (keys, proof, creator)
    }

    #[test]
    fn a_mirror_verifies_with_public_parameters_only() {
        let (keys, proof, creator) = new_group();
        let decoded = CreationProof::decode(&proof.encode()).unwrap();
        assert_eq!(decoded, proof);
        assert_eq!(decoded.creator(), &creator);
        let link = LinkKey::from_bytes(*keys.link_key().as_bytes());
        decoded
            .verify(keys.group_pk(), &keys.signing_pk(), &link)
            .unwrap();
        decoded.verify_for(&keys).unwrap();
    }

    #[test]
    fn any_other_parameter_fails() {
        let (keys, proof, _) = new_group();
        let (other, other_proof, _) = new_group();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(
            proof.verify(other.group_pk(), &keys.signing_pk(), keys.link_key()),
            bad
        );
        assert_eq!(
            proof.verify(keys.group_pk(), &other.signing_pk(), keys.link_key()),
            bad
        );
        assert_eq!(
            proof.verify(keys.group_pk(), &keys.signing_pk(), other.link_key()),
            bad
        );
        assert_eq!(other_proof.verify_for(&keys), bad);
        let mut forged = proof.encode();
        forged[1..33].copy_from_slice(other_proof.creator().as_bytes());
        assert_eq!(
            CreationProof::decode(&forged).unwrap().verify_for(&keys),
            bad
        );
    }

    #[test]
    fn trailing_bytes_and_unknown_versions_are_refused() {
        let (_, proof, _) = new_group();
        let mut bytes = proof.encode();
        bytes.push(0);
        assert!(CreationProof::decode(&bytes).is_err());
        let mut bytes = proof.encode();
        bytes[0] = 2;
        assert_eq!(
            CreationProof::decode(&bytes),
            Err(CryptoError::UnsupportedVersion {
                what: "creation proof",
                version: 2
            })
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CreationProof::decode(&bytes);
        }

        #[test]
        fn decode_of_right_length_never_panics(mut bytes in any::<[u8; 97]>()) {
            bytes[0] = VERSION;
            if let Ok(proof) = CreationProof::decode(&bytes) {
                prop_assert_eq!(proof.encode(), bytes.to_vec());
            }
        }
    }
}
