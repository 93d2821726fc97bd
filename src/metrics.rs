//! The node's metrics: one Prometheus registry, every name prefixed `berty_node_`.
//!
//! [`Metrics`] holds the handles the code updates; the registry is built once at start-up
//! (libp2p registers its own metrics in a sub-registry of the same one) and then frozen behind
//! an `Arc` for the admin server to encode.

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
        info::Info,
    },
    registry::Registry,
};

use crate::defaults;

/// Labels of the gRPC request counter (closed sets: method names and status codes).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// RPC name, e.g. `GroupMessageSend`.
    pub method: &'static str,
    /// gRPC status code name, e.g. `Ok`, `InvalidArgument`.
    pub code: &'static str,
}

/// Labels naming a log kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LogKindLabels {
    /// `metadata` or `messages`.
    pub kind: &'static str,
}

impl LogKindLabels {
    /// The labels of `kind`.
    pub fn of(kind: crate::log::LogKind) -> Self {
        Self {
            kind: match kind {
                crate::log::LogKind::Metadata => "metadata",
                crate::log::LogKind::Messages => "messages",
            },
        }
    }
}

/// Labels of the connection counters (closed sets).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `direct`, or `relayed` (through a circuit relay).
    pub route: &'static str,
}

/// Labels of the refused-connection counter (closed set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// `limit` (a `p2p.max_*` limit), `partition` (test control), `direct_refused` (test
    /// control: relayed connections only), or `penalty` (a penalised peer).
    pub reason: &'static str,
}

/// Labels of the relay server counters (closed set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayOutcomeLabels {
    /// `accepted`, `renewed` (reservations only) or `denied`.
    pub outcome: &'static str,
}

/// Labels of the members-found counter (closed set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscoveryLabels {
    /// `dht` (provider records) or `rendezvous` (registrations at a rendezvous server).
    pub via: &'static str,
}

/// Labels of the rejected-entries counter (closed set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// `malformed` (does not parse, or over a cap), `wrong_log`, `bad_signature`, `lamport`,
    /// `missing_parent` (the sender cannot provide an entry's ancestry) or `protocol` (an
    /// unparsable or oversized frame).
    pub reason: &'static str,
}

/// Labels of the sync request counter (closed sets).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    /// `inbound` (a peer asked us) or `outbound` (we asked a peer).
    pub direction: &'static str,
    /// `hello`, `prove`, `heads`, `fetch` or `announce`.
    pub kind: &'static str,
}

/// The round trips of the storage health probe, in seconds (0.1 ms to about 3 s).
#[derive(Debug, Clone)]
pub struct ProbeHistogram(pub Histogram);

impl Default for ProbeHistogram {
    fn default() -> Self {
        Self(Histogram::new(exponential_buckets(0.0001, 2.0, 16)))
    }
}

/// Handles to the libp2p networking metrics (`berty_node_p2p_*`, `berty_node_relay_*`).
#[derive(Debug, Clone, Default)]
pub struct P2pMetrics {
    /// Connections established, by direction and route.
    pub connections_established: Family<ConnectionLabels, Counter>,
    /// Connections closed, by direction and route.
    pub connections_closed: Family<ConnectionLabels, Counter>,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections refused, by reason.
    pub connections_denied: Family<DenialLabels, Counter>,
    /// Penalties given to peers (each refuses the peer for a while).
    pub penalties: Counter,
    /// Network events the replicator could not take (its queue was full).
    pub network_events_dropped: Counter,
    /// Relay server reservation requests, by outcome.
    pub relay_reservations: Family<RelayOutcomeLabels, Counter>,
    /// Relay server circuit requests, by outcome.
    pub relay_circuits: Family<RelayOutcomeLabels, Counter>,
    /// Reservations the relay server holds now.
    pub relay_active_reservations: Gauge,
    /// Circuits the relay server carries now.
    pub relay_active_circuits: Gauge,
    /// Bytes the relay server has forwarded in circuits, both directions together (each
    /// forwarded byte counted once, when read: see `p2p::relay_bytes`).
    pub relay_bytes: Counter,
    /// Sync requests (`/berty-node/sync/1.0.0`), by direction and kind.
    pub sync_requests: Family<SyncLabels, Counter>,
}

