//! Code generated from `proto/` by `build.rs`. Only the API edge uses these types.

#![allow(missing_docs, clippy::all)]

/// `berty.protocol`: the Berty Protocol API, wire-exact with the original schema.
pub mod berty_protocol {
    tonic::include_proto!("berty.protocol");
}

/// Encoded file descriptor set of every schema in `proto/`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berty_descriptor");
