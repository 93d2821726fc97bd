//! The four `*Subscribe` calls on the real binary, on SQLite and on PostgreSQL: inclusive
//! `since`/`until`, `go_backwards` as the exact reverse, forward order as the log's total order,
//! the live tail (each new event once, also when the subscription opens during writes),
//! `since_cursor` resumption, and the errors for bad ids and unknown groups.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    account, assert_cursors_increase, assert_parents_first, assert_status, both_backends, drain,
    ids, members, messages, metric, next, payload, random_bytes, random_key, settings, take,
    wait_for_metric, within, Backend, Client, Range, StoreEvent, TestNode,
};
use tonic::{Code, Status, Streaming};

both_backends!(
    ranges_are_inclusive_and_backwards_is_the_exact_reverse,
    live_tail_delivers_each_new_event_once,
    since_cursor_resumes_strictly_after_the_cursor,
    bad_ids_and_unknown_groups_are_refused,
);

async fn message_ids(client: &mut Client, group: &[u8], range: Range) -> Vec<Vec<u8>> {
    ids(&drain(messages(client, group, range).await.unwrap()).await)
}

fn reversed(mut ids: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    ids.reverse();
    ids
}

async fn set_member(client: &mut Client, group: &[u8], key: &str) {
    within(
        "GroupSettingSetMember",
        client.group_setting_set_member(pb::group_setting_set_member::Request {
            group_pub_key: group.to_vec(),
            key: key.to_string(),
            value: key.as_bytes().to_vec(),
        }),
    )
    .await
    .unwrap();
}

async fn app_event(client: &mut Client, payload: &[u8]) {
    within(
        "AccountAppendAppSpecificEvent",
        client.account_append_app_specific_event(pb::account_append_app_specific_event::Request {
            payload: payload.to_vec(),
        }),
    )
    .await
    .unwrap();
}

