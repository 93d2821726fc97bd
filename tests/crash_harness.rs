//! The crash and outage harness, on the real binary.
//!
//! - `sigkill_under_load` (SQLite and PostgreSQL): 8 concurrent gRPC senders, `kill -KILL`
//!   mid-load, a restart on the same data dir and database, and every acknowledged message
//!   present exactly once (none lost, none duplicated), round after round.
//! - `postgres_outage_under_load`: a PostgreSQL server of the test's own, stopped (fast
//!   shutdown) and started again under load: while it is down sends, exports and `/readyz`
//!   fail within a second or two with `UNAVAILABLE` / 503 naming the database, nothing
//!   acknowledged is lost, and writes resume by themselves once it is back.
//! - `unreachable_postgres_fails_at_once`: `serve` on a PostgreSQL that is not there exits
//!   non-zero within seconds saying why.
//!
//! `cargo test` runs a short version; `scripts/crash-harness [rounds]` the full one
//! (`BERTY_CRASH_ROUNDS`, `BERTY_CRASH_ACKS`, `BERTY_OUTAGE_ROUNDS`, `BERTY_OUTAGE_SECS`). Figures are printed as
//! `crash-harness:` lines (shown with `--nocapture`); docs/benchmarks.md keeps them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use berty_node::proto::berty_protocol as pb;
use common::{
    node::{http_get, NodeProcess},
    pg_server::PgServer,
    protocol::{both_backends, connect, metric, within, Backend, Client, TestNode},
};
use tokio::sync::mpsc;
use tonic::Code;

both_backends!(sigkill_under_load);

/// SIGKILL rounds in `cargo test` (the full run sets `BERTY_CRASH_ROUNDS`).
const CRASH_ROUNDS: u32 = 3;
/// Acknowledgements before the kill, at least, in `cargo test` (`BERTY_CRASH_ACKS`); each
/// round kills somewhere between this and three times this.
const CRASH_ACKS: u64 = 100;
/// PostgreSQL outages in `cargo test` (`BERTY_OUTAGE_ROUNDS`).
const OUTAGE_ROUNDS: u32 = 1;
/// How long each outage lasts in `cargo test` (`BERTY_OUTAGE_SECS`).
const OUTAGE_SECS: u64 = 3;
/// Concurrent senders.
const SENDERS: usize = 8;
/// A failed call must have answered within this (the issue: clients with 5 s deadlines).
const FAIL_WITHIN: Duration = Duration::from_secs(2);
/// `/readyz` must answer within this, up or down.
const READYZ_WITHIN: Duration = Duration::from_secs(1);

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
        Err(_) => default,
    }
}

/// What the senders learnt: acknowledged messages (payload -> entry id) and failed calls.
#[derive(Default)]
struct Ledger {
    acked: HashMap<Vec<u8>, Vec<u8>>,
    /// Failed calls: when each started, how long it took, its code and message.
    failures: Vec<Failure>,
    /// When each acknowledged call started.
    acked_at: Vec<Instant>,
}

#[derive(Debug, Clone)]
struct Failure {
    started: Instant,
    took: Duration,
    code: Code,
    message: String,
}

/// Every acknowledged message present exactly once with its id, and no payload twice.
/// Returns (lost, duplicated, stored).
async fn check_history(
    node: &mut TestNode,
    group: &[u8],
    acked: &HashMap<Vec<u8>, Vec<u8>>,
) -> (usize, usize, usize) {
    let history = node.message_history(group).await;
    let mut stored: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for event in &history {
        stored
            .entry(event.payload.clone())
            .or_default()
            .push(common::protocol::StoreEvent::id(event));
    }
    let lost = acked
        .iter()
        .filter(|(payload, id)| stored.get(*payload).is_none_or(|ids| !ids.contains(id)))
        .count();
    let duplicated = stored.values().filter(|ids| ids.len() > 1).count();
    (lost, duplicated, history.len())
}

