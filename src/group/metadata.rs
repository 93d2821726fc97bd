//! The events of a group's metadata log, as this node writes and reads them. The generated
//! `wire::MetadataEvent` (bertynode_wire.proto) is seen only by [`MetadataEvent::encode`] and
//! [`MetadataEvent::decode`]; a malformed event is one [`MetadataParseError`].

use std::fmt;

use prost::Message;

use crate::{
    crypto::{parse_public_key, parse_signature, RendezvousSeed, Signature, VerifyingKey},
    group::{view::SettingScope, GroupReference, ViewBody},
    proto::wire::{self, metadata_event::Event},
};

/// One event of a metadata log (the plaintext sealed in a metadata entry).
// An event is decoded once per entry and written once, never kept in bulk (local writes box
// it already): boxing the account event, the largest, would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum MetadataEvent {
    /// A device joins the group as (part of) a member.
    MemberDevice(MemberDevice),
    /// A device's message chain key, sealed to one member.
    ChainKey(ChainKeyShare),
    /// A key/value setting; the last writer in log order wins.
    Setting {
        /// Group-wide (creator only) or the author member's own.
        scope: SettingScope,
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// An account event (account group only).
    Account(AccountEvent),
}

/// A device bound to its member by the member key's signature.
#[derive(Clone)]
pub struct MemberDevice {
    /// The member key.
    pub member: VerifyingKey,
    /// The device's per-group key (it must be the entry's author).
    pub device: VerifyingKey,
    /// The member key's signature over the device (`crypto::sign_member_device`).
    pub member_signature: Signature,
    /// Which account key the member shows the group, if any.
    pub disclosure: Disclosure,
    /// What the joiner shows the group (`GroupJoin.Request.meta`).
    pub meta: Vec<u8>,
}

/// The account key a member shows the group.
// A binding is decoded once per joining device and never kept in bulk: boxing the signed
// variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Disclosure {
    /// None.
    Hidden,
    /// The member key is the account key (account and contact groups): nothing to sign.
    MemberIsAccount,
    /// An account key and its signature over the member key
    /// (`crypto::sign_account_disclosure`).
    Signed {
        /// The account key.
        account: VerifyingKey,
        /// Its signature.
        signature: Signature,
    },
}

/// A device's chain key sealed to one member (`crypto::seal_chain_key`).
#[derive(Clone)]
pub struct ChainKeyShare {
    /// The member the key is sealed to.
    pub recipient: VerifyingKey,
    /// The sealed chain key and counter.
    pub sealed_chain_key: Vec<u8>,
}

/// An account event: what clients see, and what the account's other devices need.
#[derive(Clone)]
pub struct AccountEvent {
    /// A `berty.protocol.AccountEventType` number.
    pub event_type: i32,
    /// The subject key of the event (docs/api.md).
    pub subject: Vec<u8>,
    /// The data of the event (docs/api.md).
    pub data: Vec<u8>,
    /// `GroupJoined`: the group's reference (never shown to clients).
    pub group: Option<GroupReference>,
    /// `ContactRequestReferenceReset`: the new rendezvous seed (never shown to clients).
    pub rendezvous_seed: Option<RendezvousSeed>,
    /// `GroupJoined` of a contact group: the contact's account key (never shown to clients).
    pub contact_pk: Option<VerifyingKey>,
    /// `DevicePaired`: the account key's signature over the new device
    /// (`crypto::sign_account_device`; never shown to clients).
    pub device_signature: Option<Signature>,
}

impl AccountEvent {
    /// An event with nothing but what clients see.
    pub fn new(event_type: i32, subject: Vec<u8>, data: Vec<u8>) -> Self {
        Self {
            event_type,
            subject,
            data,
            group: None,
            rendezvous_seed: None,
            contact_pk: None,
            device_signature: None,
        }
    }
}

