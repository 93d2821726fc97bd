//! Planner statistics kept fresh while logs grow fast (PostgreSQL).
//!
//! PostgreSQL plans from statistics that `ANALYZE` gathers; the storage runs it when it opens,
//! and autovacuum later, but a log that grows from nothing to 100,000 entries in seconds (a
//! catch-up, a bulk import) is planned meanwhile as if it were still small: a page of a fetch
//! (`ORDER BY lamport, entry_id LIMIT 4096`) became a bitmap scan of every later entry and an
//! on-disk sort, 200 ms instead of 3 ms at 100,000 entries (docs/decisions.md, "Planner
//! statistics"). The [`Analyzer`] counts the rows written since the storage opened and runs
//! `ANALYZE` on the log tables in the background each time that count doubles from
//! [`FIRST_ANALYZE_AFTER`]: a handful of runs during a bulk load, each bounded (ANALYZE reads
//! a fixed-size sample), and none on a node whose writes are steady (autovacuum's case).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use sqlx::PgPool;

/// Rows written after which the first background `ANALYZE` runs.
pub(crate) const FIRST_ANALYZE_AFTER: u64 = 5_000;

/// The tables whose statistics the hot reads depend on.
const ANALYZE_LOG_TABLES: &str = "ANALYZE entries, events, heads";

/// Runs `ANALYZE` in the background as the rows written double (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct Analyzer {
    pool: PgPool,
    written: AtomicU64,
    next: AtomicU64,
    running: Arc<AtomicBool>,
}

impl Analyzer {
    /// An analyzer running its statements on `pool`.
    pub(crate) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            written: AtomicU64::new(0),
            next: AtomicU64::new(FIRST_ANALYZE_AFTER),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Counts `rows` written; starts a background `ANALYZE` when the count reached the next
    /// threshold and none runs. Never waits.
    pub(crate) fn wrote(&self, rows: u64) {
        if rows == 0 {
            return;
        }
        let total = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        if total < self.next.load(Ordering::Relaxed) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.next.store(total.saturating_mul(2), Ordering::Relaxed);
        let pool = self.pool.clone();
        let running = self.running.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match sqlx::query(ANALYZE_LOG_TABLES).execute(&pool).await {
                Ok(_) => tracing::debug!(
                    rows_written = total,
                    took_ms = started.elapsed().as_millis() as u64,
                    "planner statistics refreshed"
                ),
                // Stale statistics make reads slower, never wrong: a line is enough.
                Err(e) => tracing::warn!(%e, "ANALYZE of the log tables failed"),
            }
            running.store(false, Ordering::Release);
        });
    }
}
