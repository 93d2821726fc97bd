//! The one error type the API edges see, and its mapping to gRPC and HTTP statuses.
//!
//! Modules keep their own precise errors (`StorageError`, `CryptoError`, ...); they convert
//! into [`Error`] at the edge, and only here are statuses chosen.

use crate::storage::StorageError;

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
    /// Storage or another dependency is down; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Not provided by this node (yet).
    #[error("{0}")]
    Unimplemented(String),
    /// A bug or corrupt data; the message says what.
    #[error("{0}")]
    Internal(String),
}

impl From<StorageError> for Error {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::Unavailable(_) | StorageError::Down { .. } => {
                Error::Unavailable(err.to_string())
            }
            StorageError::MissingParent { .. } => Error::InvalidArgument(err.to_string()),
            StorageError::Corrupt(_) | StorageError::Config(_) => Error::Internal(err.to_string()),
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::Code;
        let code = match &err {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::Internal(_) => Code::Internal,
        };
        tonic::Status::new(code, err.to_string())
    }
}

impl Error {
    /// The HTTP status the admin API answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidArgument(_) => 400,
            Error::NotFound(_) => 404,
            Error::PermissionDenied(_) => 403,
            Error::FailedPrecondition(_) => 409,
            Error::Unavailable(_) => 503,
            Error::Unimplemented(_) => 501,
            Error::Internal(_) => 500,
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

    #[test]
    fn storage_outage_is_unavailable() {
        let status: tonic::Status = Error::from(StorageError::Unavailable("db gone".into())).into();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().contains("db gone"));
        let down = StorageError::Down {
            database: "PostgreSQL at 127.0.0.1:5432/berty".into(),
            cause: "Connection refused (os error 111)".into(),
        };
        let status: tonic::Status = Error::from(down).into();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.message(),
            "database unavailable (PostgreSQL at 127.0.0.1:5432/berty): \
             Connection refused (os error 111)"
        );
        assert_eq!(
            Error::Unavailable(String::new()).http_status(),
            503,
            "readiness and admin calls answer 503"
        );
    }
}
