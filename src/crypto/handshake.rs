//! The contact handshake's cryptography (pure): ephemeral keys, the channel keys, sealed
//! frames, the transcript hash and the two account proofs. Frames, states and the stream are in
//! `crate::handshake`; `docs/protocol.md` has the whole protocol byte by byte.
//!
//! Names: `e_i`/`e_r` the requester's/responder's ephemeral X25519 public keys, `A_i`/`A_r`
//! their Ed25519 account public keys, `s_r` the responder's account key converted to X25519 by
//! the standard conversion (secret: [`SigningKey::to_scalar_bytes`]; public:
//! [`VerifyingKey::to_montgomery`]).
//!
//! **Channel keys.** Two exchanges, each of which must be contributory (not all zero):
//! `dh1 = X25519(e_i, e_r)` and `dh2 = X25519(e_i, s_r)`. Then
//! `HKDF-SHA256(salt = none, ikm = dh1 || dh2, info = KDF_CONTACT_HANDSHAKE || e_i || e_r ||
//! A_r)`, 64 bytes: the requester-to-responder key, then the responder-to-requester key. Only
//! the holder of `A_r`'s secret key (besides the requester) can compute them, so a wrong
//! responder cannot open the requester's first sealed frame; both ephemeral keys are fresh, so
//! no frame of one session opens in another.
//!
//! **Sealed frames.** ChaCha20-Poly1305 under the direction's key, associated data
//! [`labels::AD_CONTACT_HANDSHAKE`], nonce = 4 zero bytes || the direction's frame counter as a
//! big-endian `u64` (0 for its first sealed frame, then 1, ...). The receiver expects the next
//! counter, so a frame replayed, dropped or reordered within the session does not open.
//!
//! **Transcript hash.** `TH = SHA-256(HASH_CONTACT_HANDSHAKE || e_i || e_r || A_r || A_i)`.
//! The requester signs `SIG_CONTACT_HANDSHAKE_REQUESTER || TH` with its account key, the
//! responder `SIG_CONTACT_HANDSHAKE_RESPONDER || TH` with its own: each proof binds both fresh
//! ephemeral keys and both identities, and the distinct labels keep one side's signature from
//! being reflected as the other's. Nothing secret is ever signed.

use std::fmt;

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Nonce,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use super::{kdf::hkdf_sha256, keys::KEY_LEN, labels, CryptoError};
use crate::log::Entry;

/// Length of an ephemeral X25519 public key.
pub const HANDSHAKE_EPHEMERAL_LEN: usize = 32;
/// Bytes a sealed handshake frame adds to its plaintext (the Poly1305 tag).
pub const HANDSHAKE_TAG_LEN: usize = 16;
/// Length of the transcript hash.
pub const TRANSCRIPT_HASH_LEN: usize = 32;

/// Which side of the handshake: selects the signature label and the channel directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRole {
    /// The side that knows the other's account key and asks to become its contact.
    Requester,
    /// The side that holds the account key the requester targets.
    Responder,
}

impl HandshakeRole {
    fn signature_label(self) -> &'static [u8] {
        match self {
            Self::Requester => labels::SIG_CONTACT_HANDSHAKE_REQUESTER,
            Self::Responder => labels::SIG_CONTACT_HANDSHAKE_RESPONDER,
        }
    }
}

/// One side's ephemeral X25519 key for one handshake. The secret is zeroized on drop and
/// consumed when the channel is derived.
pub struct HandshakeEphemeral {
    secret: StaticSecret,
    public: PublicKey,
}

impl HandshakeEphemeral {
    /// A fresh random key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self::from_secret(StaticSecret::random_from_rng(rng))
    }

    fn from_secret(secret: StaticSecret) -> Self {
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// A key from fixed secret bytes (known-answer tests only).
    #[cfg(test)]
    pub(crate) fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self::from_secret(StaticSecret::from(bytes))
    }

    /// The public key, as sent on the wire.
    pub fn public_bytes(&self) -> [u8; HANDSHAKE_EPHEMERAL_LEN] {
        self.public.to_bytes()
    }
}

impl fmt::Debug for HandshakeEphemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HandshakeEphemeral({})",
            hex::encode(self.public.as_bytes())
        )
    }
}

/// The channel of one handshake, seen from one side: a key and a frame counter per direction.
/// The keys are zeroized on drop.
pub struct HandshakeChannel {
    send: ChaCha20Poly1305,
    receive: ChaCha20Poly1305,
    sent: u64,
    received: u64,
}

