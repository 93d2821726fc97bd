//! `ProtocolService` errors and limits on the real binary, on SQLite and on PostgreSQL:
//! malformed keys and references are INVALID_ARGUMENT naming the field, unknown groups and
//! contacts NOT_FOUND, and every documented limit is enforced exactly at its boundary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use berty_node::proto::{berty_protocol as pb, wire};
use common::protocol::{
    assert_status, both_backends, malformed_keys, members, messages, random_bytes, random_key,
    settings, within, Backend, Client, TestNode,
};
use prost::Message as _;
use tonic::{Code, Status};

both_backends!(
    malformed_keys_are_invalid_argument_naming_the_field,
    unknown_groups_and_contacts_are_not_found,
    garbage_references_are_invalid_argument,
    limits_are_enforced_at_the_boundary,
);

const MIB: usize = 1024 * 1024;
const KIB: usize = 1024;

/// Every call taking a `group_pub_key`, with `key`; results without their replies.
async fn group_key_calls(
    client: &mut Client,
    key: &[u8],
) -> Vec<(&'static str, Result<(), Status>)> {
    let key = key.to_vec();
    let range = common::protocol::Range::live;
    let mut results = Vec::new();
    results.push((
        "GroupInvite",
        client
            .group_invite(pb::group_invite::Request {
                group_pub_key: key.clone(),
            })
            .await
            .map(drop),
    ));
    results.push((
        "GroupLeave",
        client
            .group_leave(pb::group_leave::Request {
                group_pub_key: key.clone(),
            })
            .await
            .map(drop),
    ));
    results.push((
        "GroupMessageSend",
        client
            .group_message_send(pb::group_message_send::Request {
                group_pub_key: key.clone(),
                payload: b"x".to_vec(),
            })
            .await
            .map(drop),
    ));
    results.push((
        "GroupSettingSetGroup",
        client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key: key.clone(),
                key: "k".into(),
                value: b"v".to_vec(),
            })
            .await
            .map(drop),
    ));
    results.push((
        "GroupSettingSetMember",
        client
            .group_setting_set_member(pb::group_setting_set_member::Request {
                group_pub_key: key.clone(),
                key: "k".into(),
                value: b"v".to_vec(),
            })
            .await
            .map(drop),
    ));
    results.push((
        "GroupMessageSubscribe",
        messages(client, &key, range()).await.map(drop),
    ));
    results.push((
        "GroupMemberSubscribe",
        members(client, &key, range()).await.map(drop),
    ));
    results.push((
        "GroupSettingSubscribe",
        settings(client, &key, range()).await.map(drop),
    ));
    results
}

/// Every call taking a `contact_pub_key`, with `key`.
async fn contact_key_calls(
    client: &mut Client,
    key: &[u8],
) -> Vec<(&'static str, Result<(), Status>)> {
    let key = key.to_vec();
    vec![
        (
            "ContactRequestAccept",
            client
                .contact_request_accept(pb::contact_request_accept::Request {
                    contact_pub_key: key.clone(),
                })
                .await
                .map(drop),
        ),
        (
            "ContactRemove",
            client
                .contact_remove(pb::contact_remove::Request {
                    contact_pub_key: key.clone(),
                })
                .await
                .map(drop),
        ),
        (
            "ContactBlock",
            client
                .contact_block(pb::contact_block::Request {
                    contact_pub_key: key.clone(),
                })
                .await
                .map(drop),
        ),
        (
            "ContactUnblock",
            client
                .contact_unblock(pb::contact_unblock::Request {
                    contact_pub_key: key.clone(),
                })
                .await
                .map(drop),
        ),
    ]
}

/// Wrong lengths, 32 bytes off the curve, a non-canonical encoding and low-order points are
/// INVALID_ARGUMENT naming `group_pub_key` / `contact_pub_key`, on every call taking one.
async fn malformed_keys_are_invalid_argument_naming_the_field(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    // A real group exists, so the errors cannot come from an empty account.
    a.create_group().await;
    for (what, key) in malformed_keys() {
        for (call, result) in group_key_calls(&mut a.client, &key).await {
            assert_status(
                result,
                Code::InvalidArgument,
                "group_pub_key",
                &format!("{call} with a group key that is {what}"),
            );
        }
        for (call, result) in contact_key_calls(&mut a.client, &key).await {
            assert_status(
                result,
                Code::InvalidArgument,
                "contact_pub_key",
                &format!("{call} with a contact key that is {what}"),
            );
        }
    }
}

