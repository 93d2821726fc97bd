//! Load benchmark: one `berty-node` holding many libp2p connections, relay circuits and live
//! gRPC subscribers while messages flow.
//!
//! ```sh
//! cargo bench --bench load               # SQLite: 1,000 connections, 100 circuits, 50 subscribers
//! cargo bench --bench load -- --quick    # 200 connections, 20 circuits, 10 subscribers
//! cargo bench --bench load -- postgres   # PostgreSQL instead (or `sqlite postgres` for both)
//! ```
//!
//! The real binary (bench profile; every port 0 but the p2p one, which is picked free first so
//! it can be announced as the external address the relay needs; default limits) is driven by
//! this process, in phases:
//!
//! 1. **connect**: `connections` lightweight swarms (TCP + Noise + Yamux; identify, ping, and
//!    gossipsub subscribed to one topic, whose open stream keeps the connection alive past the
//!    node's 60 s idle timeout), each its own peer id, dial the node, 64 dials in flight;
//! 2. **circuits**: `circuits` listener swarms take a reservation on the node's relay, then as
//!    many dialer swarms connect to them through `/p2p/<node>/p2p-circuit/p2p/<listener>` and
//!    ping over the circuit every second;
//! 3. **hold**: everything stays connected, idle, for `hold` (longer than the idle timeout);
//! 4. **messages**: `subscribers` `GroupMessageSubscribe` streams (one gRPC connection each)
//!    on a new group while `messages` 1 KiB messages are sent to it at `rate` per second (open
//!    loop, at most 64 in flight); every subscriber must get every message once, in log order,
//!    each with the payload sent under its id;
//! 5. **release**: the load peers stop; the node must drop every connection, circuit,
//!    reservation and peer actor; then it is stopped with SIGTERM.
//!
//! Throughout, a thread of its own polls `/healthz` every 100 ms (a new TCP connection each
//! time); the node's CPU (`/proc/<pid>/stat`, per thread) and memory (`VmRSS`, `VmHWM`) are
//! read at each phase, and `/metrics`, `/admin/v1/peers` and `/admin/v1/relay` say what the
//! node holds. Every load peer dials from a loopback address of its own (127.1.x.y, 127.2.x.y,
//! 127.3.x.y), as peers on the Internet would: the relay's per-IP rate limits (libp2p's
//! defaults, 60 reservations and 60 circuits per IP per minute) would otherwise refuse the
//! 61st.
//!
//! Exit status: 1 if a subscriber missed an event (or got one wrong), 2 if `/healthz` took
//! 100 ms or more, or the load was not reached or not released, 0 otherwise.
//!
//! Environment (defaults, then `--quick`): `BERTY_BENCH_CONNECTIONS` (1,000; 200),
//! `BERTY_BENCH_CIRCUITS` (100; 20), `BERTY_BENCH_SUBSCRIBERS` (50; 10),
//! `BERTY_BENCH_MESSAGES` (5,000; 1,000), `BERTY_BENCH_RATE` (250 per second),
//! `BERTY_BENCH_HOLD_SECS` (65; 3), `BERTY_BENCH_DIAL_WINDOW` (64), `BERTY_BENCH_ONE_IP`
//! (`1`: every load peer dials from 127.0.0.1; `dialers`: only the circuit dialers do),
//! `BERTY_BENCH_BACKENDS`, `BERTY_BENCH_DIR`, `BERTY_NODE_TEST_POSTGRES_URL`. The node inherits
//! the environment, so `BERTY_NODE__...` variables change its configuration. See
//! `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/node.rs"]
#[allow(dead_code)]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use berty_node::proto::berty_protocol::{
    self as pb, protocol_service_client::ProtocolServiceClient,
};
use futures::{future::BoxFuture, FutureExt, StreamExt};
use libp2p::{
    core::{
        transport::{DialOpts, ListenerId, TransportError, TransportEvent},
        upgrade::Version,
        Transport,
    },
    gossipsub, identify,
    identity::Keypair,
    multiaddr::Protocol,
    noise, ping, relay,
    swarm::{DialError, NetworkBehaviour, SwarmEvent},
    yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use node::{http_get, NodeProcess};
use support::{
    env_number, index_of, payload, percentile_ms, Backend, CpuMark, Figures, NodeStore, Options,
};
use tokio::sync::{watch, Semaphore};
use tonic::transport::Channel;

type Client = ProtocolServiceClient<Channel>;

/// Dials in flight while the connections ramp up (well under `p2p.max_pending_incoming`, 256),
/// unless `BERTY_BENCH_DIAL_WINDOW` says otherwise.
const DIAL_WINDOW: usize = 64;
/// Reservations and circuits being set up at once.
const RELAY_WINDOW: usize = 16;
/// Sends in flight at most; the pacing falls behind when the node is slower than the rate.
const SEND_WINDOW: usize = 64;
/// gRPC connections the senders share.
const SENDER_CONNECTIONS: usize = 4;
/// Interval of the `/healthz` probe.
const HEALTH_INTERVAL: Duration = Duration::from_millis(100);
/// What `/healthz` must stay under.
const HEALTH_BUDGET: Duration = Duration::from_millis(100);
/// Ping interval over each relay circuit (the traffic that keeps it active).
const CIRCUIT_PING: Duration = Duration::from_secs(1);
/// A circuit counts as active if a ping crossed it this recently.
const CIRCUIT_FRESH: Duration = Duration::from_secs(5);
/// How long any one setup step (a dial, a reservation, a circuit) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long subscribers may take to get the last messages once every send is acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The gossipsub topic load peers subscribe to (its stream keeps their connection open).
const KEEPALIVE_TOPIC: &str = "berty-load-keepalive";
/// Admin token of the node under load.
const ADMIN_TOKEN: &str = "load-bench-admin-token";

// ---------------------------------------------------------------------------------------------
// Scale and options.

/// How much load, from `--quick` and the environment.
#[derive(Debug, Clone)]
struct Scale {
    connections: usize,
    circuits: usize,
    subscribers: usize,
    messages: u64,
    rate: f64,
    hold: Duration,
    /// Which load peers dial from 127.0.0.1 instead of an address of their own.
    one_ip: OneIp,
    /// Dials in flight while the connections ramp up.
    dial_window: usize,
}

/// `BERTY_BENCH_ONE_IP`: unset or `0` (every load peer has its own address), `dialers` (only
/// the circuit dialers share 127.0.0.1), anything else (everyone shares it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OneIp {
    None,
    Dialers,
    All,
}

