//! Rendezvous registrations on every backend: the store behind `Storage::rendezvous` and the
//! `RendezvousServer` over it.
//!
//! `rendezvous_tests!` instantiates each test once per backend: `sqlite::*` on a file in a
//! temp dir, `postgres::*` on a fresh database per test (see `common::postgres`; an
//! unreachable server fails the tests).
//!
//! The benchmark (100,000 registrations, then discover latencies) is ignored by default:
//! `cargo test --release --test rendezvous_storage -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use berty_node::{
    rendezvous::{
        server::{DiscoverCookie, Refusal, RendezvousLimits, RendezvousServer},
        wire::{Discover, Message, MessageType, Register, ResponseStatus, Unregister},
        RecordFormat,
    },
    storage::{
        rendezvous::{NewRegistration, RegisterOutcome, RegistrationCaps, StoredRegistration},
        Storage,
    },
};
use libp2p::{core::PeerRecord, identity::Keypair, Multiaddr, PeerId};

common::fixture_tests! {
    ignore: "benchmark: cargo test --release --test rendezvous_storage -- --ignored --nocapture",
    backends: {
        sqlite => Fixture::sqlite,
        postgres => Fixture::postgres,
    },
    tests: [
        store_discovers_in_id_order_by_namespace,
        store_refresh_replaces_with_a_new_id,
        store_caps_count_only_unexpired_registrations,
        store_unregister_and_purge_keep_the_counts,
        store_counts_a_peer_with_many_registrations,
        store_counts_registrations_per_namespace,
        register_then_discover_returns_the_record_as_received,
        discover_pages_with_cookies,
        refresh_replaces_the_old_registration,
        unregister_removes_only_the_senders_registration,
        per_peer_and_total_caps,
        ttl_limits_and_default,
        expired_registrations_are_never_returned,
        concurrent_registrations_are_committed_in_batches,
        two_servers_on_one_database_answer_the_same,
        registrations_survive_reopening,
    ],
    benches: [registration_throughput_and_discover_latency],
}

use common::store::StoreFixture as Fixture;

const HOUR: u64 = 60 * 60;
/// The time the tests start at (unix seconds).
const START: u64 = 1_700_000_000;

/// A clock the tests move by hand.
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(AtomicU64::new(START)))
    }

    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::Relaxed);
    }
}

fn server_with(
    storage: Arc<dyn Storage>,
    limits: RendezvousLimits,
    clock: &TestClock,
) -> RendezvousServer {
    let time = Arc::clone(&clock.0);
    RendezvousServer::with_clock(
        storage,
        limits,
        2 * HOUR,
        Arc::new(move || time.load(Ordering::Relaxed)),
    )
}

fn server(storage: Arc<dyn Storage>, clock: &TestClock) -> RendezvousServer {
    server_with(storage, RendezvousLimits::default(), clock)
}

/// A peer with its key, and records it signs.
struct Peer {
    key: Keypair,
}

impl Peer {
    fn new() -> Self {
        Self {
            key: Keypair::generate_ed25519(),
        }
    }

    fn id(&self) -> PeerId {
        self.key.public().to_peer_id()
    }

    /// A legacy-format record (rust-libp2p's `PeerRecord::new`) announcing `port`.
    fn record(&self, port: u16) -> Vec<u8> {
        PeerRecord::new(&self.key, vec![address(port)])
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding()
    }

    /// A standard-format record (go and js peers') announcing `port`.
    fn standard_record(&self, port: u16) -> Vec<u8> {
        PeerRecord::new_interop(&self.key, vec![address(port)])
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding()
    }
}

fn address(port: u16) -> Multiaddr {
    format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap()
}

fn register_request(namespace: &str, record: Vec<u8>, ttl: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::Register as i32),
        register: Some(Register {
            ns: Some(namespace.to_owned()),
            signed_peer_record: Some(record),
            ttl,
        }),
        ..Default::default()
    }
}

fn discover_request(namespace: Option<&str>, cookie: Option<Vec<u8>>, limit: u64) -> Message {
    Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(Discover {
            ns: namespace.map(str::to_owned),
            limit: Some(limit),
            cookie,
        }),
        ..Default::default()
    }
}

