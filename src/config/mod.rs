//! Configuration: built-in defaults, a TOML file, environment variables, then flags.
//!
//! The built-in defaults are `config/default.toml`, embedded at build time, which also
//! documents every key. Environment variables are `BERTY_NODE__SECTION__KEY` (lists
//! comma-separated). Everything is validated once into [`NodeConfig`]; errors name the key.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use config::{Environment, File, FileFormat};
use libp2p::{multiaddr::Protocol, Multiaddr};
use serde::Deserialize;

use crate::defaults::{self, MAX_DURATION_SECS};

mod strict;

/// The built-in defaults, and the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Keys whose environment value is a comma-separated list.
const LIST_KEYS: [&str; 4] = [
    "p2p.listen",
    "p2p.bootstrap",
    "p2p.rendezvous",
    "p2p.external_addresses",
];

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The layers could not be read or merged, or a value has the wrong type. (Not a
    /// `#[source]`: its text is already in this message, and would be printed twice.)
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    /// A value has the right type but is not acceptable.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// The dotted key, as in the TOML file.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        Self::Load(error)
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--grpc-listen`.
    pub grpc_listen: Option<String>,
    /// `--admin-listen`.
    pub admin_listen: Option<String>,
    /// `--p2p-listen` (repeatable).
    pub p2p_listen: Vec<String>,
}

/// Where the layers come from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// TOML file given with `--config`.
    pub file: Option<PathBuf>,
    /// Environment to read `BERTY_NODE__*` from; `None` reads the process environment.
    pub env: Option<HashMap<String, String>>,
    /// Command-line flags.
    pub overrides: Overrides,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: PathBuf,
    storage: RawStorage,
    api: RawTokenServer,
    admin: RawAdmin,
    p2p: RawP2p,
    relay: RelayConfig,
    rendezvous: RendezvousConfig,
    mirror: MirrorConfig,
    contacts: RawContacts,
    log: LogConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContacts {
    #[serde(deserialize_with = "strict::u64")]
    rendezvous_period_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    database_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokenServer {
    grpc_listen: String,
    token: String,
    token_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: String,
    token: String,
    token_file: String,
    #[serde(deserialize_with = "strict::u64")]
    stats_period_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawP2p {
    listen: Vec<String>,
    bootstrap: Vec<String>,
    rendezvous: Vec<String>,
    external_addresses: Vec<String>,
    #[serde(deserialize_with = "strict::bool")]
    mdns: bool,
    #[serde(deserialize_with = "strict::u32")]
    max_connections: u32,
    #[serde(deserialize_with = "strict::u32")]
    max_connections_per_peer: u32,
    #[serde(deserialize_with = "strict::u32")]
    max_pending_incoming: u32,
    #[serde(deserialize_with = "strict::u64")]
    penalty_secs: u64,
    #[serde(deserialize_with = "strict::bool")]
    replication: bool,
    #[serde(deserialize_with = "strict::bool")]
    test_controls: bool,
}

/// libp2p connection limits (`p2p.max_connections`, `p2p.max_connections_per_peer`,
/// `p2p.max_pending_incoming`); every value is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimitsConfig {
    /// Established connections at once, all peers and directions together.
    pub max_connections: u32,
    /// Established connections at once with one peer.
    pub max_connections_per_peer: u32,
    /// Inbound connections still in their handshake at once.
    pub max_pending_incoming: u32,
}

/// Circuit relay v2 server limits (`relay.*`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Serve as a relay.
    #[serde(deserialize_with = "strict::bool")]
    pub enabled: bool,
    /// Reservations held at once, all peers together.
    #[serde(deserialize_with = "strict::u32")]
    pub max_reservations: u32,
    /// Reservations held at once by one peer.
    #[serde(deserialize_with = "strict::u32")]
    pub max_reservations_per_peer: u32,
    /// Reservation lifetime in seconds.
    #[serde(deserialize_with = "strict::u64")]
    pub reservation_duration_secs: u64,
    /// Circuits open at once, all peers together.
    #[serde(deserialize_with = "strict::u32")]
    pub max_circuits: u32,
    /// Circuits open at once for one source peer.
    #[serde(deserialize_with = "strict::u32")]
    pub max_circuits_per_peer: u32,
    /// Longest circuit life in seconds.
    #[serde(deserialize_with = "strict::u64")]
    pub max_circuit_duration_secs: u64,
    /// Most bytes relayed in one circuit.
    #[serde(deserialize_with = "strict::u64")]
    pub max_circuit_bytes: u64,
    /// Reservations one peer may make per hour (a burst of as many, refilled evenly); 0: no limit.
    #[serde(deserialize_with = "strict::u32")]
    pub reservations_per_peer_per_hour: u32,
    /// Reservations one IP address may make per hour; 0: no limit.
    #[serde(deserialize_with = "strict::u32")]
    pub reservations_per_ip_per_hour: u32,
    /// Circuits one source peer may open per hour; 0: no limit.
    #[serde(deserialize_with = "strict::u32")]
    pub circuits_per_peer_per_hour: u32,
    /// Circuits one source IP address may open per hour; 0: no limit.
    #[serde(deserialize_with = "strict::u32")]
    pub circuits_per_ip_per_hour: u32,
}

/// Rendezvous server limits (`rendezvous.*`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RendezvousConfig {
    /// Serve as a rendezvous server.
    #[serde(deserialize_with = "strict::bool")]
    pub enabled: bool,
    /// Shortest TTL accepted, seconds.
    #[serde(deserialize_with = "strict::u64")]
    pub min_ttl_secs: u64,
    /// Longest TTL accepted, seconds.
    #[serde(deserialize_with = "strict::u64")]
    pub max_ttl_secs: u64,
    /// Registrations held at once by one peer.
    #[serde(deserialize_with = "strict::u32")]
    pub max_registrations_per_peer: u32,
    /// Registrations held at once, all peers together.
    #[serde(deserialize_with = "strict::u64")]
    pub max_registrations: u64,
}

/// Store-and-forward mirror settings (`mirror.*`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Keep and serve registered groups' encrypted logs.
    #[serde(deserialize_with = "strict::bool")]
    pub enabled: bool,
    /// Groups per token unless the token says otherwise.
    #[serde(deserialize_with = "strict::u64")]
    pub default_max_groups: u64,
    /// Bytes per token unless the token says otherwise.
    #[serde(deserialize_with = "strict::u64")]
    pub default_max_bytes: u64,
    /// Retention in days; 0 keeps entries forever.
    #[serde(deserialize_with = "strict::u64")]
    pub retention_days: u64,
}

/// Logging settings (`log.*`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Tracing filter in `RUST_LOG` syntax.
    pub filter: String,
    /// `text` or `json`.
    pub format: String,
}

/// The validated configuration the node runs with.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Directory for the SQLite database and the key files.
    pub data_dir: PathBuf,
    /// Empty for SQLite in the data dir, else a `sqlite:` or `postgres://` URL.
    pub database_url: String,
    /// gRPC API address.
    pub grpc_listen: SocketAddr,
    /// Bearer token required on the gRPC API, if any.
    pub api_token: Option<String>,
    /// Admin HTTP address.
    pub admin_listen: SocketAddr,
    /// Bearer token for `/admin/v1/`; `None` turns those routes off.
    pub admin_token: Option<String>,
    /// How often the dashboard's figures are sampled (`admin.stats_period_ms`).
    pub admin_stats_period: Duration,
    /// libp2p listen addresses.
    pub p2p_listen: Vec<Multiaddr>,
    /// Peers dialled at start-up.
    pub bootstrap: Vec<Multiaddr>,
    /// Rendezvous servers to register with.
    pub rendezvous_servers: Vec<Multiaddr>,
    /// Addresses announced as reachable.
    pub external_addresses: Vec<Multiaddr>,
    /// mDNS discovery on.
    pub mdns: bool,
    /// libp2p connection limits.
    pub connection_limits: ConnectionLimitsConfig,
    /// Test-only swarm commands (partitions, refusing direct connections) are accepted.
    pub test_controls: bool,
    /// How long a peer that sent invalid data is disconnected and refused (`p2p.penalty_secs`).
    pub penalty: Duration,
    /// Replication of group logs with other peers (`p2p.replication`).
    pub replication: bool,
    /// Relay server limits.
    pub relay: RelayConfig,
    /// Rendezvous server limits.
    pub rendezvous: RendezvousConfig,
    /// Mirror settings.
    pub mirror: MirrorConfig,
    /// Length of a rendezvous period of contact requests (`contacts.rendezvous_period_secs`).
    pub contact_period: std::num::NonZeroU64,
    /// Logging settings.
    pub log: LogConfig,
}