impl OneIp {
    fn from_env() -> Self {
        match std::env::var("BERTY_BENCH_ONE_IP").as_deref() {
            Err(_) | Ok("" | "0") => Self::None,
            Ok("dialers") => Self::Dialers,
            Ok(_) => Self::All,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::None => "a source IP per peer",
            Self::Dialers => "circuit dialers from 127.0.0.1",
            Self::All => "every peer from 127.0.0.1",
        }
    }
}

impl Scale {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var_os("BERTY_BENCH_QUICK").is_some();
        let (connections, circuits, subscribers, messages, hold) = if quick {
            (200, 20, 10, 1_000, 3)
        } else {
            // The hold outlasts the node's 60 s idle-connection timeout.
            (1_000, 100, 50, 5_000, 65)
        };
        Self {
            connections: env_number("BERTY_BENCH_CONNECTIONS").map_or(connections, |n| n as usize),
            circuits: env_number("BERTY_BENCH_CIRCUITS").map_or(circuits, |n| n as usize),
            subscribers: env_number("BERTY_BENCH_SUBSCRIBERS")
                .map_or(subscribers, |n| (n as usize).max(1)),
            messages: env_number("BERTY_BENCH_MESSAGES")
                .unwrap_or(messages)
                .max(1),
            rate: env_number("BERTY_BENCH_RATE").map_or(250.0, |r| r.max(1) as f64),
            hold: Duration::from_secs(env_number("BERTY_BENCH_HOLD_SECS").unwrap_or(hold)),
            one_ip: OneIp::from_env(),
            dial_window: env_number("BERTY_BENCH_DIAL_WINDOW")
                .map_or(DIAL_WINDOW, |n| (n as usize).max(1)),
        }
    }
}

/// The backends to run: those named (as for the other benches), SQLite when none is.
fn backends(options: &Options) -> Vec<Backend> {
    let named = std::env::args().skip(1).any(|a| !a.starts_with('-'))
        || std::env::var("BERTY_BENCH_BACKENDS").is_ok_and(|v| !v.trim().is_empty());
    if named {
        options.backends.clone()
    } else {
        vec![Backend::Sqlite]
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP transport that dials from a chosen source address.

/// Dials TCP from a source address of its own. libp2p's TCP transport binds its dials to the
/// unspecified address, so on loopback every peer would come from 127.0.0.1; the node's relay
/// limits reservations and circuits per IP. Dial only: load peers never listen on TCP.
struct SourceTcp {
    source: Ipv4Addr,
}

/// The socket address of `/ip4/A/tcp/P[/p2p/ID]`; `None` for anything else (relayed addresses
/// go to the relay transport).
fn tcp_target(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip = match parts.next()? {
        Protocol::Ip4(ip) => ip,
        _ => return None,
    };
    let port = match parts.next()? {
        Protocol::Tcp(port) => port,
        _ => return None,
    };
    match parts.next() {
        None | Some(Protocol::P2p(_)) if parts.next().is_none() => {
            Some(SocketAddr::new(ip.into(), port))
        }
        _ => None,
    }
}

impl Transport for SourceTcp {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(addr))
    }

    fn remove_listener(&mut self, _id: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(target) = tcp_target(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let source = self.source;
        Ok(async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source.into(), 0))?;
            let stream = socket.connect(target).await?;
            stream.set_nodelay(true)?;
            Ok(libp2p::tcp::tokio::TcpStream(stream))
        }
        .boxed())
    }

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

/// The loopback address load peer `index` of group `group` (1, 2, 3) dials from.
fn source_ip(scale: &Scale, group: u8, index: usize) -> Ipv4Addr {
    if scale.one_ip == OneIp::All || (scale.one_ip == OneIp::Dialers && group == 3) {
        return Ipv4Addr::LOCALHOST;
    }
    Ipv4Addr::new(127, group, (index / 250) as u8, (index % 250) as u8 + 1)
}

// ---------------------------------------------------------------------------------------------
// Load peers.

/// A peer holding a plain connection: identify, ping, and gossipsub subscribed to one topic.
#[derive(NetworkBehaviour)]
struct PlainBehaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
}

/// A relay listener or dialer: the relay client and ping.
#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    relay: relay::client::Behaviour,
    ping: ping::Behaviour,
}

fn plain_swarm(source: Ipv4Addr) -> Swarm<PlainBehaviour> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| {
            SourceTcp { source }
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
                .timeout(STEP_TIMEOUT)
        })
        .expect("transport")
        .with_behaviour(|key| {
            let config = gossipsub::ConfigBuilder::default()
                .heartbeat_interval(Duration::from_secs(10))
                .build()
                .expect("gossipsub config");
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                config,
            )
            .expect("gossipsub");
            gossipsub
                .subscribe(&gossipsub::IdentTopic::new(KEEPALIVE_TOPIC))
                .expect("subscribe");
            PlainBehaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/berty-load/1.0.0".to_owned(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                gossipsub,
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

fn relay_swarm(key: Keypair, source: Ipv4Addr) -> Swarm<RelayBehaviour> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            SourceTcp { source }
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
                .timeout(STEP_TIMEOUT)
        })
        .expect("transport")
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay| RelayBehaviour {
            relay,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(CIRCUIT_PING)),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

/// What the load peers saw, shared by their tasks.
#[derive(Default)]
struct Tally {
    /// Plain connections up.
    plain_up: AtomicUsize,
    /// Connections lost after they were up, by kind and cause.
    lost: Mutex<BTreeMap<String, u64>>,
    /// Reservations accepted.
    reservations: AtomicUsize,
    /// Circuits up (dialer connected to its listener through the node).
    circuits_up: AtomicUsize,
    /// Set-up failures, by step and reason (first words).
    failures: Mutex<BTreeMap<String, u64>>,
    /// Per circuit: milliseconds since the start of the run of the last ping over it.
    circuit_last_ping: Mutex<Vec<u64>>,
    /// Pings over circuits: (ms since start, round trip).
    circuit_rtts: Mutex<Vec<(u64, Duration)>>,
}

