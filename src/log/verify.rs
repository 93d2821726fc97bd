//! The checks an entry must pass besides its structure: the signature and the Lamport rule.
//!
//! # The signature rule
//!
//! One Ed25519 acceptance rule serves the log entries and the device signatures that
//! `crate::crypto` checks. A signature `R ‖ S` by the key `A` over the message `M` is valid when
//!
//! 1. the encoding of `A` is canonical (see below) and `A` is not of small order;
//! 2. the encoding of `R` is canonical and decodes to a point that is not of small order;
//! 3. `S` is a canonical scalar, below the group order `ℓ`;
//! 4. `[8](S·B − k·A − R)` is the identity, with `k = SHA-512(R ‖ A ‖ M) mod ℓ` over the
//!    encodings as received.
//!
//! The equation is cofactored (ZIP-215 style): `R` may carry a small-order component, which
//! the multiplication by the cofactor 8 removes. Every step is a deterministic function of the
//! key, the message and the signature, so every replica accepts the same signatures.
//!
//! The batch equation is the same equation, summed with random 128-bit weights `z_i`:
//! `[8](Σ z_i S_i · B − Σ z_i R_i − Σ z_i k_i A_i)` is the identity. It holds whenever every
//! signature in the batch passes the single check, and, when one does not, fails except with
//! probability at most `2^-128`. A failed batch falls back to the single check of each
//! signature, so the answer is the single check's whichever way signatures are batched.
//! (ed25519-dalek's two checks are both cofactorless, the single one exact and the batch one
//! randomised: on a signature whose `R` has a small-order component, the first always refuses
//! and the second accepts or not depending on the weights.)

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::Rng;
use sha2::{Digest, Sha512};

use super::entry::Entry;
use super::error::LogError;

/// Most signatures checked in one batch equation. Larger batches gain little speed, and when a
/// batch fails every entry in it is checked alone.
pub const VERIFY_BATCH_SIZE: usize = 256;

impl Entry {
    /// Checks the signature with the log's signing key (the group's shared signing key).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), LogError> {
        let valid = signature_of(self)
            .is_some_and(|signature| Self::check_ed25519(key, self.signed_message(), &signature));
        if valid {
            Ok(())
        } else {
            Err(LogError::BadSignature)
        }
    }

    /// Checks one Ed25519 signature with the rule of this module (see its documentation):
    /// `true` when `signature` is `key`'s over `message`.
    ///
    /// This is the one implementation of the rule: `crate::crypto` checks device signatures
    /// with it too. It is an associated function of [`Entry`] only because this module is
    /// private to `crate::log`, whose public items are the only way in.
    pub(crate) fn check_ed25519(key: &VerifyingKey, message: &[u8], signature: &Signature) -> bool {
        prepare(key, message, signature).is_some_and(|prepared| prepared.equation_holds())
    }

    /// Checks many `(key, message, signature)` at once with one batch equation: always `true`
    /// when every one passes [`Entry::check_ed25519`] (and when there are none); when one
    /// fails, `false` except with probability at most `2^-128`.
    ///
    /// `false` means at least one fails: run [`Entry::check_ed25519`] on each to find which.
    /// Cheaper per signature than checking them one by one, and more so when consecutive
    /// signatures share a key.
    pub(crate) fn check_ed25519_batch<'a>(
        checks: impl IntoIterator<Item = (&'a VerifyingKey, &'a [u8], &'a Signature)>,
    ) -> bool {
        let mut prepared = Vec::new();
        for (key, message, signature) in checks {
            match prepare(key, message, signature) {
                Some(check) => prepared.push(check),
                None => return false,
            }
        }
        batch_equation_holds(&prepared)
    }
}

