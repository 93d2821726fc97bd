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

/// Largest gRPC message accepted or sent (exports can be large).
pub const GRPC_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A group store actor with no traffic and no subscriber for this long is stopped.
pub const GROUP_STORE_IDLE: Duration = Duration::from_secs(300);
/// How often a group store actor checks whether it is idle.
pub const GROUP_STORE_IDLE_CHECK: Duration = Duration::from_secs(30);

/// How long shutdown waits for servers and actors before giving up.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Prefix of every metric the node exports.
pub const METRICS_PREFIX: &str = "berty_node";
/// Prefix of environment variables that override config (`BERTY_NODE__SECTION__KEY`).
pub const ENV_PREFIX: &str = "BERTY_NODE";
