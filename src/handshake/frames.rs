//! The six frames of `/berty/contact_req/1.0.0`: layouts, encoders and parsers (pure). Each
//! parser refuses a short, long or out-of-range frame with one [`FrameError`] per defect and
//! never panics.
//!
//! | frame | direction | body (bytes) | layout |
//! |---|---|---|---|
//! | F1 | R to S | 33 | version `0x01` (1) \|\| `e_i` (32) |
//! | F2 | S to R | 33 | version `0x01` (1) \|\| `e_r` (32) |
//! | F3 | R to S | 112 | sealed: `A_i` (32) \|\| signature (64) |
//! | F4 | S to R | 80 | sealed: signature (64) |
//! | F5 | R to S | 113 to 1,137 | sealed: [`ContactPayload`] (97 + meta) |
//! | F6 | S to R | 17 | sealed: `0x01` (1) |
//!
//! A sealed body is the ChaCha20-Poly1305 ciphertext of the plaintext shown, then its 16-byte
//! tag ([`crate::crypto::HandshakeChannel`]). The parsers here read plaintexts; opening is the
//! state machine's job.

use std::fmt;

use crate::{
    crypto::{
        parse_public_key, RendezvousSeed, Signature, VerifyingKey, HANDSHAKE_EPHEMERAL_LEN,
        HANDSHAKE_TAG_LEN, KEY_LEN, SIGNATURE_LEN,
    },
    defaults::MAX_META,
};
use zeroize::Zeroizing;

/// The protocol version, first byte of F1 and F2.
pub const VERSION: u8 = 1;
/// Largest frame body read or written (the length prefix excluded).
pub const MAX_FRAME_LEN: usize = 2048;
/// Length of F1 and F2.
pub const HELLO_LEN: usize = 1 + HANDSHAKE_EPHEMERAL_LEN;
/// Length of F3's plaintext: the requester's account key and its signature.
pub const REQUESTER_PROOF_LEN: usize = KEY_LEN + SIGNATURE_LEN;
/// Length of F4's plaintext: the responder's signature.
pub const RESPONDER_PROOF_LEN: usize = SIGNATURE_LEN;
/// Length of F5's plaintext without `meta`: account key, seed flag, seed, reference seed.
pub const CONTACT_FIXED_LEN: usize = KEY_LEN + 1 + KEY_LEN + KEY_LEN;
/// Length of F5's plaintext with the largest `meta`.
pub const CONTACT_MAX_LEN: usize = CONTACT_FIXED_LEN + MAX_META;
/// F6's plaintext, its only byte.
pub const ACK: u8 = 0x01;

/// The largest frame fits under the cap.
const _: () = assert!(CONTACT_MAX_LEN + HANDSHAKE_TAG_LEN <= MAX_FRAME_LEN);

/// F5's seed flag: the requester sends no rendezvous seed of its own.
const NO_SEED: u8 = 0;
/// F5's seed flag: the requester's rendezvous seed follows.
const WITH_SEED: u8 = 1;

/// The frames, in the order they are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frame {
    /// F1, requester to responder: version, requester's ephemeral key.
    RequesterHello,
    /// F2, responder to requester: version, responder's ephemeral key.
    ResponderHello,
    /// F3, requester to responder, sealed: the requester's account key and proof.
    RequesterProof,
    /// F4, responder to requester, sealed: the responder's proof.
    ResponderProof,
    /// F5, requester to responder, sealed: the contact.
    Contact,
    /// F6, responder to requester, sealed: the acknowledgement.
    Ack,
}

impl Frame {
    /// Its number, 1 to 6.
    pub fn number(self) -> u8 {
        match self {
            Self::RequesterHello => 1,
            Self::ResponderHello => 2,
            Self::RequesterProof => 3,
            Self::ResponderProof => 4,
            Self::Contact => 5,
            Self::Ack => 6,
        }
    }

    /// The frame sent in answer to this one (`None` after F6).
    pub fn answer(self) -> Option<Frame> {
        match self {
            Self::RequesterHello => Some(Self::ResponderHello),
            Self::ResponderHello => Some(Self::RequesterProof),
            Self::RequesterProof => Some(Self::ResponderProof),
            Self::ResponderProof => Some(Self::Contact),
            Self::Contact => Some(Self::Ack),
            Self::Ack => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::RequesterHello => "requester hello",
            Self::ResponderHello => "responder hello",
            Self::RequesterProof => "requester proof",
            Self::ResponderProof => "responder proof",
            Self::Contact => "contact",
            Self::Ack => "acknowledgement",
        }
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "F{} ({})", self.number(), self.name())
    }
}

