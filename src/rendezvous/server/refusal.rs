//! [`Refusal`]: why a request was refused, the status answered and the metric label.

use crate::rendezvous::wire::ResponseStatus;

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

    /// Its place in [`Refusal::ALL`].
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// A refused request: why, and the status text.
pub(super) type Refused = (Refusal, String);

#[cfg(test)]
mod tests {
    use super::*;

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
}
