//! The metadata view: device bindings, chain keys shared with this member, settings and
//! account events (in the account group: `DevicePaired` checked against the account key,
//! `GroupJoined` and `GroupLeft` of the account's other devices handed on to be followed).

use std::collections::HashMap;

use super::new_event;
use crate::{
    crypto::{
        open_chain_key, open_metadata, parse_public_key, verify_account_device,
        verify_account_disclosure, verify_member_device, ReceiverChain, VerifyingKey,
    },
    group::{
        metadata::{AccountEvent, Disclosure, MemberDevice},
        view::SettingScope,
        GroupContext, GroupKind, GroupReference, MetadataEvent, ViewEvent,
    },
    log::Entry,
    proto::berty_protocol::AccountEventType,
    storage::NewEvent,
};

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
    /// Account group: groups another device of the account joined (`GroupJoined`), each with
    /// the contact's account key for a contact group.
    pub joined: Vec<(GroupReference, Option<VerifyingKey>)>,
    /// Account group: groups another device of the account left (`GroupLeft`).
    pub left: Vec<[u8; 32]>,
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
            Ok(Some(event)) => out.events.push(new_event(entry, &event, None)),
            Ok(None) => {}
            Err(reason) => {
                tracing::debug!(entry = %entry.id(), %reason, "metadata entry shows nothing");
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
) -> Result<Option<ViewEvent>, String> {
    let keys = group.keys();
    let group_pk = keys.group_pk();
    let opened = open_metadata(keys, entry.payload()).map_err(|_| "does not open")?;
    let device = opened.author_device.to_bytes();
    let event = MetadataEvent::decode(&opened.plaintext).map_err(|e| e.to_string())?;
    let own_member = group.member.verifying_key();
    let view = event.view();
    let member = match event {
        MetadataEvent::MemberDevice(ref bound) => {
            decode_binding(group, members, &opened.author_device, bound, out)?
        }
        _ => *members
            .get(&device)
            .ok_or("author device is not a member")?,
    };
    match event {
        MetadataEvent::MemberDevice(_) => {}
        MetadataEvent::Account(event) => account_event(group, event, out)?,
        MetadataEvent::ChainKey(share) => {
            if share.recipient != own_member {
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
        }
        MetadataEvent::Setting { scope, .. } => {
            if scope == SettingScope::Group && group.creator.is_some_and(|c| c.to_bytes() != member)
            {
                return Err("group setting from a member who is not the creator".into());
            }
        }
    }
    Ok(view.map(|body| ViewEvent {
        member_pk: member,
        device_pk: device,
        body,
    }))
}

/// An account event of the account group (in other groups it only shows): a `DevicePaired`
/// must carry the account key's signature over the device it names; `GroupJoined` and
/// `GroupLeft` (written by another device: decoding sees only other devices' entries) are
/// handed on so this device follows them.
fn account_event(
    group: &GroupContext,
    event: AccountEvent,
    out: &mut MetadataDecoded,
) -> Result<(), &'static str> {
    if group.record.kind != GroupKind::Account {
        return Ok(());
    }
    match AccountEventType::try_from(event.event_type) {
        Ok(AccountEventType::DevicePaired) => {
            let device =
                parse_public_key(&event.subject).map_err(|_| "DevicePaired names no device key")?;
            let signature = event
                .device_signature
                .ok_or("DevicePaired without the account key's signature")?;
            // In the account group the member key is the account key.
            let account_pk = group.member.verifying_key();
            verify_account_device(&account_pk, group.keys().group_pk(), &device, &signature)
                .map_err(|_| "DevicePaired signature does not verify")?;
        }
        Ok(AccountEventType::GroupJoined) => {
            if let Some(reference) = event.group {
                out.joined.push((reference, event.contact_pk));
            }
        }
        Ok(AccountEventType::GroupLeft) => {
            if let Ok(group_pk) = <[u8; 32]>::try_from(event.subject.as_slice()) {
                out.left.push(group_pk);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A device binding: the member's signature over the device (and the account's over the
/// member, when disclosed) must hold; the device learns its member, which is returned.
fn decode_binding(
    group: &GroupContext,
    members: &mut HashMap<[u8; 32], [u8; 32]>,
    author: &VerifyingKey,
    bound: &MemberDevice,
    out: &mut MetadataDecoded,
) -> Result<[u8; 32], &'static str> {
    let group_pk = group.keys().group_pk();
    let device = author.to_bytes();
    let own_member = group.member.verifying_key().to_bytes();
    if bound.device != *author {
        return Err("binds another device than its author");
    }
    verify_member_device(&bound.member, group_pk, author, &bound.member_signature)
        .map_err(|_| "member signature does not verify")?;
    if let Disclosure::Signed { account, signature } = &bound.disclosure {
        verify_account_disclosure(account, group_pk, &bound.member, signature)
            .map_err(|_| "account disclosure does not verify")?;
    }
    let member = bound.member.to_bytes();
    let seen = members.values().any(|m| *m == member);
    if members.insert(device, member) != Some(member) {
        out.members.push((device, member));
    }
    if !seen && member != own_member {
        out.new_members.push(member);
    }
    Ok(member)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::OsRng;

    use super::super::fixtures::*;
    use super::*;
    use crate::{
        crypto::{sign_account_device, SenderChain, Signature, SigningKey},
        group::{EventKind, ViewBody},
        log::LogKind,
        proto::wire::{self, metadata_event::Event},
    };

    fn account_event(event_type: AccountEventType, subject: &[u8]) -> wire::AccountEvent {
        wire::AccountEvent {
            event_type: event_type as i32,
            subject: subject.to_vec(),
            ..Default::default()
        }
    }

    fn device_paired(device: &VerifyingKey, signature: Option<Signature>) -> Event {
        Event::AccountEvent(wire::AccountEvent {
            device_signature: signature.map(|s| s.to_bytes().to_vec()).unwrap_or_default(),
            ..account_event(AccountEventType::DevicePaired, device.as_bytes())
        })
    }

    #[test]
    fn a_device_paired_shows_only_with_the_account_keys_signature_over_its_device() {
        let [a, b] = account_group::<2>();
        let group_pk = *a.context.keys().group_pk();
        let device = b.account.device_pk();
        let account = b.account.account();
        let stranger = SigningKey::generate(&mut OsRng);
        let payloads = [
            sealed(&b, bind(&b)),
            sealed(
                &b,
                device_paired(
                    &device,
                    Some(sign_account_device(account, &group_pk, &device)),
                ),
            ),
            // Signed over another device, by another key, over another group, or not at all.
            sealed(
                &b,
                device_paired(
                    &device,
                    Some(sign_account_device(
                        account,
                        &group_pk,
                        &a.account.device_pk(),
                    )),
                ),
            ),
            sealed(
                &b,
                device_paired(
                    &device,
                    Some(sign_account_device(&stranger, &group_pk, &device)),
                ),
            ),
            sealed(
                &b,
                device_paired(
                    &device,
                    Some(sign_account_device(account, &device, &device)),
                ),
            ),
            sealed(&b, device_paired(&device, None)),
        ];
        let entries = chained(&a.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&a.context, &mut HashMap::new(), &entries);
        assert_eq!(out.skipped, 4);
        assert_eq!(ids(&out.events), vec![entries[0].id(), entries[1].id()]);
        assert_eq!(
            views(&out.events)[1],
            ViewEvent {
                member_pk: b.member_pk(),
                device_pk: b.device_pk(),
                body: ViewBody::Account {
                    event_type: AccountEventType::DevicePaired as i32,
                    subject: device.to_bytes().to_vec(),
                    data: Vec::new(),
                },
            }
        );
    }

    #[test]
    fn groups_another_device_joined_or_left_are_handed_on_from_the_account_group_only() {
        let [a, b] = account_group::<2>();
        let [g, _] = group::<2>();
        let g_pk = g.context.keys().group_pk().to_bytes();
        let reference = GroupReference {
            keys: g.context.record.keys.clone(),
            proof: g.context.record.proof.clone().unwrap(),
        };
        let contact = SigningKey::generate(&mut OsRng).verifying_key();
        let joined = Event::AccountEvent(wire::AccountEvent {
            group: Some(reference.to_wire()),
            contact_pk: contact.to_bytes().to_vec(),
            ..account_event(AccountEventType::GroupJoined, &g_pk)
        });
        let left = Event::AccountEvent(account_event(AccountEventType::GroupLeft, &g_pk));
        let payloads = [
            sealed(&b, bind(&b)),
            sealed(&b, joined.clone()),
            sealed(&b, left.clone()),
        ];
        let entries = chained(&a.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&a.context, &mut HashMap::new(), &entries);
        assert_eq!(out.skipped, 0);
        assert_eq!(out.events.len(), 3);
        assert_eq!(out.joined.len(), 1);
        assert_eq!(out.joined[0].0.keys.group_pk().to_bytes(), g_pk);
        assert_eq!(out.joined[0].1, Some(contact));
        assert_eq!(out.left, vec![g_pk]);

        // The same events in a multi-member group are only shown.
        let [m, n] = group::<2>();
        let payloads = [sealed(&n, bind(&n)), sealed(&n, joined), sealed(&n, left)];
        let entries = chained(&m.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&m.context, &mut HashMap::new(), &entries);
        assert_eq!(out.events.len(), 3);
        assert!(out.joined.is_empty() && out.left.is_empty());
    }

    #[test]
    fn a_bound_device_of_another_member_shows_as_a_new_member() {
        let [a, b] = group::<2>();
        let bound = Event::MemberDevice(binding(&b, &b.context.member, b"bob"));
        let entries = chained(&a.context, LogKind::Metadata, &[sealed(&b, bound)]);
        let mut members = HashMap::new();
        let out = decode_metadata(&a.context, &mut members, &entries);
        assert_eq!(out.skipped, 0);
        assert_eq!(
            views(&out.events),
            vec![ViewEvent {
                member_pk: b.member_pk(),
                device_pk: b.device_pk(),
                body: ViewBody::Member {
                    account_pk: b.account.account_pk().to_bytes().to_vec(),
                    meta: b"bob".to_vec(),
                },
            }]
        );
        assert_eq!(ids(&out.events), vec![entries[0].id()]);
        assert_eq!(out.events[0].kind, EventKind::Member.as_u8());
        assert_eq!(out.members, vec![(b.device_pk(), b.member_pk())]);
        assert_eq!(out.new_members, vec![b.member_pk()]);
        assert_eq!(members.get(&b.device_pk()), Some(&b.member_pk()));
    }

    #[test]
    fn a_device_binding_signed_by_another_member_key_is_skipped_and_binds_nothing() {
        let [a, b, c] = group::<3>();
        // B's device claims B's member key, but C's member key signed the binding.
        let forged = Event::MemberDevice(binding(&b, &c.context.member, b""));
        let entries = chained(&a.context, LogKind::Metadata, &[sealed(&b, forged)]);
        let mut members = HashMap::new();
        let out = decode_metadata(&a.context, &mut members, &entries);
        assert_eq!(out.skipped, 1);
        assert!(out.events.is_empty());
        assert!(out.members.is_empty());
        assert!(out.new_members.is_empty());
        assert!(members.is_empty());
    }

    #[test]
    fn group_settings_count_only_from_the_creator_member_settings_from_anyone() {
        let [a, b, c] = group::<3>();
        assert_eq!(c.context.creator, Some(a.context.member.verifying_key()));
        let group_scope = wire::SettingScope::Group;
        let member_scope = wire::SettingScope::Member;
        let payloads = [
            sealed(&a, bind(&a)),
            sealed(&b, bind(&b)),
            sealed(&b, setting(group_scope, "title", b"by b")),
            sealed(&a, setting(group_scope, "title", b"by a")),
            sealed(&b, setting(member_scope, "nick", b"bee")),
        ];
        let entries = chained(&c.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&c.context, &mut HashMap::new(), &entries);
        assert_eq!(out.skipped, 1);
        assert_eq!(
            ids(&out.events),
            [0, 1, 3, 4].map(|i| entries[i].id()).to_vec()
        );
        let settings: Vec<ViewEvent> = views(&out.events)
            .into_iter()
            .filter(|v| matches!(v.body, ViewBody::Setting { .. }))
            .collect();
        assert_eq!(
            settings,
            vec![
                ViewEvent {
                    member_pk: a.member_pk(),
                    device_pk: a.device_pk(),
                    body: ViewBody::Setting {
                        scope: SettingScope::Group,
                        key: "title".into(),
                        value: b"by a".to_vec(),
                    },
                },
                ViewEvent {
                    member_pk: b.member_pk(),
                    device_pk: b.device_pk(),
                    body: ViewBody::Setting {
                        scope: SettingScope::Member,
                        key: "nick".into(),
                        value: b"bee".to_vec(),
                    },
                },
            ]
        );
    }

    #[test]
    fn metadata_from_a_device_that_never_bound_itself_shows_nothing() {
        let [a, b] = group::<2>();
        let chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let payloads = [
            sealed(&b, setting(wire::SettingScope::Member, "nick", b"bee")),
            sealed(&b, share(&b, &chain, &a)),
        ];
        let entries = chained(&a.context, LogKind::Metadata, &payloads);
        let mut members = HashMap::new();
        let out = decode_metadata(&a.context, &mut members, &entries);
        assert_eq!(out.skipped, 2);
        assert!(out.events.is_empty());
        assert!(out.chains.is_empty());
        assert!(members.is_empty());
    }

    #[test]
    fn a_chain_key_shared_with_our_member_yields_the_senders_receiver_chain() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let payloads = [sealed(&b, bind(&b)), sealed(&b, share(&b, &chain, &a))];
        let entries = chained(&a.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&a.context, &mut HashMap::new(), &entries);
        assert_eq!(out.skipped, 0);
        // Only the member event: a chain key share shows nothing.
        assert_eq!(ids(&out.events), vec![entries[0].id()]);
        assert_eq!(out.chains.len(), 1);
        let (device, received) = &out.chains[0];
        assert_eq!(*device, b.device_pk());
        let (counter, key) = chain.next_key().unwrap();
        assert_eq!(
            received.message_key(counter).unwrap().as_bytes(),
            key.as_bytes()
        );
    }

    #[test]
    fn a_chain_key_shared_with_another_member_is_ignored() {
        let [a, b, c] = group::<3>();
        let chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let payloads = [sealed(&b, bind(&b)), sealed(&b, share(&b, &chain, &c))];
        let entries = chained(&a.context, LogKind::Metadata, &payloads);
        let out = decode_metadata(&a.context, &mut HashMap::new(), &entries);
        assert_eq!(out.skipped, 0);
        assert_eq!(ids(&out.events), vec![entries[0].id()]);
        assert!(out.chains.is_empty());
    }

    // A device cannot claim an account (here C's) without the account's signature: an
    // unsigned `account_pk` is legitimate only when it is the member key itself (account and
    // contact groups).
    #[test]
    fn an_account_key_without_its_disclosure_signature_is_not_shown() {
        let [a, b, c] = group::<3>();
        let claimed = c.account.account_pk().to_bytes().to_vec();
        let mut bound = binding(&b, &b.context.member, b"");
        bound.account_pk = claimed.clone();
        bound.account_signature = Vec::new();
        let entries = chained(
            &a.context,
            LogKind::Metadata,
            &[sealed(&b, Event::MemberDevice(bound))],
        );
        let out = decode_metadata(&a.context, &mut HashMap::new(), &entries);
        assert!(views(&out.events).iter().all(
            |v| !matches!(&v.body, ViewBody::Member { account_pk, .. } if *account_pk == claimed)
        ));
    }
}
