//! Group keys: the group key pair, the group secret, and what is derived from the secret.
//!
//! From the 32-byte group secret, HKDF-SHA256(ikm = secret, info = label || group public key)
//! derives, each under its own label:
//!
//! | key | label | who holds it |
//! |---|---|---|
//! | shared signing key (Ed25519 seed) | [`labels::KDF_GROUP_SIGNING_KEY`] | members; mirrors get the public half |
//! | link key | [`labels::KDF_GROUP_LINK_KEY`] | members and mirrors |
//! | metadata key | [`labels::KDF_GROUP_METADATA_KEY`] | members |
//! | header key | [`labels::KDF_GROUP_HEADER_KEY`] | members |
//!
//! The group's private key exists only in a [`GroupGenesis`], which signs the
//! [`CreationProof`] and is then dropped.

use std::fmt;

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};

use super::{
    envelope::SymmetricKey, kdf::hkdf_sha256, keys::KEY_LEN, labels, secret::secret_bytes,
    CreationProof, CryptoError,
};

secret_bytes!(
    /// The 32-byte group secret: whoever holds it is a member (or holds an invite).
    GroupSecret
);

secret_bytes!(
    /// The 32-byte link key: lets mirrors and members find each other and check log links,
    /// never read content.
    LinkKey
);

/// Everything a member derives from a group's public key and secret.
#[derive(Clone)]
pub struct GroupKeys {
    group_pk: VerifyingKey,
    secret: GroupSecret,
    signing_key: SigningKey,
    link_key: LinkKey,
    metadata_key: SymmetricKey,
    header_key: SymmetricKey,
}

impl GroupKeys {
    /// Derives the group's keys from its public key and secret (for example from an invite).
    pub fn new(group_pk: VerifyingKey, secret: GroupSecret) -> Result<Self, CryptoError> {
        let derive =
            |label: &[u8]| hkdf_sha256::<KEY_LEN>(secret.as_bytes(), &[label, group_pk.as_bytes()]);
        let signing_seed = derive(labels::KDF_GROUP_SIGNING_KEY)?;
        let link_key = LinkKey::from_zeroizing(derive(labels::KDF_GROUP_LINK_KEY)?);
        let metadata_key = SymmetricKey::from_zeroizing(derive(labels::KDF_GROUP_METADATA_KEY)?);
        let header_key = SymmetricKey::from_zeroizing(derive(labels::KDF_GROUP_HEADER_KEY)?);
        Ok(Self {
            group_pk,
            signing_key: SigningKey::from_bytes(&signing_seed),
            secret,
            link_key,
            metadata_key,
            header_key,
        })
    }

    /// The group public key (`group_pub_key` on the API).
    pub fn group_pk(&self) -> &VerifyingKey {
        &self.group_pk
    }

    /// The group secret.
    pub fn secret(&self) -> &GroupSecret {
        &self.secret
    }

    /// The signing key shared by all members, which signs log entries.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing_key
    }

    /// The public half of [`GroupKeys::signing_key`], given to mirrors.
    pub fn signing_pk(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    /// The link key, given to mirrors.
    pub fn link_key(&self) -> &LinkKey {
        &self.link_key
    }

    /// The key sealing metadata payloads.
    pub fn metadata_key(&self) -> &SymmetricKey {
        &self.metadata_key
    }

    /// The key sealing message headers.
    pub fn header_key(&self) -> &SymmetricKey {
        &self.header_key
    }
}

impl fmt::Debug for GroupKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupKeys")
            .field("group_pk", &hex::encode(self.group_pk.as_bytes()))
            .field("signing_pk", &hex::encode(self.signing_pk().as_bytes()))
            .finish_non_exhaustive()
    }
}

/// A group being created: its key pair and secret, before the creation proof is signed.
///
/// This is the only holder of the group's private key: [`GroupGenesis::finish`] signs the
/// creation proof and drops it. A new multi-member group comes from
/// [`GroupGenesis::generate`], a contact group from [`super::derive_contact_group`].
pub struct GroupGenesis {
    group_key: SigningKey,
    secret: GroupSecret,
}

impl GroupGenesis {
    /// A new random group.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self {
            group_key: SigningKey::generate(rng),
            secret: GroupSecret::generate(rng),
        }
    }

    pub(crate) fn from_parts(group_key: SigningKey, secret: GroupSecret) -> Self {
        Self { group_key, secret }
    }

    /// The group public key (needed to derive the creator's member key before finishing).
    pub fn group_pk(&self) -> VerifyingKey {
        self.group_key.verifying_key()
    }

    /// The group secret.
    pub fn secret(&self) -> &GroupSecret {
        &self.secret
    }

    /// Derives the group keys, signs the creation proof naming `creator_member_pk`, and drops
    /// the group's private key.
    pub fn finish(
        self,
        creator_member_pk: &VerifyingKey,
    ) -> Result<(GroupKeys, CreationProof), CryptoError> {
        let keys = GroupKeys::new(self.group_pk(), self.secret.clone())?;
        let proof = CreationProof::sign(
            &self.group_key,
            &keys.signing_pk(),
            keys.link_key(),
            creator_member_pk,
        );
        Ok((keys, proof))
    }
}

impl fmt::Debug for GroupGenesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupGenesis")
            .field("group_pk", &hex::encode(self.group_pk().as_bytes()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    #[test]
    fn derived_keys_are_distinct_and_deterministic() {
        let genesis = GroupGenesis::generate(&mut OsRng);
        let a = GroupKeys::new(genesis.group_pk(), genesis.secret().clone()).unwrap();
        let b = GroupKeys::new(genesis.group_pk(), genesis.secret().clone()).unwrap();
        assert_eq!(a.signing_pk(), b.signing_pk());
        assert_eq!(a.link_key().as_bytes(), b.link_key().as_bytes());
        let all = [
            a.secret().as_bytes(),
            a.signing_key().as_bytes(),
            a.link_key().as_bytes(),
            a.metadata_key().as_bytes(),
            a.header_key().as_bytes(),
        ];
        for (i, x) in all.iter().enumerate() {
            for y in &all[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn the_same_secret_gives_other_keys_in_another_group() {
        let secret = GroupSecret::generate(&mut OsRng);
        let g1 = SigningKey::generate(&mut OsRng).verifying_key();
        let g2 = SigningKey::generate(&mut OsRng).verifying_key();
        let a = GroupKeys::new(g1, secret.clone()).unwrap();
        let b = GroupKeys::new(g2, secret).unwrap();
        assert_ne!(a.signing_pk(), b.signing_pk());
        assert_ne!(a.link_key().as_bytes(), b.link_key().as_bytes());
    }

    #[test]
    fn debug_shows_no_secret() {
        let secret = GroupSecret::from_bytes([0x5a; 32]);
        let genesis = GroupGenesis::from_parts(SigningKey::from_bytes(&[0x6b; 32]), secret);
        let keys = GroupKeys::new(genesis.group_pk(), genesis.secret().clone()).unwrap();
        for shown in [
            format!("{genesis:?}"),
            format!("{keys:?}"),
            format!("{:?}", keys.secret()),
            format!("{:?}", keys.link_key()),
        ] {
            assert!(!shown.contains("5a5a"), "{shown}");
            assert!(!shown.contains("6b6b"), "{shown}");
            assert!(!shown.contains(&hex::encode(keys.link_key().as_bytes())));
            assert!(!shown.contains(&hex::encode(keys.signing_key().as_bytes())));
        }
    }
}
