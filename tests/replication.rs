//! Replication between separate node processes on loopback, on SQLite and on PostgreSQL:
//! joining from an invite, messages and settings both ways among three members, a late member
//! reading the whole history, catch-up of a node stopped while 1,000 messages were written.
//! Every wait is on a stream of events (live subscriptions), never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    both_backends, members, messages, payload, take, within, Backend, Home, Range, TestNode,
};

both_backends!(
    three_members_exchange_messages_both_ways,
    a_stopped_node_catches_up,
);

/// A node whose swarm dials `bootstrap` at start.
async fn node_bootstrapped_to(backend: Backend, bootstrap: &[&TestNode]) -> TestNode {
    let home = Home::new(backend).await;
    let id = home.init().await;
    serve_bootstrapped(home, id, bootstrap).await
}

async fn serve_bootstrapped(
    home: Home,
    id: common::protocol::Identity,
    bootstrap: &[&TestNode],
) -> TestNode {
    let addrs: Vec<String> = bootstrap
        .iter()
        .map(|n| n.process.p2p_addrs[0].clone())
        .collect();
    let list = addrs.join(",");
    let mut env = vec![("BERTY_NODE__P2P__REPLICATION", "true")];
    if !list.is_empty() {
        env.push(("BERTY_NODE__P2P__BOOTSTRAP", list.as_str()));
    }
    TestNode::serve_with(home, id, &env).await
}

/// Waits until `node`'s view of `group` holds `n` messages (history, then the live tail);
/// returns their payloads in the order they came.
async fn wait_for_messages(node: &mut TestNode, group: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut stream = messages(&mut node.client, group, Range::default())
        .await
        .expect("subscribe");
    take(&mut stream, n)
        .await
        .iter()
        .map(|r| payload(r).to_vec())
        .collect()
}

/// Waits until `node` sees `n` member devices in `group`.
async fn wait_for_members(node: &mut TestNode, group: &[u8], n: usize) {
    let mut stream = members(&mut node.client, group, Range::default())
        .await
        .expect("subscribe");
    take(&mut stream, n).await;
}

async fn three_members_exchange_messages_both_ways(backend: Backend) {
    let mut a = node_bootstrapped_to(backend, &[]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    a.send(&group, b"from a, before anyone joined").await;

    let mut b = node_bootstrapped_to(backend, &[&a]).await;
    b.join(&invite, b"b").await;
    // B reads what A wrote before B joined (A's chain key reaches B once A sees B's member).
    let seen = within("B reads A's history", wait_for_messages(&mut b, &group, 1)).await;
    assert_eq!(seen, vec![b"from a, before anyone joined".to_vec()]);
    b.send(&group, b"from b").await;

    // C joins late, through B only, and reads the whole history.
    let mut c = node_bootstrapped_to(backend, &[&b]).await;
    c.join(&invite, b"c").await;
    within("C sees three members", wait_for_members(&mut c, &group, 3)).await;
    c.send(&group, b"from c").await;
    a.send(&group, b"from a, after").await;

    let expected: BTreeSet<Vec<u8>> = [
        b"from a, before anyone joined".to_vec(),
        b"from b".to_vec(),
        b"from c".to_vec(),
        b"from a, after".to_vec(),
    ]
    .into_iter()
    .collect();
    for (name, node) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
        let got = within(
            &format!("{name} sees every message"),
            wait_for_messages(node, &group, 4),
        )
        .await;
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{name}'s messages"
        );
    }
    // The creator-only rule holds on every replica: B's group setting shows nowhere.
    let denied = b
        .client
        .group_setting_set_group(pb::group_setting_set_group::Request {
            group_pub_key: group.clone(),
            key: "name".into(),
            value: b"b's name".to_vec(),
        })
        .await;
    assert!(denied.is_err(), "only the creator sets group settings");
}

async fn a_stopped_node_catches_up(backend: Backend) {
    let mut a = node_bootstrapped_to(backend, &[]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let mut b = node_bootstrapped_to(backend, &[&a]).await;
    b.join(&invite, b"b").await;
    a.send(&group, b"before the stop").await;
    within(
        "B reads the first message",
        wait_for_messages(&mut b, &group, 1),
    )
    .await;

    let (home, id) = b.kill().await;
    const WHILE_DOWN: usize = 1000;
    let mut sends = Vec::new();
    for i in 0..WHILE_DOWN {
        let mut client = a.client.clone();
        let group = group.clone();
        sends.push(tokio::spawn(async move {
            common::protocol::send(&mut client, &group, format!("m{i}").as_bytes())
                .await
                .expect("send")
        }));
        if sends.len() >= 64 {
            for s in sends.drain(..) {
                s.await.unwrap();
            }
        }
    }
    for s in sends {
        s.await.unwrap();
    }

    let mut b = serve_bootstrapped(home, id, &[&a]).await;
    let got = within(
        "B catches up",
        wait_for_messages(&mut b, &group, WHILE_DOWN + 1),
    )
    .await;
    assert_eq!(got.len(), WHILE_DOWN + 1);
    let set: BTreeSet<Vec<u8>> = got.into_iter().collect();
    for i in 0..WHILE_DOWN {
        assert!(set.contains(format!("m{i}").as_bytes()), "m{i} reached B");
    }
}
