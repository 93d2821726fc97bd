//! Account keys, member keys, and parsing of public keys and signatures.
//!
//! Every key pair is Ed25519 ([`SigningKey`] / [`VerifyingKey`]); a private key is stored as
//! its 32-byte seed. Per-group device keys are plain random keys: [`SigningKey::generate`].

use std::fmt;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::{codec::Reader, kdf::hkdf_sha256, labels, CryptoError};

/// Length of a public key, a private key seed, and every symmetric key here.
pub const KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// Parses a 32-byte Ed25519 public key, refusing bytes that do not decode to a point,
/// non-canonical encodings (so one key has exactly one byte form, usable as an id), and
/// low-order (weak) keys, which could make one signature valid for many statements.
pub fn parse_public_key(bytes: &[u8]) -> Result<VerifyingKey, CryptoError> {
    let bytes: &[u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
    if !is_canonical_y(bytes) {
        return Err(CryptoError::InvalidKey);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| CryptoError::InvalidKey)?;
    if key.is_weak() {
        return Err(CryptoError::InvalidKey);
    }
    Ok(key)
}

/// Public keys parsed once and remembered, so a batch naming the same device many times
/// decompresses its key once (a decompression costs about as much as a signature check's
/// share of a batch). Holds at most [`ParsedKeys::CAPACITY`] keys; refused bytes are not kept.
#[derive(Default)]
pub struct ParsedKeys(std::collections::HashMap<[u8; KEY_LEN], VerifyingKey>);

impl ParsedKeys {
    /// Keys remembered at most (a batch names a handful of devices; a hostile one cannot
    /// make this grow without bound).
    pub const CAPACITY: usize = 1024;

    /// As [`parse_public_key`], remembering the keys it accepts.
    pub fn parse(&mut self, bytes: &[u8]) -> Result<VerifyingKey, CryptoError> {
        let bytes: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        if let Some(key) = self.0.get(&bytes) {
            return Ok(*key);
        }
        let key = parse_public_key(&bytes)?;
        if self.0.len() < Self::CAPACITY {
            self.0.insert(bytes, key);
        }
        Ok(key)
    }
}

/// Whether the y coordinate of a compressed Edwards point is below p = 2^255 - 19.
///
/// Together with the weak-key check this makes the encoding canonical: the only points whose
/// sign bit can be set for x = 0 (y = 1 and y = -1) have low order.
fn is_canonical_y(bytes: &[u8; KEY_LEN]) -> bool {
    let top = bytes[KEY_LEN - 1] & 0x7f;
    let middle_all_ones = bytes[1..KEY_LEN - 1].iter().all(|&b| b == 0xff);
    !(top == 0x7f && middle_all_ones && bytes[0] >= 0xed)
}

/// Parses a 64-byte Ed25519 signature (its validity is checked when it is verified).
pub fn parse_signature(bytes: &[u8]) -> Result<Signature, CryptoError> {
    Signature::from_slice(bytes).map_err(|_| CryptoError::Malformed { what: "signature" })
}

/// Rebuilds a private key from its 32-byte seed (as stored by [`SigningKey::to_bytes`]).
pub fn signing_key_from_seed(seed: &[u8]) -> Result<SigningKey, CryptoError> {
    let seed: &[u8; KEY_LEN] = seed.try_into().map_err(|_| CryptoError::InvalidKey)?;
    Ok(SigningKey::from_bytes(seed))
}

/// The member key of the account in the multi-member group `group_pk`.
///
/// Its seed is HKDF-SHA256(ikm = account-proof seed, info = [`labels::KDF_MEMBER_KEY`] ||
/// group public key): every device of the account derives the same member key, and nobody
/// without the account-proof key can.
pub fn derive_member_key(
    account_proof: &SigningKey,
    group_pk: &VerifyingKey,
) -> Result<SigningKey, CryptoError> {
    let proof_seed = Zeroizing::new(account_proof.to_bytes());
    let seed = hkdf_sha256::<KEY_LEN>(
        proof_seed.as_ref(),
        &[labels::KDF_MEMBER_KEY, group_pk.as_bytes()],
    )?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The long-term keys of one device of an account: the account key, the account-proof key
/// (the root of the account's member keys) and this device's key. All three are random.
#[derive(Clone)]
pub struct AccountKeys {
    account: SigningKey,
    account_proof: SigningKey,
    device: SigningKey,
}

/// Version byte of the [`AccountKeys::to_bytes`] layout.
const ACCOUNT_KEYS_VERSION: u8 = 1;

impl AccountKeys {
    /// Length of [`AccountKeys::to_bytes`].
    pub const ENCODED_LEN: usize = 1 + 3 * KEY_LEN;

    /// Fresh random keys for a new account on its first device.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> Self {
        Self {
            account: SigningKey::generate(rng),
            account_proof: SigningKey::generate(rng),
            device: SigningKey::generate(rng),
        }
    }

    /// Keys from their 32-byte seeds.
    pub fn from_seeds(
        account: &[u8; KEY_LEN],
        account_proof: &[u8; KEY_LEN],
        device: &[u8; KEY_LEN],
    ) -> Self {
        Self {
            account: SigningKey::from_bytes(account),
            account_proof: SigningKey::from_bytes(account_proof),
            device: SigningKey::from_bytes(device),
        }
    }

    /// The same account on a new device: same account and account-proof keys, new device key.
    pub fn with_new_device<R: CryptoRng + RngCore>(&self, rng: &mut R) -> Self {
        Self {
            account: self.account.clone(),
            account_proof: self.account_proof.clone(),
            device: SigningKey::generate(rng),
        }
    }

    /// The account key (the member key in account and contact groups).
    pub fn account(&self) -> &SigningKey {
        &self.account
    }

    /// The account public key.
    pub fn account_pk(&self) -> VerifyingKey {
        self.account.verifying_key()
    }

    /// The account-proof key, from which member keys are derived.
    pub fn account_proof(&self) -> &SigningKey {
        &self.account_proof
    }

    /// This device's key.
    pub fn device(&self) -> &SigningKey {
        &self.device
    }

    /// This device's public key.
    pub fn device_pk(&self) -> VerifyingKey {
        self.device.verifying_key()
    }

    /// The member key of this account in the multi-member group `group_pk`
    /// (see [`derive_member_key`]).
    pub fn member_key(&self, group_pk: &VerifyingKey) -> Result<SigningKey, CryptoError> {
        derive_member_key(&self.account_proof, group_pk)
    }

    /// The seeds for storage at rest: version byte `1`, then the account, account-proof and
    /// device seeds (32 bytes each), 97 bytes in all. Keep the result secret.
    pub fn to_bytes(&self) -> Zeroizing<[u8; Self::ENCODED_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::ENCODED_LEN]);
        out[0] = ACCOUNT_KEYS_VERSION;
        for (i, key) in [&self.account, &self.account_proof, &self.device]
            .into_iter()
            .enumerate()
        {
            let start = 1 + i * KEY_LEN;
            out[start..start + KEY_LEN].copy_from_slice(key.as_bytes());
        }
        out
    }

    /// Parses [`AccountKeys::to_bytes`]; any other input is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut reader = Reader::new(bytes, "account keys");
        reader.version(ACCOUNT_KEYS_VERSION)?;
        let account = Zeroizing::new(reader.array::<KEY_LEN>()?);
        let account_proof = Zeroizing::new(reader.array::<KEY_LEN>()?);
        let device = Zeroizing::new(reader.array::<KEY_LEN>()?);
        reader.finish()?;
        Ok(Self::from_seeds(&account, &account_proof, &device))
    }
}

