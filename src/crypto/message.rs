//! Message payloads of a group's message log: a header sealed under the group's header key,
//! and a body sealed under the sending device's message key.
//!
//! The author device signs [`labels::SIG_MESSAGE`] || group pk (32) || log kind (1) ||
//! counter (u64 BE) || SHA-256(plaintext) (32).
//!
//! Encoding: version `1` || sealed header (144) || sealed body (plaintext + 40), where
//!
//! - sealed header = envelope under [`GroupKeys::header_key`] of counter (u64 BE) || device pk
//!   (32) || signature (64), associated data [`labels::AD_MESSAGE_HEADER`] || group pk || log
//!   kind;
//! - sealed body = envelope under the message key of the plaintext, associated data
//!   [`labels::AD_MESSAGE_BODY`] || group pk || log kind || counter || device pk, so a body
//!   cannot be paired with another header.
//!
//! An envelope is `nonce (24) || ciphertext || tag (16)` (see [`super::seal`]).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

use super::{
    codec::Reader,
    envelope::{self, ENVELOPE_OVERHEAD},
    keys::{ParsedKeys, KEY_LEN, SIGNATURE_LEN},
    labels, CryptoError, GroupKeys, MessageKey, SignatureCheck,
};
use crate::log::LogKind;

/// Format version, the first byte of a message payload.
const VERSION: u8 = 1;
/// Counter, device key and device signature.
const HEADER_LEN: usize = 8 + KEY_LEN + SIGNATURE_LEN;
/// The header once sealed under the group's message header key.
const SEALED_HEADER_LEN: usize = HEADER_LEN + ENVELOPE_OVERHEAD;

/// Bytes a sealed message adds to its plaintext.
pub const MESSAGE_OVERHEAD: usize = 1 + SEALED_HEADER_LEN + ENVELOPE_OVERHEAD;

/// What the header of a message says: who sent it, with which counter, and the author's
/// signature (checked by [`open_body`] once the body is open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageHeader {
    /// The sender's ratchet counter: which message key opens the body.
    pub counter: u64,
    /// The sender's per-group device key.
    pub device: VerifyingKey,
    /// The device's signature over the plaintext (see the module docs).
    pub signature: Signature,
}

fn statement(group_pk: &VerifyingKey, kind: LogKind, counter: u64, plaintext: &[u8]) -> Vec<u8> {
    [
        labels::SIG_MESSAGE,
        group_pk.as_bytes(),
        &[kind.as_byte()],
        &counter.to_be_bytes(),
        &Sha256::digest(plaintext),
    ]
    .concat()
}

fn header_ad(group_pk: &VerifyingKey, kind: LogKind) -> Vec<u8> {
    [
        labels::AD_MESSAGE_HEADER,
        group_pk.as_bytes(),
        &[kind.as_byte()],
    ]
    .concat()
}

fn body_ad(
    group_pk: &[u8; KEY_LEN],
    kind: LogKind,
    counter: u64,
    device: &[u8; KEY_LEN],
) -> Vec<u8> {
    [
        labels::AD_MESSAGE_BODY,
        group_pk,
        &[kind.as_byte()],
        &counter.to_be_bytes(),
        device,
    ]
    .concat()
}

/// Splits a sealed message into its sealed header and sealed body.
fn split(sealed: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let mut reader = Reader::new(sealed, "message");
    reader.version(VERSION)?;
    let header = reader.bytes(SEALED_HEADER_LEN)?;
    let body = reader.remaining();
    if body.len() < ENVELOPE_OVERHEAD {
        return Err(CryptoError::Malformed { what: "message" });
    }
    Ok((header, body))
}

