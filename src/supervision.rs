//! Supervision of the node's long-lived parts.
//!
//! Every part that lives as long as the node (an actor, a task) holds a [`Lifeline`] for its
//! whole life. When the lifeline is dropped (the actor stopped, the task ended, a panic
//! unwound it) without having been [released](Lifeline::release) by a clean end, and the node
//! is not stopping, the part's [`OnDeath`] decides: [`OnDeath::StopNode`] reports the part to
//! the [`Supervisor`], and the node stops naming it (exit code 1); [`OnDeath::Restart`] logs
//! the reason and how a new one starts. Parts that end normally (a peer actor when its peer
//! disconnects, an idle group store) release their lifeline first.
//!
//! The tasks the node already joins (swarm, gRPC and admin servers, account lock) are
//! supervised through their join handles in `node.rs`; lifelines cover the parts nothing
//! joins: actors and detached tasks.
//!
//! Debug builds read `BERTY_NODE_TEST_STOP_PART` (see [`TEST_STOP_PART_ENV`]): the part of
//! that name stops right after it starts, so tests can show what its death does.

use std::{
    cell::RefCell,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    time::{Duration, Instant},
};

use actix::{Actor, ActorContext, AsyncContext, Context};
use tokio::sync::mpsc;

/// Debug builds only: the name of a part (`account actor`, `rendezvous upkeep`, ...) to stop
/// right after it starts.
pub const TEST_STOP_PART_ENV: &str = "BERTY_NODE_TEST_STOP_PART";

/// A panic seen on this thread this recently is taken as the reason a lifeline dropped on it
/// (tokio and actix drop a panicked task's future right after catching the panic).
const PANIC_REASON_WINDOW: Duration = Duration::from_secs(1);

/// What the node does when a part ends without releasing its lifeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDeath {
    /// The node cannot work without it: stop the node, naming the part.
    StopNode,
    /// A new one starts on its own; the text says how (it is logged with the reason).
    Restart(&'static str),
}

/// Group stores: the account actor replaces a stopped store (`Addr::connected` is false) on
/// the log's next use, so one store failing costs only its in-flight jobs.
pub const GROUP_STORE_RESTART: OnDeath =
    OnDeath::Restart("the account actor starts a new one on the log's next use");

/// Peer actors: the replicator forgets a peer's actor when the peer disconnects and starts a
/// new one when it connects again; the node keeps serving every other peer.
pub const PEER_ACTOR_RESTART: OnDeath =
    OnDeath::Restart("a new one starts when the peer connects again");

/// A part that died: which, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Death {
    /// The part's name.
    pub part: &'static str,
    /// Why: `ended before the node stopped`, or `panicked: <message>`.
    pub reason: String,
}

/// What every lifeline of one node shares.
#[derive(Debug, Clone)]
struct Link {
    deaths: mpsc::UnboundedSender<Death>,
    stopping: Arc<AtomicBool>,
}

/// Hands out lifelines and receives the deaths that stop the node. Owned by `node.rs`.
#[derive(Debug)]
pub struct Supervisor {
    link: Link,
    deaths: mpsc::UnboundedReceiver<Death>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// A supervisor with no parts yet.
    pub fn new() -> Self {
        record_panics();
        let (deaths, rx) = mpsc::unbounded_channel();
        Self {
            link: Link {
                deaths,
                stopping: Arc::default(),
            },
            deaths: rx,
        }
    }

    /// The lifeline of a new part.
    pub fn lifeline(&self, part: &'static str, on_death: OnDeath) -> Lifeline {
        Lifeline {
            part,
            on_death,
            link: Some(self.link.clone()),
            released: false,
            reason: None,
        }
    }

    /// The node is stopping: from now on parts end as expected and report nothing.
    pub fn stop(&self) {
        self.link.stopping.store(true, Ordering::SeqCst);
    }

