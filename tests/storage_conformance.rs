//! Storage conformance: one suite, run against every backend.
//!
//! Each test is an async function of a [`Fixture`] (a fresh, empty storage and the means to
//! reopen it). `conformance_tests!` instantiates every test once per backend: `sqlite::*` on a
//! file in a temp dir, `postgres::*` on a fresh database per test (see `common::postgres`; the
//! server comes from `BERTY_NODE_TEST_POSTGRES_URL` and an unreachable one fails the tests).
//!
//! The throughput benchmark is ignored by default:
//! `cargo test --release --test storage_conformance -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    ops::Bound,
    path::Path,
    slice,
    sync::{Arc, LazyLock},
    time::{Duration, Instant},
};

use berty_node::{
    crypto::SymmetricKey,
    log::{EntryId, LogId, LogKind, OrderKey},
    storage::{
        self, Appended, Commit, CommitPaths, Committed, Direction, NewEntry, NewEvent, OrderRange,
        Sealed, SealedValues, Storage, StorageError, StoredEntry, StoredEvent,
    },
};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use sha2::{Digest, Sha256};
use sqlx::Connection;

common::fixture_tests! {
    ignore: "benchmark: cargo test --release --test storage_conformance -- --ignored --nocapture",
    backends: {
        sqlite => Fixture::sqlite,
        postgres => Fixture::postgres,
    },
    tests: [
        append_and_read_back,
        append_is_idempotent,
        missing_parent_rolls_back_the_whole_batch,
        heads_follow_linear_branching_and_merging_histories,
        ranges_match_a_sorted_model,
        cursors_are_consecutive_and_stable,
        concurrent_appends_to_one_log,
        two_storages_on_one_database,
        order_keys_and_entries_of_stored_ids,
        large_batches_round_trip,
        node_values_get_and_put,
        data_survives_reopening,
        open_picks_the_backend_from_the_url,
        commit_is_all_or_nothing,
        commits_from_known_state_stay_consistent,
        events_get_cursors_and_stay_idempotent,
        events_of_entries_on_one_clock_stay_apart,
        event_pages_match_a_sorted_model,
        logs_lists_logs_with_entries,
        values_list_by_prefix_and_delete,
        planner_statistics_follow_a_bulk_load,
    ],
    benches: [append_throughput],
}

use common::store::{Backend, Inspect, StoreFixture as Fixture};

/// The log most tests use.
static LOG: LazyLock<LogId> = LazyLock::new(|| log_id(1, LogKind::Messages));

fn log_id(n: u8, kind: LogKind) -> LogId {
    LogId::new([n; 32], kind)
}

/// An entry with the given body whose lamport follows its parents (1 for a root).
fn entry(body: &str, parents: &[&NewEntry]) -> NewEntry {
    let lamport = parents
        .iter()
        .map(|p| p.lamport)
        .max()
        .map_or(1, |max| max + 1);
    entry_at(body, lamport, parents)
}

/// An entry with an explicit lamport (storage does not check clocks against parents).
fn entry_at(body: &str, lamport: u64, parents: &[&NewEntry]) -> NewEntry {
    let bytes = body.as_bytes().to_vec();
    NewEntry {
        id: EntryId(Sha256::digest(&bytes).into()),
        lamport,
        parents: parents.iter().map(|p| p.id).collect(),
        bytes,
    }
}

fn key(entry: &NewEntry) -> OrderKey {
    OrderKey {
        lamport: entry.lamport,
        id: entry.id,
    }
}

fn stored(entry: &NewEntry, cursor: u64) -> StoredEntry {
    StoredEntry {
        id: entry.id,
        lamport: entry.lamport,
        parents: entry.parents.clone(),
        bytes: entry.bytes.clone(),
        cursor,
    }
}

fn sorted_keys(entries: &[&NewEntry]) -> Vec<OrderKey> {
    let mut keys: Vec<_> = entries.iter().map(|e| key(e)).collect();
    keys.sort();
    keys
}

fn new(cursor: u64) -> Appended {
    Appended::New { cursor }
}

fn existing(cursor: u64) -> Appended {
    Appended::Existing { cursor }
}

/// A chain of `len` entries named `{name}-{i}`, each the child of the previous one.
fn chain(name: &str, len: usize) -> Vec<NewEntry> {
    let mut out: Vec<NewEntry> = Vec::with_capacity(len);
    for i in 0..len {
        let body = format!("{name}-{i}");
        let next = match out.last() {
            Some(prev) => entry(&body, &[prev]),
            None => entry(&body, &[]),
        };
        out.push(next);
    }
    out
}

async fn append_and_read_back(fx: Fixture) {
    let s = fx.storage();
    let a = entry("a", &[]);
    let b = entry("b", &[&a]);
    let c = entry("c", &[&b, &a]);
    assert_eq!(s.append(&LOG, &[]).await.unwrap(), vec![]);
    assert_eq!(
        s.append(&LOG, &[a.clone(), b.clone()]).await.unwrap(),
        vec![new(1), new(2)]
    );
    assert_eq!(
        s.append(&LOG, slice::from_ref(&c)).await.unwrap(),
        vec![new(3)]
    );

    for (e, cursor) in [(&a, 1), (&b, 2), (&c, 3)] {
        assert_eq!(s.entry(&LOG, &e.id).await.unwrap(), Some(stored(e, cursor)));
    }
    let read = s.entry(&LOG, &c.id).await.unwrap().unwrap();
    assert_eq!(read.parents, vec![b.id, a.id], "parents keep their order");
    assert_eq!(read.order_key(), key(&c));
    assert_eq!(
        s.entry(&LOG, &entry("unknown", &[]).id).await.unwrap(),
        None
    );
    assert_eq!(s.count(&LOG).await.unwrap(), 3);

    // Logs are separate, including the two logs of one group.
    let metadata = log_id(1, LogKind::Metadata);
    assert_eq!(s.entry(&metadata, &a.id).await.unwrap(), None);
    assert_eq!(s.count(&metadata).await.unwrap(), 0);
    assert_eq!(
        s.append(&metadata, slice::from_ref(&a)).await.unwrap(),
        vec![new(1)]
    );
    assert!(matches!(
        s.append(&metadata, slice::from_ref(&c)).await,
        Err(StorageError::MissingParent { .. })
    ));
    assert_eq!(s.count(&metadata).await.unwrap(), 1);
    assert_eq!(s.count(&LOG).await.unwrap(), 3);
    assert_eq!(s.heads(&metadata).await.unwrap(), vec![key(&a)]);
}

async fn append_is_idempotent(fx: Fixture) {
    let s = fx.storage();
    let [a, b, c] = <[NewEntry; 3]>::try_from(chain("i", 3)).unwrap();
    let batch = [a.clone(), b.clone(), c.clone()];
    assert_eq!(
        s.append(&LOG, &batch).await.unwrap(),
        vec![new(1), new(2), new(3)]
    );
    assert_eq!(
        s.append(&LOG, &batch).await.unwrap(),
        vec![existing(1), existing(2), existing(3)]
    );
    assert_eq!(s.count(&LOG).await.unwrap(), 3);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 3);
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&c)]);

    // Duplicates inside one batch: the first copy is stored, later ones report its cursor.
    let d = entry("d", &[&c]);
    let e = entry("e", &[&d]);
    assert_eq!(
        s.append(&LOG, &[d.clone(), d.clone(), e.clone(), d.clone()])
            .await
            .unwrap(),
        vec![new(4), existing(4), new(5), existing(4)]
    );
    // Stored and new entries mixed.
    let f = entry("f", &[&a]);
    assert_eq!(
        s.append(&LOG, &[a.clone(), f.clone(), e.clone()])
            .await
            .unwrap(),
        vec![existing(1), new(6), existing(5)]
    );
    assert_eq!(s.count(&LOG).await.unwrap(), 6);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 6);
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&e, &f]));
    assert_eq!(s.entry(&LOG, &d.id).await.unwrap(), Some(stored(&d, 4)));
}