/// Registers `record` for `peer`; returns the status and granted TTL.
async fn register(
    server: &RendezvousServer,
    peer: PeerId,
    namespace: &str,
    record: Vec<u8>,
    ttl: Option<u64>,
) -> (ResponseStatus, Option<u64>) {
    let answer = server
        .handle(peer, register_request(namespace, record, ttl))
        .await
        .expect("REGISTER is answered");
    assert_eq!(answer.r#type, Some(MessageType::RegisterResponse as i32));
    let response = answer.register_response.expect("a register response");
    (response.status(), response.ttl)
}

/// Registers `peer`'s legacy record in `namespace` with the default TTL; asserts it is OK.
async fn register_ok(server: &RendezvousServer, peer: &Peer, namespace: &str) {
    let (status, ttl) = register(server, peer.id(), namespace, peer.record(4040), None).await;
    assert_eq!((status, ttl), (ResponseStatus::Ok, Some(2 * HOUR)));
}

/// One discover page: registrations and cookie, asserting the status is OK.
async fn discover(
    server: &RendezvousServer,
    namespace: Option<&str>,
    cookie: Option<Vec<u8>>,
    limit: u64,
) -> (Vec<Register>, Vec<u8>) {
    let answer = server
        .handle(PeerId::random(), discover_request(namespace, cookie, limit))
        .await
        .expect("DISCOVER is answered");
    assert_eq!(answer.r#type, Some(MessageType::DiscoverResponse as i32));
    let response = answer.discover_response.expect("a discover response");
    assert_eq!(
        response.status(),
        ResponseStatus::Ok,
        "{:?}",
        response.status_text
    );
    (response.registrations, response.cookie.expect("a cookie"))
}

/// The status of a discover that is expected to fail.
async fn discover_status(
    server: &RendezvousServer,
    namespace: Option<&str>,
    cookie: Option<Vec<u8>>,
) -> ResponseStatus {
    let answer = server
        .handle(PeerId::random(), discover_request(namespace, cookie, 10))
        .await
        .expect("DISCOVER is answered");
    answer
        .discover_response
        .expect("a discover response")
        .status()
}

/// The peer ids of discovered registrations (their records parsed).
fn peers_of(registrations: &[Register]) -> Vec<PeerId> {
    registrations
        .iter()
        .map(|r| {
            berty_node::rendezvous::record::verify(r.signed_peer_record.as_deref().unwrap())
                .unwrap()
                .peer_id
        })
        .collect()
}

fn new_registration(peer: u8, namespace: &str, expires_at: u64) -> NewRegistration {
    NewRegistration {
        namespace: namespace.to_owned(),
        peer_id: vec![peer; 8],
        record: format!("record of {peer} in {namespace} until {expires_at}").into_bytes(),
        expires_at,
    }
}

const BIG_CAPS: RegistrationCaps = RegistrationCaps {
    per_peer: 1000,
    total: 1_000_000,
};

fn registered(replaced: bool) -> RegisterOutcome {
    RegisterOutcome::Registered { replaced }
}

// ---------------------------------------------------------------------------------------
// The store.
// ---------------------------------------------------------------------------------------

async fn store_discovers_in_id_order_by_namespace(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let now = START;
    let batch: Vec<NewRegistration> = (1..=6)
        .map(|p| new_registration(p, if p % 2 == 0 { "even" } else { "odd" }, now + HOUR))
        .collect();
    assert_eq!(
        store.register_batch(&batch, BIG_CAPS, now).await.unwrap(),
        vec![registered(false); 6]
    );
    let all = store.discover(None, 0, 100, now).await.unwrap();
    assert_eq!(all.len(), 6);
    let ids: Vec<u64> = all.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "id order: {ids:?}");
    for (stored, given) in all.iter().zip(&batch) {
        assert_eq!(
            stored,
            &StoredRegistration {
                id: stored.id,
                namespace: given.namespace.clone(),
                peer_id: given.peer_id.clone(),
                record: given.record.clone(),
                expires_at: given.expires_at,
            }
        );
    }
    let even = store.discover(Some("even"), 0, 100, now).await.unwrap();
    assert_eq!(
        even.iter().map(|r| r.peer_id[0]).collect::<Vec<_>>(),
        vec![2, 4, 6]
    );
    // Paging: after the first even one, at most one.
    let page = store
        .discover(Some("even"), even[0].id, 1, now)
        .await
        .unwrap();
    assert_eq!(page, vec![even[1].clone()]);
    assert!(store
        .discover(Some("even"), even[2].id, 10, now)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .discover(Some("none"), 0, 10, now)
        .await
        .unwrap()
        .is_empty());
    assert!(store.discover(None, 0, 0, now).await.unwrap().is_empty());
    assert_eq!(store.count(now).await.unwrap(), 6);
    // Expired at `expires_at` exactly.
    assert!(store
        .discover(None, 0, 10, now + HOUR)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.count(now + HOUR).await.unwrap(), 0);
}

async fn store_counts_registrations_per_namespace(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let now = START;
    assert!(store.namespaces(now, 10).await.unwrap().is_empty());
    // "b": three unexpired; "a" and "c": one each; "old": expired by `now + 1`.
    let batch: Vec<NewRegistration> =
        [("b", 2), ("a", 2), ("b", 2), ("c", 2), ("b", 2), ("old", 1)]
            .iter()
            .enumerate()
            .map(|(i, (ns, hours))| new_registration(i as u8 + 1, ns, now + hours * HOUR))
            .collect();
    store.register_batch(&batch, BIG_CAPS, now).await.unwrap();
    let counts = |list: Vec<(String, u64)>| {
        list.into_iter()
            .map(|(ns, n)| format!("{ns}={n}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(store.namespaces(now + 1, 10).await.unwrap()),
        ["b=3", "a=1", "c=1", "old=1"],
        "the fullest first, then by name"
    );
    assert_eq!(
        counts(store.namespaces(now + HOUR, 2).await.unwrap()),
        ["b=3", "a=1"],
        "expired ones are left out; at most the limit"
    );
}

async fn store_refresh_replaces_with_a_new_id(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let now = START;
    let first = new_registration(1, "ns", now + HOUR);
    let other = new_registration(2, "ns", now + HOUR);
    store
        .register_batch(&[first.clone(), other.clone()], BIG_CAPS, now)
        .await
        .unwrap();
    let before = store.discover(Some("ns"), 0, 10, now).await.unwrap();
    let refreshed = new_registration(1, "ns", now + 3 * HOUR);
    // Twice in one batch: the later one wins.
    let twice = [new_registration(1, "ns", now + 2 * HOUR), refreshed.clone()];
    assert_eq!(
        store.register_batch(&twice, BIG_CAPS, now).await.unwrap(),
        vec![registered(true), registered(true)]
    );
    let after = store.discover(Some("ns"), 0, 10, now).await.unwrap();
    assert_eq!(after.len(), 2, "one registration per peer and namespace");
    assert_eq!(after[0].peer_id, other.peer_id);
    assert_eq!(after[1].record, refreshed.record);
    assert_eq!(after[1].expires_at, now + 3 * HOUR);
    assert!(after[1].id > before[1].id, "a refresh gets a new id");
    assert_eq!(store.count(now).await.unwrap(), 2);
    // The same peer in another namespace is another registration.
    assert_eq!(
        store
            .register_batch(&[new_registration(1, "other", now + HOUR)], BIG_CAPS, now)
            .await
            .unwrap(),
        vec![registered(false)]
    );
    assert_eq!(store.count(now).await.unwrap(), 3);
}

async fn store_caps_count_only_unexpired_registrations(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let caps = RegistrationCaps {
        per_peer: 2,
        total: 3,
    };
    let now = START;
    let batch = [
        new_registration(1, "a", now + 10),
        new_registration(1, "b", now + HOUR),
        new_registration(1, "c", now + HOUR),
        new_registration(2, "a", now + HOUR),
        new_registration(3, "a", now + HOUR),
    ];
    assert_eq!(
        store.register_batch(&batch, caps, now).await.unwrap(),
        vec![
            registered(false),
            registered(false),
            RegisterOutcome::PeerLimit,
            registered(false),
            RegisterOutcome::TotalLimit,
        ]
    );
    assert_eq!(store.count(now).await.unwrap(), 3);
    // Once peer 1's first registration expires, both caps have room again.
    let later = now + 20;
    assert_eq!(store.count(later).await.unwrap(), 2);
    assert_eq!(
        store
            .register_batch(
                &[
                    new_registration(1, "c", later + HOUR),
                    new_registration(3, "a", later + HOUR)
                ],
                caps,
                later,
            )
            .await
            .unwrap(),
        vec![registered(false), RegisterOutcome::TotalLimit]
    );
    // A refresh is never refused for the caps.
    assert_eq!(
        store
            .register_batch(&[new_registration(2, "a", later + 2 * HOUR)], caps, later)
            .await
            .unwrap(),
        vec![registered(true)]
    );
    let namespaces: BTreeSet<(u8, String)> = store
        .discover(None, 0, 10, later)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.peer_id[0], r.namespace))
        .collect();
    assert_eq!(
        namespaces,
        BTreeSet::from([
            (1, "b".to_owned()),
            (1, "c".to_owned()),
            (2, "a".to_owned())
        ])
    );
}

async fn store_unregister_and_purge_keep_the_counts(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let caps = RegistrationCaps {
        per_peer: 1,
        total: 3,
    };
    let now = START;
    let batch = [
        new_registration(1, "a", now + 10),
        new_registration(2, "a", now + 10),
        new_registration(3, "a", now + HOUR),
    ];
    store.register_batch(&batch, caps, now).await.unwrap();
    assert!(store.unregister("a", &[3; 8]).await.unwrap());
    assert!(
        !store.unregister("a", &[3; 8]).await.unwrap(),
        "already gone"
    );
    assert!(
        !store.unregister("b", &[1; 8]).await.unwrap(),
        "other namespace"
    );
    assert_eq!(store.count(now).await.unwrap(), 2);
    // Peer 3 has room again, peer 1 not yet.
    assert_eq!(
        store
            .register_batch(
                &[
                    new_registration(3, "b", now + HOUR),
                    new_registration(1, "b", now + HOUR)
                ],
                caps,
                now,
            )
            .await
            .unwrap(),
        vec![registered(false), RegisterOutcome::PeerLimit]
    );
    assert_eq!(store.purge_expired(now + 5).await.unwrap(), 0);
    assert_eq!(store.purge_expired(now + 10).await.unwrap(), 2);
    assert_eq!(store.count(now).await.unwrap(), 1, "purged rows are gone");
    // The caps see the room made by the purge: peers 1 and 2 may register again, and the
    // total is back to one registration.
    let refill = [
        new_registration(1, "c", now + HOUR),
        new_registration(2, "c", now + HOUR),
        new_registration(3, "c", now + HOUR),
        new_registration(4, "c", now + HOUR),
    ];
    assert_eq!(
        store.register_batch(&refill, caps, now + 10).await.unwrap(),
        vec![
            registered(false),
            registered(false),
            RegisterOutcome::PeerLimit,
            RegisterOutcome::TotalLimit
        ]
    );
}

/// A peer holding many registrations (more than one batch's worth): its count follows
/// refreshes, expiry and unregisters.
async fn store_counts_a_peer_with_many_registrations(fx: Fixture) {
    let store = fx.storage.rendezvous();
    let caps = RegistrationCaps {
        per_peer: 1500,
        total: 1_000_000,
    };
    let now = START;
    let batch: Vec<_> = (0..1200)
        .map(|i| {
            let expiry = if i < 200 { now + 10 } else { now + HOUR };
            new_registration(1, &format!("ns-{i}"), expiry)
        })
        .collect();
    for chunk in batch.chunks(700) {
        let outcomes = store.register_batch(chunk, caps, now).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == registered(false)));
    }
    // Refreshing all 1,200 and adding 301: 300 fit.
    let mut more = batch.clone();
    more.extend((1200..1501).map(|i| new_registration(1, &format!("ns-{i}"), now + HOUR)));
    let outcomes = store.register_batch(&more, caps, now).await.unwrap();
    assert!(outcomes[..1200].iter().all(|o| *o == registered(true)));
    assert!(outcomes[1200..1500].iter().all(|o| *o == registered(false)));
    assert_eq!(outcomes[1500], RegisterOutcome::PeerLimit);
    assert_eq!(store.count(now).await.unwrap(), 1500);
    // 200 expire; 2 are unregistered: 202 places free up.
    assert!(store.unregister("ns-500", &[1; 8]).await.unwrap());
    assert!(store.unregister("ns-501", &[1; 8]).await.unwrap());
    let later = now + 10;
    let again: Vec<_> = (2000..2203)
        .map(|i| new_registration(1, &format!("ns-{i}"), later + HOUR))
        .collect();
    let outcomes = store.register_batch(&again, caps, later).await.unwrap();
    assert!(outcomes[..202].iter().all(|o| *o == registered(false)));
    assert_eq!(outcomes[202], RegisterOutcome::PeerLimit);
    assert_eq!(store.count(later).await.unwrap(), 1500);
}

