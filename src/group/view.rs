//! Decoded events ("views"): what subscriptions replay, stored decrypted beside the log.

use prost::Message;

use crate::{error::Error, proto::wire};

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
    pub fn as_u8(self) -> u8 {
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
            ViewBody::Message { .. } => EventKind::Message,
            ViewBody::Account { .. } => EventKind::Account,
        }
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
}