/// A valid key of a group this account never joined is NOT_FOUND on every group call (the
/// message names the group); a valid key that is neither a contact nor a request is NOT_FOUND
/// on every contact call.
async fn unknown_groups_and_contacts_are_not_found(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    a.create_group().await;
    let unknown = random_key();
    for (call, result) in group_key_calls(&mut a.client, &unknown).await {
        assert_status(result, Code::NotFound, &hex::encode(&unknown), call);
    }
    for (call, result) in contact_key_calls(&mut a.client, &unknown).await {
        assert_status(result, Code::NotFound, &hex::encode(&unknown), call);
    }
}

async fn join(client: &mut Client, reference: Vec<u8>, meta: Vec<u8>) -> Result<(), Status> {
    within(
        "GroupJoin",
        client.group_join(pb::group_join::Request { reference, meta }),
    )
    .await
    .map(drop)
}

async fn enqueue(client: &mut Client, reference: Vec<u8>, meta: Vec<u8>) -> Result<(), Status> {
    within(
        "ContactRequestEnqueue",
        client.contact_request_enqueue(pb::contact_request_enqueue::Request { reference, meta }),
    )
    .await
    .map(drop)
}

/// GroupJoin and ContactRequestEnqueue refuse garbage, unknown versions, bad keys and
/// tampered invitations with INVALID_ARGUMENT naming the reference; nothing is joined.
async fn garbage_references_are_invalid_argument(backend: Backend) {
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    let group = a.create_group().await;
    let invite = wire::GroupReference::decode(&a.invite(&group).await[..]).unwrap();
    b.enable_contact_requests().await;
    let contact = wire::ContactReference::decode(&b.contact_reference().await[..]).unwrap();

    let tampered_group = |change: &dyn Fn(&mut wire::GroupReference)| {
        let mut reference = invite.clone();
        change(&mut reference);
        reference.encode_to_vec()
    };
    let group_cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not protobuf", vec![0xff; 40]),
        ("random bytes", random_bytes(97)),
        ("version 2", tampered_group(&|r| r.version = 2)),
        (
            "a low-order group key",
            tampered_group(&|r| r.group_pk = malformed_keys()[5].1.clone()),
        ),
        (
            "a 31-byte secret",
            tampered_group(&|r| r.group_secret.truncate(31)),
        ),
        (
            "another secret",
            tampered_group(&|r| r.group_secret = random_bytes(32)),
        ),
        (
            "another group key",
            tampered_group(&|r| r.group_pk = random_key()),
        ),
        (
            "a truncated proof",
            tampered_group(&|r| r.creation_proof.truncate(96)),
        ),
        (
            "a forged proof signature",
            tampered_group(&|r| {
                let last = r.creation_proof.len() - 1;
                r.creation_proof[last] ^= 1;
            }),
        ),
        (
            "another creator in the proof",
            tampered_group(&|r| r.creation_proof[1..33].copy_from_slice(&random_key())),
        ),
    ];
    for (what, reference) in group_cases {
        assert_status(
            join(&mut b.client, reference, Vec::new()).await,
            Code::InvalidArgument,
            "reference",
            &format!("GroupJoin with a reference that is {what}"),
        );
    }
    // Nothing was joined.
    assert!(b
        .account_history()
        .await
        .iter()
        .all(|e| e.event_type != pb::AccountEventType::GroupJoined as i32));

    let tampered_contact = |change: &dyn Fn(&mut wire::ContactReference)| {
        let mut reference = contact.clone();
        change(&mut reference);
        reference.encode_to_vec()
    };
    let contact_cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not protobuf", vec![0xff; 40]),
        ("random bytes", random_bytes(70)),
        ("version 2", tampered_contact(&|r| r.version = 2)),
        (
            "a low-order account key",
            tampered_contact(&|r| r.account_pk = malformed_keys()[5].1.clone()),
        ),
        (
            "a 31-byte account key",
            tampered_contact(&|r| r.account_pk.truncate(31)),
        ),
        (
            "a 31-byte seed",
            tampered_contact(&|r| r.rendezvous_seed.truncate(31)),
        ),
        ("no seed", tampered_contact(&|r| r.rendezvous_seed.clear())),
    ];
    for (what, reference) in contact_cases {
        assert_status(
            enqueue(&mut a.client, reference, b"hi".to_vec()).await,
            Code::InvalidArgument,
            "reference",
            &format!("ContactRequestEnqueue with a reference that is {what}"),
        );
    }
    assert!(a
        .account_history()
        .await
        .iter()
        .all(|e| e.event_type != pb::AccountEventType::ContactRequestEnqueued as i32));
}

async fn set_setting(
    client: &mut Client,
    group: bool,
    group_pk: &[u8],
    key: String,
    value: Vec<u8>,
) -> Result<(), Status> {
    let group_pub_key = group_pk.to_vec();
    if group {
        client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key,
                key,
                value,
            })
            .await
            .map(drop)
    } else {
        client
            .group_setting_set_member(pb::group_setting_set_member::Request {
                group_pub_key,
                key,
                value,
            })
            .await
            .map(drop)
    }
}

