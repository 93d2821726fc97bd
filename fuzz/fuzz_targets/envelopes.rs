//! Envelopes a group member receives: message payloads (`crypto::message`), metadata payloads
//! (`crypto::metadata`), sealed chain keys (`crypto::sealed_chain_key`), and how replication
//! decodes them from remote entries (`actors::group_store::decode`).
//!
//! Random bytes never pass an AEAD tag, so besides bytes as received each layout is also
//! reached from the inside: the fuzzer's bytes are sealed with the group's keys first.
//!
//! Selector byte, then:
//! - `0`: bytes as received, to every opener;
//! - `1`: a message sealed and opened (round trip), then edited (an edited message must not
//!   open);
//! - `2`: the 104 bytes inside a sealed message header;
//! - `3`: a metadata payload sealed and opened (round trip), and the bytes inside one;
//! - `4`: a chain key sealed and opened (round trip), and sealed chain keys with a fuzzed
//!   ephemeral key;
//! - `5`: a metadata event (protobuf bytes, or built from the input) in a signed entry,
//!   through `decode_metadata`;
//! - `6`: messages in fuzzed order, duplicated or forged, through `decode_messages`.
#![no_main]

mod common;

use std::collections::HashMap;
use std::sync::LazyLock;

use berty_node::{
    crypto::{
        labels, open_body, open_chain_key, open_header, open_metadata, open_metadata_unverified,
        seal, seal_chain_key, seal_message, seal_metadata, sign_member_device, AccountKeys,
        ChainKey, MessageKey, ReceiverChain, SigningKey, ENVELOPE_OVERHEAD,
    },
    group::{GroupContext, GroupKind, GroupRecord},
    log::{Entry, LogId, LogKind},
    proto::wire::{self, metadata_event::Event},
    actors::group_store::decode::{decode_messages, decode_metadata, open_headers},
};
use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use prost::Message;

/// The author device of the fixtures.
fn device() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The receiving account's view of the group.
static CONTEXT: LazyLock<GroupContext> = LazyLock::new(|| {
    let account = AccountKeys::from_seeds(&[10; 32], &[11; 32], &[12; 32]);
    let record = GroupRecord {
        kind: GroupKind::Multi,
        keys: common::GROUP.keys.clone(),
        proof: Some(common::GROUP.proof.clone()),
        device: SigningKey::from_bytes(&[13; 32]),
        left: false,
        contact_pk: None,
        joined_seq: 0,
    };
    GroupContext::new(record, &account).expect("a context")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = match selector % 7 {
        0 => {
            received(rest);
            Ok(())
        }
        1 => message_round_trip(&mut u),
        2 => header_inside(rest),
        3 => metadata(&mut u),
        4 => chain_key(&mut u),
        5 => metadata_events(&mut u),
        _ => messages(&mut u),
    };
});

/// Up to `max` bytes of the input.
fn take<'a>(u: &mut Unstructured<'a>, max: usize) -> Result<&'a [u8]> {
    let len = u.int_in_range(0..=max)?;
    u.bytes(len.min(u.len()))
}

fn kind(u: &mut Unstructured) -> Result<LogKind> {
    Ok(if u.arbitrary::<bool>()? {
        LogKind::Messages
    } else {
        LogKind::Metadata
    })
}

fn received(bytes: &[u8]) {
    let keys = &common::GROUP.keys;
    for kind in [LogKind::Messages, LogKind::Metadata] {
        if let Ok(header) = open_header(keys, kind, bytes) {
            let _ = open_body(keys, kind, &header, &MessageKey::from_bytes([1; 32]), bytes);
        }
    }
    let _ = open_metadata(keys, bytes);
    let _ = open_chain_key(
        &common::GROUP.member,
        keys.group_pk(),
        &device().verifying_key(),
        bytes,
    );
}