// ---------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------

async fn register_then_discover_returns_the_record_as_received(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let legacy = Peer::new();
    let standard = Peer::new();
    let legacy_record = legacy.record(1);
    let standard_record = standard.standard_record(2);
    assert_eq!(
        register(
            &server,
            legacy.id(),
            "ns",
            legacy_record.clone(),
            Some(3 * HOUR)
        )
        .await,
        (ResponseStatus::Ok, Some(3 * HOUR))
    );
    assert_eq!(
        register(&server, standard.id(), "ns", standard_record.clone(), None).await,
        (ResponseStatus::Ok, Some(2 * HOUR))
    );
    clock.advance(60);
    let (registrations, cookie) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(
        registrations,
        vec![
            Register {
                ns: Some("ns".into()),
                signed_peer_record: Some(legacy_record),
                ttl: Some(3 * HOUR - 60),
            },
            Register {
                ns: Some("ns".into()),
                signed_peer_record: Some(standard_record),
                ttl: Some(2 * HOUR - 60),
            },
        ]
    );
    let cookie = DiscoverCookie::decode(&cookie).unwrap();
    assert_eq!(cookie.namespace, "ns");
    let listed = server.registrations(Some("ns"), 0, 10).await.unwrap();
    assert_eq!(cookie.last_id, listed[1].id);
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.peer_id, r.format, r.addresses.clone()))
            .collect::<Vec<_>>(),
        vec![
            (legacy.id(), RecordFormat::Legacy, vec![address(1)]),
            (standard.id(), RecordFormat::Standard, vec![address(2)]),
        ]
    );
    // A record signed by another key than the sender's is refused.
    let (status, _) = register(&server, legacy.id(), "ns", standard.record(3), None).await;
    assert_eq!(status, ResponseStatus::ENotAuthorized);
    let stats = server.stats();
    assert_eq!(stats.registered, 2);
    assert_eq!(stats.refused(Refusal::NotAuthorized), 1);
    assert_eq!((stats.discovers, stats.discovered), (1, 2));
}