/// A frame (or a sealed frame's plaintext) that does not follow its layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame has no bytes at all.
    #[error("{frame} is empty")]
    Empty {
        /// Which frame.
        frame: Frame,
    },
    /// F1 or F2 starts with a version this node does not speak.
    #[error("{frame} has version {version}, this node speaks version {VERSION}")]
    BadVersion {
        /// Which frame.
        frame: Frame,
        /// The version byte found.
        version: u8,
    },
    /// A fixed-length frame or plaintext has another length.
    #[error("{frame} has {actual} bytes, expected {expected}")]
    Length {
        /// Which frame.
        frame: Frame,
        /// Its fixed length.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// F3 carries bytes that are not a valid (canonical, not weak) Ed25519 public key.
    #[error("{} carries an invalid account key", Frame::RequesterProof)]
    InvalidAccountKey,
    /// F5 is shorter than its fixed part.
    #[error(
        "{} has {actual} bytes, at least {CONTACT_FIXED_LEN} expected",
        Frame::Contact
    )]
    ContactTooShort {
        /// The plaintext length received.
        actual: usize,
    },
    /// F5's `meta` is over [`MAX_META`].
    #[error(
        "{} carries {len} bytes of meta, over the cap of {MAX_META}",
        Frame::Contact
    )]
    MetaTooLarge {
        /// The length of `meta`.
        len: usize,
    },
    /// F5's seed flag is neither 0 nor 1.
    #[error("{} has seed flag {flag}, expected 0 (no seed) or 1", Frame::Contact)]
    BadSeedFlag {
        /// The flag byte found.
        flag: u8,
    },
    /// F5 says the requester sends no seed, but the seed field is not all zero.
    #[error(
        "{} has no rendezvous seed, yet its seed field is not zero",
        Frame::Contact
    )]
    AbsentSeedNotZero,
    /// F6's byte is not [`ACK`].
    #[error("{} is {byte:#04x}, expected {ACK:#04x}", Frame::Ack)]
    BadAck {
        /// The byte found.
        byte: u8,
    },
}

/// F1 or F2: the version, then the sender's ephemeral key.
pub fn encode_hello(ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HELLO_LEN);
    out.push(VERSION);
    out.extend_from_slice(ephemeral);
    out
}

/// Parses F1 or F2 (`frame` names which): the version first (a later version may change the
/// length), then the length.
pub fn parse_hello(
    frame: Frame,
    bytes: &[u8],
) -> Result<[u8; HANDSHAKE_EPHEMERAL_LEN], FrameError> {
    let (&version, ephemeral) = bytes.split_first().ok_or(FrameError::Empty { frame })?;
    if version != VERSION {
        return Err(FrameError::BadVersion { frame, version });
    }
    ephemeral.try_into().map_err(|_| FrameError::Length {
        frame,
        expected: HELLO_LEN,
        actual: bytes.len(),
    })
}

/// F3's plaintext: the requester's account key and its signature of the transcript hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequesterProof {
    /// `A_i`.
    pub account_pk: VerifyingKey,
    /// `A_i`'s signature of `SIG_CONTACT_HANDSHAKE_REQUESTER || TH`.
    pub signature: Signature,
}

impl RequesterProof {
    /// `A_i` (32) || signature (64).
    pub fn encode(&self) -> Vec<u8> {
        [
            self.account_pk.as_bytes().as_slice(),
            &self.signature.to_bytes(),
        ]
        .concat()
    }

    /// Parses F3's plaintext.
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        let bytes: &[u8; REQUESTER_PROOF_LEN] =
            bytes.try_into().map_err(|_| FrameError::Length {
                frame: Frame::RequesterProof,
                expected: REQUESTER_PROOF_LEN,
                actual: bytes.len(),
            })?;
        let (key, signature) = bytes.split_at(KEY_LEN);
        let account_pk = parse_public_key(key).map_err(|_| FrameError::InvalidAccountKey)?;
        let signature = signature_of(Frame::RequesterProof, signature)?;
        Ok(Self {
            account_pk,
            signature,
        })
    }
}

/// F4's plaintext: the responder's signature of the transcript hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponderProof {
    /// `A_r`'s signature of `SIG_CONTACT_HANDSHAKE_RESPONDER || TH`.
    pub signature: Signature,
}

impl ResponderProof {
    /// The signature (64).
    pub fn encode(&self) -> Vec<u8> {
        self.signature.to_bytes().to_vec()
    }

    /// Parses F4's plaintext.
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        Ok(Self {
            signature: signature_of(Frame::ResponderProof, bytes)?,
        })
    }
}

fn signature_of(frame: Frame, bytes: &[u8]) -> Result<Signature, FrameError> {
    let bytes: &[u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| FrameError::Length {
        frame,
        expected: SIGNATURE_LEN,
        actual: bytes.len(),
    })?;
    Ok(Signature::from_bytes(bytes))
}

