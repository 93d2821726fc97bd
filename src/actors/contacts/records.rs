//! The contact state this account keeps as node values (sealed): the request settings, one
//! record per contact or pending request, one outbox item per request not delivered yet. The
//! generated types (`bertynode_wire.proto`) are seen only here; a stored value that does not
//! parse is corrupt local data.

use prost::Message;

use crate::{
    crypto::{parse_public_key, RendezvousSeed, VerifyingKey},
    error::Error,
    group::ContactReference,
    proto::wire,
};

/// Version written in the stored records; another version is refused as corrupt.
const RECORD_VERSION: u32 = 1;

/// Where a contact stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// We asked them (`ContactRequestEnqueue`); not accepted yet.
    Outgoing,
    /// They asked us; waiting for `ContactRequestAccept`.
    Incoming,
    /// Both sides are in the contact group.
    Accepted,
}

/// The account's contact-request settings.
#[derive(Debug, Clone, Default)]
pub struct ContactSettings {
    /// Whether incoming requests are taken.
    pub enabled: bool,
    /// The seed of the rendezvous points; none until the first enable or reset.
    pub rendezvous_seed: Option<RendezvousSeed>,
}

/// A contact, or a pending request either way.
#[derive(Debug, Clone)]
pub struct ContactRecord {
    /// Their account key.
    pub account: VerifyingKey,
    /// Where the contact stands.
    pub state: ContactState,
    /// Their requests and messages are dropped.
    pub blocked: bool,
    /// Outgoing: our meta; incoming: theirs.
    pub meta: Vec<u8>,
    /// Their rendezvous seed (outgoing requests).
    pub rendezvous_seed: Option<RendezvousSeed>,
}

/// An outgoing contact request not delivered yet.
#[derive(Clone)]
pub struct OutboxItem {
    /// Whom to reach, and where.
    pub target: ContactReference,
    /// What we show them.
    pub meta: Vec<u8>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt_unix: u64,
}

impl ContactSettings {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        wire::ContactSettings {
            version: RECORD_VERSION,
            enabled: self.enabled,
            rendezvous_seed: seed_bytes(&self.rendezvous_seed),
        }
        .encode_to_vec()
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "stored contact settings";
        let wire = wire::ContactSettings::decode(bytes).map_err(|e| Error::decode(WHAT, e))?;
        check_version(WHAT, wire.version)?;
        Ok(Self {
            enabled: wire.enabled,
            rendezvous_seed: seed(WHAT, &wire.rendezvous_seed)?,
        })
    }
}

impl ContactRecord {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let state = match self.state {
            ContactState::Outgoing => wire::ContactState::Outgoing,
            ContactState::Incoming => wire::ContactState::Incoming,
            ContactState::Accepted => wire::ContactState::Accepted,
        };
        wire::ContactRecord {
            version: RECORD_VERSION,
            account_pk: self.account.to_bytes().to_vec(),
            state: state as i32,
            blocked: self.blocked,
            meta: self.meta.clone(),
            rendezvous_seed: seed_bytes(&self.rendezvous_seed),
        }
        .encode_to_vec()
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "stored contact record";
        let wire = wire::ContactRecord::decode(bytes).map_err(|e| Error::decode(WHAT, e))?;
        check_version(WHAT, wire.version)?;
        let state = match wire::ContactState::try_from(wire.state) {
            Ok(wire::ContactState::Outgoing) => ContactState::Outgoing,
            Ok(wire::ContactState::Incoming) => ContactState::Incoming,
            Ok(wire::ContactState::Accepted) => ContactState::Accepted,
            _ => return Err(corrupt(WHAT, &format!("unknown state {}", wire.state))),
        };
        Ok(Self {
            account: parse_public_key(&wire.account_pk)
                .map_err(|_| corrupt(WHAT, "bad account key"))?,
            state,
            blocked: wire.blocked,
            meta: wire.meta,
            rendezvous_seed: seed(WHAT, &wire.rendezvous_seed)?,
        })
    }
}

