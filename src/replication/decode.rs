//! Decoding entries written by other devices into view events (what subscriptions replay).
//!
//! The log keeps every structurally valid, correctly signed entry; the rules of the group are
//! applied here, by each replica's view: a device must be bound to its member by the member's
//! signature, metadata must be signed by its device, group settings count only from the
//! creator, messages open only with the sender's chain key. An entry that breaks a rule stays
//! in the log and shows nothing.
//!
//! What decoding learns is kept in node values, committed with the events:
//!
//! | key | value |
//! |---|---|
//! | `member/<group>/<device>` | the member key a device belongs to (sealed) |
//! | `recv/<group>/<device>` | the receiver chain of a device (sealed [`ReceiverChain`]) |
//! | `queue/<group>/<device>/<lamport, 20 digits>/<entry id>` | a message waiting for its sender's chain key |

use std::collections::HashMap;

use prost::Message as _;

use crate::{
    crypto::{
        open_body_unverified, open_chain_key, open_header, open_metadata, parse_public_key,
        parse_signature, verify_account_disclosure, verify_batch, verify_member_device,
        MessageHeader, ReceiverChain, SignatureCheck, VerifyingKey,
    },
    group::{view::SettingScope, GroupContext, ViewBody, ViewEvent},
    log::{Entry, EntryId, LogKind},
    proto::wire::{self, metadata_event::Event},
    storage::NewEvent,
};

/// Node-value key of the member a device of a group belongs to.
pub fn member_value_key(group_pk: &[u8; 32], device: &[u8; 32]) -> String {
    format!("member/{}/{}", hex::encode(group_pk), hex::encode(device))
}

/// Node-value key of the receiver chain of a device of a group.
pub fn receiver_value_key(group_pk: &[u8; 32], device: &[u8; 32]) -> String {
    format!("recv/{}/{}", hex::encode(group_pk), hex::encode(device))
}

/// Prefix of the queued messages of a device of a group, in total order.
pub fn queue_prefix(group_pk: &[u8; 32], device: &[u8; 32]) -> String {
    format!("queue/{}/{}/", hex::encode(group_pk), hex::encode(device))
}

/// Node-value key of one queued message.
pub fn queue_key(group_pk: &[u8; 32], device: &[u8; 32], lamport: u64, id: &EntryId) -> String {
    format!("{}{lamport:020}/{id}", queue_prefix(group_pk, device))
}

/// The entry id at the end of a queue key.
pub fn queued_entry_id(key: &str) -> Option<EntryId> {
    let hex_id = key.rsplit('/').next()?;
    let bytes = hex::decode(hex_id).ok()?;
    EntryId::from_slice(&bytes)
}

/// A view event for `entry` saying `event`.
fn new_event(entry: &Entry, event: &ViewEvent) -> NewEvent {
    NewEvent {
        entry_id: entry.id(),
        lamport: entry.lamport(),
        parents: entry.parents().to_vec(),
        kind: event.kind().as_u8(),
        body: event.encode(),
    }
}

/// What decoding metadata entries produced.
#[derive(Default)]
pub struct MetadataDecoded {
    /// View events to commit with the entries.
    pub events: Vec<NewEvent>,
    /// Member bindings learnt: (device, member).
    pub members: Vec<([u8; 32], [u8; 32])>,
    /// Chain keys shared with this member: (device, chain), to store if none is stored yet.
    pub chains: Vec<([u8; 32], ReceiverChain)>,
    /// Members other than this account seen for the first time.
    pub new_members: Vec<[u8; 32]>,
    /// Entries that break a rule of the group (kept in the log, shown nowhere).
    pub skipped: usize,
}

