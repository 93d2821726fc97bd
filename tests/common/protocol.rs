//! Helpers for the `ProtocolService` integration tests: a node instance on SQLite or
//! PostgreSQL (the real binary, port 0 everywhere), its identity, restarts, and small helpers
//! for calls, statuses and streams.
//!
//! Each scenario is written once as `async fn scenario(backend: Backend)` and instantiated on
//! both backends with [`both_backends!`].

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::Duration,
};

use berty_node::proto::berty_protocol::{
    self as pb, protocol_service_client::ProtocolServiceClient,
};
use tonic::{transport::Channel, Code, Status, Streaming};

use super::{node::NodeProcess, postgres::TestDatabase};

/// The gRPC client the tests use.
pub type Client = ProtocolServiceClient<Channel>;

/// Bound for one awaited call or stream item (a hang fails the test instead of blocking it).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest gRPC message the test clients send or accept (the node accepts 64 MiB).
const CLIENT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Instantiates `async fn name(backend: Backend)` scenarios as one test per backend:
/// `sqlite::name` and `postgres::name`.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::protocol::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::protocol::Backend::Postgres).await
                }
            )+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_backends;

/// Which storage backend a node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: an SQLite file in the data dir (`storage.database_url` empty).
    Sqlite,
    /// A fresh PostgreSQL database per instance.
    Postgres,
}

/// Awaits `fut`, failing the test after [`STEP_TIMEOUT`] with `what`.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP_TIMEOUT:?}: {what}"),
    }
}

/// Where one instance keeps its state, across restarts: a temporary directory (the data dir
/// is `data` inside it) and, on PostgreSQL, a database of its own.
pub struct Home {
    /// The backend.
    pub backend: Backend,
    dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

/// What `berty-node init` printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account's public key.
    pub account_pk: Vec<u8>,
    /// This device's key.
    pub device_pk: Vec<u8>,
    /// The libp2p peer id.
    pub peer_id: String,
}

impl Identity {
    fn parse(output: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let field = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
                .unwrap_or_else(|| panic!("init printed no {key}: {stdout}"))
                .to_string()
        };
        Self {
            account_pk: hex::decode(field("account_pk")).expect("hex account_pk"),
            device_pk: hex::decode(field("device_pk")).expect("hex device_pk"),
            peer_id: field("peer_id"),
        }
    }
}