/// `since` and `until` are inclusive, each alone or together; `go_backwards` walks the same
/// range in exactly the reverse order and ends; forward order is the total order (every
/// event's parents come before it: the messages log of one writer is a chain); a range that
/// ends at `until` ends the stream, one without `until` goes on live. The same holds on the
/// metadata log (settings) and the account log.
async fn ranges_are_inclusive_and_backwards_is_the_exact_reverse(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        sent.push(a.send(&group, format!("m{i}").as_bytes()).await);
    }
    let c = &mut a.client;

    let forward = drain(
        messages(c, &group, Range::between(b"", &sent[9]))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ids(&forward), sent, "forward order is the send order");
    assert_parents_first(&forward, true);
    assert!(
        forward[0].parents().is_empty(),
        "the first message is a root"
    );
    for i in 1..forward.len() {
        assert_eq!(forward[i].parents(), vec![sent[i - 1].clone()], "a chain");
    }
    assert_cursors_increase(&forward.iter().map(|e| e.cursor()).collect::<Vec<_>>());

    assert_eq!(
        message_ids(c, &group, Range::backwards()).await,
        reversed(sent.clone()),
        "backwards is the exact reverse"
    );
    let inner = Range::between(&sent[3], &sent[7]);
    assert_eq!(
        message_ids(c, &group, inner.clone()).await,
        sent[3..=7].to_vec()
    );
    assert_eq!(
        message_ids(c, &group, inner.reversed()).await,
        reversed(sent[3..=7].to_vec())
    );
    let one = Range::between(&sent[4], &sent[4]);
    assert_eq!(
        message_ids(c, &group, one.clone()).await,
        vec![sent[4].clone()]
    );
    assert_eq!(
        message_ids(c, &group, one.reversed()).await,
        vec![sent[4].clone()]
    );
    let until = Range::between(b"", &sent[2]);
    assert_eq!(
        message_ids(c, &group, until.clone()).await,
        sent[..=2].to_vec()
    );
    assert_eq!(
        message_ids(c, &group, until.reversed()).await,
        reversed(sent[..=2].to_vec())
    );
    let since = Range::between(&sent[6], b"");
    assert_eq!(
        message_ids(c, &group, since.clone().reversed()).await,
        reversed(sent[6..].to_vec()),
        "backwards from the newest down to since, then the end"
    );
    assert_status(
        messages(c, &group, Range::between(&sent[5], &sent[4])).await,
        Code::InvalidArgument,
        "since",
        "since after until",
    );

    // `since` without `until`: history from `since`, then live.
    let mut tail = messages(c, &group, since).await.unwrap();
    assert_eq!(ids(&take(&mut tail, 4).await), sent[6..].to_vec());
    let newer = a.send(&group, b"after the history").await;
    let live = next(&mut tail).await;
    assert_eq!(live.id(), newer);
    assert_eq!(payload(&live), b"after the history");

    // The metadata log: settings share it with internal entries (member, chain key).
    for i in 0..5 {
        set_member(&mut a.client, &group, &format!("s{i}")).await;
    }
    let all = drain(
        settings(&mut a.client, &group, Range::backwards())
            .await
            .unwrap(),
    )
    .await;
    let mut setting_ids = ids(&all);
    setting_ids.reverse();
    assert_eq!(setting_ids.len(), 5);
    assert_parents_first(&all.iter().rev().cloned().collect::<Vec<_>>(), false);
    let bounded = drain(
        settings(
            &mut a.client,
            &group,
            Range::between(&setting_ids[1], &setting_ids[3]),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(ids(&bounded), setting_ids[1..=3].to_vec());
    assert_eq!(
        bounded
            .iter()
            .map(|r| r.event.as_ref().unwrap().key.clone())
            .collect::<Vec<_>>(),
        vec!["s1", "s2", "s3"]
    );
    let bounded_back = drain(
        settings(
            &mut a.client,
            &group,
            Range::between(&setting_ids[1], &setting_ids[3]).reversed(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(ids(&bounded_back), reversed(setting_ids[1..=3].to_vec()));

    // The account log.
    for i in 0..4 {
        app_event(&mut a.client, format!("app {i}").as_bytes()).await;
    }
    let history = a.account_history().await;
    let account_ids: Vec<Vec<u8>> = history
        .iter()
        .map(|e| e.event_base.as_ref().unwrap().id.clone())
        .collect();
    let n = account_ids.len();
    let window = drain(
        account(
            &mut a.client,
            Range::between(&account_ids[n - 3], &account_ids[n - 2]),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        window
            .iter()
            .map(|r| r.event.as_ref().unwrap().data.clone())
            .collect::<Vec<_>>(),
        vec![b"app 1".to_vec(), b"app 2".to_vec()]
    );
}

/// A live subscription replays the history, then delivers every new event exactly once: new
/// events written by concurrent senders, and events written while the subscription is being
/// opened (the boundary between history and live). A sentinel sent last proves nothing
/// extra was delivered in between.
async fn live_tail_delivers_each_new_event_once(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(a.send(&group, format!("history {i}").as_bytes()).await);
    }
    let mut sub = messages(&mut a.client, &group, Range::live())
        .await
        .unwrap();
    assert_eq!(ids(&take(&mut sub, 5).await), expected);

    // Concurrent senders while the subscriber reads.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let mut client = a.client.clone();
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let body = format!("writer {t} message {i}");
                ids.push(
                    common::protocol::send(&mut client, &group, body.as_bytes())
                        .await
                        .unwrap(),
                );
            }
            ids
        }));
    }
    let mut concurrent = HashSet::new();
    for task in tasks {
        concurrent.extend(task.await.unwrap());
    }
    let live = take(&mut sub, concurrent.len()).await;
    assert_eq!(ids(&live).into_iter().collect::<HashSet<_>>(), concurrent);
    assert_cursors_increase(&live.iter().map(|e| e.cursor()).collect::<Vec<_>>());
    assert_parents_first(&live, false);
    let sentinel = a.send(&group, b"sentinel").await;
    assert_eq!(
        next(&mut sub).await.id(),
        sentinel,
        "nothing delivered twice before it"
    );

    // A subscription opened while a writer is busy: every event exactly once.
    let before = 5 + concurrent.len() + 1;
    let writer = {
        let mut client = a.client.clone();
        let group = group.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..150 {
                let body = format!("during open {i}");
                ids.push(
                    common::protocol::send(&mut client, &group, body.as_bytes())
                        .await
                        .unwrap(),
                );
            }
            ids
        })
    };
    let mut during = messages(&mut a.client, &group, Range::live())
        .await
        .unwrap();
    let written = writer.await.unwrap();
    let last = a.send(&group, b"last").await;
    let mut seen = Vec::new();
    loop {
        let event = next(&mut during).await;
        let id = event.id();
        seen.push(event);
        if id == last {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        before + written.len() + 1,
        "every event exactly once"
    );
    let seen_ids = ids(&seen);
    assert_eq!(
        seen_ids.iter().collect::<HashSet<_>>().len(),
        seen_ids.len(),
        "no duplicate"
    );
    assert_eq!(
        &seen_ids[before..before + written.len()],
        &written[..],
        "in order"
    );
    assert_parents_first(&seen, true);

    // Live subscriptions end when the client goes away (none is left running).
    let mut account_live = account(&mut a.client, Range::live()).await.unwrap();
    let mut members_live = members(&mut a.client, &group, Range::live()).await.unwrap();
    next(&mut account_live).await;
    next(&mut members_live).await;
    assert_eq!(metric(&a.process, "berty_node_subscriptions").await, 4.0);
    drop((sub, during, account_live, members_live));
    wait_for_metric(&a.process, "berty_node_subscriptions", 0.0).await;
}

