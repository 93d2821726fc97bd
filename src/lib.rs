//! `berty-node`: a Berty Protocol peer and an always-on infrastructure node.
//!
//! One process serves the `berty.protocol.ProtocolService` gRPC API for its own account and
//! helps other peers as a circuit-relay server, rendezvous server, DHT server and encrypted-log
//! mirror. Operators drive it through an admin HTTP API and Prometheus metrics.
//!
//! # Layout
//!
//! - [`config`], [`defaults`]: the typed configuration, layered from built-in defaults, a TOML
//!   file, `BERTY_NODE__SECTION__KEY` environment variables and flags.
//! - [`node`]: the supervisor that builds, starts and stops everything.
//! - [`crypto`]: keys, derivations, envelopes, the per-device ratchet (pure, no I/O).
//! - [`log`]: log entries, ids, the Merkle DAG and its total order (pure, no I/O).
//! - [`storage`]: the storage trait and its SQLite and PostgreSQL backends; `storage::sealed`, the
//!   only way to node values, sealed under the data dir's storage key.
//! - [`handshake`]: the contact-request handshake (`/berty/contact_req/1.0.0`): pure state
//!   machines and their driver over one stream.
//! - [`group`]: group records, references and decoded views (domain types at the edge of the wire).
//! - [`actors`]: the account actor (groups, contacts, export) and one group store actor per
//!   group log (its job pipeline as plain data, batched local writes, remote batches decoded
//!   into the group view, live cursor).
//! - [`p2p`]: the libp2p swarm, owned by one task and driven through a command channel; the
//!   sync messages as domain types, converted at the wire's edge.
//! - [`replication`]: the sync protocol between replicas: the router, one peer actor per
//!   connected peer (the link-key hello as a pure state machine, heads, batched fetches,
//!   announcements), discovery; `ports` holds what replication and the stores say to each
//!   other.
//! - [`courier`]: the network side of contacts: this account's rendezvous points advertised,
//!   outgoing contact requests delivered with back-off, incoming ones answered.
//! - [`api`]: the tonic gRPC service: validation, calls to the actors, subscriptions.
//! - [`admin`]: the actix-web admin server: health, readiness, metrics.
//! - [`client`]: `berty-node client`, a command-line gRPC client with one command per call.
//! - [`import`]: `init --import` / `--restore`: a data dir made from an export.
//! - [`data_dir`]: the data dir: mode 0700 and a lock held while the node runs.
//! - [`keystore`]: secret keys at rest in the data dir (mode 0600).
//! - [`error`]: the core's error type (statuses are chosen at the edges: `api::status`,
//!   `admin::status`).
//! - [`clock`]: the system clock in unix seconds.
//! - [`framing`]: varint length-prefixed frames shared by the sync and rendezvous codecs.
//! - [`proto`]: generated protobuf code (`berty.protocol` and our own `berty.node.wire.v1`).
//! - [`metrics`]: the one Prometheus registry.
//! - [`supervision`]: lifelines of the long-lived parts; a part dying stops the node or is
//!   restarted, as its policy says.
//! - [`telemetry`]: logging setup.

pub mod actors;
pub mod admin;
pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod courier;
pub mod crypto;
pub mod data_dir;
pub mod defaults;
pub mod error;
pub mod framing;
pub mod group;
pub mod handshake;
pub mod import;
pub mod keystore;
pub mod log;
pub mod metrics;
pub mod mirror;
pub mod node;
pub mod p2p;
pub mod proto;
pub mod rendezvous;
pub mod replication;
pub mod storage;
pub mod supervision;
pub mod telemetry;
