//! Storage health: a background probe of the database, so that nobody waits to learn it is down.
//!
//! A `HealthMonitor` runs one task per storage. Every [`PROBE_INTERVAL`] (and at once when a
//! storage call failed with [`StorageError::Unavailable`]) it asks a `Probe` whether the
//! database answers; the probe has a connection of its own, so a busy pool never makes the
//! database look down, and when that connection breaks it opens a new one, whose error is the
//! real cause ("Connection refused", "password authentication failed", no answer in time).
//! The verdict lives in a `watch` that [`StorageHealth`] handles read without waiting:
//!
//! - `/readyz` answers from it at once;
//! - every storage call goes through `StorageHealth::guard`: it fails at once with
//!   [`StorageError::Down`] while the database is down, and a call already waiting (for
//!   instance in the pool, which retries a refused connection until its acquire timeout)
//!   fails as soon as the probe says the database went down;
//! - when the database is back the probe says so within [`PROBE_INTERVAL`] and calls go
//!   through again: nothing has to be restarted.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use tokio::sync::{watch, Notify};

use super::{Result, StorageError};

/// How often the database is probed while nothing fails.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a probe waits for the database to answer on its open connection.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe waits for a new connection (after the old one broke).
pub const RECONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the last probe said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The database answered.
    Up,
    /// The database did not answer; why.
    Down(String),
}

/// Asks a database whether it answers. Implemented per backend.
#[async_trait]
pub(crate) trait Probe: Send + 'static {
    /// `Ok` when the database answered, else the cause, as an operator should read it.
    async fn probe(&mut self) -> std::result::Result<(), String>;
}

/// A probe for a database that cannot go away (an in-memory SQLite database).
pub(crate) struct AlwaysUp;

#[async_trait]
impl Probe for AlwaysUp {
    async fn probe(&mut self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// The health of one storage, as its users see it: cheap to clone, never waits.
#[derive(Debug, Clone)]
pub struct StorageHealth {
    state: watch::Receiver<Health>,
    /// Wakes the monitor for a probe now (a call just failed).
    wake: Arc<Notify>,
    /// Which database this is, as errors name it (`PostgreSQL at host:port/db`).
    database: Arc<str>,
    /// How long the last successful probe took (`None` before the first).
    probe_durations: watch::Receiver<Option<Duration>>,
}

impl StorageHealth {
    /// The database, as errors name it.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// What the last probe said.
    pub fn current(&self) -> Health {
        self.state.borrow().clone()
    }

    /// Whether the last probe found the database answering.
    pub fn is_up(&self) -> bool {
        matches!(*self.state.borrow(), Health::Up)
    }

    /// `Ok` while the database is up, else the error calls fail with.
    pub fn check(&self) -> Result<()> {
        match &*self.state.borrow() {
            Health::Up => Ok(()),
            Health::Down(cause) => Err(self.down(cause.clone())),
        }
    }

    /// A receiver of every change of the health (for metrics).
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.state.clone()
    }

    /// A receiver of the round trip of each successful probe (for metrics): a fresh value
    /// every [`PROBE_INTERVAL`] while the database answers.
    pub fn probe_durations(&self) -> watch::Receiver<Option<Duration>> {
        self.probe_durations.clone()
    }

    fn down(&self, cause: String) -> StorageError {
        StorageError::Down {
            database: self.database.to_string(),
            cause,
        }
    }

    /// Runs one storage call: at once [`StorageError::Down`] while the database is down;
    /// otherwise the call, unless the database is found down before it ends (then
    /// [`StorageError::Down`]: a write cut short this way may or may not have committed,
    /// like one whose connection broke). A call failing with [`StorageError::Unavailable`]
    /// gets the database named, and has the monitor probe at once.
    pub(crate) async fn guard<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.check()?;
        let mut state = self.state.clone();
        let result = tokio::select! {
            result = call => result,
            cause = went_down(&mut state) => Err(self.down(cause)),
        };
        match result {
            Err(StorageError::Unavailable(cause)) => {
                self.wake.notify_one();
                Err(self.down(cause))
            }
            other => other,
        }
    }
}

/// Resolves when the health says down, with the cause.
async fn went_down(state: &mut watch::Receiver<Health>) -> String {
    loop {
        if let Health::Down(cause) = &*state.borrow_and_update() {
            return cause.clone();
        }
        if state.changed().await.is_err() {
            // The monitor is gone (the storage is being dropped): nothing more to learn.
            return std::future::pending().await;
        }
    }
}