impl Tally {
    fn fail(&self, step: &str, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        let short: String = reason.chars().take(200).collect();
        *self
            .failures
            .lock()
            .unwrap()
            .entry(format!("{step}: {short}"))
            .or_default() += 1;
    }

    fn lose(&self, kind: &str, cause: impl std::fmt::Debug) {
        let cause = format!("{cause:?}");
        let short: String = cause.chars().take(120).collect();
        *self
            .lost
            .lock()
            .unwrap()
            .entry(format!("{kind}: {short}"))
            .or_default() += 1;
    }

    fn lost_total(&self) -> u64 {
        self.lost.lock().unwrap().values().sum()
    }
}

/// Why a dial failed, without the address (the same for every load peer).
fn dial_reason(error: &DialError) -> String {
    match error {
        DialError::Transport(errors) => errors
            .iter()
            .map(|(_, e)| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// One plain peer: dials `node`, reports when connected (or failed), then keeps the swarm
/// running until `stop`.
async fn run_plain(
    source: Ipv4Addr,
    node: Multiaddr,
    tally: Arc<Tally>,
    up: tokio::sync::oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut swarm = plain_swarm(source);
    if let Err(e) = swarm.dial(node) {
        tally.fail("dial", e);
        let _ = up.send(());
        return;
    }
    let mut up = Some(up);
    let deadline = tokio::time::sleep(STEP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = &mut deadline, if up.is_some() => {
                tally.fail("dial", "timed out");
                let _ = up.take().map(|u| u.send(()));
                return;
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { .. } => {
                    tally.plain_up.fetch_add(1, Ordering::Relaxed);
                    let _ = up.take().map(|u| u.send(()));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => {
                    tally.fail("dial", dial_reason(&error));
                    let _ = up.take().map(|u| u.send(()));
                    return;
                }
                SwarmEvent::ConnectionClosed { cause, num_established, .. } => {
                    if !*stop.borrow() {
                        tally.lose("plain", cause);
                    }
                    if num_established == 0 {
                        tally.plain_up.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
    }
}

/// One relay listener: takes a reservation on `node` (its address ends in `/p2p/<node>`),
/// reports it, then runs until `stop`.
async fn run_listener(
    key: Keypair,
    source: Ipv4Addr,
    node: Multiaddr,
    tally: Arc<Tally>,
    up: tokio::sync::oneshot::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut swarm = relay_swarm(key, source);
    if let Err(e) = swarm.listen_on(node.with(Protocol::P2pCircuit)) {
        tally.fail("reservation", e);
        let _ = up.send(false);
        return;
    }
    let mut up = Some(up);
    let deadline = tokio::time::sleep(STEP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = &mut deadline, if up.is_some() => {
                tally.fail("reservation", "timed out");
                let _ = up.take().map(|u| u.send(false));
                return;
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(
                    relay::client::Event::ReservationReqAccepted { renewal: false, .. },
                )) => {
                    tally.reservations.fetch_add(1, Ordering::Relaxed);
                    let _ = up.take().map(|u| u.send(true));
                }
                SwarmEvent::ListenerClosed { reason, .. } => {
                    if up.is_some() {
                        tally.fail("reservation", format!("{reason:?}"));
                        let _ = up.take().map(|u| u.send(false));
                        return;
                    }
                    if !*stop.borrow() {
                        tally.lose("reservation listener", reason);
                    }
                }
                SwarmEvent::ConnectionClosed { cause, endpoint, .. } if !*stop.borrow() => {
                    let kind = if endpoint.is_relayed() {
                        "listener circuit"
                    } else {
                        "listener to node"
                    };
                    tally.lose(kind, cause);
                }
                _ => {}
            }
        }
    }
}

/// One relay dialer: connects to `listener` through the node's relay at `circuit`, then pings
/// over the circuit until `stop`, noting each ping in slot `slot` of the tally.
struct CircuitDialer {
    slot: usize,
    source: Ipv4Addr,
    circuit: Multiaddr,
    listener: PeerId,
    started: Instant,
    tally: Arc<Tally>,
    stop: watch::Receiver<bool>,
}

impl CircuitDialer {
    /// Runs the dialer, reporting on `up` whether the circuit came up.
    async fn run(self, up: tokio::sync::oneshot::Sender<bool>) {
        let CircuitDialer {
            slot,
            source,
            circuit,
            listener,
            started,
            tally,
            mut stop,
        } = self;
        let mut swarm = relay_swarm(Keypair::generate_ed25519(), source);
        if let Err(e) = swarm.dial(circuit) {
            tally.fail("circuit", e);
            let _ = up.send(false);
            return;
        }
        let mut up = Some(up);
        let deadline = tokio::time::sleep(STEP_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                () = &mut deadline, if up.is_some() => {
                    tally.fail("circuit", "timed out");
                    let _ = up.take().map(|u| u.send(false));
                    return;
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == listener => {
                        tally.circuits_up.fetch_add(1, Ordering::Relaxed);
                        let _ = up.take().map(|u| u.send(true));
                    }
                    SwarmEvent::OutgoingConnectionError { error, peer_id, .. }
                    if up.is_some() && peer_id == Some(listener) =>
                {
                    tally.fail("circuit", dial_reason(&error));
                    let _ = up.take().map(|u| u.send(false));
                    return;
                }
                SwarmEvent::Behaviour(RelayBehaviourEvent::Ping(ping::Event {
                        peer,
                        result: Ok(rtt),
                        ..
                    })) if peer == listener => {
                        let at = started.elapsed().as_millis() as u64;
                        tally.circuit_last_ping.lock().unwrap()[slot] = at;
                        tally.circuit_rtts.lock().unwrap().push((at, rtt));
                    }
                    SwarmEvent::ConnectionClosed { peer_id, cause, endpoint, .. } => {
                        if !*stop.borrow() {
                            let kind = if peer_id == listener { "dialer circuit" } else if endpoint.is_relayed() { "dialer relayed (other)" } else { "dialer to node" };
                            tally.lose(kind, cause);
                        }
                        if peer_id == listener {
                            tally.circuits_up.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The `/healthz` probe.

/// One `/healthz` probe: phase, when (since the run started), latency, and whether it
/// answered 200.
type Probe = (usize, Duration, Duration, bool);

/// Polls `/healthz` every [`HEALTH_INTERVAL`] on a thread of its own (so the load generator's
/// runtime cannot delay it) until `stop`; returns the samples.
fn spawn_health_probe(
    admin: SocketAddr,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> std::thread::JoinHandle<Vec<Probe>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("probe runtime");
        runtime.block_on(async {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                // Spawned, so that a refused connection (a dead node) is a failed probe.
                let answer = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio::spawn(http_get(admin, "/healthz", None)),
                )
                .await;
                let took = at.elapsed();
                let ok = matches!(answer, Ok(Ok((200, _))));
                samples.push((phase.load(Ordering::Relaxed), at - started, took, ok));
                tokio::time::sleep_until((at + HEALTH_INTERVAL).into()).await;
            }
            samples
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Reading the node.

/// `(VmRSS, VmHWM)` of a process, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The sum of every sample of metric `name` (all label sets) in the Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.rsplit_once(' ')?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.trim().parse::<f64>().ok()
        })
        .sum::<f64>()
        + 0.0
}

/// One labelled sample, such as `name{outcome="denied"}` (0 when absent).
fn sample(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn admin_json(node: &NodeProcess, path: &str) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    let (status, body) = http_get(node.admin_addr, path, Some(ADMIN_TOKEN)).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "GET {path}: {body}");
    (serde_json::from_str(&body).expect("admin JSON"), took)
}

/// What the node says it holds: from `/metrics`, `/admin/v1/peers` and `/admin/v1/relay`.
async fn node_view(node: &NodeProcess) -> String {
    let (_, text) = http_get(node.admin_addr, "/metrics", None).await;
    let (peers, peers_took) = admin_json(node, "/admin/v1/peers").await;
    let (relay, _) = admin_json(node, "/admin/v1/relay").await;
    let peers = peers["peers"].as_array().cloned().unwrap_or_default();
    let connections: usize = peers
        .iter()
        .map(|p| p["connections"].as_array().map_or(0, Vec::len))
        .sum();
    let actors = peers.iter().filter(|p| !p["replication"].is_null()).count();
    format!(
        "metrics: p2p_connections {}, denied {} (limit {}), relay active reservations {} / circuits {}, reservations denied {}, circuits denied {}; \
         /admin/v1/peers: {} peers, {} connections, {} peer actors (answered in {:.0} ms); /admin/v1/relay: serving {}, active_reservations {}, active_circuits {}, circuits_accepted {}, circuits_denied {}",
        metric(&text, "berty_node_p2p_connections"),
        metric(&text, "berty_node_p2p_connections_denied_total"),
        sample(&text, "berty_node_p2p_connections_denied_total{reason=\"limit\"}"),
        metric(&text, "berty_node_relay_active_reservations"),
        metric(&text, "berty_node_relay_active_circuits"),
        sample(&text, "berty_node_relay_reservations_total{outcome=\"denied\"}"),
        sample(&text, "berty_node_relay_circuits_total{outcome=\"denied\"}"),
        peers.len(),
        connections,
        actors,
        peers_took.as_secs_f64() * 1e3,
        relay["serving"],
        relay["active_reservations"],
        relay["active_circuits"],
        relay["circuits_accepted"],
        relay["circuits_denied"],
    )
}

// ---------------------------------------------------------------------------------------------
// Messages and subscribers.

/// One event as a subscriber got it.
struct Got {
    cursor: u64,
    id: Vec<u8>,
    /// The parent is the previous event's id (local writes chain linearly).
    follows: bool,
    index: Option<u64>,
    intact: bool,
    at: Instant,
}

/// Reads a subscription until `n` events, an error or `deadline`.
async fn subscriber(
    mut stream: tonic::Streaming<pb::group_message_subscribe::Reply>,
    n: u64,
    deadline: watch::Receiver<Option<Instant>>,
) -> (Vec<Got>, Option<String>) {
    let mut got: Vec<Got> = Vec::with_capacity(n as usize);
    let mut previous: Option<Vec<u8>> = None;
    let mut deadline = deadline;
    let mut limit: Option<Instant> = *deadline.borrow_and_update();
    while (got.len() as u64) < n {
        let next = tokio::select! {
            next = stream.message() => next,
            changed = deadline.changed(), if limit.is_none() => {
                limit = match changed {
                    Ok(()) => *deadline.borrow_and_update(),
                    Err(_) => Some(Instant::now()),
                };
                continue;
            }
            () = tokio::time::sleep_until(limit.unwrap_or_else(Instant::now).into()), if limit.is_some() => {
                return (got, Some("timed out waiting for the rest".to_owned()));
            }
        };
        let reply = match next {
            Ok(Some(reply)) => reply,
            Ok(None) => return (got, Some("stream ended".to_owned())),
            Err(status) => return (got, Some(format!("stream error: {status}"))),
        };
        let at = Instant::now();
        let Some(event) = reply.event else {
            return (got, Some("reply without an event".to_owned()));
        };
        let Some(store_event) = event.group_store_event else {
            return (got, Some("event without group_store_event".to_owned()));
        };
        let Some(base) = store_event.event_base else {
            return (got, Some("event without event_base".to_owned()));
        };
        let follows = previous
            .as_ref()
            .is_none_or(|p| base.parent_ids.len() == 1 && &base.parent_ids[0] == p);
        let index = index_of(&event.payload);
        let intact = index.is_some_and(|i| event.payload == payload(i));
        previous = Some(base.id.clone());
        got.push(Got {
            cursor: store_event.cursor,
            id: base.id,
            follows,
            index,
            intact,
            at,
        });
    }
    (got, None)
}

/// One acknowledged send: when it started, how long until the reply, and the event id.
struct Sent {
    start: Instant,
    latency: Duration,
    id: Vec<u8>,
}

/// Checks one subscriber's events against what was sent; returns the problems (empty when it
/// got every message once, in log order, intact) and its delivery latencies.
fn check_delivery(
    got: &[Got],
    sent: &[Option<Sent>],
    reference: &[Vec<u8>],
    problems: &mut Vec<String>,
    latencies: &mut Vec<Duration>,
) {
    let n = sent.len();
    let mut seen = vec![false; n];
    let mut last_cursor = 0;
    for (position, event) in got.iter().enumerate() {
        if position > 0 && event.cursor <= last_cursor {
            problems.push(format!(
                "cursor {} after {last_cursor} at position {position}",
                event.cursor
            ));
        }
        last_cursor = event.cursor;
        if !event.follows {
            problems.push(format!(
                "event at position {position} does not follow its predecessor"
            ));
        }
        let Some(index) = event.index.filter(|i| (*i as usize) < n) else {
            problems.push(format!(
                "event at position {position} has no known payload index"
            ));
            continue;
        };
        let index = index as usize;
        if seen[index] {
            problems.push(format!("message {index} delivered twice"));
        }
        seen[index] = true;
        match &sent[index] {
            Some(s) if s.id == event.id && event.intact => {
                latencies.push(event.at.saturating_duration_since(s.start));
            }
            Some(_) => problems.push(format!("message {index}: wrong id or payload")),
            None => problems.push(format!("message {index} delivered but its send failed")),
        }
        if reference.get(position).is_some_and(|r| *r != event.id) {
            problems.push(format!(
                "position {position}: a different event than the first subscriber got"
            ));
        }
    }
    let missing: Vec<usize> = (0..n).filter(|i| !seen[*i] && sent[*i].is_some()).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "missed {} message(s), e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    problems.truncate(6);
}

// ---------------------------------------------------------------------------------------------
// The run.

/// A free loopback TCP port (bound and released: the node binds it again at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn stats_ms(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "none".to_owned();
    }
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile_ms(sorted, 50.0),
        percentile_ms(sorted, 99.0),
        sorted.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    )
}

fn mem_line(pid: u32) -> String {
    let (rss, hwm) = memory_mib(pid);
    format!(
        "RSS {rss:.0} MiB (peak {hwm:.0} MiB), {} fds",
        open_fds(pid)
    )
}

/// Outcome of one backend's run.
#[derive(Default)]
struct Verdict {
    missed_events: bool,
    other_failures: Vec<String>,
}

/// The phases of a run, in order; the `/healthz` probe tags each sample with the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Connect,
    Circuits,
    Hold,
    Messages,
    Drain,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Idle,
        Phase::Connect,
        Phase::Circuits,
        Phase::Hold,
        Phase::Messages,
        Phase::Drain,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Connect => "connect",
            Phase::Circuits => "circuits",
            Phase::Hold => "hold",
            Phase::Messages => "messages",
            Phase::Drain => "drain",
        }
    }
}

/// A gRPC connection to the node.
async fn grpc_channel(node: &NodeProcess) -> Channel {
    Channel::from_shared(format!("http://{}", node.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("connect gRPC")
}

/// One backend's run: the node, the load peers' shared state, and what went wrong.
struct Run<'a> {
    b: &'static str,
    scale: &'a Scale,
    swarms: tokio::runtime::Handle,
    node: NodeProcess,
    node_addr: Multiaddr,
    pid: u32,
    server_pids: Vec<u32>,
    started: Instant,
    phase: Arc<AtomicUsize>,
    tally: Arc<Tally>,
    stop_peers: watch::Sender<bool>,
    verdict: Verdict,
}

impl<'a> Run<'a> {
    /// Starts the node: p2p on a free loopback port that is also its external address (the
    /// relay serves reservations only with one), every other port 0, an admin token.
    async fn start(store: &NodeStore, scale: &'a Scale, swarms: tokio::runtime::Handle) -> Run<'a> {
        let listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let mut env = store.env();
        for (key, value) in [
            ("BERTY_NODE__P2P__LISTEN", listen.as_str()),
            ("BERTY_NODE__P2P__EXTERNAL_ADDRESSES", listen.as_str()),
            ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
        ] {
            env.insert(key.to_owned(), value.to_owned());
        }
        let data_dir = store.data_dir();
        let node = NodeProcess::spawn(
            &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
            &env,
            store.dir(),
        )
        .await;
        let node_addr = format!("{listen}/p2p/{}", node.peer_id).parse().unwrap();
        Run {
            b: store.backend.name(),
            scale,
            swarms,
            pid: node.child.id(),
            node,
            node_addr,
            server_pids: store.server_pids().await,
            started: Instant::now(),
            phase: Arc::new(AtomicUsize::new(Phase::Idle as usize)),
            tally: Arc::new(Tally {
                circuit_last_ping: Mutex::new(vec![0; scale.circuits]),
                ..Tally::default()
            }),
            stop_peers: watch::channel(false).0,
            verdict: Verdict::default(),
        }
    }

    fn enter(&self, phase: Phase) -> CpuMark {
        self.phase.store(phase as usize, Ordering::Relaxed);
        CpuMark::now(self.pid, &self.server_pids)
    }

    fn fail(&mut self, failure: String) {
        println!("{} FAIL {failure}", self.b);
        self.verdict.other_failures.push(failure);
    }

    /// Phase 1, the plain connections: `dial_window` dials in flight.
    async fn connect(&mut self, figures: &mut Figures) {
        let cpu = self.enter(Phase::Connect);
        let scale = self.scale;
        let ramp = Instant::now();
        let window = Arc::new(Semaphore::new(scale.dial_window));
        let mut waits = Vec::new();
        for i in 0..scale.connections {
            let permit = window.clone().acquire_owned().await.unwrap();
            let (up_tx, up_rx) = tokio::sync::oneshot::channel();
            self.swarms.spawn(run_plain(
                source_ip(scale, 1, i),
                self.node_addr.clone(),
                self.tally.clone(),
                up_tx,
                self.stop_peers.subscribe(),
            ));
            waits.push(tokio::spawn(async move {
                let _ = up_rx.await;
                drop(permit);
            }));
        }
        for wait in waits {
            wait.await.unwrap();
        }
        let ramp_time = ramp.elapsed();
        let up = self.tally.plain_up.load(Ordering::Relaxed);
        figures.add(
            self.b,
            "connections_up",
            format!(
                "{up}/{} in {:.1} s ({:.0}/s, {} dials in flight); node {}",
                scale.connections,
                ramp_time.as_secs_f64(),
                up as f64 / ramp_time.as_secs_f64(),
                scale.dial_window,
                mem_line(self.pid)
            ),
        );
        figures.cpu(self.b, "connect", cpu.report(0, &self.server_pids));
    }

    /// Phase 2, the circuits: each listener takes a reservation, then its dialer connects to
    /// it through the node; [`RELAY_WINDOW`] pairs at a time.
    async fn open_circuits(&mut self, figures: &mut Figures) {
        let cpu = self.enter(Phase::Circuits);
        let scale = self.scale;
        let relay_start = Instant::now();
        let window = Arc::new(Semaphore::new(RELAY_WINDOW));
        let mut setups = Vec::new();
        for i in 0..scale.circuits {
            let permit = window.clone().acquire_owned().await.unwrap();
            let key = Keypair::generate_ed25519();
            let listener = key.public().to_peer_id();
            let (reserved_tx, reserved_rx) = tokio::sync::oneshot::channel();
            self.swarms.spawn(run_listener(
                key,
                source_ip(scale, 2, i),
                self.node_addr.clone(),
                self.tally.clone(),
                reserved_tx,
                self.stop_peers.subscribe(),
            ));
            let dialer = CircuitDialer {
                slot: i,
                source: source_ip(scale, 3, i),
                circuit: self
                    .node_addr
                    .clone()
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(listener)),
                listener,
                started: self.started,
                tally: self.tally.clone(),
                stop: self.stop_peers.subscribe(),
            };
            let swarms = self.swarms.clone();
            setups.push(tokio::spawn(async move {
                if reserved_rx.await.unwrap_or(false) {
                    let (up_tx, up_rx) = tokio::sync::oneshot::channel();
                    swarms.spawn(dialer.run(up_tx));
                    let _ = up_rx.await;
                }
                drop(permit);
            }));
        }
        for setup in setups {
            setup.await.unwrap();
        }
        figures.add(
            self.b,
            "circuits_up",
            format!(
                "{} reservations, {} circuits of {} in {:.1} s; node {}",
                self.tally.reservations.load(Ordering::Relaxed),
                self.tally.circuits_up.load(Ordering::Relaxed),
                scale.circuits,
                relay_start.elapsed().as_secs_f64(),
                mem_line(self.pid)
            ),
        );
        figures.cpu(self.b, "circuits", cpu.report(0, &self.server_pids));
        self.print_setup_failures();
    }

    fn print_setup_failures(&self) {
        let failures = self.tally.failures.lock().unwrap().clone();
        if !failures.is_empty() {
            println!("{} set-up failures: {failures:?}", self.b);
        }
    }

    /// Phase 3: everything stays connected, idle, for `hold`.
    async fn hold(&mut self, figures: &mut Figures) {
        let cpu = self.enter(Phase::Hold);
        tokio::time::sleep(self.scale.hold).await;
        let held = node_view(&self.node).await;
        figures.add(
            self.b,
            "held",
            format!(
                "after {:.0} s idle: {} plain connections up, {} circuits up, {} lost; node {}; {held}",
                self.scale.hold.as_secs_f64(),
                self.tally.plain_up.load(Ordering::Relaxed),
                self.tally.circuits_up.load(Ordering::Relaxed),
                self.tally.lost_total(),
                mem_line(self.pid)
            ),
        );
        figures.cpu(self.b, "hold", cpu.report(0, &self.server_pids));
    }

    /// Phase 4: the subscribers on a new group, the paced sends, then the check of every
    /// subscriber's events. Returns when the sends started.
    async fn messages(&mut self, figures: &mut Figures) -> Instant {
        let scale = self.scale;
        let b = self.b;
        let group = Client::new(grpc_channel(&self.node).await)
            .group_create(pb::group_create::Request {})
            .await
            .expect("GroupCreate")
            .into_inner()
            .group_pub_key;
        let (deadline_tx, deadline_rx) = watch::channel(None);
        let mut readers = Vec::new();
        for _ in 0..scale.subscribers {
            // A connection each, as separate clients would have.
            let mut client =
                Client::new(grpc_channel(&self.node).await).max_decoding_message_size(64 << 20);
            let stream = client
                .group_message_subscribe(pb::group_message_subscribe::Request {
                    group_pub_key: group.clone(),
                    ..Default::default()
                })
                .await
                .expect("GroupMessageSubscribe")
                .into_inner();
            let deadline_rx = deadline_rx.clone();
            let n = scale.messages;
            readers.push(tokio::spawn(async move {
                let _client = client;
                subscriber(stream, n, deadline_rx).await
            }));
        }
        let mut channels = Vec::new();
        for _ in 0..SENDER_CONNECTIONS {
            channels.push(grpc_channel(&self.node).await);
        }

        let cpu = self.enter(Phase::Messages);
        let send_start = Instant::now();
        let sends = send_paced(scale, &channels, group.into()).await;
        let send_time = send_start.elapsed();
        self.enter(Phase::Drain);
        let _ = deadline_tx.send(Some(Instant::now() + DRAIN_TIMEOUT));
        let mut results = Vec::new();
        for reader in readers {
            results.push(reader.await.unwrap());
        }
        let drained = send_start.elapsed();
        let messages_cpu = cpu.report(sends.acked(), &self.server_pids);

        let acked = sends.acked();
        let mut latencies: Vec<Duration> = sends.sent.iter().flatten().map(|s| s.latency).collect();
        latencies.sort();
        figures.add(
            b,
            "send_1KiB",
            format!(
                "{acked}/{} acknowledged in {:.1} s ({:.0} msg/s, target {:.0}/s, {} sends started late), latency {}",
                scale.messages,
                send_time.as_secs_f64(),
                acked as f64 / send_time.as_secs_f64(),
                scale.rate,
                sends.late,
                stats_ms(&latencies),
            ),
        );
        if !sends.errors.is_empty() {
            self.fail(format!(
                "{} sends failed: {:?}",
                scale.messages - acked,
                sends.errors
            ));
        }

        let reference: Vec<Vec<u8>> = results
            .first()
            .map(|(got, _)| got.iter().map(|g| g.id.clone()).collect())
            .unwrap_or_default();
        let mut delivery_latencies = Vec::new();
        let mut complete = 0;
        for (k, (got, ended)) in results.iter().enumerate() {
            let mut problems: Vec<String> = ended.iter().cloned().collect();
            check_delivery(
                got,
                &sends.sent,
                &reference,
                &mut problems,
                &mut delivery_latencies,
            );
            if problems.is_empty() {
                complete += 1;
            } else {
                self.verdict.missed_events = true;
                println!(
                    "{b} FAIL subscriber {k}: {} of {acked} events; {}",
                    got.len(),
                    problems.join("; ")
                );
            }
        }
        delivery_latencies.sort();
        figures.add(
            b,
            "delivery",
            format!(
                "{complete}/{} subscribers got all {acked} messages once, in order, intact ({} deliveries, all in {:.1} s from the first send); send-to-delivery {}",
                scale.subscribers,
                delivery_latencies.len(),
                drained.as_secs_f64(),
                stats_ms(&delivery_latencies)
            ),
        );
        figures.cpu(b, "messages", messages_cpu);
        send_start
    }

    /// After the messages: what is still up, from both sides, and the circuits' round trips
    /// while the messages flowed.
    async fn check_still_up(&mut self, figures: &mut Figures, messages_from: Instant) {
        let scale = self.scale;
        let now_ms = self.started.elapsed().as_millis() as u64;
        let fresh = self
            .tally
            .circuit_last_ping
            .lock()
            .unwrap()
            .iter()
            .filter(|at| {
                **at > 0 && now_ms - (**at).min(now_ms) <= CIRCUIT_FRESH.as_millis() as u64
            })
            .count();
        let from_ms = (messages_from - self.started).as_millis() as u64;
        let mut rtts: Vec<Duration> = self
            .tally
            .circuit_rtts
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from_ms)
            .map(|(_, rtt)| *rtt)
            .collect();
        rtts.sort();
        let view = node_view(&self.node).await;
        let plain_up = self.tally.plain_up.load(Ordering::Relaxed);
        let circuits_up = self.tally.circuits_up.load(Ordering::Relaxed);
        figures.add(
            self.b,
            "end",
            format!(
                "{plain_up} plain connections and {circuits_up} circuits up, {fresh} circuits pinged in the last {} s, {} lost during the run; circuit ping round trip while messages flowed {}; node {}; {view}",
                CIRCUIT_FRESH.as_secs(),
                self.tally.lost_total(),
                stats_ms(&rtts),
                mem_line(self.pid)
            ),
        );
        let lost = self.tally.lost.lock().unwrap().clone();
        if !lost.is_empty() {
            self.fail(format!("connections lost: {lost:?}"));
        }
        if plain_up < scale.connections || circuits_up < scale.circuits || fresh < scale.circuits {
            self.fail(format!(
                "load not reached: {plain_up}/{} connections, {circuits_up}/{} circuits ({fresh} active)",
                scale.connections, scale.circuits
            ));
        }
        self.print_setup_failures();
        let (_, bench_hwm) = memory_mib(std::process::id());
        println!("{} load generator: peak RSS {bench_hwm:.0} MiB", self.b);
    }

    /// `/healthz` over the whole run, per phase and in all.
    fn health_report(&mut self, samples: &[Probe], figures: &mut Figures) {
        let mut all: Vec<Duration> = samples.iter().map(|s| s.2).collect();
        all.sort();
        for phase in Phase::ALL {
            let mut in_phase: Vec<Duration> = samples
                .iter()
                .filter(|s| s.0 == phase as usize)
                .map(|s| s.2)
                .collect();
            in_phase.sort();
            println!(
                "{} healthz during {}: {} probes, {}",
                self.b,
                phase.name(),
                in_phase.len(),
                stats_ms(&in_phase)
            );
        }
        let over: Vec<&Probe> = samples
            .iter()
            .filter(|s| s.2 >= HEALTH_BUDGET || !s.3)
            .collect();
        figures.add(
            self.b,
            "healthz",
            format!(
                "{} probes over {:.0} s, {}; {} at or over {} ms or failed",
                all.len(),
                self.started.elapsed().as_secs_f64(),
                stats_ms(&all),
                over.len(),
                HEALTH_BUDGET.as_millis()
            ),
        );
        if !over.is_empty() {
            let worst: Vec<String> = over
                .iter()
                .take(10)
                .map(|(phase, at, took, ok)| {
                    format!(
                        "{:.1} s ({}) {:.0} ms{}",
                        at.as_secs_f64(),
                        Phase::ALL[*phase].name(),
                        took.as_secs_f64() * 1e3,
                        if *ok { "" } else { " FAILED" }
                    )
                })
                .collect();
            self.fail(format!(
                "/healthz at or over {} ms (or failed) {} times: {}",
                HEALTH_BUDGET.as_millis(),
                over.len(),
                worst.join(", ")
            ));
        }
    }

    /// The load peers go away: the node must drop every connection, circuit and reservation,
    /// and the peer actors with them.
    async fn release(&mut self, figures: &mut Figures) {
        let _ = self.stop_peers.send(true);
        let releasing = Instant::now();
        let mut released = false;
        while releasing.elapsed() < Duration::from_secs(20) {
            let (_, text) = http_get(self.node.admin_addr, "/metrics", None).await;
            if metric(&text, "berty_node_p2p_connections") == 0.0
                && metric(&text, "berty_node_relay_active_circuits") == 0.0
                && metric(&text, "berty_node_relay_active_reservations") == 0.0
            {
                released = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let release_time = releasing.elapsed();
        // Give the peer actors a moment to stop after their connections.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = node_view(&self.node).await;
        figures.add(
            self.b,
            "release",
            format!(
                "{} {:.1} s after the load peers stopped; node {}; {after}",
                if released {
                    "all released"
                } else {
                    "NOT all released"
                },
                release_time.as_secs_f64(),
                mem_line(self.pid)
            ),
        );
        if !released {
            self.fail("connections, circuits or reservations not released".to_owned());
        }
    }

    /// Stops the node with SIGTERM (or says it died already).
    async fn stop(mut self) -> Verdict {
        if let Ok(Some(status)) = self.node.child.try_wait() {
            self.fail(format!("the node died during the run: {status}"));
            return self.verdict;
        }
        let stopping = Instant::now();
        self.node.signal("TERM");
        while stopping.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.node.child.try_wait().expect("wait node") {
                println!(
                    "{} node stopped with SIGTERM in {:.2} s: {status}",
                    self.b,
                    stopping.elapsed().as_secs_f64()
                );
                return self.verdict;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.fail("node still running 30 s after SIGTERM".to_owned());
        self.verdict
    }
}

/// What the paced sends got.
struct Sends {
    /// Per message index: the acknowledged send, or `None` if it failed.
    sent: Vec<Option<Sent>>,
    /// Failed sends, by status.
    errors: BTreeMap<String, u64>,
    /// Sends that started more than 50 ms after their slot (the node fell behind the rate).
    late: u64,
}

impl Sends {
    fn acked(&self) -> u64 {
        self.sent.iter().flatten().count() as u64
    }
}

/// Sends `scale.messages` 1 KiB messages to `group` at `scale.rate` per second (open loop, at
/// most [`SEND_WINDOW`] in flight), over `channels` in turn.
async fn send_paced(scale: &Scale, channels: &[Channel], group: Arc<[u8]>) -> Sends {
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / scale.rate);
    let window = Arc::new(Semaphore::new(SEND_WINDOW));
    let mut late = 0;
    let mut tasks = Vec::with_capacity(scale.messages as usize);
    for index in 0..scale.messages {
        let due = start + interval.mul_f64(index as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = window.clone().acquire_owned().await.unwrap();
        if Instant::now() > due + Duration::from_millis(50) {
            late += 1;
        }
        let mut client = Client::new(channels[index as usize % channels.len()].clone());
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let reply = client
                .group_message_send(pb::group_message_send::Request {
                    group_pub_key: group.to_vec(),
                    payload: payload(index),
                })
                .await;
            let latency = start.elapsed();
            drop(permit);
            reply.map(|r| Sent {
                start,
                latency,
                id: r.into_inner().event_id,
            })
        }));
    }
    let mut sends = Sends {
        sent: Vec::with_capacity(tasks.len()),
        errors: BTreeMap::new(),
        late,
    };
    for task in tasks {
        match task.await.unwrap() {
            Ok(sent) => sends.sent.push(Some(sent)),
            Err(status) => {
                *sends
                    .errors
                    .entry(format!("{:?}: {}", status.code(), status.message()))
                    .or_default() += 1;
                sends.sent.push(None);
            }
        }
    }
    sends
}

async fn run(
    backend: Backend,
    options: &Options,
    scale: &Scale,
    swarms: tokio::runtime::Handle,
    figures: &mut Figures,
) -> Verdict {
    let store = NodeStore::create(backend, options).await;
    let mut run = Run::start(&store, scale, swarms).await;
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = spawn_health_probe(
        run.node.admin_addr,
        run.phase.clone(),
        stop_probe.clone(),
        run.started,
    );
    figures.add(run.b, "node_idle", mem_line(run.pid));
    tokio::time::sleep(Duration::from_secs(3)).await;
    run.connect(figures).await;
    run.open_circuits(figures).await;
    run.hold(figures).await;
    let messages_from = run.messages(figures).await;
    run.check_still_up(figures, messages_from).await;
    stop_probe.store(true, Ordering::Relaxed);
    let samples = probe.join().expect("probe thread");
    run.health_report(&samples, figures);
    run.release(figures).await;
    run.stop().await
}

fn main() {
    let options = Options::from_env();
    let scale = Scale::from_env();
    let backends = backends(&options);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The load peers' swarms run apart from the gRPC clients, so neither queues behind the other.
    let swarms = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("load-peers")
        .enable_all()
        .build()
        .expect("swarm runtime");
    println!(
        "berty-node load benchmark: {} connections, {} circuits, {} subscribers, {} messages at {}/s, hold {} s, {}, backends {:?}",
        scale.connections,
        scale.circuits,
        scale.subscribers,
        scale.messages,
        scale.rate,
        scale.hold.as_secs(),
        scale.one_ip.name(),
        backends.iter().map(|b| b.name()).collect::<Vec<_>>()
    );
    println!(
        "machine: {} cores, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        support::load_average()
    );
    let started = Instant::now();
    let mut figures = Figures::default();
    let mut verdicts = Vec::new();
    for backend in backends {
        let verdict = runtime.block_on(run(
            backend,
            &options,
            &scale,
            swarms.handle().clone(),
            &mut figures,
        ));
        verdicts.push((backend, verdict));
    }
    println!(
        "done in {:.0} s, load average {} at the end",
        started.elapsed().as_secs_f64(),
        support::load_average()
    );
    figures.print_table();
    swarms.shutdown_timeout(Duration::from_secs(5));
    let mut code = 0;
    for (backend, verdict) in &verdicts {
        if verdict.missed_events {
            println!("{}: FAIL a subscriber missed events", backend.name());
            code = 1;
        }
        for failure in &verdict.other_failures {
            println!("{}: FAIL {failure}", backend.name());
            if code == 0 {
                code = 2;
            }
        }
    }
    if code == 0 {
        println!("PASS: every subscriber got every event; /healthz stayed under 100 ms");
    }
    std::process::exit(code);
}
