//! Signatures that link identities, and batch verification.
//!
//! | signer | statement |
//! |---|---|
//! | member key | [`labels::SIG_MEMBER_DEVICE`] \|\| group pk \|\| device pk |
//! | account key | [`labels::SIG_ACCOUNT_DISCLOSURE`] \|\| group pk \|\| member pk \|\| account pk |
//! | account key | [`labels::SIG_ACCOUNT_DEVICE`] \|\| account pk \|\| device pk |
//!
//! Every field is a 32-byte public key, so each statement has exactly one reading.
//! Verification is strict (RFC 8032 checks plus no low-order keys or `R` values).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use super::{labels, CryptoError};

fn verify(key: &VerifyingKey, statement: &[u8], signature: &Signature) -> Result<(), CryptoError> {
    key.verify_strict(statement, signature)
        .map_err(|_| CryptoError::BadSignature)
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

fn account_device_statement(account_pk: &VerifyingKey, device_pk: &VerifyingKey) -> Vec<u8> {
    [
        labels::SIG_ACCOUNT_DEVICE,
        account_pk.as_bytes(),
        device_pk.as_bytes(),
    ]
    .concat()
}

/// The account key admits the new device `device_pk` (device pairing).
pub fn sign_account_device(account: &SigningKey, device_pk: &VerifyingKey) -> Signature {
    account.sign(&account_device_statement(
        &account.verifying_key(),
        device_pk,
    ))
}

/// Checks a [`sign_account_device`] signature.
pub fn verify_account_device(
    account_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
    signature: &Signature,
) -> Result<(), CryptoError> {
    verify(
        account_pk,
        &account_device_statement(account_pk, device_pk),
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

    /// Runs this check alone, strictly.
    pub fn verify(&self) -> Result<(), CryptoError> {
        verify(&self.key, &self.statement, &self.signature)
    }
}

/// Checks many signatures at once, cheaper per signature than one by one.
///
/// `Ok` means every check passes. On `Err`, at least one fails: run
/// [`SignatureCheck::verify`] on each to find which. Batch checking is the plain (not strict)
/// Ed25519 equation; keys reaching here came through [`super::parse_public_key`], which
/// refuses low-order keys.
pub fn verify_batch(checks: &[SignatureCheck]) -> Result<(), CryptoError> {
    let statements: Vec<&[u8]> = checks.iter().map(|c| c.statement.as_slice()).collect();
    let signatures: Vec<Signature> = checks.iter().map(|c| c.signature).collect();
    let keys: Vec<VerifyingKey> = checks.iter().map(|c| c.key).collect();
    ed25519_dalek::verify_batch(&statements, &signatures, &keys)
        .map_err(|_| CryptoError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let (account, device, other) = (key(), key(), key());
        let (a, d) = (account.verifying_key(), device.verifying_key());
        let sig = sign_account_device(&account, &d);
        verify_account_device(&a, &d, &sig).unwrap();
        let o = other.verifying_key();
        let bad = Err(CryptoError::BadSignature);
        assert_eq!(verify_account_device(&o, &d, &sig), bad);
        assert_eq!(verify_account_device(&a, &o, &sig), bad);
    }

    #[test]
    fn a_signature_for_one_purpose_fails_for_another() {
        let (account, group) = (key(), key());
        let (a, g) = (account.verifying_key(), group.verifying_key());
        // The account key as member key (account groups): a device binding must not pass
        // as a device pairing, nor the reverse.
        let binding = sign_member_device(&account, &g, &a);
        assert!(verify_account_device(&a, &a, &binding).is_err());
        let pairing = sign_account_device(&account, &g);
        assert!(verify_member_device(&a, &a, &g, &pairing).is_err());
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
