//! The mirror's tokens and groups on every backend: the store behind `Storage::mirror`.
//!
//! Each test runs once per backend: `sqlite::*` on a file in a temp dir, `postgres::*` on a
//! fresh database per test (an unreachable server fails the tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use berty_node::{
    crypto::SymmetricKey,
    log::{EntryId, LogId, LogKind},
    storage::{
        mirror::{AppendedBatch, GroupRegistration, NewMirroredGroup, NewToken, Purged},
        value_keys::ValueKey,
        NewEntry, OrderRange, SealedValues, Storage,
    },
};
use common::store::StoreFixture as Fixture;

common::fixture_tests! {
    ignore: "no benchmark here",
    backends: {
        sqlite => Fixture::sqlite,
        postgres => Fixture::postgres,
    },
    tests: [
        tokens_are_listed_with_their_usage_and_found_by_hash,
        group_quota_and_idempotent_registration,
        unregistering_needs_the_token_and_deletes_the_logs,
        revoking_a_token_deletes_its_groups_and_their_logs,
        two_storages_on_one_database_see_the_same_registrations,
        a_group_this_node_is_a_member_of_keeps_its_logs,
        retention_deletes_old_batches_but_keeps_heads,
    ],
    benches: [],
}

fn token(id: &str, max_groups: u64) -> NewToken {
    NewToken {
        id: id.into(),
        token_hash: sha(id),
        label: format!("label {id}"),
        max_groups,
        max_bytes: 1 << 20,
        created_at: 1_000,
    }
}

/// A batch of group `n`'s messages log.
fn batch(n: u8, entries: u64, bytes: u64, last_cursor: u64, at: u64) -> AppendedBatch {
    AppendedBatch {
        log: LogId::new([n; 32], LogKind::Messages),
        entries,
        bytes,
        last_cursor,
        at,
    }
}

fn sha(text: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).into()
}

fn group(n: u8, token_id: &str) -> NewMirroredGroup {
    NewMirroredGroup {
        group_pk: [n; 32],
        signing_pk: [n.wrapping_add(100); 32],
        link_key: [n.wrapping_add(200); 32],
        creation_proof: vec![1, n],
        token_id: token_id.into(),
    }
}

/// Stores two entries in each log of group `n` (the data a mirror keeps for it).
async fn store_logs(s: &Arc<dyn Storage>, n: u8) {
    for kind in [LogKind::Metadata, LogKind::Messages] {
        let log = LogId::new([n; 32], kind);
        let first = NewEntry {
            id: EntryId(sha(&format!("{n}/{kind:?}/1"))),
            lamport: 1,
            parents: vec![],
            bytes: vec![n; 10],
        };
        let second = NewEntry {
            id: EntryId(sha(&format!("{n}/{kind:?}/2"))),
            lamport: 2,
            parents: vec![first.id],
            bytes: vec![n; 20],
        };
        s.append(&log, &[first, second]).await.unwrap();
    }
}

async fn log_len(s: &Arc<dyn Storage>, n: u8) -> usize {
    let mut total = 0;
    for kind in [LogKind::Metadata, LogKind::Messages] {
        let log = LogId::new([n; 32], kind);
        total += s.range(&log, &OrderRange::all(100)).await.unwrap().len();
    }
    total
}

async fn tokens_are_listed_with_their_usage_and_found_by_hash(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    assert!(m.tokens().await.unwrap().is_empty());
    m.insert_token(&token("a", 5)).await.unwrap();
    m.insert_token(&token("b", 5)).await.unwrap();
    assert_eq!(
        m.register_group(&group(1, "a"), 2_000).await.unwrap(),
        GroupRegistration::Registered
    );
    m.record_append(&batch(1, 4, 60, 4, 2_500)).await.unwrap();
    m.record_append(&batch(1, 1, 40, 5, 2_600)).await.unwrap();

    let tokens = m.tokens().await.unwrap();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        (tokens[0].id.as_str(), tokens[0].groups, tokens[0].bytes),
        ("a", 1, 100)
    );
    assert_eq!(
        (tokens[1].id.as_str(), tokens[1].groups, tokens[1].bytes),
        ("b", 0, 0)
    );
    assert_eq!(tokens[0].label, "label a");
    assert_eq!(m.token_by_hash(&sha("b")).await.unwrap().unwrap().id, "b");
    assert_eq!(m.token("a").await.unwrap().unwrap().bytes, 100);
    assert!(m.token_by_hash(&sha("nobody")).await.unwrap().is_none());
    assert!(m.token("nobody").await.unwrap().is_none());

    let groups = m.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(
        (g.entries, g.bytes, g.last_activity, g.registered_at),
        (5, 100, 2_600, 2_000)
    );
    assert_eq!((g.signing_pk, g.link_key), ([101; 32], [201; 32]));
    assert_eq!(g.creation_proof, vec![1, 1]);
}

