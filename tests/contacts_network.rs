//! Contacts between separate node processes, with an infrastructure node as the only
//! rendezvous server (no bootstrap between the two people), on SQLite and on PostgreSQL:
//! enable, reference, request, accept, messages both ways in the contact group; a request
//! enqueued while the target is offline, delivered after the requester restarted and the
//! target came back; a reset reference and a blocked requester. Every wait is on an event
//! stream (or the metrics, for what has no event), never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::contacts::{enqueue, person, serve_with_rendezvous, wait_for_account_event};

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    account, both_backends, messages, metric_or_zero, next, payload, within, Backend, Client,
    Range, TestNode,
};
use pb::AccountEventType as T;

/// The courier's delivery counters.
const DELIVERIES_FAILED: &str = "berty_node_contact_deliveries_total{outcome=\"failed\"}";
const DELIVERIES_DELIVERED: &str = "berty_node_contact_deliveries_total{outcome=\"delivered\"}";

both_backends!(
    two_people_become_contacts_and_message_both_ways,
    a_request_reaches_a_target_that_was_offline,
    reset_references_and_blocked_requesters_do_not_reach,
);

/// A rendezvous server (an infrastructure node: the default config serves rendezvous).
async fn infra(backend: Backend) -> TestNode {
    TestNode::start(backend).await
}

async fn accept(client: &mut Client, contact: &[u8]) {
    within(
        "ContactRequestAccept",
        client.contact_request_accept(pb::contact_request_accept::Request {
            contact_pub_key: contact.to_vec(),
        }),
    )
    .await
    .expect("ContactRequestAccept");
}

/// The account events of `node` of type `kind` with `subject`, from its history.
async fn count_events(node: &mut TestNode, kind: T, subject: &[u8]) -> usize {
    node.account_history()
        .await
        .iter()
        .filter(|e| e.event_type == kind as i32 && e.subject_public_key_bytes == subject)
        .count()
}

/// The contact group `node` joined with `contact` (from its `GroupJoined` events).
async fn contact_group(node: &mut TestNode, other: &TestNode) -> Vec<u8> {
    // Each side joins exactly one group besides its own: the contact group. The request's
    // GroupJoined comes after the ContactRequested (target) or the delivery (requester).
    let _ = other;
    wait_for_account_event(node, T::GroupJoined, &[])
        .await
        .subject_public_key_bytes
}

/// The group of `node`'s first `GroupJoined` (its contact group in these tests).
async fn group_of(node: &mut TestNode) -> Vec<u8> {
    wait_for_account_event(node, T::GroupJoined, &[])
        .await
        .subject_public_key_bytes
}

async fn wait_for_message(node: &mut TestNode, group: &[u8], expected: &[u8]) {
    let mut stream = messages(&mut node.client, group, Range::live())
        .await
        .expect("GroupMessageSubscribe");
    loop {
        let reply = next(&mut stream).await;
        if payload(&reply) == expected {
            return;
        }
    }
}

async fn two_people_become_contacts_and_message_both_ways(backend: Backend) {
    let r = infra(backend).await;
    let mut a = person(backend, &r).await;
    let mut b = person(backend, &r).await;
    b.enable_contact_requests().await;
    let reference = b.contact_reference().await;
    assert!(!reference.is_empty());

    enqueue(&mut a.client, &reference, b"hello from a").await;
    let requested = within(
        "B receives A's request",
        wait_for_account_event(&mut b, T::ContactRequested, &a.id.account_pk),
    )
    .await;
    assert_eq!(requested.data, b"hello from a");

    accept(&mut b.client, &a.id.account_pk).await;
    let accepted = wait_for_account_event(&mut b, T::ContactAccepted, &a.id.account_pk).await;
    assert!(accepted.data.is_empty());
    let group_b = within("B joins the contact group", contact_group(&mut b, &a)).await;
    let group_a = within("A joins the contact group", contact_group(&mut a, &b)).await;
    assert_eq!(group_a, group_b, "both sides derive the same contact group");

    a.send(&group_a, b"a to b").await;
    within(
        "B reads A's message in the contact group",
        wait_for_message(&mut b, &group_b, b"a to b"),
    )
    .await;
    b.send(&group_b, b"b to a").await;
    within(
        "A reads B's message in the contact group",
        wait_for_message(&mut a, &group_a, b"b to a"),
    )
    .await;
    // Accepting again: the request is not incoming any more.
    let again = b
        .client
        .contact_request_accept(pb::contact_request_accept::Request {
            contact_pub_key: a.id.account_pk.clone(),
        })
        .await
        .expect_err("a second accept");
    assert_eq!(again.code(), tonic::Code::NotFound, "{again:?}");
}

