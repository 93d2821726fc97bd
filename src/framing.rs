//! Length-prefixed frames shared by our libp2p protocols (the sync protocol in
//! [`crate::p2p::sync_codec`], `/rendezvous/1.0.0` in [`crate::rendezvous::wire`]): an unsigned
//! LEB128 varint length ([`unsigned_varint`]), then that many bytes. No protobuf here; each
//! codec parses its body and decides what a refused frame means for its peer.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use unsigned_varint::{aio, encode, io::ReadError};

/// Longest length prefix read: a `u64` takes at most 10 bytes as a varint.
const MAX_LENGTH_BYTES: u64 = 10;

/// Reads one frame of at most `max` bytes and returns its body.
///
/// `Err` is an I/O error (among them the stream ending early, [`io::ErrorKind::UnexpectedEof`]);
/// `Ok(Err(reason))` is a frame refused for what the peer sent: a length that is not a
/// minimal varint of at most 64 bits, or one over `max`.
pub async fn read_frame<R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<Result<Vec<u8>, String>> {
    let len = match read_length(io).await? {
        Ok(len) => len,
        Err(reason) => return Ok(Err(reason)),
    };
    match usize::try_from(len) {
        Ok(len) if len <= max => read_body(io, len).await.map(Ok),
        _ => Ok(Err(format!("frame of {len} bytes, cap is {max}"))),
    }
}

/// Reads the varint length prefix. unsigned-varint's `u64` decoder drops the bits of a tenth
/// byte above the first (`80 80 80 80 80 80 80 80 80 02` would read as 0), so the prefix is
/// read as a `u128` from at most [`MAX_LENGTH_BYTES`] bytes and must fit in 64 bits.
async fn read_length<R: AsyncRead + Unpin + Send>(io: &mut R) -> io::Result<Result<u64, String>> {
    let mut prefix = io.take(MAX_LENGTH_BYTES);
    match aio::read_u128(&mut prefix).await {
        Ok(len) => Ok(u64::try_from(len).map_err(|_| "frame length overflows 64 bits".into())),
        // The stream gave every byte a prefix may have and the varint did not end.
        Err(ReadError::Io(_)) if prefix.limit() == 0 => {
            Ok(Err("frame length is not a valid varint".into()))
        }
        Err(ReadError::Io(err)) => Err(err),
        Err(err) => Ok(Err(format!("frame length is not a valid varint: {err}"))),
    }
}

/// Reads exactly `len` bytes, growing the buffer as they arrive: a peer that announces a large
/// frame and sends nothing more costs us nothing (a buffer of the announced size, allocated
/// up front, would let a few bytes per stream hold megabytes each).
async fn read_body<R: AsyncRead + Unpin + Send>(io: &mut R, len: usize) -> io::Result<Vec<u8>> {
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

/// Writes `body` as one frame (its varint length, then the body) and flushes; refuses a body
/// over `max` bytes with [`io::ErrorKind::InvalidInput`], writing nothing.
pub async fn write_frame<W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    body: &[u8],
    max: usize,
) -> io::Result<()> {
    if body.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("frame of {} bytes over the cap of {max}", body.len()),
        ));
    }
    let mut prefix = encode::usize_buffer();
    let prefix = encode::usize(body.len(), &mut prefix);
    let mut frame = Vec::with_capacity(prefix.len() + body.len());
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(body);
    io.write_all(&frame).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use futures::executor::block_on;

    use super::*;

    fn read(stream: &[u8], max: usize) -> io::Result<Result<Vec<u8>, String>> {
        block_on(read_frame(&mut &stream[..], max))
    }

    #[test]
    fn lengths_are_minimal_leb128() {
        for (len, prefix) in [
            (0usize, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ] {
            let body = vec![7u8; len];
            let mut out = Vec::new();
            block_on(write_frame(&mut out, &body, 1024)).unwrap();
            assert_eq!(&out[..prefix.len()], prefix, "prefix of {len}");
            assert_eq!(&out[prefix.len()..], &body[..]);
            // The same bytes prost writes before a length-delimited message.
            let mut prost_prefix = Vec::new();
            prost::encoding::encode_varint(len as u64, &mut prost_prefix);
            assert_eq!(prost_prefix, prefix);
            assert_eq!(read(&out, 1024).unwrap().unwrap(), body);
        }
    }

    #[test]
    fn bad_lengths_are_refused_not_io_errors() {
        let mut over_64_bits = vec![0x80; 9];
        over_64_bits.push(0x02);
        assert!(read(&over_64_bits, 16)
            .unwrap()
            .unwrap_err()
            .contains("64 bits"));
        let never_ends = [0xff; 11];
        assert!(read(&never_ends, 16)
            .unwrap()
            .unwrap_err()
            .contains("varint"));
        let mut largest = vec![0xff; 9];
        largest.push(0x01);
        assert!(read(&largest, 16).unwrap().unwrap_err().contains("cap"));
        assert!(read(&[17], 16).unwrap().unwrap_err().contains("cap"));
    }

    #[test]
    fn early_ends_are_io_errors() {
        for stream in [&[][..], &[0x80], &[3, 1, 2]] {
            let err = read(stream, 16).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{stream:?}");
        }
    }

    #[test]
    fn writes_over_the_cap_write_nothing() {
        let mut out = Vec::new();
        let err = block_on(write_frame(&mut out, &[0; 17], 16)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }
}
