//! The store-and-forward mirror between separate node processes on loopback, on SQLite and on
//! PostgreSQL: a member registers a group with a mirror, goes offline, and another member who
//! knows only the mirror reads everything; the mirror holds nothing readable; tokens, quotas
//! and the role switch give clear errors; the admin views count what is stored.
//! Every wait is on an event or a state polled with a deadline, never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{path::Path, time::Duration};

use berty_node::proto::{
    node_api::{self as api, mirror_service_client::MirrorServiceClient},
    wire,
};
use common::{
    node::{http_get, http_post, http_request},
    protocol::{
        both_backends, ids, messages, payload, take, within, Backend, Home, Range, TestNode,
    },
};
use prost::Message as _;
use tonic::Code;

both_backends!(
    a_mirror_keeps_a_group_for_members_who_are_offline,
    tokens_quotas_and_the_role_switch_give_clear_errors,
    the_byte_quota_stops_new_entries,
    the_cli_registers_lists_and_unregisters_and_fails_clearly,
);

/// Admin token of the nodes in these tests.
const ADMIN_TOKEN: &str = "mirror-test";
/// Messages A writes while B is offline.
const WHILE_AWAY: usize = 1000;
/// Metadata entries of a two-member group: each device's binding and its chain key shared
/// with its own member, then each shares its key with the other member.
const METADATA_ENTRIES: u64 = 6;

/// A node with replication and the admin API on; `extra` adds environment.
async fn node(backend: Backend, extra: &[(&str, &str)]) -> TestNode {
    let home = Home::new(backend).await;
    let id = home.init().await;
    serve(home, id, extra).await
}

async fn serve(home: Home, id: common::protocol::Identity, extra: &[(&str, &str)]) -> TestNode {
    let mut env = vec![
        ("BERTY_NODE__P2P__REPLICATION", "true"),
        ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
    ];
    env.extend_from_slice(extra);
    TestNode::serve_with(home, id, &env).await
}

async fn mirror_client(node: &TestNode) -> MirrorServiceClient<tonic::transport::Channel> {
    MirrorServiceClient::connect(format!("http://{}", node.process.grpc_addr))
        .await
        .expect("connect gRPC")
}

/// Issues a mirror token on `mirror` with `body`; returns (id, token).
async fn issue_token(mirror: &TestNode, body: Option<&str>) -> (String, String) {
    let (status, reply) = within(
        "issue a token",
        http_post(
            mirror.process.admin_addr,
            "/admin/v1/mirror/tokens",
            Some(ADMIN_TOKEN),
            body,
        ),
    )
    .await;
    assert_eq!(status, 201, "POST /admin/v1/mirror/tokens: {reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    (
        reply["id"].as_str().unwrap().to_owned(),
        reply["token"].as_str().unwrap().to_owned(),
    )
}

