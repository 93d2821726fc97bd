//! [`RendezvousServer`]: answers REGISTER, UNREGISTER and DISCOVER from the registrations in
//! storage ([`crate::storage::rendezvous`]).
//!
//! The server has no sockets: the swarm hands it each request with the peer it came from and
//! sends back what [`RendezvousServer::handle`] returns. Clones share one state, so the swarm
//! can answer from many tasks at once.
//!
//! # Registrations are committed in batches
//!
//! A REGISTER is validated (namespace, TTL, signed record, sender) in the caller's task, then
//! queued. The first caller to find no batch in flight becomes the committer: it takes the
//! queue (at most [`MAX_BATCH`] at a time) and stores it in one transaction, while the
//! registrations arriving meanwhile queue up for the next one. Each caller is answered once
//! the transaction holding its registration has committed. Under load one commit (one disk
//! sync on SQLite) serves many registrations.
//!
//! # Discover cookies
//!
//! A cookie is the big-endian `u64` id of the last registration the response holds, followed
//! by the namespace asked for (nothing for every namespace): the encoding rust-libp2p's
//! client parses. Ids come from one sequence in the database and are committed in increasing
//! order (see [`crate::storage::rendezvous`]), so a client sending its cookie back gets only
//! registrations newer than what it saw, from any node sharing the database. A refresh gets a
//! new id, so pollers see refreshed registrations again. A cookie that does not parse or names
//! another namespace than the request is refused with `E_INVALID_COOKIE`.

use std::{
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use tokio::sync::oneshot;

use super::{
    record::{self, RecordFormat},
    wire::{
        Discover, DiscoverResponse, Message, MessageType, Register, RegisterResponse,
        ResponseStatus, Unregister, MAX_RESPONSE_BYTES,
    },
};
use crate::storage::{
    rendezvous::{NewRegistration, RegisterOutcome, RegistrationCaps, StoredRegistration},
    Storage, StorageError,
};

/// TTL given to a registration that asks for none (the specification's default).
pub const DEFAULT_TTL_SECS: u64 = 2 * 60 * 60;
/// Shortest TTL accepted by default (the specification's recommendation).
pub const MIN_TTL_SECS: u64 = 2 * 60 * 60;
/// Longest TTL accepted by default (the specification's recommendation).
pub const MAX_TTL_SECS: u64 = 72 * 60 * 60;
/// Longest namespace, in bytes (the specification's).
pub const MAX_NAMESPACE_BYTES: usize = 255;
/// Largest signed peer record stored, in bytes: room for dozens of addresses, and a bound on
/// what one registration costs the database.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Most registrations one peer holds by default (the specification's recommendation).
pub const MAX_REGISTRATIONS_PER_PEER: u32 = 1000;
/// Most registrations stored by default, over every node sharing the database.
pub const MAX_REGISTRATIONS: u64 = 1_000_000;
/// Most registrations in one discover response (the specification's recommendation).
pub const MAX_DISCOVER_PAGE: u32 = 1000;
/// Most registrations committed in one transaction.
pub const MAX_BATCH: usize = 1000;
/// Room kept in a discover response for the cookie, status and framing: the registrations
/// fill at most [`MAX_RESPONSE_BYTES`] minus this.
const RESPONSE_OVERHEAD: usize = 1024;
/// Length of a cookie's id.
const COOKIE_ID_BYTES: usize = 8;

/// What the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RendezvousLimits {
    /// Shortest TTL a registration may ask for, in seconds.
    pub min_ttl_secs: u64,
    /// Longest TTL a registration may ask for, in seconds.
    pub max_ttl_secs: u64,
    /// Most registrations one peer holds (over all namespaces).
    pub max_registrations_per_peer: u32,
    /// Most registrations stored in all.
    pub max_registrations: u64,
    /// Most registrations in one discover response (a client asking for more gets this many).
    pub max_discover_page: u32,
}

impl Default for RendezvousLimits {
    /// The specification's recommendations.
    fn default() -> Self {
        Self {
            min_ttl_secs: MIN_TTL_SECS,
            max_ttl_secs: MAX_TTL_SECS,
            max_registrations_per_peer: MAX_REGISTRATIONS_PER_PEER,
            max_registrations: MAX_REGISTRATIONS,
            max_discover_page: MAX_DISCOVER_PAGE,
        }
    }
}

/// The current time in unix seconds: [`RendezvousServer::with_clock`] takes one in place of
/// the system clock (tests, simulations).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Why a request was refused: a closed set, for metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The namespace is missing, empty, over 255 bytes or holds a NUL (`E_INVALID_NAMESPACE`).
    InvalidNamespace,
    /// The TTL is outside the limits (`E_INVALID_TTL`).
    InvalidTtl,
    /// The signed peer record is missing, too large or does not verify
    /// (`E_INVALID_SIGNED_PEER_RECORD`).
    InvalidRecord,
    /// The record is another peer's than the sender's (`E_NOT_AUTHORIZED`).
    NotAuthorized,
    /// The peer holds its maximum of registrations (`E_NOT_AUTHORIZED`).
    PeerLimit,
    /// The server holds its maximum of registrations (`E_UNAVAILABLE`).
    TotalLimit,
    /// The discover cookie does not parse or is for another namespace (`E_INVALID_COOKIE`).
    InvalidCookie,
    /// Storage failed (`E_UNAVAILABLE`).
    Unavailable,
}

