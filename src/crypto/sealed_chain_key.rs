//! A device's chain key (and current counter) sealed to one member of the group.
//!
//! Sealing: a fresh ephemeral X25519 key; X25519 with the recipient's member key converted to
//! Montgomery form (the standard Ed25519 to X25519 conversion); HKDF-SHA256(ikm = shared
//! secret, info = [`labels::KDF_SEALED_CHAIN_KEY`] || ephemeral pk || recipient X25519 pk);
//! XChaCha20-Poly1305 with a random nonce and associated data
//! [`labels::AD_SEALED_CHAIN_KEY`] || group pk || sender device pk || recipient member pk.
//!
//! Encoding (113 bytes): version `1` || ephemeral X25519 pk (32) || nonce (24) ||
//! ciphertext of (chain key (32) || counter (u64 BE)) (40) || tag (16).
//!
//! This hides the chain key from everyone but the recipient; it does not authenticate the
//! sender. That comes from the metadata entry carrying it, signed by the sender device (see
//! [`super::seal_metadata`]).

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use x25519_dalek::{EphemeralSecret, PublicKey, SharedSecret, StaticSecret};
use zeroize::Zeroizing;

use super::{
    codec::Reader,
    envelope::{self, SymmetricKey, ENVELOPE_OVERHEAD},
    kdf::hkdf_sha256,
    keys::KEY_LEN,
    labels, ChainKey, CryptoError,
};

/// Format version, the first byte of a sealed chain key.
const VERSION: u8 = 1;
/// The chain key and its 8-byte counter.
const PLAINTEXT_LEN: usize = KEY_LEN + 8;

/// Length of a sealed chain key.
pub const SEALED_CHAIN_KEY_LEN: usize = 1 + KEY_LEN + ENVELOPE_OVERHEAD + PLAINTEXT_LEN;

fn sealing_key(
    shared: &SharedSecret,
    ephemeral_pk: &PublicKey,
    recipient_x25519: &PublicKey,
) -> Result<SymmetricKey, CryptoError> {
    if !shared.was_contributory() {
        return Err(CryptoError::InvalidKey);
    }
    let key = hkdf_sha256::<KEY_LEN>(
        shared.as_bytes(),
        &[
            labels::KDF_SEALED_CHAIN_KEY,
            ephemeral_pk.as_bytes(),
            recipient_x25519.as_bytes(),
        ],
    )?;
    Ok(SymmetricKey::from_zeroizing(key))
}

fn associated_data(
    group_pk: &VerifyingKey,
    sender_device_pk: &VerifyingKey,
    recipient_member_pk: &VerifyingKey,
) -> Vec<u8> {
    [
        labels::AD_SEALED_CHAIN_KEY,
        group_pk.as_bytes(),
        sender_device_pk.as_bytes(),
        recipient_member_pk.as_bytes(),
    ]
    .concat()
}

/// The X25519 public key of an Ed25519 public key.
fn x25519_public(key: &VerifyingKey) -> PublicKey {
    PublicKey::from(key.to_montgomery().to_bytes())
}