async fn group_quota_and_idempotent_registration(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    m.insert_token(&token("a", 2)).await.unwrap();
    m.insert_token(&token("b", 2)).await.unwrap();
    for n in [1, 2] {
        assert_eq!(
            m.register_group(&group(n, "a"), 10).await.unwrap(),
            GroupRegistration::Registered
        );
    }
    assert_eq!(
        m.register_group(&group(1, "a"), 11).await.unwrap(),
        GroupRegistration::AlreadyMirrored
    );
    assert_eq!(
        m.register_group(&group(1, "b"), 11).await.unwrap(),
        GroupRegistration::AlreadyMirrored
    );
    assert_eq!(
        m.register_group(&group(3, "a"), 12).await.unwrap(),
        GroupRegistration::GroupQuota
    );
    assert_eq!(
        m.register_group(&group(3, "gone"), 12).await.unwrap(),
        GroupRegistration::UnknownToken
    );
    assert_eq!(m.groups().await.unwrap().len(), 2);
    assert_eq!(m.token("a").await.unwrap().unwrap().groups, 2);
}

async fn unregistering_needs_the_token_and_deletes_the_logs(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    m.insert_token(&token("a", 5)).await.unwrap();
    m.insert_token(&token("b", 5)).await.unwrap();
    m.register_group(&group(1, "a"), 10).await.unwrap();
    m.register_group(&group(2, "a"), 10).await.unwrap();
    store_logs(&s, 1).await;
    store_logs(&s, 2).await;
    assert!(!m.unregister_group(&[1; 32], "b").await.unwrap());
    assert_eq!(log_len(&s, 1).await, 4);
    assert!(m.unregister_group(&[1; 32], "a").await.unwrap());
    assert!(!m.unregister_group(&[1; 32], "a").await.unwrap());
    assert_eq!(log_len(&s, 1).await, 0);
    assert_eq!(log_len(&s, 2).await, 4, "another group's logs are kept");
    assert!(!s
        .logs()
        .await
        .unwrap()
        .iter()
        .any(|l| l.group_pk() == &[1; 32]));
    assert_eq!(m.groups().await.unwrap().len(), 1);
}

async fn revoking_a_token_deletes_its_groups_and_their_logs(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    m.insert_token(&token("a", 5)).await.unwrap();
    m.insert_token(&token("b", 5)).await.unwrap();
    m.register_group(&group(1, "a"), 10).await.unwrap();
    m.register_group(&group(2, "a"), 10).await.unwrap();
    m.register_group(&group(3, "b"), 10).await.unwrap();
    for n in 1..=3 {
        store_logs(&s, n).await;
    }
    let mut revoked = m.revoke_token("a").await.unwrap().unwrap();
    revoked.sort();
    assert_eq!(revoked, vec![[1; 32], [2; 32]]);
    assert!(m.revoke_token("a").await.unwrap().is_none());
    assert!(m.token_by_hash(&sha("a")).await.unwrap().is_none());
    assert_eq!(log_len(&s, 1).await + log_len(&s, 2).await, 0);
    assert_eq!(log_len(&s, 3).await, 4);
    let groups = m.groups().await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].token_id, "b");
    assert_eq!(
        m.register_group(&group(4, "a"), 11).await.unwrap(),
        GroupRegistration::UnknownToken
    );
}