impl NodeConfig {
    /// Reads every layer and validates the result.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = &sources.file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        let mut env = Environment::with_prefix(defaults::ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .try_parsing(true)
            .source(sources.env.clone());
        for key in LIST_KEYS {
            env = env.with_list_parse_key(key);
        }
        builder = builder.add_source(env);
        let o = &sources.overrides;
        if let Some(dir) = &o.data_dir {
            builder = builder.set_override("data_dir", dir.to_string_lossy().into_owned())?;
        }
        if let Some(url) = &o.database_url {
            builder = builder.set_override("storage.database_url", url.clone())?;
        }
        if let Some(addr) = &o.grpc_listen {
            builder = builder.set_override("api.grpc_listen", addr.clone())?;
        }
        if let Some(addr) = &o.admin_listen {
            builder = builder.set_override("admin.listen", addr.clone())?;
        }
        if !o.p2p_listen.is_empty() {
            builder = builder.set_override("p2p.listen", o.p2p_listen.clone())?;
        }
        let raw: RawConfig = builder.build()?.try_deserialize()?;
        Self::validate(raw)
    }

    /// Defaults only, with the given data dir: what `berty-node serve` runs with untouched.
    pub fn defaults_with_data_dir(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load(&Sources {
            env: Some(HashMap::new()),
            overrides: Overrides {
                data_dir: Some(data_dir.to_path_buf()),
                ..Overrides::default()
            },
            ..Sources::default()
        })
    }

    fn validate(raw: RawConfig) -> Result<Self, ConfigError> {
        if raw.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let url = database_url(&raw.storage.database_url)?;
        let grpc_listen = parse_socket("api.grpc_listen", &raw.api.grpc_listen)?;
        let api_token = read_token(
            "api.token",
            "api.token_file",
            &raw.api.token,
            &raw.api.token_file,
        )?;
        if api_token.is_none() && !grpc_listen.ip().is_loopback() {
            return Err(invalid(
                "api.token",
                format!(
                    "a token (api.token or api.token_file) is required when api.grpc_listen \
                     ({grpc_listen}) is not a loopback address: the gRPC API controls the account"
                ),
            ));
        }
        let admin_listen = parse_socket("admin.listen", &raw.admin.listen)?;
        let admin_token = read_token(
            "admin.token",
            "admin.token_file",
            &raw.admin.token,
            &raw.admin.token_file,
        )?;
        let admin_stats_period = stats_period(raw.admin.stats_period_ms)?;
        let p2p_listen = parse_multiaddrs("p2p.listen", &raw.p2p.listen)?;
        if p2p_listen.is_empty() {
            return Err(invalid("p2p.listen", "needs at least one address"));
        }
        let bootstrap = parse_multiaddrs("p2p.bootstrap", &raw.p2p.bootstrap)?;
        let rendezvous_servers = parse_multiaddrs("p2p.rendezvous", &raw.p2p.rendezvous)?;
        check_rendezvous_servers(&rendezvous_servers)?;
        let external_addresses =
            parse_multiaddrs("p2p.external_addresses", &raw.p2p.external_addresses)?;
        let connection_limits = connection_limits(&raw.p2p)?;
        let rendezvous = raw.rendezvous;
        if rendezvous.min_ttl_secs > rendezvous.max_ttl_secs {
            return Err(invalid(
                "rendezvous.min_ttl_secs",
                "must not exceed rendezvous.max_ttl_secs",
            ));
        }
        check_log(&raw.log)?;
        let penalty_secs = duration_secs("p2p.penalty_secs", raw.p2p.penalty_secs)?;
        check_relay_durations(&raw.relay)?;
        duration_secs("rendezvous.max_ttl_secs", rendezvous.max_ttl_secs)?;
        let contact_period = std::num::NonZeroU64::new(duration_secs(
            "contacts.rendezvous_period_secs",
            raw.contacts.rendezvous_period_secs,
        )?)
        .ok_or_else(|| invalid("contacts.rendezvous_period_secs", "must be at least 1"))?;
        Ok(Self {
            data_dir: raw.data_dir,
            database_url: url,
            grpc_listen,
            api_token,
            admin_listen,
            admin_token,
            admin_stats_period,
            p2p_listen,
            bootstrap,
            rendezvous_servers,
            external_addresses,
            mdns: raw.p2p.mdns,
            connection_limits,
            test_controls: raw.p2p.test_controls,
            penalty: Duration::from_secs(penalty_secs),
            replication: raw.p2p.replication,
            relay: raw.relay,
            rendezvous,
            mirror: raw.mirror,
            contact_period,
            log: raw.log,
        })
    }

    /// Relay reservation lifetime.
    pub fn reservation_duration(&self) -> Duration {
        Duration::from_secs(self.relay.reservation_duration_secs)
    }
}