/// F5's plaintext, the contact:
///
/// ```text
/// offset  length  field
///   0       32    account_pk: the requester's account key (must be the key proven in F3)
///  32        1    seed flag: 0x00 no own rendezvous seed, 0x01 one follows
///  33       32    the requester's own rendezvous seed (all zero when the flag is 0x00)
///  65       32    reference_seed: the responder's seed, from the reference the requester holds
///  97   0..=1024  meta (to the end)
/// ```
#[derive(Debug, Clone)]
pub struct ContactPayload {
    /// The requester's account key as sent; the responder compares it with the proven key.
    pub account_pk: [u8; KEY_LEN],
    /// The requester's own rendezvous seed, if it sends one.
    pub rendezvous_seed: Option<RendezvousSeed>,
    /// The responder's rendezvous seed from the contact reference the requester used.
    pub reference_seed: RendezvousSeed,
    /// Free bytes for the responder's application, at most [`MAX_META`].
    pub meta: Vec<u8>,
}

impl ContactPayload {
    /// The plaintext (zeroized on drop: it carries seeds); [`FrameError::MetaTooLarge`] when
    /// `meta` is over [`MAX_META`].
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrameError> {
        if self.meta.len() > MAX_META {
            return Err(FrameError::MetaTooLarge {
                len: self.meta.len(),
            });
        }
        let mut out = Zeroizing::new(Vec::with_capacity(CONTACT_FIXED_LEN + self.meta.len()));
        out.extend_from_slice(&self.account_pk);
        match &self.rendezvous_seed {
            Some(seed) => {
                out.push(WITH_SEED);
                out.extend_from_slice(seed.as_bytes());
            }
            None => {
                out.push(NO_SEED);
                out.extend_from_slice(&[0; KEY_LEN]);
            }
        }
        out.extend_from_slice(self.reference_seed.as_bytes());
        out.extend_from_slice(&self.meta);
        Ok(out)
    }

    /// Parses F5's plaintext.
    pub fn parse(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() < CONTACT_FIXED_LEN {
            return Err(FrameError::ContactTooShort {
                actual: bytes.len(),
            });
        }
        let (fixed, meta) = bytes.split_at(CONTACT_FIXED_LEN);
        if meta.len() > MAX_META {
            return Err(FrameError::MetaTooLarge { len: meta.len() });
        }
        let (account_pk, rest) = fixed.split_at(KEY_LEN);
        let (&flag, rest) = rest
            .split_first()
            .ok_or(FrameError::ContactTooShort { actual: 0 })?;
        let (seed, reference_seed) = rest.split_at(KEY_LEN);
        let rendezvous_seed = match flag {
            WITH_SEED => Some(seed_of(seed)?),
            NO_SEED if seed.iter().all(|&b| b == 0) => None,
            NO_SEED => return Err(FrameError::AbsentSeedNotZero),
            flag => return Err(FrameError::BadSeedFlag { flag }),
        };
        Ok(Self {
            account_pk: account_pk
                .try_into()
                .map_err(|_| FrameError::ContactTooShort { actual: 0 })?,
            rendezvous_seed,
            reference_seed: seed_of(reference_seed)?,
            meta: meta.to_vec(),
        })
    }
}

/// A 32-byte seed from a slice split at a fixed offset (always 32 bytes long there).
fn seed_of(bytes: &[u8]) -> Result<RendezvousSeed, FrameError> {
    RendezvousSeed::from_slice(bytes).map_err(|_| FrameError::ContactTooShort {
        actual: bytes.len(),
    })
}

/// F6's plaintext.
pub fn encode_ack() -> [u8; 1] {
    [ACK]
}