impl Refusal {
    /// Every reason, in the order of [`Refusal::as_str`]'s labels.
    pub const ALL: [Refusal; 8] = [
        Refusal::InvalidNamespace,
        Refusal::InvalidTtl,
        Refusal::InvalidRecord,
        Refusal::NotAuthorized,
        Refusal::PeerLimit,
        Refusal::TotalLimit,
        Refusal::InvalidCookie,
        Refusal::Unavailable,
    ];

    /// A metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidNamespace => "invalid_namespace",
            Refusal::InvalidTtl => "invalid_ttl",
            Refusal::InvalidRecord => "invalid_record",
            Refusal::NotAuthorized => "not_authorized",
            Refusal::PeerLimit => "peer_limit",
            Refusal::TotalLimit => "total_limit",
            Refusal::InvalidCookie => "invalid_cookie",
            Refusal::Unavailable => "unavailable",
        }
    }

    /// The status answered.
    pub fn status(self) -> ResponseStatus {
        match self {
            Refusal::InvalidNamespace => ResponseStatus::EInvalidNamespace,
            Refusal::InvalidTtl => ResponseStatus::EInvalidTtl,
            Refusal::InvalidRecord => ResponseStatus::EInvalidSignedPeerRecord,
            Refusal::NotAuthorized | Refusal::PeerLimit => ResponseStatus::ENotAuthorized,
            Refusal::TotalLimit | Refusal::Unavailable => ResponseStatus::EUnavailable,
            Refusal::InvalidCookie => ResponseStatus::EInvalidCookie,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters since the server was built (shared by its clones), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RendezvousStats {
    /// REGISTERs answered OK (new registrations and refreshes).
    pub registered: u64,
    /// Of those, refreshes that replaced the peer's registration in the namespace.
    pub refreshed: u64,
    /// UNREGISTERs that removed a registration.
    pub unregistered: u64,
    /// DISCOVERs answered OK.
    pub discovers: u64,
    /// Registrations returned by those discovers.
    pub discovered: u64,
    /// Requests without a known request type (no answer sent).
    pub malformed: u64,
    /// Registration transactions committed (or attempted): `registered / batches` is the
    /// mean batch size.
    pub batches: u64,
    refused: [u64; Refusal::ALL.len()],
}

impl RendezvousStats {
    /// Requests refused for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason.index()]
    }
}

/// A registration as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// Its id (the discover cookie sequence).
    pub id: u64,
    /// The namespace.
    pub namespace: String,
    /// The registered peer.
    pub peer_id: PeerId,
    /// The addresses its signed record announces.
    pub addresses: Vec<Multiaddr>,
    /// The record's envelope format.
    pub format: RecordFormat,
    /// Seconds left before it expires.
    pub ttl_secs: u64,
}

/// Where a client's discover paging stands: the last registration id it saw, and the
/// namespace it asked for (empty for every namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverCookie {
    /// Id of the newest registration already returned (0: none).
    pub last_id: u64,
    /// The namespace the cookie is valid for; empty for a discover of every namespace.
    pub namespace: String,
}

impl DiscoverCookie {
    /// Big-endian `last_id`, then the namespace's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(COOKIE_ID_BYTES + self.namespace.len());
        bytes.extend_from_slice(&self.last_id.to_be_bytes());
        bytes.extend_from_slice(self.namespace.as_bytes());
        bytes
    }

    /// Parses [`DiscoverCookie::encode`]'s bytes; `None` when they are not a cookie this
    /// server could have made.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (id, namespace) = bytes.split_at_checked(COOKIE_ID_BYTES)?;
        let last_id = u64::from_be_bytes(id.try_into().ok()?);
        if i64::try_from(last_id).is_err() || namespace.len() > MAX_NAMESPACE_BYTES {
            return None;
        }
        Some(Self {
            last_id,
            namespace: String::from_utf8(namespace.to_vec()).ok()?,
        })
    }
}

/// Checks a namespace: 1 to [`MAX_NAMESPACE_BYTES`] bytes, no NUL (which PostgreSQL text
/// cannot hold).
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("the namespace is empty".into());
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(format!(
            "the namespace is {} bytes, the limit is {MAX_NAMESPACE_BYTES}",
            namespace.len()
        ));
    }
    if namespace.contains('\0') {
        return Err("the namespace holds a NUL character".into());
    }
    Ok(())
}