impl Home {
    /// An empty home (and an empty database on PostgreSQL).
    pub async fn new(backend: Backend) -> Self {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        Self {
            backend,
            dir: tempfile::tempdir().expect("temp dir"),
            db,
        }
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A path for scratch files next to the data dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `storage.database_url`: empty (SQLite in the data dir) or this home's database.
    pub fn database_url(&self) -> &str {
        self.db.as_ref().map_or("", |db| db.url())
    }

    /// The environment of `serve`: port 0 everywhere, and the database on PostgreSQL.
    pub fn env(&self) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
            ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
            ("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0"),
            // Warnings and errors still show on stderr; info lines would drown the test output.
            ("BERTY_NODE__LOG__FILTER", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // BERTY_TEST_LOG=<filter> shows the nodes' logs (for debugging a test).
        if let Ok(filter) = std::env::var("BERTY_TEST_LOG") {
            env.insert("BERTY_NODE__LOG__FILTER".to_string(), filter);
        }
        if let Some(db) = &self.db {
            env.insert(
                "BERTY_NODE__STORAGE__DATABASE_URL".to_string(),
                db.url().to_string(),
            );
        }
        env
    }

    /// Runs `berty-node init --data-dir <data> [extra]` (with `--database-url` on PostgreSQL).
    pub async fn run_init(&self, extra: &[&str]) -> Output {
        self.run_init_in(&self.data_dir(), self.database_url(), extra)
            .await
    }

    /// Runs `berty-node init` on any data dir and database.
    pub async fn run_init_in(&self, data_dir: &Path, database_url: &str, extra: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"));
        command
            .arg("init")
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !database_url.is_empty() {
            command.arg("--database-url").arg(database_url);
        }
        within("berty-node init", command.output())
            .await
            .expect("run berty-node init")
    }

    /// `berty-node init`: creates the keys (or reads them) and returns the identity.
    pub async fn init(&self) -> Identity {
        let output = self.run_init(&[]).await;
        assert!(
            output.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Identity::parse(&output)
    }

    /// `berty-node init --import FILE` (or `--restore FILE`) into this empty home.
    pub async fn import(&self, file: &Path, restore: bool) -> Identity {
        let flag = if restore { "--restore" } else { "--import" };
        let output = self
            .run_init(&[flag, file.to_str().expect("utf-8 path")])
            .await;
        assert!(
            output.status.success(),
            "init {flag} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Identity::parse(&output)
    }

    /// Starts `berty-node serve` on this home.
    pub async fn serve(&self) -> NodeProcess {
        self.serve_with(&[]).await
    }

    /// Starts `berty-node serve` on this home with extra environment variables.
    pub async fn serve_with(&self, extra: &[(&str, &str)]) -> NodeProcess {
        let data_dir = self.data_dir();
        let mut env = self.env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        NodeProcess::spawn(
            &["--data-dir", data_dir.to_str().expect("utf-8 path")],
            &env,
            self.dir.path(),
        )
        .await
    }
}

/// A running node, its home and identity, and a connected client.
pub struct TestNode {
    /// The child process (first: fields drop in order, so the process is killed before its
    /// home's database and data dir go away).
    pub process: NodeProcess,
    /// A connected client (clone it for concurrent calls).
    pub client: Client,
    /// The node's state.
    pub home: Home,
    /// Its keys.
    pub id: Identity,
}

/// A client connected to `process`, with the node's message size limits.
pub async fn connect(process: &NodeProcess) -> Client {
    process
        .grpc()
        .await
        .max_decoding_message_size(CLIENT_MAX_MESSAGE)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE)
}

impl TestNode {
    /// A fresh node on `backend`.
    pub async fn start(backend: Backend) -> Self {
        let home = Home::new(backend).await;
        let id = home.init().await;
        Self::serve(home, id).await
    }

    /// Serves an initialised home.
    pub async fn serve(home: Home, id: Identity) -> Self {
        Self::serve_with(home, id, &[]).await
    }

    /// Serves an initialised home with extra environment variables.
    pub async fn serve_with(home: Home, id: Identity, extra: &[(&str, &str)]) -> Self {
        let process = home.serve_with(extra).await;
        assert_eq!(
            process.peer_id, id.peer_id,
            "serve uses the data dir's peer key"
        );
        let client = connect(&process).await;
        Self {
            home,
            id,
            process,
            client,
        }
    }

    /// `kill -KILL` (no shutdown at all), then a new process on the same data dir and database.
    pub async fn sigkill_and_restart(self) -> Self {
        let Self {
            home, id, process, ..
        } = self;
        process.signal("KILL");
        let status = process.wait(STEP_TIMEOUT).await;
        assert!(
            !status.success(),
            "a killed node does not exit 0: {status:?}"
        );
        Self::serve(home, id).await
    }

    /// Stops the node with SIGKILL and returns its home (database and data dir kept).
    pub async fn kill(self) -> (Home, Identity) {
        let Self {
            home, id, process, ..
        } = self;
        process.signal("KILL");
        process.wait(STEP_TIMEOUT).await;
        (home, id)
    }

    /// A new group; returns its key.
    pub async fn create_group(&mut self) -> Vec<u8> {
        let reply = within(
            "GroupCreate",
            self.client.group_create(pb::group_create::Request {}),
        )
        .await
        .expect("GroupCreate")
        .into_inner();
        assert_eq!(
            reply.group_pub_key.len(),
            32,
            "GroupCreate returns the group key (ext 100)"
        );
        reply.group_pub_key
    }

    /// The invitation to a group.
    pub async fn invite(&mut self, group: &[u8]) -> Vec<u8> {
        let reply = within(
            "GroupInvite",
            self.client.group_invite(pb::group_invite::Request {
                group_pub_key: group.to_vec(),
            }),
        )
        .await
        .expect("GroupInvite")
        .into_inner();
        assert!(
            !reply.reference.is_empty(),
            "GroupInvite returns a reference"
        );
        reply.reference
    }

    /// Joins a group from its invitation.
    pub async fn join(&mut self, reference: &[u8], meta: &[u8]) {
        within(
            "GroupJoin",
            self.client.group_join(pb::group_join::Request {
                reference: reference.to_vec(),
                meta: meta.to_vec(),
            }),
        )
        .await
        .expect("GroupJoin");
    }

    /// Sends a message; returns its `event_id`.
    pub async fn send(&mut self, group: &[u8], payload: &[u8]) -> Vec<u8> {
        send(&mut self.client, group, payload)
            .await
            .expect("GroupMessageSend")
    }

    /// Every message event of a group, in total order (a backwards walk, reversed).
    pub async fn message_history(&mut self, group: &[u8]) -> Vec<pb::GroupMessageStoreEvent> {
        let mut events = drain(
            messages(&mut self.client, group, Range::backwards())
                .await
                .expect("GroupMessageSubscribe"),
        )
        .await;
        events.reverse();
        events
            .into_iter()
            .map(|r| r.event.expect("event"))
            .collect()
    }

    /// Every member event of a group, in total order.
    pub async fn member_history(&mut self, group: &[u8]) -> Vec<pb::GroupMemberStoreEvent> {
        let mut events = drain(
            members(&mut self.client, group, Range::backwards())
                .await
                .expect("GroupMemberSubscribe"),
        )
        .await;
        events.reverse();
        events
            .into_iter()
            .map(|r| r.event.expect("event"))
            .collect()
    }

    /// Every setting event of a group, in total order.
    pub async fn setting_history(&mut self, group: &[u8]) -> Vec<pb::GroupSettingStoreEvent> {
        let mut events = drain(
            settings(&mut self.client, group, Range::backwards())
                .await
                .expect("GroupSettingSubscribe"),
        )
        .await;
        events.reverse();
        events
            .into_iter()
            .map(|r| r.event.expect("event"))
            .collect()
    }

    /// Every account event, in total order.
    pub async fn account_history(&mut self) -> Vec<pb::AccountStoreEvent> {
        let mut events = drain(
            account(&mut self.client, Range::backwards())
                .await
                .expect("AccountSubscribe"),
        )
        .await;
        events.reverse();
        events
            .into_iter()
            .map(|r| r.event.expect("event"))
            .collect()
    }

    /// This account's contact reference (empty while requests are disabled).
    pub async fn contact_reference(&mut self) -> Vec<u8> {
        within(
            "ContactRequestReference",
            self.client
                .contact_request_reference(pb::contact_request_reference::Request {}),
        )
        .await
        .expect("ContactRequestReference")
        .into_inner()
        .reference
    }

    /// Turns contact requests on.
    pub async fn enable_contact_requests(&mut self) {
        within(
            "ContactRequestEnable",
            self.client
                .contact_request_enable(pb::contact_request_enable::Request {}),
        )
        .await
        .expect("ContactRequestEnable");
    }

    /// InstanceExportData, written to `path`.
    pub async fn export_to(&mut self, path: &Path) -> Vec<u8> {
        let data = within(
            "InstanceExportData",
            self.client
                .instance_export_data(pb::instance_export_data::Request {}),
        )
        .await
        .expect("InstanceExportData")
        .into_inner()
        .exported_data;
        assert!(!data.is_empty(), "the export is not empty");
        std::fs::write(path, &data).expect("write the export");
        data
    }
}

/// `GroupMessageSend`; returns the `event_id` (extension 100).
pub async fn send(client: &mut Client, group: &[u8], payload: &[u8]) -> Result<Vec<u8>, Status> {
    let reply = within(
        "GroupMessageSend",
        client.group_message_send(pb::group_message_send::Request {
            group_pub_key: group.to_vec(),
            payload: payload.to_vec(),
        }),
    )
    .await?
    .into_inner();
    assert_eq!(
        reply.event_id.len(),
        32,
        "GroupMessageSend returns the entry id (ext 100)"
    );
    Ok(reply.event_id)
}

/// The range fields every `*Subscribe.Request` has.
#[derive(Debug, Clone, Default)]
pub struct Range {
    /// First id (inclusive).
    pub since: Vec<u8>,
    /// Last id (inclusive).
    pub until: Vec<u8>,
    /// Walk backwards, then end.
    pub go_backwards: bool,
    /// Resume strictly after this cursor (extension 100).
    pub since_cursor: u64,
}

impl Range {
    /// Everything, then live.
    pub fn live() -> Self {
        Self::default()
    }

    /// Everything, newest first, then the end.
    pub fn backwards() -> Self {
        Self {
            go_backwards: true,
            ..Self::default()
        }
    }

    /// `since`..=`until` (either may be empty).
    pub fn between(since: &[u8], until: &[u8]) -> Self {
        Self {
            since: since.to_vec(),
            until: until.to_vec(),
            ..Self::default()
        }
    }

    /// Strictly after `cursor`, then live.
    pub fn after_cursor(cursor: u64) -> Self {
        Self {
            since_cursor: cursor,
            ..Self::default()
        }
    }

    /// The same range walked backwards.
    pub fn reversed(mut self) -> Self {
        self.go_backwards = true;
        self
    }
}

/// `GroupMessageSubscribe`.
pub async fn messages(
    client: &mut Client,
    group: &[u8],
    range: Range,
) -> Result<Streaming<pb::group_message_subscribe::Reply>, Status> {
    let request = pb::group_message_subscribe::Request {
        group_pub_key: group.to_vec(),
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    };
    Ok(within(
        "GroupMessageSubscribe",
        client.group_message_subscribe(request),
    )
    .await?
    .into_inner())
}

/// `GroupMemberSubscribe`.
pub async fn members(
    client: &mut Client,
    group: &[u8],
    range: Range,
) -> Result<Streaming<pb::group_member_subscribe::Reply>, Status> {
    let request = pb::group_member_subscribe::Request {
        group_pub_key: group.to_vec(),
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    };
    Ok(within(
        "GroupMemberSubscribe",
        client.group_member_subscribe(request),
    )
    .await?
    .into_inner())
}

/// `GroupSettingSubscribe`.
pub async fn settings(
    client: &mut Client,
    group: &[u8],
    range: Range,
) -> Result<Streaming<pb::group_setting_store_subscribe::Reply>, Status> {
    let request = pb::group_setting_store_subscribe::Request {
        group_pub_key: group.to_vec(),
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    };
    Ok(within(
        "GroupSettingSubscribe",
        client.group_setting_subscribe(request),
    )
    .await?
    .into_inner())
}

/// `AccountSubscribe`.
pub async fn account(
    client: &mut Client,
    range: Range,
) -> Result<Streaming<pb::account_subscribe::Reply>, Status> {
    let request = pb::account_subscribe::Request {
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    };
    Ok(
        within("AccountSubscribe", client.account_subscribe(request))
            .await?
            .into_inner(),
    )
}

/// The next item of a stream that must not end or fail.
pub async fn next<T>(stream: &mut Streaming<T>) -> T {
    match within("the next stream item", stream.message()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the stream ended early"),
        Err(status) => panic!("the stream failed: {status:?}"),
    }
}

/// The next `n` items of a stream.
pub async fn take<T>(stream: &mut Streaming<T>, n: usize) -> Vec<T> {
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(next(stream).await);
    }
    items
}

/// Every item of a stream that ends (a bounded or backwards range).
pub async fn drain<T>(mut stream: Streaming<T>) -> Vec<T> {
    let mut items = Vec::new();
    loop {
        match within("a finite stream", stream.message()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return items,
            Err(status) => panic!("the stream failed: {status:?}"),
        }
    }
}

/// Asserts `result` is an error with `code` whose message mentions `needle` (case-insensitive).
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    needle: &str,
    what: &str,
) {
    match result {
        Ok(value) => panic!("{what}: expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "{what}: expected {code:?}, got {:?}: {}",
                status.code(),
                status.message()
            );
            assert!(
                status
                    .message()
                    .to_lowercase()
                    .contains(&needle.to_lowercase()),
                "{what}: the {code:?} message should mention {needle:?}: {:?}",
                status.message()
            );
        }
    }
}