async fn discover_pages_with_cookies(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let peers: Vec<Peer> = (0..25).map(|_| Peer::new()).collect();
    for peer in &peers {
        register_ok(&server, peer, "ns").await;
    }
    let elsewhere = Peer::new();
    register_ok(&server, &elsewhere, "elsewhere").await;

    let mut seen = Vec::new();
    let mut cookie = None;
    for expected in [10, 10, 5, 0] {
        let (page, next) = discover(&server, Some("ns"), cookie.clone(), 10).await;
        assert_eq!(page.len(), expected);
        seen.extend(peers_of(&page));
        cookie = Some(next);
    }
    assert_eq!(
        seen,
        peers.iter().map(Peer::id).collect::<Vec<_>>(),
        "every registration once, in order"
    );
    // A registration after the last page: the cookie yields it alone.
    let late = Peer::new();
    register_ok(&server, &late, "ns").await;
    let (page, next) = discover(&server, Some("ns"), cookie.clone(), 10).await;
    assert_eq!(peers_of(&page), vec![late.id()]);
    let (page, _) = discover(&server, Some("ns"), Some(next), 10).await;
    assert!(page.is_empty());

    // A limit above the page cap gets the cap; no limit gets the cap too.
    let capped = server_with(
        fx.storage(),
        RendezvousLimits {
            max_discover_page: 7,
            ..RendezvousLimits::default()
        },
        &clock,
    );
    assert_eq!(discover(&capped, Some("ns"), None, 1000).await.0.len(), 7);
    assert_eq!(discover(&capped, Some("ns"), None, 0).await.0.len(), 7);

    // Every namespace: an all-namespaces cookie.
    let (all, all_cookie) = discover(&server, None, None, 100).await;
    assert_eq!(all.len(), 27);
    assert!(peers_of(&all).contains(&elsewhere.id()));
    assert_eq!(DiscoverCookie::decode(&all_cookie).unwrap().namespace, "");

    // Cookies of another namespace, or malformed ones, are refused.
    assert_eq!(
        discover_status(&server, Some("elsewhere"), cookie.clone()).await,
        ResponseStatus::EInvalidCookie
    );
    assert_eq!(
        discover_status(&server, None, cookie).await,
        ResponseStatus::EInvalidCookie
    );
    assert_eq!(
        discover_status(&server, Some("ns"), Some(all_cookie)).await,
        ResponseStatus::EInvalidCookie
    );
    assert_eq!(
        discover_status(&server, Some("ns"), Some(b"short".to_vec())).await,
        ResponseStatus::EInvalidCookie
    );
}

