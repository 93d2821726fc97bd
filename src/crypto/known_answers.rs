//! Known-answer tests: published vectors for the primitives as we call them, and our own
//! derivations checked against `tests/vectors/crypto.json`, so any accidental change to a
//! label, a layout or a derivation shows. Failing checks list every differing value.

use std::num::NonZeroU64;

use ed25519_dalek::{Signer, SigningKey};
use hkdf::Hkdf;
use serde_json::Value;
use sha2::Sha256;
use x25519_dalek::{x25519, X25519_BASEPOINT_BYTES};

use super::{
    derive_contact_group, derive_member_key, kdf::hkdf_sha256, period_start, ChainKey,
    CreationProof, GroupGenesis, GroupKeys, GroupSecret, RendezvousPoint, RendezvousSeed,
    SenderChain,
};

/// The known-answer vectors, shared with other implementations.
const VECTORS: &str = include_str!("../../tests/vectors/crypto.json");

/// One section of the vectors file, with a list of mismatches reported all at once.
struct Section {
    name: &'static str,
    values: Value,
    mismatches: Vec<String>,
}

impl Section {
    fn load(name: &'static str) -> Self {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let values = all
            .get(name)
            .unwrap_or_else(|| panic!("no section {name}"))
            .clone();
        Self {
            name,
            values,
            mismatches: Vec::new(),
        }
    }

    fn str(&self, field: &str) -> &str {
        self.values
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{}.{field} missing", self.name))
    }

    fn u64(&self, field: &str) -> u64 {
        self.values
            .get(field)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{}.{field} missing", self.name))
    }

    fn bytes(&self, field: &str) -> Vec<u8> {
        hex::decode(self.str(field)).unwrap()
    }

    fn key(&self, field: &str) -> [u8; 32] {
        self.bytes(field).try_into().unwrap()
    }

    fn expect(&mut self, field: &str, actual: impl AsRef<[u8]>) {
        self.expect_str(field, &hex::encode(actual));
    }

    fn expect_str(&mut self, field: &str, actual: &str) {
        let expected = self.values.get(field).and_then(Value::as_str);
        if expected != Some(actual) {
            self.mismatches.push(format!(
                "{}.{field}: expected {expected:?}, got \"{actual}\"",
                self.name
            ));
        }
    }

    fn finish(self) {
        assert!(
            self.mismatches.is_empty(),
            "\n{}",
            self.mismatches.join("\n")
        );
    }
}

#[test]
fn ed25519_rfc8032_test_1() {
    let mut v = Section::load("ed25519_rfc8032_test1");
    let key = SigningKey::from_bytes(&v.key("secret_key"));
    let message = v.bytes("message");
    v.expect("public_key", key.verifying_key().as_bytes());
    v.expect("signature", key.sign(&message).to_bytes());
    let signature = super::parse_signature(&v.bytes("signature")).unwrap();
    super::parse_public_key(&v.bytes("public_key"))
        .unwrap()
        .verify_strict(&message, &signature)
        .unwrap();
    v.finish();
}

#[test]
fn hkdf_sha256_rfc5869() {
    // Test case 1, with the info split in two parts as our derivations pass label and key.
    let mut v = Section::load("hkdf_sha256_rfc5869_case1");
    let (ikm, salt, info) = (v.bytes("ikm"), v.bytes("salt"), v.bytes("info"));
    let mut okm = vec![0u8; v.u64("length") as usize];
    Hkdf::<Sha256>::new(Some(&salt), &ikm)
        .expand_multi_info(&[&info[..4], &info[4..]], &mut okm)
        .unwrap();
    v.expect("okm", &okm);
    v.finish();

    // Test case 3 (no salt, no info) through our own helper.
    let mut v = Section::load("hkdf_sha256_rfc5869_case3");
    let okm = hkdf_sha256::<42>(&v.bytes("ikm"), &[]).unwrap();
    v.expect("okm", okm.as_ref());
    v.finish();
}

