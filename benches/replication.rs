//! Benchmarks of replication between `berty-node` processes on loopback, on SQLite (and on
//! PostgreSQL when named).
//!
//! Every node is the real binary (bench profile, ports 0) in a store of its own, driven over
//! gRPC by this process exactly as `benches/protocol.rs` drives one node. Node A creates the
//! groups and invites; the others start with `p2p.bootstrap` = A's p2p address and join the
//! invitation. Each figure is one line `<backend> <figure>: <value>`, followed by one
//! `<backend> <figure> cpu <node>:` line per node saying where the CPU went in that phase:
//! the node's user and system seconds, then `support::CpuMark`'s split (cores by thread;
//! there "rest of machine" includes the other node).
//!
//! - `send_to_delivery_1KiB`: A and B share a group and B has a live `GroupMessageSubscribe`
//!   open (and has delivered 500 warm-up messages, so A's chain key has reached it); 64
//!   senders write N 1 KiB messages on A. From the first send until B's stream has delivered
//!   all N (each payload index exactly once, each payload intact): msg/s end to end, and A's
//!   own send rate.
//! - `idle_baseline` (CPU lines only): the two nodes connected and doing nothing for 1 s.
//! - `idle_latency`: one message at a time on the same group and stream, 2 ms apart: from
//!   the start of A's `GroupMessageSend` until B's stream yields it; p50, p99, max. For the
//!   split, the same from A's side: the send call answered, and a live subscription on A
//!   itself yielding it.
//! - `catch_up_fresh_member`: A fills a group nobody else holds with M messages (64 senders),
//!   then a fresh node C starts bootstrapped to A and joins; from C's `GroupJoin` until C's
//!   subscription has delivered all M: entries/s and seconds. C's
//!   `berty_node_replication_entries_received_total` is sampled meanwhile: when it grew (one
//!   step per page of fetched entries appended) splits the time between pages.
//!
//! A stream that delivers nothing new for 60 s ends its phase with `INCOMPLETE` in the
//! figure instead of hanging.
//!
//! `cargo bench --bench replication` runs SQLite only; `-- --quick`: N 5,000, 200 latency
//! samples, M 20,000; `-- postgres` or `-- sqlite postgres` chooses the backends.
//! Environment: `BERTY_BENCH_PHASES` (`delivery` for the two-member phases, `catch_up` for
//! the fresh member; default both), `BERTY_BENCH_N` (default 20,000), `BERTY_BENCH_LATENCY` (500),
//! `BERTY_BENCH_CATCHUP` (100,000), `BERTY_BENCH_CONCURRENCY` (64), `BERTY_BENCH_DIR` (parent of
//! the data dirs; `/dev/shm` takes fsync out), `BERTY_BENCH_PERF=DIR` (one `perf record` per
//! node and phase: `DIR/<backend>_<phase>_<node>.perf.data`), `BERTY_NODE_TEST_POSTGRES_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/common/node.rs"]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use berty_node::proto::berty_protocol::{
    self as pb, protocol_service_client::ProtocolServiceClient,
};
use node::NodeProcess;
use support::{index_of, payload, Backend, CpuMark, Figures, NodeStore, Options, Profile};
use tokio::sync::mpsc;
use tonic::transport::Channel;

type Client = ProtocolServiceClient<Channel>;

/// gRPC connections the concurrent senders share.
const SENDER_CONNECTIONS: usize = 4;
/// Messages sent (and delivered to B) before the timed phases: the chain key has reached B,
/// connections and caches are warm.
const WARM_UP: u64 = 500;
/// A stream that delivers nothing new for this long has stalled: its phase ends, marked
/// `INCOMPLETE`.
const STALL: Duration = Duration::from_secs(60);
/// Pause between two idle-latency samples, so each message finds both nodes idle (the
/// previous announcement acknowledged).
const IDLE_GAP: Duration = Duration::from_millis(2);
/// How long the two nodes are watched doing nothing, for the CPU they use at rest.
const IDLE_BASELINE: Duration = Duration::from_secs(1);
/// How often C's received-entries counter is read during the catch-up.
const METRIC_POLL: Duration = Duration::from_millis(50);
/// The counter of entries a node received from peers and stored.
const ENTRIES_RECEIVED: &str = "berty_node_replication_entries_received_total";

