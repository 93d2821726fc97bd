//! `ProtocolService` contact calls and account events on the real binary, on SQLite and on
//! PostgreSQL: the contact-request switch and references, enqueue / block / unblock / remove,
//! and the account event of every action exactly as the table in docs/api.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use berty_node::proto::{berty_protocol as pb, wire};
use common::protocol::{
    account, assert_cursors_increase, assert_status, both_backends, drain, random_key, take,
    within, Backend, Client, Range, TestNode,
};
use pb::AccountEventType as T;
use prost::Message as _;
use tonic::{Code, Status};

both_backends!(
    contact_request_switch_and_references,
    enqueue_block_unblock_and_remove_a_contact,
    account_events_follow_the_table,
);

async fn disable(client: &mut Client) {
    within(
        "ContactRequestDisable",
        client.contact_request_disable(pb::contact_request_disable::Request {}),
    )
    .await
    .unwrap();
}

async fn reset(client: &mut Client) -> Vec<u8> {
    let reference = within(
        "ContactRequestResetReference",
        client.contact_request_reset_reference(pb::contact_request_reset_link::Request {}),
    )
    .await
    .unwrap()
    .into_inner()
    .reference;
    assert!(
        !reference.is_empty(),
        "ResetReference returns the new reference"
    );
    reference
}

async fn enqueue(client: &mut Client, reference: &[u8], meta: &[u8]) -> Result<(), Status> {
    within(
        "ContactRequestEnqueue",
        client.contact_request_enqueue(pb::contact_request_enqueue::Request {
            reference: reference.to_vec(),
            meta: meta.to_vec(),
        }),
    )
    .await
    .map(drop)
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Accept,
    Remove,
    Block,
    Unblock,
}

async fn contact(client: &mut Client, action: Action, key: &[u8]) -> Result<(), Status> {
    let contact_pub_key = key.to_vec();
    let call = async {
        match action {
            Action::Accept => client
                .contact_request_accept(pb::contact_request_accept::Request { contact_pub_key })
                .await
                .map(drop),
            Action::Remove => client
                .contact_remove(pb::contact_remove::Request { contact_pub_key })
                .await
                .map(drop),
            Action::Block => client
                .contact_block(pb::contact_block::Request { contact_pub_key })
                .await
                .map(drop),
            Action::Unblock => client
                .contact_unblock(pb::contact_unblock::Request { contact_pub_key })
                .await
                .map(drop),
        }
    };
    within("a contact call", call).await
}

fn parse_reference(reference: &[u8]) -> wire::ContactReference {
    let parsed = wire::ContactReference::decode(reference).expect("a contact reference");
    assert_eq!(parsed.version, 1);
    assert_eq!(parsed.rendezvous_seed.len(), 32);
    parsed
}

/// ContactRequestReference is empty until requests are enabled and while they are disabled;
/// enabling again gives the same reference; ResetReference returns a new reference (with the
/// same account key and a new seed) whether requests are enabled or not, and Reference then
/// returns it once enabled.
async fn contact_request_switch_and_references(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    assert!(
        a.contact_reference().await.is_empty(),
        "empty before the first enable"
    );

    a.enable_contact_requests().await;
    let first = a.contact_reference().await;
    assert!(!first.is_empty(), "non-empty once enabled");
    assert_eq!(parse_reference(&first).account_pk, a.id.account_pk);
    assert_eq!(
        a.contact_reference().await,
        first,
        "the reference is stable"
    );

    disable(&mut a.client).await;
    assert!(
        a.contact_reference().await.is_empty(),
        "empty while disabled"
    );
    a.enable_contact_requests().await;
    assert_eq!(
        a.contact_reference().await,
        first,
        "re-enabling keeps the seed"
    );

    let second = reset(&mut a.client).await;
    assert_ne!(second, first, "a reset draws a new reference");
    assert_eq!(parse_reference(&second).account_pk, a.id.account_pk);
    assert_ne!(
        parse_reference(&second).rendezvous_seed,
        parse_reference(&first).rendezvous_seed
    );
    assert_eq!(a.contact_reference().await, second);

    disable(&mut a.client).await;
    let third = reset(&mut a.client).await;
    assert_ne!(third, second);
    assert_ne!(third, first);
    assert!(
        a.contact_reference().await.is_empty(),
        "still empty while disabled"
    );
    a.enable_contact_requests().await;
    assert_eq!(
        a.contact_reference().await,
        third,
        "enabling shows the reset reference"
    );

    let resets: Vec<Vec<u8>> = a
        .account_history()
        .await
        .into_iter()
        .filter(|e| e.event_type == T::ContactRequestReferenceReset as i32)
        .map(|e| e.data)
        .collect();
    assert_eq!(
        resets,
        vec![first, second, third],
        "each new reference is recorded"
    );
}

