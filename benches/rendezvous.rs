//! Rendezvous server benchmark: registrations per second and discover latency, over the
//! network against a real `berty-node` process on SQLite or PostgreSQL.
//!
//! ```sh
//! cargo bench --bench rendezvous               # both backends, 100,000 registrations
//! cargo bench --bench rendezvous -- --quick    # 10,000 registrations
//! cargo bench --bench rendezvous -- postgres   # one backend
//! ```
//!
//! `CLIENTS` in-process peers (each its own identity and connection, since a registration
//! must come from the peer its record names) register every namespace `ns-<i>` for `i` below
//! `N / CLIENTS`, `WINDOW` requests in flight each. Then one more peer sends `DISCOVERS`
//! discovers of random namespaces one after another (each answer holds `CLIENTS`
//! registrations) and the latency percentiles are printed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/node.rs"]
#[allow(dead_code)]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use berty_node::rendezvous::{
    wire::{Discover, Message, MessageType, Register, ResponseStatus},
    RendezvousCodec, RENDEZVOUS_PROTOCOL,
};
use futures::StreamExt;
use libp2p::{
    core::PeerRecord,
    identity::Keypair,
    noise,
    request_response::{self, ProtocolSupport},
    swarm::SwarmEvent,
    tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use node::NodeProcess;
use rand::Rng;
use support::{percentile_ms, Figures, NodeStore, Options};

/// Peers registering at once.
const CLIENTS: usize = 16;
/// Requests in flight per registering peer.
const WINDOW: usize = 32;
/// Discovers timed.
const DISCOVERS: usize = 2_000;

type Client = Swarm<request_response::Behaviour<RendezvousCodec>>;

fn client(key: Keypair) -> Client {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("TCP transport")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                RendezvousCodec,
                [(RENDEZVOUS_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(60))
                    .with_max_concurrent_streams(WINDOW * 2),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

fn register(namespace: String, record: Vec<u8>) -> Message {
    Message {
        r#type: Some(MessageType::Register as i32),
        register: Some(Register {
            ns: Some(namespace),
            signed_peer_record: Some(record),
            ttl: Some(7200),
        }),
        ..Message::default()
    }
}

fn discover(namespace: String) -> Message {
    Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(Discover {
            ns: Some(namespace),
            limit: None,
            cookie: None,
        }),
        ..Message::default()
    }
}

fn is_ok(response: &Message) -> bool {
    let ok = ResponseStatus::Ok as i32;
    match (&response.register_response, &response.discover_response) {
        (Some(r), _) => r.status.unwrap_or(ok) == ok,
        (_, Some(d)) => d.status.unwrap_or(ok) == ok,
        _ => false,
    }
}

/// Sends `requests` to `server` with at most `window` in flight; returns each latency.
async fn run_requests(
    swarm: &mut Client,
    server: PeerId,
    addr: Multiaddr,
    mut requests: VecDeque<Message>,
    window: usize,
) -> Vec<Duration> {
    swarm.dial(addr).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = swarm.select_next_some().await {
            if peer_id == server {
                break;
            }
        }
    }
    let total = requests.len();
    let mut in_flight = std::collections::HashMap::new();
    let mut latencies = Vec::with_capacity(total);
    while latencies.len() < total {
        while in_flight.len() < window {
            let Some(request) = requests.pop_front() else {
                break;
            };
            let id = swarm.behaviour_mut().send_request(&server, request);
            in_flight.insert(id, Instant::now());
        }
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => {
                assert!(is_ok(&response), "refused: {response:?}");
                let sent = in_flight.remove(&request_id).expect("a request of ours");
                latencies.push(sent.elapsed());
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                panic!("request failed: {error}")
            }
            _ => {}
        }
    }
    latencies
}

async fn bench(backend: support::Backend, n: usize, figures: &mut Figures, options: &Options) {
    let name = backend.name();
    let store = NodeStore::create(backend, options).await;
    let mut env = store.env();
    env.insert(
        "BERTY_NODE__RENDEZVOUS__MAX_REGISTRATIONS_PER_PEER".into(),
        n.to_string(),
    );
    env.insert("BERTY_NODE__P2P__REPLICATION".into(), "false".into());
    let data_dir = store.data_dir();
    let process = NodeProcess::spawn(
        &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
        &env,
        store.dir(),
    )
    .await;
    let server: PeerId = process.peer_id.parse().unwrap();
    let addr: Multiaddr = process.p2p_addrs[0].parse().unwrap();

    let per_client = n / CLIENTS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let key = Keypair::generate_ed25519();
            let key_addr: Multiaddr = format!("/ip4/192.0.2.{}/tcp/4001", c + 1).parse().unwrap();
            // The record is signed once per peer, as a real client does between address
            // changes; the server verifies it on every registration.
            let record = PeerRecord::new_interop(&key, vec![key_addr])
                .unwrap()
                .into_signed_envelope()
                .into_protobuf_encoding();
            let mut swarm = client(key);
            let requests = (0..per_client)
                .map(|i| register(format!("ns-{i}"), record.clone()))
                .collect();
            run_requests(&mut swarm, server, addr, requests, WINDOW).await
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let took = started.elapsed();
    let registered = per_client * CLIENTS;
    latencies.sort();
    figures.add(
        name,
        "rendezvous register",
        format!(
            "{registered} registrations in {:.2} s = {:.0}/s ({CLIENTS} peers x {WINDOW} in flight; p50 {:.2} ms, p99 {:.2} ms)",
            took.as_secs_f64(),
            registered as f64 / took.as_secs_f64(),
            percentile_ms(&latencies, 50.0),
            percentile_ms(&latencies, 99.0),
        ),
    );
    let per_second = registered as f64 / took.as_secs_f64();
    figures.measure(name, "rendezvous_registrations", per_second, "reg/s");

    let mut rng = rand::thread_rng();
    let requests = (0..DISCOVERS)
        .map(|_| discover(format!("ns-{}", rng.gen_range(0..per_client))))
        .collect();
    let mut swarm = client(Keypair::generate_ed25519());
    let mut latencies = run_requests(&mut swarm, server, addr, requests, 1).await;
    latencies.sort();
    figures.add(
        name,
        "rendezvous discover",
        format!(
            "{DISCOVERS} discovers (one at a time, {CLIENTS} registrations each) with {registered} stored: p50 {:.2} ms, p99 {:.2} ms",
            percentile_ms(&latencies, 50.0),
            percentile_ms(&latencies, 99.0),
        ),
    );
    let p99 = percentile_ms(&latencies, 99.0);
    figures.measure(
        name,
        "rendezvous_discover_p99",
        p99,
        &format!("ms/{registered}"),
    );
    process.signal("TERM");
    process.wait(Duration::from_secs(10)).await;
}

#[tokio::main]
async fn main() {
    let options = Options::from_env();
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 10_000 } else { 100_000 };
    let mut figures = Figures::default();
    for backend in options.backends.clone() {
        bench(backend, n, &mut figures, &options).await;
    }
    figures.print_table();
}
