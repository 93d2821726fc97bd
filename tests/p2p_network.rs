//! Several real swarms on loopback (TCP and QUIC, port 0, each with its own key), started
//! through the library's `p2p::spawn` with configuration loaded the way the node loads it:
//! the DHT, the circuit relay (reservations, relayed connections, limits, bytes relayed) and
//! connection limits. Every wait polls a command until a condition holds, under an overall timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, future::Future, time::Duration};

use berty_node::{
    config::{NodeConfig, Sources},
    metrics::{self, Metrics},
    p2p::{self, relay_ledger::NO_EXTERNAL_ADDRESS, P2pSettings, Route, SwarmHandle},
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{identity::Keypair, multiaddr::Protocol, Multiaddr, PeerId, StreamProtocol};
use prometheus_client::registry::Registry;
use tokio::{sync::watch, task::JoinHandle};

/// Longest wait for any one condition.
const WAIT: Duration = Duration::from_secs(20);
/// Interval between two polls.
const POLL: Duration = Duration::from_millis(50);

/// One swarm and what the test inspects beside it.
struct TestNode {
    handle: SwarmHandle,
    registry: Registry,
    events: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<p2p::NetworkEvent>>,
    _shutdown: watch::Sender<bool>,
    _task: JoinHandle<()>,
}

impl TestNode {
    /// A node listening on loopback TCP and QUIC with test controls on, configured by the
    /// `BERTY_NODE__*` variables in `env` on top of the built-in defaults.
    async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(env, |_| {}).await
    }

    /// [`start`](Self::start), with AutoNAT probing within a second so that a relay confirms
    /// its loopback address (and starts serving reservations) as soon as a peer connects.
    async fn start_relay(env: &[(&str, &str)]) -> Self {
        Self::start_with(env, |settings| {
            settings.timings.autonat_boot_delay = Duration::from_millis(100);
            settings.timings.autonat_retry_interval = Duration::from_millis(300);
        })
        .await
    }

    async fn start_with(env: &[(&str, &str)], tune: impl FnOnce(&mut P2pSettings)) -> Self {
        let mut vars: HashMap<String, String> = [
            (
                "BERTY_NODE__P2P__LISTEN",
                "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
            ),
            ("BERTY_NODE__P2P__TEST_CONTROLS", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = NodeConfig::load(&Sources {
            env: Some(vars),
            ..Sources::default()
        })
        .expect("valid test configuration");
        let mut settings = P2pSettings::from_config(&config);
        tune(&mut settings);
        let (metrics, mut registry) = Metrics::new();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events_tx, events) = tokio::sync::mpsc::channel(1024);
        let (handle, task) = p2p::spawn(
            Keypair::generate_ed25519(),
            settings,
            &mut registry,
            metrics.p2p.clone(),
            events_tx,
            shutdown_rx,
        )
        .await
        .expect("swarm starts");
        Self {
            handle,
            registry,
            events: tokio::sync::Mutex::new(events),
            _shutdown: shutdown,
            _task: task,
        }
    }

    fn peer_id(&self) -> PeerId {
        self.handle.peer_id()
    }

    /// The listen address on `transport` (`tcp` or `quic-v1`), with `/p2p/<peer id>`.
    async fn addr(&self, transport: &str) -> Multiaddr {
        self.handle
            .info()
            .await
            .unwrap()
            .listen_addrs
            .into_iter()
            .find(|a| {
                a.iter().any(|p| match p {
                    Protocol::Tcp(_) => transport == "tcp",
                    Protocol::QuicV1 => transport == "quic-v1",
                    _ => false,
                }) && !a.iter().any(|p| p == Protocol::P2pCircuit)
            })
            .expect("listening on the transport")
    }

    async fn connected_to(&self, peer: PeerId) -> bool {
        self.handle
            .connected_peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == peer)
    }

    /// The value of one sample in the Prometheus text (0 when absent).
    fn metric(&self, sample: &str) -> u64 {
        let text = metrics::render(&self.registry).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map(|v| v.trim().parse::<f64>().unwrap() as u64)
            .unwrap_or(0)
    }
}