/// Payload index tags (high bits), so one stream can tell the phases' messages apart.
const TAG_WARM_UP: u64 = 1 << 40;
const TAG_LOAD: u64 = 2 << 40;
const TAG_IDLE: u64 = 3 << 40;

// ---------------------------------------------------------------------------------------------
// Options.

/// The counts of this benchmark, on top of the shared [`Options`].
struct Settings {
    /// Backends, concurrency, temp dir, perf dir.
    base: Options,
    /// Messages of the 64-sender load delivered to B.
    n: u64,
    /// Idle-latency samples.
    latency: u64,
    /// Messages the fresh member catches up on.
    catch_up: u64,
    /// Run the two-member phases (send to delivery, idle latency).
    delivery: bool,
    /// Run the fresh-member catch-up.
    fresh_member: bool,
}

fn env_count(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?.replace(['_', ','], "");
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {value:?}")),
    )
}

impl Settings {
    fn from_env() -> Self {
        let mut base = Options::from_env();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick =
            args.iter().any(|a| a == "--quick") || std::env::var_os("BERTY_BENCH_QUICK").is_some();
        // The shared options run both backends when none is named; here SQLite is the default.
        let named = args.iter().any(|a| !a.starts_with('-'))
            || std::env::var("BERTY_BENCH_BACKENDS").is_ok_and(|b| !b.trim().is_empty());
        if !named {
            base.backends = vec![Backend::Sqlite];
        }
        let (n, latency, catch_up) = if quick {
            (5_000, 200, 20_000)
        } else {
            (20_000, 500, 100_000)
        };
        let phases = std::env::var("BERTY_BENCH_PHASES").unwrap_or_default();
        let phases: Vec<&str> = phases
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        for phase in &phases {
            assert!(
                ["delivery", "catch_up"].contains(phase),
                "unknown phase {phase:?} in BERTY_BENCH_PHASES (delivery, catch_up)"
            );
        }
        Self {
            base,
            delivery: phases.is_empty() || phases.contains(&"delivery"),
            fresh_member: phases.is_empty() || phases.contains(&"catch_up"),
            n: env_count("BERTY_BENCH_N").unwrap_or(n).max(1),
            latency: env_count("BERTY_BENCH_LATENCY").unwrap_or(latency).max(1),
            catch_up: env_count("BERTY_BENCH_CATCHUP").unwrap_or(catch_up).max(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rates.

fn rate(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Nodes.

/// One running node with its store and a client.
struct Node {
    /// `A`, `B`, `C`: printed in the CPU lines and perf file names.
    name: &'static str,
    // Declared before the store: the process is killed before its database is dropped.
    process: NodeProcess,
    store: NodeStore,
    client: Client,
}

impl Node {
    /// Starts a node on a fresh store, dialling `bootstrap` at start; returns it with the
    /// time from spawn to its addresses printed.
    async fn start(
        name: &'static str,
        backend: Backend,
        options: &Options,
        bootstrap: Option<&Node>,
    ) -> (Self, Duration) {
        let store = NodeStore::create(backend, options).await;
        let mut env = store.env();
        env.insert("BERTY_NODE__P2P__REPLICATION".into(), "true".into());
        env.insert("BERTY_NODE__P2P__MDNS".into(), "false".into());
        if let Some(peer) = bootstrap {
            env.insert(
                "BERTY_NODE__P2P__BOOTSTRAP".into(),
                peer.process.p2p_addrs[0].clone(),
            );
        }
        let data_dir = store.data_dir();
        let started = Instant::now();
        let process = NodeProcess::spawn(
            &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
            &env,
            store.dir(),
        )
        .await;
        let took = started.elapsed();
        let client = Client::new(connect(&process).await).max_decoding_message_size(64 << 20);
        (
            Self {
                name,
                process,
                store,
                client,
            },
            took,
        )
    }

    fn pid(&self) -> u32 {
        self.process.child.id()
    }

    async fn cpu_mark(&self) -> NodeCpuMark {
        NodeCpuMark {
            user_sys: user_sys(self.pid()),
            cpu: CpuMark::now(self.pid(), &self.store.server_pids().await),
        }
    }

    /// CPU µs per message the node (and its PostgreSQL backends) used since `mark`.
    async fn cpu_us_per_message(&self, mark: &NodeCpuMark, messages: u64) -> f64 {
        let seconds = mark.cpu.cpu_seconds(&self.store.server_pids().await);
        seconds * 1e6 / messages.max(1) as f64
    }

    /// The node's user and system CPU seconds since `mark`, then the [`CpuMark`] report.
    async fn cpu_report(&self, mark: &NodeCpuMark, messages: u64) -> String {
        let (user, sys) = user_sys(self.pid());
        format!(
            "user {:.2} s sys {:.2} s; {}",
            user - mark.user_sys.0,
            sys - mark.user_sys.1,
            mark.cpu.report(messages, &self.store.server_pids().await)
        )
    }

    async fn create_group(&mut self) -> Vec<u8> {
        self.client
            .group_create(pb::group_create::Request {})
            .await
            .expect("GroupCreate")
            .into_inner()
            .group_pub_key
    }

    async fn invite(&mut self, group: &[u8]) -> Vec<u8> {
        self.client
            .group_invite(pb::group_invite::Request {
                group_pub_key: group.to_vec(),
            })
            .await
            .expect("GroupInvite")
            .into_inner()
            .reference
    }

    async fn join(&mut self, reference: &[u8]) {
        self.client
            .group_join(pb::group_join::Request {
                reference: reference.to_vec(),
                meta: self.name.as_bytes().to_vec(),
            })
            .await
            .expect("GroupJoin");
    }

    /// A live subscription that starts after the newest message stored now (found as the
    /// first event of a backwards subscription), so it yields only what comes next.
    async fn subscribe_after_newest(
        &self,
        group: &[u8],
    ) -> tonic::Streaming<pb::group_message_subscribe::Reply> {
        let mut client =
            Client::new(connect(&self.process).await).max_decoding_message_size(64 << 20);
        let newest = client
            .group_message_subscribe(pb::group_message_subscribe::Request {
                group_pub_key: group.to_vec(),
                go_backwards: true,
                ..Default::default()
            })
            .await
            .expect("GroupMessageSubscribe backwards")
            .into_inner()
            .message()
            .await
            .expect("newest event")
            .and_then(|r| r.event?.group_store_event)
            .map_or(0, |e| e.cursor);
        client
            .group_message_subscribe(pb::group_message_subscribe::Request {
                group_pub_key: group.to_vec(),
                since_cursor: newest,
                ..Default::default()
            })
            .await
            .expect("GroupMessageSubscribe since_cursor")
            .into_inner()
    }

    /// A live subscription (history first) on a connection of its own.
    async fn subscribe(
        &self,
        group: &[u8],
    ) -> tonic::Streaming<pb::group_message_subscribe::Reply> {
        Client::new(connect(&self.process).await)
            .max_decoding_message_size(64 << 20)
            .group_message_subscribe(pb::group_message_subscribe::Request {
                group_pub_key: group.to_vec(),
                ..Default::default()
            })
            .await
            .expect("GroupMessageSubscribe")
            .into_inner()
    }

    async fn sender_channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        for _ in 0..SENDER_CONNECTIONS {
            channels.push(connect(&self.process).await);
        }
        channels
    }

    /// The value of an unlabelled counter on `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        metric(self.process.admin_addr, name).await
    }
}

/// CPU use of one node at the start of a phase.
struct NodeCpuMark {
    user_sys: (f64, f64),
    cpu: CpuMark,
}

/// User and system CPU seconds of a whole process so far (`utime` and `stime`, fields 14 and
/// 15 of `/proc/PID/stat`); zeros once it is gone.
fn user_sys(pid: u32) -> (f64, f64) {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / ticks
    };
    (field(11), field(12))
}

async fn connect(node: &NodeProcess) -> Channel {
    Channel::from_shared(format!("http://{}", node.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("connect to the node")
}

async fn metric(admin: std::net::SocketAddr, name: &str) -> f64 {
    let (status, body) = node::http_get(admin, "/metrics", None).await;
    assert_eq!(status, 200, "GET /metrics: {body}");
    body.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

async fn send(client: &mut Client, group: &[u8], index: u64) {
    client
        .group_message_send(pb::group_message_send::Request {
            group_pub_key: group.to_vec(),
            payload: payload(index),
        })
        .await
        .unwrap_or_else(|status| panic!("GroupMessageSend {index:#x}: {status}"));
}

/// Sends payload indexes `range` to `group` from `concurrency` tasks over `channels`;
/// returns when the last send was answered.
async fn send_concurrent(
    channels: &[Channel],
    group: &[u8],
    range: std::ops::Range<u64>,
    concurrency: usize,
) -> Instant {
    let next = Arc::new(AtomicU64::new(range.start));
    let end = range.end;
    let group: Arc<[u8]> = group.into();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let mut client = Client::new(channels[task % channels.len()].clone());
            let next = next.clone();
            let group = group.clone();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return;
                    }
                    send(&mut client, &group, index).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("sender task");
    }
    Instant::now()
}

async fn profiles(options: &Options, label: &str, nodes: &[&Node]) -> Vec<Profile> {
    let mut out = Vec::new();
    for node in nodes {
        if options.perf_dir.is_none() {
            break;
        }
        let mut pids = vec![node.pid()];
        pids.extend(node.store.server_pids().await);
        let label = format!("{}_{label}_{}", node.store.backend.name(), node.name);
        out.push(Profile::start(options, &label, &pids));
    }
    out
}

fn stop_profiles(profiles: Vec<Profile>) {
    for profile in profiles {
        profile.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a subscription.

/// One event a stream delivered: its payload index (if it has one) and when it came.
struct Arrival {
    index: Option<u64>,
    intact: bool,
    at: Instant,
}

impl Arrival {
    fn of(reply: pb::group_message_subscribe::Reply) -> Self {
        let at = Instant::now();
        let payload = reply.event.map(|e| e.payload).unwrap_or_default();
        let index = index_of(&payload);
        Self {
            index,
            intact: index.is_some_and(|i| payload == self::payload(i)),
            at,
        }
    }
}

/// Reads `stream` on a task of its own, stamping each event as it comes.
fn spawn_reader(
    mut stream: tonic::Streaming<pb::group_message_subscribe::Reply>,
) -> mpsc::UnboundedReceiver<Arrival> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(reply)) = stream.message().await {
            if tx.send(Arrival::of(reply)).is_err() {
                return;
            }
        }
    });
    rx
}

/// What arrived while waiting for one range of payload indexes.
#[derive(Default)]
struct Tally {
    /// Distinct indexes of the range seen.
    delivered: u64,
    duplicates: u64,
    /// Events outside the range (or without an index).
    unexpected: u64,
    corrupt: u64,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// Set when the wait ended before every index came: why.
    stalled: Option<String>,
}

impl Tally {
    fn problems(&self) -> String {
        let mut out = if self.duplicates + self.unexpected + self.corrupt == 0 {
            "each exactly once, intact".to_owned()
        } else {
            format!(
                "PROBLEMS: {} duplicates, {} unexpected, {} corrupt",
                self.duplicates, self.unexpected, self.corrupt
            )
        };
        if let Some(stalled) = &self.stalled {
            out.push_str(&format!("; INCOMPLETE: {stalled}"));
        }
        out
    }

