//! Node-value keys: every key a node value is stored under is built ([`ValueKey`]'s
//! `Display`) and parsed ([`ValueKey::parse`]) here, and the prefixes listed together are
//! [`ValuePrefix`]es. The formats are on disk: never change one.
//!
//! | key | value (sealed, see [`crate::storage::sealed`]) |
//! |---|---|
//! | `group/<group>` | the group's record |
//! | `chain/<group>` | this device's sender chain in the group |
//! | `chain0/<group>` | this device's first chain state: what new members receive |
//! | `shared/<group>/<member>` | this device shared its chain key with the member |
//! | `member/<group>/<device>` | the member a device of the group belongs to |
//! | `recv/<group>/<device>` | the receiver chain of a device of the group |
//! | `queue/<group>/<device>/<lamport>/<entry>` | a message waiting for its sender's chain key |
//! | `contact/<account>` | a contact's record |
//! | `outbox/<account>` | a contact request waiting to be sent |
//! | `contacts/settings` | the account's contact settings |
//! | `mirror/<group>/<peer>` | a mirror the group is registered with (`<peer>`: SHA-256 of its peer id) |
//! | `device/imported` | this device was made by `init --import`: the exporting device's key |
//! | `device/paired` | this device recorded its `DevicePaired`: the entry's id |
//!
//! Keys and ids are 32 bytes in lowercase hex; `<lamport>` has 20 digits, so queued messages
//! list in the log's total order.

use std::fmt;

use crate::log::{EntryId, OrderKey};

/// A 32-byte public key (group, member, device or account) as keys name it.
pub type PublicKey = [u8; 32];

/// What a node-value key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKey {
    /// `group/<group>`: a group's record.
    Group {
        /// The group.
        group_pk: PublicKey,
    },
    /// `chain/<group>`: this device's sender chain in a group.
    Chain {
        /// The group.
        group_pk: PublicKey,
    },
    /// `chain0/<group>`: this device's first chain state in a group.
    FirstChain {
        /// The group.
        group_pk: PublicKey,
    },
    /// `shared/<group>/<member>`: this device shared its chain key with a member.
    SharedChain {
        /// The group.
        group_pk: PublicKey,
        /// The member it was shared with.
        member_pk: PublicKey,
    },
    /// `member/<group>/<device>`: the member a device of a group belongs to.
    Member {
        /// The group.
        group_pk: PublicKey,
        /// The device.
        device_pk: PublicKey,
    },
    /// `recv/<group>/<device>`: the receiver chain of a device of a group.
    Receiver {
        /// The group.
        group_pk: PublicKey,
        /// The sending device.
        device_pk: PublicKey,
    },
    /// `queue/<group>/<device>/<lamport>/<entry>`: a message waiting for its sender's chain key.
    Queued {
        /// The group.
        group_pk: PublicKey,
        /// The sending device.
        device_pk: PublicKey,
        /// The message's place in the log's total order.
        order: OrderKey,
    },
    /// `contact/<account>`: a contact's record.
    Contact {
        /// The contact's account.
        account_pk: PublicKey,
    },
    /// `outbox/<account>`: a contact request waiting to be sent.
    Outbox {
        /// The contact's account.
        account_pk: PublicKey,
    },
    /// `contacts/settings`: the account's contact settings.
    ContactSettings,
    /// `mirror/<group>/<peer>`: a mirror the group is registered with.
    Mirror {
        /// The group.
        group_pk: PublicKey,
        /// SHA-256 of the mirror's peer id (the record holds the peer id itself).
        peer_hash: [u8; 32],
    },
    /// `device/imported`: this device was made by `init --import` (a new device of an exported
    /// account); the value is the exporting device's account-level key.
    DeviceImported,
    /// `device/paired`: this device recorded its `DevicePaired` in the account log; the value
    /// is the entry's id.
    DevicePaired,
}

/// A key that is not one of the formats of [`ValueKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed node-value key {0:?}")]
pub struct MalformedKey(pub String);

