//! Test fixtures: groups of members, their entries and what decoding them shows.

use prost::Message as _;
use rand::rngs::OsRng;

use crate::{
    crypto::{
        derive_account_group, seal_chain_key, seal_message, seal_metadata, sign_account_disclosure,
        sign_member_device, AccountKeys, GroupGenesis, ReceiverChain, SenderChain, SigningKey,
    },
    group::{GroupContext, GroupKind, GroupRecord, ViewBody, ViewEvent},
    log::{Entry, EntryId, LogId, LogKind},
    proto::wire::{self, metadata_event::Event},
    storage::NewEvent,
};

/// One account in a test group, with one device.
pub(super) struct Member {
    pub(super) account: AccountKeys,
    pub(super) context: GroupContext,
}

impl Member {
    pub(super) fn member_pk(&self) -> [u8; 32] {
        self.context.member.verifying_key().to_bytes()
    }

    pub(super) fn device_pk(&self) -> [u8; 32] {
        self.context.record.device.verifying_key().to_bytes()
    }
}

/// A multi-member group of `N` accounts, created by the first.
pub(super) fn group<const N: usize>() -> [Member; N] {
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

/// The account group of one account with `N` devices (the member key is the account key).
pub(super) fn account_group<const N: usize>() -> [Member; N] {
    let first = AccountKeys::generate(&mut OsRng);
    let (keys, proof) = derive_account_group(first.account_proof())
        .unwrap()
        .finish(&first.account_pk())
        .unwrap();
    std::array::from_fn(|_| first.with_new_device(&mut OsRng)).map(|account| {
        let record = GroupRecord {
            kind: GroupKind::Account,
            keys: keys.clone(),
            proof: Some(proof.clone()),
            device: account.device().clone(),
            left: false,
            contact_pk: None,
            joined_seq: 0,
        };
        let context = GroupContext::new(record, &account).unwrap();
        Member { account, context }
    })
}

/// Entries of one log of `group`, each on the previous one, carrying `payloads`.
pub(super) fn chained(group: &GroupContext, kind: LogKind, payloads: &[Vec<u8>]) -> Vec<Entry> {
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
pub(super) fn sealed(author: &Member, event: Event) -> Vec<u8> {
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
pub(super) fn binding(device_of: &Member, signer: &SigningKey, meta: &[u8]) -> wire::MemberDevice {
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
pub(super) fn bind(member: &Member) -> Event {
    Event::MemberDevice(binding(member, &member.context.member, b""))
}

pub(super) fn setting(scope: wire::SettingScope, key: &str, value: &[u8]) -> Event {
    Event::Setting(wire::Setting {
        scope: scope as i32,
        key: key.into(),
        value: value.to_vec(),
    })
}

/// `from`'s device shares `chain` with `to`'s member.
pub(super) fn share(from: &Member, chain: &SenderChain, to: &Member) -> Event {
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
pub(super) fn messages(sender: &Member, chain: &mut SenderChain, texts: &[&[u8]]) -> Vec<Entry> {
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
pub(super) fn receiver(chain: &SenderChain) -> ReceiverChain {
    ReceiverChain::new(
        *chain.group_pk(),
        chain.chain_key().clone(),
        chain.counter(),
    )
}

pub(super) fn views(events: &[NewEvent]) -> Vec<ViewEvent> {
    events
        .iter()
        .map(|e| ViewEvent::decode(&e.body).unwrap())
        .collect()
}

pub(super) fn ids(events: &[NewEvent]) -> Vec<EntryId> {
    events.iter().map(|e| e.entry_id).collect()
}

pub(super) fn message_view(author: &Member, text: &[u8]) -> ViewEvent {
    ViewEvent {
        member_pk: author.member_pk(),
        device_pk: author.device_pk(),
        body: ViewBody::Message {
            payload: text.to_vec(),
        },
    }
}