async fn missing_parent_rolls_back_the_whole_batch(fx: Fixture) {
    let s = fx.storage();
    let ghost = entry("ghost", &[]);
    let a = entry("a", &[]);
    let b = entry("b", &[&a]);
    let c = entry("c", &[&b, &ghost]);

    let err = s
        .append(&LOG, &[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::MissingParent { entry, parent } if entry == c.id && parent == ghost.id),
        "{err:?}"
    );
    assert_eq!(s.count(&LOG).await.unwrap(), 0);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 0);
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![]);
    assert_eq!(s.entry(&LOG, &a.id).await.unwrap(), None);
    assert_eq!(s.since_cursor(&LOG, 0, 10).await.unwrap(), vec![]);

    assert_eq!(
        s.append(&LOG, slice::from_ref(&a)).await.unwrap(),
        vec![new(1)]
    );
    let orphan = entry("orphan", &[&ghost]);
    assert!(matches!(
        s.append(&LOG, &[b.clone(), orphan]).await,
        Err(StorageError::MissingParent { .. })
    ));
    assert_eq!(
        s.entry(&LOG, &b.id).await.unwrap(),
        None,
        "b was rolled back"
    );
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&a)]);

    // A parent later in the batch does not count.
    let b_child = entry("b-child", &[&b]);
    let err = s
        .append(&LOG, &[b_child.clone(), b.clone()])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::MissingParent { entry, parent } if entry == b_child.id && parent == b.id),
        "{err:?}"
    );
    // Failed appends leave no gap in cursors.
    assert_eq!(
        s.append(&LOG, &[b.clone(), b_child]).await.unwrap(),
        vec![new(2), new(3)]
    );
    assert_eq!(s.count(&LOG).await.unwrap(), 3);
}

async fn heads_follow_linear_branching_and_merging_histories(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![]);

    let a = entry("a", &[]);
    let b = entry("b", &[&a]);
    let c = entry("c", &[&b]);
    for e in [&a, &b, &c] {
        s.append(&LOG, slice::from_ref(e)).await.unwrap();
        assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(e)]);
    }
    // Two branches from c.
    let d = entry("d", &[&c]);
    let e = entry("e", &[&c]);
    s.append(&LOG, slice::from_ref(&d)).await.unwrap();
    s.append(&LOG, slice::from_ref(&e)).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&d, &e]));
    // A branch from an older entry.
    let f = entry("f", &[&b]);
    s.append(&LOG, slice::from_ref(&f)).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&d, &e, &f]));
    // Re-appending a stored entry changes nothing.
    s.append(&LOG, &[c.clone(), a.clone()]).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&d, &e, &f]));
    // A partial merge, then a full one.
    let g = entry("g", &[&d, &f]);
    s.append(&LOG, slice::from_ref(&g)).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&e, &g]));
    let h = entry("h", &[&e, &g]);
    s.append(&LOG, slice::from_ref(&h)).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&h)]);
    // A second root.
    let r = entry("r", &[]);
    s.append(&LOG, slice::from_ref(&r)).await.unwrap();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&h, &r]));

    // The same history in one batch, on another log, ends with the same heads.
    let other = log_id(2, LogKind::Messages);
    let all = [a, b, c, d, e, f, g, h.clone(), r.clone()];
    s.append(&other, &all).await.unwrap();
    assert_eq!(s.heads(&other).await.unwrap(), sorted_keys(&[&h, &r]));
    // Branching inside one batch.
    let x = entry("x", &[&h]);
    let y = entry("y", &[&h]);
    let z = entry("z", &[&x]);
    s.append(&other, &[x, y.clone(), z.clone()]).await.unwrap();
    assert_eq!(s.heads(&other).await.unwrap(), sorted_keys(&[&r, &y, &z]));
}

/// Entries of `model` inside `range`, in its direction, at most its limit.
fn model_range(model: &BTreeMap<OrderKey, StoredEntry>, range: &OrderRange) -> Vec<StoredEntry> {
    let inside = |k: &OrderKey| {
        let above = match range.lower {
            Bound::Included(lower) => *k >= lower,
            Bound::Excluded(lower) => *k > lower,
            Bound::Unbounded => true,
        };
        let below = match range.upper {
            Bound::Included(upper) => *k <= upper,
            Bound::Excluded(upper) => *k < upper,
            Bound::Unbounded => true,
        };
        above && below
    };
    let matching = model
        .iter()
        .filter(|(k, _)| inside(k))
        .map(|(_, e)| e.clone());
    let limit = range.limit as usize;
    match range.direction {
        Direction::Forward => matching.take(limit).collect(),
        Direction::Backward => {
            let mut all: Vec<_> = matching.collect();
            all.reverse();
            all.truncate(limit);
            all
        }
    }
}

