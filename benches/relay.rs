//! Relay throughput: one circuit through the `berty-node` relay against a plain rust-libp2p
//! relay, both measured in the same run (SPEC §13: at least 90% of the plain relay).
//!
//! ```sh
//! cargo bench --bench relay              # 256 MiB per transfer, 5 rounds per relay
//! cargo bench --bench relay -- --quick   # 32 MiB, 2 rounds
//! ```
//!
//! Two relays run on loopback, each a process of its own:
//!
//! - **node**: the real binary (bench profile; SQLite store in a temporary data dir; every
//!   port 0 but the p2p one, picked free first so it can be announced as the external address
//!   without which the relay refuses reservations);
//! - **plain**: this bench binary again, with `BERTY_BENCH_PLAIN_RELAY=1`: a Swarm of TCP
//!   (nodelay) + Noise + Yamux, as the node's, and libp2p's `relay::Behaviour` alone, built with
//!   the node's own `relay_server_config` from the same layered configuration (so
//!   `BERTY_NODE__RELAY__*` variables apply to both). It prints `peer_id` and `listen` lines
//!   and runs until killed or until its stdin closes.
//!
//! After one untimed warm-up transfer each (at most 32 MiB), the relays take turns (plain,
//! node, node, plain, plain, node, ...) so both see the same machine load and neither always
//! runs after the other. Per relay and round, in this process: a listener swarm reserves on the
//! relay, a dialer swarm connects to it through `/p2p/<relay>/p2p-circuit/p2p/<listener>`,
//! opens one stream (`libp2p-stream`) and writes N MiB; the listener reads to the end and
//! acknowledges the byte count. The time runs from the first byte written to the
//! acknowledgement. Printed: each round's throughput and the relay process's CPU
//! (`/proc/<pid>/stat`, user + system) per GiB relayed, with a `cpu:` line of where the
//! machine's CPU went (its `node` is the relay process measured, whichever it is); then the
//! medians, their ratio (`measure any relay_throughput_ratio`) and the summary table.
//!
//! Exit status: 1 if a reservation, circuit or transfer failed, timed out or was cut short.
//!
//! Environment: `BERTY_BENCH_RELAY_MIB` (MiB per transfer: 256; `--quick` 32),
//! `BERTY_BENCH_RELAY_ROUNDS` (rounds per relay: 5; `--quick` 2), `BERTY_BENCH_DIR` (parent
//! of the data dir), `BERTY_NODE_BIN` (another `berty-node` build). See `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/node.rs"]
#[allow(dead_code)]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use berty_node::{
    config::{NodeConfig, Overrides, Sources},
    p2p::settings::{relay_server_config, IDLE_CONNECTION_TIMEOUT},
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    multiaddr::Protocol, noise, relay, swarm::NetworkBehaviour, swarm::SwarmEvent, tcp, yamux,
    Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use node::NodeProcess;
use support::{env_number, Backend, CpuMark, Figures, NodeStore, Options};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    task::JoinHandle,
};

/// Set in the environment of the re-executed bench binary that runs the plain relay.
const PLAIN_RELAY_ENV: &str = "BERTY_BENCH_PLAIN_RELAY";
/// The protocol of the measured stream.
const PROTOCOL: StreamProtocol = StreamProtocol::new("/berty-bench/relay-throughput/1.0.0");
/// Bytes per write of the dialer and per read of the listener.
const CHUNK: usize = 256 * 1024;
/// How long a relay may take to start, a reservation, a circuit or a stream to open.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one transfer may take, from the first byte to the acknowledgement.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: u64 = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------------------
// Scale.

/// How much to transfer, from `--quick` and the environment.
struct Scale {
    /// Bytes per transfer.
    bytes: u64,
    /// Transfers per relay.
    rounds: usize,
}