/// Checks the signatures of `entries`, all of one log, with the log's signing key: one `bool`
/// per entry, `true` when its signature is valid.
///
/// Gives the same answer as [`Entry::verify`] on each entry, only faster: entries are checked
/// [`VERIFY_BATCH_SIZE`] at a time with the batch equation, and each entry of a batch that
/// fails is checked alone, so a bad entry never takes good ones down with it.
pub fn verify_batch(entries: &[Entry], key: &VerifyingKey) -> Vec<bool> {
    let mut valid = vec![false; entries.len()];
    if !key_is_acceptable(key) {
        return valid;
    }
    let capacity = entries.len().min(VERIFY_BATCH_SIZE);
    let mut indices = Vec::with_capacity(capacity);
    let mut prepared = Vec::with_capacity(capacity);
    for (chunk, chunk_valid) in entries
        .chunks(VERIFY_BATCH_SIZE)
        .zip(valid.chunks_mut(VERIFY_BATCH_SIZE))
    {
        indices.clear();
        prepared.clear();
        for (index, entry) in chunk.iter().enumerate() {
            // A signature refused before the equation stays `false` and out of the batch.
            let check = signature_of(entry)
                .and_then(|signature| prepare(key, entry.signed_message(), &signature));
            if let Some(check) = check {
                indices.push(index);
                prepared.push(check);
            }
        }
        let batch_holds = batch_equation_holds(&prepared);
        for (&index, check) in indices.iter().zip(&prepared) {
            if let Some(slot) = chunk_valid.get_mut(index) {
                *slot = batch_holds || check.equation_holds();
            }
        }
    }
    valid
}

/// Checks the Lamport rule: the entry's clock is the largest of its parents' clocks plus one,
/// and 1 for a root. `parent_lamports` holds one clock per parent, in any order.
pub fn check_lamport(entry: &Entry, parent_lamports: &[u64]) -> Result<(), LogError> {
    let expected = match parent_lamports.iter().max() {
        None => 1,
        Some(max) => max.checked_add(1).ok_or(LogError::LamportOverflow)?,
    };
    if entry.lamport() == expected {
        Ok(())
    } else {
        Err(LogError::LamportMismatch {
            expected,
            found: entry.lamport(),
        })
    }
}

/// The entry's signature.
fn signature_of(entry: &Entry) -> Option<Signature> {
    Signature::from_slice(entry.signature_bytes()).ok()
}