/// The task keeping a [`StorageHealth`] up to date; stops when dropped.
#[derive(Debug)]
pub(crate) struct HealthMonitor {
    health: StorageHealth,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HealthMonitor {
    /// Starts probing `database` with `probe`. The storage was just opened, so it starts up.
    pub(crate) fn spawn(database: String, probe: impl Probe) -> Self {
        let (state, receiver) = watch::channel(Health::Up);
        let (durations, probe_durations) = watch::channel(None);
        let wake = Arc::new(Notify::new());
        let health = StorageHealth {
            state: receiver,
            wake: wake.clone(),
            database: database.into(),
            probe_durations,
        };
        let probe = TimedProbe { probe, durations };
        let task = tokio::spawn(monitor(health.database.clone(), probe, state, wake));
        Self { health, task }
    }

    /// The health the monitor keeps.
    pub(crate) fn health(&self) -> &StorageHealth {
        &self.health
    }
}

/// A probe whose successful round trips are published (for the storage latency metric).
struct TimedProbe<P> {
    probe: P,
    durations: watch::Sender<Option<Duration>>,
}

#[async_trait]
impl<P: Probe> Probe for TimedProbe<P> {
    async fn probe(&mut self) -> std::result::Result<(), String> {
        let started = Instant::now();
        let result = self.probe.probe().await;
        if result.is_ok() {
            self.durations.send_replace(Some(started.elapsed()));
        }
        result
    }
}

async fn monitor(
    database: Arc<str>,
    mut probe: impl Probe,
    state: watch::Sender<Health>,
    wake: Arc<Notify>,
) {
    let mut down_since: Option<Instant> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = wake.notified() => {}
        }
        let verdict = match probe.probe().await {
            Ok(()) => Health::Up,
            Err(cause) => Health::Down(cause),
        };
        match (&verdict, down_since) {
            (Health::Down(cause), None) => {
                tracing::error!(%database, %cause, "database unavailable");
                down_since = Some(Instant::now());
            }
            (Health::Up, Some(since)) => {
                tracing::warn!(%database, down_for = ?since.elapsed(), "database available again");
                down_since = None;
            }
            _ => {}
        }
        state.send_if_modified(|current| {
            let changed = *current != verdict;
            *current = verdict;
            changed
        });
    }
}

/// The cause of a failed connection or query, without sqlx's wrapping ("error communicating
/// with database: ...", "pool timed out while waiting for an open connection").
pub(crate) fn cause_of(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_string(),
        sqlx::Error::Tls(e) => format!("TLS: {e}"),
        sqlx::Error::PoolTimedOut => "no connection could be had in time".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A probe answering what a shared switch says.
    struct Switch(Arc<AtomicBool>);

    #[async_trait]
    impl Probe for Switch {
        async fn probe(&mut self) -> std::result::Result<(), String> {
            if self.0.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("Connection refused".into())
            }
        }
    }

    async fn wait_until(health: &StorageHealth, up: bool) {
        let mut state = health.subscribe();
        tokio::time::timeout(Duration::from_secs(5), async {
            while health.is_up() != up {
                state.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn calls_fail_at_once_while_down_and_go_through_once_up() {
        let up = Arc::new(AtomicBool::new(true));
        let monitor = HealthMonitor::spawn("TestDB at nowhere".into(), Switch(up.clone()));
        let health = monitor.health().clone();
        assert_eq!(health.guard(async { Ok(1) }).await.unwrap(), 1);

        up.store(false, Ordering::SeqCst);
        wait_until(&health, false).await;
        let started = Instant::now();
        let err = health
            .guard(std::future::pending::<Result<()>>())
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(
            err.to_string(),
            "database unavailable (TestDB at nowhere): Connection refused"
        );
        assert_eq!(health.current(), Health::Down("Connection refused".into()));

        up.store(true, Ordering::SeqCst);
        wait_until(&health, true).await;
        assert_eq!(health.guard(async { Ok(2) }).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_waiting_call_fails_when_the_database_goes_down() {
        let up = Arc::new(AtomicBool::new(true));
        let monitor = HealthMonitor::spawn("TestDB at nowhere".into(), Switch(up.clone()));
        let health = monitor.health().clone();
        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.guard(std::future::pending::<Result<()>>()).await }
        });
        up.store(false, Ordering::SeqCst);
        let err = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, StorageError::Down { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_failed_call_names_the_database_and_other_errors_pass_through() {
        let monitor = HealthMonitor::spawn(
            "TestDB at nowhere".into(),
            Switch(Arc::new(AtomicBool::new(true))),
        );
        let health = monitor.health().clone();
        let err = health
            .guard(async { Err::<(), _>(StorageError::Unavailable("reset by peer".into())) })
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "database unavailable (TestDB at nowhere): reset by peer"
        );
        let err = health
            .guard(async { Err::<(), _>(StorageError::Corrupt("bad row".into())) })
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Corrupt(_)), "{err}");
    }
}