impl Scale {
    fn from_env() -> Self {
        let quick = std::env::args().any(|a| a == "--quick")
            || std::env::var_os("BERTY_BENCH_QUICK").is_some();
        let (mib, rounds) = if quick { (32, 2) } else { (256, 5) };
        Self {
            bytes: env_number("BERTY_BENCH_RELAY_MIB").unwrap_or(mib).max(1) * MIB,
            rounds: env_number("BERTY_BENCH_RELAY_ROUNDS").map_or(rounds, |n| n.max(1) as usize),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The plain relay (the re-executed bench binary).

/// The relay configuration both relays run with: the node's, from the same layers (defaults,
/// then `BERTY_NODE__*` variables of this process).
fn relay_config() -> berty_node::config::RelayConfig {
    let sources = Sources {
        overrides: Overrides {
            data_dir: Some(std::env::temp_dir().join("berty-bench-relay-unused")),
            ..Overrides::default()
        },
        ..Sources::default()
    };
    NodeConfig::load(&sources)
        .expect("relay configuration")
        .relay
}

/// Runs the plain relay on `127.0.0.1:0` until its stdin closes; prints `peer_id <id>` and
/// `listen <addr>` once listening.
fn plain_relay_main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The swarm runs in a task of the runtime, as the node's does, not on the main thread.
    let relay = runtime.spawn(async {
        let config = relay_server_config(&relay_config());
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|key| relay::Behaviour::new(key.public().to_peer_id(), config))
            .expect("relay behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
            .build();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("listen address"))
            .expect("listen");
        // The bench holds our stdin: when it goes, so do we.
        std::thread::spawn(|| {
            let mut sink = std::io::sink();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
            std::process::exit(0);
        });
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                // The relay serves reservations only once it has an external address.
                swarm.add_external_address(address.clone());
                println!("peer_id {}", swarm.local_peer_id());
                println!("listen {address}");
            }
        }
    });
    let _ = runtime.block_on(relay);
}

/// A relay process and the address (ending in `/p2p/<relay>`) to reserve on.
struct Relay {
    name: &'static str,
    addr: Multiaddr,
    pid: u32,
}

/// The plain relay child process; killed on drop (and it exits when its stdin closes).
struct PlainRelay {
    child: tokio::process::Child,
}

impl PlainRelay {
    async fn spawn(env: &[(String, String)]) -> (Self, Relay) {
        let mut child = tokio::process::Command::new(
            std::env::current_exe().expect("path of the bench binary"),
        )
        .env(PLAIN_RELAY_ENV, "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the plain relay");
        let pid = child.id().expect("plain relay pid");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let printed = tokio::time::timeout(STEP_TIMEOUT, async {
            let (mut peer, mut listen) = (None, None);
            while let Some(line) = lines.next_line().await.expect("read the plain relay") {
                match line.split_once(' ') {
                    Some(("peer_id", id)) => peer = Some(id.parse::<PeerId>().expect("peer id")),
                    Some(("listen", addr)) => {
                        listen = Some(addr.parse::<Multiaddr>().expect("addr"))
                    }
                    _ => {}
                }
                if let (Some(peer), Some(listen)) = (peer, listen.clone()) {
                    return Some(listen.with(Protocol::P2p(peer)));
                }
            }
            None
        })
        .await
        .expect("the plain relay printed its address in time")
        .expect("the plain relay exited before printing its address");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let relay = Relay {
            name: "plain",
            addr: printed,
            pid,
        };
        (Self { child }, relay)
    }
}

impl Drop for PlainRelay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `BERTY_NODE__RELAY__*` settings both relays need for this transfer size: circuits must
/// carry the transfer (both directions count, with Noise and Yamux framing) and outlive it.
fn relay_env(bytes: u64) -> Vec<(String, String)> {
    let config = relay_config();
    let mut env = Vec::new();
    let needed = bytes + bytes / 32 + MIB;
    if config.max_circuit_bytes != 0 && config.max_circuit_bytes < needed {
        env.push((
            "BERTY_NODE__RELAY__MAX_CIRCUIT_BYTES".to_owned(),
            needed.to_string(),
        ));
    }
    let lasts = 2 * (STEP_TIMEOUT + TRANSFER_TIMEOUT).as_secs();
    if config.max_circuit_duration_secs < lasts {
        env.push((
            "BERTY_NODE__RELAY__MAX_CIRCUIT_DURATION_SECS".to_owned(),
            lasts.to_string(),
        ));
    }
    env
}