/// Each limit of docs/api.md: one byte over is INVALID_ARGUMENT naming the field, exactly at
/// the limit is accepted and stored intact.
async fn limits_are_enforced_at_the_boundary(backend: Backend) {
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    let group = a.create_group().await;
    let mut client = a.client.clone();

    // Message payload: 1 MiB.
    assert_status(
        common::protocol::send(&mut client, &group, &vec![7; MIB + 1]).await,
        Code::InvalidArgument,
        "payload",
        "a payload of 1 MiB + 1",
    );
    let big = random_bytes(MIB);
    let id = a.send(&group, &big).await;
    let history = a.message_history(&group).await;
    assert_eq!(history.len(), 1, "the refused payload was not stored");
    assert_eq!(common::protocol::StoreEvent::id(&history[0]), id);
    assert!(
        history[0].payload == big,
        "the 1 MiB payload comes back intact"
    );

    // Join meta: 1024 bytes.
    let invite = a.invite(&group).await;
    assert_status(
        join(&mut b.client, invite.clone(), vec![1; KIB + 1]).await,
        Code::InvalidArgument,
        "meta",
        "GroupJoin with 1025 bytes of meta",
    );
    let meta = random_bytes(KIB);
    join(&mut b.client, invite, meta.clone()).await.unwrap();
    assert_eq!(b.member_history(&group).await[0].meta, meta);

    // Contact request meta: 1024 bytes.
    b.enable_contact_requests().await;
    let reference = b.contact_reference().await;
    assert_status(
        enqueue(&mut a.client, reference.clone(), vec![1; KIB + 1]).await,
        Code::InvalidArgument,
        "meta",
        "ContactRequestEnqueue with 1025 bytes of meta",
    );
    let meta = random_bytes(KIB);
    enqueue(&mut a.client, reference, meta.clone())
        .await
        .unwrap();
    let last = a.account_history().await.pop().unwrap();
    assert_eq!(
        last.event_type,
        pb::AccountEventType::ContactRequestEnqueued as i32
    );
    assert_eq!(last.data, meta);

    // Setting keys: 1 to 256 bytes of UTF-8 (bytes, not characters); values: 64 KiB.
    for scope_group in [true, false] {
        let scope = if scope_group { "group" } else { "member" };
        for (key, what) in [
            (String::new(), "an empty key"),
            ("k".repeat(257), "a 257-byte key"),
            (
                format!("{}a", "é".repeat(128)),
                "a 257-byte key of 129 characters",
            ),
        ] {
            assert_status(
                set_setting(&mut a.client, scope_group, &group, key, b"v".to_vec()).await,
                Code::InvalidArgument,
                "key",
                &format!("{scope} setting with {what}"),
            );
        }
        assert_status(
            set_setting(
                &mut a.client,
                scope_group,
                &group,
                "k".into(),
                vec![0; 64 * KIB + 1],
            )
            .await,
            Code::InvalidArgument,
            "value",
            &format!("{scope} setting with a value of 64 KiB + 1"),
        );
        set_setting(
            &mut a.client,
            scope_group,
            &group,
            "é".repeat(128),
            b"v".to_vec(),
        )
        .await
        .unwrap();
        set_setting(
            &mut a.client,
            scope_group,
            &group,
            "big".into(),
            vec![9; 64 * KIB],
        )
        .await
        .unwrap();
    }
    let stored = a.setting_history(&group).await;
    assert_eq!(stored.len(), 4, "only the accepted settings are stored");
    assert_eq!(stored[0].key, "é".repeat(128));
    assert_eq!(stored[1].value, vec![9; 64 * KIB]);

    // App-specific account events: 64 KiB.
    assert_status(
        within(
            "AccountAppendAppSpecificEvent",
            a.client.account_append_app_specific_event(
                pb::account_append_app_specific_event::Request {
                    payload: vec![0; 64 * KIB + 1],
                },
            ),
        )
        .await,
        Code::InvalidArgument,
        "payload",
        "an app event of 64 KiB + 1",
    );
    let app = random_bytes(64 * KIB);
    within(
        "AccountAppendAppSpecificEvent",
        a.client.account_append_app_specific_event(
            pb::account_append_app_specific_event::Request {
                payload: app.clone(),
            },
        ),
    )
    .await
    .unwrap();
    let last = a.account_history().await.pop().unwrap();
    assert_eq!(last.event_type, pb::AccountEventType::AppSpecified as i32);
    assert!(last.data == app);
}