async fn ranges_match_a_sorted_model(fx: Fixture) {
    let s = fx.storage();
    let mut rng = StdRng::seed_from_u64(7);
    // Ties on lamport, and clocks across the whole u64 range (storage does not check clocks).
    let mut lamports = vec![
        0,
        1,
        1,
        1,
        2,
        5,
        5,
        i64::MAX as u64 - 1,
        i64::MAX as u64,
        i64::MAX as u64 + 1,
        u64::MAX - 1,
        u64::MAX,
        u64::MAX,
    ];
    lamports.extend((0..27).map(|_| rng.gen_range(0..40)));
    let mut entries: Vec<NewEntry> = lamports
        .iter()
        .enumerate()
        .map(|(i, lamport)| entry_at(&format!("r{i}"), *lamport, &[]))
        .collect();
    entries.shuffle(&mut rng);
    let mut model = BTreeMap::new();
    for batch in entries.chunks(7) {
        let outcomes = s.append(&LOG, batch).await.unwrap();
        for (e, outcome) in batch.iter().zip(outcomes) {
            model.insert(key(e), stored(e, outcome.cursor()));
        }
    }
    assert_eq!(
        s.range(&LOG, &OrderRange::all(u32::MAX)).await.unwrap(),
        model.values().cloned().collect::<Vec<_>>()
    );

    // Bounds on stored keys, between them, and at the extremes.
    let stored_keys: Vec<OrderKey> = model.keys().copied().collect();
    let mut probes: Vec<OrderKey> = stored_keys.choose_multiple(&mut rng, 6).copied().collect();
    probes.extend([
        OrderKey {
            lamport: 0,
            id: EntryId([0; 32]),
        },
        OrderKey {
            lamport: 1,
            id: EntryId([0xff; 32]),
        },
        OrderKey {
            lamport: 5,
            id: EntryId([0; 32]),
        },
        OrderKey {
            lamport: i64::MAX as u64 + 1,
            id: EntryId([0x80; 32]),
        },
        OrderKey {
            lamport: u64::MAX,
            id: EntryId([0xff; 32]),
        },
    ]);
    let mut bounds = vec![Bound::Unbounded];
    for probe in &probes {
        bounds.push(Bound::Included(*probe));
        bounds.push(Bound::Excluded(*probe));
    }
    let mut checked = 0;
    for lower in &bounds {
        for upper in &bounds {
            for direction in [Direction::Forward, Direction::Backward] {
                for limit in [0, 1, 3, 1000] {
                    let range = OrderRange {
                        lower: *lower,
                        upper: *upper,
                        direction,
                        limit,
                    };
                    assert_eq!(
                        s.range(&LOG, &range).await.unwrap(),
                        model_range(&model, &range),
                        "{range:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000);
    // Another log sees nothing.
    let other = log_id(9, LogKind::Messages);
    assert_eq!(s.range(&other, &OrderRange::all(10)).await.unwrap(), vec![]);
}

async fn cursors_are_consecutive_and_stable(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 0);
    assert_eq!(s.count(&LOG).await.unwrap(), 0);
    assert_eq!(s.since_cursor(&LOG, 0, 10).await.unwrap(), vec![]);

    let entries = chain("k", 20);
    let mut expected = Vec::new();
    let mut next = 1;
    let mut start = 0;
    for size in [1, 4, 2, 7, 6] {
        // Each batch also repeats the previous batch's last entry.
        let from = start.max(1) - 1;
        let batch = &entries[from..start + size];
        let outcomes = s.append(&LOG, batch).await.unwrap();
        for (e, outcome) in batch.iter().zip(&outcomes) {
            if let Appended::New { cursor } = outcome {
                assert_eq!(*cursor, next, "consecutive in batch order");
                next += 1;
                expected.push(stored(e, *cursor));
            }
        }
        start += size;
    }
    assert_eq!(start, 20);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 20);
    assert_eq!(s.count(&LOG).await.unwrap(), 20);
    assert_eq!(s.since_cursor(&LOG, 0, 100).await.unwrap(), expected);

    // Paging by cursor walks the same sequence.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.since_cursor(&LOG, after, 3).await.unwrap();
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 3);
        after = last.cursor;
        paged.extend(page);
    }
    assert_eq!(paged, expected);
    assert_eq!(s.since_cursor(&LOG, 20, 10).await.unwrap(), vec![]);
    assert_eq!(s.since_cursor(&LOG, u64::MAX, 10).await.unwrap(), vec![]);
    assert_eq!(s.since_cursor(&LOG, 0, 0).await.unwrap(), vec![]);
    assert_eq!(
        s.since_cursor(&LOG, 17, 10).await.unwrap(),
        expected[17..].to_vec()
    );

    // Cursors never change once given.
    let more = entry("k-more", &[&entries[19]]);
    assert_eq!(s.append(&LOG, &[more]).await.unwrap(), vec![new(21)]);
    for e in &expected {
        assert_eq!(
            s.entry(&LOG, &e.id).await.unwrap().unwrap().cursor,
            e.cursor
        );
    }
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 21);
    assert_eq!(s.count(&LOG).await.unwrap(), 21);
}

async fn concurrent_appends_to_one_log(fx: Fixture) {
    const TASKS: usize = 8;
    const CHAIN: usize = 24;
    let s = fx.storage();
    // Roots every task appends too, racing on the same entries.
    let shared: Vec<NewEntry> = (0..6).map(|i| entry(&format!("shared-{i}"), &[])).collect();
    let chains: Vec<Vec<NewEntry>> = (0..TASKS).map(|t| chain(&format!("t{t}"), CHAIN)).collect();
    let total = (TASKS * CHAIN + shared.len()) as u64;

    // A reader following the log by cursor must never see a gap: cursors become visible in
    // increasing order.
    let reader = {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let mut after = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while after < total {
                assert!(Instant::now() < deadline, "reader stuck at cursor {after}");
                for e in s.since_cursor(&LOG, after, 50).await.unwrap() {
                    assert_eq!(e.cursor, after + 1, "cursor gap seen by a reader");
                    after = e.cursor;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut tasks = Vec::new();
    for (t, own) in chains.iter().enumerate() {
        let s = Arc::clone(&s);
        let own = own.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(t as u64);
            let mut outcomes = Vec::new();
            let mut start = 0;
            while start < own.len() {
                let end = (start + rng.gen_range(1..=3)).min(own.len());
                let mut batch = own[start..end].to_vec();
                if rng.gen_bool(0.3) {
                    batch.push(shared.choose(&mut rng).unwrap().clone());
                }
                let got = s.append(&LOG, &batch).await.unwrap();
                outcomes.extend(batch.iter().map(|e| e.id).zip(got));
                start = end;
            }
            let got = s.append(&LOG, &shared).await.unwrap();
            outcomes.extend(shared.iter().map(|e| e.id).zip(got));
            outcomes
        }));
    }
    let mut new_cursors: HashMap<EntryId, u64> = HashMap::new();
    let mut all_outcomes = Vec::new();
    for task in tasks {
        let outcomes = task.await.unwrap();
        // Each task appended its chain in order, so its own cursors increase.
        let own: Vec<u64> = outcomes
            .iter()
            .filter(|(id, _)| !shared.iter().any(|e| e.id == *id))
            .map(|(_, o)| o.cursor())
            .collect();
        assert!(own.windows(2).all(|w| w[0] < w[1]), "{own:?}");
        for (id, outcome) in &outcomes {
            if let Appended::New { cursor } = outcome {
                assert!(
                    new_cursors.insert(*id, *cursor).is_none(),
                    "stored twice: {id:?}"
                );
            }
        }
        all_outcomes.extend(outcomes);
    }
    reader.await.unwrap();

    assert_eq!(new_cursors.len() as u64, total);
    let mut cursors: Vec<u64> = new_cursors.values().copied().collect();
    cursors.sort_unstable();
    assert_eq!(
        cursors,
        (1..=total).collect::<Vec<_>>(),
        "unique and gap-free"
    );
    for (id, outcome) in &all_outcomes {
        assert_eq!(
            outcome.cursor(),
            new_cursors[id],
            "Existing reports the first cursor"
        );
    }
    assert_eq!(s.count(&LOG).await.unwrap(), total);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), total);
    let stored = s.since_cursor(&LOG, 0, u32::MAX).await.unwrap();
    assert_eq!(stored.iter().map(|e| e.cursor).collect::<Vec<_>>(), cursors);
    for e in &stored {
        assert_eq!(new_cursors[&e.id], e.cursor);
    }
    let tips: Vec<&NewEntry> = chains.iter().map(|c| c.last().unwrap()).collect();
    let expected_heads: Vec<&NewEntry> = tips.into_iter().chain(&shared).collect();
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&expected_heads));
}