/// Rounds of: 8 senders, `kill -KILL` once this round's quota is acknowledged, restart, and
/// every message acknowledged so far present exactly once.
async fn sigkill_under_load(backend: Backend) {
    let rounds = env_number("BERTY_CRASH_ROUNDS", u64::from(CRASH_ROUNDS));
    let acks = env_number("BERTY_CRASH_ACKS", CRASH_ACKS);
    let mut node = TestNode::start(backend).await;
    let group = node.create_group().await;
    let mut acked: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let started = Instant::now();
    let mut restarts = Vec::new();
    let mut killed_after = Vec::new();
    for round in 0..rounds {
        // Kill at a different point each round: `acks` to 3 x `acks` acknowledgements in.
        let quota = acks + acks * ((round * 53) % 200) / 100;
        let (acks, mut acked_rx) = mpsc::unbounded_channel();
        let mut senders = Vec::new();
        for t in 0..SENDERS {
            let mut client = node.client.clone();
            let group = group.clone();
            let acks = acks.clone();
            senders.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = format!("round {round} sender {t} message {i}").into_bytes();
                    match common::protocol::send(&mut client, &group, &body).await {
                        Ok(id) => {
                            if acks.send((body, id)).is_err() {
                                return;
                            }
                        }
                        // The node was killed: this one may or may not be stored.
                        Err(_) => return,
                    }
                }
            }));
        }
        drop(acks);
        let round_started = Instant::now();
        let mut this_round = 0u64;
        while this_round < quota {
            let (body, id) = within("an acknowledged send", acked_rx.recv())
                .await
                .expect("the senders run until the kill");
            acked.insert(body, id);
            this_round += 1;
        }
        killed_after.push(round_started.elapsed());
        node.process.signal("KILL");
        for sender in senders {
            within("the senders stop", sender).await.unwrap();
        }
        while let Ok((body, id)) = acked_rx.try_recv() {
            acked.insert(body, id);
        }
        let restart = Instant::now();
        node = node.sigkill_and_restart().await;
        restarts.push(restart.elapsed());
        let (lost, duplicated, stored) = check_history(&mut node, &group, &acked).await;
        println!(
            "crash-harness: {backend:?} round {} acknowledged {} stored {stored} lost {lost} \
             duplicated {duplicated}",
            round + 1,
            acked.len()
        );
        assert_eq!(
            (lost, duplicated),
            (0, 0),
            "round {}: acknowledged messages lost or duplicated after SIGKILL",
            round + 1
        );
    }
    // The node still writes after the last restart.
    node.send(&group, b"after the last kill").await;
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    let load: Duration = killed_after.iter().sum();
    println!(
        "crash-harness: {backend:?} sigkill: {rounds} rounds, {} acknowledged \
         ({:.0}/s under load), 0 lost, 0 duplicated, slowest restart {slowest:.2?}, \
         {:.1?} in all",
        acked.len(),
        acked.len() as f64 / load.as_secs_f64(),
        started.elapsed()
    );
}

