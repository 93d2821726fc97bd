use super::*;

/// Writes, batches, replays and prepared batches are named by strings here.
type Test = Pipeline<&'static str, &'static str, &'static str, &'static str>;
type TestAction = Action<&'static str, &'static str, &'static str, &'static str>;

/// A loaded pipeline (`overlap`: the messages log).
fn loaded(overlap: bool) -> Test {
    let mut pipeline = Test::new(overlap);
    pipeline.start();
    assert_eq!(pipeline.loaded(), vec![]);
    pipeline
}

/// The ticket of the single `Prepare` in `actions`.
fn ticket(actions: &[TestAction]) -> Ticket {
    let tickets: Vec<Ticket> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Prepare(_, t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(tickets.len(), 1, "{actions:?}");
    tickets[0]
}

#[test]
fn nothing_runs_before_the_first_load() {
    let mut pipeline = Test::new(true);
    pipeline.start();
    assert_eq!(pipeline.write("w1"), vec![]);
    assert_eq!(pipeline.remote(Job::Append("a1")), vec![]);
    assert!(!pipeline.is_idle());
    assert_eq!(pipeline.loaded(), vec![Action::CommitLocal(vec!["w1"])]);
}

#[test]
fn writes_queued_during_a_commit_go_in_the_next_batch() {
    let mut pipeline = loaded(false);
    assert_eq!(pipeline.write("w1"), vec![Action::CommitLocal(vec!["w1"])]);
    assert_eq!(pipeline.write("w2"), vec![]);
    assert_eq!(pipeline.write("w3"), vec![]);
    assert_eq!(
        pipeline.committed(true),
        vec![Action::CommitLocal(vec!["w2", "w3"])]
    );
    assert_eq!(pipeline.committed(true), vec![]);
    assert!(pipeline.is_idle());
}

#[test]
fn local_writes_go_before_remote_jobs_but_after_a_prepared_batch() {
    let mut pipeline = loaded(true);
    assert_eq!(pipeline.write("w1"), vec![Action::CommitLocal(vec!["w1"])]);
    // A remote batch waits for the local commit.
    assert_eq!(pipeline.remote(Job::Append("a1")), vec![]);
    let actions = pipeline.committed(true);
    let t1 = ticket(&actions);
    assert_eq!(actions, vec![Action::Prepare("a1", t1)]);
    // A write queued while a1 is prepared waits: a1 commits first.
    assert_eq!(pipeline.write("w2"), vec![]);
    assert_eq!(pipeline.remote(Job::Append("a2")), vec![]);
    assert_eq!(
        pipeline.prepared(t1, Some("p1")),
        vec![Action::CommitRemote("p1")]
    );
    // A local write waits: a2 is not prepared during p1's commit.
    assert_eq!(
        pipeline.committed(true),
        vec![Action::CommitLocal(vec!["w2"])]
    );
    let actions = pipeline.committed(true);
    let t2 = ticket(&actions);
    assert_eq!(actions, vec![Action::Prepare("a2", t2)]);
    assert_eq!(
        pipeline.prepared(t2, Some("p2")),
        vec![Action::CommitRemote("p2")]
    );
    assert_eq!(pipeline.committed(true), vec![]);
    assert!(pipeline.is_idle());
}

#[test]
fn the_next_batch_is_prepared_while_the_previous_one_commits_on_the_messages_log() {
    let mut pipeline = loaded(true);
    let actions = pipeline.remote(Job::Append("a1"));
    let t1 = ticket(&actions);
    // Only one batch is prepared at a time.
    assert_eq!(pipeline.remote(Job::Append("a2")), vec![]);
    assert_eq!(pipeline.remote(Job::Append("a3")), vec![]);
    let actions = pipeline.prepared(t1, Some("p1"));
    let t2 = ticket(&actions);
    assert_eq!(
        actions,
        vec![Action::CommitRemote("p1"), Action::Prepare("a2", t2)]
    );
    // a2 is ready before p1 committed: it waits for its turn, and a3 waits too.
    assert_eq!(pipeline.prepared(t2, Some("p2")), vec![]);
    let actions = pipeline.committed(true);
    let t3 = ticket(&actions);
    assert_eq!(
        actions,
        vec![Action::CommitRemote("p2"), Action::Prepare("a3", t3)]
    );
    // p3 needs no commit (the actor answered it): the store goes idle after p2.
    assert_eq!(pipeline.prepared(t3, None), vec![]);
    assert_eq!(pipeline.committed(true), vec![]);
    assert!(pipeline.is_idle());
}

#[test]
fn metadata_batches_run_one_at_a_time() {
    let mut pipeline = loaded(false);
    let t1 = ticket(&pipeline.remote(Job::Append("a1")));
    assert_eq!(pipeline.remote(Job::Append("a2")), vec![]);
    assert_eq!(
        pipeline.prepared(t1, Some("p1")),
        vec![Action::CommitRemote("p1")]
    );
    let actions = pipeline.committed(true);
    let t2 = ticket(&actions);
    assert_eq!(actions, vec![Action::Prepare("a2", t2)]);
}

#[test]
fn a_replay_runs_alone() {
    let mut pipeline = loaded(true);
    let t1 = ticket(&pipeline.remote(Job::Append("a1")));
    assert_eq!(pipeline.remote(Job::Replay("r1")), vec![]);
    assert_eq!(pipeline.remote(Job::Append("a2")), vec![]);
    // The replay is not prepared during p1's commit, and a2 waits behind it.
    assert_eq!(
        pipeline.prepared(t1, Some("p1")),
        vec![Action::CommitRemote("p1")]
    );
    assert_eq!(pipeline.committed(true), vec![Action::Replay("r1")]);
    assert_eq!(pipeline.write("w1"), vec![]);
    assert_eq!(
        pipeline.committed(true),
        vec![Action::CommitLocal(vec!["w1"])]
    );
    let actions = pipeline.committed(true);
    assert_eq!(actions, vec![Action::Prepare("a2", ticket(&actions))]);
}

#[test]
fn a_failed_remote_commit_refuses_what_was_prepared_after_it_and_reloads_first() {
    let mut pipeline = loaded(true);
    let t1 = ticket(&pipeline.remote(Job::Append("a1")));
    pipeline.remote(Job::Append("a2"));
    pipeline.remote(Job::Append("a3"));
    pipeline.remote(Job::Append("a4"));
    let t2 = ticket(&pipeline.prepared(t1, Some("p1")));
    assert!(pipeline.prepared(t2, Some("p2")).is_empty());
    // p2 waits for p1's commit; a3 is not being prepared (p2 waits).
    // p2 was decoded from p1's state: refused; the state is reloaded before a3.
    assert_eq!(
        pipeline.committed(false),
        vec![Action::Refuse(vec!["p2"]), Action::Load]
    );
    assert!(!pipeline.is_current(t2));
    let actions = pipeline.loaded();
    let t3 = ticket(&actions);
    assert!(pipeline.is_current(t3));
    assert_eq!(actions, vec![Action::Prepare("a3", t3)]);
}

#[test]
fn a_batch_being_prepared_when_a_commit_fails_is_refused() {
    let mut pipeline = loaded(true);
    let t1 = ticket(&pipeline.remote(Job::Append("a1")));
    pipeline.remote(Job::Append("a2"));
    pipeline.remote(Job::Append("a3"));
    let t2 = ticket(&pipeline.prepared(t1, Some("p1")));
    // p1's commit fails while a2 is being prepared: nothing else starts, no reload yet.
    assert_eq!(pipeline.committed(false), vec![]);
    assert!(!pipeline.is_current(t2));
    // a2 ends: refused, then the state is reloaded before a3.
    assert_eq!(
        pipeline.prepared(t2, Some("p2")),
        vec![Action::Refuse(vec!["p2"]), Action::Load]
    );
    assert_eq!(pipeline.write("w1"), vec![]);
    let actions = pipeline.loaded();
    assert_eq!(actions, vec![Action::CommitLocal(vec!["w1"])]);
    let actions = pipeline.committed(true);
    assert_eq!(actions, vec![Action::Prepare("a3", ticket(&actions))]);
}

#[test]
fn a_failed_local_commit_reloads_before_the_next_batch() {
    let mut pipeline = loaded(false);
    assert_eq!(pipeline.write("w1"), vec![Action::CommitLocal(vec!["w1"])]);
    assert_eq!(pipeline.committed(false), vec![]);
    // Stale, nothing waits: no reload until a job needs it.
    assert!(pipeline.is_idle());
    assert_eq!(pipeline.write("w2"), vec![Action::Load]);
    assert_eq!(pipeline.write("w3"), vec![]);
    assert_eq!(
        pipeline.loaded(),
        vec![Action::CommitLocal(vec!["w2", "w3"])]
    );
}

#[test]
fn a_failed_load_fails_every_waiting_job_and_the_next_job_loads_again() {
    let mut pipeline = loaded(true);
    assert_eq!(pipeline.write("w1"), vec![Action::CommitLocal(vec!["w1"])]);
    pipeline.write("w2");
    pipeline.remote(Job::Append("a1"));
    pipeline.remote(Job::Replay("r1"));
    assert_eq!(pipeline.committed(false), vec![Action::Load]);
    assert_eq!(
        pipeline.load_failed(),
        (vec!["w2"], vec![Job::Append("a1"), Job::Replay("r1")])
    );
    assert!(pipeline.is_idle());
    assert_eq!(pipeline.remote(Job::Replay("r2")), vec![Action::Load]);
    assert_eq!(pipeline.loaded(), vec![Action::Replay("r2")]);
}

#[test]
fn a_failed_replay_reloads_before_the_next_job() {
    let mut pipeline = loaded(true);
    assert_eq!(
        pipeline.remote(Job::Replay("r1")),
        vec![Action::Replay("r1")]
    );
    pipeline.remote(Job::Append("a1"));
    assert_eq!(pipeline.committed(false), vec![Action::Load]);
    let actions = pipeline.loaded();
    assert_eq!(actions, vec![Action::Prepare("a1", ticket(&actions))]);
}

/// A small deterministic generator for the simulation below.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What runs, in the simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Running {
    Load,
    Commit(Option<u32>),
    Prepare(u32, Ticket),
}

