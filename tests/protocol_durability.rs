//! Durability on the real binary, on SQLite and on PostgreSQL: acknowledged messages survive
//! `kill -KILL` (also with sends in flight) and the chain goes on afterwards; an export
//! imported with `berty-node init --import` is a new device of the same account with the same
//! groups and history; `--restore` keeps the device; occupied targets are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use berty_node::proto::berty_protocol as pb;
use common::protocol::{
    assert_status, both_backends, members, messages, next, take, within, Backend, Client, Home,
    Range, StoreEvent, TestNode,
};
use tokio::sync::mpsc;
use tonic::Code;

both_backends!(
    messages_are_stored_once_and_read_back_whole,
    acknowledged_messages_survive_sigkill,
    export_imported_as_a_new_device,
    restore_keeps_the_device_and_occupied_targets_are_refused,
);

/// The largest stored body of a message event and the largest stored entry of `home`'s
/// database, read with a connection of its own beside the running node.
async fn stored_sizes(home: &Home) -> (i64, i64) {
    use sqlx::{Connection, Row};
    const SIZES: &str = "SELECT (SELECT max(length(body)) FROM events WHERE kind = 3), \
                         (SELECT max(length(bytes)) FROM entries)";
    let row = if home.database_url().is_empty() {
        let url = format!("sqlite:{}", home.data_dir().join("berty-node.db").display());
        let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let row = sqlx::query(SIZES).fetch_one(&mut db).await.unwrap();
        (row.get::<i64, _>(0), row.get::<i64, _>(1))
    } else {
        let mut db = sqlx::PgConnection::connect(home.database_url())
            .await
            .unwrap();
        let row = sqlx::query(SIZES.replace("length(", "octet_length(").as_str())
            .fetch_one(&mut db)
            .await
            .unwrap();
        (row.get::<i32, _>(0).into(), row.get::<i32, _>(1).into())
    };
    row
}

/// A message's plaintext is stored once, sealed in its entry: its event keeps the key that
/// opens it (under 200 bytes for a 4 KiB message), and every way of reading it back (history,
/// history after a restart, the live tail read from storage) shows it whole.
async fn messages_are_stored_once_and_read_back_whole(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    let bodies: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 4096]).collect();
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(a.send(&group, body).await);
    }
    let (event, entry) = stored_sizes(&a.home).await;
    assert!(event < 200, "a message event stores {event} bytes");
    assert!(entry > 4096, "the largest entry is {entry} bytes");
    let expected: Vec<(Vec<u8>, Vec<u8>)> = ids.iter().cloned().zip(bodies.clone()).collect();
    let whole = |history: Vec<pb::GroupMessageStoreEvent>| -> Vec<(Vec<u8>, Vec<u8>)> {
        history
            .iter()
            .map(|m| (m.id(), m.payload.clone()))
            .collect()
    };
    assert_eq!(whole(a.message_history(&group).await), expected);

    let mut a = a.sigkill_and_restart().await;
    let history = a.message_history(&group).await;
    let first = history[0].cursor();
    assert_eq!(whole(history), expected);
    // After a restart nothing is in memory: the live tail reads storage.
    let mut tail = messages(&mut a.client, &group, Range::after_cursor(first))
        .await
        .unwrap();
    let read: Vec<(Vec<u8>, Vec<u8>)> = take(&mut tail, 2)
        .await
        .iter()
        .map(|m| (m.id(), m.event.as_ref().unwrap().payload.clone()))
        .collect();
    assert_eq!(read, expected[1..]);
}

/// What a client sees of a group's messages: (id, parents, payload), in total order.
async fn messages_of(node: &mut TestNode, group: &[u8]) -> Vec<(Vec<u8>, Vec<Vec<u8>>, Vec<u8>)> {
    node.message_history(group)
        .await
        .into_iter()
        .map(|e| (e.id(), e.parents(), e.payload))
        .collect()
}

/// The account events as (id, type, subject, data).
async fn account_of(node: &mut TestNode) -> Vec<(Vec<u8>, i32, Vec<u8>, Vec<u8>)> {
    node.account_history()
        .await
        .into_iter()
        .map(|e| {
            (
                e.event_base.unwrap().id,
                e.event_type,
                e.subject_public_key_bytes,
                e.data,
            )
        })
        .collect()
}