impl fmt::Debug for HandshakeChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeChannel")
            .field("sent", &self.sent)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl HandshakeChannel {
    /// The requester's channel: its own `ephemeral` (consumed), the responder's ephemeral
    /// public key and the account key it targets.
    ///
    /// [`CryptoError::InvalidKey`] when either exchange is not contributory (a low-order
    /// ephemeral key) or the target is a weak key.
    pub fn for_requester(
        ephemeral: HandshakeEphemeral,
        responder_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
        responder: &VerifyingKey,
    ) -> Result<Self, CryptoError> {
        if responder.is_weak() {
            return Err(CryptoError::InvalidKey);
        }
        let e_r = PublicKey::from(*responder_ephemeral);
        let s_r = PublicKey::from(responder.to_montgomery().to_bytes());
        let dh1 = ephemeral.secret.diffie_hellman(&e_r);
        let dh2 = ephemeral.secret.diffie_hellman(&s_r);
        let (to_responder, to_requester) = channel_keys(
            &dh1,
            &dh2,
            ephemeral.public.as_bytes(),
            responder_ephemeral,
            responder,
        )?;
        Ok(Self::new(to_responder, to_requester))
    }

    /// The responder's channel: its account key, its own `ephemeral` (consumed) and the
    /// requester's ephemeral public key.
    ///
    /// [`CryptoError::InvalidKey`] when either exchange is not contributory.
    pub fn for_responder(
        own: &SigningKey,
        ephemeral: HandshakeEphemeral,
        requester_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
    ) -> Result<Self, CryptoError> {
        let e_i = PublicKey::from(*requester_ephemeral);
        let s_r = StaticSecret::from(*Zeroizing::new(own.to_scalar_bytes()));
        let dh1 = ephemeral.secret.diffie_hellman(&e_i);
        let dh2 = s_r.diffie_hellman(&e_i);
        let (to_responder, to_requester) = channel_keys(
            &dh1,
            &dh2,
            requester_ephemeral,
            ephemeral.public.as_bytes(),
            &own.verifying_key(),
        )?;
        Ok(Self::new(to_requester, to_responder))
    }

    fn new(send: DirectionKey, receive: DirectionKey) -> Self {
        Self {
            send: ChaCha20Poly1305::new(send.as_ref().into()),
            receive: ChaCha20Poly1305::new(receive.as_ref().into()),
            sent: 0,
            received: 0,
        }
    }

    /// Seals the next frame of our direction: ciphertext || tag
    /// ([`HANDSHAKE_TAG_LEN`] bytes longer than `plaintext`).
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let next = self
            .sent
            .checked_add(1)
            .ok_or(CryptoError::CounterExhausted)?;
        let sealed = self
            .send
            .encrypt(
                &nonce(self.sent),
                Payload {
                    msg: plaintext,
                    aad: labels::AD_CONTACT_HANDSHAKE,
                },
            )
            .map_err(|_| CryptoError::EncryptionFailed)?;
        self.sent = next;
        Ok(sealed)
    }

    /// Opens the next frame of the peer's direction; [`CryptoError::DecryptionFailed`] for a
    /// frame sealed under another key (another session, a wrong responder), for another
    /// counter (replayed or reordered), or altered. The counter advances only on success.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let next = self
            .received
            .checked_add(1)
            .ok_or(CryptoError::CounterExhausted)?;
        let plaintext = self
            .receive
            .decrypt(
                &nonce(self.received),
                Payload {
                    msg: sealed,
                    aad: labels::AD_CONTACT_HANDSHAKE,
                },
            )
            .map_err(|_| CryptoError::DecryptionFailed)?;
        self.received = next;
        Ok(Zeroizing::new(plaintext))
    }
}