/// Why a metadata event does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataParseError {
    /// Not a `MetadataEvent` message.
    NotAnEvent,
    /// No event in the message.
    Empty,
    /// A key field is not a 32-byte Ed25519 public key.
    BadKey(&'static str),
    /// A signature field is not 64 bytes.
    BadSignature(&'static str),
    /// A setting scope this node does not know.
    UnknownScope,
    /// An account key disclosed without its signature (other than the member key itself).
    UnsignedDisclosure,
    /// A group reference that does not verify.
    BadReference,
    /// A rendezvous seed of the wrong size.
    BadSeed,
}

impl fmt::Display for MetadataParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnEvent => f.write_str("does not parse"),
            Self::Empty => f.write_str("empty event"),
            Self::BadKey(field) => write!(f, "{field}: bad public key"),
            Self::BadSignature(field) => write!(f, "{field}: bad signature"),
            Self::UnknownScope => f.write_str("unknown setting scope"),
            Self::UnsignedDisclosure => f.write_str("account key disclosed without its signature"),
            Self::BadReference => f.write_str("group reference does not verify"),
            Self::BadSeed => f.write_str("rendezvous seed is not 32 bytes"),
        }
    }
}

impl std::error::Error for MetadataParseError {}

/// Names the event's kind only: member keys, sealed keys and references stay out of logs.
impl fmt::Debug for MetadataEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MemberDevice(_) => "MetadataEvent::MemberDevice",
            Self::ChainKey(_) => "MetadataEvent::ChainKey",
            Self::Setting { .. } => "MetadataEvent::Setting",
            Self::Account(_) => "MetadataEvent::Account",
        })
    }
}

impl MetadataEvent {
    /// The encoded plaintext (to seal into a metadata entry).
    pub fn encode(&self) -> Vec<u8> {
        let event = match self {
            Self::MemberDevice(bound) => Event::MemberDevice(bound.to_wire()),
            Self::ChainKey(share) => Event::ChainKey(wire::ChainKeyShare {
                recipient_member_pk: share.recipient.to_bytes().to_vec(),
                sealed_chain_key: share.sealed_chain_key.clone(),
            }),
            Self::Setting { scope, key, value } => Event::Setting(wire::Setting {
                scope: scope_to_wire(*scope) as i32,
                key: key.clone(),
                value: value.clone(),
            }),
            Self::Account(event) => Event::AccountEvent(wire::AccountEvent {
                event_type: event.event_type,
                subject: event.subject.clone(),
                data: event.data.clone(),
                group: event.group.as_ref().map(GroupReference::to_wire),
                rendezvous_seed: event
                    .rendezvous_seed
                    .as_ref()
                    .map(|seed| seed.as_bytes().to_vec())
                    .unwrap_or_default(),
                contact_pk: event
                    .contact_pk
                    .map(|pk| pk.to_bytes().to_vec())
                    .unwrap_or_default(),
                device_signature: event
                    .device_signature
                    .map(|signature| signature.to_bytes().to_vec())
                    .unwrap_or_default(),
            }),
        };
        wire::MetadataEvent { event: Some(event) }.encode_to_vec()
    }

    /// Parses an opened metadata entry's plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataParseError> {
        let event = wire::MetadataEvent::decode(bytes)
            .map_err(|_| MetadataParseError::NotAnEvent)?
            .event
            .ok_or(MetadataParseError::Empty)?;
        Ok(match event {
            Event::MemberDevice(bound) => Self::MemberDevice(MemberDevice::from_wire(bound)?),
            Event::ChainKey(share) => Self::ChainKey(ChainKeyShare {
                recipient: key("recipient_member_pk", &share.recipient_member_pk)?,
                sealed_chain_key: share.sealed_chain_key,
            }),
            Event::Setting(setting) => Self::Setting {
                scope: scope_from_wire(setting.scope)?,
                key: setting.key,
                value: setting.value,
            },
            Event::AccountEvent(event) => Self::Account(AccountEvent::from_wire(event)?),
        })
    }

    /// What subscriptions show for the event (chain keys show nothing).
    pub fn view(&self) -> Option<ViewBody> {
        Some(match self {
            Self::MemberDevice(bound) => ViewBody::Member {
                account_pk: bound
                    .disclosed_account()
                    .map(|k| k.to_bytes().to_vec())
                    .unwrap_or_default(),
                meta: bound.meta.clone(),
            },
            Self::ChainKey(_) => return None,
            Self::Setting { scope, key, value } => ViewBody::Setting {
                scope: *scope,
                key: key.clone(),
                value: value.clone(),
            },
            Self::Account(event) => ViewBody::Account {
                event_type: event.event_type,
                subject: event.subject.clone(),
                data: event.data.clone(),
            },
        })
    }
}

