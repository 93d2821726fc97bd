//! Benchmarks of contact request delivery, with real `berty-node` processes on loopback
//! (bench profile, ports 0), on SQLite (and on PostgreSQL when named). An infrastructure node
//! R is the rendezvous server (`p2p.rendezvous`) of every other node; nobody bootstraps to
//! anybody else.
//!
//! - `contact_online`: B enables contact requests and keeps one live `AccountSubscribe` open.
//!   N requesters A1..AN, one after the other, each a fresh node: start it, call
//!   `ContactRequestEnqueue` with B's reference, and time from the call returning to B's
//!   `ContactRequested` from that requester on the subscription. Each Ai then stops. The time
//!   includes Ai's first connection to R (the courier dials R when it first looks B up), the
//!   lookup, the connection to B, the six-frame handshake and B's write of the event.
//!   Printed: min / median / p90 / max in ms, and how many attempts failed (each failure
//!   costs a back-off of at least 1 s).
//! - `contact_after_restart`: a fresh target B enables requests and stops (SIGKILL). A
//!   enqueues a request to it and keeps failing until its `contact_deliveries{failed}`
//!   counter grew by K (default 3), so it is in back-off. Then B starts again on the same
//!   store. Time from B's process start, and from its gRPC being ready, to `ContactRequested`
//!   on B. One line per round.
//!
//! `cargo bench --bench contacts` runs SQLite only; `-- postgres` or `-- sqlite postgres`
//! chooses the backends; `-- --quick`: N 5, 1 round (default N 20, 3 rounds). Environment:
//! `BERTY_BENCH_REQUESTS` (N), `BERTY_BENCH_ROUNDS`, `BERTY_BENCH_FAILED_ATTEMPTS` (K),
//! `BERTY_BENCH_LOG` (a log filter for the nodes, e.g. `warn,berty_node::courier=debug`),
//! `BERTY_BENCH_DIR`, `BERTY_NODE_TEST_POSTGRES_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/common/node.rs"]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use berty_node::proto::berty_protocol::{
    self as pb, protocol_service_client::ProtocolServiceClient,
};
use node::NodeProcess;
use support::{percentile_ms, Backend, Figures, NodeStore, Options};
use tokio::sync::mpsc;
use tonic::transport::Channel;

type Client = ProtocolServiceClient<Channel>;

/// Failed delivery attempts of a requester.
const DELIVERIES_FAILED: &str = "berty_node_contact_deliveries_total{outcome=\"failed\"}";
/// Registrations a rendezvous server accepted.
const REGISTERED: &str = "berty_node_rendezvous_registered_total";
/// How often the metrics are polled.
const POLL: Duration = Duration::from_millis(50);
/// The longest any one wait may take before the benchmark gives up.
const WAIT: Duration = Duration::from_secs(120);

struct Settings {
    base: Options,
    requests: usize,
    rounds: usize,
    failed_attempts: u64,
}

impl Settings {
    fn from_env() -> Self {
        let mut base = Options::from_env();
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick =
            args.iter().any(|a| a == "--quick") || std::env::var_os("BERTY_BENCH_QUICK").is_some();
        let named = args.iter().any(|a| !a.starts_with('-'))
            || std::env::var("BERTY_BENCH_BACKENDS").is_ok_and(|b| !b.trim().is_empty());
        if !named {
            base.backends = vec![Backend::Sqlite];
        }
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .map(|v| v.replace(['_', ','], "").parse().expect("a whole number"))
                .unwrap_or(default)
        };
        let (requests, rounds) = if quick { (5, 1) } else { (20, 3) };
        Self {
            base,
            requests: number("BERTY_BENCH_REQUESTS", requests).max(1) as usize,
            rounds: number("BERTY_BENCH_ROUNDS", rounds).max(1) as usize,
            failed_attempts: number("BERTY_BENCH_FAILED_ATTEMPTS", 3).max(1),
        }
    }
}

/// One running node, its store, account key and a client; restartable on the same store.
struct Node {
    process: NodeProcess,
    store: NodeStore,
    account_pk: Vec<u8>,
    client: Client,
}

impl Node {
    /// A fresh node: `berty-node init` (for the account key), then `serve`.
    async fn create(backend: Backend, options: &Options, rendezvous: Option<&str>) -> Self {
        let store = NodeStore::create(backend, options).await;
        let account_pk = init(&store).await;
        Self::serve(store, account_pk, rendezvous).await
    }

