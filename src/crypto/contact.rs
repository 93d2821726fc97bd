//! Contacts: the contact group both sides derive without a round trip, and the rendezvous
//! points where an account receives contact requests.
//!
//! **Contact group.** X25519 between the own account key and the contact's account key (both
//! converted from Ed25519 by the standard conversion), then HKDF-SHA256(ikm = shared secret,
//! info = [`labels::KDF_CONTACT_GROUP`] || lower account pk || higher account pk), 64 bytes:
//! the group key seed, then the group secret. The exchange is symmetric and the account keys
//! are ordered bytewise, so both sides get the same group.
//!
//! **Rendezvous point.** HMAC-SHA256(key = account pk (32) || seed (32), message = start of
//! the period as a big-endian u64 of unix seconds), rendered as unpadded base64url.

use std::{fmt, num::NonZeroU64};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{
    digest::{Key, KeyInit},
    Hmac, Mac,
};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::{
    kdf::hkdf_sha256, keys::KEY_LEN, labels, secret::secret_bytes, CryptoError, GroupGenesis,
    GroupSecret,
};

/// Default length of a rendezvous period: one day.
pub const DEFAULT_RENDEZVOUS_PERIOD_SECS: u64 = 24 * 60 * 60;

/// Derives the contact group shared by the owner of `own_account` and `contact_account_pk`.
///
/// Both sides get the same [`GroupGenesis`]. Its creation proof can name either side as
/// creator; Ed25519 signing is deterministic, so both sides compute the same proof for the
/// same creator.
pub fn derive_contact_group(
    own_account: &SigningKey,
    contact_account_pk: &VerifyingKey,
) -> Result<GroupGenesis, CryptoError> {
    let own_pk = own_account.verifying_key();
    if own_pk == *contact_account_pk || contact_account_pk.is_weak() {
        return Err(CryptoError::InvalidKey);
    }
    let own_secret = StaticSecret::from(*Zeroizing::new(own_account.to_scalar_bytes()));
    let contact_x25519 = PublicKey::from(contact_account_pk.to_montgomery().to_bytes());
    let shared = own_secret.diffie_hellman(&contact_x25519);
    if !shared.was_contributory() {
        return Err(CryptoError::InvalidKey);
    }
    let (low, high) = if own_pk.as_bytes() < contact_account_pk.as_bytes() {
        (own_pk.as_bytes(), contact_account_pk.as_bytes())
    } else {
        (contact_account_pk.as_bytes(), own_pk.as_bytes())
    };
    let out =
        hkdf_sha256::<{ 2 * KEY_LEN }>(shared.as_bytes(), &[labels::KDF_CONTACT_GROUP, low, high])?;
    let mut group_seed = Zeroizing::new([0u8; KEY_LEN]);
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    group_seed.copy_from_slice(&out[..KEY_LEN]);
    secret.copy_from_slice(&out[KEY_LEN..]);
    Ok(GroupGenesis::from_parts(
        SigningKey::from_bytes(&group_seed),
        GroupSecret::from_zeroizing(secret),
    ))
}

/// Derives the account group: the private group of every device of one account.
///
/// Every device holding the account-proof key derives the same group, so an imported device
/// finds the account log without being told where it is. Its creation proof names the
/// account key as creator (members of the account group are the account key).
pub fn derive_account_group(account_proof: &SigningKey) -> Result<GroupGenesis, CryptoError> {
    let out =
        hkdf_sha256::<{ 2 * KEY_LEN }>(account_proof.as_bytes(), &[labels::KDF_ACCOUNT_GROUP])?;
    let mut group_seed = Zeroizing::new([0u8; KEY_LEN]);
    let mut secret = Zeroizing::new([0u8; KEY_LEN]);
    group_seed.copy_from_slice(&out[..KEY_LEN]);
    secret.copy_from_slice(&out[KEY_LEN..]);
    Ok(GroupGenesis::from_parts(
        SigningKey::from_bytes(&group_seed),
        GroupSecret::from_zeroizing(secret),
    ))
}

secret_bytes!(
    /// The 32-byte seed of an account's contact rendezvous points; resetting the contact
    /// reference draws a new one, so old references stop reaching the account.
    RendezvousSeed
);

/// A 32-byte rendezvous point: where an account listens for contact requests during one
/// period (a rendezvous namespace and a DHT key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RendezvousPoint([u8; 32]);