impl MemberDevice {
    /// The account key shown to the group, if any.
    pub fn disclosed_account(&self) -> Option<VerifyingKey> {
        match &self.disclosure {
            Disclosure::Hidden => None,
            Disclosure::MemberIsAccount => Some(self.member),
            Disclosure::Signed { account, .. } => Some(*account),
        }
    }

    fn to_wire(&self) -> wire::MemberDevice {
        let (account_pk, account_signature) = match &self.disclosure {
            Disclosure::Hidden => (Vec::new(), Vec::new()),
            Disclosure::MemberIsAccount => (self.member.to_bytes().to_vec(), Vec::new()),
            Disclosure::Signed { account, signature } => {
                (account.to_bytes().to_vec(), signature.to_bytes().to_vec())
            }
        };
        wire::MemberDevice {
            member_pk: self.member.to_bytes().to_vec(),
            device_pk: self.device.to_bytes().to_vec(),
            member_signature: self.member_signature.to_bytes().to_vec(),
            account_pk,
            account_signature,
            meta: self.meta.clone(),
        }
    }

    fn from_wire(bound: wire::MemberDevice) -> Result<Self, MetadataParseError> {
        let member = key("member_pk", &bound.member_pk)?;
        let disclosure = if !bound.account_signature.is_empty() {
            Disclosure::Signed {
                account: key("account_pk", &bound.account_pk)?,
                signature: signature("account_signature", &bound.account_signature)?,
            }
        } else if bound.account_pk.is_empty() {
            Disclosure::Hidden
        } else if bound.account_pk == member.as_bytes() {
            Disclosure::MemberIsAccount
        } else {
            return Err(MetadataParseError::UnsignedDisclosure);
        };
        Ok(Self {
            member,
            device: key("device_pk", &bound.device_pk)?,
            member_signature: signature("member_signature", &bound.member_signature)?,
            disclosure,
            meta: bound.meta,
        })
    }
}

impl AccountEvent {
    fn from_wire(event: wire::AccountEvent) -> Result<Self, MetadataParseError> {
        let group = event
            .group
            .map(|reference| {
                GroupReference::from_wire(&reference).map_err(|_| MetadataParseError::BadReference)
            })
            .transpose()?;
        let rendezvous_seed = if event.rendezvous_seed.is_empty() {
            None
        } else {
            Some(
                RendezvousSeed::from_slice(&event.rendezvous_seed)
                    .map_err(|_| MetadataParseError::BadSeed)?,
            )
        };
        let contact_pk = if event.contact_pk.is_empty() {
            None
        } else {
            Some(key("contact_pk", &event.contact_pk)?)
        };
        let device_signature = if event.device_signature.is_empty() {
            None
        } else {
            Some(signature("device_signature", &event.device_signature)?)
        };
        Ok(Self {
            event_type: event.event_type,
            subject: event.subject,
            data: event.data,
            group,
            rendezvous_seed,
            contact_pk,
            device_signature,
        })
    }
}

fn key(field: &'static str, bytes: &[u8]) -> Result<VerifyingKey, MetadataParseError> {
    parse_public_key(bytes).map_err(|_| MetadataParseError::BadKey(field))
}

fn signature(field: &'static str, bytes: &[u8]) -> Result<Signature, MetadataParseError> {
    parse_signature(bytes).map_err(|_| MetadataParseError::BadSignature(field))
}

fn scope_to_wire(scope: SettingScope) -> wire::SettingScope {
    match scope {
        SettingScope::Group => wire::SettingScope::Group,
        SettingScope::Member => wire::SettingScope::Member,
    }
}