impl ValueKey {
    /// Parses a stored key. Only the exact form [`ValueKey`]'s `Display` writes is accepted
    /// (lowercase hex, 20-digit clocks, no extra parts).
    pub fn parse(key: &str) -> Result<Self, MalformedKey> {
        let malformed = || MalformedKey(key.to_owned());
        let parts: Vec<&str> = key.split('/').collect();
        let pk = |i: usize| -> Result<PublicKey, MalformedKey> {
            let hex_pk = parts.get(i).ok_or_else(malformed)?;
            let bytes = hex::decode(hex_pk).map_err(|_| malformed())?;
            PublicKey::try_from(bytes).map_err(|_| malformed())
        };
        let parsed = match (parts[0], parts.len()) {
            ("group", 2) => Self::Group { group_pk: pk(1)? },
            ("chain", 2) => Self::Chain { group_pk: pk(1)? },
            ("chain0", 2) => Self::FirstChain { group_pk: pk(1)? },
            ("shared", 3) => Self::SharedChain {
                group_pk: pk(1)?,
                member_pk: pk(2)?,
            },
            ("member", 3) => Self::Member {
                group_pk: pk(1)?,
                device_pk: pk(2)?,
            },
            ("recv", 3) => Self::Receiver {
                group_pk: pk(1)?,
                device_pk: pk(2)?,
            },
            ("queue", 5) => Self::Queued {
                group_pk: pk(1)?,
                device_pk: pk(2)?,
                order: OrderKey {
                    lamport: parts[3].parse().map_err(|_| malformed())?,
                    id: EntryId(pk(4)?),
                },
            },
            ("contact", 2) => Self::Contact { account_pk: pk(1)? },
            ("outbox", 2) => Self::Outbox { account_pk: pk(1)? },
            ("contacts", 2) if parts[1] == "settings" => Self::ContactSettings,
            ("device", 2) if parts[1] == "imported" => Self::DeviceImported,
            ("device", 2) if parts[1] == "paired" => Self::DevicePaired,
            ("mirror", 3) => Self::Mirror {
                group_pk: pk(1)?,
                peer_hash: pk(2)?,
            },
            _ => return Err(malformed()),
        };
        // Uppercase hex, clocks with fewer digits or a sign parse but are not keys we write.
        if parsed.to_string() != key {
            return Err(malformed());
        }
        Ok(parsed)
    }
}

impl fmt::Display for ValueKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex::encode;
        match self {
            Self::Group { group_pk } => write!(f, "group/{}", hex(group_pk)),
            Self::Chain { group_pk } => write!(f, "chain/{}", hex(group_pk)),
            Self::FirstChain { group_pk } => write!(f, "chain0/{}", hex(group_pk)),
            Self::SharedChain {
                group_pk,
                member_pk,
            } => write!(f, "shared/{}/{}", hex(group_pk), hex(member_pk)),
            Self::Member {
                group_pk,
                device_pk,
            } => write!(f, "member/{}/{}", hex(group_pk), hex(device_pk)),
            Self::Receiver {
                group_pk,
                device_pk,
            } => write!(f, "recv/{}/{}", hex(group_pk), hex(device_pk)),
            Self::Queued {
                group_pk,
                device_pk,
                order,
            } => {
                let prefix = ValuePrefix::Queued {
                    group_pk: *group_pk,
                    device_pk: *device_pk,
                };
                write!(f, "{prefix}{:020}/{}", order.lamport, order.id)
            }
            Self::Contact { account_pk } => write!(f, "contact/{}", hex(account_pk)),
            Self::Outbox { account_pk } => write!(f, "outbox/{}", hex(account_pk)),
            Self::ContactSettings => f.write_str("contacts/settings"),
            Self::Mirror {
                group_pk,
                peer_hash,
            } => write!(f, "mirror/{}/{}", hex(group_pk), hex(peer_hash)),
            Self::DeviceImported => f.write_str("device/imported"),
            Self::DevicePaired => f.write_str("device/paired"),
        }
    }
}

/// Keys listed together: every key starting with the prefix (its `Display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuePrefix {
    /// Every node value (an export).
    All,
    /// `group/`: every group record.
    Groups,
    /// `chain/`: this device's sender chains, in every group.
    Chains,
    /// `member/<group>/`: the member bindings of a group's devices.
    Members {
        /// The group.
        group_pk: PublicKey,
    },
    /// `mirror/`: every group's mirrors.
    Mirrors,
    /// `contact/`: every contact record.
    Contacts,
    /// `outbox/`: every contact request waiting to be sent.
    Outbox,
    /// `queue/<group>/<device>/`: the messages of a device waiting for its chain key, in
    /// the log's total order.
    Queued {
        /// The group.
        group_pk: PublicKey,
        /// The sending device.
        device_pk: PublicKey,
    },
}