/// Parses F6's plaintext.
pub fn parse_ack(bytes: &[u8]) -> Result<(), FrameError> {
    match bytes {
        [ACK] => Ok(()),
        [byte] => Err(FrameError::BadAck { byte: *byte }),
        _ => Err(FrameError::Length {
            frame: Frame::Ack,
            expected: 1,
            actual: bytes.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn contact(seed: bool, meta: usize) -> ContactPayload {
        ContactPayload {
            account_pk: [7; 32],
            rendezvous_seed: seed.then(|| RendezvousSeed::from_bytes([8; 32])),
            reference_seed: RendezvousSeed::from_bytes([9; 32]),
            meta: vec![10; meta],
        }
    }

    #[test]
    fn hellos_round_trip_and_refuse_defects() {
        let hello = encode_hello(&[5; 32]);
        assert_eq!(hello.len(), HELLO_LEN);
        assert_eq!(hello[0], 0x01);
        let f = Frame::RequesterHello;
        assert_eq!(parse_hello(f, &hello).unwrap(), [5; 32]);
        assert_eq!(parse_hello(f, &[]), Err(FrameError::Empty { frame: f }));
        let mut v2 = hello.clone();
        v2[0] = 2;
        assert_eq!(
            parse_hello(f, &v2),
            Err(FrameError::BadVersion {
                frame: f,
                version: 2
            })
        );
        // The version is checked first, whatever the length.
        assert!(matches!(
            parse_hello(f, &[2]),
            Err(FrameError::BadVersion { .. })
        ));
        for len in [1, 32, 34] {
            let mut bytes = vec![1; len];
            bytes[0] = VERSION;
            assert_eq!(
                parse_hello(f, &bytes),
                Err(FrameError::Length {
                    frame: f,
                    expected: 33,
                    actual: len
                })
            );
        }
    }

    #[test]
    fn proofs_round_trip_and_refuse_defects() {
        let key = SigningKey::generate(&mut OsRng);
        let signature = Signature::from_bytes(&[3; 64]);
        let proof = RequesterProof {
            account_pk: key.verifying_key(),
            signature,
        };
        let bytes = proof.encode();
        assert_eq!(bytes.len(), REQUESTER_PROOF_LEN);
        assert_eq!(RequesterProof::parse(&bytes).unwrap(), proof);
        assert!(matches!(
            RequesterProof::parse(&bytes[1..]),
            Err(FrameError::Length {
                expected: 96,
                actual: 95,
                ..
            })
        ));
        // The identity point is a weak key.
        let mut weak = bytes.clone();
        weak[..32].copy_from_slice(&[0; 32]);
        weak[0] = 1;
        assert_eq!(
            RequesterProof::parse(&weak),
            Err(FrameError::InvalidAccountKey)
        );

        let proof = ResponderProof { signature };
        assert_eq!(ResponderProof::parse(&proof.encode()).unwrap(), proof);
        assert!(matches!(
            ResponderProof::parse(&[0; 65]),
            Err(FrameError::Length { expected: 64, .. })
        ));
    }

    #[test]
    fn contacts_round_trip_with_and_without_seed() {
        for (seed, meta) in [(true, 0), (false, 0), (true, MAX_META), (false, 17)] {
            let original = contact(seed, meta);
            let bytes = original.encode().unwrap();
            assert_eq!(bytes.len(), CONTACT_FIXED_LEN + meta);
            assert_eq!(bytes[32], u8::from(seed));
            let back = ContactPayload::parse(&bytes).unwrap();
            assert_eq!(back.account_pk, original.account_pk);
            assert_eq!(
                back.rendezvous_seed.map(|s| *s.as_bytes()),
                original.rendezvous_seed.map(|s| *s.as_bytes())
            );
            assert_eq!(back.reference_seed.as_bytes(), &[9; 32]);
            assert_eq!(back.meta, original.meta);
        }
    }

    #[test]
    fn contact_defects_are_named() {
        assert_eq!(
            contact(true, MAX_META + 1).encode().unwrap_err(),
            FrameError::MetaTooLarge { len: MAX_META + 1 }
        );
        let mut long = contact(true, MAX_META).encode().unwrap().to_vec();
        long.push(0);
        assert!(matches!(
            ContactPayload::parse(&long),
            Err(FrameError::MetaTooLarge { len: 1025 })
        ));
        assert!(matches!(
            ContactPayload::parse(&[0; 96]),
            Err(FrameError::ContactTooShort { actual: 96 })
        ));
        let mut flag = contact(true, 0).encode().unwrap().to_vec();
        flag[32] = 2;
        assert!(matches!(
            ContactPayload::parse(&flag),
            Err(FrameError::BadSeedFlag { flag: 2 })
        ));
        flag[32] = 0;
        assert!(matches!(
            ContactPayload::parse(&flag),
            Err(FrameError::AbsentSeedNotZero)
        ));
    }

    #[test]
    fn acks_are_one_byte() {
        assert_eq!(parse_ack(&encode_ack()), Ok(()));
        assert_eq!(parse_ack(&[2]), Err(FrameError::BadAck { byte: 2 }));
        assert!(matches!(
            parse_ack(&[1, 1]),
            Err(FrameError::Length { actual: 2, .. })
        ));
        assert!(matches!(
            parse_ack(&[]),
            Err(FrameError::Length { actual: 0, .. })
        ));
    }

    #[test]
    fn errors_name_the_frame() {
        let err = FrameError::BadVersion {
            frame: Frame::ResponderHello,
            version: 7,
        };
        assert_eq!(
            err.to_string(),
            "F2 (responder hello) has version 7, this node speaks version 1"
        );
        assert_eq!(
            FrameError::BadAck { byte: 0 }.to_string(),
            "F6 (acknowledgement) is 0x00, expected 0x01"
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = parse_hello(Frame::RequesterHello, &bytes);
            let _ = RequesterProof::parse(&bytes);
            let _ = ResponderProof::parse(&bytes);
            let _ = ContactPayload::parse(&bytes);
            let _ = parse_ack(&bytes);
        }
    }
}
