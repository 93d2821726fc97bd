//! Length-prefixed frames shared by our libp2p protocols (the sync protocol in
//! [`crate::p2p::sync_codec`], `/rendezvous/1.0.0` in [`crate::rendezvous::wire`]): an unsigned
//! LEB128 varint length, then that many bytes. No protobuf here; each codec parses its body.

use std::io;

use futures::{AsyncRead, AsyncReadExt};

/// Reads exactly `len` bytes, growing the buffer as they arrive: a peer that announces a large
/// frame and sends nothing more costs us nothing (a buffer of the announced size, allocated
/// up front, would let a few bytes per stream hold megabytes each).
pub async fn read_body<R: AsyncRead + Unpin + Send>(io: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame of {len} bytes ended after {}", buf.len()),
        ));
    }
    Ok(buf)
}
