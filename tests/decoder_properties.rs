//! A short property-based run over every decoder a remote peer or a client can reach: the
//! same decoders as the `cargo fuzz` targets in `fuzz/` (docs/fuzzing.md), in the normal test
//! suite. Arbitrary bytes never make a decoder panic, and values that decode are the values
//! that were encoded.
//!
//! Fuzzing needs nightly and runs for minutes per target; this runs on stable in a few
//! seconds, so CI catches a decoder that regresses between fuzzing campaigns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::LazyLock;

use berty_node::{
    admin::routes::{BanQuery, DialBody},
    crypto::{
        gossip_topic, open_body, open_chain_key, open_header, open_metadata, seal_announcement,
        seal_chain_key, seal_message, seal_metadata, AccountKeys, ChainKey, CreationProof,
        GroupGenesis, GroupKeys, MessageKey, RendezvousSeed, SigningKey,
    },
    group::{ContactReference, GroupReference},
    import::{parse_export, ImportMode},
    log::{Entry, EntryId, LogId, LogKind, MAX_PARENTS},
    p2p::{
        sync_codec::{read_frame, write_frame, Frame, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES},
        Announcement, SyncRequest as DomainRequest,
    },
    proto::wire::{
        sync_request::Request, SyncAnnounce, SyncHead, SyncHeads, SyncLog, SyncRequest,
        SyncResponse,
    },
    rendezvous::{
        record,
        wire::{read_message, write_message, Message, MessageType, Register},
        DiscoverCookie,
    },
    replication::wire::{check_received, open_gossip},
};
use futures::executor::block_on;
use proptest::prelude::*;
use rand::{rngs::StdRng, SeedableRng};

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

struct Group {
    keys: GroupKeys,
    proof: CreationProof,
    member: SigningKey,
}

static GROUP: LazyLock<Group> = LazyLock::new(|| {
    let member = SigningKey::from_bytes(&[3; 32]);
    let (keys, proof) = GroupGenesis::generate(&mut rng())
        .finish(&member.verifying_key())
        .unwrap();
    Group {
        keys,
        proof,
        member,
    }
});

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn log_id() -> impl Strategy<Value = LogId> {
    (any::<[u8; 32]>(), any::<bool>()).prop_map(|(pk, metadata)| {
        LogId::new(
            pk,
            if metadata {
                LogKind::Metadata
            } else {
                LogKind::Messages
            },
        )
    })
}

/// A signed entry with arbitrary fields (the Lamport clock follows the parent count's rule).
fn entry() -> impl Strategy<Value = Entry> {
    (
        log_id(),
        proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        2..u64::MAX,
        bytes(64),
    )
        .prop_map(|(log, parents, lamport, payload)| {
            let parents: Vec<EntryId> = parents.into_iter().map(EntryId).collect();
            let lamport = if parents.is_empty() { 1 } else { lamport };
            Entry::sign(
                &SigningKey::from_bytes(&[5; 32]),
                log,
                parents,
                lamport,
                &payload,
            )
            .unwrap()
        })
}