/// Signs and seals one message of `device` with the key of `counter` from its sender chain.
pub fn seal_message<R: CryptoRng + RngCore>(
    keys: &GroupKeys,
    device: &SigningKey,
    kind: LogKind,
    counter: u64,
    message_key: &MessageKey,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let group_pk = keys.group_pk();
    let device_pk = device.verifying_key();
    let signature = device.sign(&statement(group_pk, kind, counter, plaintext));

    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&counter.to_be_bytes());
    header.extend_from_slice(device_pk.as_bytes());
    header.extend_from_slice(&signature.to_bytes());
    let sealed_header =
        envelope::seal(keys.header_key(), &header_ad(group_pk, kind), &header, rng)?;
    let sealed_body = envelope::seal(
        message_key.as_symmetric(),
        &body_ad(group_pk.as_bytes(), kind, counter, device_pk.as_bytes()),
        plaintext,
        rng,
    )?;

    let mut out = Vec::with_capacity(1 + sealed_header.len() + sealed_body.len());
    out.push(VERSION);
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&sealed_body);
    Ok(out)
}

/// Opens the header of a sealed message with the group keys alone.
pub fn open_header(
    keys: &GroupKeys,
    kind: LogKind,
    sealed: &[u8],
) -> Result<MessageHeader, CryptoError> {
    open_header_with(keys, kind, sealed, &mut ParsedKeys::default())
}

/// As [`open_header`], parsing the device key through `parsed`: for many headers of one batch.
pub fn open_header_with(
    keys: &GroupKeys,
    kind: LogKind,
    sealed: &[u8],
    parsed: &mut ParsedKeys,
) -> Result<MessageHeader, CryptoError> {
    let (sealed_header, _) = split(sealed)?;
    let header = envelope::open(
        keys.header_key(),
        &header_ad(keys.group_pk(), kind),
        sealed_header,
    )?;
    let mut reader = Reader::new(&header, "message header");
    let counter = reader.u64()?;
    let device = reader.public_key_with(parsed)?;
    let signature = reader.signature()?;
    reader.finish()?;
    Ok(MessageHeader {
        counter,
        device,
        signature,
    })
}

/// Opens the body of a sealed message with the key of `header.counter` and checks the author
/// device's signature over it.
pub fn open_body(
    keys: &GroupKeys,
    kind: LogKind,
    header: &MessageHeader,
    message_key: &MessageKey,
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (plaintext, check) = open_body_unverified(keys, kind, header, message_key, sealed)?;
    check.verify()?;
    Ok(plaintext)
}

/// Like [`open_body`], but hands back the author signature check instead of running it, so
/// many can be run together with [`super::verify_batch`]. Do not use the plaintext before the
/// check passed.
pub fn open_body_unverified(
    keys: &GroupKeys,
    kind: LogKind,
    header: &MessageHeader,
    message_key: &MessageKey,
    sealed: &[u8],
) -> Result<(Vec<u8>, SignatureCheck), CryptoError> {
    let (_, sealed_body) = split(sealed)?;
    let group_pk = keys.group_pk();
    let plaintext = envelope::open(
        message_key.as_symmetric(),
        &body_ad(
            group_pk.as_bytes(),
            kind,
            header.counter,
            header.device.as_bytes(),
        ),
        sealed_body,
    )?;
    let check = SignatureCheck::new(
        header.device,
        statement(group_pk, kind, header.counter, &plaintext),
        header.signature,
    );
    Ok((plaintext, check))
}