async fn refresh_replaces_the_old_registration(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let peer = Peer::new();
    let other = Peer::new();
    register_ok(&server, &peer, "ns").await;
    register_ok(&server, &other, "ns").await;
    let (_, cookie) = discover(&server, Some("ns"), None, 10).await;

    clock.advance(HOUR);
    let new_record = peer.record(5000);
    assert_eq!(
        register(
            &server,
            peer.id(),
            "ns",
            new_record.clone(),
            Some(10 * HOUR)
        )
        .await,
        (ResponseStatus::Ok, Some(10 * HOUR))
    );
    let (all, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(
        peers_of(&all),
        vec![other.id(), peer.id()],
        "only the new one"
    );
    assert_eq!(all[1].signed_peer_record.as_ref(), Some(&new_record));
    assert_eq!(all[1].ttl, Some(10 * HOUR));
    // A poller with an older cookie sees the refreshed registration again.
    let (newer, _) = discover(&server, Some("ns"), Some(cookie), 10).await;
    assert_eq!(peers_of(&newer), vec![peer.id()]);
    assert_eq!(server.count().await.unwrap(), 2);
    let stats = server.stats();
    assert_eq!((stats.registered, stats.refreshed), (3, 1));
    // The old TTL no longer holds it: past it, the refreshed registration is still there.
    clock.advance(2 * HOUR);
    let (all, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(peers_of(&all), vec![peer.id()]);
}

async fn unregister_removes_only_the_senders_registration(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let alice = Peer::new();
    let bob = Peer::new();
    register_ok(&server, &alice, "ns").await;
    register_ok(&server, &alice, "other").await;
    register_ok(&server, &bob, "ns").await;
    let unregister = |namespace: &str| Message {
        r#type: Some(MessageType::Unregister as i32),
        unregister: Some(Unregister {
            ns: Some(namespace.to_owned()),
            // Naming another peer changes nothing: only the sender's own goes.
            id: Some(bob.id().to_bytes()),
        }),
        ..Default::default()
    };
    assert_eq!(server.handle(alice.id(), unregister("ns")).await, None);
    let (ns, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(peers_of(&ns), vec![bob.id()]);
    let (other, _) = discover(&server, Some("other"), None, 10).await;
    assert_eq!(peers_of(&other), vec![alice.id()]);
    assert_eq!(server.handle(alice.id(), unregister("ns")).await, None);
    assert_eq!(server.stats().unregistered, 1);
    assert_eq!(server.count().await.unwrap(), 2);
}

async fn per_peer_and_total_caps(fx: Fixture) {
    let clock = TestClock::new();
    let limits = RendezvousLimits {
        max_registrations_per_peer: 2,
        max_registrations: 3,
        ..RendezvousLimits::default()
    };
    let server = server_with(fx.storage(), limits, &clock);
    let alice = Peer::new();
    let bob = Peer::new();
    let carol = Peer::new();
    register_ok(&server, &alice, "a").await;
    register_ok(&server, &alice, "b").await;
    let (status, _) = register(&server, alice.id(), "c", alice.record(1), None).await;
    assert_eq!(status, ResponseStatus::ENotAuthorized, "per-peer cap");
    // A refresh does not count twice.
    register_ok(&server, &alice, "b").await;
    register_ok(&server, &bob, "a").await;
    let (status, _) = register(&server, carol.id(), "a", carol.record(1), None).await;
    assert_eq!(status, ResponseStatus::EUnavailable, "total cap");
    let stats = server.stats();
    assert_eq!(stats.refused(Refusal::PeerLimit), 1);
    assert_eq!(stats.refused(Refusal::TotalLimit), 1);
    // Unregistering makes room.
    let unregister = Message {
        r#type: Some(MessageType::Unregister as i32),
        unregister: Some(Unregister {
            ns: Some("a".into()),
            id: None,
        }),
        ..Default::default()
    };
    server.handle(alice.id(), unregister).await;
    register_ok(&server, &carol, "a").await;
    assert_eq!(server.count().await.unwrap(), 3);
}

async fn ttl_limits_and_default(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let peer = Peer::new();
    for (ttl, expected) in [
        (Some(2 * HOUR - 1), (ResponseStatus::EInvalidTtl, None)),
        (Some(72 * HOUR + 1), (ResponseStatus::EInvalidTtl, None)),
        (None, (ResponseStatus::Ok, Some(2 * HOUR))),
        (Some(0), (ResponseStatus::Ok, Some(2 * HOUR))),
        (Some(2 * HOUR), (ResponseStatus::Ok, Some(2 * HOUR))),
        (Some(72 * HOUR), (ResponseStatus::Ok, Some(72 * HOUR))),
    ] {
        assert_eq!(
            register(&server, peer.id(), "ns", peer.record(1), ttl).await,
            expected,
            "{ttl:?}"
        );
    }
    let (all, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].ttl, Some(72 * HOUR));
    assert_eq!(server.stats().refused(Refusal::InvalidTtl), 2);
}

async fn expired_registrations_are_never_returned(fx: Fixture) {
    let clock = TestClock::new();
    let limits = RendezvousLimits {
        min_ttl_secs: 10,
        ..RendezvousLimits::default()
    };
    let server = server_with(fx.storage(), limits, &clock);
    let short = Peer::new();
    let long = Peer::new();
    assert_eq!(
        register(&server, short.id(), "ns", short.record(1), Some(10))
            .await
            .0,
        ResponseStatus::Ok
    );
    assert_eq!(
        register(&server, long.id(), "ns", long.record(1), Some(HOUR))
            .await
            .0,
        ResponseStatus::Ok
    );
    clock.advance(9);
    let (all, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(all[0].ttl, Some(1));
    clock.advance(1);
    for namespace in [Some("ns"), None] {
        let (all, _) = discover(&server, namespace, None, 10).await;
        assert_eq!(peers_of(&all), vec![long.id()], "{namespace:?}");
    }
    assert_eq!(server.registrations(None, 0, 10).await.unwrap().len(), 1);
    assert_eq!(server.count().await.unwrap(), 1);
    assert_eq!(server.purge_expired().await.unwrap(), 1);
    clock.advance(HOUR);
    let (all, _) = discover(&server, None, None, 10).await;
    assert!(all.is_empty());
    assert_eq!(server.count().await.unwrap(), 0);
}

async fn concurrent_registrations_are_committed_in_batches(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    const PEERS: usize = 300;
    let tasks: Vec<_> = (0..PEERS)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move {
                let peer = Peer::new();
                let namespace = format!("ns{}", i % 3);
                let status = register(&server, peer.id(), &namespace, peer.record(1), None)
                    .await
                    .0;
                (peer.id(), status)
            })
        })
        .collect();
    let mut registered = BTreeSet::new();
    for task in tasks {
        let (peer, status) = task.await.unwrap();
        assert_eq!(status, ResponseStatus::Ok);
        registered.insert(peer);
    }
    assert_eq!(server.count().await.unwrap(), PEERS as u64);
    let (all, _) = discover(&server, None, None, 1000).await;
    assert_eq!(
        peers_of(&all).into_iter().collect::<BTreeSet<_>>(),
        registered
    );
    let stats = server.stats();
    assert_eq!(stats.registered, PEERS as u64);
    assert!(
        stats.batches < PEERS as u64,
        "{} registrations took {} transactions",
        PEERS,
        stats.batches
    );
}