    /// The next part that died and stops the node (pending while none has).
    pub async fn next_death(&mut self) -> Death {
        match self.deaths.recv().await {
            Some(death) => death,
            // Unreachable: `self.link` holds a sender.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Held by a part for its whole life; see the [module docs](self).
#[derive(Debug)]
pub struct Lifeline {
    part: &'static str,
    on_death: OnDeath,
    link: Option<Link>,
    released: bool,
    /// Why the part ended, when the holder knows better than the panic hook (a task's panic
    /// caught by [`Lifeline::hold`]).
    reason: Option<String>,
}

impl Lifeline {
    /// A lifeline that reports to no one (parts built outside a node, in tests).
    pub fn detached(part: &'static str) -> Self {
        Self {
            part,
            on_death: OnDeath::StopNode,
            link: None,
            released: false,
            reason: None,
        }
    }

    /// The part's name.
    pub fn part(&self) -> &'static str {
        self.part
    }

    /// The lifeline of a part this one starts (a group store of the account actor, a peer
    /// actor of the replicator), reporting to the same supervisor.
    pub fn child(&self, part: &'static str, on_death: OnDeath) -> Lifeline {
        Lifeline {
            part,
            on_death,
            link: self.link.clone(),
            released: false,
            reason: None,
        }
    }

    /// The part ends normally: dropping the lifeline from now on reports nothing.
    pub fn release(&mut self) {
        self.released = true;
    }

    /// Called from an actor's `started`: in debug builds, stops the actor right away when
    /// [`TEST_STOP_PART_ENV`] names its part.
    pub fn arm<A: Actor<Context = Context<A>>>(&self, ctx: &mut Context<A>) {
        if stop_for_test(self.part) {
            tracing::warn!(part = self.part, "{TEST_STOP_PART_ENV}: stopping this part");
            ctx.run_later(Duration::ZERO, |_, ctx| ctx.stop());
        }
    }

    /// Runs `task` holding this lifeline, for a detached task: if the task ends or panics
    /// before the node stops, the part died. In debug builds, [`TEST_STOP_PART_ENV`] naming
    /// the part ends it at once.
    pub async fn hold<F: Future<Output = ()>>(mut self, task: F) {
        use futures::FutureExt as _;
        if stop_for_test(self.part) {
            tracing::warn!(part = self.part, "{TEST_STOP_PART_ENV}: stopping this part");
            return;
        }
        if let Err(payload) = std::panic::AssertUnwindSafe(task).catch_unwind().await {
            self.reason = Some(format!("panicked: {}", panic_message(payload.as_ref())));
            drop(self);
            std::panic::resume_unwind(payload);
        }
        drop(self);
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        let Some(link) = &self.link else { return };
        if self.released || link.stopping.load(Ordering::SeqCst) {
            return;
        }
        let reason = match (self.reason.take(), last_panic()) {
            (Some(reason), _) => reason,
            (None, Some(message)) => format!("panicked: {message}"),
            (None, None) => "ended before the node stopped".to_string(),
        };
        match self.on_death {
            OnDeath::StopNode => {
                // A closed channel means the node is gone: nothing left to stop.
                let _ = link.deaths.send(Death {
                    part: self.part,
                    reason,
                });
            }
            OnDeath::Restart(how) => {
                tracing::error!(part = self.part, %reason, "{} died; {how}", self.part);
            }
        }
    }
}

#[cfg(debug_assertions)]
fn stop_for_test(part: &str) -> bool {
    static PART: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    PART.get_or_init(|| std::env::var(TEST_STOP_PART_ENV).ok())
        .as_deref()
        == Some(part)
}

#[cfg(not(debug_assertions))]
fn stop_for_test(_: &str) -> bool {
    false
}

thread_local! {
    /// The last panic on this thread and when it happened.
    static LAST_PANIC: RefCell<Option<(String, Instant)>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that remembers each thread's last panic message, then runs
/// the hook that was there before (which prints it).
fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = panic_message(info.payload());
            let message = match info.location() {
                Some(at) => format!("{message} (at {at})"),
                None => message,
            };
            LAST_PANIC.with(|last| *last.borrow_mut() = Some((message, Instant::now())));
            previous(info);
        }));
    });
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// The message of a panic on this thread within [`PANIC_REASON_WINDOW`], taken.
fn last_panic() -> Option<String> {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .filter(|(_, at)| at.elapsed() <= PANIC_REASON_WINDOW)
        .map(|(message, _)| message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn reported(supervisor: &mut Supervisor) -> Option<Death> {
        supervisor.deaths.try_recv().ok()
    }

    #[test]
    fn a_dropped_lifeline_reports_its_part() {
        let mut supervisor = Supervisor::new();
        drop(supervisor.lifeline("replicator", OnDeath::StopNode));
        assert_eq!(
            reported(&mut supervisor),
            Some(Death {
                part: "replicator",
                reason: "ended before the node stopped".into()
            })
        );
    }

    #[test]
    fn released_restarted_and_late_lifelines_report_nothing() {
        let mut supervisor = Supervisor::new();
        let mut peer = supervisor.lifeline("peer actor", OnDeath::StopNode);
        peer.release();
        drop(peer);
        let parent = supervisor.lifeline("account actor", OnDeath::StopNode);
        drop(parent.child("group store", OnDeath::Restart("started again on next use")));
        assert_eq!(reported(&mut supervisor), None);
        supervisor.stop();
        drop(parent);
        assert_eq!(reported(&mut supervisor), None, "the node was stopping");
        drop(Lifeline::detached("alone"));
    }

    #[tokio::test]
    async fn a_panicking_task_reports_its_message() {
        let mut supervisor = Supervisor::new();
        let lifeline = supervisor.lifeline("rendezvous upkeep", OnDeath::StopNode);
        let task = tokio::spawn(lifeline.hold(async { panic!("boom") }));
        assert!(task.await.unwrap_err().is_panic());
        let death = supervisor.next_death().await;
        assert_eq!(death.part, "rendezvous upkeep");
        assert!(
            death.reason.starts_with("panicked: boom"),
            "{}",
            death.reason
        );
    }

    #[actix::test]
    async fn a_stopped_actor_reports_its_part() {
        struct Part(#[allow(dead_code)] Lifeline);
        impl Actor for Part {
            type Context = Context<Self>;
        }
        let mut supervisor = Supervisor::new();
        let addr = Part(supervisor.lifeline("account actor", OnDeath::StopNode)).start();
        // Any way the actor stops counts: here, its last address is dropped.
        drop(addr);
        let death = tokio::time::timeout(Duration::from_secs(5), supervisor.next_death())
            .await
            .unwrap();
        assert_eq!(death.part, "account actor");
    }
}