impl RendezvousPoint {
    /// The point of `account_pk` with `seed` for the period starting at `period_start` (unix
    /// seconds; see [`period_start`]).
    pub fn derive(account_pk: &VerifyingKey, seed: &RendezvousSeed, period_start: u64) -> Self {
        let mut key = Key::<Hmac<Sha256>>::default();
        key[..KEY_LEN].copy_from_slice(account_pk.as_bytes());
        key[KEY_LEN..].copy_from_slice(seed.as_bytes());
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
        key.as_mut_slice().zeroize();
        mac.update(&period_start.to_be_bytes());
        Self(mac.finalize().into_bytes().into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Unpadded base64url (43 characters): the rendezvous namespace.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Display for RendezvousPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for RendezvousPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RendezvousPoint({})", self.to_base64url())
    }
}

/// The start (unix seconds) of the period of length `period_secs` that contains `unix_secs`.
/// Periods start at multiples of their length since the unix epoch.
pub fn period_start(unix_secs: u64, period_secs: NonZeroU64) -> u64 {
    unix_secs - unix_secs % period_secs.get()
}

/// The points to advertise at `unix_secs`: the current one first; then, within
/// `margin_secs` before the period ends, the next one; and within `margin_secs` after it
/// started, the previous one. Peers whose clocks are off by less than the margin then still
/// meet.
pub fn points_to_advertise(
    account_pk: &VerifyingKey,
    seed: &RendezvousSeed,
    unix_secs: u64,
    period_secs: NonZeroU64,
    margin_secs: u64,
) -> Vec<RendezvousPoint> {
    let start = period_start(unix_secs, period_secs);
    let point = |start| RendezvousPoint::derive(account_pk, seed, start);
    let mut points = vec![point(start)];
    if let Some(next) = start.checked_add(period_secs.get()) {
        if next - unix_secs <= margin_secs {
            points.push(point(next));
        }
    }
    if let Some(previous) = start.checked_sub(period_secs.get()) {
        if unix_secs - start < margin_secs {
            points.push(point(previous));
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::GroupKeys;
    use proptest::prelude::*;

    const DAY: NonZeroU64 = match NonZeroU64::new(DEFAULT_RENDEZVOUS_PERIOD_SECS) {
        Some(day) => day,
        None => NonZeroU64::MIN,
    };

    fn group_of(genesis: &GroupGenesis) -> GroupKeys {
        GroupKeys::new(genesis.group_pk(), genesis.secret().clone()).unwrap()
    }

    proptest! {
        #[test]
        fn both_sides_derive_the_same_group(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            prop_assume!(a != b);
            let (a, b) = (SigningKey::from_bytes(&a), SigningKey::from_bytes(&b));
            let ab = derive_contact_group(&a, &b.verifying_key()).unwrap();
            let ba = derive_contact_group(&b, &a.verifying_key()).unwrap();
            prop_assert_eq!(ab.group_pk(), ba.group_pk());
            prop_assert_eq!(ab.secret().as_bytes(), ba.secret().as_bytes());
            let creator = a.verifying_key();
            let (keys_ab, proof_ab) = ab.finish(&creator).unwrap();
            let (_, proof_ba) = ba.finish(&creator).unwrap();
            prop_assert_eq!(&proof_ab, &proof_ba);
            proof_ab.verify_for(&keys_ab).unwrap();
        }
    }

    #[test]
    fn a_third_account_gets_another_group() {
        let [a, b, c] = [1u8, 2, 3].map(|i| SigningKey::from_bytes(&[i; 32]));
        let ab = derive_contact_group(&a, &b.verifying_key()).unwrap();
        let ac = derive_contact_group(&a, &c.verifying_key()).unwrap();
        let cb = derive_contact_group(&c, &b.verifying_key()).unwrap();
        assert_ne!(ab.group_pk(), ac.group_pk());
        assert_ne!(ab.group_pk(), cb.group_pk());
        assert_ne!(
            group_of(&ab).link_key().as_bytes(),
            group_of(&ac).link_key().as_bytes()
        );
    }

    #[test]
    fn no_contact_group_with_oneself_or_a_weak_key() {
        let a = SigningKey::from_bytes(&[1; 32]);
        assert!(derive_contact_group(&a, &a.verifying_key()).is_err());
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(derive_contact_group(&a, &weak).is_err());
    }

    #[test]
    fn periods_start_at_multiples_of_their_length() {
        assert_eq!(period_start(0, DAY), 0);
        assert_eq!(period_start(86_399, DAY), 0);
        assert_eq!(period_start(86_400, DAY), 86_400);
        assert_eq!(period_start(1_700_000_000, DAY), 1_699_920_000);
        assert_eq!(period_start(u64::MAX, DAY) % 86_400, 0);
    }

    #[test]
    fn points_change_with_period_seed_and_account() {
        let account = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let other = SigningKey::from_bytes(&[2; 32]).verifying_key();
        let seed = RendezvousSeed::from_bytes([9; 32]);
        let p = RendezvousPoint::derive(&account, &seed, 86_400);
        assert_eq!(p, RendezvousPoint::derive(&account, &seed, 86_400));
        assert_ne!(p, RendezvousPoint::derive(&account, &seed, 2 * 86_400));
        assert_ne!(p, RendezvousPoint::derive(&other, &seed, 86_400));
        let new_seed = RendezvousSeed::from_bytes([10; 32]);
        assert_ne!(p, RendezvousPoint::derive(&account, &new_seed, 86_400));
        assert_eq!(p.to_base64url().len(), 43);
        assert_eq!(format!("{p}"), p.to_base64url());
    }

    #[test]
    fn the_next_and_previous_points_are_advertised_near_the_boundary() {
        let account = SigningKey::from_bytes(&[1; 32]).verifying_key();
        let seed = RendezvousSeed::from_bytes([9; 32]);
        let at = |start| RendezvousPoint::derive(&account, &seed, start);
        let advertise = |now| points_to_advertise(&account, &seed, now, DAY, 600);
        let day = 86_400;
        assert_eq!(advertise(10 * day + 1_000), vec![at(10 * day)]);
        assert_eq!(advertise(11 * day - 600), vec![at(10 * day), at(11 * day)]);
        assert_eq!(advertise(11 * day + 599), vec![at(11 * day), at(10 * day)]);
        assert_eq!(advertise(11 * day + 600), vec![at(11 * day)]);
        // No previous period before the epoch, no next one past the end of time.
        assert_eq!(advertise(0), vec![at(0)]);
        assert_eq!(advertise(u64::MAX)[0], at(period_start(u64::MAX, DAY)));
    }

    #[test]
    fn debug_shows_no_seed() {
        let seed = RendezvousSeed::from_bytes([0x9a; 32]);
        assert!(!format!("{seed:?}").contains("9a9a"));
    }
}