impl OutboxItem {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        wire::OutboxItem {
            version: RECORD_VERSION,
            target: Some(self.target.to_wire()),
            meta: self.meta.clone(),
            attempts: self.attempts,
            next_attempt_unix: self.next_attempt_unix,
        }
        .encode_to_vec()
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "stored outbox item";
        let wire = wire::OutboxItem::decode(bytes).map_err(|e| Error::decode(WHAT, e))?;
        check_version(WHAT, wire.version)?;
        let target = wire.target.ok_or_else(|| corrupt(WHAT, "no target"))?;
        Ok(Self {
            target: ContactReference::from_wire(&target)
                .map_err(|e| corrupt(WHAT, &e.to_string()))?,
            meta: wire.meta,
            attempts: wire.attempts,
            next_attempt_unix: wire.next_attempt_unix,
        })
    }
}

fn corrupt(what: &str, why: &str) -> Error {
    Error::Internal(format!("{what}: {why}"))
}

fn check_version(what: &str, version: u32) -> Result<(), Error> {
    if version == RECORD_VERSION {
        Ok(())
    } else {
        Err(corrupt(what, &format!("unknown version {version}")))
    }
}

fn seed(what: &str, bytes: &[u8]) -> Result<Option<RendezvousSeed>, Error> {
    if bytes.is_empty() {
        return Ok(None);
    }
    RendezvousSeed::from_slice(bytes)
        .map(Some)
        .map_err(|_| corrupt(what, "rendezvous seed is not 32 bytes"))
}

fn seed_bytes(seed: &Option<RendezvousSeed>) -> Vec<u8> {
    seed.as_ref()
        .map(|seed| seed.as_bytes().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::*;
    use crate::crypto::SigningKey;

    fn account() -> VerifyingKey {
        SigningKey::generate(&mut OsRng).verifying_key()
    }

    #[test]
    fn records_survive_a_round_trip() {
        let settings = ContactSettings {
            enabled: true,
            rendezvous_seed: Some(RendezvousSeed::from_bytes([4; 32])),
        };
        let back = ContactSettings::decode(&settings.encode()).unwrap();
        assert!(back.enabled);
        assert_eq!(back.rendezvous_seed.unwrap().as_bytes(), &[4; 32]);

        let record = ContactRecord {
            account: account(),
            state: ContactState::Incoming,
            blocked: true,
            meta: b"hi".to_vec(),
            rendezvous_seed: None,
        };
        let back = ContactRecord::decode(&record.encode()).unwrap();
        assert_eq!(back.account, record.account);
        assert_eq!(back.state, ContactState::Incoming);
        assert!(back.blocked && back.rendezvous_seed.is_none());
        assert_eq!(back.meta, b"hi");

        let item = OutboxItem {
            target: ContactReference {
                account_pk: account(),
                rendezvous_seed: RendezvousSeed::from_bytes([5; 32]),
            },
            meta: b"me".to_vec(),
            attempts: 3,
            next_attempt_unix: 1_700_000_000,
        };
        let back = OutboxItem::decode(&item.encode()).unwrap();
        assert_eq!(back.target.account_pk, item.target.account_pk);
        assert_eq!((back.attempts, back.next_attempt_unix), (3, 1_700_000_000));
    }

    #[test]
    fn corrupt_records_are_refused_with_what_is_wrong() {
        let wrong_version = wire::ContactSettings {
            version: 7,
            ..Default::default()
        };
        let error = ContactSettings::decode(&wrong_version.encode_to_vec()).unwrap_err();
        assert!(error.to_string().contains("unknown version 7"), "{error}");
        let no_state = wire::ContactRecord {
            version: RECORD_VERSION,
            account_pk: account().to_bytes().to_vec(),
            ..Default::default()
        };
        let error = ContactRecord::decode(&no_state.encode_to_vec()).unwrap_err();
        assert!(error.to_string().contains("unknown state 0"), "{error}");
        let no_target = wire::OutboxItem {
            version: RECORD_VERSION,
            ..Default::default()
        };
        let error = OutboxItem::decode(&no_target.encode_to_vec())
            .err()
            .unwrap();
        assert!(error.to_string().contains("no target"), "{error}");
        assert!(ContactRecord::decode(&[0xff]).is_err());
    }
}
