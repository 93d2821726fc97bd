//! The real binary: TOML file plus environment overrides, port 0 everywhere, gRPC and admin
//! endpoints answered, SIGTERM exits 0. Runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, time::Duration};

use berty_node::proto::berty_protocol::instance_get_configuration::{self, SettingState};
use common::node::{http_get, http_request, NodeProcess};

async fn serve_answer_and_stop(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\
             [storage]\ndatabase_url = \"{database_url}\"\n\
             [api]\ngrpc_listen = \"127.0.0.1:0\"\n\
             [admin]\nlisten = \"127.0.0.1:9\"\ntoken = \"admin-secret\"\n\
             [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/4040\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // The environment wins over the file: port 9 and 4040 above would not be port 0.
    let env: HashMap<String, String> = [
        ("BERTY_NODE__ADMIN__LISTEN", "127.0.0.1:0"),
        ("BERTY_NODE__ADMIN__STATS_PERIOD_MS", "100"),
        (
            "BERTY_NODE__P2P__LISTEN",
            "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let node = NodeProcess::spawn(&["--config", config.to_str().unwrap()], &env, dir.path()).await;
    assert_ne!(node.grpc_addr.port(), 0);
    assert_ne!(node.admin_addr.port(), 0);
    assert_eq!(
        node.p2p_addrs.len(),
        2,
        "TCP and QUIC listeners: {:?}",
        node.p2p_addrs
    );

    let reply = node
        .grpc()
        .await
        .instance_get_configuration(instance_get_configuration::Request {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.peer_id, node.peer_id);
    assert_eq!(reply.listeners.len(), 2);
    for listener in &reply.listeners {
        assert!(listener.starts_with("/ip4/127.0.0.1/"), "{listener}");
        assert!(
            listener.ends_with(&format!("/p2p/{}", node.peer_id)),
            "{listener}"
        );
        assert!(!listener.contains("/tcp/0/") && !listener.contains("/udp/0/"));
    }
    assert_eq!(reply.ble_enabled, SettingState::Unavailable as i32);
    assert_eq!(reply.wifi_p2p_enabled, SettingState::Unavailable as i32);

    // Reflection lists the service, so grpcurl and friends work without the .proto files.
    let services = reflected_services(&node).await;
    assert!(
        services.contains(&"berty.protocol.ProtocolService".to_string()),
        "{services:?}"
    );

    let (status, body) = http_get(node.admin_addr, "/healthz", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(node.admin_addr, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(node.admin_addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(body.contains("berty_node_storage_up 1"), "{body}");
    for path in ["one_statement", "missed", "locked"] {
        let line = format!("berty_node_storage_commits_total{{path=\"{path}\"}} ");
        assert!(body.contains(&line), "{line} in {body}");
    }
    assert!(
        body.contains(
            "berty_node_grpc_requests_total{method=\"InstanceGetConfiguration\",code=\"Ok\"} 1"
        ),
        "{body}"
    );
    let (status, _) = http_get(node.admin_addr, "/admin/v1/node", None).await;
    assert_eq!(status, 401, "admin routes need the token");
    let (status, body) = http_get(node.admin_addr, "/admin/v1/node", Some("admin-secret")).await;
    assert_eq!(status, 200);
    assert!(body.contains(&node.peer_id), "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let backend = if database_url.is_empty() {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(info["storage"]["backend"], backend, "{body}");
    assert_eq!(info["storage"]["up"], true, "{body}");
    assert_eq!(info["roles"]["rendezvous"]["enabled"], true, "{body}");
    the_dashboards_routes_answer(&node).await;

    node.signal("TERM");
    let status = node.wait(Duration::from_secs(20)).await;
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must exit 0, got {status:?}"
    );
}

/// The page, the namespace counts, the live figures, and a ban lifted.
async fn the_dashboards_routes_answer(node: &NodeProcess) {
    let admin = |path: &'static str| http_get(node.admin_addr, path, Some("admin-secret"));
    let (status, body) = http_get(node.admin_addr, "/", None).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("<!doctype html>"), "{body}");
    let (status, body) = admin("/admin/v1/rendezvous/namespaces").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({ "registrations_total": 0, "namespaces": [] })
    );
    // A sample every 100 ms: points come at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let series = loop {
        let (status, body) = admin("/admin/v1/stats/series").await;
        assert_eq!(status, 200, "{body}");
        let series: serde_json::Value = serde_json::from_str(&body).unwrap();
        if series["points"].as_array().unwrap().len() >= 2 {
            break series;
        }
        assert!(std::time::Instant::now() < deadline, "no points: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(series["period_ms"], 100);
    assert_eq!(series["window_secs"], 900);
    let last = &series["points"][1];
    assert!(last["storage_latency_ms"].is_number() || last["storage_latency_ms"].is_null());
    assert!(last["entries_per_sec"].as_f64().unwrap() >= 0.0, "{last}");
    let t = last["t"].as_u64().unwrap();
    let (_, body) = http_get(
        node.admin_addr,
        &format!("/admin/v1/stats/series?since={t}"),
        Some("admin-secret"),
    )
    .await;
    let later: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(later["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["t"].as_u64().unwrap() > t));

    let peer = libp2p::PeerId::random().to_string();
    let ban = format!("/admin/v1/peers/{peer}/ban");
    let (status, body) =
        http_request(node.admin_addr, "DELETE", &ban, Some("admin-secret"), None).await;
    assert_eq!(status, 404, "nothing to lift: {body}");
    let (status, body) =
        http_request(node.admin_addr, "POST", &ban, Some("admin-secret"), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = admin("/admin/v1/peers").await;
    let peers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(peers["refused"][0]["peer_id"], peer.as_str(), "{body}");
    assert!(
        peers["refused"][0]["banned_secs_left"].as_u64().unwrap() > 500,
        "{body}"
    );
    let (status, body) =
        http_request(node.admin_addr, "DELETE", &ban, Some("admin-secret"), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = admin("/admin/v1/peers").await;
    let peers: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(peers["refused"], serde_json::json!([]), "{body}");
}

/// The services the node lists through gRPC server reflection (v1).
async fn reflected_services(node: &NodeProcess) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
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
    let mut replies = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection reply {other:?}"),
    }
}

#[tokio::test]
async fn binary_serves_on_sqlite_and_exits_cleanly() {
    serve_answer_and_stop("").await;
}

#[tokio::test]
async fn binary_serves_on_postgres_and_exits_cleanly() {
    let db = common::postgres::TestDatabase::create().await;
    serve_answer_and_stop(db.url()).await;
}