/// The group store event of a message, member or setting event.
pub trait StoreEvent {
    /// The common part.
    fn store(&self) -> &pb::GroupStoreEvent;

    /// `EventBase.id`.
    fn id(&self) -> Vec<u8> {
        self.store()
            .event_base
            .as_ref()
            .expect("event_base")
            .id
            .clone()
    }

    /// `EventBase.parent_ids`.
    fn parents(&self) -> Vec<Vec<u8>> {
        self.store()
            .event_base
            .as_ref()
            .expect("event_base")
            .parent_ids
            .clone()
    }

    /// The arrival cursor (extension 110).
    fn cursor(&self) -> u64 {
        self.store().cursor
    }
}

impl StoreEvent for pb::GroupMessageStoreEvent {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.group_store_event.as_ref().expect("group_store_event")
    }
}

impl StoreEvent for pb::GroupMemberStoreEvent {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.group_store_event.as_ref().expect("group_store_event")
    }
}

impl StoreEvent for pb::GroupSettingStoreEvent {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.group_store_event.as_ref().expect("group_store_event")
    }
}

impl StoreEvent for pb::group_message_subscribe::Reply {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.event.as_ref().expect("event").store()
    }
}

impl StoreEvent for pb::group_member_subscribe::Reply {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.event.as_ref().expect("event").store()
    }
}

