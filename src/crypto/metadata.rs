//! Metadata payloads: sealed under the group's metadata key, signed inside by the author
//! device.
//!
//! The author device signs [`labels::SIG_METADATA`] || group pk (32) || SHA-256(plaintext).
//!
//! Encoding: version `1` || envelope under [`GroupKeys::metadata_key`] with associated data
//! [`labels::AD_METADATA`] || group pk, whose plaintext is device pk (32) || signature (64) ||
//! payload. An envelope is `nonce (24) || ciphertext || tag (16)`.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::{
    codec::Reader,
    envelope,
    keys::{KEY_LEN, SIGNATURE_LEN},
    labels, CryptoError, GroupKeys, SignatureCheck,
};

/// Format version, the first byte of a metadata payload.
const VERSION: u8 = 1;

/// Bytes a sealed metadata payload adds to its plaintext.
pub const METADATA_OVERHEAD: usize = 1 + envelope::ENVELOPE_OVERHEAD + KEY_LEN + SIGNATURE_LEN;

/// An opened metadata payload whose author signature has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMetadata {
    /// The per-group device key of the author.
    pub author_device: VerifyingKey,
    /// The payload.
    pub plaintext: Vec<u8>,
}

fn statement(group_pk: &VerifyingKey, plaintext: &[u8]) -> Vec<u8> {
    [
        labels::SIG_METADATA,
        group_pk.as_bytes(),
        &Sha256::digest(plaintext),
    ]
    .concat()
}

fn associated_data(group_pk: &VerifyingKey) -> Vec<u8> {
    [labels::AD_METADATA, group_pk.as_bytes()].concat()
}

/// Signs `plaintext` with the author's per-group `device` key and seals it for the group.
pub fn seal_metadata<R: CryptoRng + RngCore>(
    keys: &GroupKeys,
    device: &SigningKey,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let group_pk = keys.group_pk();
    let signature = device.sign(&statement(group_pk, plaintext));
    let mut inner = Vec::with_capacity(KEY_LEN + SIGNATURE_LEN + plaintext.len());
    inner.extend_from_slice(device.verifying_key().as_bytes());
    inner.extend_from_slice(&signature.to_bytes());
    inner.extend_from_slice(plaintext);
    let sealed = envelope::seal(keys.metadata_key(), &associated_data(group_pk), &inner, rng)?;
    let mut out = Vec::with_capacity(1 + sealed.len());
    out.push(VERSION);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a sealed metadata payload and checks its author's signature.
pub fn open_metadata(keys: &GroupKeys, sealed: &[u8]) -> Result<OpenedMetadata, CryptoError> {
    let (opened, check) = open_metadata_unverified(keys, sealed)?;
    check.verify()?;
    Ok(opened)
}

/// Like [`open_metadata`], but hands back the author signature check instead of running it,
/// for [`super::verify_batch`]. Do not use the payload before the check passed.
pub fn open_metadata_unverified(
    keys: &GroupKeys,
    sealed: &[u8],
) -> Result<(OpenedMetadata, SignatureCheck), CryptoError> {
    let group_pk = keys.group_pk();
    let mut reader = Reader::new(sealed, "metadata");
    reader.version(VERSION)?;
    let inner = envelope::open(
        keys.metadata_key(),
        &associated_data(group_pk),
        reader.remaining(),
    )?;
    let mut reader = Reader::new(&inner, "metadata");
    let author_device = reader.public_key()?;
    let signature = reader.signature()?;
    let plaintext = reader.remaining().to_vec();
    let check = SignatureCheck::new(author_device, statement(group_pk, &plaintext), signature);
    Ok((
        OpenedMetadata {
            author_device,
            plaintext,
        },
        check,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::GroupGenesis;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn group() -> GroupKeys {
        let creator = SigningKey::generate(&mut OsRng).verifying_key();
        GroupGenesis::generate(&mut OsRng)
            .finish(&creator)
            .unwrap()
            .0
    }

    #[test]
    fn round_trip_names_the_author() {
        let keys = group();
        let device = SigningKey::generate(&mut OsRng);
        let sealed = seal_metadata(&keys, &device, b"member joined", &mut OsRng).unwrap();
        assert_eq!(sealed.len(), b"member joined".len() + METADATA_OVERHEAD);
        let opened = open_metadata(&keys, &sealed).unwrap();
        assert_eq!(opened.author_device, device.verifying_key());
        assert_eq!(opened.plaintext, b"member joined");
    }

    #[test]
    fn another_group_cannot_open_it() {
        let device = SigningKey::generate(&mut OsRng);
        let sealed = seal_metadata(&group(), &device, b"x", &mut OsRng).unwrap();
        assert_eq!(
            open_metadata(&group(), &sealed),
            Err(CryptoError::DecryptionFailed)
        );
    }

    #[test]
    fn a_member_cannot_claim_another_author() {
        // A member holds the metadata key, so it can seal anything; it cannot sign as
        // another device.
        let keys = group();
        let victim = SigningKey::generate(&mut OsRng);
        let sealed = seal_metadata(&keys, &victim, b"original", &mut OsRng).unwrap();
        let (_, check) = open_metadata_unverified(&keys, &sealed).unwrap();
        check.verify().unwrap();
        let inner = envelope::open(
            keys.metadata_key(),
            &associated_data(keys.group_pk()),
            &sealed[1..],
        )
        .unwrap();
        let mut forged_inner = inner[..KEY_LEN + SIGNATURE_LEN].to_vec();
        forged_inner.extend_from_slice(b"forged");
        let mut forged = vec![VERSION];
        forged.extend(
            envelope::seal(
                keys.metadata_key(),
                &associated_data(keys.group_pk()),
                &forged_inner,
                &mut OsRng,
            )
            .unwrap(),
        );
        assert_eq!(
            open_metadata(&keys, &forged),
            Err(CryptoError::BadSignature)
        );
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let keys = group();
            let _ = open_metadata(&keys, &bytes);
        }

        #[test]
        fn open_never_panics_on_well_sealed_garbage(inner in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Right key and associated data, arbitrary inner layout.
            let keys = group();
            let mut sealed = vec![VERSION];
            sealed.extend(
                envelope::seal(keys.metadata_key(), &associated_data(keys.group_pk()), &inner, &mut OsRng)
                    .unwrap(),
            );
            prop_assert!(open_metadata(&keys, &sealed).is_err());
        }
    }
}
