//! Decoded events ("views"): what subscriptions replay, stored beside the log.
//!
//! A message's view is stored keyed ([`ViewBody::KeyedMessage`]): the key that opens its body
//! in the entry rather than a second copy of the plaintext; [`ViewEvent::opened`] turns it
//! back into [`ViewBody::Message`] with the entry's payload.

use std::fmt;

use prost::Message;

use crate::{
    crypto::{open_stored_body, MessageKey},
    error::Error,
    log::LogKind,
    proto::wire,
};

/// Which subscription an event belongs to (stored as a small integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A member device joined (GroupMemberSubscribe).
    Member = 1,
    /// A setting was written (GroupSettingSubscribe).
    Setting = 2,
    /// A message (GroupMessageSubscribe).
    Message = 3,
    /// An account event (AccountSubscribe).
    Account = 4,
}

impl EventKind {
    /// The stored form.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// Scope of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingScope {
    /// Group-wide (creator only).
    Group,
    /// The author member's own.
    Member,
}

/// What an event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewBody {
    /// A member device joined.
    Member {
        /// Disclosed account key (empty when not disclosed).
        account_pk: Vec<u8>,
        /// The joiner's `meta`.
        meta: Vec<u8>,
    },
    /// A setting.
    Setting {
        /// Group or member.
        scope: SettingScope,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// A decrypted message.
    Message {
        /// The plaintext.
        payload: Vec<u8>,
    },
    /// A message as stored: what opens its body, which stays sealed in the entry.
    KeyedMessage(MessageInEntry),
    /// An account event.
    Account {
        /// `AccountEventType` number.
        event_type: i32,
        /// Subject key.
        subject: Vec<u8>,
        /// Data.
        data: Vec<u8>,
    },
}

/// What opens a stored message's body in its entry. Its author signature was checked before
/// the event was stored.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageInEntry {
    /// The sender's ratchet counter.
    pub counter: u64,
    /// The message key of that counter (secret: it opens the message).
    pub key: [u8; 32],
}

impl fmt::Debug for MessageInEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageInEntry")
            .field("counter", &self.counter)
            .field("key", &"<secret>")
            .finish()
    }
}

/// One decoded event with its author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEvent {
    /// Author member key.
    pub member_pk: [u8; 32],
    /// Author device key.
    pub device_pk: [u8; 32],
    /// What it says.
    pub body: ViewBody,
}

impl ViewEvent {
    /// The subscription the event belongs to.
    pub fn kind(&self) -> EventKind {
        match self.body {
            ViewBody::Member { .. } => EventKind::Member,
            ViewBody::Setting { .. } => EventKind::Setting,
            ViewBody::Message { .. } | ViewBody::KeyedMessage(_) => EventKind::Message,
            ViewBody::Account { .. } => EventKind::Account,
        }
    }

    /// The stored form of a message of `device_pk` (member `member_pk`): its counter and key.
    pub fn keyed_message(
        member_pk: [u8; 32],
        device_pk: [u8; 32],
        counter: u64,
        key: &MessageKey,
    ) -> Self {
        Self {
            member_pk,
            device_pk,
            body: ViewBody::KeyedMessage(MessageInEntry {
                counter,
                key: *key.as_bytes(),
            }),
        }
    }

    /// Whether reading the event needs its entry's payload ([`Self::opened`]).
    pub fn needs_entry(&self) -> bool {
        matches!(self.body, ViewBody::KeyedMessage(_))
    }

    /// The event with a keyed message opened from `entry_payload`, the payload of its entry
    /// in the messages log of group `group_pk`; any other event as it is. An error means
    /// corrupt local data.
    pub fn opened(self, group_pk: &[u8; 32], entry_payload: &[u8]) -> Result<Self, Error> {
        let ViewBody::KeyedMessage(keyed) = &self.body else {
            return Ok(self);
        };
        let payload = open_stored_body(
            group_pk,
            LogKind::Messages,
            &self.device_pk,
            keyed.counter,
            &MessageKey::from_bytes(keyed.key),
            entry_payload,
        )
        .map_err(|e| Error::Internal(format!("stored message does not open: {e}")))?;
        Ok(Self {
            body: ViewBody::Message { payload },
            ..self
        })
    }

    /// Encodes for storage.
    pub fn encode(&self) -> Vec<u8> {
        use wire::view_event::Body;
        let body = match &self.body {
            ViewBody::Member { account_pk, meta } => Body::Member(wire::MemberView {
                account_pk: account_pk.clone(),
                meta: meta.clone(),
            }),
            ViewBody::Setting { scope, key, value } => Body::Setting(wire::SettingView {
                scope: match scope {
                    SettingScope::Group => wire::SettingScope::Group,
                    SettingScope::Member => wire::SettingScope::Member,
                } as i32,
                key: key.clone(),
                value: value.clone(),
            }),
            ViewBody::Message { payload } => Body::Message(wire::MessageView {
                payload: payload.clone(),
            }),
            ViewBody::KeyedMessage(keyed) => Body::KeyedMessage(wire::KeyedMessageView {
                counter: keyed.counter,
                message_key: keyed.key.to_vec(),
            }),
            ViewBody::Account {
                event_type,
                subject,
                data,
            } => Body::Account(wire::AccountView {
                event_type: *event_type,
                subject: subject.clone(),
                data: data.clone(),
            }),
        };
        wire::ViewEvent {
            member_pk: self.member_pk.to_vec(),
            device_pk: self.device_pk.to_vec(),
            body: Some(body),
        }
        .encode_to_vec()
    }

