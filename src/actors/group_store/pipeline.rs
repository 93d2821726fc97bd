//! The order of a group store's jobs, as plain data (no actix, no I/O).
//!
//! A [`Pipeline`] holds what waits (local writes, remote jobs, prepared batches) and what runs
//! (at most one commit, at most one batch being prepared, a reload), and decides what may start
//! next. The actor feeds it events ([`Pipeline::write`], [`Pipeline::remote`],
//! [`Pipeline::loaded`], [`Pipeline::load_failed`], [`Pipeline::prepared`],
//! [`Pipeline::committed`]) and runs the
//! [`Action`]s it returns, reporting back when each ends.
//!
//! The rules:
//! - the state is loaded before any job; after a failed commit or load it is *stale* and is
//!   reloaded once nothing runs and a job waits; a failed load answers every waiting job;
//! - at most one commit is in flight: a local batch, a prepared remote batch, or a replay;
//! - a prepared remote batch commits before anything queued after it; otherwise queued local
//!   writes go first (all of them in one batch), then remote jobs in arrival order;
//! - on the messages log, the next remote batch may be prepared while the previous one
//!   commits (when no local write waits); a replay runs alone;
//! - a failed remote commit refuses the batches prepared after it, and the one being prepared
//!   when it failed (its [`Ticket`] is no longer current).

use std::collections::VecDeque;

/// A job of entries from other replicas, in arrival order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Job<A, R> {
    /// A batch of entries: prepared (checked and decoded), then committed in its turn.
    Append(A),
    /// Queued messages to decode again: runs whole, alone.
    Replay(R),
}

/// Names a batch being prepared; it is refused if a commit failed since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

/// What the actor runs next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Action<W, A, R, P> {
    /// Reload the state from storage, then report [`Pipeline::loaded`] or
    /// [`Pipeline::load_failed`].
    Load,
    /// Build these writes into one batch and commit it, then report [`Pipeline::committed`].
    CommitLocal(Vec<W>),
    /// Check and decode this batch from the decoding state the previous one left, then
    /// report [`Pipeline::prepared`] with the ticket.
    Prepare(A, Ticket),
    /// Commit this prepared batch, then report [`Pipeline::committed`].
    CommitRemote(P),
    /// Replay queued messages, then report [`Pipeline::committed`].
    Replay(R),
    /// Refuse these prepared batches: an earlier commit failed, and they were decoded from a
    /// state that never reached storage.
    Refuse(Vec<P>),
}

/// The actions of one event, in the order to run them.
pub(super) type Actions<W, A, R, P> = Vec<Action<W, A, R, P>>;

/// Whether the state in memory can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memory {
    /// Never loaded, or a commit failed: reload before the next job.
    Stale,
    /// A reload runs.
    Loading,
    /// As storage has it.
    Loaded,
}

/// The commit in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    Local,
    Remote,
    Replay,
}

/// The jobs of one store, waiting and running. `W`: a local write; `A`: a batch of remote
/// entries; `R`: a replay; `P`: a prepared batch.
#[derive(Debug)]
pub(super) struct Pipeline<W, A, R, P> {
    /// Whether the next remote batch may be prepared while the previous one commits.
    overlap: bool,
    memory: Memory,
    writes: Vec<W>,
    jobs: VecDeque<Job<A, R>>,
    preparing: Option<Ticket>,
    prepared: VecDeque<P>,
    committing: Option<Commit>,
    /// Bumped when a remote commit fails: tickets of earlier epochs are refused.
    epoch: u64,
}

impl<W, A, R, P> Pipeline<W, A, R, P> {
    /// An empty pipeline whose state is not loaded yet; `overlap`: remote batches may be
    /// prepared while the previous one commits (the messages log).
    pub(super) fn new(overlap: bool) -> Self {
        Self {
            overlap,
            memory: Memory::Stale,
            writes: Vec::new(),
            jobs: VecDeque::new(),
            preparing: None,
            prepared: VecDeque::new(),
            committing: None,
            epoch: 0,
        }
    }

    /// The first load runs (when the store starts, whether or not a job waits): report
    /// [`Pipeline::loaded`] or [`Pipeline::load_failed`].
    pub(super) fn start(&mut self) {
        self.memory = Memory::Loading;
    }

    /// A local write was queued.
    pub(super) fn write(&mut self, write: W) -> Actions<W, A, R, P> {
        self.writes.push(write);
        self.next()
    }

    /// A remote job was queued.
    pub(super) fn remote(&mut self, job: Job<A, R>) -> Actions<W, A, R, P> {
        self.jobs.push_back(job);
        self.next()
    }

