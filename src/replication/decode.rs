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
//! | key ([`crate::storage::value_keys::ValueKey`]) | value |
//! |---|---|
//! | `Member` | the member key a device belongs to (sealed) |
//! | `Receiver` | the receiver chain of a device (sealed [`ReceiverChain`]) |
//! | `Queued` | a message waiting for its sender's chain key |

use std::collections::HashMap;

use prost::Message as _;

use crate::{
    crypto::{
        open_body_unverified, open_chain_key, open_header, open_metadata, parse_public_key,
        parse_signature, verify_account_disclosure, verify_batch, verify_member_device,
        MessageHeader, MessageKey, ReceiverChain, SignatureCheck, VerifyingKey,
    },
    group::{view::SettingScope, GroupContext, ViewBody, ViewEvent},
    log::{Entry, EntryId, LogKind},
    proto::wire::{self, metadata_event::Event},
    storage::NewEvent,
};

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
        } else if !bound.account_pk.is_empty() && bound.account_pk != member.as_bytes() {
            // Unsigned, the account key may only be the member key itself (account and
            // contact groups, where the member key is the account key).
            return Err("account key disclosed without its signature");
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
#[derive(Clone)]
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

/// Items from which CPU-bound work is split across the cores ([`in_parallel`]).
const PARALLEL_FROM: usize = 256;

/// Runs `work` on consecutive chunks of `items`, one per core when there are at least
/// [`PARALLEL_FROM`] items (on the calling thread otherwise), and returns the chunks' results in
/// order. For CPU-bound work off the actors' threads (a blocking task).
pub fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if cores < 2 || items.len() < PARALLEL_FROM {
        return vec![work(items)];
    }
    let chunk = items.len().div_ceil(cores);
    let work = &work;
    std::thread::scope(|scope| {
        let mut chunks = items.chunks(chunk);
        // The first chunk runs here, the others on threads of their own.
        let first = chunks.next();
        let others: Vec<_> = chunks.map(|c| scope.spawn(move || work(c))).collect();
        let mut out = Vec::with_capacity(others.len() + 1);
        out.extend(first.map(work));
        for handle in others {
            match handle.join() {
                Ok(result) => out.push(result),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// A message whose key was found, to open and check.
struct Keyed {
    index: usize,
    key: MessageKey,
    member: [u8; 32],
}

/// A message that opened and whose author signature holds: its index, plaintext and member.
type Checked = (usize, Vec<u8>, [u8; 32]);

/// Opens the bodies of `keyed` messages and checks their author signatures (one batch, then
/// one by one if the batch fails): the plaintext of each that opens and verifies, in order.
fn open_and_check(
    group: &GroupContext,
    messages: &[OpenedMessage],
    keyed: &[Keyed],
) -> Vec<Option<Checked>> {
    let opened: Vec<Option<(Checked, SignatureCheck)>> = keyed
        .iter()
        .map(|k| {
            let message = messages.get(k.index)?;
            open_body_unverified(
                group.keys(),
                LogKind::Messages,
                &message.header,
                &k.key,
                message.entry.payload(),
            )
            .ok()
            .map(|(plaintext, check)| ((k.index, plaintext, k.member), check))
        })
        .collect();
    let checks: Vec<SignatureCheck> = opened.iter().flatten().map(|o| o.1.clone()).collect();
    let all_valid = verify_batch(&checks).is_ok();
    opened
        .into_iter()
        .map(|o| {
            let (checked, check) = o?;
            (all_valid || check.verify().is_ok()).then_some(checked)
        })
        .collect()
}

/// Decodes messages in total order with the receiver chains of their senders (advanced as
/// keys are used). Keys are found in order (each sender's chain is sequential); bodies are
/// opened and author signatures checked in batches, on every core for large batches; a
/// failed batch is checked one by one so a bad message never hides good ones. CPU-bound: run
/// it off the actors' threads.
pub fn decode_messages(
    group: &GroupContext,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    members: &HashMap<[u8; 32], [u8; 32]>,
    messages: &[OpenedMessage],
) -> MessagesDecoded {
    let mut out = MessagesDecoded::default();
    // Open with keys from trial copies of the chains: a forged message must not burn the key
    // of the genuine one (the real chain moves only for messages whose author signature
    // holds). Walking a copy forward keeps a batch linear in its size.
    let mut trials: HashMap<[u8; 32], ReceiverChain> = HashMap::new();
    // Keys already taken from a trial copy in this batch: two messages naming the same device
    // and counter (a forgery and the genuine one) both get the key to try; the real chain
    // below gives it to the first whose author signature holds.
    let mut taken: HashMap<([u8; 32], u64), MessageKey> = HashMap::new();
    let mut keyed: Vec<Keyed> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let device = message.header.device.to_bytes();
        let (Some(chain), Some(member)) = (chains.get(&device), members.get(&device)) else {
            out.queued
                .push((device, message.entry.lamport(), message.entry.id()));
            continue;
        };
        let counter = message.header.counter;
        let key = match taken.get(&(device, counter)) {
            Some(key) => Ok(key.clone()),
            None => {
                let trial = trials.entry(device).or_insert_with(|| chain.clone());
                trial.consume(counter).inspect(|key| {
                    taken.insert((device, counter), key.clone());
                })
            }
        };
        match key {
            Ok(key) => keyed.push(Keyed {
                index,
                key,
                member: *member,
            }),
            Err(e) => {
                tracing::debug!(entry = %message.entry.id(), %e, "message key unavailable");
                out.skipped += 1;
            }
        }
    }
    let checked = in_parallel(&keyed, |chunk| open_and_check(group, messages, chunk));
    for result in checked.into_iter().flatten() {
        let Some((index, plaintext, member)) = result else {
            out.skipped += 1;
            continue;
        };
        let Some(message) = messages.get(index) else {
            continue;
        };
        let device = message.header.device.to_bytes();
        // Use the key up now; a second message with the same counter fails here.
        let consumed = chains
            .get_mut(&device)
            .map(|chain| chain.consume(message.header.counter));
        if !matches!(consumed, Some(Ok(_))) {
            out.skipped += 1;
            continue;
        }
        if !out.touched.contains(&device) {
            out.touched.push(device);
        }
        let event = ViewEvent {
            member_pk: member,
            device_pk: device,
            body: ViewBody::Message { payload: plaintext },
        };
        out.events.push(new_event(&message.entry, &event));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crypto::{
            seal_chain_key, seal_message, seal_metadata, sign_account_disclosure,
            sign_member_device, AccountKeys, GroupGenesis, SenderChain, SigningKey,
        },
        group::{EventKind, GroupKind, GroupRecord},
        log::LogId,
        storage::NewEvent,
    };
    use rand::rngs::OsRng;

    /// One account in a test group, with one device.
    struct Member {
        account: AccountKeys,
        context: GroupContext,
    }

    impl Member {
        fn member_pk(&self) -> [u8; 32] {
            self.context.member.verifying_key().to_bytes()
        }

        fn device_pk(&self) -> [u8; 32] {
            self.context.record.device.verifying_key().to_bytes()
        }
    }

    /// A multi-member group of `N` accounts, created by the first.
    fn group<const N: usize>() -> [Member; N] {
        let accounts: [AccountKeys; N] = std::array::from_fn(|_| AccountKeys::generate(&mut OsRng));
        let genesis = GroupGenesis::generate(&mut OsRng);
        let creator = accounts[0].member_key(&genesis.group_pk()).unwrap();
        let (keys, proof) = genesis.finish(&creator.verifying_key()).unwrap();
        accounts.map(|account| {
            let record = GroupRecord {
                kind: GroupKind::Multi,
                keys: keys.clone(),
                proof: Some(proof.clone()),
                device: SigningKey::generate(&mut OsRng),
                left: false,
                contact_pk: None,
                joined_seq: 1,
            };
            let context = GroupContext::new(record, &account).unwrap();
            Member { account, context }
        })
    }

    /// Entries of one log of `group`, each on the previous one, carrying `payloads`.
    fn chained(group: &GroupContext, kind: LogKind, payloads: &[Vec<u8>]) -> Vec<Entry> {
        let log = LogId::new(group.keys().group_pk().to_bytes(), kind);
        let mut entries: Vec<Entry> = Vec::new();
        for payload in payloads {
            let (parents, lamport) = match entries.last() {
                Some(last) => (vec![last.id()], last.lamport() + 1),
                None => (Vec::new(), 1),
            };
            let entry =
                Entry::sign(group.keys().signing_key(), log, parents, lamport, payload).unwrap();
            entries.push(entry);
        }
        entries
    }

    /// `event` sealed and signed by `author`'s device.
    fn sealed(author: &Member, event: Event) -> Vec<u8> {
        let event = wire::MetadataEvent { event: Some(event) }.encode_to_vec();
        seal_metadata(
            author.context.keys(),
            &author.context.record.device,
            &event,
            &mut OsRng,
        )
        .unwrap()
    }

    /// `device_of`'s device bound to its member, the binding signed by `signer`, with the
    /// account disclosed (what `device_setup` writes in a multi-member group).
    fn binding(device_of: &Member, signer: &SigningKey, meta: &[u8]) -> wire::MemberDevice {
        let group_pk = device_of.context.keys().group_pk();
        let device_pk = device_of.context.record.device.verifying_key();
        let member_pk = device_of.context.member.verifying_key();
        wire::MemberDevice {
            member_pk: member_pk.to_bytes().to_vec(),
            device_pk: device_pk.to_bytes().to_vec(),
            member_signature: sign_member_device(signer, group_pk, &device_pk)
                .to_bytes()
                .to_vec(),
            account_pk: device_of.account.account_pk().to_bytes().to_vec(),
            account_signature: sign_account_disclosure(
                device_of.account.account(),
                group_pk,
                &member_pk,
            )
            .to_bytes()
            .to_vec(),
            meta: meta.to_vec(),
        }
    }

    /// The valid binding of `member`'s device.
    fn bind(member: &Member) -> Event {
        Event::MemberDevice(binding(member, &member.context.member, b""))
    }

    fn setting(scope: wire::SettingScope, key: &str, value: &[u8]) -> Event {
        Event::Setting(wire::Setting {
            scope: scope as i32,
            key: key.into(),
            value: value.to_vec(),
        })
    }

    /// `from`'s device shares `chain` with `to`'s member.
    fn share(from: &Member, chain: &SenderChain, to: &Member) -> Event {
        let to_pk = to.context.member.verifying_key();
        let sealed_chain_key = seal_chain_key(
            from.context.keys().group_pk(),
            &from.context.record.device.verifying_key(),
            &to_pk,
            chain.chain_key(),
            chain.counter(),
            &mut OsRng,
        )
        .unwrap();
        Event::ChainKey(wire::ChainKeyShare {
            recipient_member_pk: to_pk.to_bytes().to_vec(),
            sealed_chain_key,
        })
    }

    /// Message entries of `sender`, one per text, sealed with the next keys of `chain`.
    fn messages(sender: &Member, chain: &mut SenderChain, texts: &[&[u8]]) -> Vec<Entry> {
        let payloads: Vec<Vec<u8>> = texts
            .iter()
            .map(|text| {
                let (counter, key) = chain.next_key().unwrap();
                seal_message(
                    sender.context.keys(),
                    &sender.context.record.device,
                    LogKind::Messages,
                    counter,
                    &key,
                    text,
                    &mut OsRng,
                )
                .unwrap()
            })
            .collect();
        chained(&sender.context, LogKind::Messages, &payloads)
    }

    /// What a member who received `chain`'s key at its current counter holds.
    fn receiver(chain: &SenderChain) -> ReceiverChain {
        ReceiverChain::new(
            *chain.group_pk(),
            chain.chain_key().clone(),
            chain.counter(),
        )
    }

    fn views(events: &[NewEvent]) -> Vec<ViewEvent> {
        events
            .iter()
            .map(|e| ViewEvent::decode(&e.body).unwrap())
            .collect()
    }

    fn ids(events: &[NewEvent]) -> Vec<EntryId> {
        events.iter().map(|e| e.entry_id).collect()
    }

    fn message_view(author: &Member, text: &[u8]) -> ViewEvent {
        ViewEvent {
            member_pk: author.member_pk(),
            device_pk: author.device_pk(),
            body: ViewBody::Message {
                payload: text.to_vec(),
            },
        }
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

    #[test]
    fn a_batch_longer_than_the_receive_window_opens_whole() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let count = crate::crypto::RECEIVE_WINDOW as usize + 100;
        let texts: Vec<Vec<u8>> = (0..count).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        let entries = messages(&b, &mut chain, &refs);
        let (opened, _) = open_headers(&a.context, entries);
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 0);
        assert_eq!(out.events.len(), count);
    }

    #[test]
    fn messages_open_in_order_with_the_senders_chain() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let texts: [&[u8]; 3] = [b"one", b"two", b"three"];
        let entries = messages(&b, &mut chain, &texts);
        let (opened, unopened) = open_headers(&a.context, entries.clone());
        assert_eq!(unopened, 0);
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 0);
        assert!(out.queued.is_empty());
        assert_eq!(out.touched, vec![b.device_pk()]);
        assert_eq!(
            views(&out.events),
            texts.map(|text| message_view(&b, text)).to_vec()
        );
        assert_eq!(
            ids(&out.events),
            entries.iter().map(Entry::id).collect::<Vec<_>>()
        );
        assert!(out
            .events
            .iter()
            .all(|e| e.kind == EventKind::Message.as_u8()));
        assert_eq!(chains[&b.device_pk()].next_counter(), 3);
    }

    #[test]
    fn messages_without_the_senders_chain_are_queued() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"one", b"two"]);
        let (opened, _) = open_headers(&a.context, entries.clone());
        let out = decode_messages(&a.context, &mut HashMap::new(), &members, &opened);
        assert!(out.events.is_empty());
        assert_eq!(out.skipped, 0);
        assert!(out.touched.is_empty());
        assert_eq!(
            out.queued,
            entries
                .iter()
                .map(|e| (b.device_pk(), e.lamport(), e.id()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_message_with_a_bad_author_signature_is_skipped_and_the_others_still_open() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"one", b"two", b"three"]);
        let (mut opened, _) = open_headers(&a.context, entries.clone());
        // The body still opens (its key and associated data do not cover the signature);
        // only the author signature check fails, so the batch check fails as a whole.
        opened[1].header.signature = opened[0].header.signature;
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 1);
        assert_eq!(
            views(&out.events),
            vec![message_view(&b, b"one"), message_view(&b, b"three")]
        );
        assert_eq!(ids(&out.events), vec![entries[0].id(), entries[2].id()]);
    }

    // A member holding B's chain key writes an entry whose header claims B's device and a
    // counter B has not used yet, with a signature that does not verify: it is skipped, and
    // the key of that counter stays for B's genuine message.
    #[test]
    fn a_message_with_a_bad_signature_does_not_burn_the_key_of_the_genuine_one() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"genuine", b"later"]);
        let (mut forged, _) = open_headers(&a.context, entries.clone());
        forged[0].header.signature = forged[1].header.signature;
        let out = decode_messages(&a.context, &mut chains, &members, &forged[..1]);
        assert_eq!(out.skipped, 1);
        let (genuine, _) = open_headers(&a.context, entries);
        let out = decode_messages(&a.context, &mut chains, &members, &genuine[..1]);
        assert_eq!(out.skipped, 0);
        assert_eq!(views(&out.events), vec![message_view(&b, b"genuine")]);
    }

    // The same in one batch: the forgery comes first and names the genuine message's counter;
    // the genuine one, later in the batch, still opens (found while fuzzing `decode_messages`).
    #[test]
    fn a_forgery_earlier_in_the_same_batch_does_not_burn_the_genuine_key() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"genuine", b"later"]);
        let (genuine, _) = open_headers(&a.context, entries.clone());
        let mut forged = genuine[0].clone();
        forged.header.signature = genuine[1].header.signature;
        let batch = vec![forged, genuine[0].clone(), genuine[1].clone()];
        let out = decode_messages(&a.context, &mut chains, &members, &batch);
        assert_eq!(out.skipped, 1, "only the forgery");
        assert_eq!(
            views(&out.events),
            vec![message_view(&b, b"genuine"), message_view(&b, b"later")]
        );
        assert_eq!(ids(&out.events), vec![entries[0].id(), entries[1].id()]);
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
