//! Hostile contact handshakes against a real node process, on SQLite and on PostgreSQL.
//!
//! B is a person node (contact requests on, an infrastructure node R as its rendezvous
//! server). A bare libp2p peer in the test process opens `/berty/contact_req/1.0.0` streams to
//! B and sends:
//!
//! - a request sealed for another account key than B's: B cannot open F3 and ends the stream;
//! - a replay: F1 and F3 recorded from an earlier session of the same requester, F3 sent after
//!   B's new F2. B draws a fresh ephemeral key per session, so the old F3 does not open and no
//!   F4 comes back;
//! - a truncated F1 (the prefix announces 33 bytes, 10 come, then the stream is closed), an F1
//!   announcing 2,049 bytes (over the cap, refused from the prefix alone) and garbage (an HTTP
//!   request): each refused, the stream ends.
//!
//! Each refusal must come well within B's step timeout. Otherwise B waited and only gave up,
//! which this test counts as a failure. Each one must also be counted in
//! `berty_node_contact_handshakes_total{outcome="refused"}`. Then a real request from another
//! node A still reaches B: `ContactRequested` from A, and exactly one completed handshake, A's,
//! so a replay that B had accepted would show. Nothing from the hostile keys is recorded, and
//! B's process is still running. Every wait is on a read, an event stream or a bounded poll of
//! `/metrics`, never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::contacts::{enqueue, person, wait_for_account_event};

use std::time::{Duration, Instant};

use berty_node::{
    courier::{CONTACT_PROTOCOL, STEP_TIMEOUT as NODE_STEP_TIMEOUT},
    crypto::{SigningKey, VerifyingKey},
    framing,
    group::ContactReference,
    handshake::{self, Frame, HandshakeError, OutgoingContact, Requester, Step, MAX_FRAME_LEN},
    proto::berty_protocol as pb,
};
use common::{
    protocol::{
        both_backends, metric_or_zero, wait_for_metric_at_least, within, Backend, TestNode,
    },
    raw_peer::RawPeer,
};
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::Stream;
use pb::AccountEventType as T;
use rand::rngs::OsRng;

both_backends!(hostile_handshakes_are_refused_and_the_node_keeps_serving);

const REFUSED: &str = "berty_node_contact_handshakes_total{outcome=\"refused\"}";
const COMPLETED: &str = "berty_node_contact_handshakes_total{outcome=\"completed\"}";

/// How long a refusal may take: half of B's step timeout. B waiting out a step and only then
/// dropping the stream would take the whole timeout.
const REFUSAL_WITHIN: Duration = Duration::from_secs(NODE_STEP_TIMEOUT.as_secs() / 2);

/// The test's own step timeout as a requester: longer than B's, so that B ending the stream
/// shows as such and not as our timeout.
const PATIENT: Duration = Duration::from_secs(NODE_STEP_TIMEOUT.as_secs() * 3);

/// The `ContactRequested` events in `node`'s account history, by subject.
async fn requested_by(node: &mut TestNode) -> Vec<Vec<u8>> {
    node.account_history()
        .await
        .into_iter()
        .filter(|e| e.event_type == T::ContactRequested as i32)
        .map(|e| e.subject_public_key_bytes)
        .collect()
}

/// A request to the account of `reference`, made with that reference.
fn outgoing(reference: &ContactReference, meta: &[u8]) -> OutgoingContact {
    OutgoingContact {
        own_seed: None,
        target_seed: reference.rendezvous_seed.clone(),
        meta: meta.to_vec(),
    }
}

/// Reads one frame body from B.
async fn read_frame(stream: &mut Stream, what: &str) -> Vec<u8> {
    within(what, framing::read_frame(stream, MAX_FRAME_LEN))
        .await
        .unwrap_or_else(|e| panic!("{what}: the stream failed: {e}"))
        .unwrap_or_else(|e| panic!("{what}: not a frame: {e}"))
}

async fn write_frame(stream: &mut Stream, body: &[u8]) {
    framing::write_frame(stream, body, MAX_FRAME_LEN)
        .await
        .expect("write a frame");
}

/// Asserts that B refuses on `stream`: it sends nothing more and the stream ends (end of
/// stream or an error), well within B's step timeout.
async fn assert_refused(stream: &mut Stream, what: &str) {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(REFUSAL_WITHIN, stream.read(&mut buf)).await {
        Err(_) => panic!(
            "{what}: the stream was still open after {REFUSAL_WITHIN:?} (B only waits, it \
             did not refuse)"
        ),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "{what}: B answered {n} bytes instead of ending the stream: {:02x?}",
            &buf[..n]
        ),
    }
    assert!(started.elapsed() < REFUSAL_WITHIN);
}

/// What a requester sent in one session, and what B answered.
struct Recorded {
    f1: Vec<u8>,
    f2: Vec<u8>,
    f3: Vec<u8>,
}

