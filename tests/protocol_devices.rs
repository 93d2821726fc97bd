//! DevicePair between separate node processes, on SQLite and on PostgreSQL: a second device
//! made by `init --import` from the first device's export pairs, reads the history, reaches
//! the group's other member and the first device, follows the groups the first device joins
//! afterwards; a device that was never imported is refused. Every wait is on a stream of
//! events, never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    account, assert_status, both_backends, members, messages, next, payload, within, Backend, Home,
    Identity, Range, TestNode,
};
use tonic::Code;

both_backends!(
    an_imported_device_pairs_reads_the_history_and_reaches_every_member,
    devicepair_needs_a_device_made_by_import,
);

/// A node with replication on whose swarm dials `peers` at start.
async fn serve_bootstrapped(home: Home, id: Identity, peers: &[&TestNode]) -> TestNode {
    let list = peers
        .iter()
        .map(|n| n.process.p2p_addrs[0].clone())
        .collect::<Vec<_>>()
        .join(",");
    let mut env = vec![("BERTY_NODE__P2P__REPLICATION", "true")];
    if !list.is_empty() {
        env.push(("BERTY_NODE__P2P__BOOTSTRAP", list.as_str()));
    }
    TestNode::serve_with(home, id, &env).await
}

async fn node_bootstrapped_to(backend: Backend, peers: &[&TestNode]) -> TestNode {
    let home = Home::new(backend).await;
    let id = home.init().await;
    serve_bootstrapped(home, id, peers).await
}

async fn device_pair(node: &mut TestNode) -> Result<pb::device_pair::Reply, tonic::Status> {
    within(
        "DevicePair",
        node.client.device_pair(pb::device_pair::Request {}),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Waits until `node`'s view of `group` shows a message with `body` (history, then live).
async fn wait_for_message(node: &mut TestNode, group: &[u8], body: &[u8], what: &str) {
    let mut stream = messages(&mut node.client, group, Range::live())
        .await
        .expect("GroupMessageSubscribe");
    within(what, async {
        while payload(&next(&mut stream).await) != body {}
    })
    .await;
}

/// Waits until `node` sees `n` member devices in `group`.
async fn wait_for_members(node: &mut TestNode, group: &[u8], n: usize, what: &str) {
    let mut stream = members(&mut node.client, group, Range::live())
        .await
        .expect("GroupMemberSubscribe");
    within(what, async {
        for _ in 0..n {
            next(&mut stream).await;
        }
    })
    .await;
}

/// Waits until `node`'s account log shows an event of `event_type` about `subject`.
async fn wait_for_account_event(
    node: &mut TestNode,
    event_type: pb::AccountEventType,
    subject: &[u8],
    what: &str,
) {
    let mut stream = account(&mut node.client, Range::live())
        .await
        .expect("AccountSubscribe");
    within(what, async {
        loop {
            let event = next(&mut stream).await.event.expect("event");
            if event.event_type == event_type as i32 && event.subject_public_key_bytes == subject {
                return;
            }
        }
    })
    .await;
}

/// A creates G and invites C; A exports; B is imported from the export and paired (twice:
/// one `DevicePaired`, which A sees); B reads A's history, its message reaches C and A, A's
/// later message reaches B; a group A creates after the pairing reaches B through the account
/// log, and both write there.
async fn an_imported_device_pairs_reads_the_history_and_reaches_every_member(backend: Backend) {
    let mut a = node_bootstrapped_to(backend, &[]).await;
    let g = a.create_group().await;
    let invite = a.invite(&g).await;
    let mut c = node_bootstrapped_to(backend, &[&a]).await;
    c.join(&invite, b"c").await;
    for i in 0..5 {
        a.send(&g, format!("a {i}").as_bytes()).await;
    }
    // A knows C (so the export names C's device), and C reads A.
    wait_for_members(&mut a, &g, 2, "A sees C's member event").await;
    wait_for_message(&mut c, &g, b"a 4", "C reads A's messages").await;

    let file = a.home.scratch("export.bin");
    a.export_to(&file).await;
    let home = Home::new(backend).await;
    let id = home.import(&file, false).await;
    assert_eq!(id.account_pk, a.id.account_pk);
    assert_ne!(id.device_pk, a.id.device_pk);
    let mut b = serve_bootstrapped(home, id, &[&a, &c]).await;

    let first = device_pair(&mut b).await.expect("DevicePair");
    assert_eq!(first.device_pk, b.id.device_pk, "the new device's key");
    assert_eq!(first.event_id.len(), 32);
    assert!(!first.already_paired);
    let second = device_pair(&mut b).await.expect("DevicePair again");
    assert!(second.already_paired, "a paired device is paired already");
    assert_eq!(second.event_id, first.event_id, "nothing new written");
    let paired = b
        .account_history()
        .await
        .into_iter()
        .filter(|e| e.event_type == pb::AccountEventType::DevicePaired as i32)
        .collect::<Vec<_>>();
    assert_eq!(paired.len(), 1, "one DevicePaired in the account log");
    assert_eq!(paired[0].subject_public_key_bytes, b.id.device_pk);
    assert!(paired[0].data.is_empty());
    let b_device = b.id.device_pk.clone();
    wait_for_account_event(
        &mut a,
        pb::AccountEventType::DevicePaired,
        &b_device,
        "A sees B's DevicePaired",
    )
    .await;

    // B reads A's history of G at once (it came with the export).
    let history: Vec<Vec<u8>> = b
        .message_history(&g)
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let expected: Vec<Vec<u8>> = (0..5).map(|i| format!("a {i}").into_bytes()).collect();
    assert_eq!(history, expected, "B reads A's history of G");

    b.send(&g, b"from b").await;
    wait_for_message(&mut c, &g, b"from b", "C reads B's message").await;
    wait_for_message(&mut a, &g, b"from b", "A reads B's message").await;
    a.send(&g, b"a after the pairing").await;
    wait_for_message(
        &mut b,
        &g,
        b"a after the pairing",
        "B reads A's new message",
    )
    .await;
    c.send(&g, b"from c").await;
    wait_for_message(&mut b, &g, b"from c", "B reads C's new message").await;

    // A group A creates now reaches B through the account log: B joins it (its member event
    // reaches A), and both write there.
    let g2 = a.create_group().await;
    wait_for_account_event(
        &mut b,
        pb::AccountEventType::GroupJoined,
        &g2,
        "B's account log shows A's GroupJoined",
    )
    .await;
    wait_for_members(&mut a, &g2, 2, "A sees B's member event in G2").await;
    b.send(&g2, b"b in g2").await;
    wait_for_message(&mut a, &g2, b"b in g2", "A reads B's message in G2").await;
    a.send(&g2, b"a in g2").await;
    wait_for_message(&mut b, &g2, b"a in g2", "B reads A's message in G2").await;
}

/// DevicePair on a device made by plain `init`, or restored with `--restore` from an original
/// device's export, is FAILED_PRECONDITION saying what it pairs.
async fn devicepair_needs_a_device_made_by_import(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    assert_status(
        device_pair(&mut a).await,
        Code::FailedPrecondition,
        "init --import",
        "DevicePair on a device made by plain init",
    );
    let file = a.home.scratch("export.bin");
    a.export_to(&file).await;
    let home = Home::new(backend).await;
    let id = home.import(&file, true).await;
    assert_eq!(id.device_pk, a.id.device_pk, "a restore keeps the device");
    let mut restored = TestNode::serve(home, id).await;
    assert_status(
        device_pair(&mut restored).await,
        Code::FailedPrecondition,
        "--restore",
        "DevicePair on a device restored from an original device",
    );
}
