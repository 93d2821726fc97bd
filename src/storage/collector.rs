//! [`CommitPathsCollector`]: how the storage's commits ran ([`Storage::commit_paths`]), as a
//! Prometheus counter read at each scrape.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::counter::ConstCounter,
};

use super::Storage;

/// Labels of the commit counter (closed set).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    /// `one_statement`, `missed` or `locked` (see [`super::CommitPaths`]).
    path: &'static str,
}

/// `storage_commits_total{path}`: commits by the way they ran. Many `missed` mean another
/// writer shares the database's logs with this node.
pub struct CommitPathsCollector {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for CommitPathsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitPathsCollector")
            .finish_non_exhaustive()
    }
}

impl CommitPathsCollector {
    /// A collector of `storage`'s commit paths.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }
}

impl Collector for CommitPathsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let paths = self.storage.commit_paths();
        let metric = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "storage_commits",
            "Storage commits by how they ran: from the log's known state (one statement on \
             PostgreSQL), tried so and missed (the log moved on), or under the log's lock",
            None,
            metric.metric_type(),
        )?;
        for (path, count) in [
            ("one_statement", paths.one_statement),
            ("missed", paths.missed),
            ("locked", paths.locked),
        ] {
            ConstCounter::new(count).encode(family.encode_family(&PathLabels { path })?)?;
        }
        Ok(())
    }
}
