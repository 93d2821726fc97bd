//! The server behind real libp2p streams over TCP, each inbound stream served whole by
//! [`RendezvousServer::serve_stream`] (accepted here with libp2p-stream; the node accepts them
//! with `p2p::inbound_streams`): a client on our codec, then rust-libp2p's own rendezvous
//! client.

use std::time::Duration;

use futures::StreamExt;
use libp2p::{
    identity::Keypair,
    noise,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, Stream, Swarm, SwarmBuilder,
};
use libp2p_rendezvous::{client, Namespace};
use libp2p_stream::IncomingStreams;
use tokio::sync::mpsc;

use super::{
    test_support::{discover, discover_answer, record_of, register, register_status, server},
    DiscoverCookie, RendezvousServer, StreamEnd, DEFAULT_TTL_SECS,
};
use crate::rendezvous::wire::{
    Message, MessageType, RendezvousCodec, ResponseStatus, Unregister, RENDEZVOUS_PROTOCOL,
};

/// A request-response behaviour speaking our codec.
type CodecBehaviour = request_response::Behaviour<RendezvousCodec>;

/// How long a swarm keeps an idle connection.
const IDLE: Duration = Duration::from_secs(30);

/// A swarm over TCP with `key`'s identity and the behaviour `behaviour` builds.
fn swarm<B: NetworkBehaviour>(key: Keypair, behaviour: impl FnOnce(&Keypair) -> B) -> Swarm<B> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
        .build()
}

/// A client swarm speaking our codec.
fn codec_swarm(key: Keypair) -> Swarm<CodecBehaviour> {
    swarm(key, |_| {
        request_response::Behaviour::with_codec(
            RendezvousCodec,
            [(RENDEZVOUS_PROTOCOL, ProtocolSupport::Outbound)],
            request_response::Config::default(),
        )
    })
}

/// The serving node, listening on a free port of 127.0.0.1, and its inbound rendezvous
/// streams.
fn listening_node() -> (Swarm<libp2p_stream::Behaviour>, IncomingStreams) {
    let mut node = swarm(Keypair::generate_ed25519(), |_| {
        libp2p_stream::Behaviour::new()
    });
    let incoming = node
        .behaviour()
        .new_control()
        .accept(RENDEZVOUS_PROTOCOL)
        .unwrap();
    node.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    (node, incoming)
}

/// Once the serving node listens, `client` dials it.
fn dial_when_listening<B: NetworkBehaviour>(event: SwarmEvent<()>, client: &mut Swarm<B>) {
    if let SwarmEvent::NewListenAddr { address, .. } = event {
        client.dial(address).unwrap();
    }
}

/// Serves `stream` from `peer` with `server` in a task of its own, which reports on `ended`
/// when the stream is done.
fn serve(
    (peer, mut stream): (PeerId, Stream),
    server: &RendezvousServer,
    ended: &mpsc::UnboundedSender<StreamEnd>,
) {
    let (server, ended) = (server.clone(), ended.clone());
    tokio::spawn(async move {
        let end = server.serve_stream(peer, &mut stream, IDLE).await;
        let _ = ended.send(end);
    });
}