impl fmt::Display for ValuePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => Ok(()),
            Self::Groups => f.write_str("group/"),
            Self::Chains => f.write_str("chain/"),
            Self::Mirrors => f.write_str("mirror/"),
            Self::Contacts => f.write_str("contact/"),
            Self::Outbox => f.write_str("outbox/"),
            Self::Members { group_pk } => write!(f, "member/{}/", hex::encode(group_pk)),
            Self::Queued {
                group_pk,
                device_pk,
            } => write!(
                f,
                "queue/{}/{}/",
                hex::encode(group_pk),
                hex::encode(device_pk)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<ValueKey> {
        let (g, d) = ([1; 32], [0xab; 32]);
        let order = OrderKey {
            lamport: 42,
            id: EntryId([7; 32]),
        };
        vec![
            ValueKey::Group { group_pk: g },
            ValueKey::Chain { group_pk: g },
            ValueKey::FirstChain { group_pk: g },
            ValueKey::SharedChain {
                group_pk: g,
                member_pk: d,
            },
            ValueKey::Member {
                group_pk: g,
                device_pk: d,
            },
            ValueKey::Receiver {
                group_pk: g,
                device_pk: d,
            },
            ValueKey::Queued {
                group_pk: g,
                device_pk: d,
                order,
            },
            ValueKey::Contact { account_pk: d },
            ValueKey::Outbox { account_pk: d },
            ValueKey::ContactSettings,
            ValueKey::Mirror {
                group_pk: g,
                peer_hash: d,
            },
            ValueKey::DeviceImported,
            ValueKey::DevicePaired,
        ]
    }

    #[test]
    fn keys_are_the_formats_on_disk() {
        let (g, d) = (hex::encode([1; 32]), hex::encode([0xab; 32]));
        let expected = [
            format!("group/{g}"),
            format!("chain/{g}"),
            format!("chain0/{g}"),
            format!("shared/{g}/{d}"),
            format!("member/{g}/{d}"),
            format!("recv/{g}/{d}"),
            format!(
                "queue/{g}/{d}/00000000000000000042/{}",
                hex::encode([7; 32])
            ),
            format!("contact/{d}"),
            format!("outbox/{d}"),
            "contacts/settings".to_owned(),
            format!("mirror/{g}/{d}"),
            "device/imported".to_owned(),
            "device/paired".to_owned(),
        ];
        let keys: Vec<String> = every_kind().iter().map(ToString::to_string).collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn every_key_parses_back() {
        for key in every_kind() {
            assert_eq!(ValueKey::parse(&key.to_string()), Ok(key), "{key}");
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let g = hex::encode([0xab; 32]);
        let id = hex::encode([7; 32]);
        for key in [
            String::new(),
            "group".to_owned(),
            "group/".to_owned(),
            format!("group/{}", &g[2..]),
            format!("group/{}", g.to_uppercase()),
            format!("group/{g}/"),
            format!("group/{g}/{g}"),
            format!("chain/zz{}", &g[2..]),
            format!("shared/{g}"),
            format!("member/{g}/{g}/x"),
            format!("queue/{g}/{g}/42/{id}"),
            format!("queue/{g}/{g}/notanumber/{id}"),
            format!("queue/{g}/{g}/+0000000000000000042/{id}"),
            format!("queue/{g}/{g}/00000000000000000042/zz"),
            "queue/x/y/1/zz".to_owned(),
            "contacts/other".to_owned(),
            "contacts/settings/x".to_owned(),
            "device/other".to_owned(),
            "device/imported/x".to_owned(),
            "settings".to_owned(),
            format!("unknown/{g}"),
        ] {
            assert_eq!(
                ValueKey::parse(&key),
                Err(MalformedKey(key.clone())),
                "{key}"
            );
        }
    }

    #[test]
    fn queued_keys_sort_in_total_order_under_their_prefix() {
        let queued = |lamport, id: u8| ValueKey::Queued {
            group_pk: [1; 32],
            device_pk: [2; 32],
            order: OrderKey {
                lamport,
                id: EntryId([id; 32]),
            },
        };
        let keys = [
            queued(9, 9),
            queued(10, 1),
            queued(10, 2),
            queued(u64::MAX, 0),
        ];
        let rendered: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert!(rendered.windows(2).all(|w| w[0] < w[1]), "{rendered:?}");
        let prefix = ValuePrefix::Queued {
            group_pk: [1; 32],
            device_pk: [2; 32],
        }
        .to_string();
        assert!(rendered.iter().all(|key| key.starts_with(&prefix)));
    }

    #[test]
    fn prefixes_cover_their_keys_only() {
        let group_pk = [1; 32];
        let member = ValueKey::Member {
            group_pk,
            device_pk: [2; 32],
        }
        .to_string();
        let members = ValuePrefix::Members { group_pk }.to_string();
        assert!(member.starts_with(&members));
        let other = ValuePrefix::Members { group_pk: [3; 32] }.to_string();
        assert!(!member.starts_with(&other));
        assert!(ValueKey::Group { group_pk }
            .to_string()
            .starts_with(&ValuePrefix::Groups.to_string()));
        assert_eq!(ValuePrefix::All.to_string(), "");
        let chain = ValueKey::Chain { group_pk }.to_string();
        assert!(chain.starts_with(&ValuePrefix::Chains.to_string()));
        let first = ValueKey::FirstChain { group_pk }.to_string();
        assert!(!first.starts_with(&ValuePrefix::Chains.to_string()));
        assert!(!ValueKey::ContactSettings
            .to_string()
            .starts_with(&ValuePrefix::Groups.to_string()));
    }
}
