//! The dashboard's live figures: readings of the metrics' totals turned into points (rates
//! from counter deltas, gauges as read), kept in a bounded ring. Pure: the caller gives the
//! times.

use std::collections::VecDeque;

use serde::Serialize;

use super::scrape::Scrape;

/// The totals one sample reads from the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Messages-log entries stored (`log_entries_appended_total{kind="messages"}`).
    pub messages: f64,
    /// Entries stored, both logs.
    pub entries: f64,
    /// Sync requests, both directions (`sync_requests_total`).
    pub sync_requests: f64,
    /// Bytes received over every connection (`libp2p_bandwidth_bytes_total{direction="Inbound"}`).
    pub bytes_in: f64,
    /// Bytes sent over every connection.
    pub bytes_out: f64,
    /// Bytes the relay server forwarded in circuits, both directions (`relay_bytes_total`).
    pub relay_bytes: f64,
    /// Connections open now (a gauge).
    pub connections: f64,
    /// Sum of the storage probe's round trips, in seconds.
    pub probe_seconds: f64,
    /// Storage probes so far.
    pub probes: f64,
}

impl Reading {
    /// What the charts need of one encoding of the registry.
    pub fn from_scrape(scrape: &Scrape) -> Self {
        let bandwidth = "berty_node_libp2p_bandwidth_bytes_total";
        Self {
            messages: scrape.sum(
                "berty_node_log_entries_appended_total",
                &[("kind", "messages")],
            ),
            entries: scrape.sum("berty_node_log_entries_appended_total", &[]),
            sync_requests: scrape.sum("berty_node_sync_requests_total", &[]),
            bytes_in: scrape.sum(bandwidth, &[("direction", "Inbound")]),
            bytes_out: scrape.sum(bandwidth, &[("direction", "Outbound")]),
            relay_bytes: scrape.sum("berty_node_relay_bytes_total", &[]),
            connections: scrape.sum("berty_node_p2p_connections", &[]),
            probe_seconds: scrape.sum("berty_node_storage_probe_seconds_sum", &[]),
            probes: scrape.sum("berty_node_storage_probe_seconds_count", &[]),
        }
    }
}

/// One point of the charts: the rates over the period that ends at `t`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// End of the period, Unix milliseconds.
    pub t: u64,
    /// Messages stored per second.
    pub messages_per_sec: f64,
    /// Entries stored per second (both logs).
    pub entries_per_sec: f64,
    /// Sync requests per second, both directions.
    pub sync_requests_per_sec: f64,
    /// Bytes received per second, every connection.
    pub bytes_in_per_sec: f64,
    /// Bytes sent per second, every connection.
    pub bytes_out_per_sec: f64,
    /// Bytes the relay server forwarded per second, both directions of every circuit.
    pub relay_bytes_per_sec: f64,
    /// Connections open at `t`.
    pub connections: f64,
    /// Mean storage probe round trip over the period, in milliseconds; `None` when no probe
    /// answered in it.
    pub storage_latency_ms: Option<f64>,
}

/// The last points, at most `capacity`, and the reading the next rates start from.
#[derive(Debug, Clone)]
pub struct Series {
    capacity: usize,
    last: Option<(u64, Reading)>,
    points: VecDeque<Point>,
}

impl Series {
    /// An empty series keeping at most `capacity` points (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            last: None,
            points: VecDeque::with_capacity(capacity),
        }
    }

    /// Records `reading` taken at `now_ms` (Unix milliseconds, monotonic for the caller): a new
    /// point from the previous reading (the first reading only sets the start). A time that
    /// does not move forward starts over without a point.
    pub fn record(&mut self, now_ms: u64, reading: Reading) {
        if let Some((then_ms, before)) = self.last {
            if now_ms > then_ms {
                let secs = (now_ms - then_ms) as f64 / 1000.0;
                let rate = |after: f64, before: f64| ((after - before).max(0.0)) / secs;
                let probes = reading.probes - before.probes;
                let point = Point {
                    t: now_ms,
                    messages_per_sec: rate(reading.messages, before.messages),
                    entries_per_sec: rate(reading.entries, before.entries),
                    sync_requests_per_sec: rate(reading.sync_requests, before.sync_requests),
                    bytes_in_per_sec: rate(reading.bytes_in, before.bytes_in),
                    bytes_out_per_sec: rate(reading.bytes_out, before.bytes_out),
                    relay_bytes_per_sec: rate(reading.relay_bytes, before.relay_bytes),
                    connections: reading.connections,
                    storage_latency_ms: (probes > 0.0)
                        .then(|| (reading.probe_seconds - before.probe_seconds) / probes * 1000.0),
                };
                if self.points.len() == self.capacity {
                    self.points.pop_front();
                }
                self.points.push_back(point);
            }
        }
        self.last = Some((now_ms, reading));
    }

    /// The points after `since_ms` (Unix milliseconds; 0 for all), oldest first.
    pub fn since(&self, since_ms: u64) -> Vec<Point> {
        self.points
            .iter()
            .filter(|p| p.t > since_ms)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(messages: f64, probes: f64, probe_seconds: f64) -> Reading {
        Reading {
            messages,
            entries: messages * 2.0,
            connections: 3.0,
            relay_bytes: messages * 100.0,
            probes,
            probe_seconds,
            ..Reading::default()
        }
    }

    #[test]
    fn rates_come_from_deltas_over_the_period() {
        let mut series = Series::new(10);
        series.record(1_000, reading(10.0, 2.0, 0.002));
        assert!(
            series.since(0).is_empty(),
            "the first reading is only a start"
        );
        series.record(3_000, reading(30.0, 6.0, 0.010));
        let points = series.since(0);
        assert_eq!(points.len(), 1);
        let point = points[0];
        assert_eq!(point.t, 3_000);
        assert_eq!(point.messages_per_sec, 10.0);
        assert_eq!(point.entries_per_sec, 20.0);
        assert_eq!(point.relay_bytes_per_sec, 1000.0);
        assert_eq!(point.connections, 3.0);
        let latency = point.storage_latency_ms.unwrap();
        assert!((latency - 2.0).abs() < 1e-9, "{latency}");
    }

    #[test]
    fn the_relay_bytes_come_from_their_counter() {
        let (metrics, registry) = crate::metrics::Metrics::new();
        metrics.p2p.relay_bytes.inc_by(65_536);
        let text = crate::metrics::render(&registry).unwrap();
        let reading = Reading::from_scrape(&Scrape::parse(&text));
        assert_eq!(reading.relay_bytes, 65_536.0);
    }

    #[test]
    fn no_probe_no_latency_and_counters_never_go_negative() {
        let mut series = Series::new(10);
        series.record(1_000, reading(10.0, 2.0, 0.002));
        series.record(2_000, reading(5.0, 2.0, 0.002));
        let point = series.since(0)[0];
        assert_eq!(point.storage_latency_ms, None);
        assert_eq!(point.messages_per_sec, 0.0);
    }

    #[test]
    fn the_ring_keeps_the_last_points_and_pages_by_time() {
        let mut series = Series::new(3);
        for i in 0..10u64 {
            series.record(1_000 * (i + 1), reading(i as f64, 0.0, 0.0));
        }
        let points = series.since(0);
        assert_eq!(
            points.iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![8_000, 9_000, 10_000]
        );
        assert_eq!(series.since(9_000).len(), 1);
        series.record(10_000, reading(20.0, 0.0, 0.0));
        assert_eq!(
            series.since(0).len(),
            3,
            "a clock that stands still adds nothing"
        );
    }
}