async fn two_servers_on_one_database_answer_the_same(fx: Fixture) {
    let clock = TestClock::new();
    let first = server(fx.storage(), &clock);
    let second = server(fx.open_again().await, &clock);
    let peers: Vec<Peer> = (0..6).map(|_| Peer::new()).collect();
    for (i, peer) in peers.iter().enumerate() {
        // Alternate nodes, as clients spread over a fleet would.
        let node = if i % 2 == 0 { &first } else { &second };
        register_ok(node, peer, "ns").await;
    }
    let (from_first, first_cookie) = discover(&first, Some("ns"), None, 100).await;
    let (from_second, second_cookie) = discover(&second, Some("ns"), None, 100).await;
    assert_eq!(from_first, from_second);
    assert_eq!(first_cookie, second_cookie);
    assert_eq!(
        peers_of(&from_first),
        peers.iter().map(Peer::id).collect::<Vec<_>>()
    );
    // Paging started on one node continues on the other.
    let (page, cookie) = discover(&first, Some("ns"), None, 4).await;
    assert_eq!(page.len(), 4);
    let (rest, _) = discover(&second, Some("ns"), Some(cookie), 4).await;
    assert_eq!(peers_of(&rest), vec![peers[4].id(), peers[5].id()]);
    // A refresh on one node replaces the registration made on the other.
    let (status, _) = register(&second, peers[0].id(), "ns", peers[0].record(9), None).await;
    assert_eq!(status, ResponseStatus::Ok);
    assert_eq!(first.count().await.unwrap(), 6);
    let (fresh, _) = discover(&first, Some("ns"), Some(first_cookie), 100).await;
    assert_eq!(peers_of(&fresh), vec![peers[0].id()]);
}

