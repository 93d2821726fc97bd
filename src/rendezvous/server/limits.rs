//! What the server accepts: the protocol's bounds and defaults as constants,
//! [`RendezvousLimits`] (the configurable ones), and the checks of a request's namespace
//! ([`check_namespace`]) and TTL ([`granted_ttl`]).

/// TTL given to a registration that asks for none (the specification's default).
pub const DEFAULT_TTL_SECS: u64 = 2 * 60 * 60;
/// Shortest TTL accepted by default (the specification's recommendation).
pub const MIN_TTL_SECS: u64 = 2 * 60 * 60;
/// Longest TTL accepted by default (the specification's recommendation).
pub const MAX_TTL_SECS: u64 = 72 * 60 * 60;
/// Longest namespace, in bytes (the specification's).
pub const MAX_NAMESPACE_BYTES: usize = 255;
/// Largest signed peer record stored, in bytes: room for dozens of addresses, and a bound on
/// what one registration costs the database.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Most registrations one peer holds by default (the specification's recommendation).
pub const MAX_REGISTRATIONS_PER_PEER: u32 = 1000;
/// Most registrations stored by default, over every node sharing the database.
pub const MAX_REGISTRATIONS: u64 = 1_000_000;
/// Most registrations in one discover response (the specification's recommendation).
pub const MAX_DISCOVER_PAGE: u32 = 1000;
/// Most registrations committed in one transaction.
pub const MAX_BATCH: usize = 1000;

/// What the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RendezvousLimits {
    /// Shortest TTL a registration may ask for, in seconds.
    pub min_ttl_secs: u64,
    /// Longest TTL a registration may ask for, in seconds.
    pub max_ttl_secs: u64,
    /// Most registrations one peer holds (over all namespaces).
    pub max_registrations_per_peer: u32,
    /// Most registrations stored in all.
    pub max_registrations: u64,
    /// Most registrations in one discover response (a client asking for more gets this many).
    pub max_discover_page: u32,
}

impl Default for RendezvousLimits {
    /// The specification's recommendations.
    fn default() -> Self {
        Self {
            min_ttl_secs: MIN_TTL_SECS,
            max_ttl_secs: MAX_TTL_SECS,
            max_registrations_per_peer: MAX_REGISTRATIONS_PER_PEER,
            max_registrations: MAX_REGISTRATIONS,
            max_discover_page: MAX_DISCOVER_PAGE,
        }
    }
}

/// Checks a namespace: 1 to [`MAX_NAMESPACE_BYTES`] bytes, no NUL (which PostgreSQL text
/// cannot hold).
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("the namespace is empty".into());
    }
    if namespace.len() > MAX_NAMESPACE_BYTES {
        return Err(format!(
            "the namespace is {} bytes, the limit is {MAX_NAMESPACE_BYTES}",
            namespace.len()
        ));
    }
    if namespace.contains('\0') {
        return Err("the namespace holds a NUL character".into());
    }
    Ok(())
}

/// The TTL granted for `requested` (absent or 0: `default`), or why it is refused.
pub fn granted_ttl(
    requested: Option<u64>,
    default: u64,
    limits: &RendezvousLimits,
) -> Result<u64, String> {
    match requested {
        None | Some(0) => Ok(default),
        Some(ttl) if (limits.min_ttl_secs..=limits.max_ttl_secs).contains(&ttl) => Ok(ttl),
        Some(ttl) => Err(format!(
            "a TTL of {ttl} s is outside {} s to {} s",
            limits.min_ttl_secs, limits.max_ttl_secs
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 60 * 60;

    #[test]
    fn namespaces_are_1_to_255_bytes_without_nul() {
        assert!(check_namespace("a").is_ok());
        assert!(check_namespace(&"é".repeat(127)).is_ok(), "254 bytes");
        assert!(check_namespace(&"x".repeat(255)).is_ok());
        assert!(check_namespace("").is_err());
        assert!(check_namespace(&"x".repeat(256)).is_err());
        assert!(check_namespace(&"é".repeat(128)).is_err(), "256 bytes");
        assert!(check_namespace("a\0b").is_err());
    }

    #[test]
    fn ttl_defaults_when_absent_or_zero_and_stays_in_range() {
        let limits = RendezvousLimits::default();
        assert_eq!(granted_ttl(None, 2 * HOUR, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(0), 2 * HOUR, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(2 * HOUR), 0, &limits), Ok(2 * HOUR));
        assert_eq!(granted_ttl(Some(72 * HOUR), 0, &limits), Ok(72 * HOUR));
        assert!(granted_ttl(Some(2 * HOUR - 1), 0, &limits).is_err());
        assert!(granted_ttl(Some(72 * HOUR + 1), 0, &limits).is_err());
        assert!(granted_ttl(Some(u64::MAX), 0, &limits).is_err());
    }
}
