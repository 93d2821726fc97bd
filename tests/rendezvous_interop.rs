//! rust-libp2p's own rendezvous client against our rendezvous server (a real node process, on
//! SQLite and PostgreSQL): it registers (legacy peer record format), discovers with and without
//! a cookie, and reads our cookies and answers. Every wait is on a swarm event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::protocol::{both_backends, within, Backend, Home, TestNode};
use futures::StreamExt;
use libp2p::{
    identity::Keypair, noise, swarm::SwarmEvent, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use libp2p_rendezvous::{client, Namespace};

both_backends!(rust_libp2p_client_registers_and_discovers);

/// A swarm with nothing but TCP, Noise, Yamux and rust-libp2p's rendezvous client, announcing
/// `external` as its address.
fn client_swarm(external: &str) -> Swarm<client::Behaviour> {
    let key = Keypair::generate_ed25519();
    let mut swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("TCP transport")
        .with_behaviour(|key| client::Behaviour::new(key.clone()))
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    swarm.add_external_address(external.parse().unwrap());
    swarm
}

/// Connects `swarm` to the node and waits for the connection.
async fn connect(swarm: &mut Swarm<client::Behaviour>, node: &TestNode) -> PeerId {
    let addr: Multiaddr = node.process.p2p_addrs[0].parse().unwrap();
    let server: PeerId = node.process.peer_id.parse().unwrap();
    swarm.dial(addr).unwrap();
    loop {
        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = swarm.select_next_some().await {
            if peer_id == server {
                return server;
            }
        }
    }
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
