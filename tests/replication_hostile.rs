//! A hostile peer against a real node process, on SQLite and on PostgreSQL: entries that are
//! malformed, forged (not signed by the group signing key), oversized or Lamport-violating,
//! and frames that are not frames. Each time: nothing is stored, the node does not crash, the
//! peer is penalised (disconnected, refused when it dials again) and the node keeps serving.
//!
//! The hostile peer is an in-process libp2p swarm speaking `/berty-node/sync/1.0.0` with a
//! valid invite (it holds the group's link key and signing key). It answers the node's hello as
//! an honest member would, so the node proves the group to it and treats it as a replica; then
//! it misbehaves along one of two paths (the two ways entries reach a node):
//!
//! - **fetch**: it claims a head the node lacks in the messages log, so the node fetches from
//!   it, and the fetch reply carries the bad entry;
//! - **announce**: it pushes the bad entry inline in a `SyncAnnounce` (allowed once the node's
//!   hello has proven the group with it: "by either side's hello", `docs/protocol.md`).
//!
//! Every hostile attempt uses a fresh identity, since a penalised one is refused. Every wait is
//! on a swarm event or a bounded poll of `/metrics`, never a fixed delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, io, time::Duration};

use berty_node::{
    crypto::{link_proof_tag, GroupKeys, LinkKey, SigningKey, LINK_NONCE_LEN},
    group::GroupReference,
    log::{
        Entry, EntryId, LogId, LogKind, ENTRY_SIGNATURE_LABEL, MAX_ENTRY_BYTES, MAX_PAYLOAD_BYTES,
    },
    p2p::sync_codec::{Frame, SyncCodec, MAX_REQUEST_BYTES, SYNC_PROTOCOL},
    proto::wire::{
        sync_request::Request, sync_response::Response, SyncAnnounce, SyncAnnounceReply,
        SyncFetchReply, SyncHead, SyncHeadsReply, SyncHelloReply, SyncLog, SyncLogHeads,
        SyncProveReply, SyncRequest, SyncResponse,
    },
    replication::wire::ERROR_NOT_PROVEN,
};
use common::protocol::{
    both_backends, metric, wait_for_metric, within, Backend, Home, TestNode, STEP_TIMEOUT,
};
use ed25519_dalek::Signer;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use libp2p::{
    identity::Keypair,
    multiaddr::Protocol,
    noise,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder,
};
use rand::{rngs::OsRng, RngCore};

both_backends!(
    bad_fetched_entries_are_refused_and_penalised,
    bad_announced_entries_are_refused_and_penalised,
    garbage_frames_are_penalised_and_the_node_keeps_serving,
    a_mirror_refuses_bad_fetched_entries_and_penalises,
    a_mirror_refuses_bad_announced_entries_and_penalises,
);

/// Admin token of the mirror under attack.
const ADMIN_TOKEN: &str = "hostile-test";

const PENALTIES: &str = "berty_node_p2p_penalties_total";
const REFUSED_PENALISED: &str = "berty_node_p2p_connections_denied_total{reason=\"penalty\"}";
const APPENDED_MESSAGES: &str = "berty_node_log_entries_appended_total{kind=\"messages\"}";
const APPENDED_METADATA: &str = "berty_node_log_entries_appended_total{kind=\"metadata\"}";

fn rejected(reason: &str) -> String {
    format!("berty_node_replication_rejected_total{{reason=\"{reason}\"}}")
}

// ---------------------------------------------------------------------------------------------
// The node under attack.

/// A node with replication on, one group, and what a member learns from the group's invite.
/// The node under attack is the group's member, or a mirror the member registered the group
/// with (a blind replica: it cannot read the history, so its stored entries are counted).
struct Target {
    node: TestNode,
    /// When the node under attack is a mirror: the member who writes, and the entries the
    /// mirror must hold.
    mirror_of: Option<(TestNode, u64)>,
    group: Vec<u8>,
    keys: GroupKeys,
    /// The node's first message (Lamport clock 1 in the messages log).
    first: EntryId,
    /// Payloads the node itself wrote, in order: its whole message history.
    sent: Vec<Vec<u8>>,
}

