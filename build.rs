//! Compiles the protobuf schemas in `proto/` with protox (a pure-Rust protobuf compiler), so
//! building needs neither a system `protoc` nor a database.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/bertyprotocol.proto",
        "proto/bertynode_api.proto",
        "proto/bertynode_wire.proto",
        "proto/rendezvous.proto",
    ];
    println!("cargo:rerun-if-changed=migrations");
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("berty_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        // Undecodable requests are the client's fault: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::proto::codec::ProtoCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
