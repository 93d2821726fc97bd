//! Two real `berty-node serve` processes on loopback: the second bootstraps to the first from
//! `p2p.bootstrap`; both see the connection in the admin API and metrics, and
//! `InstanceGetConfiguration` reports the relay and mDNS state that actually runs. A relay
//! without an external address says so once in its log and in `/admin/v1/relay`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, process::Stdio, time::Duration};

use berty_node::{
    p2p::relay_ledger::NO_EXTERNAL_ADDRESS,
    proto::berty_protocol::instance_get_configuration::{self, SettingState},
};
use common::node::{http_get, NodeProcess};
use serde_json::Value;

const ADMIN_TOKEN: &str = "p2p-test-admin";
/// Longest wait for the two nodes to see each other.
const WAIT: Duration = Duration::from_secs(20);

fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    [
        ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
        (
            "BERTY_NODE__P2P__LISTEN",
            "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
        ),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Polls `/admin/v1/peers` of `node` until it lists `peer`.
async fn until_connected(node: &NodeProcess, peer: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(node.admin_addr, "/admin/v1/peers", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        if body.contains(peer) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never listed {peer}: {body}",
            node.peer_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_node_bootstraps_to_another_from_its_configuration() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = NodeProcess::spawn(&[], &env(&[]), dir_a.path()).await;
    let a_tcp = a
        .p2p_addrs
        .iter()
        .find(|addr| addr.contains("/tcp/"))
        .expect("A listens on TCP")
        .clone();
    let b = NodeProcess::spawn(
        &[],
        &env(&[
            ("BERTY_NODE__P2P__BOOTSTRAP", a_tcp.as_str()),
            ("BERTY_NODE__RELAY__ENABLED", "false"),
        ]),
        dir_b.path(),
    )
    .await;

    until_connected(&b, &a.peer_id).await;
    until_connected(&a, &b.peer_id).await;
    let (_, metrics) = http_get(a.admin_addr, "/metrics", None).await;
    assert!(
        metrics.contains(
            "berty_node_p2p_connections_established_total{direction=\"inbound\",route=\"direct\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("berty_node_libp2p_"),
        "libp2p's own metrics are exported"
    );

    // The relay server runs on A (the default) and not on B; both run the relay client, so
    // both report the relay on. mDNS is off by default.
    for node in [&a, &b] {
        let reply = node
            .grpc()
            .await
            .instance_get_configuration(instance_get_configuration::Request {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.relay_enabled, SettingState::Enabled as i32);
        assert_eq!(reply.mdns_enabled, SettingState::Disabled as i32);
    }
    let (status, relay_a) = http_get(a.admin_addr, "/admin/v1/relay", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{relay_a}");
    assert!(relay_a.contains("\"enabled\":true"), "{relay_a}");
    let (_, relay_b) = http_get(b.admin_addr, "/admin/v1/relay", Some(ADMIN_TOKEN)).await;
    assert!(relay_b.contains("\"enabled\":false"), "{relay_b}");
}

/// `/admin/v1/relay` of `node`, parsed.
async fn relay_json(node: &NodeProcess) -> Value {
    let (status, body) = http_get(node.admin_addr, "/admin/v1/relay", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A lone relay node (no peer, so AutoNAT confirms nothing) with `extra` configuration, its
/// log written to `log` in `dir`.
async fn lone_relay(dir: &std::path::Path, extra: &[(&str, &str)]) -> (NodeProcess, String) {
    let log = dir.join("node.log");
    let file = std::fs::File::create(&log).unwrap();
    let node = NodeProcess::spawn_logging_to(&[], &env(extra), dir, Stdio::from(file)).await;
    (node, log.to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_relay_without_external_address_says_why_it_refuses_reservations() {
    let dir = tempfile::tempdir().unwrap();
    let (node, log) = lone_relay(dir.path(), &[]).await;
    let relay = relay_json(&node).await;
    assert_eq!(relay["enabled"], true, "{relay}");
    assert_eq!(relay["serving"], false, "{relay}");
    assert_eq!(
        relay["external_addresses"],
        serde_json::json!([]),
        "{relay}"
    );
    assert_eq!(relay["reason"], NO_EXTERNAL_ADDRESS, "{relay}");
    // Logged once, at start (the addresses are printed after the swarm started).
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(NO_EXTERNAL_ADDRESS))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("WARN"), "{text}");

    // With an external address configured, the relay serves and the log has no warning.
    let dir = tempfile::tempdir().unwrap();
    let external = "/ip4/127.0.0.1/tcp/4001";
    let (node, log) = lone_relay(
        dir.path(),
        &[("BERTY_NODE__P2P__EXTERNAL_ADDRESSES", external)],
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let relay = loop {
        let relay = relay_json(&node).await;
        if relay["serving"] == true {
            break relay;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never serving: {relay}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        relay["external_addresses"],
        serde_json::json!([external]),
        "{relay}"
    );
    assert_eq!(relay["reason"], Value::Null, "{relay}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(NO_EXTERNAL_ADDRESS), "{text}");
}