/// Decodes metadata entries of `group` from other devices, in total order. `members` maps the
/// devices seen so far to their members and learns the new ones.
pub fn decode_metadata(
    group: &GroupContext,
    members: &mut HashMap<[u8; 32], [u8; 32]>,
    entries: &[Entry],
) -> MetadataDecoded {
    let mut out = MetadataDecoded::default();
    for entry in entries {
        match decode_one_metadata(group, members, entry, &mut out) {
            Ok(Some(event)) => out.events.push(new_event(entry, &event)),
            Ok(None) => {}
            Err(reason) => {
                tracing::debug!(entry = %entry.id(), reason, "metadata entry shows nothing");
                out.skipped += 1;
            }
        }
    }
    out
}

fn decode_one_metadata(
    group: &GroupContext,
    members: &mut HashMap<[u8; 32], [u8; 32]>,
    entry: &Entry,
    out: &mut MetadataDecoded,
) -> Result<Option<ViewEvent>, &'static str> {
    let keys = group.keys();
    let group_pk = keys.group_pk();
    let opened = open_metadata(keys, entry.payload()).map_err(|_| "does not open")?;
    let device = opened.author_device.to_bytes();
    let event = wire::MetadataEvent::decode(opened.plaintext.as_slice())
        .map_err(|_| "does not parse")?
        .event
        .ok_or("empty event")?;
    let own_member = group.member.verifying_key().to_bytes();
    if let Event::MemberDevice(bound) = event {
        let member = key_of(&bound.member_pk)?;
        if bound.device_pk != device {
            return Err("binds another device than its author");
        }
        let signature = parse_signature(&bound.member_signature).map_err(|_| "bad signature")?;
        verify_member_device(&member, group_pk, &opened.author_device, &signature)
            .map_err(|_| "member signature does not verify")?;
        if !bound.account_signature.is_empty() {
            let account = key_of(&bound.account_pk)?;
            let signature =
                parse_signature(&bound.account_signature).map_err(|_| "bad signature")?;
            verify_account_disclosure(&account, group_pk, &member, &signature)
                .map_err(|_| "account disclosure does not verify")?;
        }
        let member = member.to_bytes();
        let seen = members.values().any(|m| *m == member);
        if members.insert(device, member) != Some(member) {
            out.members.push((device, member));
        }
        if !seen && member != own_member {
            out.new_members.push(member);
        }
        return Ok(Some(ViewEvent {
            member_pk: member,
            device_pk: device,
            body: ViewBody::Member {
                account_pk: bound.account_pk,
                meta: bound.meta,
            },
        }));
    }
    let member = *members
        .get(&device)
        .ok_or("author device is not a member")?;
    let body = match event {
        Event::MemberDevice(_) => return Err("unreachable"),
        Event::ChainKey(share) => {
            if share.recipient_member_pk != own_member {
                return Ok(None);
            }
            let (chain_key, counter) = open_chain_key(
                &group.member,
                group_pk,
                &opened.author_device,
                &share.sealed_chain_key,
            )
            .map_err(|_| "chain key does not open")?;
            out.chains
                .push((device, ReceiverChain::new(*group_pk, chain_key, counter)));
            return Ok(None);
        }
        Event::Setting(setting) => {
            let scope = match wire::SettingScope::try_from(setting.scope) {
                Ok(wire::SettingScope::Group) => SettingScope::Group,
                Ok(wire::SettingScope::Member) => SettingScope::Member,
                _ => return Err("unknown setting scope"),
            };
            if scope == SettingScope::Group && group.creator.is_some_and(|c| c.to_bytes() != member)
            {
                return Err("group setting from a member who is not the creator");
            }
            ViewBody::Setting {
                scope,
                key: setting.key,
                value: setting.value,
            }
        }
        Event::AccountEvent(event) => ViewBody::Account {
            event_type: event.event_type,
            subject: event.subject,
            data: event.data,
        },
    };
    Ok(Some(ViewEvent {
        member_pk: member,
        device_pk: device,
        body,
    }))
}

fn key_of(bytes: &[u8]) -> Result<VerifyingKey, &'static str> {
    parse_public_key(bytes).map_err(|_| "bad public key")
}