/// The TTL granted for `requested` (absent or 0: `default`), or why it is refused.
pub fn granted_ttl(
    requested: Option<u64>,
    default: u64,
    limits: &RendezvousLimits,
) -> Result<u64, String> {
    match requested {
        None | Some(0) => Ok(default),
        Some(ttl) if (limits.min_ttl_secs..=limits.max_ttl_secs).contains(&ttl) => Ok(ttl),
        Some(ttl) => Err(format!(
            "a TTL of {ttl} s is outside {} s to {} s",
            limits.min_ttl_secs, limits.max_ttl_secs
        )),
    }
}

/// A refused request: why, and the status text.
type Refused = (Refusal, String);

/// A registration waiting for its batch.
struct Pending {
    /// `expires_at` is set when the batch commits.
    registration: NewRegistration,
    ttl: u64,
    reply: oneshot::Sender<Result<RegisterOutcome, String>>,
}

#[derive(Default)]
struct Counters {
    registered: AtomicU64,
    refreshed: AtomicU64,
    unregistered: AtomicU64,
    discovers: AtomicU64,
    discovered: AtomicU64,
    malformed: AtomicU64,
    batches: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RendezvousStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RendezvousStats {
            registered: get(&self.registered),
            refreshed: get(&self.refreshed),
            unregistered: get(&self.unregistered),
            discovers: get(&self.discovers),
            discovered: get(&self.discovered),
            malformed: get(&self.malformed),
            batches: get(&self.batches),
            refused: std::array::from_fn(|i| get(&self.refused[i])),
        }
    }
}

struct Inner {
    storage: Arc<dyn Storage>,
    limits: RendezvousLimits,
    default_ttl: u64,
    clock: Clock,
    /// Registrations validated and waiting for a committer.
    queue: Mutex<Vec<Pending>>,
    /// Held by the caller committing a batch.
    committer: tokio::sync::Mutex<()>,
    counters: Counters,
}

/// The rendezvous server. Cheap to clone; clones share the queue and counters.
#[derive(Clone)]
pub struct RendezvousServer {
    inner: Arc<Inner>,
}

impl fmt::Debug for RendezvousServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RendezvousServer")
            .field("limits", &self.inner.limits)
            .field("default_ttl", &self.inner.default_ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// The system clock in unix seconds.
fn system_clock() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn register_response(status: ResponseStatus, text: Option<String>, ttl: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::RegisterResponse as i32),
        register_response: Some(RegisterResponse {
            status: Some(status as i32),
            status_text: text,
            ttl,
        }),
        ..Default::default()
    }
}

fn discover_response(response: DiscoverResponse) -> Message {
    Message {
        r#type: Some(MessageType::DiscoverResponse as i32),
        discover_response: Some(response),
        ..Default::default()
    }
}

impl RendezvousServer {
    /// A server over `storage`'s registrations. `default_ttl_secs` is granted to
    /// registrations that ask for no TTL, brought within the limits' TTL range.
    pub fn new(storage: Arc<dyn Storage>, limits: RendezvousLimits, default_ttl_secs: u64) -> Self {
        Self::with_clock(storage, limits, default_ttl_secs, Arc::new(system_clock))
    }

    /// [`RendezvousServer::new`] reading the time from `clock` (unix seconds) instead of the
    /// system clock: for tests and simulations.
    pub fn with_clock(
        storage: Arc<dyn Storage>,
        limits: RendezvousLimits,
        default_ttl_secs: u64,
        clock: Clock,
    ) -> Self {
        let default_ttl = default_ttl_secs
            .max(limits.min_ttl_secs)
            .min(limits.max_ttl_secs);
        Self {
            inner: Arc::new(Inner {
                storage,
                limits,
                default_ttl,
                clock,
                queue: Mutex::new(Vec::new()),
                committer: tokio::sync::Mutex::new(()),
                counters: Counters::default(),
            }),
        }
    }

    /// The limits the server applies.
    pub fn limits(&self) -> &RendezvousLimits {
        &self.inner.limits
    }

    /// Counters since the server was built.
    pub fn stats(&self) -> RendezvousStats {
        self.inner.counters.snapshot()
    }

    fn now(&self) -> u64 {
        (self.inner.clock)()
    }

    fn refuse(&self, peer: &PeerId, (reason, text): &Refused) {
        Counters::add(&self.inner.counters.refused[reason.index()], 1);
        tracing::debug!(%peer, reason = reason.as_str(), %text, "rendezvous request refused");
    }

    /// Answers one request from `peer`: a REGISTER_RESPONSE to a REGISTER, a
    /// DISCOVER_RESPONSE to a DISCOVER, nothing to an UNREGISTER or to a message of another
    /// (or no) type. Never fails: storage errors are answered with `E_UNAVAILABLE`.
    pub async fn handle(&self, peer: PeerId, request: Message) -> Option<Message> {
        let kind = request.r#type.and_then(|t| MessageType::try_from(t).ok());
        match kind {
            Some(MessageType::Register) => Some(
                self.register(peer, request.register.unwrap_or_default())
                    .await,
            ),
            Some(MessageType::Unregister) => {
                self.unregister(peer, request.unregister.unwrap_or_default())
                    .await;
                None
            }
            Some(MessageType::Discover) => Some(
                self.discover(peer, request.discover.unwrap_or_default())
                    .await,
            ),
            _ => {
                Counters::add(&self.inner.counters.malformed, 1);
                tracing::debug!(
                    %peer,
                    kind = ?request.r#type,
                    "rendezvous message that is not a request"
                );
                None
            }
        }
    }

