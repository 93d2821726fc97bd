//! The one mapping of the core's [`Error`] to HTTP statuses, for admin routes that answer
//! with one.

use crate::{error::Error, storage::StorageError};

/// The HTTP status the admin API answers with for `err`.
pub fn http_status(err: &Error) -> u16 {
    match err {
        Error::InvalidArgument(_) => 400,
        Error::NotFound(_) => 404,
        Error::PermissionDenied(_) => 403,
        Error::FailedPrecondition(_) => 409,
        Error::ResourceExhausted(_) => 429,
        Error::Unavailable(_) | Error::Stopped(_) => 503,
        Error::Unimplemented(_) => 501,
        Error::Internal(_) | Error::Decode { .. } | Error::Crypto { .. } => 500,
        Error::Storage(storage) => match storage {
            StorageError::Unavailable(_) | StorageError::Down { .. } => 503,
            StorageError::MissingParent { .. } => 400,
            StorageError::Corrupt(_)
            | StorageError::Config(_)
            | StorageError::Sealing(_)
            | StorageError::EventWithoutEntry(_) => 500,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_503() {
        assert_eq!(
            http_status(&Error::Unavailable(String::new())),
            503,
            "readiness and admin calls answer 503"
        );
        assert_eq!(http_status(&Error::stopped("gone")), 503);
        let down = StorageError::Down {
            database: "SQLite at x".into(),
            cause: "gone".into(),
        };
        assert_eq!(http_status(&Error::from(down)), 503);
        assert_eq!(
            http_status(&Error::from(StorageError::Corrupt(String::new()))),
            500
        );
    }
}
