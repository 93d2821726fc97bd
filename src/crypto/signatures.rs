//! Signatures that link identities, and batch verification.
//!
//! | signer | statement |
//! |---|---|
//! | member key | [`labels::SIG_MEMBER_DEVICE`] \|\| group pk \|\| device pk |
//! | account key | [`labels::SIG_ACCOUNT_DISCLOSURE`] \|\| group pk \|\| member pk \|\| account pk |
//! | account key | [`labels::SIG_ACCOUNT_DEVICE`] \|\| account group pk \|\| device pk |
//!
//! Every field is a 32-byte public key, so each statement has exactly one reading.
//!
//! Every signature here, alone or in a batch ([`verify_batch`]), is checked with the one
//! Ed25519 rule that also checks log entries, implemented once in `src/log/verify.rs`
//! (`Entry::check_ed25519`): canonical encodings of the key, `R` and `S`, no key or `R` of
//! small order, and the cofactored equation `[8](S·B − k·A − R) = 0`. A batch passes when every
//! one of its signatures passes alone, and fails otherwise except with probability at most
//! `2^-128`, so every replica accepts the same signatures however it batches them.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{labels, CryptoError};
use crate::log::Entry;

fn verify(key: &VerifyingKey, statement: &[u8], signature: &Signature) -> Result<(), CryptoError> {
    if Entry::check_ed25519(key, statement, signature) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

fn member_device_statement(group_pk: &VerifyingKey, device_pk: &VerifyingKey) -> Vec<u8> {
    [
        labels::SIG_MEMBER_DEVICE,
        group_pk.as_bytes(),
        device_pk.as_bytes(),
    ]
    .concat()
}

/// The member key binds the per-group device key `device_pk` to itself in `group_pk`.
pub fn sign_member_device(
    member: &SigningKey,
    group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
) -> Signature {
    member.sign(&member_device_statement(group_pk, device_pk))
}

/// Checks a [`sign_member_device`] signature.
pub fn verify_member_device(
    member_pk: &VerifyingKey,
    group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
    signature: &Signature,
) -> Result<(), CryptoError> {
    verify(
        member_pk,
        &member_device_statement(group_pk, device_pk),
        signature,
    )
}

fn account_disclosure_statement(
    group_pk: &VerifyingKey,
    member_pk: &VerifyingKey,
    account_pk: &VerifyingKey,
) -> Vec<u8> {
    [
        labels::SIG_ACCOUNT_DISCLOSURE,
        group_pk.as_bytes(),
        member_pk.as_bytes(),
        account_pk.as_bytes(),
    ]
    .concat()
}

/// The account key vouches that the member `member_pk` of `group_pk` is this account.
pub fn sign_account_disclosure(
    account: &SigningKey,
    group_pk: &VerifyingKey,
    member_pk: &VerifyingKey,
) -> Signature {
    let statement = account_disclosure_statement(group_pk, member_pk, &account.verifying_key());
    account.sign(&statement)
}

/// Checks a [`sign_account_disclosure`] signature.
pub fn verify_account_disclosure(
    account_pk: &VerifyingKey,
    group_pk: &VerifyingKey,
    member_pk: &VerifyingKey,
    signature: &Signature,
) -> Result<(), CryptoError> {
    let statement = account_disclosure_statement(group_pk, member_pk, account_pk);
    verify(account_pk, &statement, signature)
}

fn account_device_statement(account_group_pk: &VerifyingKey, device_pk: &VerifyingKey) -> Vec<u8> {
    [
        labels::SIG_ACCOUNT_DEVICE,
        account_group_pk.as_bytes(),
        device_pk.as_bytes(),
    ]
    .concat()
}

/// The account key admits the device whose account-level key is `device_pk` to the account
/// whose account group is `account_group_pk` (`DevicePaired`).
pub fn sign_account_device(
    account: &SigningKey,
    account_group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
) -> Signature {
    account.sign(&account_device_statement(account_group_pk, device_pk))
}

/// Checks a [`sign_account_device`] signature by `account_pk`.
pub fn verify_account_device(
    account_pk: &VerifyingKey,
    account_group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
    signature: &Signature,
) -> Result<(), CryptoError> {
    verify(
        account_pk,
        &account_device_statement(account_group_pk, device_pk),
        signature,
    )
}

/// One signature check to run later, alone or in a batch (see [`verify_batch`]).
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    key: VerifyingKey,
    statement: Vec<u8>,
    signature: Signature,
}

impl SignatureCheck {
    pub(crate) fn new(key: VerifyingKey, statement: Vec<u8>, signature: Signature) -> Self {
        Self {
            key,
            statement,
            signature,
        }
    }

    /// The key that must have signed.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Runs this check alone.
    pub fn verify(&self) -> Result<(), CryptoError> {
        verify(&self.key, &self.statement, &self.signature)
    }
}

