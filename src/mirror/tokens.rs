//! Mirror tokens: what the operator hands to members. A token is shown once, when issued; the
//! node keeps only its SHA-256, so a database dump holds no usable token.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};

/// What every token starts with (so a leaked one is easy to spot and grep for).
pub const TOKEN_PREFIX: &str = "bnm1_";

/// A newly issued token: its public id and the secret bearer token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The public id (12 hex characters).
    pub id: String,
    /// The bearer token (`bnm1_` and 43 base64url characters).
    pub token: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IssuedToken({}, <secret>)", self.id)
    }
}

/// Draws a new token and its id.
pub fn issue() -> IssuedToken {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    OsRng.fill_bytes(&mut secret);
    IssuedToken {
        id: hex::encode(id),
        token: format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret)),
    }
}

/// The stored form of a token: its SHA-256 (surrounding whitespace ignored, as a token read
/// from a file ends with a newline).
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_and_hashed_without_surrounding_space() {
        let a = issue();
        let b = issue();
        assert_ne!(a.token, b.token);
        assert_ne!(a.id, b.id);
        assert!(a.token.starts_with(TOKEN_PREFIX));
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(a.id.len(), 12);
        assert_eq!(hash(&a.token), hash(&format!("{}\n", a.token)));
        assert_ne!(hash(&a.token), hash(&b.token));
        assert!(!format!("{a:?}").contains(&a.token));
    }
}
