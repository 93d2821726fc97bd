//! The REGISTER path: validates a registration (namespace, TTL, signed record, sender) in
//! the caller's task, hands it to the batch queue ([`super::batch`]) and answers with the TTL
//! granted or the refusal.

use libp2p::PeerId;

use super::{
    check_namespace, granted_ttl, Counters, Refusal, Refused, RendezvousServer, MAX_RECORD_BYTES,
};
use crate::{
    rendezvous::{
        record,
        wire::{Message, MessageType, Register, RegisterResponse, ResponseStatus},
    },
    storage::rendezvous::{NewRegistration, RegisterOutcome},
};

impl RendezvousServer {
    /// Answers a REGISTER from `peer`.
    pub(super) async fn register(&self, peer: PeerId, register: Register) -> Message {
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

#[cfg(test)]
mod tests {
    use libp2p::identity::Keypair;

    use super::*;
    use crate::rendezvous::server::{
        test_support::{record_of, register, register_status, server, HOUR},
        DEFAULT_TTL_SECS,
    };

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
}
