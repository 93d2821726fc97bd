//! Built-in constants and limits that are not operator settings, each documented.
//!
//! Operator-facing defaults (listen addresses, limits of the relay, rendezvous and mirror) live
//! in `config/default.toml`, which is embedded as the first configuration layer.

use std::time::Duration;

/// SQLite database file inside the data dir (used when `storage.database_url` is empty).
pub const SQLITE_FILE_NAME: &str = "berty-node.db";
/// File in the data dir holding the libp2p peer key (protobuf-encoded, mode 0600).
pub const PEER_KEY_FILE: &str = "peer.key";
/// File in the data dir holding the account's secret keys (mode 0600).
pub const ACCOUNT_KEY_FILE: &str = "account.key";
/// Lock file in the data dir, held (`flock`) while a node or `init` uses the dir; holds the pid.
pub const LOCK_FILE: &str = "node.lock";
/// File in the data dir holding the key that seals secret node values in the database (0600).
pub const STORAGE_KEY_FILE: &str = "storage.key";

/// Largest gRPC message accepted or sent (exports can be large).
pub const GRPC_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A group store actor with no traffic and no subscriber for this long is stopped.
pub const GROUP_STORE_IDLE: Duration = Duration::from_secs(300);
/// How often a group store actor checks whether it is idle.
pub const GROUP_STORE_IDLE_CHECK: Duration = Duration::from_secs(30);

/// Longest duration any setting or admin call may ask for (ten years): long enough to mean
/// "for good", far enough from the limits of the monotonic clock that adding it never overflows.
pub const MAX_DURATION_SECS: u64 = 10 * 365 * 24 * 60 * 60;

/// How long shutdown waits for servers and actors before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Prefix of every metric the node exports.
pub const METRICS_PREFIX: &str = "berty_node";
/// Prefix of environment variables that override config (`BERTY_NODE__SECTION__KEY`).
pub const ENV_PREFIX: &str = "BERTY_NODE";

/// Largest message payload accepted by `GroupMessageSend` (plaintext bytes).
pub const MAX_MESSAGE_PAYLOAD: usize = 1024 * 1024;
/// Largest `meta` accepted by `GroupJoin` and `ContactRequestEnqueue`: small enough for the
/// contact handshake's 2048-byte frames with keys and signatures around it.
pub const MAX_META: usize = 1024;
/// Largest setting key (UTF-8 bytes).
pub const MAX_SETTING_KEY: usize = 256;
/// Largest setting value.
pub const MAX_SETTING_VALUE: usize = 64 * 1024;
/// Largest app-specific account event payload.
pub const MAX_APP_EVENT: usize = 64 * 1024;
/// Events read from storage per page by subscriptions and exports.
pub const EVENT_PAGE: u32 = 512;
/// Replies buffered per subscription before the reader waits for the client.
pub const SUBSCRIPTION_BUFFER: usize = 256;
/// Bytes of replies buffered per subscription before the reader waits for the client (a
/// reply larger than this is sent alone). With [`SUBSCRIPTION_PAGE_BYTES`], this bounds what
/// one slow subscriber holds in the node, whatever the size of the messages.
pub const SUBSCRIPTION_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// Bytes a subscription aims to read from storage per page: pages shrink from
/// [`EVENT_PAGE`] events as events grow (never below [`SUBSCRIPTION_MIN_PAGE`]).
pub const SUBSCRIPTION_PAGE_BYTES: usize = 1024 * 1024;
/// Fewest events a subscription reads per page.
pub const SUBSCRIPTION_MIN_PAGE: u32 = 4;

/// Network events (connections, sync requests) queued for the replicator; beyond, the swarm
/// drops them (counted in `berty_node_p2p_network_events_dropped_total`).
pub const NETWORK_EVENT_QUEUE: usize = 8192;

/// How long start-up waits for every listen address to be bound.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a `Dial` (admin, bootstrap) waits for the connection before giving up.
pub const DIAL_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `/readyz` waits for the swarm task's answer.
pub const READY_SWARM_TIMEOUT: Duration = Duration::from_secs(1);
/// Most registrations listed in one page of `GET /admin/v1/rendezvous`.
pub const RENDEZVOUS_PAGE: u32 = 1000;
/// Most namespaces listed by `GET /admin/v1/rendezvous/namespaces`.
pub const RENDEZVOUS_NAMESPACES: u32 = 1000;
/// The accepted `admin.stats_period_ms`, in milliseconds.
pub const STATS_PERIOD_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
/// How much history of the dashboard's live figures the admin server keeps in memory.
pub const STATS_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How often expired rendezvous registrations are deleted and the registrations gauge
/// refreshed.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Entries or events written per transaction while importing.
pub const IMPORT_BATCH: usize = 500;

/// Mirror requests from the network waiting for the mirror actor; more are refused as busy.
pub const MIRROR_REQUEST_QUEUE: usize = 64;
/// How often a mirror deletes the entries past `mirror.retention_days`.
pub const MIRROR_PURGE_INTERVAL: Duration = Duration::from_secs(600);