fn read<T: prost::Message + Default>(stream: &[u8], max: usize) -> Option<T> {
    match block_on(read_frame::<T, _>(&mut &stream[..], max)) {
        Ok(Frame::Message(message)) => Some(message),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn log_entries(raw in bytes(300), entry in entry(), flip in any::<(u16, u8)>()) {
        if let Ok(decoded) = Entry::decode(&raw) {
            prop_assert_eq!(decoded.bytes(), raw.as_slice());
        }
        let decoded = Entry::decode(entry.bytes()).unwrap();
        prop_assert_eq!(&decoded, &entry);
        prop_assert!(decoded.parents().len() <= MAX_PARENTS);
        let pk = SigningKey::from_bytes(&[5; 32]).verifying_key();
        prop_assert!(decoded.verify(&pk).is_ok());
        let mut edited = entry.bytes().to_vec();
        let at = usize::from(flip.0) % edited.len();
        edited[at] ^= flip.1.max(1);
        if let Ok(tampered) = Entry::decode(&edited) {
            prop_assert!(tampered.verify(&pk).is_err());
        }
    }

    #[test]
    fn sync_frames(raw in bytes(300), entries in proptest::collection::vec(entry(), 0..3), lamport in any::<u64>()) {
        let _ = read::<SyncRequest>(&raw, MAX_REQUEST_BYTES);
        let _ = read::<SyncResponse>(&raw, MAX_RESPONSE_BYTES);
        let log = entries.first().map_or(LogId::new([1; 32], LogKind::Messages), Entry::log_id);
        let head = SyncHead { id: vec![9; 32], lamport };
        let request = SyncRequest {
            request: Some(Request::Announce(SyncAnnounce {
                log: Some(SyncLog { group_pk: log.group_pk().to_vec(), kind: u32::from(log.kind().as_byte()) }),
                heads: vec![head.clone()],
                entries: entries.iter().map(|e| e.bytes().to_vec()).collect(),
            })),
        };
        let mut stream = Vec::new();
        block_on(write_frame(&mut stream, Frame::Message(request.clone()), MAX_REQUEST_BYTES)).unwrap();
        prop_assert_eq!(read::<SyncRequest>(&stream, MAX_REQUEST_BYTES), Some(request.clone()));
        // The domain form keeps the log and the head, and goes back to the same wire message.
        let parsed = DomainRequest::try_from(request.clone()).unwrap();
        let DomainRequest::Announce(announcement) = &parsed else { panic!("not an announcement") };
        prop_assert_eq!(announcement.log, log);
        prop_assert_eq!(announcement.heads[0].lamport, lamport);
        prop_assert_eq!(SyncRequest::from(parsed), request);
        let short = SyncRequest {
            request: Some(Request::Heads(SyncHeads { logs: vec![SyncLog { group_pk: vec![1; 31], kind: 1 }] })),
        };
        prop_assert!(DomainRequest::try_from(short).is_err());
        // Entries of one log signed by another key than the group's are refused.
        let raw_entries: Vec<Vec<u8>> = entries.iter().map(|e| e.bytes().to_vec()).collect();
        let checked = check_received(log, &GROUP.keys.signing_pk(), &raw_entries);
        prop_assert_eq!(checked.is_ok(), raw_entries.is_empty());
    }

    #[test]
    fn gossip(raw in bytes(200), heads in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>()), 0..4)) {
        let link_key = GROUP.keys.link_key();
        let topic = gossip_topic(link_key);
        prop_assert!(open_gossip(link_key, &topic, &raw).is_none());
        let announce = SyncAnnounce {
            log: Some(SyncLog { group_pk: GROUP.keys.group_pk().to_bytes().to_vec(), kind: 2 }),
            heads: heads.iter().map(|(id, lamport)| SyncHead { id: id.to_vec(), lamport: *lamport }).collect(),
            entries: vec![raw.clone()],
        };
        let sealed = seal_announcement(link_key, &topic, &prost::Message::encode_to_vec(&announce), &mut rng()).unwrap();
        prop_assert_eq!(open_gossip(link_key, &topic, &sealed), Announcement::try_from(announce).ok());
        prop_assert!(open_gossip(link_key, "bn1-elsewhere", &sealed).is_none());
    }

    #[test]
    fn rendezvous(raw in bytes(300), ns in "[a-z/]{0,20}", ttl in any::<u64>(), last_id in 0..i64::MAX as u64) {
        let _ = block_on(read_message(&mut &raw[..], 64 * 1024));
        let _ = record::verify(&raw);
        if let Some(cookie) = DiscoverCookie::decode(&raw) {
            prop_assert_eq!(cookie.encode(), raw.clone());
        }
        let cookie = DiscoverCookie { last_id, namespace: ns.clone() };
        prop_assert_eq!(DiscoverCookie::decode(&cookie.encode()), Some(cookie));
        let message = Message {
            r#type: Some(MessageType::Register as i32),
            register: Some(Register { ns: Some(ns), signed_peer_record: Some(raw), ttl: Some(ttl) }),
            ..Default::default()
        };
        let mut stream = Vec::new();
        block_on(write_message(&mut stream, &message, 64 * 1024)).unwrap();
        prop_assert_eq!(block_on(read_message(&mut &stream[..], 64 * 1024)).unwrap(), message);
    }

    #[test]
    fn envelopes(raw in bytes(300), plaintext in bytes(200), counter in any::<u64>(), key in any::<[u8; 32]>()) {
        let keys = &GROUP.keys;
        let device = SigningKey::from_bytes(&[7; 32]);
        prop_assert!(open_header(keys, LogKind::Messages, &raw).is_err());
        prop_assert!(open_metadata(keys, &raw).is_err());
        prop_assert!(open_chain_key(&GROUP.member, keys.group_pk(), &device.verifying_key(), &raw).is_err());

        let message_key = MessageKey::from_bytes(key);
        let sealed = seal_message(keys, &device, LogKind::Messages, counter, &message_key, &plaintext, &mut rng()).unwrap();
        let header = open_header(keys, LogKind::Messages, &sealed).unwrap();
        prop_assert_eq!(header.counter, counter);
        prop_assert_eq!(open_body(keys, LogKind::Messages, &header, &message_key, &sealed).unwrap(), plaintext.clone());

        let sealed = seal_metadata(keys, &device, &plaintext, &mut rng()).unwrap();
        let opened = open_metadata(keys, &sealed).unwrap();
        prop_assert_eq!(opened.plaintext, plaintext);
        prop_assert_eq!(opened.author_device, device.verifying_key());

        let chain_key = ChainKey::from_bytes(key);
        let sealed = seal_chain_key(keys.group_pk(), &device.verifying_key(), &GROUP.member.verifying_key(), &chain_key, counter, &mut rng()).unwrap();
        let (opened, opened_counter) = open_chain_key(&GROUP.member, keys.group_pk(), &device.verifying_key(), &sealed).unwrap();
        prop_assert_eq!(opened.as_bytes(), chain_key.as_bytes());
        prop_assert_eq!(opened_counter, counter);
    }

    #[test]
    fn references(raw in bytes(200), account in any::<[u8; 32]>(), seed in any::<[u8; 32]>()) {
        let _ = GroupReference::decode(&raw);
        let _ = ContactReference::decode(&raw);
        let _ = CreationProof::decode(&raw);
        let contact = ContactReference {
            account_pk: SigningKey::from_bytes(&account).verifying_key(),
            rendezvous_seed: RendezvousSeed::from_bytes(seed),
        };
        let back = ContactReference::decode(&contact.encode()).unwrap();
        prop_assert_eq!(back.account_pk, contact.account_pk);
        prop_assert_eq!(back.rendezvous_seed.as_bytes(), &seed);
        let group = GroupReference { keys: GROUP.keys.clone(), proof: GROUP.proof.clone() };
        let back = GroupReference::decode(&group.encode()).unwrap();
        prop_assert_eq!(back.encode(), group.encode());
        prop_assert_eq!(CreationProof::decode(&GROUP.proof.encode()).unwrap(), GROUP.proof.clone());
    }

    #[test]
    fn exports(raw in bytes(300), entries in proptest::collection::vec(entry(), 1..3)) {
        let _ = parse_export(&raw, ImportMode::Restore);
        let _ = parse_export(&raw, ImportMode::NewDevice);
        let account = AccountKeys::from_seeds(&[1; 32], &[2; 32], &[3; 32]);
        let log = entries[0].log_id();
        let export = berty_node::proto::wire::Export {
            version: berty_node::actors::export::EXPORT_VERSION,
            account_keys: account.to_bytes().to_vec(),
            values: vec![],
            logs: vec![berty_node::proto::wire::ExportLog {
                log_id: log.to_bytes().to_vec(),
                entries: entries.iter().filter(|e| e.log_id() == log).map(|e| e.bytes().to_vec()).collect(),
                events: vec![],
            }],
        };
        let parsed = parse_export(&prost::Message::encode_to_vec(&export), ImportMode::Restore).unwrap();
        prop_assert_eq!(parsed.keys.device_pk(), account.device_pk());
        prop_assert_eq!(parsed.logs.len(), 1);
        prop_assert_eq!(parsed.logs[0].log_id, log);
        let stored: Vec<&[u8]> = parsed.logs[0].entries.iter().map(|e| e.bytes.as_slice()).collect();
        let expected: Vec<&[u8]> = export.logs[0].entries.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(stored, expected);
    }

    #[test]
    fn admin_bodies(raw in bytes(100), text in any::<String>(), secs in any::<u64>()) {
        let _ = serde_json::from_slice::<DialBody>(&raw);
        let _ = serde_json::from_slice::<BanQuery>(&raw);
        let body = serde_json::json!({ "addr": text }).to_string();
        prop_assert!(serde_json::from_str::<DialBody>(&body).is_ok());
        let query = serde_json::json!({ "secs": secs }).to_string();
        prop_assert!(serde_json::from_str::<BanQuery>(&query).is_ok());
        let _ = text.parse::<libp2p::Multiaddr>();
        let _ = text.parse::<libp2p::PeerId>();
    }
}
