//! The dashboard's live figures: a sampler that reads the node's own metrics registry every
//! `admin.stats_period_ms`, turns counter deltas into rates, and keeps the last 15 minutes in
//! memory; `GET /admin/v1/stats/series` hands them out.
//!
//! - `scrape`: the encoded registry parsed back into samples (pure);
//! - `series`: readings, points and the bounded ring (pure).

pub mod scrape;
pub mod series;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use actix_web::{web, HttpResponse};
use prometheus_client::registry::Registry;
use serde_json::json;

use super::AdminState;
use crate::{clock::unix_now_ms, defaults, metrics};
use scrape::Scrape;
use series::{Reading, Series};

/// The sampled figures, shared by the sampler and the route.
#[derive(Debug, Clone)]
pub struct Stats {
    period: Duration,
    series: Arc<Mutex<Series>>,
}

impl Stats {
    /// Figures sampled every `period`, the last [`defaults::STATS_WINDOW`] of them kept.
    pub fn new(period: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        let capacity = defaults::STATS_WINDOW.as_millis() / period.as_millis().max(1);
        Self {
            period,
            series: Arc::new(Mutex::new(Series::new(
                usize::try_from(capacity).unwrap_or(usize::MAX),
            ))),
        }
    }

    /// The sampling period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Samples `registry` now and then every period; never returns (the admin server drops it
    /// when it stops).
    pub async fn sample(self, registry: Arc<Registry>) {
        let mut ticks = tokio::time::interval(self.period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match metrics::render(&registry) {
                Ok(text) => {
                    let reading = Reading::from_scrape(&Scrape::parse(&text));
                    self.lock().record(unix_now_ms(), reading);
                }
                Err(e) => tracing::warn!(%e, "encoding metrics for the dashboard's figures"),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        // A panic while holding the lock leaves a series that is still whole: keep using it.
        self.series.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Query of `GET /admin/v1/stats/series`.
#[derive(serde::Deserialize)]
pub struct SeriesQuery {
    /// Only points after this time (Unix milliseconds); default: every point kept.
    since: Option<u64>,
}

/// `GET /admin/v1/stats/series[?since=T]`: the sampled points, oldest first.
pub async fn series(state: web::Data<AdminState>, query: web::Query<SeriesQuery>) -> HttpResponse {
    let points = state.stats.lock().since(query.since.unwrap_or(0));
    HttpResponse::Ok().json(json!({
        "period_ms": u64::try_from(state.stats.period.as_millis()).unwrap_or(u64::MAX),
        "window_secs": defaults::STATS_WINDOW.as_secs(),
        "points": points,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_holds_fifteen_minutes() {
        let stats = Stats::new(Duration::from_secs(5));
        let mut series = stats.lock();
        for i in 0..1000u64 {
            series.record(i * 5_000 + 1, Reading::default());
        }
        assert_eq!(series.since(0).len(), 180);
    }
}