#[test]
fn ed25519_to_x25519_conversion_is_consistent() {
    // The X25519 public key of the converted secret equals the converted public key.
    for seed in [[0u8; 32], [1; 32], [0xff; 32]] {
        let key = SigningKey::from_bytes(&seed);
        let public = x25519(key.to_scalar_bytes(), X25519_BASEPOINT_BYTES);
        assert_eq!(public, key.verifying_key().to_montgomery().to_bytes());
    }
}

#[test]
fn member_key() {
    let mut v = Section::load("member_key");
    let proof = SigningKey::from_bytes(&v.key("account_proof_seed"));
    let group_pk = SigningKey::from_bytes(&v.key("group_seed")).verifying_key();
    v.expect("group_pk", group_pk.as_bytes());
    let member = derive_member_key(&proof, &group_pk).unwrap();
    v.expect("member_seed", member.as_bytes());
    v.expect("member_pk", member.verifying_key().as_bytes());
    v.finish();
}

#[test]
fn group_keys_and_creation_proof() {
    let mut v = Section::load("group");
    let group_key = SigningKey::from_bytes(&v.key("group_seed"));
    let secret = GroupSecret::from_bytes(v.key("group_secret"));
    let creator = SigningKey::from_bytes(&v.key("creator_member_seed")).verifying_key();
    v.expect("group_pk", group_key.verifying_key().as_bytes());
    let keys = GroupKeys::new(group_key.verifying_key(), secret.clone()).unwrap();
    v.expect("signing_seed", keys.signing_key().as_bytes());
    v.expect("signing_pk", keys.signing_pk().as_bytes());
    v.expect("link_key", keys.link_key().as_bytes());
    v.expect("metadata_key", keys.metadata_key().as_bytes());
    v.expect("header_key", keys.header_key().as_bytes());
    let (_, proof) = GroupGenesis::from_parts(group_key, secret)
        .finish(&creator)
        .unwrap();
    v.expect("creation_proof", proof.encode());
    let stored = v.bytes("creation_proof");
    v.finish();
    CreationProof::decode(&stored)
        .unwrap()
        .verify_for(&keys)
        .unwrap();
}

#[test]
fn ratchet_steps() {
    let mut v = Section::load("ratchet");
    let group_pk = SigningKey::from_bytes(&v.key("group_seed")).verifying_key();
    let chain_key = ChainKey::from_bytes(v.key("chain_key"));
    let mut chain = SenderChain::from_parts(group_pk, chain_key, v.u64("counter"));
    for step in 0..3 {
        let (counter, message_key) = chain.next_key().unwrap();
        assert_eq!(counter, v.u64("counter") + step);
        v.expect(&format!("message_key_{step}"), message_key.as_bytes());
        v.expect(
            &format!("chain_key_{}", step + 1),
            chain.chain_key().as_bytes(),
        );
    }
    v.expect("sender_state_after_3", chain.to_bytes().as_slice());
    v.finish();
}

#[test]
fn contact_group() {
    let mut v = Section::load("contact_group");
    let a = SigningKey::from_bytes(&v.key("account_a_seed"));
    let b = SigningKey::from_bytes(&v.key("account_b_seed"));
    let genesis = derive_contact_group(&a, &b.verifying_key()).unwrap();
    v.expect("group_pk", genesis.group_pk().as_bytes());
    v.expect("group_secret", genesis.secret().as_bytes());
    let mirrored = derive_contact_group(&b, &a.verifying_key()).unwrap();
    assert_eq!(mirrored.group_pk(), genesis.group_pk());
    v.finish();
}

#[test]
fn rendezvous_point() {
    let mut v = Section::load("rendezvous");
    let account_pk = SigningKey::from_bytes(&v.key("account_seed")).verifying_key();
    v.expect("account_pk", account_pk.as_bytes());
    let seed = RendezvousSeed::from_bytes(v.key("seed"));
    let period = NonZeroU64::new(v.u64("period_secs")).unwrap();
    let start = period_start(v.u64("unix_time"), period);
    assert_eq!(start, v.u64("period_start"));
    let point = RendezvousPoint::derive(&account_pk, &seed, start);
    v.expect("point", point.as_bytes());
    v.expect_str("point_base64url", &point.to_base64url());
    v.finish();
}