/// `storage.database_url`: empty (SQLite in the data dir), `sqlite:`, or PostgreSQL.
fn database_url(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().to_string();
    if !(url.is_empty()
        || url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return Err(invalid(
            "storage.database_url",
            "must be empty (SQLite in data_dir), sqlite:PATH, or postgres://...",
        ));
    }
    Ok(url)
}

/// Every `p2p.rendezvous` address names the server's peer id.
fn check_rendezvous_servers(servers: &[Multiaddr]) -> Result<(), ConfigError> {
    match servers
        .iter()
        .find(|addr| !matches!(addr.iter().last(), Some(Protocol::P2p(_))))
    {
        Some(addr) => Err(invalid(
            "p2p.rendezvous",
            format!("{addr} must end with /p2p/<the server's peer id>"),
        )),
        None => Ok(()),
    }
}

fn connection_limits(p2p: &RawP2p) -> Result<ConnectionLimitsConfig, ConfigError> {
    Ok(ConnectionLimitsConfig {
        max_connections: at_least_one("p2p.max_connections", p2p.max_connections)?,
        max_connections_per_peer: at_least_one(
            "p2p.max_connections_per_peer",
            p2p.max_connections_per_peer,
        )?,
        max_pending_incoming: at_least_one("p2p.max_pending_incoming", p2p.max_pending_incoming)?,
    })
}

