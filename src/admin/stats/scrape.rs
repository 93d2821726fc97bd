//! Reading the node's own metrics back: the text the registry encodes (OpenMetrics), parsed
//! into samples so the sampler can add up what it charts. Pure: no I/O, no clock.

/// One sample line: its name (with `_total`, `_sum`... as encoded), labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// The sample's name, e.g. `berty_node_log_entries_appended_total`.
    pub name: String,
    /// Its labels, in the encoded order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

/// Every sample of one encoding of the registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    samples: Vec<MetricSample>,
}

impl Scrape {
    /// Parses the encoded registry. Comment lines (`# HELP`, `# TYPE`, `# EOF`) and lines that
    /// do not parse are skipped: a metric this module does not chart never stops a sample.
    pub fn parse(text: &str) -> Self {
        Self {
            samples: text
                .lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(parse_line)
                .collect(),
        }
    }

    /// The sum of every sample named `name` whose labels include each of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// `name{k="v",...} value` or `name value` (an optional timestamp after the value is ignored).
fn parse_line(line: &str) -> Option<MetricSample> {
    let line = line.trim();
    let (name, rest) = match line.find(['{', ' ']) {
        Some(at) => line.split_at(at),
        None => return None,
    };
    let (labels, rest) = if let Some(rest) = rest.strip_prefix('{') {
        parse_labels(rest)?
    } else {
        (Vec::new(), rest)
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    (!name.is_empty()).then(|| MetricSample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and what follows
/// the closing brace. Values may hold escaped quotes, backslashes and newlines.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (at, '"') => break at,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP berty_node_log_entries_appended Log entries newly stored, by log kind.
# TYPE berty_node_log_entries_appended counter
berty_node_log_entries_appended_total{kind="messages"} 12
berty_node_log_entries_appended_total{kind="metadata"} 3
berty_node_p2p_connections 2
berty_node_libp2p_bandwidth_bytes_total{protocols="/ip4/tcp",direction="Inbound"} 1000
berty_node_libp2p_bandwidth_bytes_total{protocols="/ip4/udp/quic-v1",direction="Inbound"} 24
berty_node_libp2p_bandwidth_bytes_total{protocols="/ip4/tcp",direction="Outbound"} 7
berty_node_odd{note="a \"quoted\" } brace, a \\ and\na newline"} 1.5 1700000000
berty_node_storage_probe_seconds_bucket{le="+Inf"} 4
not a sample line
# EOF
"#;

    #[test]
    fn sums_by_name_and_labels() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(
            scrape.sum("berty_node_log_entries_appended_total", &[]),
            15.0
        );
        assert_eq!(
            scrape.sum(
                "berty_node_log_entries_appended_total",
                &[("kind", "messages")]
            ),
            12.0
        );
        assert_eq!(scrape.sum("berty_node_p2p_connections", &[]), 2.0);
        assert_eq!(
            scrape.sum(
                "berty_node_libp2p_bandwidth_bytes_total",
                &[("direction", "Inbound")]
            ),
            1024.0
        );
        assert_eq!(scrape.sum("berty_node_absent", &[]), 0.0);
    }

    #[test]
    fn label_values_keep_escapes_and_braces() {
        let scrape = Scrape::parse(TEXT);
        assert_eq!(
            scrape.sum(
                "berty_node_odd",
                &[("note", "a \"quoted\" } brace, a \\ and\na newline")]
            ),
            1.5
        );
        assert_eq!(
            scrape.sum("berty_node_storage_probe_seconds_bucket", &[("le", "+Inf")]),
            4.0
        );
    }

    #[test]
    fn the_real_registry_parses() {
        let (metrics, registry) = crate::metrics::Metrics::new();
        metrics.p2p.connections_open.set(3);
        metrics.storage_probe_seconds.0.observe(0.002);
        let scrape = Scrape::parse(&crate::metrics::render(&registry).unwrap());
        assert_eq!(scrape.sum("berty_node_p2p_connections", &[]), 3.0);
        assert_eq!(
            scrape.sum("berty_node_storage_probe_seconds_count", &[]),
            1.0
        );
        assert_eq!(
            scrape.sum("berty_node_storage_probe_seconds_sum", &[]),
            0.002
        );
    }
}
