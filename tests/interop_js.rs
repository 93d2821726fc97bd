//! Interoperability with an independent libp2p implementation: two js-libp2p peers (Node.js,
//! `tests/interop/js/interop.mjs`, exact package versions in its `package-lock.json`) against the
//! real `berty-node serve` binary on loopback.
//!
//! Peer A connects over TCP (Noise, Yamux, multistream-select), pings the node, reads the
//! node's identify record, reserves a slot on the node's circuit relay and serves the node's
//! Kademlia protocol. Peer B, a Kademlia client, asks the node's DHT for A and gets A's relayed
//! address back, then dials A through the relay and runs an echo and a ping over that relayed
//! connection. The relay limits the node announces (set below to values of our own) must reach
//! the JS side, and the node's admin API must count the reservation and the circuit.
//!
//! Needs Node.js >= 20 and `npm ci` in `tests/interop/js`: `scripts/ensure-js-interop.sh` sees to
//! both (`scripts/test` runs it). Without them the test fails; it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Only the process helpers: the rest of `common` is not needed here.
#[allow(dead_code)]
#[path = "common/node.rs"]
mod node;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use berty_node::p2p::behaviour::KAD_PROTOCOL;
use node::{http_get, NodeProcess};
use serde_json::Value;

const ADMIN_TOKEN: &str = "interop-js-admin";
/// The whole JS run (it bounds itself at 45 s).
const JS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the relay to serve.
const WAIT: Duration = Duration::from_secs(10);
/// Relay limits of our own, so that the JS side can only report them if they came from us.
const CIRCUIT_SECS: u64 = 600;
const CIRCUIT_BYTES: u64 = 8 * 1024 * 1024;

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/js")
}

/// Fails, never skips, when Node.js or the packages are missing.
fn require_js_toolchain() {
    let help = "run scripts/ensure-js-interop.sh (scripts/test does) to install Node.js >= 20 \
                and the JS packages";
    let output = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("Node.js is needed for this test and `node` cannot run ({e}): {help}")
        });
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(major >= 20, "Node.js {version:?} is older than 20: {help}");
    let installed = js_dir().join("node_modules/libp2p/package.json");
    assert!(
        installed.exists(),
        "{} is missing: {help}",
        installed.display()
    );
}