/// Opens the body of a sealed message whose header was opened and author signature checked
/// before (when it was stored): with the group key, the sender device's key, its counter and
/// the message key kept for it. The associated data still binds the body to all four.
pub fn open_stored_body(
    group_pk: &[u8; KEY_LEN],
    kind: LogKind,
    device_pk: &[u8; KEY_LEN],
    counter: u64,
    message_key: &MessageKey,
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let (_, sealed_body) = split(sealed)?;
    envelope::open(
        message_key.as_symmetric(),
        &body_ad(group_pk, kind, counter, device_pk),
        sealed_body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{verify_batch, GroupGenesis, SenderChain};
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn group() -> GroupKeys {
        let creator = SigningKey::generate(&mut OsRng).verifying_key();
        GroupGenesis::generate(&mut OsRng)
            .finish(&creator)
            .unwrap()
            .0
    }

    struct Sent {
        keys: GroupKeys,
        device: SigningKey,
        message_key: MessageKey,
        sealed: Vec<u8>,
    }

    fn send(plaintext: &[u8]) -> Sent {
        let keys = group();
        let device = SigningKey::generate(&mut OsRng);
        let mut chain = SenderChain::generate(*keys.group_pk(), &mut OsRng);
        let (counter, message_key) = chain.next_key().unwrap();
        let sealed = seal_message(
            &keys,
            &device,
            LogKind::Messages,
            counter,
            &message_key,
            plaintext,
            &mut OsRng,
        )
        .unwrap();
        Sent {
            keys,
            device,
            message_key,
            sealed,
        }
    }

    #[test]
    fn round_trip() {
        let s = send(b"hello group");
        assert_eq!(s.sealed.len(), b"hello group".len() + MESSAGE_OVERHEAD);
        let header = open_header(&s.keys, LogKind::Messages, &s.sealed).unwrap();
        assert_eq!(header.counter, 0);
        assert_eq!(header.device, s.device.verifying_key());
        let plaintext = open_body(
            &s.keys,
            LogKind::Messages,
            &header,
            &s.message_key,
            &s.sealed,
        )
        .unwrap();
        assert_eq!(plaintext, b"hello group");
        let (_, check) = open_body_unverified(
            &s.keys,
            LogKind::Messages,
            &header,
            &s.message_key,
            &s.sealed,
        )
        .unwrap();
        verify_batch(&[check]).unwrap();
    }

    #[test]
    fn a_stored_key_opens_the_body_only_with_its_own_group_device_and_counter() {
        let s = send(b"kept sealed");
        let (group_pk, device_pk) = (
            s.keys.group_pk().to_bytes(),
            s.device.verifying_key().to_bytes(),
        );
        let open = |group: &[u8; 32], device: &[u8; 32], counter: u64, kind: LogKind| {
            open_stored_body(group, kind, device, counter, &s.message_key, &s.sealed)
        };
        assert_eq!(
            open(&group_pk, &device_pk, 0, LogKind::Messages).unwrap(),
            b"kept sealed"
        );
        let failed = Err(CryptoError::DecryptionFailed);
        assert_eq!(open(&[7; 32], &device_pk, 0, LogKind::Messages), failed);
        assert_eq!(open(&group_pk, &[7; 32], 0, LogKind::Messages), failed);
        assert_eq!(open(&group_pk, &device_pk, 1, LogKind::Messages), failed);
        assert_eq!(open(&group_pk, &device_pk, 0, LogKind::Metadata), failed);
        let other_key = MessageKey::from_bytes([9; 32]);
        assert_eq!(
            open_stored_body(
                &group_pk,
                LogKind::Messages,
                &device_pk,
                0,
                &other_key,
                &s.sealed
            ),
            failed
        );
        assert!(open_stored_body(
            &group_pk,
            LogKind::Messages,
            &device_pk,
            0,
            &s.message_key,
            &[1]
        )
        .is_err());
    }

    #[test]
    fn empty_plaintext() {
        let s = send(b"");
        let header = open_header(&s.keys, LogKind::Messages, &s.sealed).unwrap();
        let plaintext = open_body(
            &s.keys,
            LogKind::Messages,
            &header,
            &s.message_key,
            &s.sealed,
        )
        .unwrap();
        assert!(plaintext.is_empty());
    }

    #[test]
    fn another_group_or_log_cannot_open_the_header() {
        let s = send(b"x");
        let failed = Err(CryptoError::DecryptionFailed);
        assert_eq!(open_header(&group(), LogKind::Messages, &s.sealed), failed);
        assert_eq!(open_header(&s.keys, LogKind::Metadata, &s.sealed), failed);
    }

    #[test]
    fn a_header_claiming_another_device_or_counter_fails() {
        let s = send(b"x");
        let header = open_header(&s.keys, LogKind::Messages, &s.sealed).unwrap();
        let failed = Err(CryptoError::DecryptionFailed);
        let other_device = MessageHeader {
            device: SigningKey::generate(&mut OsRng).verifying_key(),
            ..header.clone()
        };
        let open =
            |h: &MessageHeader| open_body(&s.keys, LogKind::Messages, h, &s.message_key, &s.sealed);
        assert_eq!(open(&other_device), failed);
        let other_counter = MessageHeader {
            counter: 1,
            ..header.clone()
        };
        assert_eq!(open(&other_counter), failed);
        let wrong_key = MessageKey::from_bytes([0; 32]);
        assert_eq!(
            open_body(&s.keys, LogKind::Messages, &header, &wrong_key, &s.sealed),
            failed
        );
    }

    #[test]
    fn a_member_cannot_post_as_another_device() {
        // A member knows the header key and the sender's message keys, so it can seal any
        // header and body; it cannot sign as the device. Replaying the device's signature
        // over another plaintext fails.
        let s = send(b"original");
        let header = open_header(&s.keys, LogKind::Messages, &s.sealed).unwrap();
        let group_pk = s.keys.group_pk();
        let mut header_bytes = header.counter.to_be_bytes().to_vec();
        header_bytes.extend_from_slice(header.device.as_bytes());
        header_bytes.extend_from_slice(&header.signature.to_bytes());
        let mut forged = vec![VERSION];
        forged.extend(
            envelope::seal(
                s.keys.header_key(),
                &header_ad(group_pk, LogKind::Messages),
                &header_bytes,
                &mut OsRng,
            )
            .unwrap(),
        );
        forged.extend(
            envelope::seal(
                s.message_key.as_symmetric(),
                &body_ad(
                    group_pk.as_bytes(),
                    LogKind::Messages,
                    header.counter,
                    header.device.as_bytes(),
                ),
                b"forged",
                &mut OsRng,
            )
            .unwrap(),
        );
        let forged_header = open_header(&s.keys, LogKind::Messages, &forged).unwrap();
        assert_eq!(forged_header, header);
        assert_eq!(
            open_body(
                &s.keys,
                LogKind::Messages,
                &forged_header,
                &s.message_key,
                &forged
            ),
            Err(CryptoError::BadSignature)
        );
        assert_eq!(
            open_body(
                &s.keys,
                LogKind::Messages,
                &header,
                &s.message_key,
                &s.sealed
            )
            .unwrap(),
            b"original"
        );
        assert_eq!(s.device.verifying_key(), header.device);
    }

    #[test]
    fn trailing_or_missing_bytes_fail() {
        let s = send(b"abc");
        let header = open_header(&s.keys, LogKind::Messages, &s.sealed).unwrap();
        let mut long = s.sealed.clone();
        long.push(0);
        assert!(open_body(&s.keys, LogKind::Messages, &header, &s.message_key, &long).is_err());
        let short = &s.sealed[..s.sealed.len() - 1];
        assert!(open_body(&s.keys, LogKind::Messages, &header, &s.message_key, short).is_err());
        assert!(open_header(
            &s.keys,
            LogKind::Messages,
            &s.sealed[..MESSAGE_OVERHEAD - 1]
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn header_decoder_never_panics_on_well_sealed_garbage(
            header in proptest::collection::vec(any::<u8>(), 0..200),
            body in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            // Right key and associated data, arbitrary header layout.
            let keys = group();
            let mut sealed = vec![VERSION];
            sealed.extend(
                envelope::seal(
                    keys.header_key(),
                    &header_ad(keys.group_pk(), LogKind::Messages),
                    &header,
                    &mut OsRng,
                )
                .unwrap(),
            );
            sealed.extend(body);
            let _ = open_header(&keys, LogKind::Messages, &sealed);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let keys = group();
            let _ = open_header(&keys, LogKind::Messages, &bytes);
            let header = MessageHeader {
                counter: 0,
                device: SigningKey::from_bytes(&[1; 32]).verifying_key(),
                signature: Signature::from_bytes(&[0; 64]),
            };
            let key = MessageKey::from_bytes([0; 32]);
            let _ = open_body(&keys, LogKind::Messages, &header, &key, &bytes);
        }
    }
}
