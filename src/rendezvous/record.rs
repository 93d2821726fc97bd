//! Signed peer records, in both formats peers send them.
//!
//! A registration carries a signed envelope (libp2p RFC 0002): the protobuf `Envelope`
//! `{ public_key = 1, payload_type = 2, payload = 3, signature = 5 }`, whose signature covers
//! `varint(len) domain || varint(len) payload_type || varint(len) payload`. The payload is the
//! protobuf `PeerRecord { peer_id = 1, seq = 2, repeated AddressInfo { multiaddr = 1 }
//! addresses = 3 }`. Two formats exist, differing only in the envelope's domain and payload
//! type, never in the payload:
//!
//! - [`RecordFormat::Legacy`]: domain `libp2p-routing-state`, payload type the 28 bytes
//!   `/libp2p/routing-state-record`. What rust-libp2p's `PeerRecord::new` signs, so what its
//!   rendezvous client sends.
//! - [`RecordFormat::Standard`]: domain `libp2p-peer-record`, payload type the 2 bytes
//!   `03 01` (multicodec `libp2p-peer-record`, 0x0301, big-endian, not a varint). What
//!   go-libp2p and js-libp2p sign, and rust-libp2p's `PeerRecord::new_interop`.
//!
//! libp2p's rendezvous server reads only the legacy format. [`verify`] accepts both: it reads
//! the envelope once, tries the legacy payload type, and on a payload type mismatch the
//! standard one (each check compares the payload type before verifying, so at most one
//! signature is verified). Records are stored and served exactly as received, so a peer gets
//! back the bytes its peers signed.

use libp2p::{
    core::{
        peer_record::FromEnvelopeError, signed_envelope::ReadPayloadError, PeerRecord,
        SignedEnvelope,
    },
    Multiaddr, PeerId,
};

/// Domain separation string of the legacy format.
pub const LEGACY_DOMAIN: &str = "libp2p-routing-state";
/// Payload type of the legacy format.
pub const LEGACY_PAYLOAD_TYPE: &[u8] = b"/libp2p/routing-state-record";
/// Domain separation string of the standard format.
pub const STANDARD_DOMAIN: &str = "libp2p-peer-record";
/// Payload type of the standard format: multicodec 0x0301 as two big-endian bytes.
pub const STANDARD_PAYLOAD_TYPE: &[u8] = &[0x03, 0x01];

/// Which of the two envelope formats a record came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    /// rust-libp2p's own: domain [`LEGACY_DOMAIN`], payload type [`LEGACY_PAYLOAD_TYPE`].
    Legacy,
    /// The specification's (go, js): domain [`STANDARD_DOMAIN`], payload type
    /// [`STANDARD_PAYLOAD_TYPE`].
    Standard,
}

/// A signed peer record whose signature checked out and whose peer id is its signer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// The peer the record is about (and that signed it).
    pub peer_id: PeerId,
    /// The record's sequence number.
    pub seq: u64,
    /// The addresses the peer announces.
    pub addresses: Vec<Multiaddr>,
    /// The envelope format it came in.
    pub format: RecordFormat,
}

/// Why a signed peer record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not a signed envelope, or its public key does not parse.
    #[error("not a signed envelope: {0}")]
    Envelope(String),
    /// The envelope holds something other than a peer record.
    #[error("the envelope's payload type ({} bytes) is not a peer record's", .0.len())]
    PayloadType(Vec<u8>),
    /// The signature does not verify for the format's domain.
    #[error("the envelope's signature does not verify")]
    Signature,
    /// The payload is not a peer record (bad protobuf, peer id or address).
    #[error("the peer record does not parse: {0}")]
    Payload(String),
    /// The record names another peer than the key that signed it.
    #[error("the record's peer id is not its signer's")]
    SignerMismatch,
}

impl RecordError {
    fn from_envelope(err: FromEnvelopeError) -> Self {
        match err {
            FromEnvelopeError::BadPayload(ReadPayloadError::InvalidSignature) => Self::Signature,
            FromEnvelopeError::BadPayload(ReadPayloadError::UnexpectedPayloadType {
                got, ..
            }) => Self::PayloadType(got),
            FromEnvelopeError::MismatchedSignature => Self::SignerMismatch,
            other => Self::Payload(other.to_string()),
        }
    }
}