/// Checks many signatures at once, cheaper per signature than one by one.
///
/// `Ok` when every check passes [`SignatureCheck::verify`]; when one does not, `Err` except
/// with probability at most `2^-128`. On `Err`, run [`SignatureCheck::verify`] on each to find
/// which fail. Both use the same rule, so a batch of checks that pass alone always passes.
pub fn verify_batch(checks: &[SignatureCheck]) -> Result<(), CryptoError> {
    let batch = checks
        .iter()
        .map(|check| (&check.key, check.statement.as_slice(), &check.signature));
    if Entry::check_ed25519_batch(batch) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use curve25519_dalek::scalar::Scalar;
    use rand::rngs::OsRng;

    fn key() -> SigningKey {
        SigningKey::generate(&mut OsRng)
    }

    #[test]
    fn member_device_binding() {
        let (member, group, device, other) = (key(), key(), key(), key());
        let (g, d) = (group.verifying_key(), device.verifying_key());
        let sig = sign_member_device(&member, &g, &d);
        verify_member_device(&member.verifying_key(), &g, &d, &sig).unwrap();
        let o = other.verifying_key();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(verify_member_device(&o, &g, &d, &sig), bad);
        assert_eq!(
            verify_member_device(&member.verifying_key(), &o, &d, &sig),
            bad
        );
        assert_eq!(
            verify_member_device(&member.verifying_key(), &g, &o, &sig),
            bad
        );
    }

    #[test]
    fn account_disclosure() {
        let (account, group, member, other) = (key(), key(), key(), key());
        let (a, g, m) = (
            account.verifying_key(),
            group.verifying_key(),
            member.verifying_key(),
        );
        let sig = sign_account_disclosure(&account, &g, &m);
        verify_account_disclosure(&a, &g, &m, &sig).unwrap();
        let o = other.verifying_key();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(verify_account_disclosure(&o, &g, &m, &sig), bad);
        assert_eq!(verify_account_disclosure(&a, &o, &m, &sig), bad);
        assert_eq!(verify_account_disclosure(&a, &g, &o, &sig), bad);
    }

    #[test]
    fn account_device() {
        let (account, group, device, other) = (key(), key(), key(), key());
        let (a, g, d) = (
            account.verifying_key(),
            group.verifying_key(),
            device.verifying_key(),
        );
        let sig = sign_account_device(&account, &g, &d);
        verify_account_device(&a, &g, &d, &sig).unwrap();
        let o = other.verifying_key();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(verify_account_device(&o, &g, &d, &sig), bad);
        assert_eq!(verify_account_device(&a, &o, &d, &sig), bad);
        assert_eq!(verify_account_device(&a, &g, &o, &sig), bad);
    }

    #[test]
    fn a_signature_for_one_purpose_fails_for_another() {
        let (account, group) = (key(), key());
        let (a, g) = (account.verifying_key(), group.verifying_key());
        // The account key as member key (account groups): a device binding must not pass
        // as a device pairing, nor the reverse.
        let binding = sign_member_device(&account, &g, &a);
        assert!(verify_account_device(&a, &g, &a, &binding).is_err());
        let pairing = sign_account_device(&account, &g, &a);
        assert!(verify_member_device(&a, &g, &a, &pairing).is_err());
    }

    /// Checks of `statement`s by one signer, every other one with a point of the 8-torsion
    /// added to `R` (and `S` computed for it), which only a cofactored equation accepts.
    fn checks_with_torsion_in_r(count: u8) -> Vec<SignatureCheck> {
        let signer = key();
        (0..count)
            .map(|i| {
                let statement = vec![i; 10];
                let signature = if i % 2 == 0 {
                    signer.sign(&statement)
                } else {
                    Entry::sign_with_torsion_in_r(
                        &signer,
                        &statement,
                        &Scalar::from(u64::from(i) + 1000),
                        &EIGHT_TORSION[usize::from(i) % 7 + 1],
                    )
                };
                SignatureCheck::new(signer.verifying_key(), statement, signature)
            })
            .collect()
    }

    #[test]
    fn a_small_order_component_in_r_passes_alone_and_in_every_batch() {
        let checks = checks_with_torsion_in_r(16);
        for check in &checks {
            check.verify().unwrap();
        }
        // Every batch of consecutive checks, each several times (new random weights).
        for start in 0..checks.len() {
            for end in start..=checks.len() {
                for _ in 0..4 {
                    verify_batch(&checks[start..end]).unwrap();
                }
            }
        }
    }

    #[test]
    fn a_small_order_r_fails_alone_and_fails_every_batch() {
        let signer = key();
        let mut checks = checks_with_torsion_in_r(6);
        for (t, torsion) in EIGHT_TORSION.iter().enumerate() {
            let statement = b"small order".to_vec();
            let signature =
                Entry::sign_with_torsion_in_r(&signer, &statement, &Scalar::ZERO, torsion);
            let bad = SignatureCheck::new(signer.verifying_key(), statement, signature);
            assert_eq!(bad.verify(), Err(CryptoError::BadSignature), "torsion {t}");
            checks.insert(t % 6, bad);
            assert_eq!(verify_batch(&checks), Err(CryptoError::BadSignature));
            checks.remove(t % 6);
            verify_batch(&checks).unwrap();
        }
    }

    #[test]
    fn batches_pass_only_when_all_pass() {
        let signer = key();
        let checks: Vec<_> = (0..8u8)
            .map(|i| {
                let statement = vec![i; 10];
                let signature = signer.sign(&statement);
                SignatureCheck::new(signer.verifying_key(), statement, signature)
            })
            .collect();
        verify_batch(&checks).unwrap();
        verify_batch(&[]).unwrap();
        let mut bad = checks.clone();
        bad[3].statement[0] ^= 1;
        assert_eq!(verify_batch(&bad), Err(CryptoError::BadSignature));
        assert!(bad[3].verify().is_err());
        assert!(bad[2].verify().is_ok());
    }
}