    async fn serve(store: NodeStore, account_pk: Vec<u8>, rendezvous: Option<&str>) -> Self {
        let mut env = store.env();
        env.insert("BERTY_NODE__P2P__MDNS".into(), "false".into());
        // BERTY_BENCH_LOG=<filter> shows the nodes' logs (to see where the time goes).
        if let Ok(filter) = std::env::var("BERTY_BENCH_LOG") {
            env.insert("BERTY_NODE__LOG__FILTER".into(), filter);
        }
        if let Some(server) = rendezvous {
            env.insert("BERTY_NODE__P2P__RENDEZVOUS".into(), server.to_owned());
            env.insert("BERTY_NODE__P2P__REPLICATION".into(), "true".into());
        }
        let data_dir = store.data_dir();
        let process = NodeProcess::spawn(
            &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
            &env,
            store.dir(),
        )
        .await;
        let client = connect(&process).await;
        Self {
            process,
            store,
            account_pk,
            client,
        }
    }

    /// Stops the process (SIGKILL) and keeps the store.
    fn stop(self) -> (NodeStore, Vec<u8>) {
        let Self {
            process,
            store,
            account_pk,
            ..
        } = self;
        drop(process);
        (store, account_pk)
    }

    fn addr(&self) -> String {
        self.process.p2p_addrs[0].clone()
    }

    /// The value of `name` in `/metrics` (0 while it has no sample).
    async fn metric(&self, name: &str) -> f64 {
        let (status, body) = node::http_get(self.process.admin_addr, "/metrics", None).await;
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0.0)
    }

    /// Polls `/metrics` until `name` is at least `value`.
    async fn wait_for_metric(&self, name: &str, value: f64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let current = self.metric(name).await;
            if current >= value {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stayed at {current}, expected at least {value}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Turns contact requests on; returns the contact reference.
    async fn enable_requests(&mut self) -> Vec<u8> {
        self.client
            .contact_request_enable(pb::contact_request_enable::Request {})
            .await
            .expect("ContactRequestEnable");
        self.client
            .contact_request_reference(pb::contact_request_reference::Request {})
            .await
            .expect("ContactRequestReference")
            .into_inner()
            .reference
    }

    async fn enqueue(&mut self, reference: &[u8]) {
        self.client
            .contact_request_enqueue(pb::contact_request_enqueue::Request {
                reference: reference.to_vec(),
                meta: b"bench".to_vec(),
            })
            .await
            .expect("ContactRequestEnqueue");
    }

    /// Every `ContactRequested` on the account, history then live: the requester's key and
    /// when the benchmark saw it.
    async fn contact_requests(&mut self) -> mpsc::UnboundedReceiver<(Vec<u8>, Instant)> {
        let mut stream = self
            .client
            .account_subscribe(pb::account_subscribe::Request::default())
            .await
            .expect("AccountSubscribe")
            .into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(reply)) = stream.message().await {
                let seen = Instant::now();
                let Some(event) = reply.event else { continue };
                if event.event_type == pb::AccountEventType::ContactRequested as i32
                    && tx.send((event.subject_public_key_bytes, seen)).is_err()
                {
                    return;
                }
            }
        });
        rx
    }
}

