//! The checks an entry must pass besides its structure: the signature and the Lamport rule.
//!
//! Signatures are checked in batches ([`verify_batch`]): one batch equation for many entries
//! costs well under half of checking them one by one. A failed batch falls back to single checks,
//! so one bad entry never takes good ones down with it.

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

use super::entry::Entry;
use super::error::LogError;

/// Most signatures checked in one batch equation. Larger batches gain little speed, and when a
/// batch fails every entry in it is checked alone.
pub const VERIFY_BATCH_SIZE: usize = 256;

impl Entry {
    /// Checks the signature with the log's signing key (the group's shared signing key).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), LogError> {
        if !key.is_weak() && verify_one(self, key) {
            Ok(())
        } else {
            Err(LogError::BadSignature)
        }
    }
}

/// Checks the signatures of `entries`, all of one log, with the log's signing key: one `bool`
/// per entry, `true` when its signature is valid.
///
/// Gives the same answer as [`Entry::verify`] on each entry, only faster (except for
/// signatures crafted with a small-order component in `R`, which a batch may accept: see
/// "Known gap" in `docs/log-format.md`).
pub fn verify_batch(entries: &[Entry], key: &VerifyingKey) -> Vec<bool> {
    let mut valid = vec![false; entries.len()];
    if key.is_weak() {
        return valid;
    }
    let keys = vec![*key; entries.len().min(VERIFY_BATCH_SIZE)];
    let mut indices = Vec::with_capacity(keys.len());
    let mut messages = Vec::with_capacity(keys.len());
    let mut signatures = Vec::with_capacity(keys.len());
    for (chunk, chunk_valid) in entries
        .chunks(VERIFY_BATCH_SIZE)
        .zip(valid.chunks_mut(VERIFY_BATCH_SIZE))
    {
        indices.clear();
        messages.clear();
        signatures.clear();
        for (index, entry) in chunk.iter().enumerate() {
            // A signature that cannot be valid stays `false` and stays out of the batch.
            if let Some(signature) = signature_of(entry) {
                indices.push(index);
                messages.push(entry.signed_message());
                signatures.push(signature);
            }
        }
        let batch_keys = keys.get(..indices.len()).unwrap_or_default();
        if ed25519_dalek::verify_batch(&messages, &signatures, batch_keys).is_ok() {
            for &index in &indices {
                if let Some(slot) = chunk_valid.get_mut(index) {
                    *slot = true;
                }
            }
        } else {
            for ((&index, message), signature) in indices.iter().zip(&messages).zip(&signatures) {
                if let Some(slot) = chunk_valid.get_mut(index) {
                    *slot = key.verify(message, signature).is_ok();
                }
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

/// The single check, for a key already known not to be weak.
fn verify_one(entry: &Entry, key: &VerifyingKey) -> bool {
    signature_of(entry)
        .is_some_and(|signature| key.verify(entry.signed_message(), &signature).is_ok())
}

/// The entry's signature, unless its `R` half is an encoding that compression never produces.
///
/// The single check compares `R` byte for byte with a compressed point, so it rejects such
/// encodings; the batch equation decompresses `R` and could accept them. Leaving them out of
/// both keeps the two checks in agreement, so every replica keeps the same entries whichever
/// way it batches them.
fn signature_of(entry: &Entry) -> Option<Signature> {
    let signature = Signature::from_slice(entry.signature_bytes()).ok()?;
    is_canonical_point_encoding(signature.r_bytes()).then_some(signature)
}

/// Whether `encoding` could be the output of Edwards point compression: `y` below the field
/// prime `p = 2^255 - 19`, and no sign bit when `x` is zero (`y = 1` or `y = p - 1`).
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
mod tests {
    use ed25519_dalek::SigningKey;
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
