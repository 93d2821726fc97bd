//! The DISCOVER path: reads a page of registrations from the cookie's id on, as many as fit
//! in one response, and answers them with the cookie to send back
//! ([`super::DiscoverCookie`]).

use libp2p::PeerId;
use prost::Message as _;

use super::{check_namespace, Counters, DiscoverCookie, Refusal, Refused, RendezvousServer};
use crate::{
    rendezvous::wire::{
        Discover, DiscoverResponse, Message, MessageType, Register, ResponseStatus,
        MAX_RESPONSE_BYTES,
    },
    storage::rendezvous::StoredRegistration,
};

/// Room kept in a discover response for the cookie, status and framing: the registrations
/// fill at most [`MAX_RESPONSE_BYTES`] minus this.
const RESPONSE_OVERHEAD: usize = 1024;

impl RendezvousServer {
    /// Answers a DISCOVER from `peer`.
    pub(super) async fn discover(&self, peer: PeerId, discover: Discover) -> Message {
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
}

fn discover_response(response: DiscoverResponse) -> Message {
    Message {
        r#type: Some(MessageType::DiscoverResponse as i32),
        discover_response: Some(response),
        ..Default::default()
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
    use std::sync::atomic::Ordering;

    use libp2p::identity::Keypair;

    use super::*;
    use crate::rendezvous::{
        server::test_support::{
            discover, discover_answer, record_of, register, register_status, server, HOUR,
        },
        RecordFormat,
    };

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
}