async fn admin_json(node: &TestNode, path: &str) -> serde_json::Value {
    let (status, body) = within(
        path,
        http_get(node.process.admin_addr, path, Some(ADMIN_TOKEN)),
    )
    .await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Polls `mirror`'s groups view until its one group holds `entries` entries.
async fn wait_for_mirrored_entries(mirror: &TestNode, entries: u64) -> serde_json::Value {
    within("the mirror stores every entry", async {
        loop {
            let groups = admin_json(mirror, "/admin/v1/mirror/groups").await;
            if groups[0]["entries"].as_u64() == Some(entries) {
                return groups;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

async fn register(
    member: &TestNode,
    group: &[u8],
    mirror: &TestNode,
    token: &str,
) -> Result<api::mirror_register::Reply, tonic::Status> {
    let addr = mirror.process.p2p_addrs[0].clone();
    mirror_client(member)
        .await
        .mirror_register(api::mirror_register::Request {
            group_pk: group.to_vec(),
            mirror_addr: addr,
            token: token.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

fn text(i: usize) -> Vec<u8> {
    format!("mirrored-plaintext-{i:05}").into_bytes()
}

/// The ids of a group's messages in the log's total order, once `n` are there.
async fn ordered_messages(node: &mut TestNode, group: &[u8], n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut stream = messages(&mut node.client, group, Range::default())
        .await
        .expect("subscribe");
    let replies = take(&mut stream, n).await;
    let events: Vec<_> = replies.iter().map(|r| r.event.clone().unwrap()).collect();
    ids(&events)
        .into_iter()
        .zip(replies.iter().map(|r| payload(r).to_vec()))
        .collect()
}

/// A and B share a group: B joined through A and read A's first message (so it holds A's
/// chain key).
async fn two_members(backend: Backend) -> (TestNode, TestNode, Vec<u8>) {
    let mut a = node(backend, &[]).await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    let bootstrap_a = a.process.p2p_addrs[0].clone();
    let mut b = node(
        backend,
        &[("BERTY_NODE__P2P__BOOTSTRAP", bootstrap_a.as_str())],
    )
    .await;
    b.join(&invite, b"b").await;
    a.send(&group, &text(0)).await;
    within(
        "B reads A's first message",
        ordered_messages(&mut b, &group, 1),
    )
    .await;
    (a, b, group)
}

async fn a_mirror_keeps_a_group_for_members_who_are_offline(backend: Backend) {
    let mirror = node(backend, &[]).await;
    let (mut a, b, group) = two_members(backend).await;

    let (token_id, token) = issue_token(&mirror, Some(r#"{"label": "a's groups"}"#)).await;
    let reply = within(
        "A registers the group",
        register(&a, &group, &mirror, &token),
    )
    .await
    .expect("registration");
    assert_eq!(reply.mirror_peer_id, mirror.process.peer_id);
    assert!(!reply.already);
    let again = register(&a, &group, &mirror, &token)
        .await
        .expect("idempotent");
    assert!(again.already, "a second registration changes nothing");
    let listed = mirror_client(&a)
        .await
        .mirror_list(api::mirror_list::Request {
            group_pk: group.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.mirrors.len(), 1);
    assert_eq!(listed.mirrors[0].peer_id, mirror.process.peer_id);

    let (b_home, b_id) = b.kill().await;
    let mut sends = Vec::new();
    for i in 1..=WHILE_AWAY {
        let mut client = a.client.clone();
        let group = group.clone();
        sends.push(tokio::spawn(async move {
            common::protocol::send(&mut client, &group, &text(i))
                .await
                .expect("send")
        }));
        if sends.len() >= 64 {
            for s in sends.drain(..) {
                s.await.unwrap();
            }
        }
    }
    for s in sends {
        s.await.unwrap();
    }
    let expected = within(
        "A's history",
        ordered_messages(&mut a, &group, WHILE_AWAY + 1),
    )
    .await;
    let groups = wait_for_mirrored_entries(&mirror, WHILE_AWAY as u64 + 1 + METADATA_ENTRIES).await;
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["token_id"], token_id.as_str());
    assert!(groups[0]["bytes"].as_u64().unwrap() > 0);
    let tokens = admin_json(&mirror, "/admin/v1/mirror/tokens").await;
    assert_eq!(tokens[0]["id"], token_id.as_str());
    assert_eq!(tokens[0]["groups"], 1);
    assert_eq!(tokens[0]["bytes"], groups[0]["bytes"]);
    assert!(
        tokens[0].get("token").is_none(),
        "the token is never shown again"
    );

    let export_path = a.home.scratch("a.export");
    let export = a.export_to(&export_path).await;
    a.kill().await;

    // B comes back knowing only the mirror.
    let bootstrap_m = mirror.process.p2p_addrs[0].clone();
    let mut b = serve(
        b_home,
        b_id,
        &[("BERTY_NODE__P2P__BOOTSTRAP", bootstrap_m.as_str())],
    )
    .await;
    let got = within(
        "B reads everything through the mirror",
        ordered_messages(&mut b, &group, WHILE_AWAY + 1),
    )
    .await;
    assert_eq!(got, expected, "B reads A's messages in the log's order");

    assert_mirror_holds_nothing_readable(&mirror, &export).await;
}

/// Scans the mirror's data dir and database for the messages' plaintexts and for the secrets
/// in A's export (group secret, device seed, chain keys).
async fn assert_mirror_holds_nothing_readable(mirror: &TestNode, export: &[u8]) {
    let export = wire::Export::decode(export).unwrap();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for value in &export.values {
        if value.key.starts_with("group/") {
            let record = wire::GroupRecord::decode(value.value.as_slice()).unwrap();
            secrets.push((format!("{} secret", value.key), record.group_secret));
            secrets.push((format!("{} device seed", value.key), record.device_seed));
        } else if value.key.starts_with("chain") || value.key.starts_with("recv/") {
            // version (1) || group pk (32) || chain key (32) || ...
            secrets.push((value.key.clone(), value.value[33..65].to_vec()));
        }
    }
    assert!(secrets.len() >= 4, "the export holds the group's secrets");
    let mut haystack = Vec::new();
    for entry in walk(&mirror.home.data_dir()) {
        haystack.extend(std::fs::read(entry).unwrap());
    }
    if let Some(url) = mirror_database_url(mirror) {
        haystack.extend(dump_postgres(&url).await);
    }
    for i in [0, 1, WHILE_AWAY / 2, WHILE_AWAY] {
        assert!(
            !contains(&haystack, &text(i)),
            "the mirror holds message {i} in the clear"
        );
    }
    for (what, secret) in secrets {
        assert_eq!(secret.len(), 32, "{what}");
        assert!(!contains(&haystack, &secret), "the mirror holds {what}");
        let hex = hex::encode(&secret);
        assert!(
            !contains(&haystack, hex.as_bytes()),
            "the mirror holds {what} (hex)"
        );
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn mirror_database_url(node: &TestNode) -> Option<String> {
    let url = node.home.database_url();
    (!url.is_empty()).then(|| url.to_owned())
}

/// Every row of every table of the database, as text (bytea in hex) and raw bytes.
async fn dump_postgres(url: &str) -> Vec<u8> {
    use sqlx::{Connection as _, Row as _};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get::<String, _>(0))
    .collect();
    let mut out = Vec::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT t::text FROM \"{table}\" t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for row in rows {
            let text: String = row.get(0);
            out.extend(text.into_bytes());
        }
    }
    out
}

async fn tokens_quotas_and_the_role_switch_give_clear_errors(backend: Backend) {
    let mirror = node(backend, &[]).await;
    let mut a = node(backend, &[]).await;
    let first = a.create_group().await;
    let second = a.create_group().await;

    // A wrong token.
    let wrong = register(&a, &first, &mirror, "bnm1_not-a-token")
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    assert!(wrong.message().contains("token"), "{}", wrong.message());

    // A group quota of one.
    let (id, token) = issue_token(&mirror, Some(r#"{"max_groups": 1}"#)).await;
    register(&a, &first, &mirror, &token)
        .await
        .expect("first group");
    let over = register(&a, &second, &mirror, &token).await.unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");

    // A revoked token: its group is gone, and it registers nothing more.
    let path = format!("/admin/v1/mirror/tokens/{id}");
    let (status, body) = http_request(
        mirror.process.admin_addr,
        "DELETE",
        &path,
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_request(
        mirror.process.admin_addr,
        "DELETE",
        &path,
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404, "a token is revoked once");
    let revoked = register(&a, &second, &mirror, &token).await.unwrap_err();
    assert_eq!(revoked.code(), Code::PermissionDenied, "{revoked:?}");
    let groups = admin_json(&mirror, "/admin/v1/mirror/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 0, "{groups}");

    // A byte quota already used up (zero bytes allowed).
    let (_, empty) = issue_token(&mirror, Some(r#"{"max_bytes": 0}"#)).await;
    let full = register(&a, &second, &mirror, &empty).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    assert!(full.message().contains("byte"), "{}", full.message());

    // Unregistering, and what the CLI-facing errors say for malformed input.
    let (_, token) = issue_token(&mirror, None).await;
    register(&a, &second, &mirror, &token)
        .await
        .expect("second group");
    let mut client = mirror_client(&a).await;
    client
        .mirror_unregister(api::mirror_unregister::Request {
            group_pk: second.clone(),
            mirror_peer_id: mirror.process.peer_id.clone(),
        })
        .await
        .expect("unregister");
    let listed = client
        .mirror_list(api::mirror_list::Request {
            group_pk: second.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.mirrors.is_empty());
    let groups = admin_json(&mirror, "/admin/v1/mirror/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 0, "{groups}");
    let bad = client
        .mirror_register(api::mirror_register::Request {
            group_pk: second.clone(),
            mirror_addr: "/ip4/127.0.0.1/tcp/1".into(),
            token: token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");

    // A node with the role off refuses, and says so; its admin routes say so too.
    let off = node(backend, &[("BERTY_NODE__MIRROR__ENABLED", "false")]).await;
    let disabled = register(&a, &second, &off, &token).await.unwrap_err();
    assert_eq!(disabled.code(), Code::FailedPrecondition, "{disabled:?}");
    assert!(
        disabled.message().contains("mirror.enabled"),
        "{}",
        disabled.message()
    );
    let (status, _) = http_get(
        off.process.admin_addr,
        "/admin/v1/mirror/groups",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 404);
}

/// Two mirror nodes on one PostgreSQL database: a group registered through one is served by
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mirrors_on_one_postgres_database_serve_the_same_groups() {
    let backend = Backend::Postgres;
    let first = node(backend, &[]).await;
    let shared = first.home.database_url().to_owned();
    let second = node(
        backend,
        &[("BERTY_NODE__STORAGE__DATABASE_URL", shared.as_str())],
    )
    .await;
    let (mut a, b, group) = two_members(backend).await;

    let (_, token) = issue_token(&first, None).await;
    within(
        "A registers with the first mirror",
        register(&a, &group, &first, &token),
    )
    .await
    .expect("registration");
    let (b_home, b_id) = b.kill().await;
    for i in 1..=20 {
        a.send(&group, &text(i)).await;
    }
    let expected = within("A's history", ordered_messages(&mut a, &group, 21)).await;
    wait_for_mirrored_entries(&first, 21 + METADATA_ENTRIES).await;
    // The second node sees the group and its tokens in the shared database, and serves the
    // group once its reload (every 2 s) picked it up.
    let tokens = admin_json(&second, "/admin/v1/mirror/tokens").await;
    assert_eq!(tokens.as_array().unwrap().len(), 1, "{tokens}");
    within("the second mirror serves the group", async {
        while common::protocol::metric(&second.process, "berty_node_mirror_groups").await < 1.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_a_home, _a_id) = a.kill().await;
    let (_first_home, _first_id) = first.kill().await;

    let bootstrap = second.process.p2p_addrs[0].clone();
    let mut b = serve(
        b_home,
        b_id,
        &[("BERTY_NODE__P2P__BOOTSTRAP", bootstrap.as_str())],
    )
    .await;
    let got = within(
        "B reads everything through the second mirror",
        ordered_messages(&mut b, &group, 21),
    )
    .await;
    assert_eq!(got, expected);
    // The nodes stop before the first mirror's home drops the shared database.
    drop(b);
    drop(second);
}

/// Past its token's byte quota, the mirror takes no new entries of the token's groups, counts
/// the refusals, and its admin views show the usage at the quota.
async fn the_byte_quota_stops_new_entries(backend: Backend) {
    const QUOTA: u64 = 4_000;
    let mirror = node(backend, &[]).await;
    let mut a = node(backend, &[]).await;
    let group = a.create_group().await;
    let (_, token) = issue_token(&mirror, Some(&format!(r#"{{"max_bytes": {QUOTA}}}"#))).await;
    register(&a, &group, &mirror, &token)
        .await
        .expect("registration");
    for i in 0..40 {
        a.send(&group, &text(i)).await;
    }
    within("the mirror refuses entries past the quota", async {
        while common::protocol::metric(&mirror.process, "berty_node_mirror_quota_refusals_total")
            .await
            < 1.0
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let groups = admin_json(&mirror, "/admin/v1/mirror/groups").await;
    let bytes = groups[0]["bytes"].as_u64().unwrap();
    let entries = groups[0]["entries"].as_u64().unwrap();
    assert!(
        bytes <= QUOTA,
        "{bytes} bytes stored under a {QUOTA}-byte quota"
    );
    assert!(
        entries < 42,
        "{entries} entries stored: the quota stopped some"
    );
    let tokens = admin_json(&mirror, "/admin/v1/mirror/tokens").await;
    assert_eq!(tokens[0]["bytes"].as_u64(), Some(bytes));
    assert_eq!(tokens[0]["max_bytes"].as_u64(), Some(QUOTA));
}

/// Runs `berty-node client --addr <node> <args>`; returns its exit code, stdout and stderr.
async fn cli(node: &TestNode, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .arg("client")
        .arg("--addr")
        .arg(format!("http://{}", node.process.grpc_addr))
        .args(args)
        .env_remove("BERTY_NODE_ADDR")
        .env_remove("BERTY_NODE_TOKEN")
        .env_remove("BERTY_NODE_TOKEN_FILE")
        .output();
    let output = within("the client command", output)
        .await
        .expect("run the client");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `berty-node client mirror ...` as an operator's user runs it: a wrong token exits 1 with
/// the status on stderr, a token file works, `list` prints one JSON line per mirror.
async fn the_cli_registers_lists_and_unregisters_and_fails_clearly(backend: Backend) {
    let mirror = node(backend, &[]).await;
    let mut a = node(backend, &[]).await;
    // Hex: a base64url key may start with '-', which a shell user would have to put after `--`.
    let group = format!("hex:{}", hex::encode(a.create_group().await));
    let addr = mirror.process.p2p_addrs[0].clone();

    let (code, _, err) = cli(
        &a,
        &[
            "mirror",
            "register",
            &group,
            &addr,
            "--mirror-token",
            "bnm1_wrong",
        ],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("PERMISSION_DENIED") && err.contains("token"),
        "{err}"
    );

    let (_, token) = issue_token(&mirror, None).await;
    let file = a.home.scratch("mirror.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (code, out, err) = cli(
        &a,
        &[
            "mirror",
            "register",
            &group,
            &addr,
            "--mirror-token-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), mirror.process.peer_id);

    let (code, out, err) = cli(&a, &["mirror", "list", &group]).await;
    assert_eq!(code, 0, "{err}");
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["peer_id"], mirror.process.peer_id.as_str());

    let (code, _, err) = cli(
        &a,
        &["mirror", "unregister", &group, &mirror.process.peer_id],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&a, &["mirror", "list", &group]).await;
    assert_eq!((code, out.trim()), (0, ""));
    let (code, _, err) = cli(&a, &["mirror", "register", &group, &addr]).await;
    assert_eq!(code, 2, "a token is required: {err}");
}
