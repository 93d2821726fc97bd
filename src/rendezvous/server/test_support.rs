//! What the server's unit tests share: a server on an in-memory SQLite database with a
//! clock they move, signed records, and requests and answers.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use libp2p::{core::PeerRecord, identity::Keypair};

use super::{RendezvousLimits, RendezvousServer, DEFAULT_TTL_SECS};
use crate::{
    rendezvous::wire::{
        Discover, DiscoverResponse, Message, MessageType, Register, ResponseStatus,
    },
    storage::sqlite::SqliteStorage,
};

/// One hour in seconds.
pub(super) const HOUR: u64 = 60 * 60;

pub(super) async fn server() -> (RendezvousServer, Arc<AtomicU64>) {
    let storage = SqliteStorage::open_url("sqlite::memory:").await.unwrap();
    let time = Arc::new(AtomicU64::new(1_000_000));
    let clock = Arc::clone(&time);
    let server = RendezvousServer::with_clock(
        Arc::new(storage),
        RendezvousLimits::default(),
        DEFAULT_TTL_SECS,
        Arc::new(move || clock.load(Ordering::Relaxed)),
    );
    (server, time)
}

pub(super) fn record_of(key: &Keypair) -> Vec<u8> {
    PeerRecord::new(key, vec!["/ip4/10.0.0.1/tcp/4040".parse().unwrap()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding()
}

pub(super) fn register(ns: Option<&str>, record: Option<Vec<u8>>, ttl: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::Register as i32),
        register: Some(Register {
            ns: ns.map(str::to_owned),
            signed_peer_record: record,
            ttl,
        }),
        ..Default::default()
    }
}

pub(super) fn discover(ns: Option<&str>, cookie: Option<Vec<u8>>, limit: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(Discover {
            ns: ns.map(str::to_owned),
            limit,
            cookie,
        }),
        ..Default::default()
    }
}

pub(super) fn register_status(answer: Option<Message>) -> (ResponseStatus, Option<u64>) {
    let answer = answer.expect("a register response");
    assert_eq!(answer.r#type, Some(MessageType::RegisterResponse as i32));
    let response = answer.register_response.unwrap();
    (response.status(), response.ttl)
}

pub(super) fn discover_answer(answer: Option<Message>) -> DiscoverResponse {
    let answer = answer.expect("a discover response");
    assert_eq!(answer.r#type, Some(MessageType::DiscoverResponse as i32));
    answer.discover_response.unwrap()
}
