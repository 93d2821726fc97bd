//! A part of the node that dies stops the node, which exits 1 naming it. Debug builds stop
//! the part named by `BERTY_NODE_TEST_STOP_PART` right after it starts (see
//! `berty_node::supervision`); release builds have no such hook.

#![cfg(debug_assertions)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, time::Duration};

use berty_node::supervision::TEST_STOP_PART_ENV;
use common::node::run_to_exit;

/// Starts a node on SQLite, port 0 everywhere, with `part` stopped after it starts; returns
/// the exit code and stderr.
async fn stop_part(part: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\
             [api]\ngrpc_listen = \"127.0.0.1:0\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [p2p]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\nreplication = true\n\
             [rendezvous]\nenabled = true\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let env = HashMap::from([(TEST_STOP_PART_ENV.to_string(), part.to_string())]);
    let (status, stderr) = run_to_exit(
        &["--config", config.to_str().unwrap()],
        &env,
        dir.path(),
        Duration::from_secs(60),
    )
    .await;
    (status.code(), stderr)
}

#[tokio::test]
async fn a_dead_actor_stops_the_node_naming_it() {
    for part in ["account actor", "replicator"] {
        let (code, stderr) = stop_part(part).await;
        assert_eq!(code, Some(1), "{part}: {stderr}");
        assert!(
            stderr.contains(&format!("error: {part} stopped unexpectedly")),
            "{part}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_dead_task_stops_the_node_naming_it() {
    let (code, stderr) = stop_part("rendezvous upkeep").await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error: rendezvous upkeep stopped unexpectedly"),
        "{stderr}"
    );
}
