//! Clients of other implementations against our rendezvous server (a real node process, on
//! SQLite and PostgreSQL). rust-libp2p's own client registers (legacy peer record format),
//! discovers with and without a cookie, and reads our cookies and answers. Raw streams
//! (libp2p-stream) send what go and js clients send: a REGISTER frame without its `type` field
//! (protobuf encoders leave out REGISTER = 0), then a DISCOVER on the same stream; and more
//! requests on one stream than the server serves. Every wait is on a swarm event or a read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use berty_node::rendezvous::{
    server::MAX_REQUESTS_PER_STREAM,
    wire::{
        read_message, write_message, Discover, Message, MessageType, ResponseStatus,
        MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, RENDEZVOUS_PROTOCOL,
    },
};
use common::{
    protocol::{both_backends, within, Backend, Home, TestNode},
    raw_peer::{connect, swarm_with, RawPeer},
};
use futures::{AsyncWriteExt, StreamExt};
use libp2p::{core::PeerRecord, identity::Keypair, swarm::SwarmEvent, Multiaddr, Stream, Swarm};
use libp2p_rendezvous::{client, Namespace};

both_backends!(
    rust_libp2p_client_registers_and_discovers,
    an_untyped_register_then_a_discover_share_one_stream,
    a_stream_closes_after_its_cap_of_requests,
);

/// rust-libp2p's rendezvous client, announcing `external` as its address.
fn client_swarm(external: &str) -> Swarm<client::Behaviour> {
    let mut swarm = swarm_with(Keypair::generate_ed25519(), |key| {
        client::Behaviour::new(key.clone())
    });
    swarm.add_external_address(external.parse().unwrap());
    swarm
}

/// The next rendezvous client event.
async fn next_event(swarm: &mut Swarm<client::Behaviour>) -> client::Event {
    loop {
        if let SwarmEvent::Behaviour(event) = swarm.select_next_some().await {
            return event;
        }
    }
}

async fn rust_libp2p_client_registers_and_discovers(backend: Backend) {
    let home = Home::new(backend).await;
    let id = home.init().await;
    let node = TestNode::serve_with(home, id, &[]).await;
    let namespace = Namespace::from_static("berty-node-interop");

    let mut alice = client_swarm("/ip4/192.0.2.7/tcp/4001");
    let alice_id = *alice.local_peer_id();
    let server = within("alice connects", connect(&mut alice, &node)).await;
    alice
        .behaviour_mut()
        .register(namespace.clone(), server, Some(7200))
        .unwrap();
    match within("alice registers", next_event(&mut alice)).await {
        client::Event::Registered {
            ttl, namespace: ns, ..
        } => {
            assert_eq!(ttl, 7200);
            assert_eq!(ns, namespace);
        }
        other => panic!("registration not accepted: {other:?}"),
    }
    // A TTL under the server's minimum is refused with the protocol's status.
    alice
        .behaviour_mut()
        .register(namespace.clone(), server, Some(60))
        .unwrap();
    match within("alice's short TTL", next_event(&mut alice)).await {
        client::Event::RegisterFailed { error, .. } => {
            assert_eq!(error, libp2p_rendezvous::ErrorCode::InvalidTtl);
        }
        other => panic!("short TTL accepted: {other:?}"),
    }

    let mut bob = client_swarm("/ip4/192.0.2.8/tcp/4001");
    within("bob connects", connect(&mut bob, &node)).await;
    bob.behaviour_mut()
        .discover(Some(namespace.clone()), None, None, server);
    let cookie = match within("bob discovers", next_event(&mut bob)).await {
        client::Event::Discovered {
            registrations,
            cookie,
            ..
        } => {
            assert_eq!(registrations.len(), 1);
            let found = &registrations[0];
            assert_eq!(found.record.peer_id(), alice_id);
            assert_eq!(
                found.record.addresses(),
                &["/ip4/192.0.2.7/tcp/4001".parse::<Multiaddr>().unwrap()]
            );
            assert_eq!(found.namespace, namespace);
            assert!(found.ttl > 7000 && found.ttl <= 7200, "ttl {}", found.ttl);
            assert_eq!(cookie.namespace(), Some(&namespace));
            cookie
        }
        other => panic!("discover failed: {other:?}"),
    };
    // With the cookie: nothing new.
    bob.behaviour_mut()
        .discover(Some(namespace.clone()), Some(cookie), None, server);
    match within("bob discovers again", next_event(&mut bob)).await {
        client::Event::Discovered { registrations, .. } => assert!(registrations.is_empty()),
        other => panic!("discover with cookie failed: {other:?}"),
    }
}