async fn set_member(client: &mut Client, group: &[u8], key: &str, value: &[u8]) {
    within(
        "GroupSettingSetMember",
        client.group_setting_set_member(pb::group_setting_set_member::Request {
            group_pub_key: group.to_vec(),
            key: key.to_string(),
            value: value.to_vec(),
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

/// 200 messages, each acknowledged before the next is sent, then `kill -KILL`: after a restart
/// on the same data dir and database every one is there, in the same order, with the same
/// ids; the chain goes on (new messages after the old ones). Then the same with 8 senders in
/// flight at the moment of the kill: every acknowledged message survives and the log is
/// still one unbroken chain.
async fn acknowledged_messages_survive_sigkill(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    set_member(&mut a.client, &group, "nick", b"alice").await;
    app_event(&mut a.client, b"before the crash").await;
    let mut acknowledged = Vec::new();
    for i in 0..200 {
        let body = format!("durable {i}").into_bytes();
        let id = a.send(&group, &body).await;
        acknowledged.push((id, body));
    }
    let before = messages_of(&mut a, &group).await;
    let account_before = account_of(&mut a).await;
    let settings_before = a.setting_history(&group).await;
    let cursor_150 = a.message_history(&group).await[150].cursor();

    let mut a = a.sigkill_and_restart().await;
    let after = messages_of(&mut a, &group).await;
    assert_eq!(after.len(), 200, "every acknowledged message is there");
    assert_eq!(
        after, before,
        "same ids, parents and payloads, in the same order"
    );
    for ((id, _, body), (sent_id, sent_body)) in after.iter().zip(&acknowledged) {
        assert_eq!((id, body), (sent_id, sent_body));
    }
    assert_eq!(account_of(&mut a).await, account_before);
    assert_eq!(a.setting_history(&group).await, settings_before);
    assert_eq!(
        a.member_history(&group).await.len(),
        1,
        "no second device setup"
    );

    // Cursors are persistent: resuming from one taken before the crash gives what came after.
    let mut resumed = messages(&mut a.client, &group, Range::after_cursor(cursor_150))
        .await
        .unwrap();
    let tail: Vec<Vec<u8>> = take(&mut resumed, 49)
        .await
        .iter()
        .map(StoreEvent::id)
        .collect();
    let expected: Vec<Vec<u8>> = before[151..].iter().map(|m| m.0.clone()).collect();
    assert_eq!(tail, expected);
    drop(resumed);

    // Sending still works and continues the chain.
    let new = a.send(&group, b"after the restart").await;
    let history = a.message_history(&group).await;
    assert_eq!(history.len(), 201);
    assert_eq!(history[200].id(), new);
    assert_eq!(history[200].parents(), vec![before[199].0.clone()]);
    assert!(history[200].cursor() > history[199].cursor());

    // Kill with sends in flight: 8 senders; kill once 100 of them are acknowledged.
    let (acks, mut acked) = mpsc::unbounded_channel();
    let mut senders = Vec::new();
    for t in 0..8 {
        let mut client = a.client.clone();
        let group = group.clone();
        let acks = acks.clone();
        senders.push(tokio::spawn(async move {
            for i in 0.. {
                let body = format!("in flight {t}/{i}").into_bytes();
                match common::protocol::send(&mut client, &group, &body).await {
                    Ok(id) => {
                        if acks.send((id, body)).is_err() {
                            return;
                        }
                    }
                    // The node was killed: what was not acknowledged may or may not be there.
                    Err(_) => return,
                }
            }
        }));
    }
    drop(acks);
    let mut in_flight = Vec::new();
    while in_flight.len() < 100 {
        in_flight.push(within("an acknowledged send", acked.recv()).await.unwrap());
    }
    a.process.signal("KILL");
    for sender in senders {
        within("the senders stop", sender).await.unwrap();
    }
    while let Ok(ack) = acked.try_recv() {
        in_flight.push(ack);
    }
    let mut a = a.sigkill_and_restart().await;
    let history = a.message_history(&group).await;
    let stored: std::collections::HashMap<Vec<u8>, Vec<u8>> = history
        .iter()
        .map(|e| (e.id(), e.payload.clone()))
        .collect();
    for (id, body) in &in_flight {
        assert_eq!(
            stored.get(id),
            Some(body),
            "an acknowledged message was lost"
        );
    }
    assert!(history.len() >= 201 + in_flight.len());
    for i in 1..history.len() {
        assert_eq!(
            history[i].parents(),
            vec![history[i - 1].id()],
            "one unbroken chain"
        );
    }
    let last = a.send(&group, b"after the second crash").await;
    let history = a.message_history(&group).await;
    assert_eq!(history.last().unwrap().id(), last);
}

/// Export from A, `init --import` into a new data dir (and database): a new device of the same
/// account (same account key, new device key), with the same groups, message history (ids,
/// parents, payloads), settings and account events; on start it writes its own member event
/// in each group it is in (seen on the member subscription's live tail) but not in the group
/// the account left; it can send, after the imported history.
async fn export_imported_as_a_new_device(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let g1 = a.create_group().await;
    let g2 = a.create_group().await;
    let left = a.create_group().await;
    for i in 0..20 {
        a.send(&g1, format!("g1 {i}").as_bytes()).await;
    }
    for i in 0..5 {
        a.send(&g2, format!("g2 {i}").as_bytes()).await;
    }
    a.send(&left, b"in the group that is left").await;
    within(
        "GroupLeave",
        a.client.group_leave(pb::group_leave::Request {
            group_pub_key: left.clone(),
        }),
    )
    .await
    .unwrap();
    within(
        "GroupSettingSetGroup",
        a.client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key: g2.clone(),
                key: "title".into(),
                value: b"imported".to_vec(),
            }),
    )
    .await
    .unwrap();
    app_event(&mut a.client, b"exported app event").await;
    a.enable_contact_requests().await;

    let file = a.home.scratch("export.bin");
    a.export_to(&file).await;

    let home = Home::new(backend).await;
    let id = home.import(&file, false).await;
    assert_eq!(id.account_pk, a.id.account_pk, "the same account");
    assert_ne!(id.device_pk, a.id.device_pk, "a new device");
    assert_ne!(id.peer_id, a.id.peer_id, "a peer of its own");
    let mut c = TestNode::serve(home, id).await;

    for group in [&g1, &g2] {
        let original = a.member_history(group).await.remove(0);
        let mut live = members(&mut c.client, group, Range::live()).await.unwrap();
        let first = next(&mut live).await;
        assert_eq!(
            first.event.unwrap(),
            original,
            "the imported member event first"
        );
        let own = next(&mut live).await.event.unwrap();
        let (own, original) = (own.store(), original.store());
        assert_eq!(own.account_pub_key, a.id.account_pk);
        assert_eq!(
            own.group_member_pub_key, original.group_member_pub_key,
            "same member"
        );
        assert_ne!(
            own.group_device_pub_key, original.group_device_pub_key,
            "new device"
        );
    }

    for group in [&g1, &g2, &left] {
        assert_eq!(
            messages_of(&mut c, group).await,
            messages_of(&mut a, group).await,
            "the same message history"
        );
    }
    assert_eq!(c.setting_history(&g2).await, a.setting_history(&g2).await);
    assert_eq!(account_of(&mut c).await, account_of(&mut a).await);
    assert_eq!(
        c.member_history(&left).await.len(),
        1,
        "no setup in a group the account left"
    );
    assert_status(
        common::protocol::send(&mut c.client.clone(), &left, b"x").await,
        Code::FailedPrecondition,
        "left",
        "sending to the group the account left, on the new device",
    );
    assert_eq!(c.contact_reference().await, a.contact_reference().await);
    // The new device is the same member, so it is still the group's creator.
    within(
        "GroupSettingSetGroup",
        c.client
            .group_setting_set_group(pb::group_setting_set_group::Request {
                group_pub_key: g2.clone(),
                key: "title".into(),
                value: b"set by the new device".to_vec(),
            }),
    )
    .await
    .expect("a new device of the creator may set group settings");

    let old = messages_of(&mut c, &g1).await;
    let new = c.send(&g1, b"from the new device").await;
    let history = c.message_history(&g1).await;
    assert_eq!(history.len(), old.len() + 1);
    assert_eq!(history.last().unwrap().id(), new);
    assert_eq!(
        history.last().unwrap().parents(),
        vec![old.last().unwrap().0.clone()]
    );
    let c_device = c.member_history(&g1).await[1]
        .store()
        .group_device_pub_key
        .clone();
    assert_eq!(
        history.last().unwrap().store().group_device_pub_key,
        c_device,
        "written by the new device"
    );
    app_event(&mut c.client, b"from the new device").await;
    let last = c.account_history().await.pop().unwrap();
    assert_eq!(last.event_type, pb::AccountEventType::AppSpecified as i32);
    assert_eq!(
        last.subject_public_key_bytes, c.id.device_pk,
        "the new device's key"
    );
}

/// Importing into a data dir that holds an account fails with a clear message and a non-zero
/// exit (and on PostgreSQL, into a database that holds logs); `init --restore` keeps the device
/// key and writes no new member event, and the restored instance can send after the history.
async fn restore_keeps_the_device_and_occupied_targets_are_refused(backend: Backend) {
    let mut a = TestNode::start(backend).await;
    let group = a.create_group().await;
    for i in 0..3 {
        a.send(&group, format!("m{i}").as_bytes()).await;
    }
    let file = a.home.scratch("export.bin");
    a.export_to(&file).await;
    let file_arg = file.to_str().unwrap();

    // While the node runs, its data dir is locked: nothing else writes there.
    for flag in ["--import", "--restore"] {
        let output = a.home.run_init(&[flag, file_arg]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{flag} into a live node's data dir must fail"
        );
        assert!(
            stderr.contains("in use by another berty-node"),
            "{flag}: {stderr}"
        );
    }
    // Stopped, the data dir still holds an account: importing over it is refused too.
    let (home, id) = a.kill().await;
    for flag in ["--import", "--restore"] {
        let output = home.run_init(&[flag, file_arg]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{flag} into an occupied data dir must fail"
        );
        assert!(
            stderr.contains("already holds an account"),
            "{flag}: {stderr}"
        );
    }
    let mut a = TestNode::serve(home, id).await;
    if backend == Backend::Postgres {
        let empty_dir = a.home.scratch("empty-data");
        let output = a
            .home
            .run_init_in(&empty_dir, a.home.database_url(), &["--import", file_arg])
            .await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "import into a database with logs must fail"
        );
        assert!(stderr.contains("already holds logs"), "{stderr}");
    }
    // A file that is not an export is refused before anything is written.
    let garbage = a.home.scratch("garbage.bin");
    std::fs::write(&garbage, b"this is not an export").unwrap();
    let fresh = a.home.scratch("fresh-data");
    let output = a
        .home
        .run_init_in(&fresh, "", &["--import", garbage.to_str().unwrap()])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "importing garbage must fail");
    assert!(stderr.contains("export file"), "{stderr}");
    assert!(
        !fresh.join(berty_node::defaults::ACCOUNT_KEY_FILE).exists(),
        "no account is made from a refused import"
    );
    // The refused imports changed nothing.
    a.send(&group, b"still fine").await;
    let history = messages_of(&mut a, &group).await;
    let member = a.member_history(&group).await.remove(0);

    // The instance is gone (its data dir and database with it); restore it elsewhere.
    let home = Home::new(backend).await;
    let kept = home.scratch("export.bin");
    std::fs::copy(&file, &kept).unwrap();
    let account_pk = a.id.account_pk.clone();
    let device_pk = a.id.device_pk.clone();
    drop(a.kill().await);

    let id = home.import(&kept, true).await;
    assert_eq!(id.account_pk, account_pk);
    assert_eq!(id.device_pk, device_pk, "--restore keeps the device key");
    let mut r = TestNode::serve(home, id).await;
    let restored = messages_of(&mut r, &group).await;
    assert_eq!(restored[..], history[..3], "the exported history");
    let new = r.send(&group, b"from the restored device").await;
    let members = r.member_history(&group).await;
    assert_eq!(
        members,
        vec![member],
        "the same device: no new member event"
    );
    let after = r.message_history(&group).await;
    assert_eq!(after.len(), 4);
    assert_eq!(after[3].id(), new);
    assert_eq!(after[3].parents(), vec![restored[2].0.clone()]);
    assert_eq!(
        after[3].store().group_device_pub_key,
        members[0].store().group_device_pub_key
    );
}