/// A signature that passed rules 1 to 3, with what the equation needs.
struct Prepared<'a> {
    key: &'a VerifyingKey,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Prepared<'_> {
    /// Rule 4 for this signature alone: `[8](S·B − k·A − R)` is the identity.
    fn equation_holds(&self) -> bool {
        let minus_a = -self.key.to_edwards();
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &minus_a, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// Applies rules 1 to 3 and computes `k`; `None` when a rule refuses the signature.
fn prepare<'a>(
    key: &'a VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Option<Prepared<'a>> {
    if !key_is_acceptable(key) {
        return None;
    }
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))?;
    let r_bytes = signature.r_bytes();
    if !is_canonical_point_encoding(r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(*r_bytes)
        .decompress()
        .filter(|r| !r.is_small_order())?;
    let digest = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(key.as_bytes())
        .chain_update(message)
        .finalize();
    let k = Scalar::from_bytes_mod_order_wide(&digest.into());
    Some(Prepared { key, r, s, k })
}

/// Rule 1: the key's encoding is canonical and the key is not of small order.
fn key_is_acceptable(key: &VerifyingKey) -> bool {
    is_canonical_point_encoding(key.as_bytes()) && !key.is_weak()
}

/// Rule 4 for all of `batch` at once, with random weights (see the module documentation).
///
/// The weights come from the thread's CSPRNG: whoever crafts the signatures cannot predict
/// them, which is what bounds a false `true` by `2^-128`.
fn batch_equation_holds(batch: &[Prepared<'_>]) -> bool {
    let mut rng = rand::thread_rng();
    // Σ z_i S_i, on B; then z_i on each R_i; then Σ z_i k_i on each run of one key.
    let mut basepoint_coefficient = Scalar::ZERO;
    let mut r_coefficients = Vec::with_capacity(batch.len());
    let mut key_terms: Vec<(Scalar, &VerifyingKey)> = Vec::new();
    for check in batch {
        let z = Scalar::from(rng.gen::<u128>());
        basepoint_coefficient += z * check.s;
        r_coefficients.push(z);
        let zk = z * check.k;
        match key_terms.last_mut() {
            Some((coefficient, key)) if *key == check.key => *coefficient += zk,
            _ => key_terms.push((zk, check.key)),
        }
    }
    // Σ z_i S_i · B − Σ z_i R_i − Σ z_i k_i A_i, written as one multiscalar multiplication of
    // B, the R_i and the A_i with the coefficients negated where needed.
    let mut scalars = Vec::with_capacity(1 + batch.len() + key_terms.len());
    let mut points = Vec::with_capacity(scalars.capacity());
    scalars.push(basepoint_coefficient);
    points.push(ED25519_BASEPOINT_POINT);
    for (z, check) in r_coefficients.iter().zip(batch) {
        scalars.push(-z);
        points.push(check.r);
    }
    for (coefficient, key) in &key_terms {
        scalars.push(-coefficient);
        points.push(key.to_edwards());
    }
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

/// Whether `encoding` could be the output of Edwards point compression: `y` below the field
/// prime `p = 2^255 - 19`, and no sign bit when `x` is zero (`y = 1` or `y = p - 1`).
///
/// Refusing other encodings gives every point one encoding, so `k`, which hashes the encodings
/// of `R` and `A`, is a function of the points.
fn is_canonical_point_encoding(encoding: &[u8; 32]) -> bool {
    let [low, middle @ .., high] = *encoding;
    let middle_all_ones = middle.iter().all(|byte| *byte == 0xff);
    let middle_all_zeros = middle.iter().all(|byte| *byte == 0);
    let sign = high & 0x80 != 0;
    let y_high = high & 0x7f;
    let y_at_least_p = y_high == 0x7f && middle_all_ones && low >= 0xed;
    let y_is_one = y_high == 0 && middle_all_zeros && low == 1;
    let y_is_p_minus_one = y_high == 0x7f && middle_all_ones && low == 0xec;
    !y_at_least_p && !(sign && (y_is_one || y_is_p_minus_one))
}

#[cfg(test)]
impl Entry {
    /// Test helper: an Ed25519 signature of `message` by `signing_key` whose `R` is
    /// `nonce·B + torsion`, with `S` computed for that `R`, so that `[8](S·B − k·A − R)` is the
    /// identity while, for a `torsion` other than the identity, `S·B − k·A − R` is not. With a
    /// zero `nonce`, `R` is `torsion` itself, a point of small order.
    pub(crate) fn sign_with_torsion_in_r(
        signing_key: &ed25519_dalek::SigningKey,
        message: &[u8],
        nonce: &Scalar,
        torsion: &EdwardsPoint,
    ) -> Signature {
        // The secret scalar: the clamped first half of SHA-512 of the seed (RFC 8032, 5.1.5).
        let expanded = Sha512::digest(signing_key.to_bytes());
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&expanded[..32]);
        secret[0] &= 248;
        secret[31] &= 127;
        secret[31] |= 64;
        let a = Scalar::from_bytes_mod_order(secret);
        let key = signing_key.verifying_key();
        assert_eq!(
            EdwardsPoint::mul_base(&a).compress().to_bytes(),
            key.to_bytes()
        );
        let r = (EdwardsPoint::mul_base(nonce) + torsion)
            .compress()
            .to_bytes();
        let digest = Sha512::new()
            .chain_update(r)
            .chain_update(key.as_bytes())
            .chain_update(message)
            .finalize();
        let k = Scalar::from_bytes_mod_order_wide(&digest.into());
        Signature::from_components(r, (nonce + k * a).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    use proptest::prelude::*;

    use super::*;
    use crate::log::test_support::{build_dag, dag_shape, signing_key};
    use crate::log::{EntryId, SIGNATURE_LEN};

    /// Length of the signature field at the end of every entry.
    const SIGNATURE_FIELD: usize = 2 + SIGNATURE_LEN;

    /// A copy of `entry` whose signature no longer matches, in one of three ways.
    fn tamper(entry: &Entry, how: u8) -> Entry {
        match how % 3 {
            // A bit of the payload (still a canonical encoding).
            0 => {
                let mut bytes = entry.bytes().to_vec();
                let at = bytes.len() - SIGNATURE_FIELD - 1;
                bytes[at] ^= 1;
                Entry::decode(&bytes).unwrap()
            }
            // A bit of the signature.
            1 => {
                let mut bytes = entry.bytes().to_vec();
                let at = bytes.len() - 40;
                bytes[at] ^= 0x10;
                Entry::decode(&bytes).unwrap()
            }
            // The same fields signed by another key.
            _ => Entry::sign(
                &SigningKey::from_bytes(&[8; 32]),
                entry.log_id(),
                entry.parents().to_vec(),
                entry.lamport(),
                entry.payload(),
            )
            .unwrap(),
        }
    }

    #[test]
    fn batches_larger_than_a_chunk_flag_only_the_bad_entries() {
        let key = signing_key().verifying_key();
        let shape: Vec<Vec<usize>> = (0..VERIFY_BATCH_SIZE + 50)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        let mut entries = build_dag(&shape);
        let bad = [3, VERIFY_BATCH_SIZE - 1, VERIFY_BATCH_SIZE + 7];
        for (n, index) in bad.iter().enumerate() {
            entries[*index] = tamper(&entries[*index], n as u8);
        }
        let valid = verify_batch(&entries, &key);
        for (index, ok) in valid.iter().enumerate() {
            assert_eq!(*ok, !bad.contains(&index), "entry {index}");
        }
        assert!(verify_batch(&[], &key).is_empty());
    }

    #[test]
    fn a_weak_key_verifies_nothing() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(weak.is_weak());
        let entries = build_dag(&[vec![], vec![0]]);
        assert_eq!(verify_batch(&entries, &weak), vec![false, false]);
        assert_eq!(entries[0].verify(&weak), Err(LogError::BadSignature));
    }

    #[test]
    fn point_encodings_that_compression_never_produces_are_refused() {
        let basepoint_y = ed25519_dalek::SigningKey::from_bytes(&[1; 32])
            .verifying_key()
            .to_bytes();
        assert!(is_canonical_point_encoding(&basepoint_y));

        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!is_canonical_point_encoding(&p), "y = p");
        p[0] = 0xff;
        assert!(!is_canonical_point_encoding(&p), "y = 2^255 - 1");
        p[0] = 0xec;
        assert!(is_canonical_point_encoding(&p), "y = p - 1");
        p[31] = 0xff;
        assert!(
            !is_canonical_point_encoding(&p),
            "y = p - 1 with the sign bit"
        );

        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(is_canonical_point_encoding(&one), "the identity");
        one[31] = 0x80;
        assert!(
            !is_canonical_point_encoding(&one),
            "the identity with the sign bit"
        );
        one[0] = 2;
        assert!(is_canonical_point_encoding(&one), "y = 2 with the sign bit");
    }

    #[test]
    fn an_entry_with_a_non_canonical_r_is_refused_by_both_checks() {
        let key = signing_key().verifying_key();
        let entry = build_dag(&[vec![]]).remove(0);
        let mut bytes = entry.bytes().to_vec();
        let r = bytes.len() - SIGNATURE_LEN;
        bytes[r..r + 32].copy_from_slice(&{
            let mut one = [0u8; 32];
            one[0] = 1;
            one[31] = 0x80;
            one
        });
        let entry = Entry::decode(&bytes).unwrap();
        assert_eq!(entry.verify(&key), Err(LogError::BadSignature));
        assert_eq!(verify_batch(&[entry], &key), vec![false]);
    }

    #[test]
    fn lamport_rule() {
        let entries = build_dag(&[vec![], vec![], vec![0], vec![1, 2]]);
        assert_eq!(check_lamport(&entries[0], &[]), Ok(()));
        assert_eq!(check_lamport(&entries[2], &[1]), Ok(()));
        assert_eq!(check_lamport(&entries[3], &[1, 2]), Ok(()));
        assert_eq!(check_lamport(&entries[3], &[2, 1]), Ok(()));
        assert_eq!(
            check_lamport(&entries[3], &[1, 1]),
            Err(LogError::LamportMismatch {
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            check_lamport(&entries[3], &[5]),
            Err(LogError::LamportMismatch {
                expected: 6,
                found: 3
            })
        );
        assert_eq!(
            check_lamport(&entries[3], &[u64::MAX]),
            Err(LogError::LamportOverflow)
        );
    }

    /// RFC 8032, section 7.1, tests 1 to 3: secret key, public key, message, signature.
    const RFC8032_VECTORS: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    #[test]
    fn rfc8032_test_vectors_verify() {
        let mut vectors = Vec::new();
        for (secret, public, message, signature) in RFC8032_VECTORS {
            let secret: [u8; 32] = hex::decode(secret).unwrap().try_into().unwrap();
            let public: [u8; 32] = hex::decode(public).unwrap().try_into().unwrap();
            let message = hex::decode(message).unwrap();
            let signature = Signature::from_slice(&hex::decode(signature).unwrap()).unwrap();
            let signing_key = SigningKey::from_bytes(&secret);
            assert_eq!(signing_key.verifying_key().to_bytes(), public);
            assert_eq!(signing_key.sign(&message), signature);
            let key = VerifyingKey::from_bytes(&public).unwrap();
            assert!(Entry::check_ed25519(&key, &message, &signature));
            let mut other = message.clone();
            other.push(0);
            assert!(!Entry::check_ed25519(&key, &other, &signature));
            vectors.push((key, message, signature));
        }
        let all = || vectors.iter().map(|(k, m, s)| (k, m.as_slice(), s));
        assert!(Entry::check_ed25519_batch(all()));
        let (key, _, signature) = &vectors[1];
        assert!(!Entry::check_ed25519_batch(all().chain([(
            key,
            &b"not the message"[..],
            signature
        )])));
    }

    #[test]
    fn batches_with_several_keys() {
        let signers: Vec<SigningKey> = (1..=3u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let keys: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
        let messages: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 20]).collect();
        // Keys in runs and interleaved: 0 0 0 1 1 2 0 2 2 1 0 0.
        let who = [0, 0, 0, 1, 1, 2, 0, 2, 2, 1, 0, 0];
        let signatures: Vec<Signature> = who
            .iter()
            .zip(&messages)
            .map(|(w, m)| signers[*w].sign(m))
            .collect();
        let checks = || {
            who.iter()
                .zip(&messages)
                .zip(&signatures)
                .map(|((w, m), s)| (&keys[*w], m.as_slice(), s))
        };
        assert!(Entry::check_ed25519_batch(checks()));
        assert!(Entry::check_ed25519_batch([]));
        // The right signature under the wrong key, inside a run and at a run's edge.
        for at in [1, 4, 5] {
            let wrong = checks().enumerate().map(|(i, (k, m, s))| {
                let k = if i == at { &keys[(who[i] + 1) % 3] } else { k };
                (k, m, s)
            });
            assert!(!Entry::check_ed25519_batch(wrong));
        }
    }

    /// A copy of `entry` with `signature` in place of its own.
    fn with_signature(entry: &Entry, signature: &Signature) -> Entry {
        let mut bytes = entry.bytes().to_vec();
        let at = bytes.len() - SIGNATURE_LEN;
        bytes[at..].copy_from_slice(&signature.to_bytes());
        Entry::decode(&bytes).unwrap()
    }

    /// `s + ℓ`, the same scalar in a non-canonical encoding (`s` is below `ℓ < 2^253`).
    fn plus_group_order(s: &[u8; 32]) -> [u8; 32] {
        let order = (-Scalar::ONE).to_bytes(); // ℓ - 1
        let mut sum = [0u8; 32];
        let mut carry = 1u16; // the + 1 of ℓ = (ℓ - 1) + 1
        for i in 0..32 {
            let total = u16::from(s[i]) + u16::from(order[i]) + carry;
            sum[i] = total as u8;
            carry = total >> 8;
        }
        assert_eq!(carry, 0);
        sum
    }

    /// How a test entry is signed, and whether the rule accepts it.
    #[derive(Debug, Clone, Copy)]
    enum Signing {
        /// The signature `Entry::sign` made.
        Honest,
        /// Broken by [`tamper`]: refused.
        Tampered(u8),
        /// `R` plus the given non-identity point of the 8-torsion (1 to 7): accepted.
        TorsionInR(usize),
        /// `R` is the given point of the 8-torsion (0 to 7), of small order: refused.
        SmallOrderR(usize),
        /// `S + ℓ` in place of `S`: refused.
        NonCanonicalS,
    }

    impl Signing {
        fn accepted(self) -> bool {
            matches!(self, Signing::Honest | Signing::TorsionInR(_))
        }

        fn apply(self, entry: &Entry, nonce: u64) -> Entry {
            let key = signing_key();
            let nonce = Scalar::from(nonce) + Scalar::ONE;
            match self {
                Signing::Honest => entry.clone(),
                Signing::Tampered(how) => tamper(entry, how),
                Signing::TorsionInR(t) => with_signature(
                    entry,
                    &Entry::sign_with_torsion_in_r(
                        &key,
                        entry.signed_message(),
                        &nonce,
                        &EIGHT_TORSION[t],
                    ),
                ),
                Signing::SmallOrderR(t) => with_signature(
                    entry,
                    &Entry::sign_with_torsion_in_r(
                        &key,
                        entry.signed_message(),
                        &Scalar::ZERO,
                        &EIGHT_TORSION[t],
                    ),
                ),
                Signing::NonCanonicalS => {
                    let signature = signature_of(entry).unwrap();
                    let s = plus_group_order(signature.s_bytes());
                    with_signature(entry, &Signature::from_components(*signature.r_bytes(), s))
                }
            }
        }
    }

    fn arb_signing() -> impl Strategy<Value = Signing> {
        prop_oneof![
            3 => Just(Signing::Honest),
            1 => any::<u8>().prop_map(Signing::Tampered),
            3 => (1usize..8).prop_map(Signing::TorsionInR),
            1 => (0usize..8).prop_map(Signing::SmallOrderR),
            1 => Just(Signing::NonCanonicalS),
        ]
    }

    #[test]
    fn a_small_order_component_in_r_is_accepted_alone_and_in_every_batch() {
        let key = signing_key().verifying_key();
        let honest = build_dag(&[vec![], vec![0], vec![1], vec![1], vec![2, 3]]);
        for t in 1..8 {
            let entry = Signing::TorsionInR(t).apply(&honest[4], 99);
            let signature = signature_of(&entry).unwrap();
            // The case this rule is about: the cofactorless check refuses it.
            assert!(key.verify(entry.signed_message(), &signature).is_err());
            assert_eq!(entry.verify(&key), Ok(()), "torsion {t}");
            assert_eq!(verify_batch(std::slice::from_ref(&entry), &key), vec![true]);
            let mut batch = honest.clone();
            batch.insert(2, entry);
            // A cofactorless batch would accept or refuse it depending on its random weight
            // (half the time for the point of order 2); this one accepts it every time.
            for _ in 0..32 {
                assert_eq!(verify_batch(&batch, &key), vec![true; batch.len()]);
            }
            // And the batch equation itself holds, so no fallback to single checks is needed:
            // such entries cannot make a replica check a whole batch one by one.
            let signed: Vec<(&[u8], Signature)> = batch
                .iter()
                .map(|e| (e.signed_message(), signature_of(e).unwrap()))
                .collect();
            for _ in 0..32 {
                assert!(Entry::check_ed25519_batch(
                    signed.iter().map(|(m, s)| (&key, *m, s))
                ));
            }
        }
    }

    #[test]
    fn small_order_r_and_non_canonical_s_are_refused_by_both_checks() {
        let key = signing_key().verifying_key();
        let honest = build_dag(&[vec![], vec![0], vec![1]]);
        let mut refused: Vec<Entry> = (0..8)
            .map(|t| Signing::SmallOrderR(t).apply(&honest[1], 0))
            .collect();
        let non_canonical = Signing::NonCanonicalS.apply(&honest[1], 0);
        // Only the encoding of S is wrong: reduced, the equation holds.
        let signature = signature_of(&non_canonical).unwrap();
        assert!(prepare(&key, non_canonical.signed_message(), &signature).is_none());
        let reduced = Scalar::from_bytes_mod_order(*signature.s_bytes()).to_bytes();
        let reduced = Signature::from_components(*signature.r_bytes(), reduced);
        assert!(Entry::check_ed25519(
            &key,
            non_canonical.signed_message(),
            &reduced
        ));
        refused.push(non_canonical);
        for entry in &refused {
            assert_eq!(entry.verify(&key), Err(LogError::BadSignature));
            let mut batch = honest.clone();
            batch.push(entry.clone());
            assert_eq!(verify_batch(&batch, &key), vec![true, true, true, false]);
        }
    }

    #[test]
    fn keys_with_a_non_canonical_encoding_are_refused() {
        // y = p + 2 .. 2^255 - 1, with and without the sign bit: each is some point's encoding
        // only when reduced mod p, and not the one compression produces.
        let mut found = 0;
        for low in 0xefu8..=0xff {
            for sign in [0, 0x80] {
                let mut bytes = [0xff; 32];
                bytes[0] = low;
                bytes[31] = 0x7f | sign;
                let Ok(key) = VerifyingKey::from_bytes(&bytes) else {
                    continue;
                };
                found += 1;
                assert!(!key_is_acceptable(&key));
                let entries = build_dag(&[vec![]]);
                assert_eq!(verify_batch(&entries, &key), vec![false]);
                assert_eq!(entries[0].verify(&key), Err(LogError::BadSignature));
            }
        }
        assert!(found > 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn batch_verification_flags_exactly_the_tampered_entries(
            shape in dag_shape(24),
            tampered in proptest::collection::vec(any::<(bool, u8)>(), 24),
        ) {
            let key = signing_key().verifying_key();
            let mut entries = build_dag(&shape);
            let mut expected = Vec::new();
            for (entry, (bad, how)) in entries.iter_mut().zip(&tampered) {
                if *bad {
                    *entry = tamper(entry, *how);
                }
                expected.push(!*bad);
            }
            let single: Vec<bool> = entries.iter().map(|e| e.verify(&key).is_ok()).collect();
            prop_assert_eq!(&single, &expected);
            prop_assert_eq!(verify_batch(&entries, &key), expected);
        }

        #[test]
        fn single_and_batch_checks_agree_on_every_batch_composition(
            shape in dag_shape(40),
            signings in proptest::collection::vec((arb_signing(), any::<u64>()), 40),
        ) {
            let key = signing_key().verifying_key();
            let mut entries = build_dag(&shape);
            let mut expected = Vec::new();
            for (entry, (signing, nonce)) in entries.iter_mut().zip(&signings) {
                *entry = signing.apply(entry, *nonce);
                expected.push(signing.accepted());
            }
            let single: Vec<bool> = entries.iter().map(|e| e.verify(&key).is_ok()).collect();
            prop_assert_eq!(&single, &expected);
            // New random weights each time, and batches cut at every size.
            for _ in 0..4 {
                prop_assert_eq!(&verify_batch(&entries, &key), &expected);
            }
            for size in 1..entries.len() {
                let by_chunks: Vec<bool> = entries
                    .chunks(size)
                    .flat_map(|chunk| verify_batch(chunk, &key))
                    .collect();
                prop_assert_eq!(&by_chunks, &expected);
            }
        }
    }

    #[test]
    fn tampering_keeps_ids_distinct() {
        let entry = build_dag(&[vec![]]).remove(0);
        for how in 0..3 {
            let tampered: EntryId = tamper(&entry, how).id();
            assert_ne!(tampered, entry.id());
        }
    }
}
