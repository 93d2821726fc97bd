//! What the link key proves and names: the sync hello's proof tags and the group's rotating
//! discovery keys.
//!
//! **Discovery key.** Members (and mirrors) of a group find each other in the DHT under
//! `HMAC-SHA256(key = link key, message = MAC_LINK_DISCOVERY || big-endian u64 start of the
//! period)`, period [`DISCOVERY_PERIOD_SECS`]. Knowing the group public key is not enough to
//! list its members, and the keys of two periods cannot be linked without the link key.
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

use rand::{CryptoRng, RngCore};

use super::{envelope, keys::KEY_LEN, labels, CryptoError, LinkKey, SymmetricKey};

/// Length of a nonce of the sync hello.
pub const LINK_NONCE_LEN: usize = 32;
/// Length of a link proof tag.
pub const LINK_TAG_LEN: usize = 32;

/// Version byte of a sealed gossip announcement.
const GOSSIP_VERSION: u8 = 1;

/// The gossipsub topic of a group's announcements: `bn1-` and 32 hex digits of
/// `HMAC-SHA256(link key, MAC_LINK_TOPIC)`. Only link-key holders can name it.
pub fn gossip_topic(link_key: &LinkKey) -> String {
    let mut mac = mac(link_key);
    mac.update(labels::MAC_LINK_TOPIC);
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    format!("bn1-{}", hex::encode(&digest[..16]))
}

fn gossip_key(link_key: &LinkKey) -> SymmetricKey {
    let mut mac = mac(link_key);
    mac.update(labels::MAC_LINK_GOSSIP_KEY);
    SymmetricKey::from_bytes(mac.finalize().into_bytes().into())
}

/// Seals an announcement for a group's topic: version `1` || XChaCha20-Poly1305 envelope
/// under `HMAC-SHA256(link key, MAC_LINK_GOSSIP_KEY)` with associated data `AD_GOSSIP ||
/// topic`.
pub fn seal_announcement<R: CryptoRng + RngCore>(
    link_key: &LinkKey,
    topic: &str,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CryptoError> {
    let ad = [labels::AD_GOSSIP, topic.as_bytes()].concat();
    let sealed = envelope::seal(&gossip_key(link_key), &ad, plaintext, rng)?;
    let mut out = Vec::with_capacity(1 + sealed.len());
    out.push(GOSSIP_VERSION);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens an announcement sealed by [`seal_announcement`].
pub fn open_announcement(
    link_key: &LinkKey,
    topic: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    match sealed.split_first() {
        Some((&GOSSIP_VERSION, rest)) => {
            let ad = [labels::AD_GOSSIP, topic.as_bytes()].concat();
            envelope::open(&gossip_key(link_key), &ad, rest)
        }
        _ => Err(CryptoError::Malformed {
            what: "gossip announcement",
        }),
    }
}

/// Rotation period of discovery keys: one day.
pub const DISCOVERY_PERIOD_SECS: u64 = 24 * 60 * 60;
/// Around a period boundary, both periods' keys are used for this long (clock skew).
pub const DISCOVERY_MARGIN_SECS: u64 = 60 * 60;

fn mac(link_key: &LinkKey) -> Hmac<Sha256> {
    // HMAC pads a 32-byte key with zeros to its 64-byte block.
    let mut key = Key::<Hmac<Sha256>>::default();
    key[..KEY_LEN].copy_from_slice(link_key.as_bytes());
    let mac = <Hmac<Sha256> as KeyInit>::new(&key);
    key.as_mut_slice().zeroize();
    mac
}

/// The discovery key of a group for the period starting at `period_start` (unix seconds, a
/// multiple of [`DISCOVERY_PERIOD_SECS`]).
pub fn discovery_key(link_key: &LinkKey, period_start: u64) -> [u8; 32] {
    let mut mac = mac(link_key);
    mac.update(labels::MAC_LINK_DISCOVERY);
    mac.update(&period_start.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// The discovery keys to use at `unix_secs`: the current period's, plus the next one's
/// within [`DISCOVERY_MARGIN_SECS`] of its start and the previous one's within the margin
/// after the current one started.
pub fn discovery_keys(link_key: &LinkKey, unix_secs: u64) -> Vec<[u8; 32]> {
    let start = unix_secs - unix_secs % DISCOVERY_PERIOD_SECS;
    let mut keys = vec![discovery_key(link_key, start)];
    let next = start.saturating_add(DISCOVERY_PERIOD_SECS);
    if next - unix_secs <= DISCOVERY_MARGIN_SECS {
        keys.push(discovery_key(link_key, next));
    }
    if unix_secs - start <= DISCOVERY_MARGIN_SECS && start >= DISCOVERY_PERIOD_SECS {
        keys.push(discovery_key(link_key, start - DISCOVERY_PERIOD_SECS));
    }
    keys
}

/// The tag by which `prover` (its peer id bytes) proves it holds `link_key` in the exchange of
/// `requester_nonce` and `responder_nonce`.
pub fn link_proof_tag(
    link_key: &LinkKey,
    requester_nonce: &[u8; LINK_NONCE_LEN],
    responder_nonce: &[u8; LINK_NONCE_LEN],
    prover: &[u8],
) -> [u8; LINK_TAG_LEN] {
    let mut mac = mac(link_key);
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
    fn discovery_keys_rotate_and_overlap_at_boundaries() {
        let day = DISCOVERY_PERIOD_SECS;
        let mid = 10 * day + day / 2;
        assert_eq!(
            discovery_keys(&key(1), mid),
            vec![discovery_key(&key(1), 10 * day)]
        );
        assert_ne!(
            discovery_key(&key(1), 10 * day),
            discovery_key(&key(1), 11 * day)
        );
        assert_ne!(
            discovery_key(&key(1), 10 * day),
            discovery_key(&key(2), 10 * day)
        );
        let late = 11 * day - 10;
        assert_eq!(
            discovery_keys(&key(1), late),
            vec![
                discovery_key(&key(1), 10 * day),
                discovery_key(&key(1), 11 * day)
            ]
        );
        let early = 11 * day + 10;
        assert_eq!(
            discovery_keys(&key(1), early),
            vec![
                discovery_key(&key(1), 11 * day),
                discovery_key(&key(1), 10 * day)
            ]
        );
    }

    #[test]
    fn announcements_open_only_with_the_link_key_and_topic() {
        let topic = gossip_topic(&key(1));
        assert!(topic.starts_with("bn1-") && topic.len() == 36);
        assert_ne!(topic, gossip_topic(&key(2)));
        let sealed = seal_announcement(&key(1), &topic, b"heads", &mut rand::rngs::OsRng).unwrap();
        assert_eq!(
            open_announcement(&key(1), &topic, &sealed).unwrap(),
            b"heads"
        );
        assert!(open_announcement(&key(2), &topic, &sealed).is_err());
        assert!(open_announcement(&key(1), "bn1-other", &sealed).is_err());
        assert!(open_announcement(&key(1), &topic, &sealed[1..]).is_err());
        assert!(open_announcement(&key(1), &topic, &[]).is_err());
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