impl StoreEvent for pb::group_setting_store_subscribe::Reply {
    fn store(&self) -> &pb::GroupStoreEvent {
        self.event.as_ref().expect("event").store()
    }
}

/// The payload of a message reply.
pub fn payload(reply: &pb::group_message_subscribe::Reply) -> &[u8] {
    &reply.event.as_ref().expect("event").payload
}

/// Ids of store events.
pub fn ids<E: StoreEvent>(events: &[E]) -> Vec<Vec<u8>> {
    events.iter().map(StoreEvent::id).collect()
}

/// Asserts the events are a valid topological order: every id is 32 bytes and unique, and
/// every parent that is in the list comes before its child. When `complete`, every parent must
/// be in the list (a log whose every entry is shown).
pub fn assert_parents_first<E: StoreEvent>(events: &[E], complete: bool) {
    let all: HashSet<Vec<u8>> = events.iter().map(StoreEvent::id).collect();
    let mut seen = HashSet::new();
    for (i, event) in events.iter().enumerate() {
        let id = event.id();
        assert_eq!(id.len(), 32, "event {i}: id is 32 bytes");
        for parent in event.parents() {
            assert_eq!(parent.len(), 32, "event {i}: parent id is 32 bytes");
            if complete || all.contains(&parent) {
                assert!(
                    seen.contains(&parent),
                    "event {i}: a parent comes after its child"
                );
            }
        }
        assert!(seen.insert(id), "event {i}: duplicate id");
    }
}