    /// The state was loaded: jobs go on.
    pub(super) fn loaded(&mut self) -> Actions<W, A, R, P> {
        self.memory = Memory::Loaded;
        self.next()
    }

    /// The state could not be loaded: it stays stale (the next job loads again), and every
    /// waiting job is returned, to answer with the error.
    pub(super) fn load_failed(&mut self) -> (Vec<W>, Vec<Job<A, R>>) {
        self.memory = Memory::Stale;
        (
            std::mem::take(&mut self.writes),
            self.jobs.drain(..).collect(),
        )
    }

    /// Whether a batch prepared under `ticket` may still commit.
    pub(super) fn is_current(&self, ticket: Ticket) -> bool {
        ticket.0 == self.epoch
    }

    /// A batch finished preparing: `Some` to commit in its turn, `None` when it failed or
    /// needs no commit (the actor answered it). A batch whose ticket is no longer current is
    /// refused.
    pub(super) fn prepared(&mut self, ticket: Ticket, batch: Option<P>) -> Actions<W, A, R, P> {
        self.preparing = None;
        let mut out = Vec::new();
        match batch {
            Some(batch) if self.is_current(ticket) => self.prepared.push_back(batch),
            Some(batch) => out.push(Action::Refuse(vec![batch])),
            None => {}
        }
        out.extend(self.next());
        out
    }

    /// The commit in flight ended. A failed one leaves the state stale (it may still have
    /// reached storage); a failed remote commit also refuses what was prepared after it.
    pub(super) fn committed(&mut self, ok: bool) -> Actions<W, A, R, P> {
        let commit = self.committing.take();
        let mut out = Vec::new();
        if !ok {
            self.memory = Memory::Stale;
            if commit == Some(Commit::Remote) {
                self.epoch += 1;
                if !self.prepared.is_empty() {
                    out.push(Action::Refuse(self.prepared.drain(..).collect()));
                }
            }
        }
        out.extend(self.next());
        out
    }

    /// Whether nothing waits and nothing runs (the store may stop).
    pub(super) fn is_idle(&self) -> bool {
        !self.waiting() && !self.busy() && self.memory != Memory::Loading
    }

    /// Whether a job runs: a commit, a batch being prepared or waiting for its commit.
    fn busy(&self) -> bool {
        self.committing.is_some() || self.preparing.is_some() || !self.prepared.is_empty()
    }

    /// Whether a job waits.
    fn waiting(&self) -> bool {
        !self.writes.is_empty() || !self.jobs.is_empty()
    }

    /// Whether the job at the front may be prepared while the current commit runs.
    fn may_prepare_next(&self) -> bool {
        self.overlap
            && self.committing == Some(Commit::Remote)
            && self.writes.is_empty()
            && matches!(self.jobs.front(), Some(Job::Append(_)))
    }

    /// What may start now.
    fn next(&mut self) -> Actions<W, A, R, P> {
        let mut out = Vec::new();
        loop {
            match self.memory {
                Memory::Loading => return out,
                Memory::Stale => {
                    // Reload once what runs has ended, and only for a job that needs it.
                    if !self.busy() && self.waiting() {
                        self.memory = Memory::Loading;
                        out.push(Action::Load);
                    }
                    return out;
                }
                Memory::Loaded => {}
            }
            if self.committing.is_none() {
                // A prepared batch commits first: later jobs were queued after it.
                if let Some(batch) = self.prepared.pop_front() {
                    self.committing = Some(Commit::Remote);
                    out.push(Action::CommitRemote(batch));
                    continue;
                }
            }
            if self.preparing.is_some() || !self.prepared.is_empty() {
                return out;
            }
            if self.committing.is_some() {
                if self.may_prepare_next() {
                    if let Some(Job::Append(batch)) = self.jobs.pop_front() {
                        out.push(self.prepare(batch));
                    }
                }
                return out;
            }
            if !self.writes.is_empty() {
                self.committing = Some(Commit::Local);
                out.push(Action::CommitLocal(std::mem::take(&mut self.writes)));
                return out;
            }
            match self.jobs.pop_front() {
                Some(Job::Append(batch)) => out.push(self.prepare(batch)),
                Some(Job::Replay(replay)) => {
                    self.committing = Some(Commit::Replay);
                    out.push(Action::Replay(replay));
                }
                None => return out,
            }
        }
    }

    fn prepare(&mut self, batch: A) -> Action<W, A, R, P> {
        let ticket = Ticket(self.epoch);
        self.preparing = Some(ticket);
        Action::Prepare(batch, ticket)
    }
}

#[cfg(test)]
mod tests;
