//! The one error type of the cryptography module.

/// What can go wrong when deriving, sealing, opening, signing or verifying.
///
/// Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A public key is not a valid Ed25519 point, has low order, or yields a non-contributory
    /// X25519 exchange.
    #[error("invalid public key")]
    InvalidKey,
    /// Authenticated decryption failed: wrong key, wrong associated data, or tampered bytes.
    #[error("decryption failed")]
    DecryptionFailed,
    /// Encryption failed (the plaintext is larger than the cipher allows).
    #[error("encryption failed: plaintext too large")]
    EncryptionFailed,
    /// A signature does not verify for the claimed key and statement.
    #[error("bad signature")]
    BadSignature,
    /// An encoding has the wrong length, a field out of range, or trailing bytes.
    #[error("malformed {what}")]
    Malformed {
        /// Which encoding.
        what: &'static str,
    },
    /// An encoding carries a version this build does not know.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which encoding.
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// A counter is further ahead of the receiver chain than the receive window allows.
    #[error("counter {counter} is more than {window} ahead of the next expected counter {next}")]
    WindowExceeded {
        /// The counter asked for.
        counter: u64,
        /// The next counter the chain expected.
        next: u64,
        /// The window, see [`super::RECEIVE_WINDOW`].
        window: u64,
    },
    /// The message key of this counter was already used (and deleted).
    #[error("message key for counter {counter} already used")]
    KeyAlreadyUsed {
        /// The counter asked for.
        counter: u64,
    },
    /// The message key of this counter is no longer (or was never) held: it is older than the
    /// chain key this device received, or it was dropped from the receive window.
    #[error("message key for counter {counter} is no longer available (oldest held: {oldest})")]
    CounterTooOld {
        /// The counter asked for.
        counter: u64,
        /// The oldest counter whose key may still be held.
        oldest: u64,
    },
    /// A sender chain reached the largest counter.
    #[error("chain counter exhausted")]
    CounterExhausted,
    /// HKDF refused an output length (a bug: every length used here is fixed and valid).
    #[error("key derivation failed")]
    KeyDerivation,
}