/// One message entry with its opened header.
pub struct OpenedMessage {
    /// The entry.
    pub entry: Entry,
    /// Its header.
    pub header: MessageHeader,
}

/// Opens the headers of message entries; those that do not open are dropped (counted).
pub fn open_headers(group: &GroupContext, entries: Vec<Entry>) -> (Vec<OpenedMessage>, usize) {
    let mut skipped = 0;
    let opened = entries
        .into_iter()
        .filter_map(
            |entry| match open_header(group.keys(), LogKind::Messages, entry.payload()) {
                Ok(header) => Some(OpenedMessage { entry, header }),
                Err(_) => {
                    skipped += 1;
                    None
                }
            },
        )
        .collect();
    (opened, skipped)
}

/// What decoding messages produced.
#[derive(Debug, Default)]
pub struct MessagesDecoded {
    /// View events to commit.
    pub events: Vec<NewEvent>,
    /// Messages whose sender's chain key is not here yet: (device, lamport, id).
    pub queued: Vec<([u8; 32], u64, EntryId)>,
    /// Devices whose chain advanced (store their chains).
    pub touched: Vec<[u8; 32]>,
    /// Messages that break a rule (bad signature, key already used, out of window).
    pub skipped: usize,
}

/// Decodes messages in total order with the receiver chains of their senders (advanced as
/// keys are used). Author signatures are checked in one batch; a failed batch is checked one
/// by one so a bad message never hides good ones. CPU-bound: run it off the actors' threads.
pub fn decode_messages(
    group: &GroupContext,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    members: &HashMap<[u8; 32], [u8; 32]>,
    messages: &[OpenedMessage],
) -> MessagesDecoded {
    let mut out = MessagesDecoded::default();
    let mut opened: Vec<(usize, Vec<u8>, SignatureCheck, [u8; 32])> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let device = message.header.device.to_bytes();
        let (Some(chain), Some(member)) = (chains.get_mut(&device), members.get(&device)) else {
            out.queued
                .push((device, message.entry.lamport(), message.entry.id()));
            continue;
        };
        let key = match chain.consume(message.header.counter) {
            Ok(key) => key,
            Err(e) => {
                tracing::debug!(entry = %message.entry.id(), %e, "message key unavailable");
                out.skipped += 1;
                continue;
            }
        };
        if !out.touched.contains(&device) {
            out.touched.push(device);
        }
        match open_body_unverified(
            group.keys(),
            LogKind::Messages,
            &message.header,
            &key,
            message.entry.payload(),
        ) {
            Ok((plaintext, check)) => opened.push((index, plaintext, check, *member)),
            Err(_) => out.skipped += 1,
        }
    }
    let checks: Vec<SignatureCheck> = opened.iter().map(|(_, _, c, _)| c.clone()).collect();
    let all_valid = verify_batch(&checks).is_ok();
    for (index, plaintext, check, member) in opened {
        if !all_valid && check.verify().is_err() {
            out.skipped += 1;
            continue;
        }
        let Some(message) = messages.get(index) else {
            continue;
        };
        let event = ViewEvent {
            member_pk: member,
            device_pk: message.header.device.to_bytes(),
            body: ViewBody::Message { payload: plaintext },
        };
        out.events.push(new_event(&message.entry, &event));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_sort_by_lamport_and_name_their_entry() {
        let id = EntryId::from_slice(&[7; 32]).unwrap();
        let a = queue_key(&[1; 32], &[2; 32], 9, &id);
        let b = queue_key(&[1; 32], &[2; 32], 10, &id);
        assert!(a < b);
        assert!(a.starts_with(&queue_prefix(&[1; 32], &[2; 32])));
        assert_eq!(queued_entry_id(&a), Some(id));
        assert_eq!(queued_entry_id("queue/x/y/1/zz"), None);
    }
}
