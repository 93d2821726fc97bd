//! Code generated from `proto/` by `build.rs`. Only the API edge uses these types.

#![allow(missing_docs, clippy::all)]

pub mod codec;

/// `berty.protocol`: the Berty Protocol API, wire-exact with the original schema.
pub mod berty_protocol {
    tonic::include_proto!("berty.protocol");
}

/// `berty.node.wire.v1`: berty-node's own formats (references, metadata payloads, local
/// records, export). Converted to domain types where they are read.
pub mod wire {
    tonic::include_proto!("berty.node.wire.v1");
}

/// `berty.node.v1`: berty-node's own gRPC services (the mirror calls), beside
/// `berty.protocol`.
pub mod node_api {
    tonic::include_proto!("berty.node.v1");
}

/// Encoded file descriptor set of every schema in `proto/`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("berty_descriptor");