/// A client on libp2p's request-response with our codec, over TCP, against the server:
/// REGISTER, DISCOVER, DISCOVER with the cookie, then UNREGISTER, which gets no answer
/// (the client sees the stream close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_real_stream() {
    let (server, _) = server().await;
    let (mut node, mut incoming) = listening_node();
    let client_key = Keypair::generate_ed25519();
    let mut client = codec_swarm(client_key.clone());
    let node_id = *node.local_peer_id();
    let record = record_of(&client_key);

    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let run = async {
        let mut answers = Vec::new();
        loop {
            tokio::select! {
                event = node.select_next_some() => dial_when_listening(event, &mut client),
                Some(inbound) = incoming.next() => serve(inbound, &server, &ended_tx),
                Some(_) = ended.recv() => {}
                event = client.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        let request = register(Some("ns"), Some(record.clone()), None);
                        client.behaviour_mut().send_request(&node_id, request);
                    }
                    SwarmEvent::Behaviour(request_response::Event::Message {
                        message: request_response::Message::Response { response, .. },
                        ..
                    }) => {
                        answers.push(response);
                        let next = match answers.len() {
                            1 => discover(Some("ns"), None, None),
                            2 => {
                                let cookie = answers[1]
                                    .discover_response
                                    .as_ref()
                                    .and_then(|r| r.cookie.clone());
                                discover(Some("ns"), cookie, Some(10))
                            }
                            _ => Message {
                                r#type: Some(MessageType::Unregister as i32),
                                unregister: Some(Unregister {
                                    ns: Some("ns".into()),
                                    id: None,
                                }),
                                ..Default::default()
                            },
                        };
                        client.behaviour_mut().send_request(&node_id, next);
                    }
                    SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                        ..
                    }) => return answers,
                    _ => {}
                },
            }
        }
    };
    let answers = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the exchange finishes");
    assert_eq!(answers.len(), 3);
    assert_eq!(
        register_status(Some(answers[0].clone())),
        (ResponseStatus::Ok, Some(DEFAULT_TTL_SECS))
    );
    let first = discover_answer(Some(answers[1].clone()));
    assert_eq!(first.registrations.len(), 1);
    assert_eq!(first.registrations[0].signed_peer_record, Some(record));
    let cookie = DiscoverCookie::decode(first.cookie.as_deref().unwrap()).unwrap();
    assert_eq!(cookie.namespace, "ns");
    let second = discover_answer(Some(answers[2].clone()));
    assert!(
        second.registrations.is_empty(),
        "nothing newer than the cookie"
    );
    assert_eq!(second.cookie, first.cookie);
    assert_eq!(server.stats().unregistered, 1);
    assert_eq!(server.count().await.unwrap(), 0);
}

/// rust-libp2p's own rendezvous client (`libp2p-rendezvous`, a dev-dependency), over TCP,
/// against our codec and server: it registers (legacy record), discovers, sends our
/// cookie back and unregisters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_libp2p_client_registers_and_discovers() {
    let (server, _) = server().await;
    let (mut node, mut incoming) = listening_node();
    let mut client = swarm(Keypair::generate_ed25519(), |key| {
        client::Behaviour::new(key.clone())
    });
    let client_id = *client.local_peer_id();
    let node_id = *node.local_peer_id();
    let announced: Multiaddr = "/ip4/10.1.2.3/tcp/4040".parse().unwrap();
    client.add_external_address(announced.clone());
    let namespace = Namespace::from_static("berty-test");

    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let run = async {
        let mut cookie = None;
        loop {
            tokio::select! {
                event = node.select_next_some() => dial_when_listening(event, &mut client),
                Some(inbound) = incoming.next() => serve(inbound, &server, &ended_tx),
                Some(_) = ended.recv() => {}
                event = client.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        client
                            .behaviour_mut()
                            .register(namespace.clone(), node_id, None)
                            .unwrap();
                    }
                    SwarmEvent::Behaviour(client::Event::Registered { ttl, .. }) => {
                        assert_eq!(ttl, DEFAULT_TTL_SECS);
                        client.behaviour_mut().discover(
                            Some(namespace.clone()),
                            None,
                            None,
                            node_id,
                        );
                    }
                    SwarmEvent::Behaviour(client::Event::Discovered {
                        registrations,
                        cookie: got,
                        ..
                    }) => {
                        if cookie.is_none() {
                            assert_eq!(registrations.len(), 1);
                            let registration = &registrations[0];
                            assert_eq!(registration.namespace, namespace);
                            assert_eq!(registration.record.peer_id(), client_id);
                            let addresses = registration.record.addresses();
                            assert_eq!(addresses, std::slice::from_ref(&announced));
                            assert_eq!(registration.ttl, DEFAULT_TTL_SECS);
                            assert_eq!(got.namespace(), Some(&namespace));
                            cookie = Some(got.clone());
                            // Our cookie goes back as the client encodes it.
                            client.behaviour_mut().discover(
                                Some(namespace.clone()),
                                Some(got),
                                Some(10),
                                node_id,
                            );
                        } else {
                            assert!(registrations.is_empty(), "nothing newer");
                            client.behaviour_mut().unregister(namespace.clone(), node_id);
                        }
                    }
                    SwarmEvent::Behaviour(client::Event::RegisterFailed { error, .. }) => {
                        panic!("register failed: {error:?}")
                    }
                    SwarmEvent::Behaviour(client::Event::DiscoverFailed { error, .. }) => {
                        panic!("discover failed: {error:?}")
                    }
                    _ => {}
                },
            }
            if server.stats().unregistered == 1 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the exchange finishes");
    assert_eq!(server.count().await.unwrap(), 0);
    let stats = server.stats();
    assert_eq!((stats.registered, stats.discovers), (1, 2));
}
