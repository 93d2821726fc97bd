//! Log entries: the canonical wire encoding, signing and decoding.
//!
//! The encoding is a protobuf message (`docs/log-format.md`) in exactly the form a protobuf
//! encoder emits: fields in number order, one-byte keys, minimal varints, empty fields omitted.
//! [`Entry::decode`] accepts that form only, so an entry has one encoding and one id. It checks
//! the bytes in one pass, without copying fields out: the payload stays a slice of the entry's
//! bytes.

use std::fmt;
use std::ops::Range;

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::error::LogError;
use super::id::{EntryId, LogId, OrderKey, ENTRY_ID_LEN};
use super::limits::{varint_len, MAX_ENTRY_BYTES, MAX_PARENTS, MAX_PAYLOAD_BYTES, SIGNATURE_LEN};

/// Domain label that precedes the entry fields in the signed message.
pub const ENTRY_SIGNATURE_LABEL: &[u8] = b"berty-node/v1/log-entry";

/// Bytes of the domain label in the signed message.
const LABEL_LEN: usize = ENTRY_SIGNATURE_LABEL.len();

/// Field key of the log id (field number << 3 | wire type; each key fits in one byte).
const KEY_LOG_ID: u8 = 1 << 3 | 2;
/// Field key of a parent id (repeated).
const KEY_PARENT: u8 = 2 << 3 | 2;
/// Field key of the Lamport time (varint).
const KEY_LAMPORT: u8 = 3 << 3;
/// Field key of the sealed payload.
const KEY_PAYLOAD: u8 = 4 << 3 | 2;
/// Field key of the signature, always last.
const KEY_SIGNATURE: u8 = 5 << 3 | 2;

/// Key, length and value of the signature field, always the last field.
const SIGNATURE_FIELD_LEN: usize = 2 + SIGNATURE_LEN;

/// One entry of a group log, with its id and the exact bytes it was received or written as.
///
/// Built by [`Entry::sign`] (a local append) or [`Entry::decode`] (received or loaded bytes);
/// both check the structure, neither the signature ([`Entry::verify`], [`verify_batch`]) nor
/// the Lamport rule against the parents ([`check_lamport`], [`MemLog`]).
///
/// [`verify_batch`]: super::verify_batch
/// [`check_lamport`]: super::check_lamport
/// [`MemLog`]: super::MemLog
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    id: EntryId,
    log: LogId,
    parents: Vec<EntryId>,
    lamport: u64,
    /// Where the payload sits in `buf`.
    payload: Range<usize>,
    /// [`ENTRY_SIGNATURE_LABEL`] followed by the encoded entry. The signed message is `buf`
    /// minus the signature field, so checking a signature copies nothing.
    buf: Vec<u8>,
}

impl Entry {
    /// Encodes and signs a new entry of `log` with the group's shared signing key.
    ///
    /// `parents` may come in any order (they are sorted; duplicates are dropped). The Lamport
    /// clock is checked against the number of parents only: 1 for a root, at least 2 otherwise.
    pub fn sign(
        signing_key: &SigningKey,
        log: LogId,
        mut parents: Vec<EntryId>,
        lamport: u64,
        payload: &[u8],
    ) -> Result<Self, LogError> {
        parents.sort_unstable();
        parents.dedup();
        if parents.len() > MAX_PARENTS {
            return Err(LogError::TooManyParents {
                count: parents.len(),
                max: MAX_PARENTS,
            });
        }
        check_lamport_shape(parents.len(), lamport)?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(LogError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }

        let body_len = 2
            + LogId::LEN
            + parents.len() * (2 + ENTRY_ID_LEN)
            + 1
            + varint_len(lamport)
            + if payload.is_empty() {
                0
            } else {
                1 + varint_len(payload.len() as u64) + payload.len()
            };
        let mut buf = Vec::with_capacity(LABEL_LEN + body_len + SIGNATURE_FIELD_LEN);
        buf.extend_from_slice(ENTRY_SIGNATURE_LABEL);
        buf.extend_from_slice(&[KEY_LOG_ID, LogId::LEN as u8]);
        buf.extend_from_slice(&log.to_bytes());
        for parent in &parents {
            buf.extend_from_slice(&[KEY_PARENT, ENTRY_ID_LEN as u8]);
            buf.extend_from_slice(parent.as_bytes());
        }
        buf.push(KEY_LAMPORT);
        put_varint(&mut buf, lamport);
        if !payload.is_empty() {
            buf.push(KEY_PAYLOAD);
            put_varint(&mut buf, payload.len() as u64);
        }
        let payload_start = buf.len();
        buf.extend_from_slice(payload);
        let payload = payload_start..buf.len();

        let signature = signing_key.sign(&buf);
        buf.extend_from_slice(&[KEY_SIGNATURE, SIGNATURE_LEN as u8]);
        buf.extend_from_slice(&signature.to_bytes());

        Ok(Self {
            id: EntryId(Sha256::digest(&buf[LABEL_LEN..]).into()),
            log,
            parents,
            lamport,
            payload,
            buf,
        })
    }

