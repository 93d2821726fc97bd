//! Group invitations and contact references (`group::reference`), as clients pass them to
//! `GroupJoin` / `ContactRequestSend`, and the creation proofs they carry.
//!
//! Selector byte, then:
//! - even: bytes as given by a client, to every decoder; what decodes re-encodes to bytes that
//!   decode to the same reference;
//! - odd: edits (see `common::mutate`) of a valid group invitation or contact reference, to
//!   reach the checks behind the creation proof's signature.
#![no_main]

mod common;

use std::sync::LazyLock;

use berty_node::{
    crypto::{CreationProof, RendezvousSeed, SigningKey},
    group::{ContactReference, GroupReference},
};
use libfuzzer_sys::fuzz_target;

static GROUP_SAMPLE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    GroupReference {
        keys: common::GROUP.keys.clone(),
        proof: common::GROUP.proof.clone(),
    }
    .encode()
});

static CONTACT_SAMPLE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    ContactReference {
        account_pk: SigningKey::from_bytes(&[4; 32]).verifying_key(),
        rendezvous_seed: RendezvousSeed::from_bytes([8; 32]),
    }
    .encode()
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        decode_all(rest);
    } else if selector & 2 == 0 {
        decode_all(&common::mutate(&GROUP_SAMPLE, rest));
    } else {
        decode_all(&common::mutate(&CONTACT_SAMPLE, rest));
    }
});

fn decode_all(bytes: &[u8]) {
    if let Ok(reference) = GroupReference::decode(bytes) {
        let encoded = reference.encode();
        let back = GroupReference::decode(&encoded).expect("a re-encoded invitation decodes");
        assert_eq!(back.keys.group_pk(), reference.keys.group_pk());
        assert_eq!(
            back.keys.secret().as_bytes(),
            reference.keys.secret().as_bytes()
        );
        assert_eq!(back.proof.encode(), reference.proof.encode());
        assert_eq!(back.encode(), encoded, "group reference round trip");
        assert!(reference.proof.verify_for(&reference.keys).is_ok());
    }
    if let Ok(reference) = ContactReference::decode(bytes) {
        let encoded = reference.encode();
        let back = ContactReference::decode(&encoded).expect("a re-encoded reference decodes");
        assert_eq!(back.account_pk, reference.account_pk);
        assert_eq!(
            back.rendezvous_seed.as_bytes(),
            reference.rendezvous_seed.as_bytes()
        );
        assert_eq!(back.encode(), encoded, "contact reference round trip");
    }
    if let Ok(proof) = CreationProof::decode(bytes) {
        let encoded = proof.encode();
        let back = CreationProof::decode(&encoded).expect("a re-encoded proof decodes");
        assert_eq!(back.encode(), encoded, "creation proof round trip");
        assert_eq!(back.creator(), proof.creator());
        let _ = proof.verify_for(&common::GROUP.keys);
    }
}
