//! Defects found from outside (issue 10), each reproduced against the real binary: unbounded
//! ban durations, two nodes on one data dir or one TCP port, lax configuration types, errors
//! printed twice, colour codes in log files, undecodable requests, admin input read before the
//! token, `HEAD` probes, missing start-up lines, a client that outlives its reader.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

use berty_node::{client::encoding::encode, proto::berty_protocol as pb};
use common::node::{http_get, http_post, http_request, NodeProcess};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::Code;

const ADMIN_TOKEN: &str = "admin-secret";
/// How long a refused start may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    [
        ("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0"),
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn data_arg(dir: &Path) -> String {
    dir.join("data").to_str().unwrap().to_string()
}

async fn spawn(dir: &Path, extra: &[(&str, &str)]) -> NodeProcess {
    NodeProcess::spawn(&["--data-dir", &data_arg(dir)], &env(extra), dir).await
}

/// Runs `berty-node serve` expecting it to refuse to start: its exit status and stderr.
async fn refused_start(args: &[&str], env: &HashMap<String, String>, cwd: &Path) -> Output {
    let command = tokio::process::Command::new(common::node::node_binary())
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(EXIT_TIMEOUT, command)
        .await
        .expect("the refused node exited in time")
        .expect("run berty-node");
    assert!(
        !output.status.success(),
        "the node should have refused to start; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

// ---------------------------------------------------------------------------------------------
// 1. Durations that reach a clock.

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_ban_is_refused_and_the_node_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(dir.path(), &[]).await;
    let other = libp2p::PeerId::random().to_string();

    let (status, body) = http_post(
        node.admin_addr,
        &format!("/admin/v1/peers/{other}/ban?secs=9223372036854775807"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("secs must be from 1 to"), "{body}");

    let (status, body) = http_post(
        node.admin_addr,
        &format!("/admin/v1/peers/{}/ban", node.peer_id),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 400, "a node cannot ban itself: {body}");

    let (status, body) = http_post(
        node.admin_addr,
        &format!("/admin/v1/peers/{other}/ban?secs=315360000"),
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "ten years is allowed: {body}");

    let (status, body) = http_get(node.admin_addr, "/readyz", None).await;
    assert_eq!(status, 200, "the swarm still answers: {body}");
    let reply = node
        .grpc()
        .await
        .instance_get_configuration(pb::instance_get_configuration::Request {})
        .await;
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_penalty_too_long_for_the_clock_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = refused_start(
        &["--data-dir", &data_arg(dir.path())],
        &env(&[("BERTY_NODE__P2P__PENALTY_SECS", "9223372036854775807")]),
        dir.path(),
    )
    .await;
    assert!(
        stderr(&output).contains("p2p.penalty_secs"),
        "{}",
        stderr(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. One data dir, one node.

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_on_the_same_data_dir_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(dir.path(), &[]).await;
    let output = refused_start(
        &["--data-dir", &data_arg(dir.path())],
        &env(&[]),
        dir.path(),
    )
    .await;
    let text = stderr(&output);
    assert!(text.contains("in use by another berty-node"), "{text}");
    assert!(
        text.contains(&format!("pid {}", first.child.id())),
        "names the first node's pid: {text}"
    );
    // `init` on the live node's data dir is refused too.
    let init = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .args(["init", "--data-dir", &data_arg(dir.path())])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(!init.status.success());
    assert!(stderr(&init).contains("in use"), "{}", stderr(&init));

    // The lock dies with its process, however it ends: a SIGKILLed node leaves none behind.
    first.signal("KILL");
    first.wait(EXIT_TIMEOUT).await;
    let again = spawn(dir.path(), &[]).await;
    assert!(!again.peer_id.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn data_dir_problems_are_named_as_such() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = refused_start(
        &["--data-dir", &data_arg(dir.path())],
        &env(&[]),
        dir.path(),
    )
    .await;
    let text = stderr(&output);
    assert!(
        text.contains("data dir") && text.contains("chmod 700"),
        "{text}"
    );
    assert!(!text.contains("key file"), "{text}");

    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let output = refused_start(
        &["--data-dir", file.to_str().unwrap()],
        &env(&[]),
        dir.path(),
    )
    .await;
    let text = stderr(&output);
    assert!(text.contains("is not a directory"), "{text}");
    assert!(!text.contains("File exists"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_database_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _node = spawn(dir.path(), &[]).await;
    let data = dir.path().join("data");
    for name in ["berty-node.db", "node.lock"] {
        let mode = std::fs::metadata(data.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{name} has mode {mode:o}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. One listen port, one node.

#[tokio::test(flavor = "multi_thread")]
async fn a_second_node_on_a_taken_tcp_port_is_refused() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = spawn(dir_a.path(), &[]).await;
    let tcp = a.p2p_addrs.iter().find(|a| a.contains("/tcp/")).unwrap();
    let port = tcp.split('/').nth(4).unwrap();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let output = refused_start(
        &["--data-dir", &data_arg(dir_b.path())],
        &env(&[("BERTY_NODE__P2P__LISTEN", &listen)]),
        dir_b.path(),
    )
    .await;
    let text = stderr(&output);
    assert!(
        text.contains(&format!("TCP port {port} is already in use")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_quic_port_says_why() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let a = spawn(
        dir_a.path(),
        &[("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/udp/0/quic-v1")],
    )
    .await;
    let quic = a.p2p_addrs[0].split("/p2p/").next().unwrap().to_string();
    let output = refused_start(
        &["--data-dir", &data_arg(dir_b.path())],
        &env(&[("BERTY_NODE__P2P__LISTEN", &quic)]),
        dir_b.path(),
    )
    .await;
    let text = stderr(&output);
    let line = text
        .lines()
        .find(|l| l.contains("cannot listen on"))
        .unwrap_or_else(|| panic!("no listen error in {text}"));
    assert!(
        !line.trim_end().ends_with(':'),
        "the cause is missing: {line}"
    );
    assert!(line.to_lowercase().contains("in use"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// 6. Configuration that says something else than what the node would do.

#[tokio::test(flavor = "multi_thread")]
async fn lax_configuration_values_are_refused_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[p2p]\nmdns = \"yes\"\n", "mdns"),
        ("[p2p]\npenalty_secs = 1.5\n", "penalty_secs"),
        ("[log]\nfilter = \"berty_node=[[[\"\n", "log.filter"),
    ];
    for (body, key) in cases {
        let file = dir.path().join("node.toml");
        std::fs::write(&file, body).unwrap();
        let output = refused_start(
            &[
                "--config",
                file.to_str().unwrap(),
                "--data-dir",
                &data_arg(dir.path()),
            ],
            &env(&[]),
            dir.path(),
        )
        .await;
        let text = stderr(&output);
        assert!(text.contains(key), "{body:?}: {text}");
        assert!(!text.contains("Caused by"), "{text}");
        assert_eq!(
            text.matches(key).count(),
            1,
            "said once, not once per cause: {text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Smaller ones.

/// A request message whose bytes are not what its schema says.
#[derive(Clone, PartialEq, prost::Message)]
struct Raw {
    /// Field 2 of `GroupSettingSetGroup.Request` is a `string`; these bytes are not UTF-8.
    #[prost(bytes = "vec", tag = "2")]
    key: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_requests_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(dir.path(), &[]).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/berty.protocol.ProtocolService/GroupSettingSetGroup",
    );
    let codec = tonic_prost::ProstCodec::<Raw, Raw>::default();
    let status = grpc
        .unary(
            tonic::Request::new(Raw {
                key: vec![0xff, 0xfe, 0xfd],
            }),
            path,
            codec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let mut client = node.grpc().await;
    let status = client
        .group_join(pb::group_join::Request {
            reference: Vec::new(),
            meta: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("empty"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_checks_the_token_before_the_input_and_answers_head() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(dir.path(), &[]).await;
    let bad_input = [
        ("POST", "/admin/v1/peers/not-a-peer/ban?secs=abc"),
        ("DELETE", "/admin/v1/peers/not-a-peer/ban"),
        ("GET", "/admin/v1/rendezvous?limit=-4"),
        ("GET", "/admin/v1/stats/series?since=abc"),
        ("POST", "/admin/v1/dial"),
    ];
    for (method, path) in bad_input {
        let (status, body) =
            http_request(node.admin_addr, method, path, None, Some("{not json")).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        let (status, body) =
            http_request(node.admin_addr, method, path, Some("wrong"), Some("{")).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token: {body}");
        let (status, body) =
            http_request(node.admin_addr, method, path, Some(ADMIN_TOKEN), Some("{")).await;
        assert_eq!(status, 400, "{method} {path} with the token: {body}");
        assert!(body.contains("\"error\""), "errors are JSON: {body}");
    }
    for path in ["/healthz", "/readyz", "/metrics", "/", "/dashboard/app.js"] {
        let (status, body) = http_request(node.admin_addr, "HEAD", path, None, None).await;
        assert_eq!(status, 200, "HEAD {path}");
        assert!(body.is_empty(), "HEAD has no body: {body}");
    }
}

/// With `0.0.0.0`, every interface address of every listener is printed at start-up: the
/// printed lines are exactly the addresses the node reports later.
#[tokio::test(flavor = "multi_thread")]
async fn start_up_prints_every_listen_address() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let node = spawn(
            dir.path(),
            &[(
                "BERTY_NODE__P2P__LISTEN",
                "/ip4/0.0.0.0/tcp/0,/ip4/0.0.0.0/udp/0/quic-v1",
            )],
        )
        .await;
        let printed: BTreeSet<String> = node.p2p_addrs.iter().cloned().collect();
        let (status, body) = http_get(node.admin_addr, "/admin/v1/node", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        let info: serde_json::Value = serde_json::from_str(&body).unwrap();
        let reported: BTreeSet<String> = info["listen_addrs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert!(printed.len() >= 2, "{printed:?}");
        assert_eq!(printed, reported);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Papercuts.

#[tokio::test(flavor = "multi_thread")]
async fn logs_written_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .args(["serve", "--data-dir", &data_arg(dir.path())])
        .env_remove("RUST_LOG")
        .envs(env(&[]))
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .unwrap();
    let stdout = tokio::process::ChildStdout::from_std(child.stdout.take().unwrap()).unwrap();
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.starts_with("admin_listen ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO"), "the log has lines: {text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file: {text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_piped_into_head_exits_with_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(dir.path(), &[]).await;
    let mut client = node.grpc().await;
    let group = client
        .group_create(pb::group_create::Request {})
        .await
        .unwrap()
        .into_inner()
        .group_pub_key;
    client
        .group_message_send(pb::group_message_send::Request {
            group_pub_key: group.clone(),
            payload: b"one".to_vec(),
        })
        .await
        .unwrap();

    let mut subscriber = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"))
        .args([
            "client",
            "--addr",
            &node.grpc_addr.to_string(),
            "group",
            "subscribe",
            // A key whose encoding starts with '-' would read as an option.
            "--",
            &encode(&group),
        ])
        .env_remove("BERTY_NODE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = subscriber.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let Some(first) = lines.next_line().await.unwrap() else {
        let mut stderr = String::new();
        if let Some(mut err) = subscriber.stderr.take() {
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut err, &mut stderr).await;
        }
        panic!("the subscriber printed nothing; its stderr: {stderr}");
    };
    assert!(first.contains("\"payload_text\":\"one\""), "{first}");
    // Like `head -n 1`: the reader goes away after one line, and no other event comes.
    drop(lines);
    let status = tokio::time::timeout(Duration::from_secs(20), subscriber.wait())
        .await
        .expect("the subscriber exits once nobody reads it")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Two data dirs holding one account (a copy) on one PostgreSQL database: the second node is
/// refused while the first serves the account, and starts once the first is gone.
#[tokio::test(flavor = "multi_thread")]
async fn one_account_is_served_by_one_live_node_on_a_shared_postgres() {
    let database = common::postgres::TestDatabase::create().await;
    let url = database.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let a = spawn(dir.path(), &[("BERTY_NODE__STORAGE__DATABASE_URL", &url)]).await;
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("data");
    std::fs::create_dir(&copied).unwrap();
    std::fs::set_permissions(&copied, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for name in ["account.key", "storage.key"] {
        std::fs::copy(dir.path().join("data").join(name), copied.join(name)).unwrap();
    }
    let output = refused_start(
        &["--data-dir", &data_arg(copy.path())],
        &env(&[("BERTY_NODE__STORAGE__DATABASE_URL", &url)]),
        copy.path(),
    )
    .await;
    let text = stderr(&output);
    assert!(
        text.contains("already served by another live node"),
        "{text}"
    );

    a.signal("TERM");
    a.wait(EXIT_TIMEOUT).await;
    let b = spawn(copy.path(), &[("BERTY_NODE__STORAGE__DATABASE_URL", &url)]).await;
    assert!(!b.peer_id.is_empty());
}

/// With `api.token`, reflection (which lists what the API can do) needs the token too.
#[tokio::test(flavor = "multi_thread")]
async fn reflection_is_behind_the_api_token() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    let dir = tempfile::tempdir().unwrap();
    let node = spawn(dir.path(), &[("BERTY_NODE__API__TOKEN", "api-secret")]).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let status = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}
