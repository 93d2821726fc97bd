//! Running the rendezvous server beside the node: its metrics (read from
//! [`RendezvousServer::stats`] at each scrape) and the periodic purge of expired
//! registrations, which also refreshes the registrations gauge.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::Gauge},
};
use tokio::sync::watch;

use super::server::{Refusal, RendezvousLimits, RendezvousServer, DEFAULT_TTL_SECS};
use crate::{config::RendezvousConfig, storage::Storage};

/// The server `rendezvous.*` describes, over the node's storage. A registration that asks for
/// no TTL gets the protocol's default (2 h), raised to `rendezvous.min_ttl_secs`.
pub fn server_for(
    config: &RendezvousConfig,
    storage: std::sync::Arc<dyn Storage>,
) -> RendezvousServer {
    let limits = RendezvousLimits {
        min_ttl_secs: config.min_ttl_secs,
        max_ttl_secs: config.max_ttl_secs,
        max_registrations_per_peer: config.max_registrations_per_peer,
        max_registrations: config.max_registrations,
        ..RendezvousLimits::default()
    };
    RendezvousServer::new(storage, limits, DEFAULT_TTL_SECS)
}

/// Labels of the refused-requests counter (closed set, see [`Refusal::as_str`]).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The server's counters as Prometheus metrics (`berty_node_rendezvous_*`), read at each
/// scrape.
#[derive(Debug)]
pub struct RendezvousCollector {
    server: RendezvousServer,
}

impl RendezvousCollector {
    /// A collector of `server`'s counters.
    pub fn new(server: RendezvousServer) -> Self {
        Self { server }
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for RendezvousCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.server.stats();
        counter(
            &mut encoder,
            "rendezvous_registered",
            "Registrations accepted by the rendezvous server (refreshes included)",
            stats.registered,
        )?;
        counter(
            &mut encoder,
            "rendezvous_refreshed",
            "Registrations that replaced the same peer's registration in a namespace",
            stats.refreshed,
        )?;
        counter(
            &mut encoder,
            "rendezvous_unregistered",
            "Registrations removed by their peer",
            stats.unregistered,
        )?;
        counter(
            &mut encoder,
            "rendezvous_discovers",
            "Discover requests answered",
            stats.discovers,
        )?;
        counter(
            &mut encoder,
            "rendezvous_discovered",
            "Registrations returned by discover requests",
            stats.discovered,
        )?;
        counter(
            &mut encoder,
            "rendezvous_register_batches",
            "Registration transactions (registered / batches is the mean batch)",
            stats.batches,
        )?;
        let refused = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "rendezvous_refused",
            "Rendezvous requests refused, by reason",
            None,
            refused.metric_type(),
        )?;
        for reason in Refusal::ALL {
            let labels = ReasonLabels {
                reason: reason.as_str(),
            };
            ConstCounter::new(stats.refused(reason)).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// Deletes expired registrations every [`PURGE_INTERVAL`](crate::defaults::PURGE_INTERVAL) and sets `registrations` to the
/// number left (every node sharing the database counts the same), until `shutdown`.
pub async fn run(
    server: RendezvousServer,
    registrations: Gauge,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(crate::defaults::PURGE_INTERVAL);
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() { return; }
            }
            _ = tick.tick() => {
                match server.purge_expired().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired rendezvous registrations deleted"),
                    Err(e) => tracing::warn!(%e, "cannot purge expired rendezvous registrations"),
                }
                match server.count().await {
                    Ok(count) => {
                        registrations.set(i64::try_from(count).unwrap_or(i64::MAX));
                    }
                    Err(e) => tracing::warn!(%e, "cannot count rendezvous registrations"),
                }
            }
        }
    }
}
