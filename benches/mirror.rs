//! Benchmarks of the store-and-forward mirror, with real `berty-node` processes on loopback
//! (bench profile, ports 0), on SQLite (and on PostgreSQL when named).
//!
//! - `mirror_catch_up`: A creates a group, C joins it (so A's chain key reaches C), then C
//!   stops. A registers the group with mirror M, writes N messages (64 senders), and M stores
//!   them all; then A stops too. C starts again with M as its only bootstrap peer: from C's
//!   process start, and from its subscription opening, until the subscription has delivered
//!   all N: entries/s and seconds (SPEC: 100,000 in < 5 s).
//! - `mirror_rss_idle`: the resident memory of a mirror node started on an empty store and
//!   left alone (SPEC: < 40 MB).
//! - `mirror_rss_groups`: the same node once it serves G registered groups (10,000 by
//!   default) that are idle (SPEC: < 300 MB). The groups are real groups (keys and creation
//!   proofs made here with the node's own crypto) written to the mirror's tables by this
//!   process, as registrations would write them; the node loads them itself (it reloads its
//!   groups every 2 s) and serves each with two blind stores, a gossip topic and its discovery
//!   keys. RSS is sampled for 10 s once the node reports the G groups; the figure is the
//!   largest sample.
//!
//! `cargo bench --bench mirror` runs SQLite only; `-- --quick`: N 20,000 and G 2,000;
//! `-- postgres` or `-- sqlite postgres` chooses the backends. Environment: `BERTY_BENCH_N`
//! (messages, default 100,000), `BERTY_BENCH_GROUPS` (10,000), `BERTY_BENCH_CONCURRENCY`
//! (64), `BERTY_BENCH_DIR`, `BERTY_NODE_TEST_POSTGRES_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/common/node.rs"]
mod node;
#[allow(dead_code)]
mod support;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use berty_node::{
    crypto::{GroupGenesis, SigningKey},
    proto::{
        berty_protocol::{self as pb, protocol_service_client::ProtocolServiceClient},
        node_api::{mirror_register, mirror_service_client::MirrorServiceClient},
    },
};
use node::NodeProcess;
use rand::rngs::OsRng;
use support::{index_of, payload, Backend, Figures, NodeStore, Options};
use tonic::transport::Channel;

type Client = ProtocolServiceClient<Channel>;

/// Admin token of the benchmark's nodes.
const ADMIN_TOKEN: &str = "bench";
/// How long RSS is sampled once the groups are served.
const RSS_WINDOW: Duration = Duration::from_secs(10);
/// How often RSS and the admin views are polled.
const POLL: Duration = Duration::from_millis(100);
/// A wait that sees no progress for this long ends the phase as `INCOMPLETE`.
const STALL: Duration = Duration::from_secs(120);

struct Settings {
    base: Options,
    messages: u64,
    groups: u64,
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
        let (messages, groups) = if quick {
            (20_000, 2_000)
        } else {
            (100_000, 10_000)
        };
        Self {
            base,
            messages: number("BERTY_BENCH_N", messages).max(1),
            groups: number("BERTY_BENCH_GROUPS", groups).max(1),
        }
    }
}

/// One running node, its store and a client; restartable on the same store.
struct Node {
    process: NodeProcess,
    store: NodeStore,
    client: Client,
}

impl Node {
    async fn start(backend: Backend, options: &Options) -> Self {
        let store = NodeStore::create(backend, options).await;
        Self::serve(store, None).await
    }

