//! `ProtocolService` group calls on the real binary, over gRPC, on SQLite and on PostgreSQL:
//! create, invite, join on a second node, send, leave, settings (creator-only), and the
//! instance calls (configuration, export, DevicePair).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use berty_node::proto::{berty_protocol as pb, wire};
use common::protocol::{
    assert_status, both_backends, members, messages, payload, settings, take, within, Backend,
    Range, StoreEvent, TestNode,
};
use prost::Message as _;
use tonic::Code;

both_backends!(
    create_invite_and_join_on_a_second_node,
    sent_messages_carry_their_event_id,
    leaving_keeps_history_and_refuses_writes,
    settings_are_typed_and_group_settings_are_creator_only,
    instance_configuration_export_and_device_pair,
);

async fn set_group(
    node: &mut TestNode,
    group: &[u8],
    key: &str,
    value: &[u8],
) -> Result<(), tonic::Status> {
    within(
        "GroupSettingSetGroup",
        node.client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key: group.to_vec(),
                key: key.to_string(),
                value: value.to_vec(),
            }),
    )
    .await
    .map(|_| ())
}

async fn set_member(
    node: &mut TestNode,
    group: &[u8],
    key: &str,
    value: &[u8],
) -> Result<(), tonic::Status> {
    within(
        "GroupSettingSetMember",
        node.client
            .group_setting_set_member(pb::group_setting_set_member::Request {
                group_pub_key: group.to_vec(),
                key: key.to_string(),
                value: value.to_vec(),
            }),
    )
    .await
    .map(|_| ())
}

fn joined_events(events: &[pb::AccountStoreEvent], group: &[u8]) -> usize {
    events
        .iter()
        .filter(|e| {
            e.event_type == pb::AccountEventType::GroupJoined as i32
                && e.subject_public_key_bytes == group
        })
        .count()
}

/// GroupCreate returns a valid group key and makes the account its first member; GroupInvite
/// returns a reference to that group; GroupJoin on a second node adds that node's member
/// event with the `meta` it gave and its account key (only local state is checked: there is
/// no replication yet); joining twice is a no-op.
async fn create_invite_and_join_on_a_second_node(backend: Backend) {
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    let group = a.create_group().await;
    ed25519_dalek::VerifyingKey::from_bytes(&group.clone().try_into().unwrap())
        .expect("the group key is a valid Ed25519 key");

    // The creator is the first member, with its account key disclosed and no meta.
    let a_members = a.member_history(&group).await;
    assert_eq!(a_members.len(), 1, "one member event after GroupCreate");
    let a_member = a_members[0].store().clone();
    assert_eq!(a_member.group_pub_key, group);
    assert_eq!(a_member.account_pub_key, a.id.account_pk);
    assert_eq!(a_member.group_member_pub_key.len(), 32);
    assert_eq!(a_member.group_device_pub_key.len(), 32);
    assert!(a_members[0].meta.is_empty());
    assert_eq!(joined_events(&a.account_history().await, &group), 1);

    let invite = a.invite(&group).await;
    let reference = wire::GroupReference::decode(&invite[..]).expect("a group reference");
    assert_eq!(reference.group_pk, group, "the invitation names the group");
    assert_eq!(reference.version, 1);
    assert_eq!(reference.group_secret.len(), 32);
    assert_eq!(
        reference.creation_proof.len(),
        97,
        "version, creator, signature"
    );
    assert_eq!(
        reference.creation_proof[1..33],
        a_member.group_member_pub_key[..],
        "the creation proof names the creator's member key"
    );

    let meta = b"bob's laptop".to_vec();
    b.join(&invite, &meta).await;
    let b_members = b.member_history(&group).await;
    assert_eq!(
        b_members.len(),
        1,
        "B has only its own member event (no replication yet)"
    );
    let b_member = b_members[0].store();
    assert_eq!(
        b_members[0].meta, meta,
        "the member event carries the joiner's meta (ext 100)"
    );
    assert_eq!(b_member.group_pub_key, group);
    assert_eq!(b_member.account_pub_key, b.id.account_pk);
    assert_eq!(b_member.group_member_pub_key.len(), 32);
    assert_ne!(b_member.group_member_pub_key, a_member.group_member_pub_key);
    assert_ne!(b_member.group_device_pub_key, a_member.group_device_pub_key);
    assert_eq!(joined_events(&b.account_history().await, &group), 1);

    // A live member subscription on B replays the same event.
    let mut live = members(&mut b.client, &group, Range::live()).await.unwrap();
    let first = take(&mut live, 1).await;
    assert_eq!(first[0].id(), b_members[0].id());

    // Joining again (on B, and the creator joining its own invitation) changes nothing.
    b.join(&invite, b"again").await;
    a.join(&invite, b"again").await;
    assert_eq!(b.member_history(&group).await.len(), 1);
    assert_eq!(a.member_history(&group).await.len(), 1);
    assert_eq!(joined_events(&b.account_history().await, &group), 1);
    assert_eq!(joined_events(&a.account_history().await, &group), 1);

    // The joiner is a full local member: it can send and invite.
    let id = b.send(&group, b"hi from B").await;
    let history = b.message_history(&group).await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id(), id);
    let b_invite = b.invite(&group).await;
    assert_eq!(
        wire::GroupReference::decode(&b_invite[..])
            .unwrap()
            .group_pk,
        group
    );
}

