//! What the link key proves and names: the sync hello's proof tags.
//!
//! **Link proof tag.** A replica proves it holds a group's link key without naming the group:
//! `HMAC-SHA256(key = link key, message = MAC_LINK_PROOF || requester nonce (32) || responder
//! nonce (32) || prover peer id bytes)`. Both nonces are fresh per exchange, so tags are never
//! replayed or linked across exchanges, and the prover's peer id stops a peer from passing
//! another's tags off as its own. Whoever does not hold the link key learns nothing from a tag.

use hmac::{
    digest::{Key, KeyInit},
    Hmac, Mac,
};
use sha2::Sha256;
use zeroize::Zeroize;

use super::{keys::KEY_LEN, labels, LinkKey};

/// Length of a nonce of the sync hello.
pub const LINK_NONCE_LEN: usize = 32;
/// Length of a link proof tag.
pub const LINK_TAG_LEN: usize = 32;

/// The tag by which `prover` (its peer id bytes) proves it holds `link_key` in the exchange of
/// `requester_nonce` and `responder_nonce`.
pub fn link_proof_tag(
    link_key: &LinkKey,
    requester_nonce: &[u8; LINK_NONCE_LEN],
    responder_nonce: &[u8; LINK_NONCE_LEN],
    prover: &[u8],
) -> [u8; LINK_TAG_LEN] {
    // HMAC pads a 32-byte key with zeros to its 64-byte block.
    let mut key = Key::<Hmac<Sha256>>::default();
    key[..KEY_LEN].copy_from_slice(link_key.as_bytes());
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    key.as_mut_slice().zeroize();
    mac.update(labels::MAC_LINK_PROOF);
    mac.update(requester_nonce);
    mac.update(responder_nonce);
    mac.update(prover);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> LinkKey {
        LinkKey::from_bytes([byte; 32])
    }

    #[test]
    fn tags_depend_on_every_input() {
        let base = link_proof_tag(&key(1), &[2; 32], &[3; 32], b"peer");
        assert_eq!(base, link_proof_tag(&key(1), &[2; 32], &[3; 32], b"peer"));
        assert_ne!(base, link_proof_tag(&key(9), &[2; 32], &[3; 32], b"peer"));
        assert_ne!(base, link_proof_tag(&key(1), &[9; 32], &[3; 32], b"peer"));
        assert_ne!(base, link_proof_tag(&key(1), &[2; 32], &[9; 32], b"peer"));
        assert_ne!(base, link_proof_tag(&key(1), &[2; 32], &[3; 32], b"peeR"));
    }
}