    async fn register(&self, peer: PeerId, register: Register) -> Message {
        match self.try_register(peer, register).await {
            Ok((ttl, replaced)) => {
                let counters = &self.inner.counters;
                Counters::add(&counters.registered, 1);
                if replaced {
                    Counters::add(&counters.refreshed, 1);
                }
                register_response(ResponseStatus::Ok, None, Some(ttl))
            }
            Err(refused) => {
                self.refuse(&peer, &refused);
                register_response(refused.0.status(), Some(refused.1), None)
            }
        }
    }

    /// Validates and stores a registration; returns the TTL granted and whether it replaced
    /// an earlier one.
    async fn try_register(&self, peer: PeerId, register: Register) -> Result<(u64, bool), Refused> {
        let namespace = register
            .ns
            .ok_or_else(|| (Refusal::InvalidNamespace, "the namespace is missing".into()))?;
        check_namespace(&namespace).map_err(|text| (Refusal::InvalidNamespace, text))?;
        let ttl = granted_ttl(register.ttl, self.inner.default_ttl, &self.inner.limits)
            .map_err(|text| (Refusal::InvalidTtl, text))?;
        let envelope = register.signed_peer_record.ok_or_else(|| {
            (
                Refusal::InvalidRecord,
                "the signed peer record is missing".into(),
            )
        })?;
        if envelope.len() > MAX_RECORD_BYTES {
            return Err((
                Refusal::InvalidRecord,
                format!(
                    "the signed peer record is {} bytes, the limit is {MAX_RECORD_BYTES}",
                    envelope.len()
                ),
            ));
        }
        let record =
            record::verify(&envelope).map_err(|err| (Refusal::InvalidRecord, err.to_string()))?;
        if record.peer_id != peer {
            return Err((
                Refusal::NotAuthorized,
                "the signed peer record is another peer's".into(),
            ));
        }
        let registration = NewRegistration {
            namespace,
            peer_id: peer.to_bytes(),
            record: envelope,
            expires_at: 0,
        };
        match self.commit(registration, ttl).await {
            Ok(RegisterOutcome::Registered { replaced }) => Ok((ttl, replaced)),
            Ok(RegisterOutcome::PeerLimit) => Err((
                Refusal::PeerLimit,
                format!(
                    "the peer holds {} registrations, the limit",
                    self.inner.limits.max_registrations_per_peer
                ),
            )),
            Ok(RegisterOutcome::TotalLimit) => Err((
                Refusal::TotalLimit,
                "the server holds all the registrations it can".into(),
            )),
            // Logged once per batch, by the committer.
            Err(_) => Err((Refusal::Unavailable, "storage is unavailable".into())),
        }
    }