/// Runs a request by hand up to B's F4 and records the frames. The stream is then closed
/// without F5, so B records nothing from this session (and counts it as refused).
async fn record_session(
    stream: &mut Stream,
    own: &SigningKey,
    target: &VerifyingKey,
    contact: &OutgoingContact,
) -> Recorded {
    let (mut requester, f1) = Requester::new(own, target, contact, &mut OsRng).unwrap();
    write_frame(stream, &f1).await;
    let f2 = read_frame(stream, "F2 of the recorded session").await;
    let Step::Send(f3) = requester.on_frame(&f2).expect("B's F2") else {
        panic!("F2 is answered with F3")
    };
    write_frame(stream, &f3).await;
    let f4 = read_frame(stream, "F4 of the recorded session").await;
    // B proved it holds the target key: the session was genuine up to here.
    let Step::Send(_f5) = requester.on_frame(&f4).expect("B's F4 verifies") else {
        panic!("F4 is answered with F5")
    };
    stream.close().await.expect("close the recorded session");
    Recorded { f1, f2, f3 }
}

async fn hostile_handshakes_are_refused_and_the_node_keeps_serving(backend: Backend) {
    let r = TestNode::start(backend).await;
    let mut b = person(backend, &r).await;
    b.enable_contact_requests().await;
    let reference_bytes = b.contact_reference().await;
    let reference = ContactReference::decode(&reference_bytes).unwrap();
    assert_eq!(reference.account_pk.as_bytes()[..], b.id.account_pk[..]);
    let mut peer = RawPeer::connect(&b).await;
    let mut refusals = 0.0;

    // A request sealed for another account: B cannot open F3 and ends the stream where F4
    // should come (had B sent an F4, the requester would fail on it instead, not on the end).
    let intruder = SigningKey::generate(&mut OsRng);
    let not_b = SigningKey::generate(&mut OsRng).verifying_key();
    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    let started = Instant::now();
    let result = within(
        "a request to a wrong key",
        handshake::request(
            &mut stream,
            &intruder,
            &not_b,
            &outgoing(&reference, b"wrong key"),
            PATIENT,
        ),
    )
    .await;
    match result {
        Err(HandshakeError::Closed {
            frame: Frame::ResponderProof,
        })
        | Err(HandshakeError::Io {
            frame: Frame::ResponderProof,
            ..
        }) => {}
        other => panic!("expected B to end the stream instead of sending F4, got {other:?}"),
    }
    assert!(
        started.elapsed() < REFUSAL_WITHIN,
        "B took {:?} to end the stream: a timeout, not a refusal",
        started.elapsed()
    );
    refusals += 1.0;
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    // A genuine session up to F4, recorded; then its F1 and F3 replayed on a new stream.
    let recorder = SigningKey::generate(&mut OsRng);
    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    let recorded = record_session(
        &mut stream,
        &recorder,
        &reference.account_pk,
        &outgoing(&reference, b"recorded"),
    )
    .await;
    refusals += 1.0; // closed before F5
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    write_frame(&mut stream, &recorded.f1).await;
    let f2 = read_frame(&mut stream, "B's F2 to the replayed F1").await;
    assert_eq!(
        f2.len(),
        recorded.f2.len(),
        "B answers the old F1 with an F2"
    );
    assert_ne!(f2, recorded.f2, "B draws a fresh ephemeral key per session");
    write_frame(&mut stream, &recorded.f3).await;
    assert_refused(&mut stream, "the replayed F3").await;
    refusals += 1.0;
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    // A truncated F1: 33 bytes announced, 10 sent, then our side closed.
    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    let mut truncated = vec![33, 1];
    truncated.extend_from_slice(&[7; 9]);
    stream.write_all(&truncated).await.unwrap();
    stream.close().await.unwrap();
    assert_refused(&mut stream, "a truncated F1").await;
    refusals += 1.0;
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    // An F1 announcing 2,049 bytes (one over the cap), the stream left open: only the prefix
    // can get it refused.
    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    stream.write_all(&[0x81, 0x10]).await.unwrap();
    stream.flush().await.unwrap();
    assert_refused(&mut stream, "an F1 over the cap").await;
    refusals += 1.0;
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    // Garbage, the stream left open: an HTTP request reads as a 71-byte F1 ('G') of version
    // 'E', and more than that is sent.
    let garbage = b"GET /berty/contact_req/1.0.0 HTTP/1.1\r\nHost: example.org\r\n\
                    User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    assert!(garbage.len() > 1 + usize::from(garbage[0]));
    let mut stream = peer.open(CONTACT_PROTOCOL).await;
    stream.write_all(garbage).await.unwrap();
    stream.flush().await.unwrap();
    assert_refused(&mut stream, "garbage").await;
    refusals += 1.0;
    wait_for_metric_at_least(&b.process, REFUSED, refusals).await;

    // A real request from another node still gets through.
    let mut a = person(backend, &r).await;
    enqueue(&mut a.client, &reference_bytes, b"hello after all that").await;
    let requested = within(
        "B receives A's request",
        wait_for_account_event(&mut b, T::ContactRequested, &a.id.account_pk),
    )
    .await;
    assert_eq!(requested.data, b"hello after all that");
    assert_eq!(
        metric_or_zero(&b.process, COMPLETED).await,
        1.0,
        "only A's handshake completed"
    );
    let refused = metric_or_zero(&b.process, REFUSED).await;
    assert!(
        refused >= refusals,
        "{refused} refused handshakes counted, {refusals} sessions refused"
    );
    assert_eq!(
        requested_by(&mut b).await,
        vec![a.id.account_pk.clone()],
        "the only request recorded is A's"
    );
    assert!(
        b.process.child.try_wait().unwrap().is_none(),
        "B's process is still running"
    );
}
