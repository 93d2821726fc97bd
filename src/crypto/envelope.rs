//! XChaCha20-Poly1305 envelopes: `nonce (24 bytes) || ciphertext || tag (16 bytes)`, with a
//! random nonce and caller-chosen associated data.

use super::{secret::secret_bytes, CryptoError};
use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    XChaCha20Poly1305, XNonce,
};
use rand::{CryptoRng, RngCore};

/// Length of the random nonce that starts every envelope.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every envelope.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

secret_bytes!(
    /// A 32-byte symmetric key for [`seal`] and [`open`]; zeroized on drop, never printed.
    SymmetricKey
);

impl SymmetricKey {
    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

/// Encrypts `plaintext` under `key` bound to `ad`, with a random nonce put in front.
///
/// Fails only for a plaintext beyond the cipher's limit (about 256 GiB).
pub fn seal<R: CryptoRng + RngCore>(
    key: &SymmetricKey,
    ad: &[u8],
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .map_err(|_| CryptoError::EncryptionFailed)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts an envelope made by [`seal`] with the same `key` and `ad`.
///
/// Any other key, other associated data, or a changed byte is
/// [`CryptoError::DecryptionFailed`]; an envelope too short to hold a nonce and a tag is
/// [`CryptoError::Malformed`].
pub fn open(key: &SymmetricKey, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < ENVELOPE_OVERHEAD {
        return Err(CryptoError::Malformed { what: "envelope" });
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .map_err(|_| CryptoError::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..max)
    }

    #[test]
    fn layout_is_nonce_ciphertext_tag() {
        let key = SymmetricKey::generate(&mut OsRng);
        let sealed = seal(&key, b"ad", b"hello", &mut OsRng).unwrap();
        assert_eq!(sealed.len(), 5 + ENVELOPE_OVERHEAD);
        assert_eq!(open(&key, b"ad", &sealed).unwrap(), b"hello");
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = SymmetricKey::from_bytes([0xab; 32]);
        assert!(!format!("{key:?}").contains("ab"));
    }

    proptest! {
        #[test]
        fn opens_only_with_the_right_key_and_ad(
            key in any::<[u8; 32]>(),
            other_key in any::<[u8; 32]>(),
            ad in bytes(64),
            other_ad in bytes(64),
            plaintext in bytes(256),
            flip in any::<(usize, u8)>(),
        ) {
            let right = SymmetricKey::from_bytes(key);
            let sealed = seal(&right, &ad, &plaintext, &mut OsRng).unwrap();
            prop_assert_eq!(open(&right, &ad, &sealed).unwrap(), plaintext);
            if other_key != key {
                let wrong = SymmetricKey::from_bytes(other_key);
                prop_assert_eq!(open(&wrong, &ad, &sealed), Err(CryptoError::DecryptionFailed));
            }
            if other_ad != ad {
                prop_assert_eq!(
                    open(&right, &other_ad, &sealed),
                    Err(CryptoError::DecryptionFailed)
                );
            }
            let (index, mask) = flip;
            if mask != 0 {
                let mut tampered = sealed.clone();
                let index = index % tampered.len();
                tampered[index] ^= mask;
                prop_assert_eq!(
                    open(&right, &ad, &tampered),
                    Err(CryptoError::DecryptionFailed)
                );
            }
            let truncated = &sealed[..sealed.len() - 1];
            prop_assert!(open(&right, &ad, truncated).is_err());
        }

        #[test]
        fn open_never_panics(key in any::<[u8; 32]>(), ad in bytes(32), sealed in bytes(128)) {
            let _ = open(&SymmetricKey::from_bytes(key), &ad, &sealed);
        }
    }
}