/// GroupMessageSend returns the id of the stored entry, which is the `EventBase.id` the
/// subscription shows, with the payload, the group key, and this member's keys.
async fn sent_messages_carry_their_event_id(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let member = a.member_history(&group).await.remove(0);
    let mut live = messages(&mut a.client, &group, Range::live())
        .await
        .unwrap();
    let mut sent = Vec::new();
    // An empty payload is a message too.
    for i in 0..5 {
        let body = if i == 2 {
            Vec::new()
        } else {
            format!("message {i}").into_bytes()
        };
        let id = a.send(&group, &body).await;
        sent.push((id, body));
    }
    let got = take(&mut live, sent.len()).await;
    for ((id, body), reply) in sent.iter().zip(&got) {
        assert_eq!(&reply.id(), id, "event_id (ext 100) is the EventBase.id");
        assert_eq!(payload(reply), &body[..]);
        let store = reply.store();
        assert_eq!(store.group_pub_key, group);
        assert_eq!(
            store.group_member_pub_key,
            member.store().group_member_pub_key
        );
        assert_eq!(
            store.group_device_pub_key,
            member.store().group_device_pub_key
        );
    }
    let history = a.message_history(&group).await;
    let history: Vec<(Vec<u8>, Vec<u8>)> = history
        .iter()
        .map(|e| (e.id(), e.payload.clone()))
        .collect();
    assert_eq!(history, sent, "history replays the same ids and payloads");
}