async fn registrations_survive_reopening(fx: Fixture) {
    let clock = TestClock::new();
    let peers: Vec<Peer> = (0..3).map(|_| Peer::new()).collect();
    let cookie = {
        let server = server(fx.storage(), &clock);
        for peer in &peers {
            register_ok(&server, peer, "ns").await;
        }
        discover(&server, Some("ns"), None, 2).await.1
    };
    let fx = fx.reopen().await;
    let server = server(fx.storage(), &clock);
    let (all, _) = discover(&server, Some("ns"), None, 10).await;
    assert_eq!(
        peers_of(&all),
        peers.iter().map(Peer::id).collect::<Vec<_>>()
    );
    // A cookie from before the restart still pages on.
    let (rest, _) = discover(&server, Some("ns"), Some(cookie), 10).await;
    assert_eq!(peers_of(&rest), vec![peers[2].id()]);
    // Ids keep growing after the restart.
    let late = Peer::new();
    register_ok(&server, &late, "ns").await;
    let listed = server.registrations(Some("ns"), 0, 10).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(listed[3].peer_id, late.id());
}

// ---------------------------------------------------------------------------------------
// Benchmark.
// ---------------------------------------------------------------------------------------

/// Registrations stored by the benchmark: half in one big namespace, half spread over
/// [`BENCH_NAMESPACES`] small ones.
const BENCH_REGISTRATIONS: usize = 100_000;
const BENCH_NAMESPACES: usize = 100;
/// Concurrent registering clients.
const BENCH_CLIENTS: usize = 256;