/// `serve` with the private server's database, on an initialised data dir.
async fn serve_on(dir: &std::path::Path, url: &str) -> NodeProcess {
    let data = dir.join("data");
    let init = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .arg("init")
        .arg("--data-dir")
        .arg(&data)
        .arg("--database-url")
        .arg(url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output();
    let init = within("berty-node init", init).await.unwrap();
    assert!(
        init.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let env: HashMap<String, String> = [
        ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0"),
        ("BERTY_NODE__LOG__FILTER", "error"),
        ("BERTY_NODE__STORAGE__DATABASE_URL", url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    NodeProcess::spawn(&["--data-dir", data.to_str().unwrap()], &env, dir).await
}

async fn create_group(client: &mut Client) -> Vec<u8> {
    within(
        "GroupCreate",
        client.group_create(pb::group_create::Request {}),
    )
    .await
    .unwrap()
    .into_inner()
    .group_pub_key
}

/// `/readyz`: status, body, and how long it took to answer.
async fn readyz(node: &NodeProcess) -> (u16, String, Duration) {
    let asked = Instant::now();
    let (status, body) = within("GET /readyz", http_get(node.admin_addr, "/readyz", None)).await;
    (status, body, asked.elapsed())
}

/// Polls `/readyz` (each answer within [`READYZ_WITHIN`]) until it answers `want`; the time
/// it took and the last body.
async fn readyz_until(node: &NodeProcess, want: u16, what: &str) -> (Duration, String) {
    let started = Instant::now();
    loop {
        let (status, body, took) = readyz(node).await;
        assert!(
            took < READYZ_WITHIN,
            "/readyz took {took:?} to answer ({what})"
        );
        if status == want {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/readyz still {status} ({what}): {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts a call failed fast with `UNAVAILABLE` naming the database.
fn assert_fails_fast<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, tonic::Status>,
    took: Duration,
    database: &str,
) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
    assert!(
        status.message().contains(database),
        "{what}: the message should name {database}: {:?}",
        status.message()
    );
    assert!(took < FAIL_WITHIN, "{what} took {took:?} to fail");
}

/// A PostgreSQL server of our own, stopped and started under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_under_load() {
    let outages = env_number("BERTY_OUTAGE_ROUNDS", u64::from(OUTAGE_ROUNDS));
    let outage_len = Duration::from_secs(env_number("BERTY_OUTAGE_SECS", OUTAGE_SECS));
    let pg = PgServer::start();
    let database = format!("PostgreSQL at 127.0.0.1:{}/postgres", pg.port);
    let dir = tempfile::tempdir().unwrap();
    let node = serve_on(dir.path(), &pg.url()).await;
    let mut client = connect(&node).await;
    let busy = create_group(&mut client).await;
    // A group nobody sends to before the outage: its store is first started during it.
    let idle = create_group(&mut client).await;
    assert_eq!(readyz(&node).await.0, 200);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..SENDERS / 2 {
        let mut client = client.clone();
        let group = busy.clone();
        let ledger = ledger.clone();
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = format!("sender {t} message {i}").into_bytes();
                let started = Instant::now();
                let result = common::protocol::send(&mut client, &group, &body).await;
                let took = started.elapsed();
                let failed = {
                    let mut ledger = ledger.lock().unwrap();
                    match result {
                        Ok(id) => {
                            ledger.acked.insert(body, id);
                            ledger.acked_at.push(started);
                            false
                        }
                        Err(status) => {
                            ledger.failures.push(Failure {
                                started,
                                took,
                                code: status.code(),
                                message: status.message().to_string(),
                            });
                            true
                        }
                    }
                };
                if failed {
                    // Pace the retries of a client that was told the database is down.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let acked_since = |since: Instant| {
        let ledger = ledger.lock().unwrap();
        ledger.acked_at.iter().filter(|t| **t >= since).count()
    };
    let load_started = Instant::now();
    while acked_since(load_started) < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(load_started.elapsed() < Duration::from_secs(60), "no load");
    }

    let mut windows = Vec::new();
    for outage in 0..outages {
        let stopping = Instant::now();
        pg.stop_fast();
        let stopped = Instant::now();
        let stop_took = stopped - stopping;
        let (to_not_ready, body) = readyz_until(&node, 503, "while PostgreSQL is down").await;
        assert!(
            body.contains(&database),
            "/readyz names the database: {body}"
        );
        assert!(
            to_not_ready < FAIL_WITHIN,
            "/readyz took {to_not_ready:?} to say not ready"
        );

        // Calls fail fast, naming the database: a send to the busy group, a send to a group
        // whose store was never started (it used to say "group store actor is gone"), and
        // an export.
        let mut c = client.clone();
        let asked = Instant::now();
        let sent = common::protocol::send(&mut c, &busy, b"during the outage").await;
        assert_fails_fast("a send", sent, asked.elapsed(), &database);
        if outage == 0 {
            let asked = Instant::now();
            let sent = common::protocol::send(&mut c, &idle, b"to the idle group").await;
            assert_fails_fast("a send to an idle group", sent, asked.elapsed(), &database);
        }
        let asked = Instant::now();
        let exported = c
            .instance_export_data(pb::instance_export_data::Request {})
            .await;
        assert_fails_fast("an export", exported, asked.elapsed(), &database);
        assert_eq!(metric(&node, "berty_node_storage_up").await, 0.0);

        // The outage lasts its scheduled time (the scenario, not a synchronisation).
        tokio::time::sleep_until((stopped + outage_len).into()).await;
        pg.start_server();
        let restarted = Instant::now();
        let (to_ready, _) = readyz_until(&node, 200, "after PostgreSQL is back").await;
        while acked_since(restarted) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(
                restarted.elapsed() < Duration::from_secs(30),
                "writes did not resume after PostgreSQL came back"
            );
        }
        let first_ack = {
            let ledger = ledger.lock().unwrap();
            ledger
                .acked_at
                .iter()
                .filter(|t| **t >= restarted)
                .min()
                .copied()
                .unwrap()
        };
        let ready_at = Instant::now();
        windows.push((stopping, ready_at));
        let to_write = first_ack.duration_since(restarted);
        println!(
            "crash-harness: outage {}: fast shutdown {stop_took:.2?}, down {:.1?}, /readyz 503 \
             {to_not_ready:.2?} after it, \
             /readyz 200 {to_ready:.2?} after restart, first acknowledged send started \
             {to_write:.2?} after restart",
            outage + 1,
            restarted - stopped,
        );
        assert_eq!(metric(&node, "berty_node_storage_up").await, 1.0);
        // Writes flow again.
        let resumed = Instant::now();
        while acked_since(resumed) < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(
                resumed.elapsed() < Duration::from_secs(60),
                "writes stalled"
            );
        }
    }
    // The group whose store started during the outage works too.
    let mut c = client.clone();
    within(
        "a send to the idle group",
        common::protocol::send(&mut c, &idle, b"after the outage"),
    )
    .await
    .expect("the idle group's store recovered");

    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        within("the senders stop", sender).await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger)
        .ok()
        .expect("senders are done")
        .into_inner()
        .unwrap();

    // Every failure came during an outage, fast, as UNAVAILABLE naming the database.
    let slowest_failure = ledger
        .failures
        .iter()
        .map(|f| f.took)
        .max()
        .unwrap_or_default();
    for failure in &ledger.failures {
        assert!(
            windows
                .iter()
                .any(|(from, to)| failure.started + failure.took >= *from
                    && failure.started <= *to),
            "a send failed outside an outage: {failure:?}"
        );
        assert_eq!(failure.code, Code::Unavailable, "{failure:?}");
        assert!(failure.message.contains(&database), "{failure:?}");
        assert!(failure.took < FAIL_WITHIN, "{failure:?}");
    }

    // Nothing acknowledged is lost or duplicated.
    let (status, body) = http_get(node.admin_addr, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let mut reader = connect(&node).await;
    let history = common::protocol::drain(
        common::protocol::messages(&mut reader, &busy, common::protocol::Range::backwards())
            .await
            .unwrap(),
    )
    .await;
    let mut stored: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for reply in &history {
        let event = reply.event.as_ref().unwrap();
        stored
            .entry(event.payload.clone())
            .or_default()
            .push(common::protocol::StoreEvent::id(event));
    }
    let lost = ledger
        .acked
        .iter()
        .filter(|(payload, id)| stored.get(*payload).is_none_or(|ids| !ids.contains(id)))
        .count();
    let duplicated = stored.values().filter(|ids| ids.len() > 1).count();
    println!(
        "crash-harness: outages {outages} x {outage_len:?}: {} acknowledged, {} failed \
         (slowest failure {slowest_failure:.2?}), {} stored, lost {lost}, duplicated \
         {duplicated}",
        ledger.acked.len(),
        ledger.failures.len(),
        history.len()
    );
    assert_eq!((lost, duplicated), (0, 0), "acknowledged messages lost");
    drop(node);
    drop(pg);
}

/// `serve` on a PostgreSQL that is not there exits non-zero at once, saying why (it used to
/// wait 10 s and say "pool timed out").
#[tokio::test]
async fn unreachable_postgres_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env(
            "BERTY_NODE__STORAGE__DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/x",
        )
        .env("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0")
        .env("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0")
        .env("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), child)
        .await
        .expect("serve exits")
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve must fail: {stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the error says why: {stderr}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}: {stderr}");
}