/// GroupLeave records GroupLeft; afterwards sends, settings, invitations and a second leave are
/// FAILED_PRECONDITION, while the subscriptions still replay the local history.
async fn leaving_keeps_history_and_refuses_writes(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(
            a.send(&group, format!("before leaving {i}").as_bytes())
                .await,
        );
    }
    within(
        "GroupLeave",
        a.client.group_leave(pb::group_leave::Request {
            group_pub_key: group.clone(),
        }),
    )
    .await
    .expect("GroupLeave");

    let account = a.account_history().await;
    let last = account.last().unwrap();
    assert_eq!(last.event_type, pb::AccountEventType::GroupLeft as i32);
    assert_eq!(last.subject_public_key_bytes, group);
    assert!(last.data.is_empty());

    let mut client = a.client.clone();
    assert_status(
        common::protocol::send(&mut client, &group, b"after leaving").await,
        Code::FailedPrecondition,
        "left",
        "GroupMessageSend after GroupLeave",
    );
    assert_status(
        set_member(&mut a, &group, "nick", b"x").await,
        Code::FailedPrecondition,
        "left",
        "GroupSettingSetMember after GroupLeave",
    );
    assert_status(
        set_group(&mut a, &group, "title", b"x").await,
        Code::FailedPrecondition,
        "left",
        "GroupSettingSetGroup after GroupLeave",
    );
    assert_status(
        a.client
            .group_invite(pb::group_invite::Request {
                group_pub_key: group.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "left",
        "GroupInvite after GroupLeave",
    );
    assert_status(
        a.client
            .group_leave(pb::group_leave::Request {
                group_pub_key: group.clone(),
            })
            .await,
        Code::FailedPrecondition,
        "left",
        "a second GroupLeave",
    );

    // History stays readable, both as a bounded walk and as a live subscription.
    let history = a.message_history(&group).await;
    assert_eq!(history.iter().map(|e| e.id()).collect::<Vec<_>>(), sent);
    let mut live = messages(&mut a.client, &group, Range::live())
        .await
        .unwrap();
    let replayed = take(&mut live, sent.len()).await;
    assert_eq!(replayed.iter().map(|r| r.id()).collect::<Vec<_>>(), sent);
    assert_eq!(a.member_history(&group).await.len(), 1);
}

/// Group and member settings show with their type, key and value, in log order, authored by
/// the writer's member; a member who joined but is not the creator gets PERMISSION_DENIED for
/// group settings and may set its own member settings.
async fn settings_are_typed_and_group_settings_are_creator_only(backend: Backend) {
    use pb::GroupSettingStoreSettingType::{Group, Member};
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    let group = a.create_group().await;
    let a_member = a.member_history(&group).await.remove(0);
    let mut live = settings(&mut a.client, &group, Range::live())
        .await
        .unwrap();

    set_group(&mut a, &group, "title", b"Rust club")
        .await
        .unwrap();
    set_member(&mut a, &group, "nick", b"alice").await.unwrap();
    set_group(&mut a, &group, "title", b"Rust club, 2nd edition")
        .await
        .unwrap();
    set_member(&mut a, &group, "empty-value", b"")
        .await
        .unwrap();
    let expected = [
        (Group, "title", &b"Rust club"[..]),
        (Member, "nick", b"alice"),
        (Group, "title", b"Rust club, 2nd edition"),
        (Member, "empty-value", b""),
    ];
    let history = a.setting_history(&group).await;
    let streamed: Vec<pb::GroupSettingStoreEvent> = take(&mut live, expected.len())
        .await
        .into_iter()
        .map(|r| r.event.unwrap())
        .collect();
    assert_eq!(history, streamed, "history and live tail agree");
    assert_eq!(history.len(), expected.len(), "{history:?}");
    for (event, (kind, key, value)) in history.iter().zip(expected) {
        assert_eq!(event.setting_type, kind as i32, "{event:?}");
        assert_eq!(event.key, key);
        assert_eq!(event.value, value);
        assert_eq!(event.store().group_pub_key, group);
        assert_eq!(
            event.store().group_member_pub_key,
            a_member.store().group_member_pub_key
        );
        assert_eq!(
            event.store().group_device_pub_key,
            a_member.store().group_device_pub_key
        );
        assert_eq!(event.id().len(), 32);
        assert!(event.cursor() > 0);
    }

    // A member that joined is not the creator.
    let invite = a.invite(&group).await;
    b.join(&invite, b"").await;
    assert_status(
        set_group(&mut b, &group, "title", b"hijacked").await,
        Code::PermissionDenied,
        "creator",
        "GroupSettingSetGroup by a joined member",
    );
    set_member(&mut b, &group, "nick", b"bob").await.unwrap();
    let b_member = b.member_history(&group).await.remove(0);
    let b_settings = b.setting_history(&group).await;
    assert_eq!(
        b_settings.len(),
        1,
        "only B's member setting: {b_settings:?}"
    );
    assert_eq!(b_settings[0].setting_type, Member as i32);
    assert_eq!(b_settings[0].key, "nick");
    assert_eq!(b_settings[0].value, b"bob");
    assert_eq!(
        b_settings[0].store().group_member_pub_key,
        b_member.store().group_member_pub_key
    );
}

/// InstanceGetConfiguration reports the peer id and the bound listeners; InstanceExportData
/// returns a versioned export holding the account keys and the logs; DevicePair on a device
/// that was not imported is FAILED_PRECONDITION with a message saying what it pairs
/// (tests/protocol_devices.rs pairs an imported one).
async fn instance_configuration_export_and_device_pair(backend: Backend) {
    use pb::instance_get_configuration::SettingState;
    let mut a = TestNode::start(backend).await;
    let config = within(
        "InstanceGetConfiguration",
        a.client
            .instance_get_configuration(pb::instance_get_configuration::Request {}),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(config.peer_id, a.process.peer_id);
    assert_eq!(config.peer_id, a.id.peer_id);
    assert!(!config.listeners.is_empty());
    for listener in &config.listeners {
        assert!(listener.starts_with("/ip4/127.0.0.1/tcp/"), "{listener}");
        assert!(!listener.contains("/tcp/0/"), "the bound port: {listener}");
        assert!(
            listener.ends_with(&format!("/p2p/{}", a.id.peer_id)),
            "{listener}"
        );
    }
    assert_eq!(config.ble_enabled, SettingState::Unavailable as i32);
    assert_eq!(config.wifi_p2p_enabled, SettingState::Unavailable as i32);
    for state in [config.mdns_enabled, config.relay_enabled] {
        assert!(
            state == SettingState::Enabled as i32 || state == SettingState::Disabled as i32,
            "mDNS and relay report their real state: {config:?}"
        );
    }
    // By default mDNS is off and the relay server on (config/default.toml).
    assert_eq!(config.mdns_enabled, SettingState::Disabled as i32);
    assert_eq!(config.relay_enabled, SettingState::Enabled as i32);

    let group = a.create_group().await;
    a.send(&group, b"exported").await;
    let path = a.home.scratch("export.bin");
    let data = a.export_to(&path).await;
    let export = wire::Export::decode(&data[..]).expect("the export decodes");
    assert_eq!(export.version, 1);
    assert_eq!(export.account_keys.len(), 97);
    assert!(!export.values.is_empty());
    let mut group_log = group.clone();
    group_log.push(2);
    let messages_log = export
        .logs
        .iter()
        .find(|l| l.log_id == group_log)
        .expect("the export holds the group's messages log");
    assert_eq!(messages_log.entries.len(), 1);
    assert_eq!(messages_log.events.len(), 1);

    let status = within(
        "DevicePair",
        a.client.device_pair(pb::device_pair::Request {}),
    )
    .await
    .expect_err("DevicePair pairs imported devices only");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("DevicePair"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("--import"),
        "{}",
        status.message()
    );
}