    /// Parses an encoded entry, accepting only the canonical encoding within the limits.
    ///
    /// Never panics. The id is the SHA-256 of `bytes`; the signature is not checked here.
    pub fn decode(bytes: &[u8]) -> Result<Self, LogError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(LogError::EntryTooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let fields = parse(bytes)?;
        let mut buf = Vec::with_capacity(LABEL_LEN + bytes.len());
        buf.extend_from_slice(ENTRY_SIGNATURE_LABEL);
        buf.extend_from_slice(bytes);
        Ok(Self {
            id: EntryId(Sha256::digest(bytes).into()),
            log: fields.log,
            parents: fields.parents,
            lamport: fields.lamport,
            payload: fields.payload.start + LABEL_LEN..fields.payload.end + LABEL_LEN,
            buf,
        })
    }

    /// The payload of an encoded entry, parsed as [`Entry::decode`] does but without computing
    /// its id or copying it: for entries read back from this node's own storage.
    pub fn payload_of(bytes: &[u8]) -> Result<&[u8], LogError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(LogError::EntryTooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let fields = parse(bytes)?;
        Ok(bytes.get(fields.payload).unwrap_or_default())
    }

    /// The entry id: SHA-256 of [`Entry::bytes`].
    pub fn id(&self) -> EntryId {
        self.id
    }

    /// The log the entry belongs to.
    pub fn log_id(&self) -> LogId {
        self.log
    }

    /// The parent ids, strictly ascending.
    pub fn parents(&self) -> &[EntryId] {
        &self.parents
    }

    /// The Lamport clock.
    pub fn lamport(&self) -> u64 {
        self.lamport
    }