// ---------------------------------------------------------------------------------------------
// The circuit and the transfer.

/// The listener and the dialer: a relay client and whole streams.
#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    relay: relay::client::Behaviour,
    stream: libp2p_stream::Behaviour,
}

fn peer_swarm() -> Swarm<PeerBehaviour> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay| PeerBehaviour {
            relay,
            stream: libp2p_stream::Behaviour::new(),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build()
}

/// Polls a swarm whose events no longer matter, so its connections make progress.
async fn drive(mut swarm: Swarm<PeerBehaviour>) {
    loop {
        swarm.select_next_some().await;
    }
}

/// A listener with a reservation on a relay and a dialer connected to it through the relay;
/// both swarms stop when this is dropped.
struct Circuit {
    listener: PeerId,
    incoming: Option<libp2p_stream::IncomingStreams>,
    dialer: libp2p_stream::Control,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Circuit {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Runs `step` for at most [`STEP_TIMEOUT`].
async fn step<T>(
    what: &str,
    step: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| format!("{what} timed out after {} s", STEP_TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {e}"))
}

impl Circuit {
    /// Reserves on `relay` and connects a dialer to the listener through it.
    async fn open(relay: &Multiaddr) -> Result<Self, String> {
        let mut listener = peer_swarm();
        let listener_id = *listener.local_peer_id();
        let incoming = listener
            .behaviour()
            .stream
            .new_control()
            .accept(PROTOCOL)
            .map_err(|e| e.to_string())?;
        listener
            .listen_on(relay.clone().with(Protocol::P2pCircuit))
            .map_err(|e| format!("listen on the relay: {e}"))?;
        step("reservation", async {
            loop {
                match listener.select_next_some().await {
                    SwarmEvent::Behaviour(PeerBehaviourEvent::Relay(
                        relay::client::Event::ReservationReqAccepted { .. },
                    )) => return Ok(()),
                    SwarmEvent::ListenerClosed { reason, .. } => {
                        return Err(format!("listener closed: {reason:?}"))
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(format!("dial to the relay failed: {error}"))
                    }
                    _ => {}
                }
            }
        })
        .await?;
        let mut tasks = vec![tokio::spawn(drive(listener))];

        let mut dialer = peer_swarm();
        let control = dialer.behaviour().stream.new_control();
        let through = relay
            .clone()
            .with(Protocol::P2pCircuit)
            .with(Protocol::P2p(listener_id));
        dialer
            .dial(through)
            .map_err(|e| format!("dial through the relay: {e}"))?;
        let connected = step("circuit", async {
            loop {
                match dialer.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == listener_id => {
                        return Ok(())
                    }
                    SwarmEvent::OutgoingConnectionError {
                        peer_id: Some(peer),
                        error,
                        ..
                    } if peer == listener_id => return Err(error.to_string()),
                    _ => {}
                }
            }
        })
        .await;
        tasks.push(tokio::spawn(drive(dialer)));
        let circuit = Self {
            listener: listener_id,
            incoming: Some(incoming),
            dialer: control,
            tasks,
        };
        connected.map(|()| circuit)
    }

    /// One transfer of `bytes` through `relay` on a circuit of its own, not measured.
    async fn warm_up(relay: &Multiaddr, bytes: u64) -> Result<(), String> {
        Self::open(relay).await?.transfer(bytes).await.map(drop)
    }

    /// Sends `bytes` on one stream from the dialer to the listener; returns the time from the
    /// first byte written to the listener's acknowledgement of them all.
    async fn transfer(&mut self, bytes: u64) -> Result<Duration, String> {
        let incoming = self.incoming.take().ok_or("one transfer per circuit")?;
        let mut receiver = tokio::spawn(receive(incoming));
        let mut stream = step("open stream", async {
            self.dialer
                .open_stream(self.listener, PROTOCOL)
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        let sent = tokio::time::timeout(TRANSFER_TIMEOUT, async {
            let chunk = vec![0x5a_u8; CHUNK];
            let started = Instant::now();
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK as u64) as usize;
                stream
                    .write_all(&chunk[..n])
                    .await
                    .map_err(|e| format!("write after {} bytes: {e}", bytes - left))?;
                left -= n as u64;
            }
            stream.close().await.map_err(|e| format!("close: {e}"))?;
            let mut ack = [0u8; 8];
            stream
                .read_exact(&mut ack)
                .await
                .map_err(|e| format!("acknowledgement: {e}"))?;
            Ok::<_, String>((started.elapsed(), u64::from_le_bytes(ack)))
        })
        .await;
        let received = match tokio::time::timeout(Duration::from_secs(5), &mut receiver).await {
            Ok(Ok(received)) => received,
            Ok(Err(e)) => Err(format!("listener task: {e}")),
            Err(_) => Err("listener still reading".to_owned()),
        };
        receiver.abort();
        let (took, acknowledged) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(e)) => return Err(format!("transfer failed: {e}; listener: {received:?}")),
            Err(_) => {
                return Err(format!(
                    "transfer timed out after {} s; listener: {received:?}",
                    TRANSFER_TIMEOUT.as_secs()
                ))
            }
        };
        if acknowledged != bytes {
            return Err(format!(
                "cut short: the listener got {acknowledged} of {bytes} bytes"
            ));
        }
        Ok(took)
    }
}