/// The nonce of a direction's frame `counter`: 4 zero bytes, then the counter big-endian.
fn nonce(counter: u64) -> Nonce {
    let mut nonce = Nonce::default();
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// One direction's key.
type DirectionKey = Zeroizing<[u8; KEY_LEN]>;

/// Both direction keys (requester to responder, responder to requester) from the two
/// exchanges, bound to both ephemeral keys and the responder's account key.
fn channel_keys(
    dh1: &SharedSecret,
    dh2: &SharedSecret,
    requester_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
    responder_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
    responder: &VerifyingKey,
) -> Result<(DirectionKey, DirectionKey), CryptoError> {
    if !dh1.was_contributory() || !dh2.was_contributory() {
        return Err(CryptoError::InvalidKey);
    }
    let mut ikm = Zeroizing::new([0u8; 2 * KEY_LEN]);
    ikm[..KEY_LEN].copy_from_slice(dh1.as_bytes());
    ikm[KEY_LEN..].copy_from_slice(dh2.as_bytes());
    let okm = hkdf_sha256::<{ 2 * KEY_LEN }>(
        ikm.as_ref(),
        &[
            labels::KDF_CONTACT_HANDSHAKE,
            requester_ephemeral,
            responder_ephemeral,
            responder.as_bytes(),
        ],
    )?;
    let mut to_responder = Zeroizing::new([0u8; KEY_LEN]);
    let mut to_requester = Zeroizing::new([0u8; KEY_LEN]);
    to_responder.copy_from_slice(&okm[..KEY_LEN]);
    to_requester.copy_from_slice(&okm[KEY_LEN..]);
    Ok((to_responder, to_requester))
}

/// The transcript hash both sides sign: every public value of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscriptHash([u8; TRANSCRIPT_HASH_LEN]);

impl TranscriptHash {
    /// `SHA-256(HASH_CONTACT_HANDSHAKE || e_i || e_r || A_r || A_i)`.
    pub fn new(
        requester_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
        responder_ephemeral: &[u8; HANDSHAKE_EPHEMERAL_LEN],
        responder: &VerifyingKey,
        requester: &VerifyingKey,
    ) -> Self {
        let mut hash = Sha256::new();
        hash.update(labels::HASH_CONTACT_HANDSHAKE);
        hash.update(requester_ephemeral);
        hash.update(responder_ephemeral);
        hash.update(responder.as_bytes());
        hash.update(requester.as_bytes());
        Self(hash.finalize().into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; TRANSCRIPT_HASH_LEN] {
        &self.0
    }

    fn statement(&self, role: HandshakeRole) -> Vec<u8> {
        [role.signature_label(), &self.0].concat()
    }

    /// `role`'s proof: `own` signs the role's label || the hash.
    pub fn sign(&self, own: &SigningKey, role: HandshakeRole) -> Signature {
        own.sign(&self.statement(role))
    }

    /// Checks `role`'s proof by `signer` ([`CryptoError::BadSignature`] otherwise), with the
    /// crate's one Ed25519 rule (the one log entries are checked with).
    pub fn verify(
        &self,
        signer: &VerifyingKey,
        role: HandshakeRole,
        signature: &Signature,
    ) -> Result<(), CryptoError> {
        if Entry::check_ed25519(signer, &self.statement(role), signature) {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    struct Session {
        requester: HandshakeChannel,
        responder: HandshakeChannel,
    }

    fn session(responder_key: &SigningKey, target: &VerifyingKey) -> Session {
        let e_i = HandshakeEphemeral::generate(&mut OsRng);
        let e_r = HandshakeEphemeral::generate(&mut OsRng);
        let (e_i_pk, e_r_pk) = (e_i.public_bytes(), e_r.public_bytes());
        Session {
            requester: HandshakeChannel::for_requester(e_i, &e_r_pk, target).unwrap(),
            responder: HandshakeChannel::for_responder(responder_key, e_r, &e_i_pk).unwrap(),
        }
    }

    #[test]
    fn both_sides_share_both_directions() {
        let responder = SigningKey::generate(&mut OsRng);
        let mut s = session(&responder, &responder.verifying_key());
        for i in 0..3u8 {
            let sealed = s.requester.seal(&[i; 5]).unwrap();
            assert_eq!(sealed.len(), 5 + HANDSHAKE_TAG_LEN);
            assert_eq!(&s.responder.open(&sealed).unwrap()[..], &[i; 5]);
            let sealed = s.responder.seal(&[i + 10; 3]).unwrap();
            assert_eq!(&s.requester.open(&sealed).unwrap()[..], &[i + 10; 3]);
        }
    }

    #[test]
    fn directions_do_not_mix() {
        let responder = SigningKey::generate(&mut OsRng);
        let mut s = session(&responder, &responder.verifying_key());
        let sealed = s.requester.seal(b"hello").unwrap();
        // Reflected back to its sender: the sender's receive key is the other direction's.
        assert_eq!(
            s.requester.open(&sealed).unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }

    #[test]
    fn a_wrong_responder_cannot_open() {
        let holder = SigningKey::generate(&mut OsRng);
        let target = SigningKey::generate(&mut OsRng).verifying_key();
        let mut s = session(&holder, &target);
        let sealed = s.requester.seal(b"secret").unwrap();
        assert_eq!(
            s.responder.open(&sealed).unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }

    #[test]
    fn an_impostor_knowing_the_target_public_key_cannot_open() {
        // The impostor answers with its own ephemeral key, so it knows dh1, and names the
        // target's public key in the derivation; the best it can do for dh2 is an exchange
        // with its own key.
        let target = SigningKey::generate(&mut OsRng);
        let impostor = SigningKey::generate(&mut OsRng);
        let e_i = HandshakeEphemeral::generate(&mut OsRng);
        let e_r = HandshakeEphemeral::generate(&mut OsRng);
        let (e_i_pk, e_r_pk) = (e_i.public_bytes(), e_r.public_bytes());
        let mut requester =
            HandshakeChannel::for_requester(e_i, &e_r_pk, &target.verifying_key()).unwrap();
        let sealed = requester.seal(b"proof").unwrap();
        let e_i_pub = PublicKey::from(e_i_pk);
        let dh1 = e_r.secret.diffie_hellman(&e_i_pub);
        let own = StaticSecret::from(impostor.to_scalar_bytes());
        let dh2 = own.diffie_hellman(&e_i_pub);
        let (to_responder, to_requester) =
            channel_keys(&dh1, &dh2, &e_i_pk, &e_r_pk, &target.verifying_key()).unwrap();
        let mut forged = HandshakeChannel::new(to_requester, to_responder);
        assert_eq!(
            forged.open(&sealed).unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }

    #[test]
    fn replayed_reordered_and_foreign_frames_do_not_open() {
        let responder = SigningKey::generate(&mut OsRng);
        let mut s = session(&responder, &responder.verifying_key());
        let first = s.requester.seal(b"one").unwrap();
        let second = s.requester.seal(b"two").unwrap();
        // Out of order: the second frame under the first counter.
        assert!(s.responder.open(&second).is_err());
        assert_eq!(&s.responder.open(&first).unwrap()[..], b"one");
        // Replayed: the first frame under the second counter.
        assert!(s.responder.open(&first).is_err());
        assert_eq!(&s.responder.open(&second).unwrap()[..], b"two");
        // Another session's first frame.
        let mut other = session(&responder, &responder.verifying_key());
        let foreign = other.requester.seal(b"one").unwrap();
        let mut fresh = session(&responder, &responder.verifying_key());
        assert!(fresh.responder.open(&foreign).is_err());
        // A flipped bit, a short frame.
        let mut tampered = fresh.requester.seal(b"one").unwrap();
        tampered[0] ^= 1;
        assert!(fresh.responder.open(&tampered).is_err());
        assert!(fresh.responder.open(&[0; 15]).is_err());
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let responder = SigningKey::generate(&mut OsRng);
        // 0 and 1 are points of small order on Curve25519: the exchange gives all zeros.
        let mut one = [0u8; 32];
        one[0] = 1;
        for low in [[0u8; 32], one] {
            let e = HandshakeEphemeral::generate(&mut OsRng);
            let err = HandshakeChannel::for_requester(e, &low, &responder.verifying_key());
            assert_eq!(err.unwrap_err(), CryptoError::InvalidKey);
            let e = HandshakeEphemeral::generate(&mut OsRng);
            let err = HandshakeChannel::for_responder(&responder, e, &low);
            assert_eq!(err.unwrap_err(), CryptoError::InvalidKey);
        }
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let e = HandshakeEphemeral::generate(&mut OsRng);
        let e_r = HandshakeEphemeral::generate(&mut OsRng).public_bytes();
        assert_eq!(
            HandshakeChannel::for_requester(e, &e_r, &weak).unwrap_err(),
            CryptoError::InvalidKey
        );
    }

    #[test]
    fn proofs_bind_every_value_and_the_role() {
        let a_i = SigningKey::generate(&mut OsRng);
        let a_r = SigningKey::generate(&mut OsRng);
        let other = SigningKey::generate(&mut OsRng).verifying_key();
        let (e_i, e_r) = ([1u8; 32], [2u8; 32]);
        let th = TranscriptHash::new(&e_i, &e_r, &a_r.verifying_key(), &a_i.verifying_key());
        let proof = th.sign(&a_i, HandshakeRole::Requester);
        th.verify(&a_i.verifying_key(), HandshakeRole::Requester, &proof)
            .unwrap();
        // Reflected as the responder's proof, or checked against another key.
        assert!(th
            .verify(&a_i.verifying_key(), HandshakeRole::Responder, &proof)
            .is_err());
        assert!(th
            .verify(&a_r.verifying_key(), HandshakeRole::Requester, &proof)
            .is_err());
        // Any other value gives another hash.
        let others = [
            TranscriptHash::new(&[3; 32], &e_r, &a_r.verifying_key(), &a_i.verifying_key()),
            TranscriptHash::new(&e_i, &[3; 32], &a_r.verifying_key(), &a_i.verifying_key()),
            TranscriptHash::new(&e_i, &e_r, &other, &a_i.verifying_key()),
            TranscriptHash::new(&e_i, &e_r, &a_r.verifying_key(), &other),
            TranscriptHash::new(&e_r, &e_i, &a_r.verifying_key(), &a_i.verifying_key()),
        ];
        for changed in others {
            assert_ne!(changed, th);
            assert!(changed
                .verify(&a_i.verifying_key(), HandshakeRole::Requester, &proof)
                .is_err());
        }
    }

    /// Computed independently (Python's `cryptography`: X25519, the Edwards-to-Montgomery map
    /// u = (1 + y) / (1 - y), HKDF, Ed25519, ChaCha20-Poly1305); also in docs/protocol.md.
    #[test]
    fn known_answers() {
        let e_i = HandshakeEphemeral::from_secret_bytes([0x11; 32]);
        let e_r = HandshakeEphemeral::from_secret_bytes([0x22; 32]);
        let a_r = SigningKey::from_bytes(&[0x33; 32]);
        let a_i = SigningKey::from_bytes(&[0x44; 32]);
        let (e_i_pk, e_r_pk) = (e_i.public_bytes(), e_r.public_bytes());
        let hex = |bytes: &[u8]| hex::encode(bytes);
        assert_eq!(
            hex(&e_i_pk),
            "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13"
        );
        assert_eq!(
            hex(&e_r_pk),
            "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20"
        );
        assert_eq!(
            hex(a_r.verifying_key().as_bytes()),
            "17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce"
        );
        assert_eq!(
            hex(a_i.verifying_key().as_bytes()),
            "d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48"
        );
        let th = TranscriptHash::new(&e_i_pk, &e_r_pk, &a_r.verifying_key(), &a_i.verifying_key());
        assert_eq!(
            hex(th.as_bytes()),
            "55c18f635e8b95fc43174689a95254767ef57db4285102ea423de9aab60ee53e"
        );
        let sig_i = th.sign(&a_i, HandshakeRole::Requester);
        assert_eq!(
            hex(&sig_i.to_bytes()),
            "3b88be5a8c3984ebaf7f2e321b46d4dfc00c66d4b598953b1f557a7b08ea2491\
             4ce94e793912fd61bec72915117bf9386eebcffc2f99d611beb8ed93a74cb709"
        );
        let sig_r = th.sign(&a_r, HandshakeRole::Responder);
        assert_eq!(
            hex(&sig_r.to_bytes()),
            "f688776d7bdccd28b60dd4c7bc4440f5057e3746e7ca8ecfdec825cbc9363beb\
             351f0b9f1925962309402054779c2fd9a2247bdc64f4998edbb25aa20caca30d"
        );
        let mut requester =
            HandshakeChannel::for_requester(e_i, &e_r_pk, &a_r.verifying_key()).unwrap();
        let mut responder = HandshakeChannel::for_responder(&a_r, e_r, &e_i_pk).unwrap();
        let f3 = [a_i.verifying_key().as_bytes().as_slice(), &sig_i.to_bytes()].concat();
        let f3 = requester.seal(&f3).unwrap();
        assert_eq!(
            hex(&f3),
            "22f9668a0944e8083f9b2cd3915f4eb71b8130be676bc6148fa56986d76d2b73\
             b7856daab04e65cf3eee6f545020eab786f6f374dd8639d2a27e9367ad1c4138\
             5eca98582ae30e177f4af1f16233dc4bb34e95887b366d2898ec59253451484e\
             e77314099db74c0feb7fc45e558a1a57"
        );
        responder.open(&f3).unwrap();
        let f4 = responder.seal(&sig_r.to_bytes()).unwrap();
        assert_eq!(
            hex(&f4),
            "e6b22a74336ef7fa8dbae8aadfc3410c45e54a05c6300fe4ce3ad0fbe64e77d3\
             e29b7dfea94f63c78770b60d6da3fe0b2249e91eebd47c0f11a4ead78a2823ab\
             9af7612a68b916c7b646afdcb8526540"
        );
        let f6 = responder.seal(&[1]).unwrap();
        assert_eq!(hex(&f6), "40dbc35d01d59fa4666cd847836addc3ed");
    }
}