/// Enqueue with another node's reference; Accept is NOT_FOUND for an outgoing request and for
/// an unknown key; Block / Unblock / Remove work on the enqueued contact (Unblock of a contact
/// that is not blocked is FAILED_PRECONDITION) and are NOT_FOUND on an unknown key and after
/// the removal; our own reference is INVALID_ARGUMENT.
async fn enqueue_block_unblock_and_remove_a_contact(backend: Backend) {
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    b.enable_contact_requests().await;
    let reference = b.contact_reference().await;
    let bob = b.id.account_pk.clone();
    let unknown = random_key();

    enqueue(&mut a.client, &reference, b"hello, it's alice")
        .await
        .unwrap();

    a.enable_contact_requests().await;
    let own = a.contact_reference().await;
    assert_status(
        enqueue(&mut a.client, &own, b"me").await,
        Code::InvalidArgument,
        "own",
        "enqueuing our own reference",
    );

    for key in [&bob, &unknown] {
        assert_status(
            contact(&mut a.client, Action::Accept, key).await,
            Code::NotFound,
            &hex::encode(key),
            "accepting a request that never came in",
        );
    }
    for action in [Action::Block, Action::Unblock, Action::Remove] {
        assert_status(
            contact(&mut a.client, action, &unknown).await,
            Code::NotFound,
            &hex::encode(&unknown),
            &format!("{action:?} on an unknown key"),
        );
    }

    contact(&mut a.client, Action::Block, &bob).await.unwrap();
    contact(&mut a.client, Action::Unblock, &bob).await.unwrap();
    assert_status(
        contact(&mut a.client, Action::Unblock, &bob).await,
        Code::FailedPrecondition,
        "not blocked",
        "unblocking a contact that is not blocked",
    );
    contact(&mut a.client, Action::Remove, &bob).await.unwrap();
    for action in [
        Action::Accept,
        Action::Block,
        Action::Unblock,
        Action::Remove,
    ] {
        assert_status(
            contact(&mut a.client, action, &bob).await,
            Code::NotFound,
            &hex::encode(&bob),
            &format!("{action:?} after the contact was removed"),
        );
    }
    // A removed contact is forgotten: it can be requested again.
    enqueue(&mut a.client, &reference, b"again").await.unwrap();
    contact(&mut a.client, Action::Block, &bob).await.unwrap();
    // A new request to a blocked contact does not lift the block behind the account log's
    // back (the log says ContactBlocked with no ContactUnblocked): it stays blocked until
    // ContactUnblock.
    enqueue(&mut a.client, &reference, b"while blocked")
        .await
        .unwrap();
    contact(&mut a.client, Action::Unblock, &bob).await.unwrap();
    let types: Vec<i32> = a
        .account_history()
        .await
        .into_iter()
        .filter(|e| e.subject_public_key_bytes == bob)
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        types,
        [
            T::ContactRequestEnqueued,
            T::ContactBlocked,
            T::ContactUnblocked,
            T::ContactRemoved,
            T::ContactRequestEnqueued,
            T::ContactBlocked,
            T::ContactRequestEnqueued,
            T::ContactUnblocked,
        ]
        .map(|t| t as i32),
        "the account log records each change to the contact"
    );
}

/// One action of the account event test and the event it must record.
struct Expected {
    event_type: T,
    subject: Vec<u8>,
    data: Vec<u8>,
}

fn expect(event_type: T, subject: &[u8], data: &[u8]) -> Expected {
    Expected {
        event_type,
        subject: subject.to_vec(),
        data: data.to_vec(),
    }
}

fn account_event_id(event: &pb::AccountStoreEvent) -> Vec<u8> {
    event
        .event_base
        .as_ref()
        .expect("event_base (ext 100)")
        .id
        .clone()
}

