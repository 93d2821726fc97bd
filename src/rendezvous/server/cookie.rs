//! [`DiscoverCookie`]: where a client's discover paging stands.
//!
//! A cookie is the big-endian `u64` id of the last registration the response holds, followed
//! by the namespace asked for (nothing for every namespace): the encoding rust-libp2p's
//! client parses. Ids come from one sequence in the database and are committed in increasing
//! order (see [`crate::storage::rendezvous`]), so a client sending its cookie back gets only
//! registrations newer than what it saw, from any node sharing the database. A refresh gets a
//! new id, so pollers see refreshed registrations again. A cookie that does not parse or names
//! another namespace than the request is refused with `E_INVALID_COOKIE`.

use super::MAX_NAMESPACE_BYTES;

/// Length of a cookie's id.
const COOKIE_ID_BYTES: usize = 8;

/// Where a client's discover paging stands: the last registration id it saw, and the
/// namespace it asked for (empty for every namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverCookie {
    /// Id of the newest registration already returned (0: none).
    pub last_id: u64,
    /// The namespace the cookie is valid for; empty for a discover of every namespace.
    pub namespace: String,
}

impl DiscoverCookie {
    /// Big-endian `last_id`, then the namespace's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(COOKIE_ID_BYTES + self.namespace.len());
        bytes.extend_from_slice(&self.last_id.to_be_bytes());
        bytes.extend_from_slice(self.namespace.as_bytes());
        bytes
    }

    /// Parses [`DiscoverCookie::encode`]'s bytes; `None` when they are not a cookie this
    /// server could have made.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (id, namespace) = bytes.split_at_checked(COOKIE_ID_BYTES)?;
        let last_id = u64::from_be_bytes(id.try_into().ok()?);
        if i64::try_from(last_id).is_err() || namespace.len() > MAX_NAMESPACE_BYTES {
            return None;
        }
        Some(Self {
            last_id,
            namespace: String::from_utf8(namespace.to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_rust_libp2p_cookies() {
        let cookie = DiscoverCookie {
            last_id: 0x0102_0304_0506_0708,
            namespace: "ns".into(),
        };
        let bytes = cookie.encode();
        assert_eq!(bytes, [1, 2, 3, 4, 5, 6, 7, 8, b'n', b's']);
        assert_eq!(DiscoverCookie::decode(&bytes), Some(cookie));
        let all = DiscoverCookie {
            last_id: 9,
            namespace: String::new(),
        };
        assert_eq!(all.encode().len(), 8);
        assert_eq!(DiscoverCookie::decode(&all.encode()), Some(all));
        assert_eq!(DiscoverCookie::decode(&[0; 7]), None);
        assert_eq!(DiscoverCookie::decode(&[0xff; 8]), None, "id over i64::MAX");
        assert_eq!(
            DiscoverCookie::decode(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff]),
            None
        );
        let mut long = vec![0; 8];
        long.extend(std::iter::repeat_n(b'x', 256));
        assert_eq!(DiscoverCookie::decode(&long), None);
    }
}
