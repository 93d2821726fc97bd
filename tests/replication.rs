//! Replication between separate node processes on loopback, on SQLite and on PostgreSQL:
//! joining from an invite, messages and settings both ways among three members, a late member
//! reading the whole history, catch-up of a node stopped while 1,000 messages were written.
//! Every wait is on a stream of events (live subscriptions), never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    both_backends, members, messages, metric_or_zero, payload, send, settings, take, within,
    Backend, Home, Range, TestNode,
};

both_backends!(
    three_members_exchange_messages_both_ways,
    a_burst_reaches_a_member_by_pushes_alone,
    a_stopped_node_catches_up,
    partitioned_replicas_converge,
    members_find_each_other_through_the_dht,
    members_find_each_other_through_rendezvous,
);

/// Admin token of the nodes in these tests.
const ADMIN_TOKEN: &str = "replication-test";

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
    serve_knowing(home, id, "BERTY_NODE__P2P__BOOTSTRAP", bootstrap).await
}

/// Serves a node whose config key `key` (a list of peers) names `peers`' first addresses.
async fn serve_knowing(
    home: Home,
    id: common::protocol::Identity,
    key: &str,
    peers: &[&TestNode],
) -> TestNode {
    let addrs: Vec<String> = peers
        .iter()
        .map(|n| n.process.p2p_addrs[0].clone())
        .collect();
    let list = addrs.join(",");
    let mut env = vec![
        ("BERTY_NODE__P2P__REPLICATION", "true"),
        ("BERTY_NODE__P2P__TEST_CONTROLS", "true"),
        ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
    ];
    if !list.is_empty() {
        env.push((key, list.as_str()));
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

/// A creates a group, B joins it through A, A sends `first` and B reads it: both members
/// connected and replicating. Returns A, B and the group key.
async fn two_members(backend: Backend, first: &[u8]) -> (TestNode, TestNode, Vec<u8>) {
    let mut a = node_bootstrapped_to(backend, &[]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let mut b = node_bootstrapped_to(backend, &[&a]).await;
    b.join(&invite, b"b").await;
    a.send(&group, first).await;
    within(
        "B reads the first message",
        wait_for_messages(&mut b, &group, 1),
    )
    .await;
    (a, b, group)
}

/// Waits until `node` sees `n` member devices in `group`.
async fn wait_for_members(node: &mut TestNode, group: &[u8], n: usize) {
    let mut stream = members(&mut node.client, group, Range::default())
        .await
        .expect("subscribe");
    take(&mut stream, n).await;
}

/// Fetch requests a node answered.
const FETCHES_SERVED: &str = r#"berty_node_sync_requests_total{direction="inbound",kind="fetch"}"#;

/// A burst of concurrent sends reaches a connected member by the writer's pushes: the gossip
/// copies of the same commits, which overtake the pushes (a large commit's copy names its
/// heads only, a small one's builds on entries still on their way), wait for them and are
/// dropped instead of being fetched from the writer (about one commit in three was).
async fn a_burst_reaches_a_member_by_pushes_alone(backend: Backend) {
    const SENDERS: usize = 32;
    const EACH: usize = 16;
    let (a, mut b, group) = two_members(backend, b"before the burst").await;
    let fetches_before = metric_or_zero(&a.process, FETCHES_SERVED).await;

    let mut senders = tokio::task::JoinSet::new();
    for sender in 0..SENDERS {
        let mut client = a.client.clone();
        let group = group.clone();
        senders.spawn(async move {
            for i in 0..EACH {
                let mut body = vec![0u8; 1024];
                body[..16].copy_from_slice(&[sender as u8, i as u8].repeat(8));
                send(&mut client, &group, &body).await.expect("send");
            }
        });
    }
    while let Some(done) = senders.join_next().await {
        done.expect("sender task");
    }
    let seen = within(
        "B reads the burst",
        wait_for_messages(&mut b, &group, 1 + SENDERS * EACH),
    )
    .await;
    assert_eq!(
        seen.iter().collect::<BTreeSet<_>>().len(),
        1 + SENDERS * EACH,
        "every message once"
    );
    let fetches = metric_or_zero(&a.process, FETCHES_SERVED).await - fetches_before;
    // A push that lags its gossip copy by more than the grace (a machine under heavy load)
    // is fetched, which is still correct: allow a couple.
    assert!(
        fetches <= 2.0,
        "A answered {fetches} fetches during the burst"
    );
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
    // Settings flow both ways: the creator's group setting and a member's own setting.
    within(
        "A sets the group name",
        a.client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key: group.clone(),
                key: "name".into(),
                value: b"three of us".to_vec(),
            }),
    )
    .await
    .expect("creator sets a group setting");
    within(
        "C sets its nick",
        c.client
            .group_setting_set_member(pb::group_setting_set_member::Request {
                group_pub_key: group.clone(),
                key: "nick".into(),
                value: b"cee".to_vec(),
            }),
    )
    .await
    .expect("member sets its own setting");
    for (name, node) in [("A", &mut a), ("B", &mut b), ("C", &mut c)] {
        let mut stream = settings(&mut node.client, &group, Range::default())
            .await
            .expect("settings");
        let got: BTreeSet<(String, Vec<u8>)> =
            within(&format!("{name} sees both settings"), take(&mut stream, 2))
                .await
                .into_iter()
                .map(|r| r.event.expect("event"))
                .map(|e| (e.key, e.value))
                .collect();
        let expected: BTreeSet<(String, Vec<u8>)> = [
            ("name".to_string(), b"three of us".to_vec()),
            ("nick".to_string(), b"cee".to_vec()),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, expected, "{name}'s settings");
    }
    // The creator-only rule at the API: B cannot write a group setting.
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
    let (a, b, group) = two_members(backend, b"before the stop").await;

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

/// `POST` to a node's admin API; panics unless it answers 200.
async fn admin_post(node: &TestNode, path: &str, json: Option<&str>) -> String {
    let (status, body) = within(
        path,
        common::node::http_post(node.process.admin_addr, path, Some(ADMIN_TOKEN), json),
    )
    .await;
    assert_eq!(status, 200, "POST {path}: {body}");
    body
}

/// The ids of a group's messages in the total order of the log (a fresh subscription's
/// history), once `n` are there.
async fn ordered_ids(node: &mut TestNode, group: &[u8], n: usize) -> Vec<Vec<u8>> {
    wait_for_messages(node, group, n).await;
    let mut stream = messages(&mut node.client, group, Range::default())
        .await
        .expect("subscribe");
    common::protocol::ids(&take(&mut stream, n).await)
}

async fn partitioned_replicas_converge(backend: Backend) {
    let mut a = node_bootstrapped_to(backend, &[]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let mut b = node_bootstrapped_to(backend, &[&a]).await;
    b.join(&invite, b"b").await;
    a.send(&group, b"before").await;
    within(
        "B reads the first message",
        wait_for_messages(&mut b, &group, 1),
    )
    .await;
    // B must be able to write: its chain key reached A (A reads B's message).
    b.send(&group, b"b ready").await;
    within("A reads B", wait_for_messages(&mut a, &group, 2)).await;

    let b_peer = b.process.peer_id.clone();
    admin_post(&a, &format!("/admin/v1/test/partition/{b_peer}"), None).await;
    const EACH_SIDE: usize = 25;
    for i in 0..EACH_SIDE {
        a.send(&group, format!("a{i}").as_bytes()).await;
        b.send(&group, format!("b{i}").as_bytes()).await;
    }
    admin_post(&a, &format!("/admin/v1/test/heal/{b_peer}"), None).await;
    let a_addr = format!("{{\"addr\": \"{}\"}}", a.process.p2p_addrs[0]);
    admin_post(&b, "/admin/v1/dial", Some(&a_addr)).await;

    let total = 2 + 2 * EACH_SIDE;
    let on_a = within("A converges", ordered_ids(&mut a, &group, total)).await;
    let on_b = within("B converges", ordered_ids(&mut b, &group, total)).await;
    assert_eq!(on_a.len(), total);
    assert_eq!(on_a, on_b, "identical logs in identical order");
}

/// How many discovery keys a group uses at this moment (1, or 2 near the daily rotation).
fn discovery_keys_now() -> usize {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let any_key = berty_node::crypto::LinkKey::from_bytes([0; 32]);
    berty_node::crypto::discovery_keys(&any_key, now).len()
}

async fn members_find_each_other_through_rendezvous(backend: Backend) {
    // R is a rendezvous server (and no member); A and B have R as their only rendezvous
    // server and no bootstrap peer. Each registers the group's current discovery key at R
    // and discovers the other there.
    let keys_at_start = discovery_keys_now();
    let r = node_bootstrapped_to(backend, &[]).await;
    let home = Home::new(backend).await;
    let id = home.init().await;
    let mut a = serve_knowing(home, id, "BERTY_NODE__P2P__RENDEZVOUS", &[&r]).await;
    let home = Home::new(backend).await;
    let id = home.init().await;
    let mut b = serve_knowing(home, id, "BERTY_NODE__P2P__RENDEZVOUS", &[&r]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    a.send(&group, b"met at the rendezvous").await;
    b.join(&invite, b"b").await;
    let got = within(
        "B finds A at the rendezvous server and reads its message",
        wait_for_messages(&mut b, &group, 1),
    )
    .await;
    assert_eq!(got, vec![b"met at the rendezvous".to_vec()]);

    // R holds registrations of A and B under one shared (rotating, opaque) namespace: the
    // group's (each also registers its own account group, which the other does not share).
    let (status, body) = common::node::http_get(
        r.process.admin_addr,
        "/admin/v1/rendezvous",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let registrations = listing["registrations"].as_array().unwrap();
    let namespaces_of = |peer: &str| -> BTreeSet<String> {
        registrations
            .iter()
            .filter(|r| r["peer_id"] == peer)
            .inspect(|r| {
                assert!(r["ttl_secs"].as_u64().unwrap() > 3600, "{r}");
                assert_eq!(r["record_format"], "standard");
            })
            .map(|r| r["namespace"].as_str().unwrap().to_string())
            .collect()
    };
    let (on_a, on_b) = (
        namespaces_of(&a.process.peer_id),
        namespaces_of(&b.process.peer_id),
    );
    // One namespace per discovery key in use: one, or two within an hour of the daily
    // rotation (the next key before it, the previous one after it).
    let keys_now = discovery_keys_now();
    let shared: Vec<&String> = on_a.intersection(&on_b).collect();
    assert!(
        (keys_at_start.min(keys_now)..=keys_at_start.max(keys_now)).contains(&shared.len()),
        "{} shared namespaces, {keys_at_start} then {keys_now} discovery keys in use: {body}",
        shared.len()
    );
    assert!(shared.iter().all(|namespace| namespace.len() == 43));
    // One of them found the other in R's answers (whichever registered second discovers the
    // first; the one that dials first may spare the other its own find; the DHT may have
    // found it too: this counts R's answers).
    let via_rendezvous = "berty_node_replication_members_found_total{via=\"rendezvous\"}";
    let found = metric_or_zero(&a.process, via_rendezvous).await
        + metric_or_zero(&b.process, via_rendezvous).await;
    assert!(
        found >= 1.0,
        "neither member found the other through rendezvous"
    );
}

async fn members_find_each_other_through_the_dht(backend: Backend) {
    // R only runs the DHT and is no member; A and B know nothing but R's address, and meet
    // through the DHT (the group's discovery key; Kademlia's own lookups may connect them
    // first — tests/p2p_network.rs checks provider lookups on their own).
    let r = node_bootstrapped_to(backend, &[]).await;
    let mut a = node_bootstrapped_to(backend, &[&r]).await;
    let mut b = node_bootstrapped_to(backend, &[&r]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    a.send(&group, b"found you").await;
    b.join(&invite, b"b").await;
    let got = within(
        "B finds A under the group's discovery key and reads its message",
        wait_for_messages(&mut b, &group, 1),
    )
    .await;
    assert_eq!(got, vec![b"found you".to_vec()]);
}
