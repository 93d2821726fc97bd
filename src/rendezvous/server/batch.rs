//! The queue that coalesces registrations into one transaction (group commit).
//!
//! A REGISTER is validated (namespace, TTL, signed record, sender) in the caller's task, then
//! queued. The first caller to find no batch in flight becomes the committer: it takes the
//! queue (at most [`MAX_BATCH`] at a time) and stores it in one transaction, while the
//! registrations arriving meanwhile queue up for the next one. Each caller is answered once
//! the transaction holding its registration has committed. Under load one commit (one disk
//! sync on SQLite) serves many registrations.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use super::{Counters, RendezvousServer, MAX_BATCH};
use crate::storage::rendezvous::{NewRegistration, RegisterOutcome, RegistrationCaps};

/// A registration waiting for its batch.
struct Pending {
    /// `expires_at` is set when the batch commits.
    registration: NewRegistration,
    ttl: u64,
    reply: oneshot::Sender<Result<RegisterOutcome, String>>,
}

/// Registrations validated and waiting for a committer, and the lock the committer holds.
#[derive(Default)]
pub(super) struct BatchQueue {
    /// Registrations waiting for their batch, in arrival order.
    pending: Mutex<Vec<Pending>>,
    /// Held by the caller committing a batch.
    committer: tokio::sync::Mutex<()>,
}

impl BatchQueue {
    fn pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RendezvousServer {
    /// Queues a registration and returns once the batch holding it is committed, committing
    /// batches itself while no other caller does.
    pub(super) async fn commit(
        &self,
        registration: NewRegistration,
        ttl: u64,
    ) -> Result<RegisterOutcome, String> {
        let (reply, mut answer) = oneshot::channel();
        self.inner.batch_queue.pending().push(Pending {
            registration,
            ttl,
            reply,
        });
        let lost = || "the batch holding the registration was abandoned".to_owned();
        let _committer = tokio::select! {
            biased;
            answer = &mut answer => return answer.unwrap_or_else(|_| Err(lost())),
            committer = self.inner.batch_queue.committer.lock() => committer,
        };
        loop {
            match answer.try_recv() {
                Ok(answer) => return answer,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<Pending> = {
                let mut queue = self.inner.batch_queue.pending();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                // Unreachable: our registration is queued or was answered.
                return Err(lost());
            }
            self.commit_batch(batch).await;
        }
    }

    /// Stores a batch in one transaction and answers each caller.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let now = self.now();
        let (registrations, replies): (Vec<NewRegistration>, Vec<_>) = batch
            .into_iter()
            .map(|pending| {
                let registration = NewRegistration {
                    expires_at: now.saturating_add(pending.ttl),
                    ..pending.registration
                };
                (registration, pending.reply)
            })
            .unzip();
        let limits = &self.inner.limits;
        let caps = RegistrationCaps {
            per_peer: limits.max_registrations_per_peer,
            total: limits.max_registrations,
        };
        let stored = self
            .inner
            .storage
            .rendezvous()
            .register_batch(&registrations, caps, now)
            .await;
        Counters::add(&self.inner.counters.batches, 1);
        match stored {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that went away misses its answer; its registration stands.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let err = format!(
                    "storage answered {} outcomes for {} registrations",
                    outcomes.len(),
                    replies.len()
                );
                tracing::warn!(%err, "rendezvous registrations not stored");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
            Err(err) => {
                let err = err.to_string();
                tracing::warn!(
                    %err,
                    registrations = replies.len(),
                    "rendezvous registrations not stored"
                );
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