impl Target {
    async fn start(backend: Backend) -> Self {
        let home = Home::new(backend).await;
        let id = home.init().await;
        let mut node = TestNode::serve_with(
            home,
            id,
            &[
                ("BERTY_NODE__P2P__REPLICATION", "true"),
                ("BERTY_NODE__P2P__PENALTY_SECS", "600"),
            ],
        )
        .await;
        let group = node.create_group().await;
        let invite = node.invite(&group).await;
        let keys = GroupReference::decode(&invite)
            .expect("the invite decodes")
            .keys;
        let payload = b"written before any hostile peer".to_vec();
        let first = node.send(&group, &payload).await;
        let mut target = Self {
            node,
            mirror_of: None,
            group,
            keys,
            first: EntryId::from_slice(&first).expect("a 32-byte entry id"),
            sent: vec![payload],
        };
        target.assert_history_unchanged().await;
        target
    }

    /// A mirror node with the member's group registered: the node under attack is the mirror.
    async fn start_mirror(backend: Backend) -> Self {
        let member = Self::start(backend).await;
        let home = Home::new(backend).await;
        let id = home.init().await;
        let mirror = TestNode::serve_with(
            home,
            id,
            &[
                ("BERTY_NODE__P2P__REPLICATION", "true"),
                ("BERTY_NODE__P2P__PENALTY_SECS", "600"),
                ("BERTY_NODE__ADMIN__TOKEN", ADMIN_TOKEN),
            ],
        )
        .await;
        let (status, body) = common::node::http_post(
            mirror.process.admin_addr,
            "/admin/v1/mirror/tokens",
            Some(ADMIN_TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let token: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut client =
            berty_node::proto::node_api::mirror_service_client::MirrorServiceClient::connect(
                format!("http://{}", member.node.process.grpc_addr),
            )
            .await
            .expect("connect");
        within(
            "the member registers its group with the mirror",
            client.mirror_register(berty_node::proto::node_api::mirror_register::Request {
                group_pk: member.group.clone(),
                mirror_addr: mirror.process.p2p_addrs[0].clone(),
                token: token["token"].as_str().unwrap().to_owned(),
            }),
        )
        .await
        .expect("registration");
        // The member's binding, its chain key shared with itself, and its first message.
        let target = Self {
            node: mirror,
            mirror_of: Some((member.node, 3)),
            group: member.group,
            keys: member.keys,
            first: member.first,
            sent: member.sent,
        };
        target.wait_for_mirrored().await;
        target
    }

    /// A mirror target: polls the mirror's groups view until it holds what it must.
    async fn wait_for_mirrored(&self) {
        let Some((_, expected)) = &self.mirror_of else {
            return;
        };
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let (status, body) = common::node::http_get(
                self.node.process.admin_addr,
                "/admin/v1/mirror/groups",
                Some(ADMIN_TOKEN),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let groups: serde_json::Value = serde_json::from_str(&body).unwrap();
            let entries = groups[0]["entries"].as_u64().unwrap_or(0);
            if entries == *expected {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the mirror holds {entries} entries, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn messages_log(&self) -> LogId {
        LogId::new(self.keys.group_pk().to_bytes(), LogKind::Messages)
    }

    fn peer_id(&self) -> PeerId {
        self.node
            .process
            .peer_id
            .parse()
            .expect("the node's peer id")
    }

    /// The node's p2p address, with its peer id.
    fn addr(&self) -> Multiaddr {
        let mut addr: Multiaddr = self.node.process.p2p_addrs[0]
            .parse()
            .expect("a p2p address");
        if !addr.iter().any(|p| matches!(p, Protocol::P2p(_))) {
            addr.push(Protocol::P2p(self.peer_id()));
        }
        addr
    }

    /// A metric line's value (`name` or `name{labels}` as exposed); 0 while a labelled
    /// counter has not been touched yet (it is not exposed until then).
    async fn counter(&self, key: &str) -> f64 {
        let (status, body) = within(
            "GET /metrics",
            common::node::http_get(self.node.process.admin_addr, "/metrics", None),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body.lines()
            .find_map(|line| {
                let (k, v) = line.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0.0)
    }

    /// Polls `/metrics` until `key` reaches `value` (bounded, like the harness's
    /// `wait_for_metric`, which needs the metric to exist already).
    async fn wait_for_counter(&self, key: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let current = self.counter(key).await;
            if current == value {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{key} stayed at {current}, expected {value}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn snapshot(&self, reason: &str) -> Counters {
        Counters {
            penalties: metric(&self.node.process, PENALTIES).await,
            rejected: self.counter(&rejected(reason)).await,
            refused: self.counter(REFUSED_PENALISED).await,
            messages: self.counter(APPENDED_MESSAGES).await,
            metadata: self.counter(APPENDED_METADATA).await,
        }
    }

    /// The node's message history is exactly what it wrote itself (a mirror: it holds exactly
    /// the member's entries).
    async fn assert_history_unchanged(&mut self) {
        if self.mirror_of.is_some() {
            return self.wait_for_mirrored().await;
        }
        let history: Vec<Vec<u8>> = within(
            "the message history",
            self.node.message_history(&self.group),
        )
        .await
        .into_iter()
        .map(|e| e.payload)
        .collect();
        assert_eq!(history, self.sent, "the message history");
    }

    /// After an attack: the peer was penalised for `reason` (counted once), nothing was
    /// stored, the process is alive and the node still serves gRPC.
    async fn assert_penalised_and_serving(&mut self, what: &str, reason: &str, before: &Counters) {
        wait_for_metric(&self.node.process, PENALTIES, before.penalties + 1.0).await;
        // The rejection is counted before the penalty is asked of the swarm.
        let after = self.snapshot(reason).await;
        assert_eq!(
            after.rejected,
            before.rejected + 1.0,
            "{what}: one rejection counted as {}",
            rejected(reason)
        );
        assert_eq!(after.messages, before.messages, "{what}: no message stored");
        assert_eq!(
            after.metadata, before.metadata,
            "{what}: no metadata stored"
        );
        assert!(
            self.node
                .process
                .child
                .try_wait()
                .expect("query the node process")
                .is_none(),
            "{what}: the node is still running"
        );
        self.assert_history_unchanged().await;
        let payload = format!("still serving after {what}").into_bytes();
        match &mut self.mirror_of {
            Some((member, expected)) => {
                member.send(&self.group, &payload).await;
                *expected += 1;
            }
            None => {
                self.node.send(&self.group, &payload).await;
            }
        }
        self.sent.push(payload);
        self.assert_history_unchanged().await;
    }
}

/// Counters read before an attack.
struct Counters {
    penalties: f64,
    rejected: f64,
    refused: f64,
    messages: f64,
    metadata: f64,
}

// ---------------------------------------------------------------------------------------------
// Bad entries.

/// Encodes and signs an entry like `Entry::sign`, without its checks: the entries an honest
/// writer cannot produce (a root with a Lamport clock other than 1, a payload over the cap).
fn encode_unchecked(
    key: &SigningKey,
    log: LogId,
    parents: &[EntryId],
    lamport: u64,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = vec![1 << 3 | 2, LogId::LEN as u8];
    body.extend_from_slice(&log.to_bytes());
    for parent in parents {
        body.extend_from_slice(&[2 << 3 | 2, 32]);
        body.extend_from_slice(parent.as_bytes());
    }
    body.push(3 << 3);
    prost::encoding::encode_varint(lamport, &mut body);
    if !payload.is_empty() {
        body.push(4 << 3 | 2);
        prost::encoding::encode_varint(payload.len() as u64, &mut body);
        body.extend_from_slice(payload);
    }
    let signature = key.sign(&[ENTRY_SIGNATURE_LABEL, &body].concat());
    body.extend_from_slice(&[5 << 3 | 2, 64]);
    body.extend_from_slice(&signature.to_bytes());
    body
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// One bad entry, the head the hostile claims for it, and the rejection it must earn.
struct BadEntry {
    what: &'static str,
    bytes: Vec<u8>,
    /// The Lamport clock of the head the hostile claims (where the node starts fetching).
    head_lamport: u64,
    /// The `reason` label of `berty_node_replication_rejected_total`.
    reason: &'static str,
}

fn bad_entries(target: &Target) -> Vec<BadEntry> {
    let log = target.messages_log();
    let group_key = target.keys.signing_key();
    // The encoder above writes what `Entry::sign` writes, byte for byte.
    let honest = Entry::sign(group_key, log, vec![target.first], 2, b"honest").expect("sign");
    assert_eq!(
        encode_unchecked(group_key, log, &[target.first], 2, b"honest"),
        honest.bytes(),
        "encode_unchecked matches Entry::sign"
    );

    let valid = Entry::sign(group_key, log, Vec::new(), 1, &random_bytes(64)).expect("sign");
    let mut truncated = valid.into_bytes();
    truncated.pop();
    assert!(Entry::decode(&truncated).is_err());

    let forger = SigningKey::generate(&mut OsRng);
    let forged = Entry::sign(&forger, log, Vec::new(), 1, &random_bytes(64))
        .expect("sign")
        .into_bytes();

    let oversized = encode_unchecked(group_key, log, &[], 1, &random_bytes(MAX_ENTRY_BYTES));
    assert!(oversized.len() > MAX_ENTRY_BYTES && MAX_ENTRY_BYTES > MAX_PAYLOAD_BYTES);
    assert!(
        oversized.len() + 64 < MAX_REQUEST_BYTES,
        "fits in one announce"
    );

    let root_at_7 = encode_unchecked(group_key, log, &[], 7, &random_bytes(64));
    assert!(Entry::decode(&root_at_7).is_err());

    // The node's first message has clock 1: its child must have clock 2.
    let child_at_7 = Entry::sign(group_key, log, vec![target.first], 7, &random_bytes(64))
        .expect("sign")
        .into_bytes();

    vec![
        BadEntry {
            what: "a truncated entry",
            bytes: truncated,
            head_lamport: 1,
            reason: "malformed",
        },
        BadEntry {
            what: "an entry signed by another key than the group's",
            bytes: forged,
            head_lamport: 1,
            reason: "bad_signature",
        },
        BadEntry {
            what: "a correctly signed entry over MAX_ENTRY_BYTES",
            bytes: oversized,
            head_lamport: 1,
            reason: "malformed",
        },
        BadEntry {
            what: "a correctly signed root with Lamport clock 7",
            bytes: root_at_7,
            head_lamport: 7,
            reason: "malformed",
        },
        BadEntry {
            what: "a correctly signed child of a stored entry with a wrong Lamport clock",
            bytes: child_at_7,
            head_lamport: 7,
            reason: "lamport",
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The hostile peer speaking the sync protocol.

/// How the hostile peer delivers its bad entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// In the reply to the node's fetch of a head the hostile claims.
    Fetch,
    /// Inline in an announcement the hostile sends.
    Announce,
}

/// What the hostile saw before the node closed the connection.
#[derive(Debug, Default)]
struct Seen {
    /// The node proved it holds the group's link key (its `SyncProve` carried the tag).
    node_proved_group: bool,
    /// The node fetched from the hostile's claimed head.
    fetched: bool,
    /// The node's answer to the announcement.
    announce_reply: Option<SyncResponse>,
}

type SyncBehaviour = request_response::Behaviour<SyncCodec>;

/// A swarm with a fresh identity and nothing but TCP, Noise, Yamux and one request-response
/// protocol on the sync protocol's id.
fn swarm_with<C>(codec: C, support: ProtocolSupport) -> Swarm<request_response::Behaviour<C>>
where
    C: request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("TCP transport")
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                codec,
                [(SYNC_PROTOCOL, support)],
                request_response::Config::default(),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(STEP_TIMEOUT))
        .build()
}

/// A member gone bad: it answers the node's hello with a valid tag, then sends `entry` along
/// `path`, and follows the connection until the node closes it.
async fn deliver_bad_entry(
    swarm: &mut Swarm<SyncBehaviour>,
    target: &Target,
    entry: &BadEntry,
    path: Path,
) -> Seen {
    let node = target.peer_id();
    let link_key: &LinkKey = target.keys.link_key();
    let log = target.messages_log();
    let local = swarm.local_peer_id().to_bytes();
    let bad_head = SyncHead {
        id: random_bytes(32),
        lamport: entry.head_lamport,
    };
    let announce = SyncRequest {
        request: Some(Request::Announce(SyncAnnounce {
            log: Some(sync_log(&log)),
            heads: vec![bad_head.clone()],
            entries: vec![entry.bytes.clone()],
        })),
    };
    // Our hellos' nonces: responder nonce -> requester nonce.
    let mut hellos: HashMap<[u8; LINK_NONCE_LEN], [u8; LINK_NONCE_LEN]> = HashMap::new();
    let mut announced = false;
    let mut seen = Seen::default();
    swarm.dial(target.addr()).expect("dial the node");
    loop {
        let event = swarm.select_next_some().await;
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) if peer == node => {
                let Frame::Message(request) = request else {
                    panic!("the node sent an unparsable frame: {request:?}");
                };
                let response = match request.request {
                    Some(Request::Hello(hello)) => {
                        let requester: [u8; LINK_NONCE_LEN] =
                            hello.nonce.as_slice().try_into().expect("32-byte nonce");
                        let mut responder = [0u8; LINK_NONCE_LEN];
                        OsRng.fill_bytes(&mut responder);
                        hellos.insert(responder, requester);
                        let tag = link_proof_tag(link_key, &requester, &responder, &local);
                        Response::Hello(SyncHelloReply {
                            nonce: responder.to_vec(),
                            tags: vec![tag.to_vec()],
                        })
                    }
                    Some(Request::Prove(prove)) => {
                        let responder: [u8; LINK_NONCE_LEN] = prove
                            .responder_nonce
                            .as_slice()
                            .try_into()
                            .expect("32-byte nonce");
                        let requester = hellos.get(&responder).expect("a hello of ours");
                        let tag = link_proof_tag(link_key, requester, &responder, &node.to_bytes());
                        seen.node_proved_group |= prove.tags.contains(&tag.to_vec());
                        Response::Prove(SyncProveReply {
                            accepted: u32::from(seen.node_proved_group),
                        })
                    }
                    Some(Request::Heads(heads)) => {
                        let mut asks_messages = false;
                        let logs = heads
                            .logs
                            .into_iter()
                            .map(|l| {
                                let claim = path == Path::Fetch && l == sync_log(&log);
                                asks_messages |= l == sync_log(&log);
                                SyncLogHeads {
                                    log: Some(l),
                                    heads: if claim {
                                        vec![bad_head.clone()]
                                    } else {
                                        Vec::new()
                                    },
                                }
                            })
                            .collect();
                        // The node asks for heads once its hello with us is done, after it
                        // recorded our proof: our announcement is admissible from now on.
                        if path == Path::Announce && asks_messages && !announced {
                            announced = true;
                            swarm
                                .behaviour_mut()
                                .send_request(&node, Frame::Message(announce.clone()));
                        }
                        Response::Heads(SyncHeadsReply { logs })
                    }
                    Some(Request::Fetch(fetch)) => {
                        let ours =
                            path == Path::Fetch && fetch.log.as_ref() == Some(&sync_log(&log));
                        assert!(
                            !ours || fetch.from_lamport <= entry.head_lamport,
                            "the node fetches from at most our head's clock: {fetch:?}"
                        );
                        seen.fetched |= ours;
                        Response::Fetch(SyncFetchReply {
                            entries: if ours {
                                vec![entry.bytes.clone()]
                            } else {
                                Vec::new()
                            },
                            more: false,
                        })
                    }
                    Some(Request::Announce(_)) => Response::Announce(SyncAnnounceReply {}),
                    None => panic!("the node sent an empty request"),
                };
                let _ = swarm.behaviour_mut().send_response(
                    channel,
                    Frame::Message(SyncResponse {
                        response: Some(response),
                    }),
                );
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                let Frame::Message(response) = response else {
                    panic!("the node answered with an unparsable frame: {response:?}");
                };
                // The node's record of our proof may lag its request for heads by a message:
                // announce again when it says so.
                if matches!(&response.response, Some(Response::Error(e)) if e.code == ERROR_NOT_PROVEN)
                {
                    swarm
                        .behaviour_mut()
                        .send_request(&node, Frame::Message(announce.clone()));
                } else {
                    seen.announce_reply = Some(response);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id == node => return seen,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                panic!("cannot reach the node: {error}")
            }
            _ => {}
        }
    }
}

fn sync_log(log: &LogId) -> SyncLog {
    SyncLog {
        group_pk: log.group_pk().to_vec(),
        kind: u32::from(log.kind().as_byte()),
    }
}

/// Dials the node again with the penalised identity: the node refuses the connection (it
/// may get as far as the handshake, never further).
async fn redial_is_refused<B>(swarm: &mut Swarm<B>, node: PeerId, addr: Multiaddr)
where
    B: NetworkBehaviour,
{
    swarm.dial(addr).expect("dial the node again");
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id == node => return,
            SwarmEvent::OutgoingConnectionError { .. } => return,
            _ => {}
        }
    }
}

async fn bad_entries_are_refused(backend: Backend, path: Path) {
    bad_entries_are_refused_by(Target::start(backend).await, path).await;
}

async fn bad_entries_are_refused_by(mut target: Target, path: Path) {
    for entry in bad_entries(&target) {
        let what = format!("{} ({path:?})", entry.what);
        let before = target.snapshot(entry.reason).await;
        let mut hostile = swarm_with(SyncCodec::default(), ProtocolSupport::Full);
        let seen = within(
            &format!("{what}: the node closes the connection"),
            deliver_bad_entry(&mut hostile, &target, &entry, path),
        )
        .await;
        assert!(
            seen.node_proved_group,
            "{what}: the node proved the group: {seen:?}"
        );
        match path {
            Path::Fetch => assert!(seen.fetched, "{what}: the node fetched: {seen:?}"),
            Path::Announce => assert!(
                matches!(
                    seen.announce_reply,
                    None | Some(SyncResponse {
                        response: Some(Response::Announce(_))
                    })
                ),
                "{what}: the announcement was taken, not refused as unproven: {seen:?}"
            ),
        }
        target
            .assert_penalised_and_serving(&what, entry.reason, &before)
            .await;
        within(
            &format!("{what}: the node refuses the penalised peer"),
            redial_is_refused(&mut hostile, target.peer_id(), target.addr()),
        )
        .await;
        target
            .wait_for_counter(REFUSED_PENALISED, before.refused + 1.0)
            .await;
    }
}

async fn bad_fetched_entries_are_refused_and_penalised(backend: Backend) {
    bad_entries_are_refused(backend, Path::Fetch).await;
}

async fn bad_announced_entries_are_refused_and_penalised(backend: Backend) {
    bad_entries_are_refused(backend, Path::Announce).await;
}

async fn a_mirror_refuses_bad_fetched_entries_and_penalises(backend: Backend) {
    bad_entries_are_refused_by(Target::start_mirror(backend).await, Path::Fetch).await;
}

async fn a_mirror_refuses_bad_announced_entries_and_penalises(backend: Backend) {
    bad_entries_are_refused_by(Target::start_mirror(backend).await, Path::Announce).await;
}

// ---------------------------------------------------------------------------------------------
// Garbage frames.

/// A codec that writes requests as given, bytes on the wire with no framing of its own.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(1024).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(1024).read_to_end(&mut buf).await?;
        Ok(buf)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&request).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&response).await?;
        io.flush().await
    }
}

/// Connects with a fresh identity, sends `bytes` as a sync request once connected, and follows
/// the connection until the node closes it.
async fn send_garbage(
    swarm: &mut Swarm<request_response::Behaviour<RawCodec>>,
    target: &Target,
    bytes: &[u8],
) {
    let node = target.peer_id();
    swarm.dial(target.addr()).expect("dial the node");
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == node => {
                swarm.behaviour_mut().send_request(&node, bytes.to_vec());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } if peer_id == node => return,
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                panic!("cannot reach the node: {error}")
            }
            _ => {}
        }
    }
}