/// A loopback TCP port nobody listens on now (the node binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn relay_stats(node: &NodeProcess) -> Value {
    let (status, body) = http_get(node.admin_addr, "/admin/v1/relay", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn until_relay_serves(node: &NodeProcess) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = relay_stats(node).await;
        if stats["serving"] == Value::Bool(true) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never served: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the JS peers against `addr`; returns their report, or fails with their log.
async fn run_js_peers(addr: &str) -> Value {
    let dir = js_dir();
    let child = tokio::process::Command::new("node")
        .arg(dir.join("interop.mjs"))
        .arg(addr)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let output = tokio::time::timeout(JS_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the JS peers did not finish within {JS_TIMEOUT:?}"))
        .expect("wait for node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no JSON report from the JS peers ({}):\n{stdout}\n{stderr}",
                output.status
            )
        });
    assert!(
        output.status.success() && report["ok"] == Value::Bool(true),
        "the JS peers failed ({}): {report}\n--- their log ---\n{stderr}",
        output.status
    );
    report
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn js_libp2p_peers_ping_reserve_relay_dial_through_it_and_query_the_dht() {
    require_js_toolchain();
    let dir = tempfile::tempdir().unwrap();
    // The relay serves reservations only with a confirmed external address: the node's own
    // loopback address, so the port is chosen before the node starts.
    let tcp = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let (circuit_secs, circuit_bytes) = (CIRCUIT_SECS.to_string(), CIRCUIT_BYTES.to_string());
    let env: HashMap<String, String> = [
        ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
        ("BERTY_NODE__P2P__LISTEN", tcp.as_str()),
        ("BERTY_NODE__P2P__EXTERNAL_ADDRESSES", tcp.as_str()),
        (
            "BERTY_NODE__RELAY__MAX_CIRCUIT_DURATION_SECS",
            circuit_secs.as_str(),
        ),
        (
            "BERTY_NODE__RELAY__MAX_CIRCUIT_BYTES",
            circuit_bytes.as_str(),
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = NodeProcess::spawn(&[], &env, dir.path()).await;
    let node_id = node.peer_id.clone();
    let printed = node
        .p2p_addrs
        .iter()
        .find(|a| a.starts_with(&tcp))
        .unwrap_or_else(|| panic!("the node listens on {tcp}: {:?}", node.p2p_addrs));
    let addr = if printed.contains("/p2p/") {
        printed.clone()
    } else {
        format!("{printed}/p2p/{node_id}")
    };
    until_relay_serves(&node).await;

    let report = run_js_peers(&addr).await;
    eprintln!("JS report: {report}");
    let a = report["a_peer_id"].as_str().unwrap().to_string();
    let b = report["b_peer_id"].as_str().unwrap().to_string();
    assert_eq!(report["node_peer_id"], node_id.as_str());
    assert_ne!(a, b);

    // Ping: three round trips from A.
    let rtts = report["ping_rtts_ms"].as_array().unwrap();
    assert_eq!(rtts.len(), 3, "{report}");
    for rtt in rtts {
        let ms = rtt.as_f64().unwrap();
        assert!((0.0..5000.0).contains(&ms), "ping RTT {ms} ms");
    }

    // Identify: what the node announced about itself.
    let agent = report["node_agent_version"].as_str().unwrap();
    assert!(agent.starts_with("berty-node/"), "{agent}");
    let protocols = strings(&report["node_protocols"]);
    for expected in [
        KAD_PROTOCOL.as_ref(),
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
        "/libp2p/circuit/relay/0.2.0/hop",
    ] {
        assert!(
            protocols.iter().any(|p| p == expected),
            "the node does not announce {expected}: {protocols:?}"
        );
    }

    // Relay reservation: A's relayed address goes through our external address.
    let relayed_a = format!("{tcp}/p2p/{node_id}/p2p-circuit/p2p/{a}");
    let reserved = strings(&report["relay_reservation_addrs"]);
    assert!(reserved.contains(&relayed_a), "{reserved:?}");

    // DHT: the node answered FIND_NODE for A with A's relayed address.
    let dht = &report["dht_find_peer"];
    assert_eq!(dht["from"], node_id.as_str(), "{dht}");
    let found = strings(&dht["addrs"]);
    assert!(
        found
            .iter()
            .any(|f| f == &relayed_a || format!("{f}/p2p/{a}") == relayed_a),
        "the DHT gave {found:?}, not {relayed_a}"
    );

    // The relayed connection B -> A, with our limits.
    let conn = &report["relayed_connection"];
    assert_eq!(conn["remote_peer"], a.as_str(), "{conn}");
    assert!(
        conn["remote_addr"]
            .as_str()
            .unwrap()
            .contains(&format!("/p2p/{node_id}/p2p-circuit")),
        "{conn}"
    );
    assert_eq!(conn["limited"], true, "{conn}");
    assert_eq!(conn["limit_seconds"], CIRCUIT_SECS, "{conn}");
    let bytes: u64 = conn["limit_bytes"].as_str().unwrap().parse().unwrap();
    assert!(
        (CIRCUIT_BYTES - 64 * 1024..=CIRCUIT_BYTES).contains(&bytes),
        "byte limit {bytes}, configured {CIRCUIT_BYTES}"
    );

    // Traffic over it, seen from both ends.
    let echo = &report["echo"];
    assert_eq!(echo["matches"], true, "{echo}");
    assert_eq!(echo["bytes_received"], 1024, "{echo}");
    let seen = echo["seen_by_a"].as_array().unwrap();
    assert!(
        seen.iter().any(|s| s["remote_peer"] == b.as_str()
            && s["limited"] == true
            && s["remote_addr"].as_str().unwrap().contains("/p2p-circuit")),
        "A did not see B's echo over the relay: {echo}"
    );
    assert_eq!(report["relayed_ping"]["matches"], true, "{report}");

    // The node's own account of it.
    let stats = relay_stats(&node).await;
    assert!(
        stats["reservations_accepted"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["circuits_accepted"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["reservations_denied"], 0, "{stats}");
    assert_eq!(stats["circuits_denied"], 0, "{stats}");
    // js-libp2p's negotiation is recognised too: the echo crossed the relay both ways.
    assert!(
        stats["bytes_relayed"].as_u64().unwrap() >= 2 * 1024,
        "{stats}"
    );
}
