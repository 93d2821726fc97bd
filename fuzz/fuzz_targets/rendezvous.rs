//! Rendezvous messages (`rendezvous::wire`, `/rendezvous/1.0.0`), discover cookies and signed
//! peer records in both formats (`rendezvous::record`).
//!
//! Selector byte, then:
//! - `0`, `1`: a request / response stream: read with the server's caps; a message that reads
//!   is written and read back unchanged, and the records and cookies it carries are checked;
//! - `2`: bytes as a registration's signed peer record;
//! - `3`, `4`: a peer record payload signed by a known key in the legacy / standard envelope,
//!   so the payload parsing behind the signature is reached;
//! - `5`: bytes as a discover cookie (round trip).
#![no_main]

use std::sync::LazyLock;

use berty_node::rendezvous::{
    record::{
        self, RecordFormat, LEGACY_DOMAIN, LEGACY_PAYLOAD_TYPE, STANDARD_DOMAIN,
        STANDARD_PAYLOAD_TYPE,
    },
    wire::{read_message, write_message, Message, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES},
    DiscoverCookie,
};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use libp2p::{core::SignedEnvelope, identity::Keypair};

static KEY: LazyLock<Keypair> =
    LazyLock::new(|| Keypair::ed25519_from_bytes([2; 32]).expect("a key"));

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 6 {
        0 => stream(rest, MAX_REQUEST_BYTES),
        1 => stream(rest, MAX_RESPONSE_BYTES),
        2 => peer_record(rest),
        3 => signed(
            rest,
            LEGACY_DOMAIN,
            LEGACY_PAYLOAD_TYPE,
            RecordFormat::Legacy,
        ),
        4 => signed(
            rest,
            STANDARD_DOMAIN,
            STANDARD_PAYLOAD_TYPE,
            RecordFormat::Standard,
        ),
        _ => cookie(rest),
    }
});

fn stream(bytes: &[u8], max: usize) {
    let mut reader = bytes;
    let Ok(message) = block_on(read_message(&mut reader, max)) else {
        return;
    };
    let mut written = Vec::new();
    block_on(write_message(&mut written, &message, max)).expect("a message read can be written");
    let back: Message = block_on(read_message(&mut written.as_slice(), max)).expect("reads back");
    assert_eq!(back, message, "rendezvous message round trip");
    if let Some(register) = &message.register {
        if let Some(spr) = &register.signed_peer_record {
            peer_record(spr);
        }
    }
    if let Some(discover) = &message.discover {
        if let Some(bytes) = &discover.cookie {
            cookie(bytes);
        }
    }
    if let Some(response) = &message.discover_response {
        for registration in &response.registrations {
            if let Some(spr) = &registration.signed_peer_record {
                peer_record(spr);
            }
        }
    }
}

fn peer_record(bytes: &[u8]) {
    if let Ok(verified) = record::verify(bytes) {
        // What the server stores: every address must print (it is listed by the admin API).
        for address in &verified.addresses {
            let _ = address.to_string();
        }
    }
}

fn signed(payload: &[u8], domain: &str, payload_type: &[u8], format: RecordFormat) {
    let envelope =
        SignedEnvelope::new(&KEY, domain.into(), payload_type.to_vec(), payload.to_vec())
            .expect("signing")
            .into_protobuf_encoding();
    match record::verify(&envelope) {
        Ok(verified) => {
            assert_eq!(verified.peer_id, KEY.public().to_peer_id());
            assert_eq!(verified.format, format);
            // Signed again in the same format with what was read, it reads the same.
            let again = match format {
                RecordFormat::Legacy => {
                    libp2p::core::PeerRecord::new(&KEY, verified.addresses.clone())
                }
                RecordFormat::Standard => {
                    libp2p::core::PeerRecord::new_interop(&KEY, verified.addresses.clone())
                }
            }
            .expect("signing")
            .into_signed_envelope()
            .into_protobuf_encoding();
            let back = record::verify(&again).expect("a record we signed verifies");
            assert_eq!(back.addresses, verified.addresses, "peer record round trip");
            assert_eq!(back.format, format);
        }
        Err(err) => {
            // The signature is good: only the payload can be refused.
            assert!(
                matches!(
                    err,
                    record::RecordError::Payload(_) | record::RecordError::SignerMismatch
                ),
                "{err}"
            );
        }
    }
}

fn cookie(bytes: &[u8]) {
    if let Some(cookie) = DiscoverCookie::decode(bytes) {
        assert_eq!(cookie.encode(), bytes, "cookie round trip");
    }
}