    /// Queues a registration and returns once the batch holding it is committed, committing
    /// batches itself while no other caller does.
    async fn commit(
        &self,
        registration: NewRegistration,
        ttl: u64,
    ) -> Result<RegisterOutcome, String> {
        let (reply, mut answer) = oneshot::channel();
        self.queue().push(Pending {
            registration,
            ttl,
            reply,
        });
        let lost = || "the batch holding the registration was abandoned".to_owned();
        let _committer = tokio::select! {
            biased;
            answer = &mut answer => return answer.unwrap_or_else(|_| Err(lost())),
            committer = self.inner.committer.lock() => committer,
        };
        loop {
            match answer.try_recv() {
                Ok(answer) => return answer,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<Pending> = {
                let mut queue = self.queue();
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                // Unreachable: our registration is queued or was answered.
                return Err(lost());
            }
            self.commit_batch(batch).await;
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Pending>> {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a batch in one transaction and answers each caller.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let now = self.now();
        let (registrations, replies): (Vec<NewRegistration>, Vec<_>) = batch
            .into_iter()
            .map(|pending| {
                let registration = NewRegistration {
                    expires_at: now.saturating_add(pending.ttl),
                    ..pending.registration
                };
                (registration, pending.reply)
            })
            .unzip();
        let limits = &self.inner.limits;
        let caps = RegistrationCaps {
            per_peer: limits.max_registrations_per_peer,
            total: limits.max_registrations,
        };
        let stored = self
            .inner
            .storage
            .rendezvous()
            .register_batch(&registrations, caps, now)
            .await;
        Counters::add(&self.inner.counters.batches, 1);
        match stored {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller that went away misses its answer; its registration stands.
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let err = format!(
                    "storage answered {} outcomes for {} registrations",
                    outcomes.len(),
                    replies.len()
                );
                tracing::warn!(%err, "rendezvous registrations not stored");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
            Err(err) => {
                let err = err.to_string();
                tracing::warn!(
                    %err,
                    registrations = replies.len(),
                    "rendezvous registrations not stored"
                );
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }

    async fn unregister(&self, peer: PeerId, unregister: Unregister) {
        let Some(namespace) = unregister.ns else {
            return self.refuse(
                &peer,
                &(Refusal::InvalidNamespace, "the namespace is missing".into()),
            );
        };
        if let Err(text) = check_namespace(&namespace) {
            return self.refuse(&peer, &(Refusal::InvalidNamespace, text));
        }
        match self
            .inner
            .storage
            .rendezvous()
            .unregister(&namespace, &peer.to_bytes())
            .await
        {
            Ok(true) => Counters::add(&self.inner.counters.unregistered, 1),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%err, "rendezvous unregister failed");
                self.refuse(&peer, &(Refusal::Unavailable, err.to_string()));
            }
        }
    }

    async fn discover(&self, peer: PeerId, discover: Discover) -> Message {
        match self.try_discover(discover).await {
            Ok(response) => {
                let counters = &self.inner.counters;
                Counters::add(&counters.discovers, 1);
                Counters::add(&counters.discovered, response.registrations.len() as u64);
                discover_response(response)
            }
            Err(refused) => {
                self.refuse(&peer, &refused);
                discover_response(DiscoverResponse {
                    registrations: Vec::new(),
                    cookie: None,
                    status: Some(refused.0.status() as i32),
                    status_text: Some(refused.1),
                })
            }
        }
    }

    async fn try_discover(&self, discover: Discover) -> Result<DiscoverResponse, Refused> {
        // An empty namespace asks for every namespace, as an absent one (go-libp2p's client
        // sends "").
        let namespace = discover.ns.filter(|ns| !ns.is_empty());
        if let Some(namespace) = &namespace {
            check_namespace(namespace).map_err(|text| (Refusal::InvalidNamespace, text))?;
        }
        let scope = namespace.clone().unwrap_or_default();
        let after = match &discover.cookie {
            None => 0,
            Some(bytes) => match DiscoverCookie::decode(bytes) {
                Some(cookie) if cookie.namespace == scope => cookie.last_id,
                Some(_) => {
                    return Err((
                        Refusal::InvalidCookie,
                        "the cookie is for another namespace".into(),
                    ))
                }
                None => return Err((Refusal::InvalidCookie, "the cookie does not parse".into())),
            },
        };
        let page = self.inner.limits.max_discover_page;
        let limit = match discover.limit {
            None | Some(0) => page,
            Some(limit) => u32::try_from(limit).unwrap_or(u32::MAX).min(page),
        };
        let now = self.now();
        let stored = self
            .inner
            .storage
            .rendezvous()
            .discover(namespace.as_deref(), after, limit, now)
            .await
            .map_err(|err| {
                tracing::warn!(%err, "rendezvous discover failed");
                (Refusal::Unavailable, "storage is unavailable".to_owned())
            })?;
        let (registrations, last_id) = page_of(stored, after, now);
        Ok(DiscoverResponse {
            registrations,
            cookie: Some(
                DiscoverCookie {
                    last_id,
                    namespace: scope,
                }
                .encode(),
            ),
            status: Some(ResponseStatus::Ok as i32),
            status_text: None,
        })
    }

    /// Deletes expired registrations (discovers never return them anyway); returns how many.
    /// Run it now and then to keep the table small.
    pub async fn purge_expired(&self) -> Result<u64, StorageError> {
        self.inner
            .storage
            .rendezvous()
            .purge_expired(self.now())
            .await
    }

    /// Number of unexpired registrations (over every node sharing the database).
    pub async fn count(&self) -> Result<u64, StorageError> {
        self.inner.storage.rendezvous().count(self.now()).await
    }

    /// Unexpired registrations with an id above `after_id`, in `namespace` (every namespace
    /// when `None`), in id order, at most `limit`: the admin listing. Page with the last id
    /// returned.
    pub async fn registrations(
        &self,
        namespace: Option<&str>,
        after_id: u64,
        limit: u32,
    ) -> Result<Vec<RegistrationInfo>, StorageError> {
        let now = self.now();
        self.inner
            .storage
            .rendezvous()
            .discover(namespace, after_id, limit, now)
            .await?
            .into_iter()
            .map(|stored| {
                let record = record::verify(&stored.record).map_err(|err| {
                    StorageError::Corrupt(format!("stored registration {}: {err}", stored.id))
                })?;
                Ok(RegistrationInfo {
                    id: stored.id,
                    namespace: stored.namespace,
                    peer_id: record.peer_id,
                    addresses: record.addresses,
                    format: record.format,
                    ttl_secs: stored.expires_at.saturating_sub(now),
                })
            })
            .collect()
    }
}

/// The registrations of a discover response, as many of `stored` as fit in
/// [`MAX_RESPONSE_BYTES`], and the id of the last one (`after` when none).
fn page_of(stored: Vec<StoredRegistration>, after: u64, now: u64) -> (Vec<Register>, u64) {
    let budget = MAX_RESPONSE_BYTES - RESPONSE_OVERHEAD;
    let mut size = 0;
    let mut last_id = after;
    let mut registrations = Vec::with_capacity(stored.len());
    for stored in stored {
        let registration = Register {
            ns: Some(stored.namespace),
            signed_peer_record: Some(stored.record),
            ttl: Some(stored.expires_at.saturating_sub(now).max(1)),
        };
        let len = registration.encoded_len();
        // Tag, length and body of one `registrations` entry.
        let framed = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        if size + framed > budget {
            break;
        }
        size += framed;
        last_id = stored.id;
        registrations.push(registration);
    }
    (registrations, last_id)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use libp2p::{core::PeerRecord, identity::Keypair};

    use super::*;
    use crate::storage::sqlite::SqliteStorage;

    const HOUR: u64 = 60 * 60;

    async fn server() -> (RendezvousServer, Arc<AtomicU64>) {
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

    fn record_of(key: &Keypair) -> Vec<u8> {
        PeerRecord::new(key, vec!["/ip4/10.0.0.1/tcp/4040".parse().unwrap()])
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding()
    }

    fn register(ns: Option<&str>, record: Option<Vec<u8>>, ttl: Option<u64>) -> Message {
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

    fn discover(ns: Option<&str>, cookie: Option<Vec<u8>>, limit: Option<u64>) -> Message {
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

    fn register_status(answer: Option<Message>) -> (ResponseStatus, Option<u64>) {
        let answer = answer.expect("a register response");
        assert_eq!(answer.r#type, Some(MessageType::RegisterResponse as i32));
        let response = answer.register_response.unwrap();
        (response.status(), response.ttl)
    }

    fn discover_answer(answer: Option<Message>) -> DiscoverResponse {
        let answer = answer.expect("a discover response");
        assert_eq!(answer.r#type, Some(MessageType::DiscoverResponse as i32));
        answer.discover_response.unwrap()
    }

    #[test]
    fn namespaces_are_1_to_255_bytes_without_nul() {
        assert!(check_namespace("a").is_ok());
        assert!(check_namespace(&"é".repeat(127)).is_ok(), "254 bytes");
        assert!(check_namespace(&"x".repeat(255)).is_ok());
        assert!(check_namespace("").is_err());
        assert!(check_namespace(&"x".repeat(256)).is_err());
        assert!(check_namespace(&"é".repeat(128)).is_err(), "256 bytes");
        assert!(check_namespace("a\0b").is_err());
    }

    #[test]
    fn ttl_defaults_when_absent_or_zero_and_stays_in_range() {
        let limits = RendezvousLimits::default();
        assert_eq!(granted_ttl(None, 2 * HOUR, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(0), 2 * HOUR, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(2 * HOUR), 0, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(72 * HOUR), 0, &limits), Ok(72 * HOUR));
        assert!(granted_ttl(Some(2 * HOUR - 1), 0, &limits).is_err());
        assert!(granted_ttl(Some(72 * HOUR + 1), 0, &limits).is_err());
        assert!(granted_ttl(Some(u64::MAX), 0, &limits).is_err());
    }

    #[test]
    fn cookies_are_rust_libp2p_cookies() {
        let cookie = DiscoverCookie {
            last_id: 0x0102_0304_0506_0708,
            namespace: "ns".into(),
        };
        let bytes = cookie.encode();
        assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8, b'n', b's']);
        assert_eq!(DiscoverCookie::decode(&bytes), Some(cookie));
        let all = DiscoverCookie {
            last_id: 9,
            namespace: String::new(),
        };
        assert_eq!(all.encode().len(), 8);
        assert_eq!(DiscoverCookie::decode(&all.encode()), Some(all));
        assert_eq!(DiscoverCookie::decode(&[0; 7]), None);
        assert_eq!(DiscoverCookie::decode(&[0xff; 8]), None, "id over i64::MAX");
        assert_eq!(
            DiscoverCookie::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff]),
            None
        );
        let mut long = vec![0; 8];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(DiscoverCookie::decode(&long), None);
    }

    #[test]
    fn refusals_map_to_the_specified_statuses_and_distinct_labels() {
        let labels: std::collections::HashSet<_> =
            Refusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Refusal::ALL.len());
        for (i, reason) in Refusal::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        assert_eq!(Refusal::InvalidRecord.status() as i32, 101);
        assert_eq!(Refusal::NotAuthorized.status() as i32, 200);
        assert_eq!(Refusal::TotalLimit.status() as i32, 400);
        assert_eq!(Refusal::InvalidCookie.status() as i32, 103);
    }

    #[test]
    fn pages_stay_under_the_response_cap() {
        let stored: Vec<StoredRegistration> = (1..=40)
            .map(|id| StoredRegistration {
                id,
                namespace: "ns".into(),
                peer_id: vec![1],
                record: vec![0; 60 * 1024],
                expires_at: 100,
            })
            .collect();
        let (page, last) = page_of(stored, 0, 40);
        assert_eq!(page.len(), 17, "17 records of 60 KiB fit in 1 MiB");
        assert_eq!(last, 17);
        assert_eq!(page[0].ttl, Some(60));
        let response = DiscoverResponse {
            registrations: page,
            cookie: Some(vec![0; 8 + 255]),
            status: Some(0),
            status_text: None,
        };
        assert!(discover_response(response).encoded_len() <= MAX_RESPONSE_BYTES);
        assert_eq!(page_of(Vec::new(), 7, 0), (Vec::new(), 7));
    }

    #[tokio::test]
    async fn invalid_registrations_get_their_status() {
        let (server, _) = server().await;
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let record = record_of(&key);
        for (request, status) in [
            (
                register(None, Some(record.clone()), None),
                ResponseStatus::EInvalidNamespace,
            ),
            (
                register(Some(""), Some(record.clone()), None),
                ResponseStatus::EInvalidNamespace,
            ),
            (
                register(Some(&"x".repeat(256)), Some(record.clone()), None),
                ResponseStatus::EInvalidNamespace,
            ),
            (
                register(Some("a\0"), Some(record.clone()), None),
                ResponseStatus::EInvalidNamespace,
            ),
            (
                register(Some("ns"), Some(record.clone()), Some(HOUR)),
                ResponseStatus::EInvalidTtl,
            ),
            (
                register(Some("ns"), Some(record.clone()), Some(73 * HOUR)),
                ResponseStatus::EInvalidTtl,
            ),
            (
                register(Some("ns"), None, None),
                ResponseStatus::EInvalidSignedPeerRecord,
            ),
            (
                register(Some("ns"), Some(b"garbage".to_vec()), None),
                ResponseStatus::EInvalidSignedPeerRecord,
            ),
            (
                register(Some("ns"), Some(vec![0; MAX_RECORD_BYTES + 1]), None),
                ResponseStatus::EInvalidSignedPeerRecord,
            ),
            (
                register(
                    Some("ns"),
                    Some(record_of(&Keypair::generate_ed25519())),
                    None,
                ),
                ResponseStatus::ENotAuthorized,
            ),
        ] {
            let (got, ttl) = register_status(server.handle(peer, request).await);
            assert_eq!(got, status);
            assert_eq!(ttl, None);
        }
        let stats = server.stats();
        assert_eq!(stats.refused(Refusal::InvalidNamespace), 4);
        assert_eq!(stats.refused(Refusal::InvalidTtl), 2);
        assert_eq!(stats.refused(Refusal::InvalidRecord), 3);
        assert_eq!(stats.refused(Refusal::NotAuthorized), 1);
        assert_eq!(stats.registered, 0);
        assert_eq!(stats.batches, 0, "nothing invalid reaches storage");
        assert_eq!(server.count().await.unwrap(), 0);

        let (status, ttl) = register_status(
            server
                .handle(peer, register(Some("ns"), Some(record), None))
                .await,
        );
        assert_eq!((status, ttl), (ResponseStatus::Ok, Some(DEFAULT_TTL_SECS)));
        assert_eq!(server.stats().registered, 1);
    }

    #[tokio::test]
    async fn non_requests_get_no_answer() {
        let (server, _) = server().await;
        let peer = PeerId::random();
        for kind in [
            None,
            Some(MessageType::RegisterResponse as i32),
            Some(MessageType::DiscoverResponse as i32),
            Some(77),
        ] {
            let message = Message {
                r#type: kind,
                ..Default::default()
            };
            assert_eq!(server.handle(peer, message).await, None);
        }
        assert_eq!(server.stats().malformed, 4);
        let unregister = Message {
            r#type: Some(MessageType::Unregister as i32),
            unregister: Some(Unregister {
                ns: Some("ns".into()),
                id: None,
            }),
            ..Default::default()
        };
        assert_eq!(server.handle(peer, unregister).await, None);
    }

    #[tokio::test]
    async fn discover_refuses_bad_cookies_and_namespaces() {
        let (server, _) = server().await;
        let peer = PeerId::random();
        let other = DiscoverCookie {
            last_id: 0,
            namespace: "other".into(),
        }
        .encode();
        for (request, status) in [
            (
                discover(Some("ns"), Some(vec![1, 2, 3]), None),
                ResponseStatus::EInvalidCookie,
            ),
            (
                discover(Some("ns"), Some(other.clone()), None),
                ResponseStatus::EInvalidCookie,
            ),
            (
                discover(None, Some(other), None),
                ResponseStatus::EInvalidCookie,
            ),
            (
                discover(Some(&"x".repeat(256)), None, None),
                ResponseStatus::EInvalidNamespace,
            ),
        ] {
            let response = discover_answer(server.handle(peer, request).await);
            assert_eq!(response.status(), status);
            assert_eq!(response.cookie, None);
            assert!(response.registrations.is_empty());
        }
        assert_eq!(server.stats().refused(Refusal::InvalidCookie), 3);
        // An empty namespace means every namespace, like an absent one.
        let response = discover_answer(server.handle(peer, discover(Some(""), None, None)).await);
        assert_eq!(response.status(), ResponseStatus::Ok);
        assert_eq!(response.cookie, Some(vec![0; 8]));
    }

    #[tokio::test]
    async fn discover_returns_the_remaining_ttl_and_drops_expired_registrations() {
        let (server, time) = server().await;
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let (status, _) = register_status(
            server
                .handle(
                    peer,
                    register(Some("ns"), Some(record_of(&key)), Some(3 * HOUR)),
                )
                .await,
        );
        assert_eq!(status, ResponseStatus::Ok);
        time.fetch_add(HOUR, Ordering::Relaxed);
        let response = discover_answer(server.handle(peer, discover(Some("ns"), None, None)).await);
        assert_eq!(response.registrations.len(), 1);
        assert_eq!(response.registrations[0].ttl, Some(2 * HOUR));
        assert_eq!(response.registrations[0].ns.as_deref(), Some("ns"));
        let listed = server.registrations(None, 0, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].peer_id, peer);
        assert_eq!(listed[0].ttl_secs, 2 * HOUR);
        assert_eq!(listed[0].format, RecordFormat::Legacy);

        time.fetch_add(2 * HOUR, Ordering::Relaxed);
        let response = discover_answer(server.handle(peer, discover(Some("ns"), None, None)).await);
        assert!(response.registrations.is_empty(), "expired");
        assert_eq!(server.count().await.unwrap(), 0);
        assert_eq!(server.purge_expired().await.unwrap(), 1);
        assert_eq!(server.purge_expired().await.unwrap(), 0);
    }

    /// A client on libp2p's request-response with our codec, over TCP, against the server:
    /// REGISTER, DISCOVER, DISCOVER with the cookie, then UNREGISTER, which gets no answer
    /// (the client sees the stream close).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_over_a_real_stream() {
        use std::time::Duration;

        use futures::StreamExt;
        use libp2p::{
            noise,
            request_response::{self, ProtocolSupport},
            swarm::SwarmEvent,
            tcp, yamux, Swarm, SwarmBuilder,
        };

        use crate::rendezvous::wire::{RendezvousCodec, RENDEZVOUS_PROTOCOL};

        type Behaviour = request_response::Behaviour<RendezvousCodec>;
        fn swarm(key: Keypair, support: ProtocolSupport) -> Swarm<Behaviour> {
            SwarmBuilder::with_existing_identity(key)
                .with_tokio()
                .with_tcp(
                    tcp::Config::default(),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .unwrap()
                .with_behaviour(|_| {
                    request_response::Behaviour::with_codec(
                        RendezvousCodec,
                        [(RENDEZVOUS_PROTOCOL, support)],
                        request_response::Config::default(),
                    )
                })
                .unwrap()
                .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
                .build()
        }

        let (server, _) = server().await;
        let mut node = swarm(Keypair::generate_ed25519(), ProtocolSupport::Inbound);
        let client_key = Keypair::generate_ed25519();
        let mut client = swarm(client_key.clone(), ProtocolSupport::Outbound);
        let node_id = *node.local_peer_id();
        node.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let record = record_of(&client_key);

        let run = async {
            let mut answers = Vec::new();
            loop {
                tokio::select! {
                    event = node.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            client.dial(address).unwrap();
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            peer,
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        }) => {
                            // Dropping the channel (UNREGISTER) closes the stream unanswered.
                            if let Some(answer) = server.handle(peer, request).await {
                                node.behaviour_mut().send_response(channel, answer).unwrap();
                            }
                        }
                        _ => {}
                    },
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
        use std::time::Duration;

        use futures::StreamExt;
        use libp2p::{
            noise,
            request_response::{self, ProtocolSupport},
            swarm::SwarmEvent,
            tcp, yamux, SwarmBuilder,
        };
        use libp2p_rendezvous::{client, Namespace};

        use crate::rendezvous::wire::{RendezvousCodec, RENDEZVOUS_PROTOCOL};

        let (server, _) = server().await;
        let idle = Duration::from_secs(30);
        let mut node = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    RendezvousCodec,
                    [(RENDEZVOUS_PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default(),
                )
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        let mut client = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| client::Behaviour::new(key.clone()))
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build();
        let client_id = *client.local_peer_id();
        let node_id = *node.local_peer_id();
        node.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let announced: Multiaddr = "/ip4/10.1.2.3/tcp/4040".parse().unwrap();
        client.add_external_address(announced.clone());
        let namespace = Namespace::from_static("berty-test");

        let run = async {
            let mut cookie = None;
            loop {
                tokio::select! {
                    event = node.select_next_some() => match event {
                        SwarmEvent::NewListenAddr { address, .. } => {
                            client.dial(address).unwrap();
                        }
                        SwarmEvent::Behaviour(request_response::Event::Message {
                            peer,
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        }) => {
                            if let Some(answer) = server.handle(peer, request).await {
                                node.behaviour_mut().send_response(channel, answer).unwrap();
                            }
                        }
                        _ => {}
                    },
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
}