/// `berty-node init` on the store; returns the account key it printed.
async fn init(store: &NodeStore) -> Vec<u8> {
    let output = tokio::process::Command::new(node::node_binary())
        .arg("init")
        .arg("--data-dir")
        .arg(store.data_dir())
        .current_dir(store.dir())
        .env_remove("RUST_LOG")
        .envs(store.env())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run berty-node init");
    assert!(
        output.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let account_pk = stdout
        .lines()
        .find_map(|l| l.strip_prefix("account_pk "))
        .expect("init prints account_pk");
    hex::decode(account_pk.trim()).expect("hex account_pk")
}

async fn connect(process: &NodeProcess) -> Client {
    let channel = Channel::from_shared(format!("http://{}", process.grpc_addr))
        .unwrap()
        .connect()
        .await
        .expect("connect gRPC");
    Client::new(channel)
}

/// The first request from `requester` on `requests`; when it was seen.
async fn wait_for_request(
    requests: &mut mpsc::UnboundedReceiver<(Vec<u8>, Instant)>,
    requester: &[u8],
) -> Instant {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, requests.recv()).await {
            Ok(Some((subject, seen))) if subject == requester => return seen,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the account subscription ended"),
            Err(_) => panic!("no ContactRequested within {WAIT:?}"),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn online(backend: Backend, settings: &Settings, r: &Node, figures: &mut Figures) {
    let b_name = backend.name();
    let options = &settings.base;
    let registered = r.metric(REGISTERED).await;
    let mut b = Node::create(backend, options, Some(&r.addr())).await;
    let reference = b.enable_requests().await;
    // B's first rendezvous point is registered at R before the first request.
    r.wait_for_metric(REGISTERED, registered + 1.0).await;
    let mut requests = b.contact_requests().await;
    let mut times = Vec::with_capacity(settings.requests);
    let mut failed = 0.0;
    for _ in 0..settings.requests {
        let mut a = Node::create(backend, options, Some(&r.addr())).await;
        a.enqueue(&reference).await;
        let enqueued = Instant::now();
        let seen = wait_for_request(&mut requests, &a.account_pk).await;
        times.push(seen.duration_since(enqueued));
        failed += a.metric(DELIVERIES_FAILED).await;
        drop(a.stop());
    }
    let mut sorted = times.clone();
    sorted.sort();
    figures.add(
        b_name,
        "contact_online",
        format!(
            "min {:.1} / median {:.1} / p90 {:.1} / max {:.1} ms over {} requests from \
             ContactRequestEnqueue returning to ContactRequested on B ({failed} failed attempts)",
            percentile_ms(&sorted, 0.0),
            percentile_ms(&sorted, 50.0),
            percentile_ms(&sorted, 90.0),
            percentile_ms(&sorted, 100.0),
            sorted.len(),
        ),
    );
    println!(
        "{b_name} contact_online each (ms): {}",
        times
            .iter()
            .map(|t| format!("{:.1}", ms(*t)))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

async fn after_restart(backend: Backend, settings: &Settings, r: &Node, figures: &mut Figures) {
    let b_name = backend.name();
    let options = &settings.base;
    let mut a = Node::create(backend, options, Some(&r.addr())).await;
    for round in 1..=settings.rounds {
        let registered = r.metric(REGISTERED).await;
        let mut b = Node::create(backend, options, Some(&r.addr())).await;
        let reference = b.enable_requests().await;
        r.wait_for_metric(REGISTERED, registered + 1.0).await;
        let (store, b_pk) = b.stop();
        let stopped = Instant::now();

        let failed_before = a.metric(DELIVERIES_FAILED).await;
        a.enqueue(&reference).await;
        let target = failed_before + settings.failed_attempts as f64;
        a.wait_for_metric(DELIVERIES_FAILED, target).await;

        let spawned = Instant::now();
        let down = spawned.duration_since(stopped);
        let mut b = Node::serve(store, b_pk, Some(&r.addr())).await;
        let ready = Instant::now();
        let mut requests = b.contact_requests().await;
        let seen = wait_for_request(&mut requests, &a.account_pk).await;
        let failed = a.metric(DELIVERIES_FAILED).await - failed_before;
        figures.add(
            b_name,
            &format!("contact_after_restart round {round}"),
            format!(
                "{:.0} ms from B's process start, {:.0} ms from its gRPC being ready (B \
                 started in {:.0} ms; it was down {:.1} s, until A had failed {} attempts; \
                 A failed {failed} in all)",
                ms(seen.duration_since(spawned)),
                ms(seen.saturating_duration_since(ready)),
                ms(ready.duration_since(spawned)),
                down.as_secs_f64(),
                settings.failed_attempts,
            ),
        );
        drop(b.stop());
    }
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "berty-node contacts benchmark: {} requests online, {} restart rounds (B back after A \
         failed {} attempts), backends {:?}",
        settings.requests,
        settings.rounds,
        settings.failed_attempts,
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
    let mut figures = Figures::default();
    for backend in settings.base.backends.clone() {
        runtime.block_on(async {
            let r = Node::create(backend, &settings.base, None).await;
            online(backend, &settings, &r, &mut figures).await;
            after_restart(backend, &settings, &r, &mut figures).await;
        });
    }
    figures.print_table();
}