    /// Decodes a stored event; errors mean corrupt local data.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        use wire::view_event::Body;
        let corrupt = |what: &str| Error::Internal(format!("stored event: {what}"));
        let wire = wire::ViewEvent::decode(bytes).map_err(|e| Error::decode("stored event", e))?;
        let key = |bytes: &[u8]| -> Result<[u8; 32], Error> {
            bytes.try_into().map_err(|_| corrupt("key length"))
        };
        let body = match wire.body.ok_or_else(|| corrupt("no body"))? {
            Body::Member(m) => ViewBody::Member {
                account_pk: m.account_pk,
                meta: m.meta,
            },
            Body::Setting(s) => ViewBody::Setting {
                scope: match wire::SettingScope::try_from(s.scope) {
                    Ok(wire::SettingScope::Group) => SettingScope::Group,
                    Ok(wire::SettingScope::Member) => SettingScope::Member,
                    _ => return Err(corrupt("setting scope")),
                },
                key: s.key,
                value: s.value,
            },
            Body::Message(m) => ViewBody::Message { payload: m.payload },
            Body::KeyedMessage(m) => ViewBody::KeyedMessage(MessageInEntry {
                counter: m.counter,
                key: key(&m.message_key)?,
            }),
            Body::Account(a) => ViewBody::Account {
                event_type: a.event_type,
                subject: a.subject,
                data: a.data,
            },
        };
        Ok(Self {
            member_pk: key(&wire.member_pk)?,
            device_pk: key(&wire.device_pk)?,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            ViewBody::Member {
                account_pk: vec![1; 32],
                meta: b"hi".to_vec(),
            },
            ViewBody::Setting {
                scope: SettingScope::Group,
                key: "name".into(),
                value: b"v".to_vec(),
            },
            ViewBody::Message {
                payload: b"hello".to_vec(),
            },
            ViewBody::Account {
                event_type: 13,
                subject: vec![2; 32],
                data: b"app".to_vec(),
            },
            ViewBody::KeyedMessage(MessageInEntry {
                counter: 7,
                key: [5; 32],
            }),
        ];
        for body in bodies {
            let event = ViewEvent {
                member_pk: [3; 32],
                device_pk: [4; 32],
                body,
            };
            assert_eq!(ViewEvent::decode(&event.encode()).unwrap(), event);
        }
        assert!(ViewEvent::decode(&[0xff, 0xff]).is_err());
    }

    #[test]
    fn a_keyed_message_opens_from_its_entry_and_stays_small() {
        use crate::crypto::{seal_message, GroupGenesis, SenderChain, SigningKey};
        use rand::rngs::OsRng;

        let creator = SigningKey::generate(&mut OsRng).verifying_key();
        let keys = GroupGenesis::generate(&mut OsRng)
            .finish(&creator)
            .unwrap()
            .0;
        let device = SigningKey::generate(&mut OsRng);
        let mut chain = SenderChain::generate(*keys.group_pk(), &mut OsRng);
        let (counter, key) = chain.next_key().unwrap();
        let plaintext = vec![42u8; 1024];
        let sealed = seal_message(
            &keys,
            &device,
            LogKind::Messages,
            counter,
            &key,
            &plaintext,
            &mut OsRng,
        )
        .unwrap();
        let device_pk = device.verifying_key().to_bytes();
        let keyed = ViewEvent::keyed_message([3; 32], device_pk, counter, &key);
        assert!(keyed.needs_entry());
        assert_eq!(keyed.kind(), EventKind::Message);
        assert!(keyed.encode().len() < 120, "{} bytes", keyed.encode().len());
        let shown = ViewEvent::keyed_message([3; 32], [4; 32], 1, &MessageKey::from_bytes([5; 32]));
        assert!(
            !format!("{shown:?}").contains("5, 5"),
            "the key is not printed"
        );

        let group_pk = keys.group_pk().to_bytes();
        let opened = ViewEvent::decode(&keyed.encode())
            .unwrap()
            .opened(&group_pk, &sealed)
            .unwrap();
        assert!(!opened.needs_entry());
        assert_eq!(
            opened,
            ViewEvent {
                member_pk: [3; 32],
                device_pk,
                body: ViewBody::Message { payload: plaintext },
            }
        );
        // Another group's key, or another payload, is corrupt data.
        assert!(keyed.clone().opened(&[1; 32], &sealed).is_err());
        assert!(keyed.opened(&group_pk, &sealed[..40]).is_err());
        // Other events pass through.
        let member = ViewEvent {
            member_pk: [3; 32],
            device_pk,
            body: ViewBody::Member {
                account_pk: Vec::new(),
                meta: Vec::new(),
            },
        };
        assert_eq!(member.clone().opened(&group_pk, &[]).unwrap(), member);
    }
}