fn message_round_trip(u: &mut Unstructured) -> Result<()> {
    let keys = &common::GROUP.keys;
    let kind = kind(u)?;
    let counter: u64 = u.arbitrary()?;
    let message_key = MessageKey::from_bytes(u.arbitrary()?);
    let plaintext = take(u, 4096)?;
    let edits = u.bytes(u.len().min(30))?;
    let device = device();
    let sealed = seal_message(
        keys,
        &device,
        kind,
        counter,
        &message_key,
        plaintext,
        &mut common::rng(),
    )
    .expect("seal");
    let header = open_header(keys, kind, &sealed).expect("the header opens");
    assert_eq!(header.counter, counter);
    assert_eq!(header.device, device.verifying_key());
    let opened = open_body(keys, kind, &header, &message_key, &sealed).expect("the body opens");
    assert_eq!(opened, plaintext, "message round trip");
    let mut wrong = *message_key.as_bytes();
    wrong[0] ^= 1;
    assert!(open_body(keys, kind, &header, &MessageKey::from_bytes(wrong), &sealed).is_err());
    let other = match kind {
        LogKind::Messages => LogKind::Metadata,
        LogKind::Metadata => LogKind::Messages,
    };
    assert!(open_header(keys, other, &sealed).is_err());

    let edited = common::mutate(&sealed, edits);
    if edited != sealed {
        let both = open_header(keys, kind, &edited)
            .and_then(|header| open_body(keys, kind, &header, &message_key, &edited));
        assert!(both.is_err(), "an edited message opens");
    }
    Ok(())
}

fn header_inside(bytes: &[u8]) -> Result<()> {
    let keys = &common::GROUP.keys;
    let mut inner = bytes.to_vec();
    inner.resize(8 + 32 + 64, 0);
    let ad = [
        labels::AD_MESSAGE_HEADER,
        keys.group_pk().as_bytes(),
        &[LogKind::Messages.as_byte()],
    ]
    .concat();
    let sealed_header = seal(keys.header_key(), &ad, &inner, &mut common::rng()).expect("seal");
    let mut message = vec![1];
    message.extend_from_slice(&sealed_header);
    message.extend_from_slice(&[0; ENVELOPE_OVERHEAD]);
    match open_header(keys, LogKind::Messages, &message) {
        Ok(header) => {
            assert_eq!(header.counter.to_be_bytes(), inner[..8]);
            assert_eq!(header.device.as_bytes(), &inner[8..40]);
            assert_eq!(header.signature.to_bytes(), inner[40..]);
            // The body (all zeros) never opens.
            let _ = open_body(
                keys,
                LogKind::Messages,
                &header,
                &MessageKey::from_bytes([0; 32]),
                &message,
            )
            .expect_err("a zero body opens");
        }
        Err(_) => {
            // Refused only for the device key.
            assert!(berty_node::crypto::parse_public_key(&inner[8..40]).is_err());
        }
    }
    Ok(())
}

fn metadata(u: &mut Unstructured) -> Result<()> {
    let keys = &common::GROUP.keys;
    let plaintext = take(u, 4096)?;
    let device = device();
    let sealed = seal_metadata(keys, &device, plaintext, &mut common::rng()).expect("seal");
    let opened = open_metadata(keys, &sealed).expect("opens");
    assert_eq!(opened.plaintext, plaintext, "metadata round trip");
    assert_eq!(opened.author_device, device.verifying_key());

    // The bytes inside: device pk || signature || payload.
    let inside = u.bytes(u.len())?;
    let ad = [labels::AD_METADATA, keys.group_pk().as_bytes()].concat();
    let mut sealed = vec![1];
    sealed.extend_from_slice(
        &seal(keys.metadata_key(), &ad, inside, &mut common::rng()).expect("seal"),
    );
    if let Ok((opened, check)) = open_metadata_unverified(keys, &sealed) {
        assert_eq!(opened.plaintext, inside[96..]);
        // Nobody but the device signs: a fuzzed signature does not verify.
        assert!(check.verify().is_err() || inside[..32] == device.verifying_key().to_bytes());
    }
    Ok(())
}