/// `since_cursor` resumes strictly after the cursor, in arrival order, then streams live; the
/// cursor of the newest event gives only new events. Same on the account and metadata logs.
async fn since_cursor_resumes_strictly_after_the_cursor(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let mut sent = Vec::new();
    for i in 0..8 {
        sent.push(a.send(&group, format!("m{i}").as_bytes()).await);
    }
    let history = drain(
        messages(&mut a.client, &group, Range::backwards())
            .await
            .unwrap(),
    )
    .await;
    let history: Vec<_> = history.into_iter().rev().collect();
    let cursors: Vec<u64> = history.iter().map(|e| e.cursor()).collect();
    assert_cursors_increase(&cursors);

    let mut resumed = messages(&mut a.client, &group, Range::after_cursor(cursors[2]))
        .await
        .unwrap();
    assert_eq!(
        ids(&take(&mut resumed, 5).await),
        sent[3..].to_vec(),
        "strictly after"
    );
    let newer = a.send(&group, b"newer").await;
    assert_eq!(next(&mut resumed).await.id(), newer, "then live");

    let mut at_end = messages(&mut a.client, &group, Range::after_cursor(cursors[7]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut at_end).await.id(),
        newer,
        "after the last history cursor"
    );
    let newest = a.send(&group, b"newest").await;
    assert_eq!(next(&mut at_end).await.id(), newest);

    // Member and setting events share the metadata log's cursors.
    for i in 0..3 {
        set_member(&mut a.client, &group, &format!("k{i}")).await;
    }
    let set = drain(
        settings(&mut a.client, &group, Range::backwards())
            .await
            .unwrap(),
    )
    .await;
    let first = set.last().unwrap().cursor();
    let mut after_first = settings(&mut a.client, &group, Range::after_cursor(first))
        .await
        .unwrap();
    let keys: Vec<String> = take(&mut after_first, 2)
        .await
        .into_iter()
        .map(|r| r.event.unwrap().key)
        .collect();
    assert_eq!(keys, vec!["k1", "k2"]);
    let member = drain(
        members(&mut a.client, &group, Range::backwards())
            .await
            .unwrap(),
    )
    .await;
    assert!(member[0].cursor() < first, "the member event came first");
    let mut after_member = settings(
        &mut a.client,
        &group,
        Range::after_cursor(member[0].cursor()),
    )
    .await
    .unwrap();
    let keys: Vec<String> = take(&mut after_member, 3)
        .await
        .into_iter()
        .map(|r| r.event.unwrap().key)
        .collect();
    assert_eq!(
        keys,
        vec!["k0", "k1", "k2"],
        "a cursor of another event kind of the same log"
    );
    set_member(&mut a.client, &group, "k3").await;
    assert_eq!(
        next(&mut after_first).await.event.unwrap().key,
        "k3",
        "then live"
    );
    assert_eq!(
        next(&mut after_member).await.event.unwrap().key,
        "k3",
        "then live"
    );

    // Account log.
    for i in 0..3 {
        app_event(&mut a.client, format!("app {i}").as_bytes()).await;
    }
    let acc = a.account_history().await;
    let cursor = acc[acc.len() - 3].cursor;
    let mut after = account(&mut a.client, Range::after_cursor(cursor))
        .await
        .unwrap();
    let data: Vec<Vec<u8>> = take(&mut after, 2)
        .await
        .into_iter()
        .map(|r| r.event.unwrap().data)
        .collect();
    assert_eq!(data, vec![b"app 1".to_vec(), b"app 2".to_vec()]);
}