/// A raw `/rendezvous/1.0.0` stream to the node, opened by a peer with `key` (its swarm runs
/// in a task of its own for as long as the test).
async fn raw_stream(node: &TestNode, key: Keypair) -> Stream {
    RawPeer::connect_with(node, key)
        .await
        .open(RENDEZVOUS_PROTOCOL)
        .await
}

/// `n` as a protobuf varint.
fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// A length-delimited protobuf field: its tag (`number`, wire type 2), length and bytes.
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    [&[number << 3 | 2][..], &varint(bytes.len()), bytes].concat()
}

/// The next answer on `stream`.
async fn answer(stream: &mut Stream) -> Message {
    within("an answer", read_message(stream, MAX_RESPONSE_BYTES))
        .await
        .expect("an answer")
}

fn discover(namespace: &str) -> Message {
    Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(Discover {
            ns: Some(namespace.into()),
            limit: None,
            cookie: None,
        }),
        ..Message::default()
    }
}

async fn an_untyped_register_then_a_discover_share_one_stream(backend: Backend) {
    let home = Home::new(backend).await;
    let id = home.init().await;
    let node = TestNode::serve_with(home, id, &[]).await;
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let address: Multiaddr = "/ip4/192.0.2.9/tcp/4001".parse().unwrap();
    let record = PeerRecord::new_interop(&key, vec![address.clone()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    let mut stream = raw_stream(&node, key).await;

    // Message { register = 2 { ns = 1, signedPeerRecord = 2 } }, without `type` (field 1)
    // and without a TTL, behind its varint length: as a js or go client sends a REGISTER.
    let register = field(2, &[field(1, b"untyped"), field(2, &record)].concat());
    let frame = [varint(register.len()), register].concat();
    assert!(frame.len() < MAX_REQUEST_BYTES);
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
    let registered = answer(&mut stream).await;
    assert_eq!(
        registered.r#type,
        Some(MessageType::RegisterResponse as i32)
    );
    let response = registered.register_response.unwrap();
    assert_eq!(response.status(), ResponseStatus::Ok, "{response:?}");

    // A DISCOVER on the same stream, answered in turn, finds the registration.
    write_message(&mut stream, &discover("untyped"), MAX_REQUEST_BYTES)
        .await
        .unwrap();
    let found = answer(&mut stream).await.discover_response.unwrap();
    assert_eq!(found.status(), ResponseStatus::Ok);
    assert_eq!(found.registrations.len(), 1);
    let registration = &found.registrations[0];
    assert_eq!(registration.ns.as_deref(), Some("untyped"));
    let verified = berty_node::rendezvous::record::verify(registration.signed_peer_record())
        .expect("the stored record verifies");
    assert_eq!(verified.peer_id, peer);
    assert_eq!(verified.addresses, vec![address]);
}

async fn a_stream_closes_after_its_cap_of_requests(backend: Backend) {
    let home = Home::new(backend).await;
    let id = home.init().await;
    let node = TestNode::serve_with(home, id, &[]).await;
    let mut stream = raw_stream(&node, Keypair::generate_ed25519()).await;
    for _ in 0..MAX_REQUESTS_PER_STREAM {
        write_message(&mut stream, &discover("capped"), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        let response = answer(&mut stream).await.discover_response.unwrap();
        assert_eq!(response.status(), ResponseStatus::Ok);
    }
    // One more: the server closed the stream after the last answer, so this one gets none
    // (the write itself may fail on the closed stream).
    let _ = write_message(&mut stream, &discover("capped"), MAX_REQUEST_BYTES).await;
    let after = within(
        "the stream ends",
        read_message(&mut stream, MAX_RESPONSE_BYTES),
    )
    .await;
    assert!(after.is_err(), "answered past the cap: {after:?}");
}