    fn add_strays(&mut self, other: &Tally) {
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
        self.corrupt += other.corrupt;
        if self.stalled.is_none() {
            self.stalled.clone_from(&other.stalled);
        }
    }
}

/// Takes arrivals until each index of `range` has come once, or nothing new came for
/// [`STALL`] (then [`Tally::stalled`] says so).
async fn await_range(
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    range: std::ops::Range<u64>,
) -> Tally {
    let mut seen = vec![false; (range.end - range.start) as usize];
    let mut tally = Tally::default();
    while tally.delivered < range.end - range.start {
        let arrival = match tokio::time::timeout(STALL, arrivals.recv()).await {
            Ok(Some(arrival)) => arrival,
            Ok(None) => {
                tally.stalled = Some(format!("the stream ended after {} events", tally.delivered));
                break;
            }
            Err(_) => {
                tally.stalled = Some(format!(
                    "nothing new for {} s after {} of {} events",
                    STALL.as_secs(),
                    tally.delivered,
                    range.end - range.start
                ));
                break;
            }
        };
        if !arrival.intact {
            tally.corrupt += 1;
        }
        match arrival.index.filter(|i| range.contains(i)) {
            Some(index) => {
                let slot = &mut seen[(index - range.start) as usize];
                if *slot {
                    tally.duplicates += 1;
                } else {
                    *slot = true;
                    tally.delivered += 1;
                    tally.first_at.get_or_insert(arrival.at);
                    tally.last_at = Some(arrival.at);
                }
            }
            None => tally.unexpected += 1,
        }
    }
    tally
}

// ---------------------------------------------------------------------------------------------
// The phases.

/// A and B in one group, B subscribed: the 64-sender load, then the idle latency.
async fn two_members(backend: Backend, settings: &Settings, figures: &mut Figures) {
    let b = backend.name();
    let options = &settings.base;
    let n = settings.n;
    let (mut a, a_start) = Node::start("A", backend, options, None).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let (mut node_b, b_start) = Node::start("B", backend, options, Some(&a)).await;
    println!(
        "{b} nodes: A {} ({:.0} ms to start), B {} ({:.0} ms, bootstrap to A)",
        a.process.peer_id,
        a_start.as_secs_f64() * 1e3,
        node_b.process.peer_id,
        b_start.as_secs_f64() * 1e3
    );
    let joined = Instant::now();
    node_b.join(&invite).await;
    let mut arrivals = spawn_reader(node_b.subscribe(&group).await);
    let channels = a.sender_channels().await;

    // Warm-up: until B has A's chain key and delivered these, nothing is measured.
    send_concurrent(
        &channels,
        &group,
        TAG_WARM_UP..TAG_WARM_UP + WARM_UP,
        options.concurrency,
    )
    .await;
    let warm = await_range(&mut arrivals, TAG_WARM_UP..TAG_WARM_UP + WARM_UP).await;
    println!(
        "{b} warm-up: B joined and delivered {WARM_UP} messages {:.2} s after its GroupJoin ({})",
        secs(warm.last_at.unwrap_or(joined).duration_since(joined)),
        warm.problems()
    );

    // 1. The 64-sender load on A, delivered by B's live subscription.
    let name = "send_to_delivery_1KiB";
    let perf = profiles(options, name, &[&a, &node_b]).await;
    let cpu_a = a.cpu_mark().await;
    let cpu_b = node_b.cpu_mark().await;
    let range = TAG_LOAD..TAG_LOAD + n;
    let started = Instant::now();
    let (sent_at, tally) = tokio::join!(
        send_concurrent(&channels, &group, range.clone(), options.concurrency),
        await_range(&mut arrivals, range),
    );
    let delivered_at = tally.last_at.unwrap_or(started);
    let us_a = a.cpu_us_per_message(&cpu_a, n).await;
    let us_b = node_b.cpu_us_per_message(&cpu_b, n).await;
    let report_a = a.cpu_report(&cpu_a, n).await;
    let report_b = node_b.cpu_report(&cpu_b, n).await;
    stop_profiles(perf);
    let elapsed = delivered_at.duration_since(started);
    let send_time = sent_at.duration_since(started);
    figures.add(
        b,
        name,
        format!(
            "{:.0} msg/s delivered on B ({}/{n} in {:.2} s, {}); A sent at {:.0} msg/s ({:.2} s), B's last delivery {:.0} ms after A's last send answer; first delivery after {:.1} ms (SPEC: 20,000 msg/s)",
            rate(tally.delivered, elapsed),
            tally.delivered,
            secs(elapsed),
            tally.problems(),
            rate(n, send_time),
            secs(send_time),
            delivered_at.saturating_duration_since(sent_at).as_secs_f64() * 1e3,
            tally
                .first_at
                .map_or(0.0, |at| at.duration_since(started).as_secs_f64() * 1e3),
        ),
    );
    println!("{b} {name} cpu A: {report_a}");
    println!("{b} {name} cpu B: {report_b}");
    if tally.stalled.is_some() {
        return;
    }
    figures.measure(
        b,
        "send_to_delivery",
        rate(tally.delivered, elapsed),
        "msg/s",
    );
    figures.measure(b, "cpu_per_message_sender", us_a, "us");
    figures.measure(b, "cpu_per_message_receiver", us_b, "us");

    // What two connected nodes with nothing to do cost, to read the idle phase's CPU against.
    let cpu_a = a.cpu_mark().await;
    let cpu_b = node_b.cpu_mark().await;
    tokio::time::sleep(IDLE_BASELINE).await;
    println!("{b} idle_baseline cpu A: {}", a.cpu_report(&cpu_a, 0).await);
    println!(
        "{b} idle_baseline cpu B: {}",
        node_b.cpu_report(&cpu_b, 0).await
    );

    // 2. One message at a time: A's send call to B's delivery, and to the delivery on a
    // subscription on A itself (the same path without the replication hop).
    let name = "idle_latency";
    let mut client = Client::new(channels[0].clone());
    let mut local_arrivals = spawn_reader(a.subscribe_after_newest(&group).await);
    let perf = profiles(options, name, &[&a, &node_b]).await;
    let cpu_a = a.cpu_mark().await;
    let cpu_b = node_b.cpu_mark().await;
    let mut latencies = Vec::with_capacity(settings.latency as usize);
    let mut send_latencies = Vec::with_capacity(settings.latency as usize);
    let mut local_latencies = Vec::with_capacity(settings.latency as usize);
    let mut stray = Tally::default();
    for i in 0..settings.latency {
        let index = TAG_IDLE + i;
        let at = Instant::now();
        send(&mut client, &group, index).await;
        send_latencies.push(at.elapsed());
        let tally = await_range(&mut arrivals, index..index + 1).await;
        stray.add_strays(&tally);
        if tally.stalled.is_some() {
            break;
        }
        latencies.push(tally.last_at.unwrap_or(at).duration_since(at));
        let local = await_range(&mut local_arrivals, index..index + 1).await;
        stray.add_strays(&local);
        if local.stalled.is_some() {
            break;
        }
        local_latencies.push(local.last_at.unwrap_or(at).duration_since(at));
        tokio::time::sleep(IDLE_GAP).await;
    }
    let report_a = a.cpu_report(&cpu_a, settings.latency).await;
    let report_b = node_b.cpu_report(&cpu_b, settings.latency).await;
    stop_profiles(perf);
    latencies.sort();
    send_latencies.sort();
    local_latencies.sort();
    figures.add(
        b,
        name,
        format!(
            "p50 {:.2} ms p99 {:.2} ms max {:.2} ms from A's send call to B's delivery ({} messages, {} ms apart; {}); on A itself: send call answered p50 {:.2} ms p99 {:.2} ms, delivered to A's own subscription p50 {:.2} ms p99 {:.2} ms (SPEC: p99 < 5 ms)",
            support::percentile_ms(&latencies, 50.0),
            support::percentile_ms(&latencies, 99.0),
            support::percentile_ms(&latencies, 100.0),
            latencies.len(),
            IDLE_GAP.as_millis(),
            stray.problems(),
            support::percentile_ms(&send_latencies, 50.0),
            support::percentile_ms(&send_latencies, 99.0),
            support::percentile_ms(&local_latencies, 50.0),
            support::percentile_ms(&local_latencies, 99.0),
        ),
    );
    println!("{b} {name} cpu A: {report_a}");
    println!("{b} {name} cpu B: {report_b}");
    if !latencies.is_empty() {
        let p99 = support::percentile_ms(&latencies, 99.0);
        figures.measure(b, "idle_delivery_p99_two_nodes", p99, "ms");
    }
    drop(arrivals);
    drop(local_arrivals);
}

/// A fills a group of its own; a fresh node C joins it and reads the whole history.
async fn fresh_member(backend: Backend, settings: &Settings, figures: &mut Figures) {
    let b = backend.name();
    let options = &settings.base;
    let m = settings.catch_up;
    let (mut a, _) = Node::start("A", backend, options, None).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let channels = a.sender_channels().await;

    let cpu_a = a.cpu_mark().await;
    let started = Instant::now();
    let filled = send_concurrent(&channels, &group, 0..m, options.concurrency).await;
    let report_a = a.cpu_report(&cpu_a, m).await;
    let fill = filled.duration_since(started);
    println!(
        "{b} catch_up fill: A wrote {m} messages alone in {:.2} s ({:.0} msg/s)",
        secs(fill),
        rate(m, fill)
    );
    println!("{b} catch_up fill cpu A: {report_a}");

    let (mut c, c_start) = Node::start("C", backend, options, Some(&a)).await;
    println!(
        "{b} catch_up: C started in {:.0} ms, bootstrap to A",
        c_start.as_secs_f64() * 1e3
    );
    let name = "catch_up_fresh_member";
    let perf = profiles(options, name, &[&a, &c]).await;
    let cpu_a = a.cpu_mark().await;
    let cpu_c = c.cpu_mark().await;
    let received_before = c.metric(ENTRIES_RECEIVED).await;
    // C's counter of received entries, sampled until the delivery ends: when it passed M,
    // C had fetched, checked and stored the messages; the rest is opening and delivering.
    let (stop_polling, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = c.process.admin_addr;
    let poller = tokio::spawn(async move {
        let mut stored_at = None;
        let mut samples = Vec::new();
        let mut last = false;
        loop {
            let value = metric(admin, ENTRIES_RECEIVED).await - received_before;
            samples.push((Instant::now(), value));
            if stored_at.is_none() && value >= m as f64 {
                stored_at = Some(Instant::now());
            }
            if last {
                return (stored_at, samples);
            }
            // Once the delivery ended, one more sample: the last page may be stored and
            // delivered between two samples.
            tokio::select! {
                _ = &mut stopped => last = true,
                () = tokio::time::sleep(METRIC_POLL) => {}
            }
        }
    });

    let started = Instant::now();
    c.join(&invite).await;
    let join_call = started.elapsed();
    let mut arrivals = spawn_reader(c.subscribe(&group).await);
    let tally = await_range(&mut arrivals, 0..m).await;
    let _ = stop_polling.send(());
    let (stored_at, samples) = poller.await.expect("metric poller");
    let report_a = a.cpu_report(&cpu_a, m).await;
    let report_c = c.cpu_report(&cpu_c, m).await;
    stop_profiles(perf);
    let delivered_at = tally.last_at.unwrap_or(started);
    let elapsed = delivered_at.duration_since(started);
    let since = |at: Option<Instant>| {
        at.map_or("never".to_owned(), |at| {
            format!("{:.2} s", secs(at.duration_since(started)))
        })
    };
    // The first sample with at least one entry stored: when fetching began.
    let first_stored = samples.iter().find(|(_, v)| *v > 0.0).map(|(at, _)| *at);
    figures.add(
        b,
        name,
        format!(
            "{:.0} entries/s, {:.2} s for {}/{m} ({}); GroupJoin answered after {:.0} ms, first entries stored by {}, all {m} stored by {}, first delivered at {}, last at {:.2} s (SPEC: 100,000 in < 5 s)",
            rate(tally.delivered, elapsed),
            secs(elapsed),
            tally.delivered,
            tally.problems(),
            join_call.as_secs_f64() * 1e3,
            since(first_stored),
            since(stored_at),
            since(tally.first_at),
            secs(elapsed),
        ),
    );
    // When C's stored count grew: one step per page appended (or replayed).
    let mut steps = Vec::new();
    let mut last = 0.0;
    for (at, value) in &samples {
        if *value > last {
            steps.push(format!(
                "{:.1} s {value:.0}",
                secs(at.duration_since(started))
            ));
            last = *value;
        }
    }
    println!(
        "{b} {name} entries stored on C over time: {}",
        steps.join(", ")
    );
    println!("{b} {name} cpu A: {report_a}");
    println!("{b} {name} cpu C: {report_c}");
    if tally.delivered == m {
        figures.measure(b, "catch_up_from_peer", secs(elapsed), &format!("s/{m}"));
    }
}

async fn run_backend(backend: Backend, settings: &Settings, figures: &mut Figures) {
    if backend == Backend::Postgres {
        println!("postgres server: {}", support::postgres_settings().await);
    }
    if settings.delivery {
        two_members(backend, settings, figures).await;
    }
    if settings.fresh_member {
        fresh_member(backend, settings, figures).await;
    }
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "berty-node replication benchmark: n {} (64-sender load), latency samples {}, catch-up {}, concurrency {}, backends {:?}",
        settings.n,
        settings.latency,
        settings.catch_up,
        settings.base.concurrency,
        settings
            .base
            .backends
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
    );
    println!(
        "machine: {} cores, load average {} at start",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        support::load_average()
    );
    let started = Instant::now();
    let mut figures = Figures::default();
    for backend in settings.base.backends.clone() {
        runtime.block_on(run_backend(backend, &settings, &mut figures));
    }
    println!(
        "done in {:.0} s, load average {} at the end",
        started.elapsed().as_secs_f64(),
        support::load_average()
    );
    figures.print_table();
}