/// Polls `probe` every [`POLL`] until it yields a value; panics with `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `addr` without its `/p2p/<peer id>`.
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// Waits until `relay` has a confirmed external address and serves reservations.
async fn until_serving(relay: &TestNode) {
    eventually(
        "the relay confirms an external address and serves",
        || async {
            let info = relay.handle.info().await.unwrap();
            (info.relay_serving && !info.external_addrs.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_is_found_through_the_dht_of_a_bootstrap_node() {
    let a = TestNode::start(&[]).await;
    let a_addr = a.addr("tcp").await.to_string();
    let bootstrap = [("BERTY_NODE__P2P__BOOTSTRAP", a_addr.as_str())];
    let b = TestNode::start(&bootstrap).await;
    eventually("B bootstraps to A", || async {
        (a.connected_to(b.peer_id()).await && b.connected_to(a.peer_id()).await).then_some(())
    })
    .await;

    // C knows only A, and learns where B is from A's routing table.
    let c = TestNode::start(&bootstrap).await;
    let b_tcp = without_peer(&b.addr("tcp").await);
    let found = eventually("C finds B through A's DHT", || async {
        c.handle
            .find_peer(b.peer_id())
            .await
            .ok()
            .filter(|addrs| addrs.iter().any(|a| without_peer(a) == b_tcp))
    })
    .await;

    // The address found is one C can dial.
    let found_tcp = found
        .iter()
        .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
        .cloned()
        .expect("a TCP address for B");
    assert_eq!(c.handle.dial(found_tcp).await.unwrap(), b.peer_id());
    assert!(
        c.handle.find_peer(PeerId::random()).await.is_err(),
        "an unknown peer is not found"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gossip_reaches_the_subscribers_of_a_topic() {
    let a = TestNode::start(&[]).await;
    let a_addr = a.addr("tcp").await.to_string();
    let b = TestNode::start(&[("BERTY_NODE__P2P__BOOTSTRAP", a_addr.as_str())]).await;
    let topic = "bn1-test-topic".to_string();
    a.handle
        .set_topics(vec![topic.clone()], vec![])
        .await
        .unwrap();
    b.handle
        .set_topics(vec![topic.clone()], vec![])
        .await
        .unwrap();
    // Publishing before B's subscription reached A finds no peer: publish until B hears it
    // (each attempt carries a new payload, so none is deduplicated).
    let mut attempt = 0u32;
    let heard = eventually("B receives A's announcement", || {
        attempt += 1;
        a.handle
            .publish(topic.clone(), format!("heads {attempt}").into_bytes());
        async {
            let mut events = b.events.lock().await;
            while let Ok(event) = events.try_recv() {
                if let p2p::NetworkEvent::Gossip {
                    author,
                    source,
                    topic: t,
                    data,
                } = event
                {
                    assert_eq!(author, Some(source), "A wrote it and passed it on itself");
                    return Some((source, t, data));
                }
            }
            None
        }
    })
    .await;
    assert_eq!(heard.0, a.peer_id());
    assert_eq!(heard.1, topic);
    assert!(heard.2.starts_with(b"heads "));
}

#[tokio::test(flavor = "multi_thread")]
async fn providers_of_a_key_are_found_through_the_dht() {
    let r = TestNode::start(&[]).await;
    let r_addr = r.addr("tcp").await.to_string();
    let bootstrap = [("BERTY_NODE__P2P__BOOTSTRAP", r_addr.as_str())];
    let a = TestNode::start(&bootstrap).await;
    let b = TestNode::start(&bootstrap).await;
    eventually("A and B bootstrap to R", || async {
        (r.connected_to(a.peer_id()).await && r.connected_to(b.peer_id()).await).then_some(())
    })
    .await;
    let key = b"a group's discovery key".to_vec();
    a.handle.provide(key.clone()).await.unwrap();
    let found = eventually("B finds A as a provider of the key", || async {
        let found = b.handle.find_providers(key.clone()).await.ok()?;
        found.contains(&a.peer_id()).then_some(found)
    })
    .await;
    assert!(
        !found.contains(&b.peer_id()),
        "the asker is never its own provider"
    );
    assert!(
        b.handle
            .find_providers(b"nobody provides this".to_vec())
            .await
            .unwrap()
            .is_empty(),
        "a key nobody provides has no providers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn peers_refusing_direct_connections_meet_through_a_relay() {
    let relay = TestNode::start_relay(&[]).await;
    // Alone, the relay has no external address and says why it refuses reservations.
    let alone = relay.handle.relay_stats().await.unwrap();
    assert!(alone.enabled && !alone.serving, "{alone:?}");
    assert!(alone.external_addresses.is_empty());
    assert_eq!(alone.refusal(), Some(NO_EXTERNAL_ADDRESS));
    let a = TestNode::start(&[]).await;
    let b = TestNode::start(&[]).await;
    a.handle.refuse_direct(b.peer_id()).await.unwrap();
    b.handle.refuse_direct(a.peer_id()).await.unwrap();
    let relay_addr = relay.addr("tcp").await;
    a.handle.dial(relay_addr.clone()).await.unwrap();
    b.handle.dial(relay_addr.clone()).await.unwrap();
    until_serving(&relay).await;

    // A takes a reservation on the relay and is reachable at its circuit address.
    let circuit = a.handle.listen_on_relay(relay_addr).await.unwrap();
    assert!(
        circuit.iter().any(|p| p == Protocol::P2pCircuit),
        "{circuit}"
    );
    assert!(circuit
        .to_string()
        .ends_with(&format!("/p2p/{}", a.peer_id())));
    assert!(a
        .handle
        .info()
        .await
        .unwrap()
        .listen_addrs
        .contains(&circuit));

    // A direct dial between them is refused...
    let a_direct = a.addr("tcp").await;
    assert!(
        b.handle.dial(a_direct).await.is_err(),
        "direct dial refused"
    );
    assert!(b.metric("berty_node_p2p_connections_denied_total{reason=\"direct_refused\"}") >= 1);

    // ...but the relayed one works, and identify and ping run over it.
    assert_eq!(b.handle.dial(circuit).await.unwrap(), a.peer_id());
    for (from, to) in [(&b, &a), (&a, &b)] {
        let peer = eventually("identify and ping over the relayed connection", || async {
            from.handle
                .connected_peers()
                .await
                .unwrap()
                .into_iter()
                .find(|p| p.peer_id == to.peer_id())
                .filter(|p| p.agent_version.is_some() && p.rtt.is_some())
        })
        .await;
        assert!(peer.relayed_only(), "no direct connection: {peer:?}");
        assert!(peer.connections.iter().all(|c| c.route == Route::Relayed));
        assert!(peer.agent_version.unwrap().starts_with("berty-node/"));
    }

    let stats = relay.handle.relay_stats().await.unwrap();
    assert!(stats.enabled && stats.serving);
    // AutoNAT confirmed an address: the stats show it, and no refusal.
    assert!(!stats.external_addresses.is_empty(), "{stats:?}");
    assert_eq!(stats.refusal(), None);
    assert_eq!(stats.reserved_peers, vec![a.peer_id()]);
    assert_eq!(stats.reservations_accepted, 1);
    assert!(stats.circuits_accepted >= 1, "{stats:?}");
    assert!(relay.metric("berty_node_relay_circuits_total{outcome=\"accepted\"}") >= 1);
    assert!(
        relay.metric(
            "berty_node_p2p_connections_established_total{direction=\"inbound\",route=\"direct\"}"
        ) >= 2
    );
    assert!(b.metric("berty_node_p2p_connections_established_total{direction=\"outbound\",route=\"relayed\"}") >= 1);
}

/// What B pushes to A through the relay in the bytes-relayed tests.
const PUSHED: usize = 1 << 20;

/// A protocol of these tests only: A reads whatever B sends and says how much.
const SINK: StreamProtocol = StreamProtocol::new("/berty-node-test/sink/1.0.0");

/// A reserves on a relay reached over `transport`, B dials A through it and pushes
/// [`PUSHED`] bytes on a stream: the relay counts them (and the little else A and B exchange
/// over the relayed connection) once; A and B, only the relay's clients, count nothing.
async fn the_relay_counts_the_bytes_it_forwards(transport: &str) {
    let relay = TestNode::start_relay(&[]).await;
    let a = TestNode::start(&[]).await;
    let b = TestNode::start(&[]).await;
    a.handle.refuse_direct(b.peer_id()).await.unwrap();
    b.handle.refuse_direct(a.peer_id()).await.unwrap();
    let relay_addr = relay.addr(transport).await;
    a.handle.dial(relay_addr.clone()).await.unwrap();
    b.handle.dial(relay_addr.clone()).await.unwrap();
    until_serving(&relay).await;
    let circuit = a.handle.listen_on_relay(relay_addr).await.unwrap();
    assert_eq!(b.handle.dial(circuit).await.unwrap(), a.peer_id());
    let before = relay.metric("berty_node_relay_bytes_total");
    assert!(before < 64 * 1024, "before pushing: {before}");

    let mut incoming = a.handle.streams().accept(SINK).unwrap();
    let sink = tokio::spawn(async move {
        let (from, mut stream) = incoming.next().await.expect("a stream from B");
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.unwrap();
        (from, received.len())
    });
    let mut stream = b
        .handle
        .streams()
        .open_stream(a.peer_id(), SINK)
        .await
        .unwrap();
    let payload: Vec<u8> = (0..PUSHED).map(|i| (i % 251) as u8).collect();
    stream.write_all(&payload).await.unwrap();
    stream.close().await.unwrap();
    let (from, received) = tokio::time::timeout(WAIT, sink).await.unwrap().unwrap();
    assert_eq!((from, received), (b.peer_id(), PUSHED));
    assert!(
        b.handle
            .connected_peers()
            .await
            .unwrap()
            .iter()
            .find(|p| p.peer_id == a.peer_id())
            .is_some_and(|p| p.relayed_only()),
        "the bytes went through the relay"
    );

    // Every byte A received was read by the relay first; the rest is the relayed connection's
    // own framing and encryption, identify, ping and the circuit's setup.
    let relayed = eventually("the relay counts the bytes pushed", || async {
        let relayed = relay.metric("berty_node_relay_bytes_total");
        (relayed >= PUSHED as u64).then_some(relayed)
    })
    .await;
    println!("{transport}: {PUSHED} bytes pushed, the relay counted {relayed}");
    assert!(
        relayed < (PUSHED + PUSHED / 10) as u64,
        "{relayed} bytes counted for {PUSHED} pushed"
    );
    let stats = relay.handle.relay_stats().await.unwrap();
    assert!(stats.bytes_relayed >= relayed, "{stats:?}");
    for client in [&a, &b] {
        assert_eq!(client.metric("berty_node_relay_bytes_total"), 0);
        assert_eq!(client.handle.relay_stats().await.unwrap().bytes_relayed, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_counts_the_bytes_it_forwards_over_tcp() {
    the_relay_counts_the_bytes_it_forwards("tcp").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_counts_the_bytes_it_forwards_over_quic() {
    the_relay_counts_the_bytes_it_forwards("quic-v1").await;
}

/// A protocol of these tests only: the listener sends back whatever it is sent.
const ECHO: StreamProtocol = StreamProtocol::new("/berty-node-test/echo/1.0.0");

/// Answers every [`ECHO`] stream `node` accepts.
fn serve_echo(node: &TestNode) {
    let mut incoming = node.handle.streams().accept(ECHO).unwrap();
    tokio::spawn(async move {
        while let Some((_, mut stream)) = incoming.next().await {
            tokio::spawn(async move {
                let mut message = Vec::new();
                stream.read_to_end(&mut message).await?;
                stream.write_all(&message).await?;
                stream.close().await
            });
        }
    });
}

/// `from` sends `message` to `to` on an [`ECHO`] stream and reads it back.
async fn echo(from: &TestNode, to: &TestNode, message: &[u8]) -> Vec<u8> {
    let round_trip = async {
        let mut stream = from
            .handle
            .streams()
            .open_stream(to.peer_id(), ECHO)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(message).await.map_err(|e| e.to_string())?;
        stream.close().await.map_err(|e| e.to_string())?;
        let mut back = Vec::new();
        stream
            .read_to_end(&mut back)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(back)
    };
    tokio::time::timeout(WAIT, round_trip)
        .await
        .expect("the echo answers in time")
        .expect("the echo round trip")
}

/// A node (A) holding a relayed connection to B, through R, keeps it while its own relay
/// server changes status (serving once an external address is confirmed, no longer once it is
/// withdrawn): libp2p-relay 0.22 tells every connection of the change, relayed ones included,
/// whose placeholder handler panicked and took the connection down (rust-libp2p#5412).
#[tokio::test(flavor = "multi_thread")]
async fn a_relayed_connection_survives_a_relay_status_change() {
    let relay = TestNode::start_relay(&[]).await;
    // No AutoNAT probes of its own: A's relay status changes only when the test says so.
    let a = TestNode::start_with(&[], |settings| {
        settings.timings.autonat_boot_delay = Duration::from_secs(3600);
    })
    .await;
    let b = TestNode::start(&[]).await;
    a.handle.refuse_direct(b.peer_id()).await.unwrap();
    b.handle.refuse_direct(a.peer_id()).await.unwrap();
    let relay_addr = relay.addr("tcp").await;
    a.handle.dial(relay_addr.clone()).await.unwrap();
    b.handle.dial(relay_addr.clone()).await.unwrap();
    until_serving(&relay).await;
    let circuit = b.handle.listen_on_relay(relay_addr).await.unwrap();
    assert_eq!(a.handle.dial(circuit).await.unwrap(), b.peer_id());
    serve_echo(&b);
    assert_eq!(echo(&a, &b, b"before").await, b"before");
    let info = a.handle.info().await.unwrap();
    assert!(
        info.external_addrs.is_empty() && !info.relay_serving,
        "{info:?}"
    );

    let opened = |direction: &str| {
        format!("berty_node_p2p_connections_established_total{{direction=\"{direction}\",route=\"relayed\"}}")
    };
    let closed = |direction: &str| {
        format!("berty_node_p2p_connections_closed_total{{direction=\"{direction}\",route=\"relayed\"}}")
    };
    let external: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().unwrap();
    for (step, serving) in [("confirmed", true), ("withdrawn", false)] {
        if serving {
            a.handle
                .add_external_address(external.clone())
                .await
                .unwrap();
        } else {
            a.handle
                .remove_external_address(external.clone())
                .await
                .unwrap();
        }
        eventually(
            &format!("A's relay status follows its address {step}"),
            || async { (a.handle.info().await.unwrap().relay_serving == serving).then_some(()) },
        )
        .await;
        let message = format!("after the address was {step}");
        assert_eq!(echo(&a, &b, message.as_bytes()).await, message.as_bytes());
        // The same relayed connection carried it: none closed, none opened again.
        assert_eq!(
            (a.metric(&opened("outbound")), a.metric(&closed("outbound"))),
            (1, 0),
            "A, address {step}"
        );
        assert_eq!(
            (b.metric(&opened("inbound")), b.metric(&closed("inbound"))),
            (1, 0),
            "B, address {step}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_relay_denies_reservations_beyond_its_limit() {
    let relay = TestNode::start_relay(&[("BERTY_NODE__RELAY__MAX_RESERVATIONS", "1")]).await;
    let a = TestNode::start(&[]).await;
    let c = TestNode::start(&[]).await;
    let relay_addr = relay.addr("tcp").await;
    a.handle.dial(relay_addr.clone()).await.unwrap();
    c.handle.dial(relay_addr.clone()).await.unwrap();
    until_serving(&relay).await;

    a.handle.listen_on_relay(relay_addr.clone()).await.unwrap();
    let denied = c.handle.listen_on_relay(relay_addr).await;
    assert!(denied.is_err(), "second reservation denied: {denied:?}");

    // The relay counts a denial once its answer is sent, which C may read first.
    let stats = eventually("the denial counted", || async {
        let stats = relay.handle.relay_stats().await.unwrap();
        (stats.reservations_denied > 0).then_some(stats)
    })
    .await;
    assert_eq!(stats.reserved_peers, vec![a.peer_id()]);
    assert_eq!(
        (stats.reservations_accepted, stats.reservations_denied),
        (1, 1)
    );
    assert_eq!(
        relay.metric("berty_node_relay_reservations_total{outcome=\"accepted\"}"),
        1
    );
    assert_eq!(
        relay.metric("berty_node_relay_reservations_total{outcome=\"denied\"}"),
        1
    );
    assert_eq!(relay.metric("berty_node_relay_active_reservations"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_limits_refuse_extra_connections() {
    let limited = TestNode::start(&[
        ("BERTY_NODE__P2P__MAX_CONNECTIONS", "2"),
        ("BERTY_NODE__P2P__MAX_CONNECTIONS_PER_PEER", "1"),
    ])
    .await;
    let addr = limited.addr("tcp").await;
    let x = TestNode::start(&[]).await;
    let y = TestNode::start(&[]).await;
    let z = TestNode::start(&[]).await;
    x.handle.dial(addr.clone()).await.unwrap();
    y.handle.dial(addr.clone()).await.unwrap();
    eventually("both first peers connected", || async {
        (limited.connected_to(x.peer_id()).await && limited.connected_to(y.peer_id()).await)
            .then_some(())
    })
    .await;

    // A third peer, and a second connection from a connected peer, are both refused: the
    // limited node closes them as soon as the handshake tells it who they are.
    let _ = z.handle.dial(addr.clone()).await;
    let _ = x.handle.dial(limited.addr("quic-v1").await).await;
    eventually("two connections refused by the limits", || async {
        (limited.metric("berty_node_p2p_connections_denied_total{reason=\"limit\"}") >= 2)
            .then_some(())
    })
    .await;
    eventually("the third peer is not connected", || async {
        (!z.connected_to(limited.peer_id()).await).then_some(())
    })
    .await;
    let peers = limited.handle.connected_peers().await.unwrap();
    let ids: Vec<PeerId> = peers.iter().map(|p| p.peer_id).collect();
    assert_eq!(ids.len(), 2, "{peers:?}");
    assert!(ids.contains(&x.peer_id()) && ids.contains(&y.peer_id()));
    assert!(peers.iter().all(|p| p.connections.len() == 1), "{peers:?}");
    assert_eq!(limited.metric("berty_node_p2p_connections"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_disconnects_and_refuses_until_healed() {
    let a = TestNode::start(&[]).await;
    let b = TestNode::start(&[]).await;
    let a_addr = a.addr("tcp").await;
    b.handle.dial(a_addr.clone()).await.unwrap();
    a.handle.partition(b.peer_id()).await.unwrap();
    eventually("the partition closes the connection", || async {
        (!a.connected_to(b.peer_id()).await && !b.connected_to(a.peer_id()).await).then_some(())
    })
    .await;
    let _ = b.handle.dial(a_addr.clone()).await;
    eventually("a's refusal counted", || async {
        (a.metric("berty_node_p2p_connections_denied_total{reason=\"partition\"}") >= 1)
            .then_some(())
    })
    .await;
    assert!(!a.connected_to(b.peer_id()).await);

    a.handle.heal(b.peer_id()).await.unwrap();
    assert_eq!(b.handle.dial(a_addr).await.unwrap(), a.peer_id());
    eventually("connected again after healing", || async {
        a.connected_to(b.peer_id()).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn test_controls_are_off_unless_configured() {
    let node = TestNode::start(&[("BERTY_NODE__P2P__TEST_CONTROLS", "false")]).await;
    let peer = PeerId::random();
    for result in [
        node.handle.partition(peer).await,
        node.handle.refuse_direct(peer).await,
        node.handle.heal(peer).await,
        node.handle
            .add_external_address("/ip4/192.0.2.1/tcp/4001".parse().unwrap())
            .await,
    ] {
        assert!(
            matches!(result, Err(p2p::P2pError::TestControlsDisabled)),
            "{result:?}"
        );
    }
}