async fn all_subscriptions(
    client: &mut Client,
    group: &[u8],
    range: Range,
) -> Vec<(&'static str, Result<(), Status>)> {
    fn done<T>(r: Result<Streaming<T>, Status>) -> Result<(), Status> {
        r.map(drop)
    }
    vec![
        (
            "GroupMessageSubscribe",
            done(messages(client, group, range.clone()).await),
        ),
        (
            "GroupMemberSubscribe",
            done(members(client, group, range.clone()).await),
        ),
        (
            "GroupSettingSubscribe",
            done(settings(client, group, range.clone()).await),
        ),
        ("AccountSubscribe", done(account(client, range).await)),
    ]
}

/// An unknown `since`/`until` id (also one from another log) and a malformed id (wrong
/// length) are INVALID_ARGUMENT naming the field, forwards and backwards, on every
/// subscription; an unknown group is NOT_FOUND.
async fn bad_ids_and_unknown_groups_are_refused(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let other = a.create_group().await;
    let message = a.send(&group, b"m").await;
    let other_message = a.send(&other, b"o").await;

    let mut bad_ids: Vec<(&str, Vec<u8>)> = vec![
        ("unknown", random_bytes(32)),
        ("1 byte", vec![1]),
        ("31 bytes", random_bytes(31)),
        ("33 bytes", random_bytes(33)),
        ("64 bytes", random_bytes(64)),
    ];
    for (what, id) in bad_ids.drain(..) {
        for backwards in [false, true] {
            for field in ["since", "until"] {
                let mut range = if field == "since" {
                    Range::between(&id, b"")
                } else {
                    Range::between(b"", &id)
                };
                range.go_backwards = backwards;
                for (call, result) in all_subscriptions(&mut a.client, &group, range).await {
                    assert_status(
                        result,
                        Code::InvalidArgument,
                        field,
                        &format!("{call} with a {what} {field} id (backwards: {backwards})"),
                    );
                }
            }
        }
    }
    // Ids of real events in other logs are unknown in this one.
    assert_status(
        messages(&mut a.client, &group, Range::between(&other_message, b"")).await,
        Code::InvalidArgument,
        "since",
        "a message id of another group",
    );
    assert_status(
        settings(&mut a.client, &group, Range::between(b"", &message)).await,
        Code::InvalidArgument,
        "until",
        "a message id given to the settings (metadata) log",
    );
    assert_status(
        account(&mut a.client, Range::between(&message, b"")).await,
        Code::InvalidArgument,
        "since",
        "a message id given to the account log",
    );
    // The valid id still works.
    assert_eq!(
        message_ids(&mut a.client, &group, Range::between(&message, &message)).await,
        vec![message.clone()]
    );

    let unknown = random_key();
    for (call, result) in all_subscriptions(&mut a.client, &unknown, Range::live())
        .await
        .into_iter()
        .take(3)
    {
        assert_status(result, Code::NotFound, &hex::encode(&unknown), call);
    }
    // NOT_FOUND wins over a range on an unknown group too.
    assert_status(
        messages(&mut a.client, &unknown, Range::between(&message, b"")).await,
        Code::NotFound,
        "not known",
        "GroupMessageSubscribe on an unknown group with a since id",
    );
}