fn chain_key(u: &mut Unstructured) -> Result<()> {
    let keys = &common::GROUP.keys;
    let member = &common::GROUP.member;
    let sender = device().verifying_key();
    let chain_key = ChainKey::from_bytes(u.arbitrary()?);
    let counter: u64 = u.arbitrary()?;
    let sealed = seal_chain_key(
        keys.group_pk(),
        &sender,
        &member.verifying_key(),
        &chain_key,
        counter,
        &mut common::rng(),
    )
    .expect("seal");
    let (opened, opened_counter) =
        open_chain_key(member, keys.group_pk(), &sender, &sealed).expect("opens");
    assert_eq!(
        opened.as_bytes(),
        chain_key.as_bytes(),
        "chain key round trip"
    );
    assert_eq!(opened_counter, counter);
    assert!(open_chain_key(&device(), keys.group_pk(), &sender, &sealed).is_err());

    // A fuzzed ephemeral key (small-order points included) and envelope.
    let mut forged = vec![1];
    forged.extend_from_slice(u.bytes(u.len())?);
    assert!(open_chain_key(member, keys.group_pk(), &sender, &forged).is_err());
    Ok(())
}

/// One entry of the metadata log carrying `plaintext`, written by `device`.
fn metadata_entry(plaintext: &[u8], lamport: u64) -> Entry {
    let keys = &common::GROUP.keys;
    let sealed = seal_metadata(keys, &device(), plaintext, &mut common::rng()).expect("seal");
    let log = LogId::new(keys.group_pk().to_bytes(), LogKind::Metadata);
    let parents = if lamport == 1 {
        vec![]
    } else {
        vec![berty_node::log::EntryId([lamport as u8; 32])]
    };
    Entry::sign(keys.signing_key(), log, parents, lamport, &sealed).expect("sign")
}

fn metadata_events(u: &mut Unstructured) -> Result<()> {
    let context = &*CONTEXT;
    let keys = context.keys();
    let own_member = context.member.verifying_key();
    let device_key = device();
    let mut plaintexts = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let plaintext = match u.int_in_range(0..=4)? {
            0 => take(u, 512)?.to_vec(),
            1 => {
                // A device binding, signed by the creator or with fuzzed fields.
                let member = &common::GROUP.member;
                let good = u.arbitrary::<bool>()?;
                wire::MetadataEvent {
                    event: Some(Event::MemberDevice(wire::MemberDevice {
                        member_pk: member.verifying_key().to_bytes().to_vec(),
                        device_pk: device_key.verifying_key().to_bytes().to_vec(),
                        member_signature: if good {
                            sign_member_device(member, keys.group_pk(), &device_key.verifying_key())
                                .to_bytes()
                                .to_vec()
                        } else {
                            u.bytes(64)?.to_vec()
                        },
                        account_pk: take(u, 32)?.to_vec(),
                        account_signature: take(u, 64)?.to_vec(),
                        meta: take(u, 16)?.to_vec(),
                    })),
                }
                .encode_to_vec()
            }
            2 => {
                // A chain key shared with this member: sealed for real, or fuzzed.
                let sealed = if u.arbitrary::<bool>()? {
                    seal_chain_key(
                        keys.group_pk(),
                        &device_key.verifying_key(),
                        &own_member,
                        &ChainKey::from_bytes(u.arbitrary()?),
                        u.arbitrary()?,
                        &mut common::rng(),
                    )
                    .expect("seal")
                } else {
                    take(u, 120)?.to_vec()
                };
                wire::MetadataEvent {
                    event: Some(Event::ChainKey(wire::ChainKeyShare {
                        recipient_member_pk: own_member.to_bytes().to_vec(),
                        sealed_chain_key: sealed,
                    })),
                }
                .encode_to_vec()
            }
            3 => wire::MetadataEvent {
                event: Some(Event::Setting(wire::Setting {
                    scope: u.int_in_range(-1..=3)?,
                    key: String::from_utf8_lossy(take(u, 16)?).into_owned(),
                    value: take(u, 16)?.to_vec(),
                })),
            }
            .encode_to_vec(),
            _ => wire::MetadataEvent {
                event: Some(Event::AccountEvent(wire::AccountEvent {
                    event_type: u.arbitrary()?,
                    subject: take(u, 40)?.to_vec(),
                    data: take(u, 40)?.to_vec(),
                    ..Default::default()
                })),
            }
            .encode_to_vec(),
        };
        plaintexts.push(plaintext);
    }
    let entries: Vec<Entry> = plaintexts
        .iter()
        .enumerate()
        .map(|(i, p)| metadata_entry(p, i as u64 + 1))
        .collect();
    let mut members = HashMap::new();
    if u.arbitrary::<bool>()? {
        members.insert(
            device_key.verifying_key().to_bytes(),
            common::GROUP.member.verifying_key().to_bytes(),
        );
    }
    let decoded = decode_metadata(context, &mut members, &entries);
    assert!(decoded.events.len() + decoded.skipped <= entries.len());
    for (device, _) in &decoded.chains {
        assert_eq!(device, &device_key.verifying_key().to_bytes());
    }
    Ok(())
}