async fn registration_throughput_and_discover_latency(fx: Fixture) {
    let clock = TestClock::new();
    let server = server(fx.storage(), &clock);
    let started = Instant::now();
    let requests: Vec<(PeerId, Message)> = (0..BENCH_REGISTRATIONS)
        .map(|i| {
            let peer = Peer::new();
            let namespace = if i % 2 == 0 {
                "big".to_owned()
            } else {
                format!("namespace-{}", i % BENCH_NAMESPACES)
            };
            (
                peer.id(),
                register_request(&namespace, peer.record(4040), None),
            )
        })
        .collect();
    println!(
        "{BENCH_REGISTRATIONS} records signed in {:?}",
        started.elapsed()
    );

    let requests = Arc::new(std::sync::Mutex::new(requests));
    let started = Instant::now();
    let clients: Vec<_> = (0..BENCH_CLIENTS)
        .map(|_| {
            let server = server.clone();
            let requests = Arc::clone(&requests);
            tokio::spawn(async move {
                loop {
                    let Some((peer, request)) = requests.lock().unwrap().pop() else {
                        return;
                    };
                    let answer = server.handle(peer, request).await.unwrap();
                    assert_eq!(
                        answer.register_response.unwrap().status(),
                        ResponseStatus::Ok
                    );
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = server.stats();
    println!(
        "{} registrations in {elapsed:?}: {:.0}/s, {} transactions ({:.1} a batch)",
        stats.registered,
        stats.registered as f64 / elapsed.as_secs_f64(),
        stats.batches,
        stats.registered as f64 / stats.batches as f64
    );
    assert_eq!(server.count().await.unwrap(), BENCH_REGISTRATIONS as u64);

    let middle = DiscoverCookie {
        last_id: BENCH_REGISTRATIONS as u64 / 2,
        namespace: "big".into(),
    }
    .encode();
    let small = |i: usize| {
        Some(format!(
            "namespace-{}",
            1 + 2 * (i % (BENCH_NAMESPACES / 2))
        ))
    };
    let big = |_: usize| Some("big".to_owned());
    let every = |_: usize| None;
    type Case<'a> = (
        &'a str,
        &'a dyn Fn(usize) -> Option<String>,
        Option<Vec<u8>>,
        u64,
    );
    let cases: [Case; 5] = [
        ("small namespace, page of 100", &small, None, 100),
        ("small namespace, page of 1000", &small, None, 1000),
        ("big namespace, page of 1000", &big, None, 1000),
        (
            "big namespace, page of 100 after a cookie",
            &big,
            Some(middle),
            100,
        ),
        ("every namespace, page of 100", &every, None, 100),
    ];
    for (label, namespace, cookie, limit) in cases {
        let mut latencies = Vec::new();
        for i in 0..1000 {
            let request = discover_request(namespace(i).as_deref(), cookie.clone(), limit);
            let started = Instant::now();
            let answer = server.handle(PeerId::random(), request).await.unwrap();
            latencies.push(started.elapsed());
            let response = answer.discover_response.unwrap();
            assert_eq!(response.status(), ResponseStatus::Ok);
            assert!(!response.registrations.is_empty());
        }
        latencies.sort();
        let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "discover, {label}: p50 {:?}, p99 {:?}, max {:?}",
            p(0.5),
            p(0.99),
            latencies[latencies.len() - 1]
        );
        assert!(p(0.99) < Duration::from_secs(1));
    }
}