// Random arrivals and outcomes: at most one commit and one prepare run at once, never both a
// load and a job, remote batches commit in arrival order, and every job is answered once.
#[test]
fn random_schedules_keep_the_invariants() {
    type Sim = Pipeline<u32, u32, u32, u32>;
    let mut overlapped = 0;
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let mut pipeline = Sim::new(seed % 2 == 0);
        let mut running: Vec<Running> = Vec::new();
        let mut answered: Vec<u32> = Vec::new();
        let mut committed_batches: Vec<u32> = Vec::new();
        let mut next_id = 0u32;
        pipeline.start();
        let mut actions: Vec<Action<u32, u32, u32, u32>> = vec![Action::Load];
        for _ in 0..400 {
            for action in actions.drain(..) {
                match action {
                    Action::Load => running.push(Running::Load),
                    Action::CommitLocal(writes) => {
                        answered.extend(&writes);
                        running.push(Running::Commit(None));
                    }
                    Action::Prepare(batch, ticket) => running.push(Running::Prepare(batch, ticket)),
                    Action::CommitRemote(batch) => {
                        committed_batches.push(batch);
                        answered.push(batch);
                        running.push(Running::Commit(Some(batch)));
                    }
                    Action::Replay(replay) => {
                        answered.push(replay);
                        running.push(Running::Commit(None));
                    }
                    Action::Refuse(batches) => answered.extend(batches),
                }
            }
            let commits = running
                .iter()
                .filter(|r| matches!(r, Running::Commit(_)))
                .count();
            let prepares = running
                .iter()
                .filter(|r| matches!(r, Running::Prepare(..)))
                .count();
            let loads = running.iter().filter(|r| **r == Running::Load).count();
            assert!(commits <= 1 && prepares <= 1 && loads <= 1, "{running:?}");
            assert!(loads == 0 || commits + prepares == 0, "{running:?}");
            if commits == 1 && prepares == 1 {
                overlapped += 1;
            }
            match rng.below(6) {
                0 => {
                    next_id += 1;
                    actions = pipeline.write(next_id);
                }
                1 | 2 => {
                    next_id += 1;
                    let job = if rng.below(5) == 0 {
                        Job::Replay(next_id)
                    } else {
                        Job::Append(next_id)
                    };
                    actions = pipeline.remote(job);
                }
                _ if running.is_empty() => {}
                _ => {
                    let index = rng.below(running.len() as u64) as usize;
                    let ok = rng.below(8) != 0;
                    actions = match running.remove(index) {
                        Running::Load if ok => pipeline.loaded(),
                        Running::Load => {
                            let (writes, jobs) = pipeline.load_failed();
                            answered.extend(writes);
                            answered.extend(jobs.into_iter().map(|j| match j {
                                Job::Append(a) | Job::Replay(a) => a,
                            }));
                            Vec::new()
                        }
                        Running::Commit(_) => pipeline.committed(ok),
                        Running::Prepare(batch, ticket) if ok => {
                            pipeline.prepared(ticket, Some(batch))
                        }
                        Running::Prepare(batch, ticket) => {
                            answered.push(batch);
                            pipeline.prepared(ticket, None)
                        }
                    };
                }
            }
        }
        let mut sorted = committed_batches.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, committed_batches, "remote batches commit in order");
        let mut unique = answered.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), answered.len(), "each job is answered once");
    }
    assert!(overlapped > 0, "prepares overlapped commits");
}
