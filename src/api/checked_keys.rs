//! Group keys the API has already checked, so that a client sending to the same group again is
//! not charged a curve point decompression per call (about 4 µs of a message's CPU).

use std::{
    collections::HashSet,
    sync::{PoisonError, RwLock},
};

use crate::{error::Error, group::parse_key};

/// How many checked keys are remembered; when full, the set starts over (a node serves a
/// handful of groups, so this only bounds what a client naming random keys can make it hold).
const MAX_CHECKED_KEYS: usize = 4_096;

/// 32-byte strings known to be valid Ed25519 public keys (canonical, not weak).
#[derive(Debug, Default)]
pub(crate) struct CheckedKeys {
    keys: RwLock<HashSet<[u8; 32]>>,
}

impl CheckedKeys {
    /// `bytes` as a public key, or `INVALID_ARGUMENT` naming `field`: the same answer as
    /// [`parse_key`], without parsing a key seen before.
    pub(crate) fn check(&self, field: &str, bytes: &[u8]) -> Result<[u8; 32], Error> {
        if let Ok(key) = <[u8; 32]>::try_from(bytes) {
            let known = self
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&key);
            if known {
                return Ok(key);
            }
        }
        let key = parse_key(field, bytes)?.to_bytes();
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_CHECKED_KEYS {
            keys.clear();
        }
        keys.insert(key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    #[test]
    fn a_key_is_checked_once_and_bad_keys_are_refused_every_time() {
        let checked = CheckedKeys::default();
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
        assert_eq!(checked.check("group_pub_key", &key).ok(), Some(key));
        assert_eq!(checked.check("group_pub_key", &key).ok(), Some(key));
        assert_eq!(checked.keys.read().map(|k| k.len()).ok(), Some(1));

        // A y with no point on the curve, then the wrong length: refused, and not remembered.
        let off_curve = (2u8..)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| parse_key("y", bytes).is_err())
            .unwrap_or_default();
        for bad in [&off_curve[..], &key[..31]] {
            for _ in 0..2 {
                let err = checked.check("group_pub_key", bad).err();
                assert!(
                    matches!(&err, Some(Error::InvalidArgument(m)) if m.starts_with("group_pub_key")),
                    "{err:?}"
                );
            }
        }
        assert_eq!(checked.keys.read().map(|k| k.len()).ok(), Some(1));
    }

    #[test]
    fn the_set_starts_over_when_full() {
        let checked = CheckedKeys::default();
        for seed in 0..=MAX_CHECKED_KEYS {
            let mut secret = [0u8; 32];
            secret[..8].copy_from_slice(&(seed as u64).to_le_bytes());
            let key = SigningKey::from_bytes(&secret).verifying_key().to_bytes();
            assert!(checked.check("group_pub_key", &key).is_ok());
        }
        assert_eq!(checked.keys.read().map(|k| k.len()).ok(), Some(1));
    }
}