fn scope_from_wire(scope: i32) -> Result<SettingScope, MetadataParseError> {
    match wire::SettingScope::try_from(scope) {
        Ok(wire::SettingScope::Group) => Ok(SettingScope::Group),
        Ok(wire::SettingScope::Member) => Ok(SettingScope::Member),
        _ => Err(MetadataParseError::UnknownScope),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::OsRng;

    use super::*;
    use crate::crypto::SigningKey;

    fn member_device(disclosure: Disclosure) -> MemberDevice {
        let member = SigningKey::generate(&mut OsRng);
        let device = SigningKey::generate(&mut OsRng).verifying_key();
        MemberDevice {
            member: member.verifying_key(),
            device,
            member_signature: Signature::from_bytes(&[7; 64]),
            disclosure,
            meta: b"meta".to_vec(),
        }
    }

    fn round_trip(event: &MetadataEvent) -> MetadataEvent {
        MetadataEvent::decode(&event.encode()).unwrap()
    }

    #[test]
    fn every_event_survives_a_round_trip() {
        let account = SigningKey::generate(&mut OsRng).verifying_key();
        for disclosure in [
            Disclosure::Hidden,
            Disclosure::MemberIsAccount,
            Disclosure::Signed {
                account,
                signature: Signature::from_bytes(&[9; 64]),
            },
        ] {
            let bound = member_device(disclosure);
            let view = MetadataEvent::MemberDevice(bound.clone()).view();
            let back = round_trip(&MetadataEvent::MemberDevice(bound.clone()));
            assert_eq!(back.encode(), MetadataEvent::MemberDevice(bound).encode());
            assert_eq!(back.view(), view);
        }
        let setting = MetadataEvent::Setting {
            scope: SettingScope::Member,
            key: "nick".into(),
            value: b"bee".to_vec(),
        };
        assert_eq!(round_trip(&setting).view(), setting.view());
        let share = MetadataEvent::ChainKey(ChainKeyShare {
            recipient: account,
            sealed_chain_key: vec![1, 2, 3],
        });
        assert_eq!(round_trip(&share).encode(), share.encode());
        assert!(share.view().is_none());
        let mut event = AccountEvent::new(3, b"subject".to_vec(), b"data".to_vec());
        event.rendezvous_seed = Some(RendezvousSeed::generate(&mut OsRng));
        event.device_signature = Some(Signature::from_bytes(&[5; 64]));
        let event = MetadataEvent::Account(event);
        assert_eq!(round_trip(&event).encode(), event.encode());
    }

    #[test]
    fn the_member_key_as_account_key_needs_no_signature() {
        let bound = member_device(Disclosure::MemberIsAccount);
        let member = bound.member;
        let view = MetadataEvent::MemberDevice(bound).view().unwrap();
        assert_eq!(
            view,
            ViewBody::Member {
                account_pk: member.to_bytes().to_vec(),
                meta: b"meta".to_vec()
            }
        );
    }

    #[test]
    fn malformed_events_name_what_is_wrong() {
        let parse = |event: Event| {
            MetadataEvent::decode(&wire::MetadataEvent { event: Some(event) }.encode_to_vec()).err()
        };
        assert_eq!(
            MetadataEvent::decode(&[0xff, 0xff]).err(),
            Some(MetadataParseError::NotAnEvent)
        );
        assert_eq!(
            MetadataEvent::decode(&wire::MetadataEvent { event: None }.encode_to_vec()).err(),
            Some(MetadataParseError::Empty)
        );
        let mut bound = member_device(Disclosure::Hidden).to_wire();
        bound.account_pk = vec![5; 32];
        assert_eq!(
            parse(Event::MemberDevice(bound.clone())),
            Some(MetadataParseError::UnsignedDisclosure)
        );
        bound.account_pk.clear();
        bound.member_signature.pop();
        assert_eq!(
            parse(Event::MemberDevice(bound.clone())),
            Some(MetadataParseError::BadSignature("member_signature"))
        );
        bound.member_pk = vec![1; 3];
        assert_eq!(
            parse(Event::MemberDevice(bound)),
            Some(MetadataParseError::BadKey("member_pk"))
        );
        assert_eq!(
            parse(Event::Setting(wire::Setting {
                scope: 99,
                ..Default::default()
            })),
            Some(MetadataParseError::UnknownScope)
        );
        assert_eq!(
            parse(Event::ChainKey(wire::ChainKeyShare::default())),
            Some(MetadataParseError::BadKey("recipient_member_pk"))
        );
        assert_eq!(
            parse(Event::AccountEvent(wire::AccountEvent {
                rendezvous_seed: vec![1; 5],
                ..Default::default()
            })),
            Some(MetadataParseError::BadSeed)
        );
        assert_eq!(
            parse(Event::AccountEvent(wire::AccountEvent {
                device_signature: vec![1; 63],
                ..Default::default()
            })),
            Some(MetadataParseError::BadSignature("device_signature"))
        );
    }
}
