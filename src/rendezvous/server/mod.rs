//! [`RendezvousServer`]: answers REGISTER, UNREGISTER and DISCOVER from the registrations in
//! storage ([`crate::storage::rendezvous`]).
//!
//! The server opens no sockets: the swarm hands it each inbound stream with the peer it came
//! from ([`RendezvousServer::serve_stream`]); [`RendezvousServer::handle`] answers a single
//! message. Clones share one state, so the swarm can serve from many tasks at once.
//!
//! This file holds the server, the dispatch of requests ([`RendezvousServer::handle`]), the
//! UNREGISTER path and the admin reads. Beside it:
//!
//! - `limits`: the protocol's bounds and defaults, [`RendezvousLimits`], and the namespace and
//!   TTL checks ([`check_namespace`], [`granted_ttl`]).
//! - `register`: the REGISTER path (validation, then the batch queue).
//! - `batch`: the queue that coalesces concurrent registrations into one transaction.
//! - `discover`: the DISCOVER path (paging, the response size cap).
//! - `cookie`: [`DiscoverCookie`], the paging cookie in rust-libp2p's encoding.
//! - `refusal`: [`Refusal`], why a request was refused (status and metric label).
//! - `stats`: [`RendezvousStats`] and the counters behind them.
//! - `stream`: [`RendezvousServer::serve_stream`], the requests of one inbound stream served
//!   in order until it ends, at most [`MAX_REQUESTS_PER_STREAM`].

mod batch;
mod cookie;
mod discover;
mod limits;
mod refusal;
mod register;
mod stats;
mod stream;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod test_support;

use std::{fmt, sync::Arc};

use libp2p::{Multiaddr, PeerId};

use self::{batch::BatchQueue, refusal::Refused, stats::Counters};
pub use self::{
    cookie::DiscoverCookie,
    limits::{
        check_namespace, granted_ttl, RendezvousLimits, DEFAULT_TTL_SECS, MAX_BATCH,
        MAX_DISCOVER_PAGE, MAX_NAMESPACE_BYTES, MAX_RECORD_BYTES, MAX_REGISTRATIONS,
        MAX_REGISTRATIONS_PER_PEER, MAX_TTL_SECS, MIN_TTL_SECS,
    },
    refusal::Refusal,
    stats::RendezvousStats,
    stream::{StreamEnd, MAX_REQUESTS_PER_STREAM},
};
use super::{
    record::{self, RecordFormat},
    wire::{Message, NotARequest, Request, Unregister},
};
use crate::storage::{Storage, StorageError};

/// The current time in unix seconds: [`RendezvousServer::with_clock`] takes one in place of
/// the system clock (tests, simulations).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

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

struct Inner {
    storage: Arc<dyn Storage>,
    limits: RendezvousLimits,
    default_ttl: u64,
    clock: Clock,
    /// Registrations validated and waiting for a committer.
    batch_queue: BatchQueue,
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

impl RendezvousServer {
    /// A server over `storage`'s registrations. `default_ttl_secs` is granted to
    /// registrations that ask for no TTL, brought within the limits' TTL range.
    pub fn new(storage: Arc<dyn Storage>, limits: RendezvousLimits, default_ttl_secs: u64) -> Self {
        Self::with_clock(
            storage,
            limits,
            default_ttl_secs,
            Arc::new(crate::clock::unix_now),
        )
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
                batch_queue: BatchQueue::default(),
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

    /// Answers one message from `peer`: a REGISTER_RESPONSE to a REGISTER (a message without
    /// `type` is one), a DISCOVER_RESPONSE to a DISCOVER, nothing to an UNREGISTER or to a
    /// message that is no request. Never fails: storage errors are answered with
    /// `E_UNAVAILABLE`.
    pub async fn handle(&self, peer: PeerId, message: Message) -> Option<Message> {
        match Request::try_from(message) {
            Ok(request) => self.answer(peer, request).await,
            Err(not_a_request) => {
                self.not_a_request(&peer, not_a_request);
                None
            }
        }
    }

    /// Answers one request from `peer` (nothing to an UNREGISTER).
    pub async fn answer(&self, peer: PeerId, request: Request) -> Option<Message> {
        match request {
            Request::Register(register) => Some(self.register(peer, register).await),
            Request::Unregister(unregister) => {
                self.unregister(peer, unregister).await;
                None
            }
            Request::Discover(discover) => Some(self.discover(peer, discover).await),
        }
    }

    /// Counts and logs a message from `peer` that is no request (it gets no answer).
    fn not_a_request(&self, peer: &PeerId, NotARequest(kind): NotARequest) {
        Counters::add(&self.inner.counters.malformed, 1);
        tracing::debug!(%peer, kind, "rendezvous message that is not a request");
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

    /// The namespaces holding unexpired registrations, each with how many, the fullest first,
    /// at most `limit` (over every node sharing the database).
    pub async fn namespaces(&self, limit: u32) -> Result<Vec<(String, u64)>, StorageError> {
        self.inner
            .storage
            .rendezvous()
            .namespaces(self.now(), limit)
            .await
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

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::{
        test_support::{record_of, register, register_status, server},
        Message, PeerId, Unregister, DEFAULT_TTL_SECS,
    };
    use crate::rendezvous::wire::{MessageType, ResponseStatus};

    #[tokio::test]
    async fn non_requests_get_no_answer() {
        let (server, _) = server().await;
        let peer = PeerId::random();
        for kind in [
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
        assert_eq!(server.stats().malformed, 3);
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
    async fn a_message_without_type_is_a_register() {
        let (server, _) = server().await;
        let key = Keypair::generate_ed25519();
        let mut request = register(Some("ns"), Some(record_of(&key)), None);
        request.r#type = None;
        let answer = server.handle(key.public().to_peer_id(), request).await;
        assert_eq!(
            register_status(answer),
            (ResponseStatus::Ok, Some(DEFAULT_TTL_SECS))
        );
        // Nothing at all: a REGISTER without a namespace, refused with its status.
        let answer = server.handle(PeerId::random(), Message::default()).await;
        assert_eq!(
            register_status(answer),
            (ResponseStatus::EInvalidNamespace, None)
        );
        assert_eq!(server.stats().malformed, 0);
    }
}