    async fn serve(store: NodeStore, bootstrap: Option<&str>) -> Self {
        let mut env = store.env();
        env.insert("BERTY_NODE__P2P__REPLICATION".into(), "true".into());
        env.insert("BERTY_NODE__P2P__MDNS".into(), "false".into());
        env.insert("BERTY_NODE__ADMIN__TOKEN".into(), ADMIN_TOKEN.into());
        if let Some(peer) = bootstrap {
            env.insert("BERTY_NODE__P2P__BOOTSTRAP".into(), peer.to_owned());
        }
        let data_dir = store.data_dir();
        let process = NodeProcess::spawn(
            &["--data-dir", data_dir.to_str().expect("utf-8 temp path")],
            &env,
            store.dir(),
        )
        .await;
        let channel = Channel::from_shared(format!("http://{}", process.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect");
        Self {
            process,
            store,
            client: Client::new(channel).max_decoding_message_size(64 << 20),
        }
    }

    /// Stops the process (SIGKILL) and keeps the store.
    fn stop(self) -> NodeStore {
        let Self { process, store, .. } = self;
        drop(process);
        store
    }

    fn addr(&self) -> String {
        self.process.p2p_addrs[0].clone()
    }

    async fn admin(&self, method: &str, path: &str) -> serde_json::Value {
        let (status, body) = node::http_request(
            self.process.admin_addr,
            method,
            path,
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        serde_json::from_str(&body).unwrap()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

async fn send_concurrent(node: &Node, group: &[u8], count: u64, concurrency: usize) {
    let next = Arc::new(AtomicU64::new(0));
    let group: Arc<[u8]> = group.into();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = node.client.clone();
            let next = next.clone();
            let group = group.clone();
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return;
                    }
                    client
                        .group_message_send(pb::group_message_send::Request {
                            group_pub_key: group.to_vec(),
                            payload: payload(index),
                        })
                        .await
                        .expect("send");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Polls the mirror's groups view until its first group holds `entries`; false on a stall.
async fn wait_for_mirrored(mirror: &Node, entries: u64) -> bool {
    let mut last = (0, Instant::now());
    loop {
        let groups = mirror.admin("GET", "/admin/v1/mirror/groups").await;
        let held = groups[0]["entries"].as_u64().unwrap_or(0);
        if held >= entries {
            return true;
        }
        if held != last.0 {
            last = (held, Instant::now());
        } else if last.1.elapsed() > STALL {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn catch_up(backend: Backend, settings: &Settings, figures: &mut Figures) {
    let b = backend.name();
    let options = &settings.base;
    let n = settings.messages;
    let mirror = Node::start(backend, options).await;
    let mut a = Node::start(backend, options).await;
    let group = a
        .client
        .group_create(pb::group_create::Request {})
        .await
        .unwrap()
        .into_inner()
        .group_pub_key;
    let invite = a
        .client
        .group_invite(pb::group_invite::Request {
            group_pub_key: group.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .reference;
    let store_c = NodeStore::create(backend, options).await;
    let mut c = Node::serve(store_c, Some(&a.addr())).await;
    c.client
        .group_join(pb::group_join::Request {
            reference: invite,
            meta: b"c".to_vec(),
        })
        .await
        .unwrap();
    // C holds A's chain key once A's first message opens on C.
    a.client
        .group_message_send(pb::group_message_send::Request {
            group_pub_key: group.clone(),
            payload: payload(u64::MAX >> 1),
        })
        .await
        .unwrap();
    let mut first = subscribe(&mut c, &group).await;
    first
        .message()
        .await
        .unwrap()
        .expect("C reads A's first message");
    drop(first);
    let store_c = c.stop();

    let token = mirror.admin("POST", "/admin/v1/mirror/tokens").await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    MirrorServiceClient::connect(format!("http://{}", a.process.grpc_addr))
        .await
        .expect("connect")
        .mirror_register(mirror_register::Request {
            group_pk: group.clone(),
            mirror_addr: mirror.addr(),
            token,
        })
        .await
        .expect("register with the mirror");
    let started = Instant::now();
    send_concurrent(&a, &group, n, options.concurrency).await;
    let wrote = started.elapsed();
    let metadata = 6;
    let stored = wait_for_mirrored(&mirror, n + 1 + metadata).await;
    let mirrored = started.elapsed();
    println!(
        "{b} mirror_catch_up fill: A wrote {n} messages in {:.2} s; the mirror held them {} at {:.2} s",
        secs(wrote),
        if stored { "all" } else { "NOT all (stalled)" },
        secs(mirrored)
    );
    drop(a.stop());

    let spawned = Instant::now();
    let mut c = Node::serve(store_c, Some(&mirror.addr())).await;
    let up = spawned.elapsed();
    let opened = Instant::now();
    let mut stream = subscribe(&mut c, &group).await;
    let mut seen = HashSet::new();
    let mut last_progress = Instant::now();
    while (seen.len() as u64) < n {
        match tokio::time::timeout(STALL, stream.message()).await {
            Ok(Ok(Some(reply))) => {
                let payload = reply.event.map(|e| e.payload).unwrap_or_default();
                if let Some(index) = index_of(&payload).filter(|i| *i < n) {
                    seen.insert(index);
                    last_progress = Instant::now();
                }
            }
            _ => break,
        }
    }
    let done = last_progress;
    let complete = seen.len() as u64 == n;
    figures.add(
        b,
        "mirror_catch_up",
        format!(
            "{:.0} entries/s; {:.2} s from C's start ({:.2} s from its subscription) for {}/{n}{} (started in {:.0} ms, bootstrap: the mirror only) (SPEC: 100,000 in < 5 s)",
            seen.len() as f64 / secs(done.duration_since(spawned)).max(1e-9),
            secs(done.duration_since(spawned)),
            secs(done.duration_since(opened)),
            seen.len(),
            if complete { "" } else { " INCOMPLETE" },
            up.as_secs_f64() * 1e3,
        ),
    );
    if complete {
        let took = secs(done.duration_since(spawned));
        figures.measure(b, "catch_up_from_mirror", took, &format!("s/{n}"));
    }
    drop(stream);
    drop(c);
    drop(mirror);
}

async fn subscribe(
    node: &mut Node,
    group: &[u8],
) -> tonic::Streaming<pb::group_message_subscribe::Reply> {
    node.client
        .group_message_subscribe(pb::group_message_subscribe::Request {
            group_pub_key: group.to_vec(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// Writes `count` mirrored groups (real keys and proofs) under a token of their own straight
/// into the mirror's tables, as registrations would.
async fn register_groups_in_database(mirror: &Node, count: u64) {
    let url = match &mirror.store.database {
        Some(db) => db.url().to_owned(),
        None => String::new(),
    };
    let storage = berty_node::storage::open(&url, &mirror.store.data_dir())
        .await
        .expect("open the mirror's database");
    let token = berty_node::storage::mirror::NewToken {
        id: "bench".into(),
        token_hash: [7; 32],
        label: "bench".into(),
        max_groups: count,
        max_bytes: u64::MAX >> 2,
        created_at: 0,
    };
    storage.mirror().insert_token(&token).await.unwrap();
    let creator = SigningKey::generate(&mut OsRng).verifying_key();
    for _ in 0..count {
        let (keys, proof) = GroupGenesis::generate(&mut OsRng).finish(&creator).unwrap();
        let group = berty_node::storage::mirror::NewMirroredGroup {
            group_pk: keys.group_pk().to_bytes(),
            signing_pk: keys.signing_pk().to_bytes(),
            link_key: *keys.link_key().as_bytes(),
            creation_proof: proof.encode(),
            token_id: token.id.clone(),
        };
        storage.mirror().register_group(&group, 0).await.unwrap();
    }
}

async fn rss(backend: Backend, settings: &Settings, figures: &mut Figures) {
    let b = backend.name();
    let count = settings.groups;
    let mirror = Node::start(backend, &settings.base).await;
    let mut idle = 0;
    let until = Instant::now() + RSS_WINDOW;
    while Instant::now() < until {
        idle = idle.max(mirror.rss_kib());
        tokio::time::sleep(POLL).await;
    }
    figures.add(
        b,
        "mirror_rss_idle",
        format!(
            "{:.1} MB (largest of {} s of samples) (SPEC: < 40 MB)",
            idle as f64 / 1024.0,
            RSS_WINDOW.as_secs()
        ),
    );
    figures.measure(b, "rss_idle", idle as f64 / 1024.0, "MB");
    let started = Instant::now();
    register_groups_in_database(&mirror, count).await;
    let written = started.elapsed();
    let mut served = false;
    while started.elapsed() < STALL {
        let (_, body) = node::http_get(mirror.process.admin_addr, "/metrics", None).await;
        let groups = body
            .lines()
            .find_map(|l| l.strip_prefix("berty_node_mirror_groups "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if groups as u64 >= count {
            served = true;
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let loaded = started.elapsed();
    let mut largest = 0;
    let until = Instant::now() + RSS_WINDOW;
    while Instant::now() < until {
        largest = largest.max(mirror.rss_kib());
        tokio::time::sleep(POLL).await;
    }
    figures.add(
        b,
        "mirror_rss_groups",
        format!(
            "{:.1} MB with {count} idle groups{} (written in {:.1} s, served after {:.1} s) (SPEC: < 300 MB for 10,000)",
            largest as f64 / 1024.0,
            if served { "" } else { " NOT ALL SERVED" },
            secs(written),
            secs(loaded),
        ),
    );
    if served {
        let mb = largest as f64 / 1024.0;
        figures.measure(b, "rss_mirrored_groups", mb, &format!("MB/{count}"));
    }
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "berty-node mirror benchmark: {} messages, {} groups, backends {:?}",
        settings.messages,
        settings.groups,
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
            rss(backend, &settings, &mut figures).await;
            catch_up(backend, &settings, &mut figures).await;
        });
    }
    figures.print_table();
}