fn messages(u: &mut Unstructured) -> Result<()> {
    let context = &*CONTEXT;
    let keys = context.keys();
    let device_key = device();
    let device_pk = device_key.verifying_key().to_bytes();
    let start: u64 = u.int_in_range(0..=3)?;
    let chain = ChainKey::from_bytes([21; 32]);
    // Message keys of counters start.. (the sender's chain).
    let mut message_keys = Vec::new();
    let mut step = chain.clone();
    for _ in 0..start {
        step = step.step(keys.group_pk()).expect("step").0;
    }
    let receiver = ReceiverChain::new(*keys.group_pk(), step.clone(), start);
    for _ in 0..16 {
        let (next, key) = step.step(keys.group_pk()).expect("step");
        message_keys.push(key);
        step = next;
    }
    let log = LogId::new(keys.group_pk().to_bytes(), LogKind::Messages);
    let mut entries = Vec::new();
    let mut genuine = Vec::new();
    for i in 0..u.int_in_range(0..=12u8)? {
        let offset = u.int_in_range(0..=15u64)?;
        let counter = start + offset;
        let forged = u.ratio(1, 4)?;
        let key = if forged {
            MessageKey::from_bytes([99; 32])
        } else {
            MessageKey::from_bytes(*message_keys[offset as usize].as_bytes())
        };
        let plaintext = take(u, 16)?;
        let sealed = seal_message(
            keys,
            &device_key,
            LogKind::Messages,
            counter,
            &key,
            plaintext,
            &mut common::rng(),
        )
        .expect("seal");
        let parents = vec![berty_node::log::EntryId([i; 32])];
        let entry = Entry::sign(keys.signing_key(), log, parents, 2, &sealed).expect("sign");
        if !forged {
            genuine.push(counter);
        }
        entries.push(entry);
    }
    let (opened, skipped) = open_headers(context, entries.clone());
    assert_eq!(skipped, 0);
    let mut chains = HashMap::new();
    chains.insert(device_pk, receiver);
    let mut members = HashMap::new();
    members.insert(device_pk, common::GROUP.member.verifying_key().to_bytes());
    let decoded = decode_messages(context, &mut chains, &members, &opened);
    // Each counter of a genuine message is delivered exactly once, whatever forged messages
    // naming the same counter come before it in the batch.
    genuine.sort_unstable();
    genuine.dedup();
    assert_eq!(decoded.events.len(), genuine.len());
    assert_eq!(decoded.events.len() + decoded.skipped, entries.len());
    Ok(())
}
