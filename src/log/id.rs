//! Identifiers of logs and entries.

use std::fmt;

/// Length in bytes of an entry id (SHA-256 of the entry's bytes as received).
pub const ENTRY_ID_LEN: usize = 32;
/// Length in bytes of an Ed25519 public key (group keys, member keys, device keys).
pub const PUBLIC_KEY_LEN: usize = 32;

/// Which of a group's two append-only logs an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    /// Member devices, chain keys, settings; for the account group also the account events.
    Metadata,
    /// Encrypted messages.
    Messages,
}

impl LogKind {
    /// The byte that stands for this kind in a [`LogId`] and in signed data.
    pub fn as_byte(self) -> u8 {
        match self {
            LogKind::Metadata => 1,
            LogKind::Messages => 2,
        }
    }

    /// The kind a byte stands for, if any.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(LogKind::Metadata),
            2 => Some(LogKind::Messages),
            _ => None,
        }
    }
}

/// One log of one group: the group public key and the log kind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId {
    group_pk: [u8; PUBLIC_KEY_LEN],
    kind: LogKind,
}

impl LogId {
    /// Length of [`LogId::to_bytes`].
    pub const LEN: usize = PUBLIC_KEY_LEN + 1;

    /// The log of `kind` of the group with public key `group_pk`.
    pub fn new(group_pk: [u8; PUBLIC_KEY_LEN], kind: LogKind) -> Self {
        Self { group_pk, kind }
    }

    /// The group public key.
    pub fn group_pk(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.group_pk
    }

    /// The log kind.
    pub fn kind(&self) -> LogKind {
        self.kind
    }

    /// Group public key followed by the kind byte (33 bytes): the storage key of the log.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..PUBLIC_KEY_LEN].copy_from_slice(&self.group_pk);
        out[PUBLIC_KEY_LEN] = self.kind.as_byte();
        out
    }

    /// Parses [`LogId::to_bytes`]; `None` for any other input.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let kind = LogKind::from_byte(bytes[PUBLIC_KEY_LEN])?;
        let mut group_pk = [0u8; PUBLIC_KEY_LEN];
        group_pk.copy_from_slice(&bytes[..PUBLIC_KEY_LEN]);
        Some(Self { group_pk, kind })
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LogId({}/{:?})",
            hex::encode(&self.group_pk[..8]),
            self.kind
        )
    }
}

/// The id of a log entry: SHA-256 of the entry's bytes exactly as received.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(pub [u8; ENTRY_ID_LEN]);

impl EntryId {
    /// Parses a 32-byte id; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ENTRY_ID_LEN]>::try_from(bytes).ok().map(Self)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; ENTRY_ID_LEN] {
        &self.0
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntryId({})", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Position of an entry in its log's deterministic total order: Lamport clock, then id.
///
/// Every replica sorts the same entries the same way, whatever order they arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    /// The entry's Lamport clock (max of its parents' clocks plus one; 1 for a root).
    pub lamport: u64,
    /// The entry's id, breaking ties between concurrent entries.
    pub id: EntryId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_id_round_trips_and_rejects_bad_input() {
        let id = LogId::new([7; 32], LogKind::Messages);
        assert_eq!(LogId::from_bytes(&id.to_bytes()), Some(id));
        assert_eq!(
            LogId::from_bytes(&[0; 33]),
            None,
            "kind byte 0 is not a kind"
        );
        assert_eq!(LogId::from_bytes(&[1; 32]), None, "too short");
    }

    #[test]
    fn order_key_sorts_by_lamport_then_id() {
        let a = OrderKey {
            lamport: 1,
            id: EntryId([9; 32]),
        };
        let b = OrderKey {
            lamport: 2,
            id: EntryId([0; 32]),
        };
        let c = OrderKey {
            lamport: 2,
            id: EntryId([1; 32]),
        };
        let mut keys = vec![c, a, b];
        keys.sort();
        assert_eq!(keys, vec![a, b, c]);
    }
}
