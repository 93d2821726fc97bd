//! The core's error type: what went wrong, typed, with no transport in it.
//!
//! Modules keep their own precise errors (`StorageError`, `CryptoError`, ...) and convert into
//! [`Error`] where a call crosses into the actors and the API. The statuses clients see are
//! chosen only at the edges: gRPC codes in `api::status`, HTTP statuses in `admin::status`.

use crate::{crypto::CryptoError, storage::StorageError};

/// An error as a client should see it: a category and a clear message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Malformed key, reference, id or over-limit input.
    #[error("{0}")]
    InvalidArgument(String),
    /// Unknown group, contact, request or event.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (for example a group setting by a non-creator).
    #[error("{0}")]
    PermissionDenied(String),
    /// The state does not allow this (for example sending to a group the account left).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A quota is used up (a mirror token's bytes or groups).
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Not provided by this node (yet).
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or corrupt data; the message says what.
    #[error("{0}")]
    Internal(String),
    /// Storage failed; kept typed so the edges tell an outage from corrupt data.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A part of the node has stopped (an actor or task is gone); the text says which.
    #[error("{0}")]
    Stopped(&'static str),
    /// A record we stored does not decode (a bug or tampering).
    #[error("{what}: {source}")]
    Decode {
        /// Which record ("stored contact record").
        what: &'static str,
        /// Why it does not decode.
        source: prost::DecodeError,
    },
    /// A cryptographic operation on this node's own keys or values failed.
    #[error("{context}: {source}")]
    Crypto {
        /// What was being done ("deriving the member key", "sealing contact/...").
        context: String,
        /// Why it failed.
        source: CryptoError,
    },
}

impl Error {
    /// A part of the node has stopped: `what` says which, as the client reads it
    /// ("the account actor is not running").
    pub fn stopped(what: &'static str) -> Self {
        Error::Stopped(what)
    }

    /// A stored record (`what`) that does not decode.
    pub fn decode(what: &'static str, source: prost::DecodeError) -> Self {
        Error::Decode { what, source }
    }

    /// A failed cryptographic operation, with what was being done.
    pub fn crypto(context: impl Into<String>, source: CryptoError) -> Self {
        Error::Crypto {
            context: context.into(),
            source,
        }
    }
}

/// An error and its causes on one line, each said once (a cause whose text its parent
/// already shows is not repeated). libp2p's `TransportError::Other` displays as an empty
/// string and keeps the reason in its source, which a plain `to_string` loses.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        format!("{error:?}")
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_error_shows_its_cause() {
        #[derive(Debug)]
        struct Empty(std::io::Error);
        impl std::fmt::Display for Empty {
            fn fmt(&self, _: &mut std::fmt::Formatter) -> std::fmt::Result {
                Ok(())
            }
        }
        impl std::error::Error for Empty {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Empty(std::io::Error::from(std::io::ErrorKind::AddrInUse));
        assert_eq!(one_line(&err), "address in use");
    }
}