/// The listener's side: takes one stream, reads it to the end, acknowledges the byte count.
async fn receive(mut incoming: libp2p_stream::IncomingStreams) -> Result<u64, String> {
    let (_, mut stream) = incoming.next().await.ok_or("no inbound stream")?;
    let mut buffer = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => return Err(format!("read after {total} bytes: {e}")),
        }
    }
    stream
        .write_all(&total.to_le_bytes())
        .await
        .map_err(|e| format!("acknowledge: {e}"))?;
    stream.close().await.map_err(|e| format!("close: {e}"))?;
    Ok(total)
}

// ---------------------------------------------------------------------------------------------
// The run.

/// One transfer through one relay.
struct Round {
    /// MiB per second.
    mib_per_s: f64,
    /// CPU seconds of the relay process per GiB relayed.
    cpu_per_gib: f64,
}

/// A free loopback TCP port (bound and released: the node binds it again at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `1234567.8` as `1,234,568`.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn gbit_per_s(mib_per_s: f64) -> f64 {
    mib_per_s * MIB as f64 * 8.0 / 1e9
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One transfer through `relay`, with the relay process's CPU.
async fn measure_round(relay: &Relay, round: usize, bytes: u64) -> Result<Round, String> {
    let mut circuit = Circuit::open(&relay.addr).await?;
    let cpu = CpuMark::now(relay.pid, &[]);
    let took = circuit.transfer(bytes).await?;
    let cpu_seconds = cpu.cpu_seconds(&[]);
    let where_cpu = cpu.report(0, &[]);
    drop(circuit);
    let mib_per_s = bytes as f64 / MIB as f64 / took.as_secs_f64();
    let cpu_per_gib = cpu_seconds / (bytes as f64 / GIB);
    println!(
        "{} round {}: {} MiB in {:.2} s = {} MiB/s ({:.2} Gbit/s); relay CPU {cpu_seconds:.2} s = {cpu_per_gib:.2} s/GiB",
        relay.name,
        round + 1,
        bytes / MIB,
        took.as_secs_f64(),
        grouped(mib_per_s),
        gbit_per_s(mib_per_s),
    );
    // `node` in this line is the relay process, whichever it is.
    println!("{} round {} cpu: {where_cpu}", relay.name, round + 1);
    Ok(Round {
        mib_per_s,
        cpu_per_gib,
    })
}