fn check_log(log: &LogConfig) -> Result<(), ConfigError> {
    if log.format != "text" && log.format != "json" {
        return Err(invalid("log.format", "must be \"text\" or \"json\""));
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&log.filter) {
        return Err(invalid(
            "log.filter",
            format!("{:?} is not a valid filter ({e})", log.filter),
        ));
    }
    Ok(())
}

fn check_relay_durations(relay: &RelayConfig) -> Result<(), ConfigError> {
    duration_secs(
        "relay.reservation_duration_secs",
        relay.reservation_duration_secs,
    )?;
    duration_secs(
        "relay.max_circuit_duration_secs",
        relay.max_circuit_duration_secs,
    )?;
    Ok(())
}

fn parse_socket(key: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|e| invalid(key, format!("{value:?} is not host:port ({e})")))
}

/// A duration in seconds from 1 to [`MAX_DURATION_SECS`] (ten years): every duration ends up
/// added to a clock, and an unbounded one would overflow it.
fn duration_secs(key: &'static str, value: u64) -> Result<u64, ConfigError> {
    if !(1..=MAX_DURATION_SECS).contains(&value) {
        return Err(invalid(
            key,
            format!("{value} is outside 1 to {MAX_DURATION_SECS} seconds (ten years)"),
        ));
    }
    Ok(value)
}

