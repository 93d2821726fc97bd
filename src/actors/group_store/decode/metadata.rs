//! The metadata view: device bindings, chain keys shared with this member, settings and
//! account events.

use std::collections::HashMap;

use super::new_event;
use crate::{
    crypto::{
        open_chain_key, open_metadata, verify_account_disclosure, verify_member_device,
        ReceiverChain, VerifyingKey,
    },
    group::{
        metadata::{Disclosure, MemberDevice},
        view::SettingScope,
        GroupContext, MetadataEvent, ViewEvent,
    },
    log::Entry,
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
        MetadataEvent::MemberDevice(_) | MetadataEvent::Account(_) => {}
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
        crypto::SenderChain,
        group::{EventKind, ViewBody},
        log::LogKind,
        proto::wire::{self, metadata_event::Event},
    };

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