impl fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountKeys")
            .field("account_pk", &hex::encode(self.account_pk().as_bytes()))
            .field("device_pk", &hex::encode(self.device_pk().as_bytes()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    #[test]
    fn account_keys_round_trip() {
        let keys = AccountKeys::generate(&mut OsRng);
        let bytes = keys.to_bytes();
        let back = AccountKeys::from_bytes(bytes.as_ref()).unwrap();
        assert_eq!(back.to_bytes().as_ref(), bytes.as_ref());
        assert_eq!(back.account_pk(), keys.account_pk());
        assert_eq!(
            back.account_proof().verifying_key(),
            keys.account_proof().verifying_key()
        );
        assert_eq!(back.device_pk(), keys.device_pk());
    }

    #[test]
    fn new_device_keeps_the_account_and_its_member_keys() {
        let keys = AccountKeys::generate(&mut OsRng);
        let other = keys.with_new_device(&mut OsRng);
        let group = SigningKey::generate(&mut OsRng).verifying_key();
        assert_eq!(other.account_pk(), keys.account_pk());
        assert_ne!(other.device_pk(), keys.device_pk());
        assert_eq!(
            other.member_key(&group).unwrap().verifying_key(),
            keys.member_key(&group).unwrap().verifying_key()
        );
    }

    #[test]
    fn member_keys_differ_per_group_and_account() {
        let keys = AccountKeys::generate(&mut OsRng);
        let other = AccountKeys::generate(&mut OsRng);
        let g1 = SigningKey::generate(&mut OsRng).verifying_key();
        let g2 = SigningKey::generate(&mut OsRng).verifying_key();
        let m = |k: &AccountKeys, g| k.member_key(g).unwrap().verifying_key();
        assert_ne!(m(&keys, &g1), m(&keys, &g2));
        assert_ne!(m(&keys, &g1), m(&other, &g1));
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = AccountKeys::from_seeds(&[7; 32], &[8; 32], &[9; 32]);
        let shown = format!("{keys:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(!shown.contains(&hex::encode([8u8; 32])));
        assert!(!shown.contains(&hex::encode([9u8; 32])));
        assert!(!shown.contains("account_proof"));
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(parse_public_key(&identity), Err(CryptoError::InvalidKey));
        assert_eq!(parse_public_key(&[0u8; 31]), Err(CryptoError::InvalidKey));
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        // y = p + 1 encodes the same point as y = 1 (refused as weak too), y = p + 3 the same
        // point as y = 3 if that decodes; both must be refused for their encoding alone.
        for low in [0xee_u8, 0xf0, 0xff] {
            let mut bytes = [0xff_u8; 32];
            bytes[0] = low;
            bytes[31] = 0x7f;
            assert_eq!(parse_public_key(&bytes), Err(CryptoError::InvalidKey));
        }
        let valid = SigningKey::from_bytes(&[3; 32]).verifying_key();
        assert_eq!(parse_public_key(valid.as_bytes()), Ok(valid));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = AccountKeys::from_bytes(&bytes);
            let _ = parse_public_key(&bytes);
            let _ = parse_signature(&bytes);
            let _ = signing_key_from_seed(&bytes);
        }
    }
}