/// Two storages opened on the same database (two processes, or two nodes sharing one
/// PostgreSQL) append to one log at once: every append succeeds (SQLite waits for the other
/// writer instead of failing) and cursors stay unique, gap-free and visible in order.
async fn two_storages_on_one_database(fx: Fixture) {
    const PER_WRITER: usize = 40;
    let first = fx.storage();
    let second = storage::open(&fx.url, fx.data_dir.path()).await.unwrap();
    let chains = [chain("first", PER_WRITER), chain("second", PER_WRITER)];
    let total = 2 * PER_WRITER as u64;
    let reader = {
        let s = Arc::clone(&second);
        tokio::spawn(async move {
            let mut after = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while after < total {
                assert!(Instant::now() < deadline, "reader stuck at cursor {after}");
                for e in s.since_cursor(&LOG, after, 50).await.unwrap() {
                    assert_eq!(e.cursor, after + 1, "cursor gap seen by a reader");
                    after = e.cursor;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = [first, Arc::clone(&second)]
        .into_iter()
        .zip(chains.clone())
        .map(|(s, entries)| {
            tokio::spawn(async move {
                let mut cursors = Vec::new();
                for pair in entries.chunks(2) {
                    let got = s.append(&LOG, pair).await.unwrap();
                    cursors.extend(got.iter().map(|o| o.cursor()));
                }
                cursors
            })
        })
        .collect();
    let mut cursors = Vec::new();
    for writer in writers {
        let mine = writer.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        cursors.extend(mine);
    }
    reader.await.unwrap();
    cursors.sort_unstable();
    assert_eq!(cursors, (1..=total).collect::<Vec<_>>());
    assert_eq!(second.count(&LOG).await.unwrap(), total);
    let tips = [chains[0].last().unwrap(), chains[1].last().unwrap()];
    assert_eq!(second.heads(&LOG).await.unwrap(), sorted_keys(&tips));
}

async fn order_keys_and_entries_of_stored_ids(fx: Fixture) {
    let s = fx.storage();
    let [a, b, c] = <[NewEntry; 3]>::try_from(chain("o", 3)).unwrap();
    s.append(&LOG, &[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    let unknown = entry("unknown", &[]);
    assert_eq!(s.order_keys(&LOG, &[]).await.unwrap(), vec![]);
    let mut keys = s
        .order_keys(&LOG, &[c.id, unknown.id, a.id, a.id])
        .await
        .unwrap();
    keys.sort();
    keys.dedup();
    assert_eq!(keys, sorted_keys(&[&a, &c]));
    let other = log_id(3, LogKind::Metadata);
    assert_eq!(s.order_keys(&other, &[a.id]).await.unwrap(), vec![]);

    assert_eq!(s.entries(&LOG, &[]).await.unwrap(), vec![]);
    let mut entries = s
        .entries(&LOG, &[c.id, unknown.id, a.id, a.id])
        .await
        .unwrap();
    entries.sort_by_key(|e| e.cursor);
    assert_eq!(entries, vec![stored(&a, 1), stored(&c, 3)]);
    assert_eq!(s.entries(&other, &[a.id]).await.unwrap(), vec![]);
}

async fn large_batches_round_trip(fx: Fixture) {
    let s = fx.storage();
    // Larger than one statement's worth of rows, ids and parent links.
    let entries = chain("big", 2_500);
    let outcomes = s.append(&LOG, &entries).await.unwrap();
    assert_eq!(outcomes, (1..=2_500).map(new).collect::<Vec<_>>());
    // A merge of 1,200 roots: many parent links and former heads in one batch.
    let roots: Vec<NewEntry> = (0..1_200)
        .map(|i| entry(&format!("root-{i}"), &[]))
        .collect();
    s.append(&LOG, &roots).await.unwrap();
    let mut parents: Vec<&NewEntry> = roots.iter().collect();
    parents.push(entries.last().unwrap());
    let merge = entry("merge", &parents);
    assert_eq!(
        s.append(&LOG, slice::from_ref(&merge)).await.unwrap(),
        vec![new(3_701)]
    );
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&merge)]);
    assert_eq!(s.count(&LOG).await.unwrap(), 3_701);
    assert_eq!(
        s.entry(&LOG, &merge.id).await.unwrap(),
        Some(stored(&merge, 3_701))
    );
    // The whole batch again is all Existing.
    let again = s.append(&LOG, &entries).await.unwrap();
    assert_eq!(again, (1..=2_500).map(existing).collect::<Vec<_>>());
    let ids: Vec<EntryId> = entries.iter().map(|e| e.id).collect();
    assert_eq!(s.order_keys(&LOG, &ids).await.unwrap().len(), 2_500);
    let last = s
        .range(
            &LOG,
            &OrderRange {
                lower: Bound::Unbounded,
                upper: Bound::Unbounded,
                direction: Direction::Backward,
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        last,
        vec![stored(&merge, 3_701), stored(&entries[2_499], 2_500)]
    );
}

async fn node_values_get_and_put(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(get(&s, "flag").await, None);
    put(&s, "flag", b"on").await;
    assert_eq!(get(&s, "flag").await, Some(b"on".to_vec()));
    put(&s, "flag", b"off").await;
    assert_eq!(get(&s, "flag").await, Some(b"off".to_vec()));
    put(&s, "empty", b"").await;
    assert_eq!(get(&s, "empty").await, Some(vec![]));
    let binary: Vec<u8> = (0..=255).collect();
    put(&s, "binary/é", &binary).await;
    assert_eq!(get(&s, "binary/é").await, Some(binary));
    assert_eq!(get(&s, "Flag").await, None, "keys are case-sensitive");
    assert_eq!(get(&s, "flag").await, Some(b"off".to_vec()));
}

async fn data_survives_reopening(fx: Fixture) {
    let s = fx.storage();
    let a = entry("a", &[]);
    let b = entry("b", &[&a]);
    let c = entry("c", &[&a]);
    s.append(&LOG, &[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    put(&s, "counter", &7u64.to_be_bytes()).await;
    drop(s);

    let fx = fx.reopen().await;
    let s = fx.storage();
    for (e, cursor) in [(&a, 1), (&b, 2), (&c, 3)] {
        assert_eq!(s.entry(&LOG, &e.id).await.unwrap(), Some(stored(e, cursor)));
    }
    assert_eq!(s.heads(&LOG).await.unwrap(), sorted_keys(&[&b, &c]));
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 3);
    assert_eq!(s.count(&LOG).await.unwrap(), 3);
    assert_eq!(get(&s, "counter").await, Some(7u64.to_be_bytes().to_vec()));
    let d = entry("d", &[&b, &c]);
    assert_eq!(
        s.append(&LOG, &[a.clone(), d.clone()]).await.unwrap(),
        vec![existing(1), new(4)]
    );
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&d)]);
}

async fn open_picks_the_backend_from_the_url(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(s.backend(), fx.backend);
    s.ping().await.unwrap();
    let dir = fx.data_dir.path();
    match fx.backend {
        Backend::Sqlite => {
            assert!(fx.url.is_empty());
            assert!(dir.join(berty_node::defaults::SQLITE_FILE_NAME).is_file());
            // A sqlite: URL naming a file in a directory that does not exist yet.
            let path = dir.join("nested/deeper/other.db");
            let url = format!("sqlite:{}", path.display());
            let other = storage::open(&url, Path::new("/nonexistent"))
                .await
                .unwrap();
            assert_eq!(other.backend(), Backend::Sqlite);
            other.append(&LOG, &[entry("x", &[])]).await.unwrap();
            assert!(path.is_file());
            let memory = storage::open("sqlite::memory:", dir).await.unwrap();
            assert_eq!(memory.backend(), Backend::Sqlite);
            memory.append(&LOG, &[entry("m", &[])]).await.unwrap();
            assert_eq!(memory.count(&LOG).await.unwrap(), 1);
        }
        Backend::Postgres => {
            let url = fx.url.replacen("postgres://", "postgresql://", 1);
            assert!(url.starts_with("postgresql://"));
            let other = storage::open(&url, dir).await.unwrap();
            assert_eq!(other.backend(), Backend::Postgres);
            other.ping().await.unwrap();
        }
    }
    assert!(matches!(
        storage::open("mysql://localhost/db", dir).await,
        Err(StorageError::Config(_))
    ));
    // A server that is not there is Unavailable, not a panic.
    let gone = storage::open("postgres://nobody@127.0.0.1:1/none", dir).await;
    assert!(
        matches!(gone, Err(StorageError::Unavailable(_))),
        "{:?}",
        gone.err()
    );
}

/// A log that grows from nothing in a few commits is read page by page in total order, and
/// on PostgreSQL the planner learns it grew without waiting for autovacuum (turned off here):
/// the storage refreshes the statistics itself (`storage::sql::analyze`).
async fn planner_statistics_follow_a_bulk_load(fx: Fixture) {
    let s = fx.storage();
    let entries = chain("bulk", 6_000);
    let pg = match fx.backend {
        Backend::Postgres => {
            let mut pg = sqlx::PgConnection::connect(&fx.url).await.unwrap();
            for table in ["entries", "events", "heads"] {
                sqlx::query(&format!(
                    "ALTER TABLE {table} SET (autovacuum_enabled = false)"
                ))
                .execute(&mut pg)
                .await
                .unwrap();
            }
            Some(pg)
        }
        Backend::Sqlite => None,
    };
    for batch in entries.chunks(2_000) {
        s.append(&LOG, batch).await.unwrap();
    }
    let middle = key(&entries[1_000]);
    let page = s
        .range(
            &LOG,
            &OrderRange {
                lower: Bound::Excluded(middle),
                upper: Bound::Unbounded,
                direction: Direction::Forward,
                limit: 4_096,
            },
        )
        .await
        .unwrap();
    let expected: Vec<OrderKey> = entries[1_001..5_097].iter().map(key).collect();
    let got: Vec<OrderKey> = page.iter().map(|e| e.order_key()).collect();
    assert_eq!(got, expected);
    let Some(mut pg) = pg else {
        return;
    };
    // ANALYZE runs in the background. It sets `reltuples` in place (visible at once) and
    // commits the column statistics afterwards: wait for both.
    let deadline = Instant::now() + Duration::from_secs(20);
    let columns = loop {
        let (tuples,): (f32,) =
            sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'entries'")
                .fetch_one(&mut pg)
                .await
                .unwrap();
        let columns: Vec<(String,)> = sqlx::query_as(
            "SELECT attname::text FROM pg_stats \
             WHERE schemaname = current_schema() AND tablename = 'entries' ORDER BY attname",
        )
        .fetch_all(&mut pg)
        .await
        .unwrap();
        let columns: Vec<String> = columns.into_iter().map(|(c,)| c).collect();
        if tuples >= 5_000.0 && columns.iter().any(|c| c == "lamport") {
            break columns;
        }
        assert!(
            Instant::now() < deadline,
            "after 6,000 appends the planner believes entries holds {tuples} rows, \
             with statistics for {columns:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Statistics for the columns reads filter or order on, none for the payloads (migration
    // 0009): ANALYZE does no work on them.
    assert!(
        !columns.iter().any(|c| c == "bytes" || c == "parents"),
        "{columns:?}"
    );
}

/// Batched and single-entry append throughput, printed (not asserted).
async fn append_throughput(fx: Fixture) {
    let s = fx.storage();
    let backend = fx.backend;
    let mut rng = StdRng::seed_from_u64(1);
    let body = |rng: &mut StdRng, i: usize| {
        let mut bytes = vec![0u8; 1024];
        rng.fill(&mut bytes[..]);
        bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
        bytes
    };
    let chain = |rng: &mut StdRng, n: usize, offset: usize, prev: Option<&NewEntry>| {
        let mut out: Vec<NewEntry> = Vec::with_capacity(n);
        let mut last = prev.cloned();
        for i in 0..n {
            let bytes = body(rng, offset + i);
            let e = NewEntry {
                id: EntryId(Sha256::digest(&bytes).into()),
                lamport: last.as_ref().map_or(1, |p| p.lamport + 1),
                parents: last.iter().map(|p| p.id).collect(),
                bytes,
            };
            last = Some(e.clone());
            out.push(e);
        }
        out
    };

    const BATCHED: usize = 50_000;
    let entries = chain(&mut rng, BATCHED, 0, None);
    let start = Instant::now();
    let cpu_start = process_cpu_time();
    for batch in entries.chunks(1_000) {
        s.append(&LOG, batch).await.unwrap();
    }
    let batched = start.elapsed();
    let batched_cpu = process_cpu_time()
        .zip(cpu_start)
        .map(|(end, start)| end - start);

    const SINGLES: usize = 2_000;
    let singles = chain(&mut rng, SINGLES, BATCHED, entries.last());
    let mut latencies = Vec::with_capacity(SINGLES);
    let start = Instant::now();
    for e in &singles {
        let t = Instant::now();
        s.append(&LOG, slice::from_ref(e)).await.unwrap();
        latencies.push(t.elapsed());
    }
    let single = start.elapsed();
    latencies.sort();
    let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];

    // Single-entry appends from 16 concurrent tasks, each to its own log.
    const TASKS: usize = 16;
    const PER_TASK: usize = 250;
    let logs: Vec<(LogId, Vec<NewEntry>)> = (0..TASKS)
        .map(|t| {
            let log = LogId::new([t as u8 + 10; 32], LogKind::Messages);
            (log, chain(&mut rng, PER_TASK, 1_000_000 * (t + 1), None))
        })
        .collect();
    let start = Instant::now();
    let tasks: Vec<_> = logs
        .into_iter()
        .map(|(log, entries)| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for e in &entries {
                    s.append(&log, slice::from_ref(e)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = start.elapsed();

    let start = Instant::now();
    let mut read = 0;
    let mut after = 0;
    loop {
        let page = s.since_cursor(&LOG, after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        read += page.len();
    }
    let catch_up = start.elapsed();
    assert_eq!(read, BATCHED + SINGLES);

    eprintln!(
        "{backend:?}: batched 1,000 x 1 KiB: {:.0} entries/s ({} per CPU-second of this \
         process); single appends: {:.0}/s \
         (p50 {:?}, p99 {:?}); single appends from {TASKS} tasks: {:.0}/s; \
         since_cursor catch-up: {:.0} entries/s",
        BATCHED as f64 / batched.as_secs_f64(),
        batched_cpu.map_or("?".into(), |cpu| format!(
            "{:.0}",
            BATCHED as f64 / cpu.as_secs_f64()
        )),
        SINGLES as f64 / single.as_secs_f64(),
        pct(50),
        pct(99),
        (TASKS * PER_TASK) as f64 / concurrent.as_secs_f64(),
        read as f64 / catch_up.as_secs_f64(),
    );
}

/// The event of `entry`, of `kind`.
fn event(entry: &NewEntry, kind: u8) -> NewEvent {
    NewEvent {
        entry_id: entry.id,
        lamport: entry.lamport,
        parents: entry.parents.clone(),
        kind,
        body: [b"event of ".as_slice(), &entry.bytes].concat(),
        stored: None,
    }
}

fn stored_event(event: &NewEvent, cursor: u64) -> StoredEvent {
    StoredEvent {
        entry_id: event.entry_id,
        lamport: event.lamport,
        parents: event.parents.clone(),
        kind: event.kind,
        body: event.stored_body().to_vec(),
        cursor,
        entry: None,
    }
}

/// The sealing the value tests use: a fixed key (these suites check storage, not secrecy).
fn sealer(s: &Arc<dyn Storage>) -> SealedValues {
    SealedValues::new(Arc::clone(s), SymmetricKey::from_bytes([7; 32]))
}

/// A node value to commit, sealed.
fn value(s: &Arc<dyn Storage>, key: &str, plaintext: &[u8]) -> (String, Sealed) {
    (key.to_owned(), sealer(s).seal(key, plaintext).unwrap())
}

/// Puts one node value with [`Storage::put_value`].
async fn put(s: &Arc<dyn Storage>, key: &str, plaintext: &[u8]) {
    let sealed = sealer(s).seal(key, plaintext).unwrap();
    s.put_value(key, &sealed).await.unwrap();
}

/// Reads one node value with [`Storage::get_value`], opened.
async fn get(s: &Arc<dyn Storage>, key: &str) -> Option<Vec<u8>> {
    let sealed = s.get_value(key).await.unwrap()?;
    Some(sealer(s).open(key, &sealed).unwrap())
}

/// A page of [`Storage::values_with_prefix`], opened.
async fn list(
    s: &Arc<dyn Storage>,
    prefix: &str,
    after: Option<&str>,
    limit: u32,
) -> Vec<(String, Vec<u8>)> {
    let page = s.values_with_prefix(prefix, after, limit).await.unwrap();
    page.into_iter()
        .map(|(key, sealed)| {
            let plaintext = sealer(s).open(&key, &sealed).unwrap();
            (key, plaintext)
        })
        .collect()
}

async fn commit_is_all_or_nothing(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(
        s.commit(&LOG, Commit::default()).await.unwrap(),
        Committed::default()
    );
    let a = entry("a", &[]);
    let b = entry("b", &[&a]);
    let values = [value(&s, "state", b"1")];
    let committed = s
        .commit(
            &LOG,
            Commit {
                entries: &[a.clone(), b.clone()],
                events: &[event(&a, 1), event(&b, 2)],
                values: &values,
                deletes: &[],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        committed,
        Committed {
            appended: vec![new(1), new(2)],
            event_cursors: vec![1, 2],
        }
    );
    assert_eq!(get(&s, "state").await, Some(b"1".to_vec()));
    assert_eq!(s.heads(&LOG).await.unwrap(), vec![key(&b)]);

    // A missing parent rolls back entries, events and values alike.
    let ghost = entry("ghost", &[]);
    let c = entry("c", &[&b]);
    let orphan = entry("orphan", &[&ghost]);
    let values = [value(&s, "state", b"2"), value(&s, "other", b"x")];
    let err = s
        .commit(
            &LOG,
            Commit {
                entries: &[c.clone(), orphan.clone()],
                events: &[event(&c, 1)],
                values: &values,
                deletes: &[],
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::MissingParent { entry, .. } if entry == orphan.id),
        "{err:?}"
    );
    assert_eq!(get(&s, "state").await, Some(b"1".to_vec()));
    assert_eq!(get(&s, "other").await, None);
    assert_eq!(s.entry(&LOG, &c.id).await.unwrap(), None);
    assert_eq!(s.event(&LOG, &c.id).await.unwrap(), None);
    assert_eq!(s.last_event_cursor(&LOG).await.unwrap(), 2);

    // An event naming an entry that is not stored fails the whole commit too.
    let unstored = entry("unstored", &[&b]);
    assert!(s
        .commit(
            &LOG,
            Commit {
                entries: slice::from_ref(&c),
                events: &[event(&c, 1), event(&unstored, 1)],
                values: &values,
                deletes: &[],
            },
        )
        .await
        .is_err());
    assert_eq!(s.entry(&LOG, &c.id).await.unwrap(), None);
    assert_eq!(get(&s, "other").await, None);
    assert_eq!(s.last_event_cursor(&LOG).await.unwrap(), 2);
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 2);

    // Values alone, and values of another log's commit, are committed too.
    let values = [value(&s, "state", b"3")];
    let other = log_id(2, LogKind::Metadata);
    let committed = s
        .commit(
            &other,
            Commit {
                values: &values,
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(committed, Committed::default());
    assert_eq!(get(&s, "state").await, Some(b"3".to_vec()));
    assert_eq!(s.count(&other).await.unwrap(), 0);

    // Deletes run after the puts of the same commit.
    let values = [value(&s, "kept", b"4"), value(&s, "gone", b"5")];
    s.commit(
        &other,
        Commit {
            values: &values,
            deletes: &["state".to_string(), "gone".to_string()],
            ..Commit::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(get(&s, "state").await, None);
    assert_eq!(get(&s, "gone").await, None);
    assert_eq!(get(&s, "kept").await, Some(b"4".to_vec()));
}

/// A node's commit: one entry, its event and the writer's chain state.
async fn commit_one(s: &Arc<dyn Storage>, writer: &str, entry: &NewEntry) -> Committed {
    let values = [value(s, &format!("chain/{writer}"), &entry.bytes)];
    s.commit(
        &LOG,
        Commit {
            entries: slice::from_ref(entry),
            events: &[event(entry, 1)],
            values: &values,
            deletes: &[],
        },
    )
    .await
    .unwrap()
}

/// Commits like a node's (an entry, its event, a chain state), by two storages on one
/// database and by concurrent tasks of each. Most of them are planned from what the
/// storage's last commit on the log left (one statement on PostgreSQL, one execution in a
/// transaction on SQLite); whenever the log moved on meanwhile, that commit writes nothing
/// and takes the lock. Cursors, event cursors, heads and values come out as if every commit
/// had taken the lock.
async fn commits_from_known_state_stay_consistent(fx: Fixture) {
    const SEQUENTIAL: usize = 20;
    const TASKS: usize = 4;
    const PER_TASK: usize = 15;
    let first = fx.storage();
    let paths = |locked: u64, one_statement: u64, missed: u64| CommitPaths {
        one_statement,
        missed,
        locked,
    };

    // One writer: after the first commit, every one is made from the known state.
    let own = chain("own", SEQUENTIAL);
    for (i, e) in own.iter().enumerate() {
        let cursor = i as u64 + 1;
        let committed = commit_one(&first, "first", e).await;
        assert_eq!(
            committed,
            Committed {
                appended: vec![new(cursor)],
                event_cursors: vec![cursor],
            }
        );
    }
    assert_eq!(first.commit_paths(), paths(1, SEQUENTIAL as u64 - 1, 0));
    let tip = own.last().unwrap();
    assert_eq!(first.heads(&LOG).await.unwrap(), vec![key(tip)]);

    // A second storage on the database appends behind the first one's back, with the clock
    // the first one's next entry will have: planned from what the first knows, that entry
    // would look new and its parent a head. The first commit notices and takes the lock.
    let second = storage::open(&fx.url, fx.data_dir.path()).await.unwrap();
    let theirs = entry("theirs", &[tip]);
    let mine = entry("mine", &[tip]);
    assert_eq!(theirs.lamport, mine.lamport);
    assert_eq!(
        commit_one(&second, "second", &theirs).await.appended,
        vec![new(21)]
    );
    let committed = commit_one(&first, "first", &mine).await;
    assert_eq!(
        committed,
        Committed {
            appended: vec![new(22)],
            event_cursors: vec![22],
        }
    );
    assert_eq!(first.commit_paths(), paths(1, SEQUENTIAL as u64 - 1, 1));
    assert_eq!(
        first.heads(&LOG).await.unwrap(),
        sorted_keys(&[&theirs, &mine])
    );
    // The same commit again stores nothing new: its entry may be stored (its clock is not
    // above the log's highest), so it is read under the lock, not counted as a miss.
    assert_eq!(
        commit_one(&first, "first", &mine).await,
        Committed {
            appended: vec![existing(22)],
            event_cursors: vec![22],
        }
    );
    assert_eq!(first.commit_paths(), paths(2, SEQUENTIAL as u64 - 1, 1));

    // Concurrent writers on both storages, each extending its own chain from both heads.
    let mut tasks = Vec::new();
    let mut chains = Vec::new();
    for t in 0..(2 * TASKS) {
        let s = Arc::clone(if t % 2 == 0 { &first } else { &second });
        let mut links = vec![entry(&format!("task{t}-0"), &[&theirs, &mine])];
        for i in 1..PER_TASK {
            let next = entry(&format!("task{t}-{i}"), &[links.last().unwrap()]);
            links.push(next);
        }
        chains.push(links.clone());
        tasks.push(tokio::spawn(async move {
            for e in &links {
                let committed = commit_one(&s, &format!("task{t}"), e).await;
                assert!(matches!(committed.appended[..], [Appended::New { .. }]));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = (SEQUENTIAL + 2 + 2 * TASKS * PER_TASK) as u64;
    assert_eq!(first.count(&LOG).await.unwrap(), total);
    let cursors: Vec<u64> = first
        .since_cursor(&LOG, 0, u32::MAX)
        .await
        .unwrap()
        .iter()
        .map(|e| e.cursor)
        .collect();
    assert_eq!(cursors, (1..=total).collect::<Vec<_>>());
    let events = first
        .events_since_cursor(&LOG, &[], &[], 0, u32::MAX)
        .await
        .unwrap();
    assert_eq!(
        events.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    let evented: std::collections::HashSet<EntryId> = events.iter().map(|e| e.entry_id).collect();
    assert_eq!(evented.len() as u64, total, "one event per entry");
    assert_eq!(first.last_event_cursor(&LOG).await.unwrap(), total);
    let tips: Vec<&NewEntry> = chains.iter().map(|c| c.last().unwrap()).collect();
    assert_eq!(first.heads(&LOG).await.unwrap(), sorted_keys(&tips));
    for (t, links) in chains.iter().enumerate() {
        let last = &links.last().unwrap().bytes;
        assert_eq!(
            get(&second, &format!("chain/task{t}")).await.as_ref(),
            Some(last)
        );
    }
    // Every commit was counted once, by one path or another.
    let counted = |p: CommitPaths| p.one_statement + p.missed + p.locked;
    let made = SEQUENTIAL + 2 + TASKS * PER_TASK;
    assert_eq!(counted(first.commit_paths()), made as u64);
    assert_eq!(
        counted(second.commit_paths()),
        (1 + TASKS * PER_TASK) as u64
    );
}

async fn events_get_cursors_and_stay_idempotent(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(s.last_event_cursor(&LOG).await.unwrap(), 0);
    let [a, b, c] = <[NewEntry; 3]>::try_from(chain("ev", 3)).unwrap();
    s.append(&LOG, &[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    // Events for entries stored earlier, out of log order, with a duplicate in the batch; one
    // has a stored form, which is what is kept and read back.
    let (ea, ec) = (event(&a, 1), event(&c, 1));
    let eb = NewEvent {
        stored: Some(b"kept instead of the body".to_vec()),
        ..event(&b, 2)
    };
    let committed = s
        .commit(
            &LOG,
            Commit {
                events: &[ec.clone(), ea.clone(), ec.clone()],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(committed.appended, vec![]);
    assert_eq!(committed.event_cursors, vec![1, 2, 1]);
    // An event already stored keeps its cursor, even with another body.
    let mut changed = ec.clone();
    changed.body = b"changed".to_vec();
    let committed = s
        .commit(
            &LOG,
            Commit {
                events: &[changed, eb.clone()],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(committed.event_cursors, vec![1, 3]);
    assert_eq!(s.last_event_cursor(&LOG).await.unwrap(), 3);
    assert_eq!(
        s.event(&LOG, &c.id).await.unwrap(),
        Some(stored_event(&ec, 1))
    );
    assert_eq!(
        s.event(&LOG, &b.id).await.unwrap(),
        Some(stored_event(&eb, 3))
    );
    assert_eq!(
        s.event(&LOG, &b.id).await.unwrap().unwrap().body,
        b"kept instead of the body"
    );
    let other = log_id(7, LogKind::Messages);
    assert_eq!(s.event(&other, &c.id).await.unwrap(), None);
    assert_eq!(s.last_event_cursor(&other).await.unwrap(), 0);
    // Entry cursors are untouched by events.
    assert_eq!(s.last_cursor(&LOG).await.unwrap(), 3);

    let all = s.events_since_cursor(&LOG, &[], &[], 0, 10).await.unwrap();
    assert_eq!(
        all,
        vec![
            stored_event(&ec, 1),
            stored_event(&ea, 2),
            stored_event(&eb, 3)
        ]
    );
    assert_eq!(
        s.events_since_cursor(&LOG, &[1], &[], 1, 10).await.unwrap(),
        vec![stored_event(&ea, 2)]
    );
    assert_eq!(
        s.events_since_cursor(&LOG, &[2, 9], &[], 0, 10)
            .await
            .unwrap(),
        vec![stored_event(&eb, 3)]
    );
    assert_eq!(
        s.events_since_cursor(&LOG, &[], &[], 0, 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.events_since_cursor(&LOG, &[], &[], 0, 0).await.unwrap(),
        vec![]
    );
    assert_eq!(
        s.events_since_cursor(&LOG, &[], &[], u64::MAX, 10)
            .await
            .unwrap(),
        vec![]
    );

    // Events of the kinds named in `entries_of` come with their entry's bytes, by cursor and
    // in total order alike; the others without.
    let with_entry = |event: &NewEvent, cursor: u64, entry: &NewEntry| StoredEvent {
        entry: Some(entry.bytes.clone()),
        ..stored_event(event, cursor)
    };
    assert_eq!(
        s.events_since_cursor(&LOG, &[], &[1], 0, 10).await.unwrap(),
        vec![
            with_entry(&ec, 1, &c),
            with_entry(&ea, 2, &a),
            stored_event(&eb, 3)
        ]
    );
    assert_eq!(
        s.events_range(&LOG, &[2], &[1, 2], &OrderRange::all(10), u64::MAX)
            .await
            .unwrap(),
        vec![with_entry(&eb, 3, &b)]
    );
}

/// Events are found by their entries' clocks (`events_by_order`): entries of one lamport (a
/// fork) keep their own events, and an event looked up by id is its entry's own.
async fn events_of_entries_on_one_clock_stay_apart(fx: Fixture) {
    let s = fx.storage();
    let forks: Vec<NewEntry> = (0..5)
        .map(|i| entry_at(&format!("fork-{i}"), 1, &[]))
        .collect();
    s.append(&LOG, &forks).await.unwrap();
    let events: Vec<NewEvent> = forks.iter().map(|e| event(e, 3)).collect();
    let first = s
        .commit(
            &LOG,
            Commit {
                events: &events[1..2],
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.event_cursors, vec![1]);
    // The stored one keeps its cursor; each of the others gets its own.
    let all = s
        .commit(
            &LOG,
            Commit {
                events: &events,
                ..Commit::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.event_cursors, vec![2, 1, 3, 4, 5]);
    for (event, cursor) in events.iter().zip([2, 1, 3, 4, 5]) {
        assert_eq!(
            s.event(&LOG, &event.entry_id).await.unwrap(),
            Some(stored_event(event, cursor))
        );
    }
    // An entry of that clock without an event, and an unknown id, have none.
    let lone = entry_at("fork-lone", 1, &[]);
    s.append(&LOG, std::slice::from_ref(&lone)).await.unwrap();
    assert_eq!(s.event(&LOG, &lone.id).await.unwrap(), None);
    assert_eq!(s.event(&LOG, &EntryId([9; 32])).await.unwrap(), None);
}

/// Events of `model` inside `range`, of `kinds` (all when empty), cursor at most `max_cursor`.
fn model_events(
    model: &BTreeMap<OrderKey, StoredEvent>,
    kinds: &[u8],
    range: &OrderRange,
    max_cursor: u64,
) -> Vec<StoredEvent> {
    let entries: BTreeMap<OrderKey, StoredEntry> = model
        .iter()
        .filter(|(_, e)| (kinds.is_empty() || kinds.contains(&e.kind)) && e.cursor <= max_cursor)
        .map(|(k, e)| {
            let as_entry = StoredEntry {
                id: e.entry_id,
                lamport: e.lamport,
                parents: vec![],
                bytes: vec![],
                cursor: e.cursor,
            };
            (*k, as_entry)
        })
        .collect();
    model_range(&entries, range)
        .iter()
        .map(|e| model[&e.order_key()].clone())
        .collect()
}

async fn event_pages_match_a_sorted_model(fx: Fixture) {
    let s = fx.storage();
    let mut rng = StdRng::seed_from_u64(11);
    let mut lamports = vec![0, 1, 1, 1, 3, u64::MAX, u64::MAX, i64::MAX as u64 + 1];
    lamports.extend((0..24).map(|_| rng.gen_range(0..12)));
    let entries: Vec<NewEntry> = lamports
        .iter()
        .enumerate()
        .map(|(i, lamport)| entry_at(&format!("ev{i}"), *lamport, &[]))
        .collect();
    s.append(&LOG, &entries).await.unwrap();
    let mut events: Vec<NewEvent> = entries
        .iter()
        .map(|e| event(e, rng.gen_range(1..=3)))
        .collect();
    events.shuffle(&mut rng);
    let mut model = BTreeMap::new();
    for batch in events.chunks(5) {
        let committed = s
            .commit(
                &LOG,
                Commit {
                    events: batch,
                    ..Commit::default()
                },
            )
            .await
            .unwrap();
        for (e, cursor) in batch.iter().zip(committed.event_cursors) {
            let key = OrderKey {
                lamport: e.lamport,
                id: e.entry_id,
            };
            model.insert(key, stored_event(e, cursor));
        }
    }
    let keys: Vec<OrderKey> = model.keys().copied().collect();
    let mut bounds = vec![Bound::Unbounded];
    for probe in keys.choose_multiple(&mut rng, 4) {
        bounds.push(Bound::Included(*probe));
        bounds.push(Bound::Excluded(*probe));
    }
    bounds.push(Bound::Included(OrderKey {
        lamport: 1,
        id: EntryId([0xff; 32]),
    }));
    let total = model.len() as u64;
    for kinds in [&[][..], &[1], &[2, 3]] {
        for max_cursor in [0, total / 2, total, u64::MAX] {
            for lower in &bounds {
                for upper in &bounds {
                    for direction in [Direction::Forward, Direction::Backward] {
                        for limit in [1, 4, 100] {
                            let range = OrderRange {
                                lower: *lower,
                                upper: *upper,
                                direction,
                                limit,
                            };
                            assert_eq!(
                                s.events_range(&LOG, kinds, &[], &range, max_cursor)
                                    .await
                                    .unwrap(),
                                model_events(&model, kinds, &range, max_cursor),
                                "{kinds:?} {max_cursor} {range:?}"
                            );
                        }
                    }
                }
            }
        }
    }
}

async fn logs_lists_logs_with_entries(fx: Fixture) {
    let s = fx.storage();
    assert_eq!(s.logs().await.unwrap(), vec![]);
    let logs = [
        log_id(9, LogKind::Metadata),
        log_id(3, LogKind::Messages),
        log_id(3, LogKind::Metadata),
    ];
    for (i, log) in logs.iter().enumerate() {
        s.append(log, &[entry(&format!("l{i}"), &[])])
            .await
            .unwrap();
    }
    // A log touched only by a commit of values, or by a failed append, holds no entry.
    let values = [value(&s, "v", b"1")];
    let empty = log_id(1, LogKind::Metadata);
    s.commit(
        &empty,
        Commit {
            values: &values,
            ..Commit::default()
        },
    )
    .await
    .unwrap();
    let failed = log_id(2, LogKind::Metadata);
    let ghost = entry("ghost", &[]);
    assert!(s
        .append(&failed, &[entry("orphan", &[&ghost])])
        .await
        .is_err());
    let mut expected = logs.to_vec();
    expected.sort_by_key(|log| log.to_bytes());
    assert_eq!(s.logs().await.unwrap(), expected);
}

async fn values_list_by_prefix_and_delete(fx: Fixture) {
    let s = fx.storage();
    let keys = [
        "group/b",
        "group/a",
        "group/B",
        "group/é",
        "group/a/x",
        "groups",
        "group",
        "contact/a",
        "g%oup/_",
        "",
        "group/\u{10FFFF}",
    ];
    for (i, key) in keys.iter().enumerate() {
        put(&s, key, &[i as u8]).await;
    }
    let listed = |values: Vec<(String, Vec<u8>)>| -> Vec<String> {
        values.into_iter().map(|(key, _)| key).collect()
    };
    // Keys sort bytewise on every backend.
    let group: Vec<String> = vec![
        "group/B".into(),
        "group/a".into(),
        "group/a/x".into(),
        "group/b".into(),
        "group/é".into(),
        "group/\u{10FFFF}".into(),
    ];
    assert_eq!(listed(list(&s, "group/", None, 100).await), group);
    let first = list(&s, "group/", None, 1).await;
    assert_eq!(first, vec![(String::from("group/B"), vec![2])]);
    // Paging with `after`.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list(&s, "group/", after.as_deref(), 2).await;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(listed(page));
    }
    assert_eq!(paged, group);
    // Wildcard characters in a prefix are literal.
    assert_eq!(
        listed(list(&s, "g%", None, 100).await),
        vec!["g%oup/_".to_owned()]
    );
    assert_eq!(
        listed(list(&s, "g_", None, 100).await),
        Vec::<String>::new()
    );
    assert_eq!(list(&s, "", None, 100).await.len(), keys.len());
    assert_eq!(list(&s, "group/", None, 0).await, vec![]);

    s.delete_value("group/a").await.unwrap();
    s.delete_value("group/a").await.unwrap();
    s.delete_value("never stored").await.unwrap();
    assert_eq!(get(&s, "group/a").await, None);
    assert_eq!(get(&s, "group/a/x").await, Some(vec![4]));
    assert_eq!(
        list(&s, "group/a", None, 10).await,
        vec![(String::from("group/a/x"), vec![4])]
    );
}

/// CPU time (user and system) used so far by this process, all threads, from `/proc`.
fn process_cpu_time() -> Option<Duration> {
    // Fields 14 and 15 of /proc/self/stat, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