/// Starts both relays, alternates them for the rounds and prints the figures; returns the
/// exit status.
async fn run(scale: &Scale, options: &Options, figures: &mut Figures) -> i32 {
    let env = relay_env(scale.bytes);
    let (plain_process, plain) = PlainRelay::spawn(&env).await;

    let store = NodeStore::create(Backend::Sqlite, options).await;
    let listen = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let mut node_env = store.env();
    node_env.extend(env.iter().cloned());
    for (key, value) in [
        ("BERTY_NODE__P2P__LISTEN", listen.as_str()),
        ("BERTY_NODE__P2P__EXTERNAL_ADDRESSES", listen.as_str()),
        ("BERTY_NODE__RELAY__ENABLED", "true"),
    ] {
        node_env.insert(key.to_owned(), value.to_owned());
    }
    let data_dir = store.data_dir();
    let node_process = NodeProcess::spawn(
        &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
        &node_env,
        store.dir(),
    )
    .await;
    let node = Relay {
        name: "node",
        addr: format!("{listen}/p2p/{}", node_process.peer_id)
            .parse()
            .expect("node address"),
        pid: node_process.child.id(),
    };
    println!("plain relay {} (pid {})", plain.addr, plain.pid);
    println!("node relay {} (pid {})", node.addr, node.pid);
    // Let the node finish starting (its first AutoNAT and DHT work) before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let relays = [&plain, &node];
    for relay in relays {
        if let Err(e) = Circuit::warm_up(&relay.addr, scale.bytes.min(32 * MIB)).await {
            println!("FAIL {} warm-up: {e}", relay.name);
            return 1;
        }
    }
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for round in 0..scale.rounds {
        // Plain first in even rounds, node first in odd ones: neither always follows the other.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let relay = relays[which];
            match measure_round(relay, round, scale.bytes).await {
                Ok(measured) => rounds[which].push(measured),
                Err(e) => {
                    println!("FAIL {} round {}: {e}", relay.name, round + 1);
                    return 1;
                }
            }
        }
    }

    let summary = |rounds: &[Round]| {
        let mut rates: Vec<f64> = rounds.iter().map(|r| r.mib_per_s).collect();
        let mut cpu: Vec<f64> = rounds.iter().map(|r| r.cpu_per_gib).collect();
        let all = rates
            .iter()
            .map(|r| grouped(*r))
            .collect::<Vec<_>>()
            .join(", ");
        (median(&mut rates), median(&mut cpu), all)
    };
    let (plain_rate, plain_cpu, plain_all) = summary(&rounds[0]);
    let (node_rate, node_cpu, node_all) = summary(&rounds[1]);
    let ratio = node_rate / plain_rate.max(1e-9);
    for (name, rate, cpu, all) in [
        ("plain", plain_rate, plain_cpu, &plain_all),
        ("node", node_rate, node_cpu, &node_all),
    ] {
        figures.add(
            "any",
            &format!("relay_{name}"),
            format!(
                "median {} MiB/s ({:.2} Gbit/s) over {} rounds of {} MiB [{all}]; relay CPU {cpu:.2} s/GiB",
                grouped(rate),
                gbit_per_s(rate),
                scale.rounds,
                scale.bytes / MIB
            ),
        );
    }
    figures.add(
        "any",
        "relay_one_circuit",
        format!(
            "node {} MiB/s ({:.2} Gbit/s) vs plain {} MiB/s ({:.2} Gbit/s): ratio {ratio:.2} (target >= 0.90); relay CPU node {node_cpu:.2} s/GiB, plain {plain_cpu:.2} s/GiB",
            grouped(node_rate),
            gbit_per_s(node_rate),
            grouped(plain_rate),
            gbit_per_s(plain_rate),
        ),
    );
    figures.measure("any", "relay_throughput_ratio", ratio, "ratio");
    drop(node_process);
    drop(plain_process);
    0
}

fn main() {
    if std::env::var_os(PLAIN_RELAY_ENV).is_some() {
        plain_relay_main();
        return;
    }
    let scale = Scale::from_env();
    let options = Options::from_env();
    println!(
        "berty-node relay benchmark: one circuit, {} MiB per transfer, {} rounds per relay (plain, node, node, plain, ...)",
        scale.bytes / MIB,
        scale.rounds
    );
    println!(
        "machine: {} cores, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        support::load_average()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut figures = Figures::default();
    let code = runtime.block_on(run(&scale, &options, &mut figures));
    println!(
        "done in {:.0} s, load average {} at the end",
        started.elapsed().as_secs_f64(),
        support::load_average()
    );
    figures.print_table();
    runtime.shutdown_timeout(Duration::from_secs(5));
    std::process::exit(code);
}