async fn garbage_frames_are_penalised_and_the_node_keeps_serving(backend: Backend) {
    let mut target = Target::start(backend).await;
    // A complete frame whose body is not a `SyncRequest` (a truncated varint field key).
    let unparsable = vec![5u8, 0xff, 0xff, 0xff, 0xff, 0xff];
    // A length over the request cap: refused before the body is read.
    let mut over_cap = Vec::new();
    prost::encoding::encode_varint(MAX_REQUEST_BYTES as u64 + 1, &mut over_cap);
    // A length that is not a valid varint (eleven continuation bytes).
    let bad_varint = vec![0xffu8; 11];
    for (what, bytes) in [
        ("an unparsable frame", unparsable),
        ("a frame over the request cap", over_cap),
        ("a frame length that is not a varint", bad_varint),
    ] {
        let before = target.snapshot("protocol").await;
        // Outbound only: the node's hello to this peer fails (unsupported protocol), so the
        // garbage is the only thing this peer ever says.
        let mut hostile = swarm_with(RawCodec, ProtocolSupport::Outbound);
        within(
            &format!("{what}: the node closes the connection"),
            send_garbage(&mut hostile, &target, &bytes),
        )
        .await;
        target
            .assert_penalised_and_serving(what, "protocol", &before)
            .await;
        within(
            &format!("{what}: the node refuses the penalised peer"),
            redial_is_refused(&mut hostile, target.peer_id(), target.addr()),
        )
        .await;
        target
            .wait_for_counter(REFUSED_PENALISED, before.refused + 1.0)
            .await;
    }
}