/// Asserts cursors strictly increase (arrival order).
pub fn assert_cursors_increase(cursors: &[u64]) {
    assert!(
        cursors.iter().all(|&c| c > 0),
        "cursors are set: {cursors:?}"
    );
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors strictly increase: {cursors:?}"
    );
}

/// A valid Ed25519 public key that no group or account here uses.
pub fn random_key() -> Vec<u8> {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
        .verifying_key()
        .to_bytes()
        .to_vec()
}

/// Random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// Malformed group or contact keys, each with what is wrong with it: wrong lengths, 32 bytes
/// that are not a curve point, a non-canonical encoding, and low-order points.
pub fn malformed_keys() -> Vec<(&'static str, Vec<u8>)> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    // The smallest y that is not the y of a curve point.
    let not_a_point = (2u8..=255)
        .map(|y| {
            let mut bytes = [0u8; 32];
            bytes[0] = y;
            bytes
        })
        .find(|bytes| CompressedEdwardsY(*bytes).decompress().is_none())
        .expect("some small y is off the curve");
    // y = p (2^255 - 19): a non-canonical encoding of y = 0.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xed;
    non_canonical[31] = 0x7f;
    // The identity (y = 1) and the point of order 2 (y = -1): low order.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut order_two = [0xffu8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    vec![
        ("empty", Vec::new()),
        ("31 bytes", random_key()[..31].to_vec()),
        ("33 bytes", [random_key(), vec![0]].concat()),
        ("not a curve point", not_a_point.to_vec()),
        ("non-canonical encoding", non_canonical.to_vec()),
        ("low order (identity)", identity.to_vec()),
        ("low order (order 2)", order_two.to_vec()),
    ]
}

/// The value of an unlabelled metric on the node's `/metrics` endpoint.
pub async fn metric(process: &NodeProcess, name: &str) -> f64 {
    metric_value(process, name)
        .await
        .unwrap_or_else(|| panic!("no metric {name} on /metrics"))
}

/// The value of `name` (labels included, as rendered) in `/metrics`, if it has a sample.
async fn metric_value(process: &NodeProcess, name: &str) -> Option<f64> {
    let (status, body) = within(
        "GET /metrics",
        super::node::http_get(process.admin_addr, "/metrics", None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// Polls `/metrics` until `name` is at least `value` (see [`wait_for_metric`]).
pub async fn wait_for_metric_at_least(process: &NodeProcess, name: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let current = metric_or_zero(process, name).await;
        if current >= value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {current}, expected at least {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of `name` in `/metrics`, 0 while the metric has no sample yet (a labelled
/// counter appears on its first increment).
pub async fn metric_or_zero(process: &NodeProcess, name: &str) -> f64 {
    metric_value(process, name).await.unwrap_or(0.0)
}

/// Polls `/metrics` until `name` equals `value`. The node has no push notification for its
/// internal state, so this is the one place the tests poll (a bounded loop, no fixed delay
/// standing in for synchronisation).
pub async fn wait_for_metric(process: &NodeProcess, name: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        let current = metric(process, name).await;
        if current == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed at {current}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