/// Verifies a signed peer record envelope in either format.
pub fn verify(envelope: &[u8]) -> Result<VerifiedRecord, RecordError> {
    let envelope = SignedEnvelope::from_protobuf_encoding(envelope)
        .map_err(|err| RecordError::Envelope(err.to_string()))?;
    let (record, format) = match PeerRecord::from_signed_envelope(envelope.clone()) {
        Ok(record) => (record, RecordFormat::Legacy),
        Err(FromEnvelopeError::BadPayload(ReadPayloadError::UnexpectedPayloadType { .. })) => {
            let record = PeerRecord::from_signed_envelope_interop(envelope)
                .map_err(RecordError::from_envelope)?;
            (record, RecordFormat::Standard)
        }
        Err(err) => return Err(RecordError::from_envelope(err)),
    };
    Ok(VerifiedRecord {
        peer_id: record.peer_id(),
        seq: record.seq(),
        addresses: record.addresses().to_vec(),
        format,
    })
}

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;
    use prost::Message as _;

    use super::*;

    /// The peer record payload, declared here from the specification so tests build
    /// envelopes without libp2p's constructors.
    #[derive(Clone, PartialEq, prost::Message)]
    struct PeerRecordPayload {
        #[prost(bytes = "vec", tag = "1")]
        peer_id: Vec<u8>,
        #[prost(uint64, tag = "2")]
        seq: u64,
        #[prost(message, repeated, tag = "3")]
        addresses: Vec<AddressInfo>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct AddressInfo {
        #[prost(bytes = "vec", tag = "1")]
        multiaddr: Vec<u8>,
    }

    fn address() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/4040".parse().unwrap()
    }

    /// An envelope signed by `signer` for a record naming `peer`, built by hand.
    fn envelope(signer: &Keypair, peer: PeerId, domain: &str, payload_type: &[u8]) -> Vec<u8> {
        let payload = PeerRecordPayload {
            peer_id: peer.to_bytes(),
            seq: 42,
            addresses: vec![AddressInfo {
                multiaddr: address().to_vec(),
            }],
        }
        .encode_to_vec();
        SignedEnvelope::new(signer, domain.into(), payload_type.to_vec(), payload)
            .unwrap()
            .into_protobuf_encoding()
    }

    #[test]
    fn legacy_records_from_rust_libp2p_verify() {
        let key = Keypair::generate_ed25519();
        let bytes = PeerRecord::new(&key, vec![address()])
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding();
        let record = verify(&bytes).unwrap();
        assert_eq!(record.peer_id, key.public().to_peer_id());
        assert_eq!(record.addresses, vec![address()]);
        assert_eq!(record.format, RecordFormat::Legacy);
    }

    #[test]
    fn standard_records_verify() {
        let key = Keypair::generate_ed25519();
        let interop = PeerRecord::new_interop(&key, vec![address()])
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding();
        let by_hand = envelope(
            &key,
            key.public().to_peer_id(),
            STANDARD_DOMAIN,
            STANDARD_PAYLOAD_TYPE,
        );
        for bytes in [interop, by_hand] {
            let record = verify(&bytes).unwrap();
            assert_eq!(record.peer_id, key.public().to_peer_id());
            assert_eq!(record.addresses, vec![address()]);
            assert_eq!(record.format, RecordFormat::Standard);
        }
        let legacy_by_hand = envelope(
            &key,
            key.public().to_peer_id(),
            LEGACY_DOMAIN,
            LEGACY_PAYLOAD_TYPE,
        );
        let record = verify(&legacy_by_hand).unwrap();
        assert_eq!((record.seq, record.format), (42, RecordFormat::Legacy));
    }

    #[test]
    fn a_domain_of_the_other_format_does_not_verify() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        for (domain, payload_type) in [
            (LEGACY_DOMAIN, STANDARD_PAYLOAD_TYPE),
            (STANDARD_DOMAIN, LEGACY_PAYLOAD_TYPE),
        ] {
            assert_eq!(
                verify(&envelope(&key, peer, domain, payload_type)),
                Err(RecordError::Signature)
            );
        }
    }

    #[test]
    fn a_record_for_another_peer_is_refused() {
        let signer = Keypair::generate_ed25519();
        let other = Keypair::generate_ed25519().public().to_peer_id();
        for (domain, payload_type) in [
            (LEGACY_DOMAIN, LEGACY_PAYLOAD_TYPE),
            (STANDARD_DOMAIN, STANDARD_PAYLOAD_TYPE),
        ] {
            assert_eq!(
                verify(&envelope(&signer, other, domain, payload_type)),
                Err(RecordError::SignerMismatch)
            );
        }
    }

    #[test]
    fn tampered_unknown_and_garbage_envelopes_are_refused() {
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let good = envelope(&key, peer, STANDARD_DOMAIN, STANDARD_PAYLOAD_TYPE);
        // Flip one bit of the signature (the last field of the encoding).
        let mut tampered = good.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(verify(&tampered), Err(RecordError::Signature));
        assert_eq!(
            verify(&envelope(&key, peer, STANDARD_DOMAIN, b"/something/else")),
            Err(RecordError::PayloadType(b"/something/else".to_vec()))
        );
        assert!(matches!(
            verify(b"not an envelope"),
            Err(RecordError::Envelope(_))
        ));
        assert!(matches!(verify(&[]), Err(RecordError::Envelope(_))));
        // A well-signed payload that is not a peer record.
        let junk = SignedEnvelope::new(
            &key,
            STANDARD_DOMAIN.into(),
            STANDARD_PAYLOAD_TYPE.to_vec(),
            vec![0xff, 0xff, 0xff],
        )
        .unwrap()
        .into_protobuf_encoding();
        assert!(matches!(verify(&junk), Err(RecordError::Payload(_))));
    }
}
