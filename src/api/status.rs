//! The one mapping of the core's [`Error`] to gRPC status codes; the message is the error's
//! text.

use tonic::{Code, Status};

use crate::{error::Error, storage::StorageError};

/// The gRPC code a client receives for `err`.
pub fn code_of(err: &Error) -> Code {
    match err {
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::NotFound(_) => Code::NotFound,
        Error::PermissionDenied(_) => Code::PermissionDenied,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
        Error::ResourceExhausted(_) => Code::ResourceExhausted,
        Error::Unavailable(_) | Error::Stopped(_) => Code::Unavailable,
        Error::Unimplemented(_) => Code::Unimplemented,
        Error::Internal(_) | Error::Decode { .. } | Error::Crypto { .. } => Code::Internal,
        Error::Storage(storage) => match storage {
            StorageError::Unavailable(_) | StorageError::Down { .. } => Code::Unavailable,
            StorageError::MissingParent { .. } => Code::InvalidArgument,
            StorageError::Corrupt(_)
            | StorageError::Config(_)
            | StorageError::Sealing(_)
            | StorageError::EventWithoutEntry(_) => Code::Internal,
        },
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        Status::new(code_of(&err), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn storage_outage_is_unavailable() {
        let status: Status = Error::from(StorageError::Unavailable("db gone".into())).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("db gone"));
        let down = StorageError::Down {
            database: "PostgreSQL at 127.0.0.1:5432/berty".into(),
            cause: "Connection refused (os error 111)".into(),
        };
        let status: Status = Error::from(down).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.message(),
            "database unavailable (PostgreSQL at 127.0.0.1:5432/berty): \
             Connection refused (os error 111)"
        );
    }

    #[test]
    fn typed_errors_keep_their_codes_and_messages() {
        let missing = StorageError::MissingParent {
            entry: crate::log::EntryId([1; 32]),
            parent: crate::log::EntryId([2; 32]),
        };
        assert_eq!(code_of(&Error::from(missing)), Code::InvalidArgument);
        let corrupt = Error::from(StorageError::Corrupt("bad row".into()));
        assert_eq!(code_of(&corrupt), Code::Internal);
        assert_eq!(corrupt.to_string(), "corrupt stored data: bad row");
        let stopped: Status = Error::stopped("the account actor is not running").into();
        assert_eq!(stopped.code(), Code::Unavailable);
        assert_eq!(stopped.message(), "the account actor is not running");
        // Field 1, length-delimited, says 5 bytes follow; none do.
        let decode = <crate::proto::wire::ContactRecord as prost::Message>::decode(&[0x0a, 5][..])
            .unwrap_err();
        let corrupt = Error::decode("stored contact record", decode.clone());
        assert_eq!(code_of(&corrupt), Code::Internal);
        assert_eq!(
            corrupt.to_string(),
            format!("stored contact record: {decode}")
        );
    }
}