async fn two_storages_on_one_database_see_the_same_registrations(fx: Fixture) {
    let first = fx.storage();
    let second = fx.open_again().await;
    first.mirror().insert_token(&token("a", 5)).await.unwrap();
    assert_eq!(
        second
            .mirror()
            .register_group(&group(1, "a"), 10)
            .await
            .unwrap(),
        GroupRegistration::Registered
    );
    assert_eq!(first.mirror().groups().await.unwrap().len(), 1);
    assert_eq!(
        first
            .mirror()
            .register_group(&group(1, "a"), 11)
            .await
            .unwrap(),
        GroupRegistration::AlreadyMirrored
    );
    second.mirror().revoke_token("a").await.unwrap().unwrap();
    assert!(first.mirror().groups().await.unwrap().is_empty());
}

/// The log tables are shared: when this node's account is in a mirrored group (it holds a
/// group record), revoking or unregistering leaves the member's copy alone.
async fn a_group_this_node_is_a_member_of_keeps_its_logs(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    m.insert_token(&token("a", 5)).await.unwrap();
    m.register_group(&group(1, "a"), 10).await.unwrap();
    m.register_group(&group(2, "a"), 10).await.unwrap();
    store_logs(&s, 1).await;
    store_logs(&s, 2).await;
    let values = SealedValues::new(s.clone(), SymmetricKey::from_bytes([3; 32]));
    let record = ValueKey::Group { group_pk: [1; 32] }.to_string();
    values
        .put(&record, b"the account's group record")
        .await
        .unwrap();
    assert!(m.unregister_group(&[1; 32], "a").await.unwrap());
    assert_eq!(log_len(&s, 1).await, 4, "the member's logs stay");
    m.register_group(&group(1, "a"), 11).await.unwrap();
    m.revoke_token("a").await.unwrap().unwrap();
    assert_eq!(log_len(&s, 1).await, 4, "the member's logs stay");
    assert_eq!(log_len(&s, 2).await, 0, "a group only mirrored is deleted");
}

/// Batches stored before the cutoff lose their entries, except the heads; the group's
/// counters follow; newer batches and other groups are left alone.
async fn retention_deletes_old_batches_but_keeps_heads(fx: Fixture) {
    let s = fx.storage();
    let m = s.mirror();
    m.insert_token(&token("a", 5)).await.unwrap();
    m.register_group(&group(1, "a"), 10).await.unwrap();
    m.register_group(&group(2, "a"), 10).await.unwrap();
    let log = LogId::new([1; 32], LogKind::Messages);
    // Five entries in a chain, stored in two batches: cursors 1-3 at t=100, 4-5 at t=500.
    let mut entries: Vec<NewEntry> = Vec::new();
    for i in 1..=5u64 {
        entries.push(NewEntry {
            id: EntryId(sha(&format!("chain {i}"))),
            lamport: i,
            parents: entries.last().map(|e| vec![e.id]).unwrap_or_default(),
            bytes: vec![i as u8; 100],
        });
    }
    s.append(&log, &entries[..3]).await.unwrap();
    m.record_append(&batch(1, 3, 300, 3, 100)).await.unwrap();
    s.append(&log, &entries[3..]).await.unwrap();
    m.record_append(&batch(1, 2, 200, 5, 500)).await.unwrap();
    store_logs(&s, 2).await;
    m.record_append(&batch(2, 2, 30, 2, 100)).await.unwrap();

    assert_eq!(m.purge_before(50).await.unwrap(), Purged::default());
    // Group 2's newest messages entry is its head: only its first one goes.
    let purged = m.purge_before(200).await.unwrap();
    assert_eq!(purged.entries, 3 + 1, "{purged:?}");
    assert_eq!(purged.bytes, 300 + 10, "{purged:?}");
    let left: Vec<u64> = s
        .range(&log, &OrderRange::all(100))
        .await
        .unwrap()
        .iter()
        .map(|e| e.lamport)
        .collect();
    assert_eq!(left, vec![4, 5]);
    let groups = m.groups().await.unwrap();
    assert_eq!((groups[0].entries, groups[0].bytes), (2, 200));
    // Later purges find nothing more of those batches; the head of a log always stays.
    assert_eq!(m.purge_before(200).await.unwrap(), Purged::default());
    let purged = m.purge_before(1_000).await.unwrap();
    assert_eq!(purged.entries, 1, "all but the head: {purged:?}");
    assert_eq!(s.heads(&log).await.unwrap().len(), 1);
    assert_eq!(s.range(&log, &OrderRange::all(100)).await.unwrap().len(), 1);
}