    /// The encrypted payload (possibly empty).
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.payload.clone()).unwrap_or_default()
    }

    /// The encoded entry, exactly as received or written.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(LABEL_LEN..).unwrap_or_default()
    }

    /// Consumes the entry, returning [`Entry::bytes`].
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.drain(..LABEL_LEN);
        self.buf
    }

    /// The entry's position in the log's total order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            lamport: self.lamport,
            id: self.id,
        }
    }

    /// The message the signature covers: the label, then every field but the signature.
    pub(crate) fn signed_message(&self) -> &[u8] {
        let end = self.buf.len().saturating_sub(SIGNATURE_FIELD_LEN);
        self.buf.get(..end).unwrap_or_default()
    }

    /// The 64 signature bytes.
    pub(crate) fn signature_bytes(&self) -> &[u8] {
        let start = self.buf.len().saturating_sub(SIGNATURE_LEN);
        self.buf.get(start..).unwrap_or_default()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("log", &self.log)
            .field("lamport", &self.lamport)
            .field("parents", &self.parents)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// The Lamport checks that need no parent: 1 for a root, at least 2 for an entry with parents.
fn check_lamport_shape(parent_count: usize, lamport: u64) -> Result<(), LogError> {
    match (parent_count, lamport) {
        (0, 1) => Ok(()),
        (0, found) => Err(LogError::LamportMismatch { expected: 1, found }),
        (_, found) if found < 2 => Err(LogError::LamportTooLow { found }),
        _ => Ok(()),
    }
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

/// The fields of a canonically encoded entry; `payload` indexes the input.
struct Fields {
    log: LogId,
    parents: Vec<EntryId>,
    lamport: u64,
    payload: Range<usize>,
}

/// Checks that `bytes` is the canonical encoding of an entry, field by field.
fn parse(bytes: &[u8]) -> Result<Fields, LogError> {
    let mut reader = Reader { bytes, pos: 0 };

    reader.expect_key(KEY_LOG_ID, "the log id must be the first field")?;
    let log = LogId::from_bytes(reader.length_delimited()?).ok_or(LogError::Malformed(
        "the log id is not 33 bytes with a known log kind",
    ))?;

    let mut parents: Vec<EntryId> = Vec::new();
    while reader.peek() == Some(KEY_PARENT) {
        reader.pos += 1;
        if parents.len() == MAX_PARENTS {
            return Err(LogError::TooManyParents {
                count: MAX_PARENTS + 1,
                max: MAX_PARENTS,
            });
        }
        let parent = EntryId::from_slice(reader.length_delimited()?)
            .ok_or(LogError::Malformed("a parent id is not 32 bytes"))?;
        if parents.last().is_some_and(|last| *last >= parent) {
            return Err(LogError::Malformed("parent ids are not strictly ascending"));
        }
        parents.push(parent);
    }

    reader.expect_key(KEY_LAMPORT, "the Lamport clock must follow the parents")?;
    let lamport = reader.varint()?;
    check_lamport_shape(parents.len(), lamport)?;

    let payload = if reader.peek() == Some(KEY_PAYLOAD) {
        reader.pos += 1;
        let payload = reader.length_delimited_range()?;
        if payload.is_empty() {
            return Err(LogError::Malformed("an empty payload must be omitted"));
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(LogError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        payload
    } else {
        reader.pos..reader.pos
    };

    reader.expect_key(KEY_SIGNATURE, "the signature must be the last field")?;
    if reader.length_delimited()?.len() != SIGNATURE_LEN {
        return Err(LogError::Malformed("the signature is not 64 bytes"));
    }
    if reader.pos != bytes.len() {
        return Err(LogError::Malformed("bytes after the signature"));
    }

    Ok(Fields {
        log,
        parents,
        lamport,
        payload,
    })
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect_key(&mut self, key: u8, what: &'static str) -> Result<(), LogError> {
        if self.peek() != Some(key) {
            return Err(LogError::Malformed(what));
        }
        self.pos += 1;
        Ok(())
    }

    /// A minimally encoded varint of at most 64 bits.
    fn varint(&mut self) -> Result<u64, LogError> {
        let mut value = 0u64;
        for index in 0..10 {
            let byte = self.peek().ok_or(LogError::Malformed("truncated varint"))?;
            self.pos += 1;
            if index == 9 && byte > 1 {
                return Err(LogError::Malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                if byte == 0 && index > 0 {
                    return Err(LogError::Malformed("varint is not minimally encoded"));
                }
                return Ok(value);
            }
        }
        Err(LogError::Malformed("varint overflows 64 bits"))
    }

    /// The range of a length-prefixed value.
    fn length_delimited_range(&mut self) -> Result<Range<usize>, LogError> {
        let truncated = LogError::Malformed("truncated field");
        let len = usize::try_from(self.varint()?).map_err(|_| truncated.clone())?;
        let start = self.pos;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(truncated)?;
        self.pos = end;
        Ok(start..end)
    }

    /// A length-prefixed value.
    fn length_delimited(&mut self) -> Result<&'a [u8], LogError> {
        let range = self.length_delimited_range()?;
        Ok(self.bytes.get(range).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::log::test_support::{log_id, signing_key};
    use crate::log::LogKind;

    /// The wire schema as a protobuf message: the oracle the canonical codec must match.
    #[derive(Clone, PartialEq, prost::Message)]
    struct WireEntry {
        #[prost(bytes = "vec", tag = "1")]
        log_id: Vec<u8>,
        #[prost(bytes = "vec", repeated, tag = "2")]
        parents: Vec<Vec<u8>>,
        #[prost(uint64, tag = "3")]
        lamport: u64,
        #[prost(bytes = "vec", tag = "4")]
        payload: Vec<u8>,
        #[prost(bytes = "vec", tag = "5")]
        signature: Vec<u8>,
    }

    /// What `decode` must accept: what prost decodes and re-encodes to the same bytes, with
    /// every field within its limits.
    fn oracle_accepts(bytes: &[u8]) -> bool {
        let Ok(wire) = WireEntry::decode(bytes) else {
            return false;
        };
        wire.encode_to_vec() == bytes
            && bytes.len() <= MAX_ENTRY_BYTES
            && LogId::from_bytes(&wire.log_id).is_some()
            && wire.parents.len() <= MAX_PARENTS
            && wire.parents.iter().all(|p| p.len() == ENTRY_ID_LEN)
            && wire.parents.windows(2).all(|pair| pair[0] < pair[1])
            && if wire.parents.is_empty() {
                wire.lamport == 1
            } else {
                wire.lamport >= 2
            }
            && wire.payload.len() <= MAX_PAYLOAD_BYTES
            && wire.signature.len() == SIGNATURE_LEN
    }

    fn wire_of(entry: &Entry, signature: Vec<u8>) -> WireEntry {
        WireEntry {
            log_id: entry.log_id().to_bytes().to_vec(),
            parents: entry.parents().iter().map(|p| p.0.to_vec()).collect(),
            lamport: entry.lamport(),
            payload: entry.payload().to_vec(),
            signature,
        }
    }

    fn hex_bytes(value: &serde_json::Value) -> Vec<u8> {
        hex::decode(value.as_str().unwrap()).unwrap()
    }

    #[test]
    fn vectors_pin_the_wire_format() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/vectors/log.json")).unwrap();
        let seed: [u8; 32] = hex_bytes(&vectors["signing_key_seed"]).try_into().unwrap();
        let key = SigningKey::from_bytes(&seed);
        assert_eq!(
            key.verifying_key().to_bytes().to_vec(),
            hex_bytes(&vectors["verifying_key"])
        );
        let group_pk: [u8; 32] = hex_bytes(&vectors["group_pk"]).try_into().unwrap();

        let entries = vectors["entries"].as_array().unwrap();
        assert!(entries.len() >= 5);
        for vector in entries {
            let name = vector["name"].as_str().unwrap();
            let kind = match vector["kind"].as_str().unwrap() {
                "metadata" => LogKind::Metadata,
                "messages" => LogKind::Messages,
                other => panic!("unknown kind {other}"),
            };
            let parents: Vec<EntryId> = vector["parents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| EntryId::from_slice(&hex_bytes(p)).unwrap())
                .collect();
            let lamport = vector["lamport"].as_u64().unwrap();
            let payload = hex_bytes(&vector["payload"]);
            let encoded = hex_bytes(&vector["encoded"]);
            let id = EntryId::from_slice(&hex_bytes(&vector["id"])).unwrap();

            let log = LogId::new(group_pk, kind);
            let signed = Entry::sign(&key, log, parents.clone(), lamport, &payload).unwrap();
            assert_eq!(
                hex::encode(signed.bytes()),
                hex::encode(&encoded),
                "{name}: encoding"
            );
            assert_eq!(signed.id(), id, "{name}: id");

            let decoded = Entry::decode(&encoded).unwrap();
            assert_eq!(decoded, signed, "{name}: decode");
            assert_eq!(decoded.log_id(), log);
            assert_eq!(decoded.parents(), parents.as_slice());
            assert_eq!(decoded.lamport(), lamport);
            assert_eq!(decoded.payload(), payload.as_slice());
            decoded.verify(&key.verifying_key()).unwrap();

            let wire = wire_of(&decoded, decoded.signature_bytes().to_vec());
            assert_eq!(wire.encode_to_vec(), encoded, "{name}: same bytes as prost");
        }

        for vector in vectors["rejects"].as_array().unwrap() {
            let name = vector["name"].as_str().unwrap();
            let encoded = hex_bytes(&vector["encoded"]);
            assert!(Entry::decode(&encoded).is_err(), "{name} must be rejected");
            assert!(
                !oracle_accepts(&encoded),
                "{name} must be rejected by the oracle"
            );
        }
    }

    #[test]
    fn payload_of_is_the_decoded_payload() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let log = LogId::new([1; 32], LogKind::Messages);
        let entry = Entry::sign(&key, log, Vec::new(), 1, b"the payload").unwrap();
        assert_eq!(Entry::payload_of(entry.bytes()).unwrap(), b"the payload");
        assert!(Entry::payload_of(&entry.bytes()[..10]).is_err());
    }

    #[test]
    fn signed_message_is_label_then_fields() {
        let entry = Entry::sign(&signing_key(), log_id(), vec![EntryId([3; 32])], 9, b"p").unwrap();
        let mut expected = ENTRY_SIGNATURE_LABEL.to_vec();
        expected.extend_from_slice(&wire_of(&entry, Vec::new()).encode_to_vec());
        assert_eq!(entry.signed_message(), expected.as_slice());
        let signature = ed25519_dalek::Signature::from_slice(entry.signature_bytes()).unwrap();
        signing_key()
            .verifying_key()
            .verify_strict(&expected, &signature)
            .unwrap();
    }

    #[test]
    fn sign_sorts_and_deduplicates_parents() {
        let (a, b) = (EntryId([1; 32]), EntryId([2; 32]));
        let entry = Entry::sign(&signing_key(), log_id(), vec![b, a, b], 2, b"").unwrap();
        assert_eq!(entry.parents(), &[a, b]);
        assert_eq!(entry.payload(), b"");
        assert_eq!(Entry::decode(entry.bytes()).unwrap(), entry);
        assert_eq!(entry.clone().into_bytes(), entry.bytes());
        assert_eq!(
            entry.order_key(),
            OrderKey {
                lamport: 2,
                id: entry.id()
            }
        );
    }

    #[test]
    fn sign_enforces_the_limits() {
        let key = signing_key();
        let many: Vec<EntryId> = (0..=MAX_PARENTS).map(|i| EntryId([i as u8; 32])).collect();
        assert_eq!(
            Entry::sign(&key, log_id(), many, 2, b""),
            Err(LogError::TooManyParents {
                count: MAX_PARENTS + 1,
                max: MAX_PARENTS
            })
        );
        assert_eq!(
            Entry::sign(&key, log_id(), vec![], 1, &vec![0; MAX_PAYLOAD_BYTES + 1]),
            Err(LogError::PayloadTooLarge {
                len: MAX_PAYLOAD_BYTES + 1,
                max: MAX_PAYLOAD_BYTES
            })
        );
        assert_eq!(
            Entry::sign(&key, log_id(), vec![], 2, b""),
            Err(LogError::LamportMismatch {
                expected: 1,
                found: 2
            })
        );
        assert_eq!(
            Entry::sign(&key, log_id(), vec![], 0, b""),
            Err(LogError::LamportMismatch {
                expected: 1,
                found: 0
            })
        );
        assert_eq!(
            Entry::sign(&key, log_id(), vec![EntryId([1; 32])], 1, b""),
            Err(LogError::LamportTooLow { found: 1 })
        );
    }

    #[test]
    fn the_largest_entry_is_exactly_max_entry_bytes() {
        let parents: Vec<EntryId> = (0..MAX_PARENTS).map(|i| EntryId([i as u8; 32])).collect();
        let payload = vec![0xab; MAX_PAYLOAD_BYTES];
        let entry = Entry::sign(&signing_key(), log_id(), parents, u64::MAX, &payload).unwrap();
        assert_eq!(entry.bytes().len(), MAX_ENTRY_BYTES);
        assert_eq!(Entry::decode(entry.bytes()).unwrap(), entry);

        let mut too_long = entry.bytes().to_vec();
        too_long.push(0);
        assert_eq!(
            Entry::decode(&too_long),
            Err(LogError::EntryTooLarge {
                len: MAX_ENTRY_BYTES + 1,
                max: MAX_ENTRY_BYTES
            })
        );
    }

    #[test]
    fn decode_enforces_parent_and_payload_limits() {
        let entry = Entry::sign(&signing_key(), log_id(), vec![], 1, b"x").unwrap();
        let mut wire = wire_of(&entry, vec![0; SIGNATURE_LEN]);

        wire.parents = (0..=MAX_PARENTS).map(|i| vec![i as u8; 32]).collect();
        wire.lamport = 2;
        assert_eq!(
            Entry::decode(&wire.encode_to_vec()),
            Err(LogError::TooManyParents {
                count: MAX_PARENTS + 1,
                max: MAX_PARENTS
            })
        );

        wire.parents.clear();
        wire.lamport = 1;
        wire.payload = vec![1; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(
            Entry::decode(&wire.encode_to_vec()),
            Err(LogError::PayloadTooLarge {
                len: MAX_PAYLOAD_BYTES + 1,
                max: MAX_PAYLOAD_BYTES
            })
        );
    }

    #[test]
    fn decode_rejects_overlong_varints() {
        let entry = Entry::sign(&signing_key(), log_id(), vec![], 1, b"").unwrap();
        let bytes = entry.bytes();
        // The Lamport clock sits right after the 35-byte log id field.
        assert_eq!(&bytes[35..37], &[KEY_LAMPORT, 1]);
        for varint in [
            &[0xff; 11][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            &[0x81, 0x80, 0x00],
        ] {
            let mut mutated = bytes[..36].to_vec();
            mutated.extend_from_slice(varint);
            mutated.extend_from_slice(&bytes[37..]);
            assert!(matches!(
                Entry::decode(&mutated),
                Err(LogError::Malformed(_))
            ));
        }
    }

    /// A random structurally valid entry: up to 4 parents, a payload of up to 300 bytes.
    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            proptest::collection::btree_set(any::<[u8; 32]>(), 0..4),
            2u64..1 << 40,
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
        )
            .prop_map(|(parents, lamport, payload, metadata)| {
                let parents: Vec<EntryId> = parents.into_iter().map(EntryId).collect();
                let lamport = if parents.is_empty() { 1 } else { lamport };
                let kind = if metadata {
                    LogKind::Metadata
                } else {
                    LogKind::Messages
                };
                let log = LogId::new([9; 32], kind);
                Entry::sign(&signing_key(), log, parents, lamport, &payload).unwrap()
            })
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(prop::sample::Index, u8),
        Set(prop::sample::Index, u8),
        Insert(prop::sample::Index, u8),
        Remove(prop::sample::Index),
        Truncate(prop::sample::Index),
        /// Copies a run of bytes over another place (moves whole fields around).
        Copy(prop::sample::Index, prop::sample::Index, u8),
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<prop::sample::Index>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
            any::<prop::sample::Index>().prop_map(Mutation::Remove),
            any::<prop::sample::Index>().prop_map(Mutation::Truncate),
            (
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                1u8..70
            )
                .prop_map(|(from, to, len)| Mutation::Copy(from, to, len)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len();
        match mutation {
            Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, value) => bytes[i.index(len)] = *value,
            Mutation::Insert(i, value) => bytes.insert(i.index(bytes.len() + 1), *value),
            Mutation::Remove(i) => {
                bytes.remove(i.index(bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Mutation::Copy(from, to, len) => {
                let from = from.index(bytes.len());
                let to = to.index(bytes.len());
                let len = usize::from(*len).min(bytes.len() - from.max(to));
                bytes.copy_within(from..from + len, to);
            }
        }
    }

    proptest! {
        #[test]
        fn decode_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(Entry::decode(&bytes).is_ok(), oracle_accepts(&bytes));
        }

        #[test]
        fn decode_survives_bytes_after_a_valid_prefix(
            prefix in 0usize..40,
            tail in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let entry = Entry::sign(&signing_key(), log_id(), vec![EntryId([5; 32])], 2, b"").unwrap();
            let mut bytes = entry.bytes()[..prefix].to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(Entry::decode(&bytes).is_ok(), oracle_accepts(&bytes));
        }

        #[test]
        fn valid_entries_round_trip(entry in arb_entry()) {
            let decoded = Entry::decode(entry.bytes()).unwrap();
            prop_assert_eq!(&decoded, &entry);
            prop_assert!(oracle_accepts(entry.bytes()));
            let wire = wire_of(&entry, entry.signature_bytes().to_vec());
            prop_assert_eq!(wire.encode_to_vec(), entry.bytes());
            prop_assert!(decoded.verify(&signing_key().verifying_key()).is_ok());
        }

        #[test]
        fn mutated_entries_are_rejected_or_fail_verification(
            entry in arb_entry(),
            mutations in proptest::collection::vec(arb_mutation(), 1..4),
        ) {
            let mut bytes = entry.bytes().to_vec();
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            let decoded = Entry::decode(&bytes);
            prop_assert_eq!(decoded.is_ok(), oracle_accepts(&bytes));
            if let Ok(decoded) = decoded {
                if bytes == entry.bytes() {
                    prop_assert_eq!(decoded, entry);
                } else {
                    prop_assert_ne!(decoded.id(), entry.id());
                    prop_assert!(decoded.verify(&signing_key().verifying_key()).is_err());
                }
            }
        }
    }
}