/// Every action this node can perform alone records exactly the account event of the table
/// (type, subject, data), with `event_base` (ext 100) and `cursor` (ext 110) set; internal
/// entries of the account log (member device, chain keys) never show; the group secret never
/// shows; the live tail, the history and a bounded forward range agree.
async fn account_events_follow_the_table(backend: Backend) {
    let (mut a, mut b) = tokio::join!(TestNode::start(backend), TestNode::start(backend));
    assert!(
        a.account_history().await.is_empty(),
        "a new account has no account events"
    );
    let mut live = account(&mut a.client, Range::live()).await.unwrap();

    let mut expected = Vec::new();
    let own_group = a.create_group().await;
    expected.push(expect(T::GroupJoined, &own_group, b""));
    let b_group = b.create_group().await;
    let invite = b.invite(&b_group).await;
    a.join(&invite, b"alice").await;
    expected.push(expect(T::GroupJoined, &b_group, b""));
    within(
        "GroupLeave",
        a.client.group_leave(pb::group_leave::Request {
            group_pub_key: own_group.clone(),
        }),
    )
    .await
    .unwrap();
    expected.push(expect(T::GroupLeft, &own_group, b""));

    a.enable_contact_requests().await;
    let first_reference = a.contact_reference().await;
    expected.push(expect(
        T::ContactRequestReferenceReset,
        b"",
        &first_reference,
    ));
    expected.push(expect(T::ContactRequestEnabled, b"", b""));
    disable(&mut a.client).await;
    expected.push(expect(T::ContactRequestDisabled, b"", b""));
    let second_reference = reset(&mut a.client).await;
    expected.push(expect(
        T::ContactRequestReferenceReset,
        b"",
        &second_reference,
    ));

    b.enable_contact_requests().await;
    let bob_reference = b.contact_reference().await;
    let bob = b.id.account_pk.clone();
    enqueue(&mut a.client, &bob_reference, b"it's alice")
        .await
        .unwrap();
    expected.push(expect(T::ContactRequestEnqueued, &bob, b"it's alice"));
    contact(&mut a.client, Action::Block, &bob).await.unwrap();
    expected.push(expect(T::ContactBlocked, &bob, b""));
    contact(&mut a.client, Action::Unblock, &bob).await.unwrap();
    expected.push(expect(T::ContactUnblocked, &bob, b""));
    contact(&mut a.client, Action::Remove, &bob).await.unwrap();
    expected.push(expect(T::ContactRemoved, &bob, b""));

    for payload in [&b"app event one"[..], b"app event two"] {
        within(
            "AccountAppendAppSpecificEvent",
            a.client.account_append_app_specific_event(
                pb::account_append_app_specific_event::Request {
                    payload: payload.to_vec(),
                },
            ),
        )
        .await
        .unwrap();
        expected.push(expect(T::AppSpecified, &a.id.device_pk, payload));
    }

    let history = a.account_history().await;
    assert_eq!(
        history.len(),
        expected.len(),
        "exactly one account event per action, no internal entry: {:?}",
        history.iter().map(|e| e.event_type).collect::<Vec<_>>()
    );
    for (i, (event, want)) in history.iter().zip(&expected).enumerate() {
        assert_eq!(
            event.event_type, want.event_type as i32,
            "event {i}: type (ext 101)"
        );
        assert_eq!(
            event.subject_public_key_bytes, want.subject,
            "event {i} ({:?}): subject_public_key_bytes",
            want.event_type
        );
        assert_eq!(
            event.data, want.data,
            "event {i} ({:?}): data",
            want.event_type
        );
        let base = event.event_base.as_ref().expect("event_base (ext 100)");
        assert_eq!(base.id.len(), 32, "event {i}: id");
        assert!(!base.parent_ids.is_empty(), "event {i}: parents");
        assert!(base.parent_ids.iter().all(|p| p.len() == 32));
    }
    // One writer: every event's parent is the entry written just before it. The first event's
    // parent is an internal entry (this device's chain key), which is not shown.
    let ids: Vec<Vec<u8>> = history.iter().map(account_event_id).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "unique ids"
    );
    let first_parents = &history[0].event_base.as_ref().unwrap().parent_ids;
    assert!(first_parents.iter().all(|p| !ids.contains(p)));
    for i in 1..history.len() {
        assert_eq!(
            history[i].event_base.as_ref().unwrap().parent_ids,
            vec![ids[i - 1].clone()],
            "event {i} is chained on event {}",
            i - 1
        );
    }
    assert_cursors_increase(&history.iter().map(|e| e.cursor).collect::<Vec<_>>());

    // The group secrets never show, in subjects or data.
    for reference in [a.invite(&b_group).await, invite] {
        let secret = wire::GroupReference::decode(&reference[..])
            .unwrap()
            .group_secret;
        for event in &history {
            for field in [&event.subject_public_key_bytes, &event.data] {
                assert!(
                    !field.windows(secret.len()).any(|w| w == &secret[..]),
                    "a group secret leaked into an account event"
                );
            }
        }
    }

    // The live tail saw the same events; a bounded forward walk replays them.
    let streamed: Vec<pb::AccountStoreEvent> = take(&mut live, expected.len())
        .await
        .into_iter()
        .map(|r| r.event.unwrap())
        .collect();
    assert_eq!(streamed, history, "live tail == history");
    let bounded: Vec<pb::AccountStoreEvent> = drain(
        account(&mut a.client, Range::between(&ids[0], ids.last().unwrap()))
            .await
            .unwrap(),
    )
    .await
    .into_iter()
    .map(|r| r.event.unwrap())
    .collect();
    assert_eq!(bounded, history, "since/until walk == history");
}