impl P2pMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "p2p_connections_established",
            "libp2p connections established, by direction and route",
            self.connections_established.clone(),
        );
        registry.register(
            "p2p_connections_closed",
            "libp2p connections closed, by direction and route",
            self.connections_closed.clone(),
        );
        registry.register(
            "p2p_connections",
            "libp2p connections open now",
            self.connections_open.clone(),
        );
        registry.register(
            "p2p_connections_denied",
            "libp2p connections refused, by reason",
            self.connections_denied.clone(),
        );
        registry.register(
            "p2p_penalties",
            "Penalties given to peers (each refuses the peer for a while)",
            self.penalties.clone(),
        );
        registry.register(
            "p2p_network_events_dropped",
            "Network events dropped because the replicator's queue was full",
            self.network_events_dropped.clone(),
        );
        registry.register(
            "relay_reservations",
            "Circuit relay reservation requests served, by outcome",
            self.relay_reservations.clone(),
        );
        registry.register(
            "relay_circuits",
            "Circuit relay circuit requests served, by outcome",
            self.relay_circuits.clone(),
        );
        registry.register(
            "relay_active_reservations",
            "Circuit relay reservations held now",
            self.relay_active_reservations.clone(),
        );
        registry.register(
            "relay_active_circuits",
            "Circuit relay circuits open now",
            self.relay_active_circuits.clone(),
        );
        registry.register(
            "relay_bytes",
            "Bytes forwarded in circuits by the relay server, both directions (each counted once)",
            self.relay_bytes.clone(),
        );
        registry.register(
            "sync_requests",
            "Sync requests (/berty-node/sync/1.0.0), by direction and kind",
            self.sync_requests.clone(),
        );
    }

    /// Counts one sync request.
    pub fn sync_request(&self, direction: &'static str, kind: &'static str) {
        self.sync_requests
            .get_or_create(&SyncLabels { direction, kind })
            .inc();
    }
}

/// Handles to every metric the node updates.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// 1 while the last storage check succeeded, else 0.
    pub storage_up: Gauge,
    /// Round trips of the storage health probe (a trivial query on a connection of its own).
    pub storage_probe_seconds: ProbeHistogram,
    /// gRPC calls by method and status code.
    pub grpc_requests: Family<GrpcLabels, Counter>,
    /// Log entries newly stored, by log kind.
    pub entries_appended: Family<LogKindLabels, Counter>,
    /// Group store actors currently running.
    pub group_store_actors: Gauge,
    /// Open event subscriptions.
    pub subscriptions: Gauge,
    /// Bytes of replies that subscriptions hold for clients that have not taken them yet.
    pub subscription_buffered_bytes: Gauge,
    /// libp2p networking.
    pub p2p: P2pMetrics,
    /// Entries received from other replicas and newly stored.
    pub replication_entries_received: Counter,
    /// Entries (or frames) from other replicas refused, by reason; each penalises its sender.
    pub replication_rejected: Family<RejectionLabels, Counter>,
    /// Peers that proved they hold the link key of at least one group of ours.
    pub replication_peers: Gauge,
    /// Unexpired registrations at the rendezvous server (refreshed every minute).
    pub rendezvous_registrations: Gauge,
    /// Other members found by discovery lookups, by where they were found (each round counts
    /// every member it finds, connected or not).
    pub members_found: Family<DiscoveryLabels, Counter>,
    /// Groups this node mirrors now.
    pub mirror_groups: Gauge,
    /// Batches of entries a mirror refused because their token's byte quota is used up.
    pub mirror_quota_refusals: Counter,
    /// Incoming contact handshakes, by outcome (`completed`, `refused`, `busy`).
    pub contact_handshakes: Family<OutcomeLabels, Counter>,
    /// Outgoing contact request attempts, by outcome (`delivered`, `failed`).
    pub contact_deliveries: Family<OutcomeLabels, Counter>,
}

/// An outcome label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What happened.
    pub outcome: &'static str,
}

