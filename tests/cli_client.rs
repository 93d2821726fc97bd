//! `berty-node client` as a person runs it: the real binary as a subprocess, against the real
//! node (configuration, bearer token) and against a scripted in-process `ProtocolService` (every
//! output form, streams, errors, Ctrl-C, exports larger than gRPC's default 4 MiB limit).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashMap,
    pin::Pin,
    process::{Output, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use berty_node::{
    api::auth::BearerAuth,
    client::encoding::encode,
    proto::berty_protocol::{
        self as pb,
        protocol_service_server::{ProtocolService, ProtocolServiceServer},
    },
};
use common::node::NodeProcess;
use futures::{stream, Stream, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
};
use tonic::{Request, Response, Status};

/// How long one client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The token of the scripted service.
const TOKEN: &str = "s3cret-token";

/// Runs `berty-node client --addr <addr> <args>` with a clean environment plus `env`.
async fn client(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let command = client_command(addr, args, env).output();
    tokio::time::timeout(COMMAND_TIMEOUT, command)
        .await
        .expect("client finished in time")
        .expect("run the client")
}

fn client_command(addr: &str, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_berty-node"));
    command
        .arg("client")
        .arg("--addr")
        .arg(addr)
        .args(args)
        .env_remove("BERTY_NODE_ADDR")
        .env_remove("BERTY_NODE_TOKEN")
        .env_remove("BERTY_NODE_TOKEN_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Against the real node.

fn node_env(token: Option<&str>) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("BERTY_NODE__P2P__LISTEN", "/ip4/127.0.0.1/tcp/0"),
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__API__GRPC_LISTEN", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(token) = token {
        env.insert("BERTY_NODE__API__TOKEN".to_string(), token.to_string());
    }
    env
}

async fn spawn_node(dir: &tempfile::TempDir, token: Option<&str>) -> NodeProcess {
    let data = dir.path().join("data");
    NodeProcess::spawn(
        &["--data-dir", data.to_str().unwrap()],
        &node_env(token),
        dir.path(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn config_prints_the_nodes_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir, None).await;
    let output = client(&format!("http://{}", node.grpc_addr), &["config"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let config: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(config["peer_id"], node.peer_id.as_str());
    let listeners = config["listeners"].as_array().unwrap();
    assert!(!listeners.is_empty(), "{config}");
    assert!(listeners.iter().all(|l| l
        .as_str()
        .unwrap()
        .ends_with(&format!("/p2p/{}", node.peer_id))));
    assert_eq!(config["ble_enabled"], "Unavailable");
    // `host:port` without a scheme works too.
    let output = client(&node.grpc_addr.to_string(), &["config"], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_token_is_sent_and_a_wrong_one_is_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&dir, Some("the-right-token")).await;
    let addr = format!("http://{}", node.grpc_addr);

    let wrong = client(&addr, &["--token", "a-wrong-token", "config"], &[]).await;
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).starts_with("error: UNAUTHENTICATED: "),
        "{}",
        stderr(&wrong)
    );
    assert!(wrong.stdout.is_empty());

    let missing = client(&addr, &["config"], &[]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("UNAUTHENTICATED"));

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "the-right-token\n").unwrap();
    let from_file = client(
        &addr,
        &["config", "--token-file", token_file.to_str().unwrap()],
        &[],
    )
    .await;
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    let config: Value = serde_json::from_str(&stdout(&from_file)).unwrap();
    assert_eq!(config["peer_id"], node.peer_id.as_str());

    let from_env = client(
        &addr,
        &["config"],
        &[("BERTY_NODE_TOKEN", "the-right-token")],
    )
    .await;
    assert!(from_env.status.success(), "{}", stderr(&from_env));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_node_is_unavailable() {
    // Bind then drop a listener, so the port is very likely closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = client(&format!("http://127.0.0.1:{port}"), &["config"], &[]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("error: UNAVAILABLE: cannot connect to http://127.0.0.1:"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_and_name_the_argument() {
    let addr = "http://127.0.0.1:9";
    let output = client(addr, &["group", "invite", "not-a-key!"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("<GROUP>") && text.contains("not base64url, base64 or hex"),
        "{text}"
    );

    let output = client(
        addr,
        &["group", "subscribe", &encode(&[1; 32]), "--since", "AAAA"],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--since <ID>"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("expected 32 bytes, got 3 bytes"));

    let output = client(addr, &["group", "send", &encode(&[1; 32])], &[]).await;
    assert_eq!(output.status.code(), Some(2), "a payload is required");

    let output = client("https://node:9091", &["config"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("TLS"));
}

// ---------------------------------------------------------------------------------------------
// Against a scripted service, for every output form.

type Events<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// Answers with fixed values and records what it received (`method`, `authorization`, request).
#[derive(Clone, Default)]
struct ScriptedNode {
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl ScriptedNode {
    fn record<T: std::fmt::Debug>(&self, method: &str, request: &Request<T>) {
        let auth = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        self.seen.lock().unwrap().push((
            method.to_string(),
            auth,
            format!("{:?}", request.get_ref()),
        ));
    }

    fn requests(&self, method: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _, _)| m == method)
            .map(|(_, _, r)| r.clone())
            .collect()
    }
}

const GROUP: [u8; 32] = [1; 32];
const EVENT_ID: [u8; 32] = [9; 32];
const EXPORT_LEN: usize = 5 * 1024 * 1024;

fn group_event(n: u8) -> pb::GroupStoreEvent {
    pb::GroupStoreEvent {
        event_base: Some(pb::EventBase {
            id: vec![n; 32],
            parent_ids: if n > 1 {
                vec![vec![n - 1; 32]]
            } else {
                Vec::new()
            },
        }),
        group_pub_key: GROUP.to_vec(),
        group_member_pub_key: vec![2; 32],
        group_device_pub_key: vec![3; 32],
        account_pub_key: vec![4; 32],
        cursor: u64::from(n),
    }
}

fn message(n: u8) -> pb::group_message_subscribe::Reply {
    pb::group_message_subscribe::Reply {
        event: Some(pb::GroupMessageStoreEvent {
            group_store_event: Some(group_event(n)),
            payload: format!("message {n}").into_bytes(),
        }),
    }
}

/// Writes the impl: the calls given, plus `UNIMPLEMENTED` for the others (a macro so that
/// `async_trait` sees the stubs expanded).
macro_rules! scripted_service {
    (
        answered { $($answered:tt)* }
        unimplemented { $($name:ident: $module:ident),* $(,)? }
    ) => {
        #[tonic::async_trait]
        impl ProtocolService for ScriptedNode {
            $($answered)*
            $(
                async fn $name(
                    &self,
                    _: Request<pb::$module::Request>,
                ) -> Result<Response<pb::$module::Reply>, Status> {
                    Err(Status::unimplemented(stringify!($name)))
                }
            )*
        }
    };
}

scripted_service! {
    answered {
        type AccountSubscribeStream = Events<pb::account_subscribe::Reply>;
        type GroupSettingSubscribeStream = Events<pb::group_setting_store_subscribe::Reply>;
        type GroupMessageSubscribeStream = Events<pb::group_message_subscribe::Reply>;
        type GroupMemberSubscribeStream = Events<pb::group_member_subscribe::Reply>;

        async fn instance_export_data(
            &self,
            request: Request<pb::instance_export_data::Request>,
        ) -> Result<Response<pb::instance_export_data::Reply>, Status> {
            self.record("export", &request);
            Ok(Response::new(pb::instance_export_data::Reply {
                exported_data: vec![0xab; EXPORT_LEN],
            }))
        }

        async fn group_create(
            &self,
            request: Request<pb::group_create::Request>,
        ) -> Result<Response<pb::group_create::Reply>, Status> {
            self.record("create", &request);
            Ok(Response::new(pb::group_create::Reply { group_pub_key: GROUP.to_vec() }))
        }

        async fn group_invite(
            &self,
            request: Request<pb::group_invite::Request>,
        ) -> Result<Response<pb::group_invite::Reply>, Status> {
            self.record("invite", &request);
            let mut reference = b"reference of ".to_vec();
            reference.extend_from_slice(&request.get_ref().group_pub_key);
            Ok(Response::new(pb::group_invite::Reply { reference }))
        }

        async fn group_join(
            &self,
            request: Request<pb::group_join::Request>,
        ) -> Result<Response<pb::group_join::Reply>, Status> {
            self.record("join", &request);
            Ok(Response::new(pb::group_join::Reply {}))
        }

        async fn group_leave(
            &self,
            request: Request<pb::group_leave::Request>,
        ) -> Result<Response<pb::group_leave::Reply>, Status> {
            self.record("leave", &request);
            Err(Status::failed_precondition("not a member of this group"))
        }

        async fn group_message_send(
            &self,
            request: Request<pb::group_message_send::Request>,
        ) -> Result<Response<pb::group_message_send::Reply>, Status> {
            self.record("send", &request);
            Ok(Response::new(pb::group_message_send::Reply { event_id: EVENT_ID.to_vec() }))
        }

        async fn contact_request_reference(
            &self,
            request: Request<pb::contact_request_reference::Request>,
        ) -> Result<Response<pb::contact_request_reference::Reply>, Status> {
            self.record("reference", &request);
            Ok(Response::new(pb::contact_request_reference::Reply { reference: Vec::new() }))
        }

        async fn contact_request_accept(
            &self,
            request: Request<pb::contact_request_accept::Request>,
        ) -> Result<Response<pb::contact_request_accept::Reply>, Status> {
            self.record("accept", &request);
            Ok(Response::new(pb::contact_request_accept::Reply {}))
        }

        async fn group_setting_set_member(
            &self,
            request: Request<pb::group_setting_set_member::Request>,
        ) -> Result<Response<pb::group_setting_set_member::Reply>, Status> {
            self.record("set-member", &request);
            Ok(Response::new(pb::group_setting_set_member::Reply {}))
        }

        async fn account_subscribe(
            &self,
            request: Request<pb::account_subscribe::Request>,
        ) -> Result<Response<Self::AccountSubscribeStream>, Status> {
            self.record("account subscribe", &request);
            let event = pb::AccountStoreEvent {
                subject_public_key_bytes: GROUP.to_vec(),
                data: Vec::new(),
                event_base: Some(pb::EventBase { id: vec![5; 32], parent_ids: Vec::new() }),
                event_type: pb::AccountEventType::GroupJoined as i32,
                cursor: 1,
            };
            let replies = vec![
                Ok(pb::account_subscribe::Reply { event: Some(event) }),
                Err(Status::unavailable("storage is down")),
            ];
            Ok(Response::new(Box::pin(stream::iter(replies))))
        }

        async fn group_message_subscribe(
            &self,
            request: Request<pb::group_message_subscribe::Request>,
        ) -> Result<Response<Self::GroupMessageSubscribeStream>, Status> {
            self.record("message subscribe", &request);
            let history = stream::iter([Ok(message(1)), Ok(message(2))]);
            if request.get_ref().until.is_empty() {
                // History, then a live tail that stays open.
                Ok(Response::new(Box::pin(history.chain(stream::pending()))))
            } else {
                Ok(Response::new(Box::pin(history)))
            }
        }

        async fn group_member_subscribe(
            &self,
            request: Request<pb::group_member_subscribe::Request>,
        ) -> Result<Response<Self::GroupMemberSubscribeStream>, Status> {
            self.record("member subscribe", &request);
            Err(Status::not_found("unknown group"))
        }

        async fn group_setting_subscribe(
            &self,
            request: Request<pb::group_setting_store_subscribe::Request>,
        ) -> Result<Response<Self::GroupSettingSubscribeStream>, Status> {
            self.record("setting subscribe", &request);
            let event = pb::GroupSettingStoreEvent {
                group_store_event: Some(group_event(1)),
                setting_type: pb::GroupSettingStoreSettingType::Group as i32,
                key: "name".to_string(),
                value: b"Friends".to_vec(),
            };
            let reply = pb::group_setting_store_subscribe::Reply { event: Some(event) };
            Ok(Response::new(Box::pin(stream::iter([Ok(reply)]))))
        }
    }
    unimplemented {
        instance_get_configuration: instance_get_configuration,
        device_pair: device_pair,
        contact_request_disable: contact_request_disable,
        contact_request_enable: contact_request_enable,
        contact_request_reset_reference: contact_request_reset_link,
        contact_request_enqueue: contact_request_enqueue,
        contact_remove: contact_remove,
        contact_block: contact_block,
        contact_unblock: contact_unblock,
        group_setting_set_group: group_setting_set_group,
        account_append_app_specific_event: account_append_app_specific_event,
    }
}

/// Serves a [`ScriptedNode`] behind the node's own bearer-token check, on port 0.
async fn scripted() -> (String, ScriptedNode) {
    let node = ScriptedNode::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let service = ProtocolServiceServer::with_interceptor(
        node.clone(),
        BearerAuth::new(Some(TOKEN.to_string())),
    );
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (addr, node)
}

/// Runs the client against the scripted service with the right token.
async fn run(addr: &str, args: &[&str]) -> Output {
    client(addr, args, &[("BERTY_NODE_TOKEN", TOKEN)]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_references_and_ids_print_alone_and_paste_back() {
    let (addr, node) = scripted().await;

    let created = run(&addr, &["group", "create"]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(stdout(&created), format!("{}\n", encode(&GROUP)));
    let group = stdout(&created).trim().to_string();

    let invited = run(&addr, &["group", "invite", &group]).await;
    assert!(invited.status.success(), "{}", stderr(&invited));
    let reference = stdout(&invited).trim().to_string();
    let mut expected = b"reference of ".to_vec();
    expected.extend_from_slice(&GROUP);
    assert_eq!(reference, encode(&expected));

    // `client group join $(client group invite GROUP)`
    let joined = run(&addr, &["group", "join", &reference, "--meta", "Alice"]).await;
    assert!(joined.status.success(), "{}", stderr(&joined));
    assert!(joined.stdout.is_empty());
    assert_eq!(
        node.requests("join"),
        [format!(
            "Request {{ reference: {expected:?}, meta: {:?} }}",
            b"Alice"
        )]
    );

    let sent = run(&addr, &["group", "send", &group, "héllo"]).await;
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert_eq!(stdout(&sent), format!("{}\n", encode(&EVENT_ID)));
    assert!(node.requests("send")[0].contains(&format!("payload: {:?}", "héllo".as_bytes())));

    // A hex key (as `berty-node init` prints) and a base64 value.
    let set = run(
        &addr,
        &[
            "group",
            "set-member",
            &hex::encode(GROUP),
            "name",
            "--value-base64",
            "AP8=",
        ],
    )
    .await;
    assert!(set.status.success(), "{}", stderr(&set));
    assert_eq!(
        node.requests("set-member"),
        [format!(
            "Request {{ group_pub_key: {:?}, key: \"name\", value: [0, 255] }}",
            GROUP
        )]
    );

    let accepted = run(&addr, &["contact", "accept", &encode(&[4; 32])]).await;
    assert!(accepted.status.success(), "{}", stderr(&accepted));

    // Disabled requests: an empty line, and a note on stderr.
    let reference = run(&addr, &["contact", "reference"]).await;
    assert!(reference.status.success());
    assert_eq!(stdout(&reference), "\n");
    assert!(stderr(&reference).contains("contact requests are disabled"));

    // Every call carried the token.
    let seen = node.seen.lock().unwrap().clone();
    assert!(seen.len() >= 7, "{seen:?}");
    assert!(seen
        .iter()
        .all(|(_, auth, _)| auth == &format!("Bearer {TOKEN}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn statuses_exit_1_with_the_code_on_stderr() {
    let (addr, _node) = scripted().await;
    let group = encode(&GROUP);

    let left = run(&addr, &["group", "leave", &group]).await;
    assert_eq!(left.status.code(), Some(1));
    assert_eq!(
        stderr(&left),
        "error: FAILED_PRECONDITION: not a member of this group\n"
    );

    let unimplemented = run(&addr, &["device", "pair"]).await;
    assert_eq!(unimplemented.status.code(), Some(1));
    assert_eq!(
        stderr(&unimplemented),
        "error: UNIMPLEMENTED: device_pair\n"
    );

    let members = run(&addr, &["group", "members", &group]).await;
    assert_eq!(members.status.code(), Some(1));
    assert_eq!(stderr(&members), "error: NOT_FOUND: unknown group\n");

    let unauthenticated = client(&addr, &["group", "create"], &[]).await;
    assert_eq!(unauthenticated.status.code(), Some(1));
    assert!(stderr(&unauthenticated).starts_with("error: UNAUTHENTICATED: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_print_one_json_object_per_event() {
    let (addr, node) = scripted().await;
    let group = encode(&GROUP);

    // A bounded range: the stream ends, and so does the command.
    let until = encode(&[2; 32]);
    let messages = run(
        &addr,
        &[
            "group",
            "subscribe",
            &group,
            "--until",
            &until,
            "--since-cursor",
            "7",
        ],
    )
    .await;
    assert!(messages.status.success(), "{}", stderr(&messages));
    let lines = json_lines(&messages);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], encode(&[1; 32]));
    assert_eq!(lines[0]["parent_ids"], serde_json::json!([]));
    assert_eq!(
        lines[1]["parent_ids"],
        serde_json::json!([encode(&[1; 32])])
    );
    assert_eq!(lines[1]["cursor"], 2);
    assert_eq!(lines[1]["group_pub_key"], group);
    assert_eq!(lines[1]["group_member_pub_key"], encode(&[2; 32]));
    assert_eq!(lines[1]["group_device_pub_key"], encode(&[3; 32]));
    assert_eq!(lines[1]["account_pub_key"], encode(&[4; 32]));
    assert_eq!(lines[1]["payload_text"], "message 2");
    assert_eq!(lines[1]["payload_base64"], encode(b"message 2"));
    let request = &node.requests("message subscribe")[0];
    assert!(
        request.contains(&format!("until: {:?}", [2u8; 32])),
        "{request}"
    );
    assert!(
        request.contains("go_backwards: false, since_cursor: 7"),
        "{request}"
    );

    let settings = run(&addr, &["group", "settings", &group, "--backwards"]).await;
    assert!(settings.status.success(), "{}", stderr(&settings));
    let lines = json_lines(&settings);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["setting_type"], "Group");
    assert_eq!(lines[0]["key"], "name");
    assert_eq!(lines[0]["value_text"], "Friends");
    assert!(node.requests("setting subscribe")[0].contains("go_backwards: true"));

    // An error after some events: the events are printed, then the status, exit 1.
    let account = run(&addr, &["account", "subscribe"]).await;
    assert_eq!(account.status.code(), Some(1));
    let lines = json_lines(&account);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_type"], "AccountEventType_GroupJoined");
    assert_eq!(lines[0]["subject_public_key_bytes"], group);
    assert_eq!(lines[0]["cursor"], 1);
    assert_eq!(stderr(&account), "error: UNAVAILABLE: storage is down\n");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_live_subscription_flushes_each_line_and_ends_cleanly_on_ctrl_c() {
    let (addr, _node) = scripted().await;
    let mut child = client_command(
        &addr,
        &["group", "subscribe", &encode(&GROUP)],
        &[("BERTY_NODE_TOKEN", TOKEN)],
    )
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Both history lines arrive while the stream is still open.
    for n in 1..=2u8 {
        let line = tokio::time::timeout(COMMAND_TIMEOUT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("a line before the end");
        let event: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(event["id"], encode(&[n; 32]));
    }
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(COMMAND_TIMEOUT, child.wait())
        .await
        .expect("the client stops on Ctrl-C")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn export_writes_a_large_owner_only_file_and_never_overwrites_by_accident() {
    let (addr, node) = scripted().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("account.export");
    let out_arg = out.to_str().unwrap();

    let exported = run(&addr, &["export", "--out", out_arg]).await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len(), EXPORT_LEN, "larger than gRPC's default 4 MiB");
    assert!(bytes.iter().all(|b| *b == 0xab));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(stderr(&exported).contains(&format!("wrote {EXPORT_LEN} bytes")));

    // The file exists: refused before the node is asked.
    let again = run(&addr, &["export", "--out", out_arg]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(node.requests("export").len(), 1);

    let forced = run(&addr, &["export", "--out", out_arg, "--force"]).await;
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(node.requests("export").len(), 2);
}