/// Seals `chain_key` at `counter` from the device `sender_device_pk` to the member
/// `recipient_member_pk` of the group `group_pk`.
pub fn seal_chain_key<R: CryptoRng + RngCore>(
    group_pk: &VerifyingKey,
    sender_device_pk: &VerifyingKey,
    recipient_member_pk: &VerifyingKey,
    chain_key: &ChainKey,
    counter: u64,
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let ephemeral = EphemeralSecret::random_from_rng(&mut *rng);
    let ephemeral_pk = PublicKey::from(&ephemeral);
    let recipient_x25519 = x25519_public(recipient_member_pk);
    let shared = ephemeral.diffie_hellman(&recipient_x25519);
    let key = sealing_key(&shared, &ephemeral_pk, &recipient_x25519)?;

    let mut plaintext = Zeroizing::new([0u8; PLAINTEXT_LEN]);
    plaintext[..KEY_LEN].copy_from_slice(chain_key.as_bytes());
    plaintext[KEY_LEN..].copy_from_slice(&counter.to_be_bytes());
    let ad = associated_data(group_pk, sender_device_pk, recipient_member_pk);
    let sealed = envelope::seal(&key, &ad, plaintext.as_ref(), rng)?;

    let mut out = Vec::with_capacity(SEALED_CHAIN_KEY_LEN);
    out.push(VERSION);
    out.extend_from_slice(ephemeral_pk.as_bytes());
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a chain key sealed to the member whose private key is `recipient_member`, returning
/// the chain key and the counter it stands for.
pub fn open_chain_key(
    recipient_member: &SigningKey,
    group_pk: &VerifyingKey,
    sender_device_pk: &VerifyingKey,
    sealed: &[u8],
) -> Result<(ChainKey, u64), CryptoError> {
    let mut reader = Reader::new(sealed, "sealed chain key");
    reader.version(VERSION)?;
    let ephemeral_pk = PublicKey::from(reader.array::<KEY_LEN>()?);
    let envelope_bytes = reader.bytes(ENVELOPE_OVERHEAD + PLAINTEXT_LEN)?;
    reader.finish()?;

    let secret = StaticSecret::from(*Zeroizing::new(recipient_member.to_scalar_bytes()));
    let recipient_pk = recipient_member.verifying_key();
    let shared = secret.diffie_hellman(&ephemeral_pk);
    let key = sealing_key(&shared, &ephemeral_pk, &x25519_public(&recipient_pk))?;
    let ad = associated_data(group_pk, sender_device_pk, &recipient_pk);
    let plaintext = Zeroizing::new(envelope::open(&key, &ad, envelope_bytes)?);

    let mut reader = Reader::new(&plaintext, "sealed chain key");
    let chain_key = ChainKey::from_zeroizing(Zeroizing::new(reader.array()?));
    let counter = reader.u64()?;
    reader.finish()?;
    Ok((chain_key, counter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    struct Setup {
        group: VerifyingKey,
        sender: VerifyingKey,
        recipient: SigningKey,
        chain_key: ChainKey,
    }

    fn setup() -> Setup {
        Setup {
            group: SigningKey::generate(&mut OsRng).verifying_key(),
            sender: SigningKey::generate(&mut OsRng).verifying_key(),
            recipient: SigningKey::generate(&mut OsRng),
            chain_key: ChainKey::generate(&mut OsRng),
        }
    }

    fn seal(s: &Setup) -> Vec<u8> {
        seal_chain_key(
            &s.group,
            &s.sender,
            &s.recipient.verifying_key(),
            &s.chain_key,
            42,
            &mut OsRng,
        )
        .unwrap()
    }

    #[test]
    fn the_recipient_opens_it() {
        let s = setup();
        let sealed = seal(&s);
        assert_eq!(sealed.len(), SEALED_CHAIN_KEY_LEN);
        let (chain_key, counter) =
            open_chain_key(&s.recipient, &s.group, &s.sender, &sealed).unwrap();
        assert_eq!(chain_key.as_bytes(), s.chain_key.as_bytes());
        assert_eq!(counter, 42);
    }

    #[test]
    fn another_member_group_or_sender_cannot() {
        let s = setup();
        let other = setup();
        let sealed = seal(&s);
        let failed = Err(CryptoError::DecryptionFailed);
        let open = |recipient, group, sender| {
            open_chain_key(recipient, group, sender, &sealed).map(|(_, counter)| counter)
        };
        assert_eq!(open(&other.recipient, &s.group, &s.sender), failed);
        assert_eq!(open(&s.recipient, &other.group, &s.sender), failed);
        assert_eq!(open(&s.recipient, &s.group, &other.sender), failed);
    }

    #[test]
    fn a_low_order_ephemeral_key_is_refused() {
        let s = setup();
        let mut sealed = seal(&s);
        sealed[1..33].copy_from_slice(&[0u8; 32]);
        assert_eq!(
            open_chain_key(&s.recipient, &s.group, &s.sender, &sealed).map(|(_, c)| c),
            Err(CryptoError::InvalidKey)
        );
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = setup();
            let _ = open_chain_key(&s.recipient, &s.group, &s.sender, &bytes);
        }

        #[test]
        fn open_never_panics_on_right_length(mut bytes in proptest::collection::vec(any::<u8>(), SEALED_CHAIN_KEY_LEN)) {
            bytes[0] = VERSION;
            let s = setup();
            prop_assert!(open_chain_key(&s.recipient, &s.group, &s.sender, &bytes).is_err());
        }
    }
}