/// `admin.stats_period_ms`: from [`STATS_PERIOD_MS`](crate::defaults::STATS_PERIOD_MS)'s
/// bounds, so the sampler neither spins nor leaves the charts empty for minutes.
fn stats_period(value: u64) -> Result<Duration, ConfigError> {
    let bounds = crate::defaults::STATS_PERIOD_MS;
    if !bounds.contains(&value) {
        return Err(invalid(
            "admin.stats_period_ms",
            format!(
                "{value} is outside {} to {} milliseconds",
                bounds.start(),
                bounds.end()
            ),
        ));
    }
    Ok(Duration::from_millis(value))
}

fn at_least_one(key: &'static str, value: u32) -> Result<u32, ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be at least 1"));
    }
    Ok(value)
}

fn parse_multiaddrs(key: &'static str, values: &[String]) -> Result<Vec<Multiaddr>, ConfigError> {
    values
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e| invalid(key, format!("{s:?} is not a multiaddr ({e})")))
        })
        .collect()
}

fn read_token(
    key: &'static str,
    file_key: &'static str,
    token: &str,
    file: &str,
) -> Result<Option<String>, ConfigError> {
    let token = token.trim();
    let file = file.trim();
    if !token.is_empty() && !file.is_empty() {
        return Err(invalid(
            key,
            format!("set either {key} or {file_key}, not both"),
        ));
    }
    if !file.is_empty() {
        let content = std::fs::read_to_string(file)
            .map_err(|e| invalid(file_key, format!("cannot read {file:?}: {e}")))?;
        let content = content.trim();
        if content.is_empty() {
            return Err(invalid(file_key, format!("{file:?} is empty")));
        }
        return Ok(Some(content.to_string()));
    }
    Ok((!token.is_empty()).then(|| token.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn built_in_defaults_are_valid_and_match_the_spec() {
        let config = NodeConfig::load(&Sources {
            env: env(&[]),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.database_url, "");
        assert_eq!(config.grpc_listen.to_string(), "127.0.0.1:9091");
        assert_eq!(config.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.p2p_listen.len(), 2);
        assert!(config.api_token.is_none());
        assert!(config.admin_token.is_none());
        assert!(!config.mdns);
        assert!(
            !config.test_controls,
            "test controls are off unless asked for"
        );
        assert!(config.connection_limits.max_connections > config.relay.max_reservations);
        assert_eq!(config.penalty, std::time::Duration::from_secs(600));
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[api]\ngrpc_listen = \"127.0.0.1:1\"\n[p2p]\nmdns = true\n",
        )
        .unwrap();
        let config = NodeConfig::load(&Sources {
            file: Some(file),
            env: env(&[
                ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:2"),
                ("BERTY_NODE__DATA_DIR", "/from/env"),
                (
                    "BERTY_NODE__P2P__LISTEN",
                    "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
                ),
                ("BERTY_NODE__RELAY__MAX_CIRCUITS", "7"),
            ]),
            overrides: Overrides {
                data_dir: Some(PathBuf::from("/from/flag")),
                ..Overrides::default()
            },
        })
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.grpc_listen.to_string(), "127.0.0.1:2");
        assert!(config.mdns, "file value kept where nothing overrides it");
        assert_eq!(config.p2p_listen.len(), 2);
        assert_eq!(config.relay.max_circuits, 7);
    }

    /// What a TOML file with `body` loads to.
    fn load_file(body: &str) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, body).unwrap();
        NodeConfig::load(&Sources {
            file: Some(file),
            env: env(&[]),
            ..Sources::default()
        })
    }

    #[test]
    fn values_of_the_wrong_type_are_refused_not_coerced() {
        let cases = [
            ("[p2p]\nmdns = \"yes\"\n", "mdns"),
            ("[p2p]\nmdns = 1\n", "mdns"),
            ("[p2p]\npenalty_secs = 1.5\n", "penalty_secs"),
            ("[p2p]\npenalty_secs = \"600\"\n", "penalty_secs"),
            ("[p2p]\nmax_connections = 4294967296\n", "max_connections"),
            ("[relay]\nenabled = \"on\"\n", "enabled"),
            ("[log]\nfilter = \"berty_node=[[[\"\n", "log.filter"),
        ];
        for (body, key) in cases {
            let err = load_file(body).unwrap_err().to_string();
            assert!(
                err.contains(key),
                "{body:?}: error {err:?} does not name {key}"
            );
        }
        let config = load_file("[p2p]\nmdns = true\npenalty_secs = 30\n").unwrap();
        assert!(config.mdns);
        assert_eq!(config.penalty, Duration::from_secs(30));
        let config = NodeConfig::load(&Sources {
            env: env(&[
                ("BERTY_NODE__P2P__MDNS", "true"),
                ("BERTY_NODE__P2P__PENALTY_SECS", "45"),
            ]),
            ..Sources::default()
        })
        .unwrap();
        assert!(config.mdns);
        assert_eq!(config.penalty, Duration::from_secs(45));
    }

    #[test]
    fn a_load_error_is_not_its_own_cause() {
        let err = load_file("[p2p]\nmdns = \"yes\"\n").unwrap_err();
        assert!(
            std::error::Error::source(&err).is_none(),
            "the message already carries the cause: {err}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                "BERTY_NODE__API__GRPC_LISTEN",
                "not an address",
                "api.grpc_listen",
            ),
            ("BERTY_NODE__P2P__LISTEN", "/nonsense", "p2p.listen"),
            ("BERTY_NODE__RELAY__MAX_CIRCUITS", "many", "max_circuits"),
            (
                "BERTY_NODE__STORAGE__DATABASE_URL",
                "mysql://x",
                "storage.database_url",
            ),
            ("BERTY_NODE__LOG__FORMAT", "xml", "log.format"),
            ("BERTY_NODE__API__GRPC_LISTEN", "0.0.0.0:9091", "api.token"),
            ("BERTY_NODE__RELAY__NO_SUCH_KEY", "1", "no_such_key"),
            (
                "BERTY_NODE__P2P__MAX_CONNECTIONS",
                "0",
                "p2p.max_connections",
            ),
            (
                "BERTY_NODE__P2P__MAX_CONNECTIONS_PER_PEER",
                "0",
                "p2p.max_connections_per_peer",
            ),
            (
                "BERTY_NODE__P2P__MAX_PENDING_INCOMING",
                "0",
                "p2p.max_pending_incoming",
            ),
            ("BERTY_NODE__P2P__MDNS", "yes", "mdns"),
            ("BERTY_NODE__P2P__PENALTY_SECS", "1.5", "penalty_secs"),
            ("BERTY_NODE__P2P__PENALTY_SECS", "-1", "penalty_secs"),
            (
                "BERTY_NODE__P2P__PENALTY_SECS",
                "9223372036854775807",
                "p2p.penalty_secs",
            ),
            ("BERTY_NODE__P2P__PENALTY_SECS", "0", "p2p.penalty_secs"),
            (
                "BERTY_NODE__RELAY__RESERVATION_DURATION_SECS",
                "18446744073709551615",
                "relay.reservation_duration_secs",
            ),
            (
                "BERTY_NODE__RENDEZVOUS__MAX_TTL_SECS",
                "18446744073709551615",
                "rendezvous.max_ttl_secs",
            ),
            ("BERTY_NODE__LOG__FILTER", "berty_node=[[[", "log.filter"),
        ];
        for (var, value, key) in cases {
            let err = NodeConfig::load(&Sources {
                env: env(&[(var, value)]),
                ..Sources::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(key),
                "{var}={value}: error {err:?} does not name {key}"
            );
        }
    }

    #[test]
    fn tokens_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "s3cret\n").unwrap();
        let config = NodeConfig::load(&Sources {
            env: env(&[
                ("BERTY_NODE__API__GRPC_LISTEN", "0.0.0.0:0"),
                ("BERTY_NODE__API__TOKEN_FILE", token_file.to_str().unwrap()),
                ("BERTY_NODE__ADMIN__TOKEN", "admin"),
            ]),
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(config.api_token.as_deref(), Some("s3cret"));
        assert_eq!(config.admin_token.as_deref(), Some("admin"));
    }
}