impl Metrics {
    /// Creates the metrics and the registry holding them.
    pub fn new() -> (Self, Registry) {
        let mut registry = Registry::with_prefix(defaults::METRICS_PREFIX);
        let metrics = Self::default();
        registry.register(
            "build",
            "Version of this berty-node build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "storage_up",
            "1 while the last storage check succeeded",
            metrics.storage_up.clone(),
        );
        registry.register(
            "storage_probe_seconds",
            "Round trips of the storage health probe (a trivial query on its own connection)",
            metrics.storage_probe_seconds.0.clone(),
        );
        registry.register(
            "grpc_requests",
            "gRPC calls by method and status code",
            metrics.grpc_requests.clone(),
        );
        registry.register(
            "log_entries_appended",
            "Log entries newly stored, by log kind",
            metrics.entries_appended.clone(),
        );
        registry.register(
            "group_store_actors",
            "Group store actors currently running",
            metrics.group_store_actors.clone(),
        );
        registry.register(
            "subscriptions",
            "Open event subscriptions",
            metrics.subscriptions.clone(),
        );
        registry.register(
            "subscription_buffered_bytes",
            "Bytes of replies subscriptions hold for clients that have not taken them yet",
            metrics.subscription_buffered_bytes.clone(),
        );
        registry.register(
            "replication_entries_received",
            "Entries received from other replicas and newly stored",
            metrics.replication_entries_received.clone(),
        );
        registry.register(
            "replication_rejected",
            "Entries or frames from other replicas refused, by reason (each penalises its sender)",
            metrics.replication_rejected.clone(),
        );
        registry.register(
            "replication_peers",
            "Connected peers replicating at least one group with this node",
            metrics.replication_peers.clone(),
        );
        registry.register(
            "rendezvous_registrations",
            "Unexpired registrations at the rendezvous server (refreshed every minute)",
            metrics.rendezvous_registrations.clone(),
        );
        registry.register(
            "replication_members_found",
            "Other members found by discovery lookups, by source (counted each round)",
            metrics.members_found.clone(),
        );
        registry.register(
            "mirror_groups",
            "Groups this node mirrors now",
            metrics.mirror_groups.clone(),
        );
        registry.register(
            "mirror_quota_refusals",
            "Batches of entries refused because their mirror token's byte quota is used up",
            metrics.mirror_quota_refusals.clone(),
        );
        registry.register(
            "contact_handshakes",
            "Incoming contact handshakes, by outcome (completed, refused, busy)",
            metrics.contact_handshakes.clone(),
        );
        registry.register(
            "contact_deliveries",
            "Outgoing contact request attempts, by outcome (delivered, failed)",
            metrics.contact_deliveries.clone(),
        );
        metrics.p2p.register(&mut registry);
        (metrics, registry)
    }

    /// Counts one incoming contact handshake.
    pub fn contact_handshakes(&self, outcome: &'static str) {
        self.contact_handshakes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one outgoing contact request attempt.
    pub fn contact_delivery(&self, outcome: &'static str) {
        self.contact_deliveries
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one gRPC call.
    pub fn observe_grpc(&self, method: &'static str, code: tonic::Code) {
        self.grpc_requests
            .get_or_create(&GrpcLabels {
                method,
                code: code_name(code),
            })
            .inc();
    }
}

/// Encodes the registry in the Prometheus/OpenMetrics text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode(&mut out, registry)?;
    Ok(out)
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "Ok",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix() {
        let (metrics, registry) = Metrics::new();
        metrics.observe_grpc("InstanceGetConfiguration", tonic::Code::Ok);
        metrics.storage_up.set(1);
        metrics.p2p.relay_bytes.inc_by(1234);
        let text = render(&registry).unwrap();
        assert!(text.contains(
            "berty_node_grpc_requests_total{method=\"InstanceGetConfiguration\",code=\"Ok\"} 1"
        ));
        assert!(text.contains("berty_node_storage_up 1"));
        assert!(text.contains("berty_node_build_info"));
        assert!(text.contains("berty_node_relay_bytes_total 1234"));
    }
}