async fn a_request_reaches_a_target_that_was_offline(backend: Backend) {
    let r = infra(backend).await;
    let mut b = person(backend, &r).await;
    b.enable_contact_requests().await;
    let reference = b.contact_reference().await;
    let (b_home, b_id) = b.kill().await;

    let mut a = person(backend, &r).await;
    enqueue(&mut a.client, &reference, b"while you were away").await;
    // The request is tried (and fails: B is offline) before A restarts.
    common::protocol::wait_for_metric_at_least(&a.process, DELIVERIES_FAILED, 1.0).await;
    let (a_home, a_id) = a.kill().await;
    let mut a = serve_with_rendezvous(a_home, a_id, &r).await;

    let mut b = serve_with_rendezvous(b_home, b_id, &r).await;
    let requested = within(
        "B receives the request within a minute of coming back",
        wait_for_account_event(&mut b, T::ContactRequested, &a.id.account_pk),
    )
    .await;
    assert_eq!(requested.data, b"while you were away");
    // A joined the contact group once the request was delivered.
    within("A joins the contact group", contact_group(&mut a, &b)).await;
}

async fn reset_references_and_blocked_requesters_do_not_reach(backend: Backend) {
    let r = infra(backend).await;
    let mut b = person(backend, &r).await;
    b.enable_contact_requests().await;
    let old_reference = b.contact_reference().await;
    let new_reference = within(
        "ContactRequestResetReference",
        b.client
            .contact_request_reset_reference(pb::contact_request_reset_link::Request {}),
    )
    .await
    .expect("reset")
    .into_inner()
    .reference;
    assert_ne!(old_reference, new_reference);

    // A uses the old reference: its point is no longer advertised anywhere.
    let mut a = person(backend, &r).await;
    enqueue(&mut a.client, &old_reference, b"old").await;
    // C uses the new one and gets through.
    let mut c = person(backend, &r).await;
    enqueue(&mut c.client, &new_reference, b"new").await;
    within(
        "C's request arrives",
        wait_for_account_event(&mut b, T::ContactRequested, &c.id.account_pk),
    )
    .await;
    // A's request has been tried meanwhile (it fails to find B's old point, or, if it found
    // it before B withdrew it, B dropped the request), and nothing of A reached B.
    within("A tries its request", async {
        loop {
            let failed = metric_or_zero(&a.process, DELIVERIES_FAILED).await;
            let delivered = metric_or_zero(&a.process, DELIVERIES_DELIVERED).await;
            if failed >= 2.0 || delivered >= 1.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        count_events(&mut b, T::ContactRequested, &a.id.account_pk).await,
        0
    );

    // B blocks C; C asks again (after removing its side): the handshake completes (C cannot
    // tell it is blocked), and B drops the request.
    within(
        "ContactBlock",
        b.client.contact_block(pb::contact_block::Request {
            contact_pub_key: c.id.account_pk.clone(),
        }),
    )
    .await
    .expect("ContactBlock");
    within(
        "ContactRemove",
        c.client.contact_remove(pb::contact_remove::Request {
            contact_pub_key: b.id.account_pk.clone(),
        }),
    )
    .await
    .expect("ContactRemove");
    enqueue(&mut c.client, &new_reference, b"again").await;
    common::protocol::wait_for_metric_at_least(&c.process, DELIVERIES_DELIVERED, 2.0).await;
    common::protocol::wait_for_metric_at_least(
        &b.process,
        "berty_node_contact_handshakes_total{outcome=\"completed\"}",
        2.0,
    )
    .await;
    assert_eq!(
        count_events(&mut b, T::ContactRequested, &c.id.account_pk).await,
        1,
        "the blocked requester's second request was dropped"
    );
    // C left the contact group when it removed B, and joined it again when its second
    // request was delivered (C cannot tell it is blocked).
    within("C joins the contact group again", async {
        let mut stream = account(&mut c.client, Range::live())
            .await
            .expect("AccountSubscribe");
        let mut joined = 0;
        while joined < 2 {
            let event = next(&mut stream).await.event.expect("event");
            if event.event_type == T::GroupJoined as i32 {
                joined += 1;
            }
        }
    })
    .await;
    let group = group_of(&mut c).await;
    assert_eq!(count_events(&mut c, T::GroupLeft, &group).await, 1);
}
