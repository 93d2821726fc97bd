//! Framing of the sync protocol: one request and one response per stream, each an unsigned
//! LEB128 varint length followed by that many bytes of protobuf (`SyncRequest` /
//! `SyncResponse` of `proto/bertynode_wire.proto`).
//!
//! A frame over its cap or one that does not parse is not an I/O error: it is read as
//! [`Frame::Garbage`], so the swarm learns which peer sent it and can penalise it (libp2p's
//! request-response drops inbound read errors without saying from whom).

use std::{io, marker::PhantomData};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{request_response, StreamProtocol};
use prost::Message;

use crate::{
    framing,
    proto::wire::{SyncRequest, SyncResponse},
};

/// The sync protocol's id.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/berty-node/sync/1.0.0");
/// Largest request frame accepted (an announce carries at most `replication::MAX_INLINE_BYTES`).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// Largest response frame accepted (a fetch reply carries at most
/// `replication::MAX_FETCH_BYTES` of entries).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A frame as read: the message, or why it was refused.
#[derive(Debug, Clone)]
pub enum Frame<T> {
    /// A well-formed message.
    Message(T),
    /// Over the cap or unparsable: the peer is misbehaving.
    Garbage(String),
}

/// The codec of [`SYNC_PROTOCOL`].
pub type SyncCodec = FramedCodec<SyncRequest, SyncResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES>;

/// A request-response codec of one protobuf request and one protobuf response per stream,
/// each framed by [`read_frame`] / [`write_frame`] and capped at `MAX_REQ` / `MAX_RESP`
/// bytes (the sync protocol's, and the mirror protocol's).
pub struct FramedCodec<Req, Resp, const MAX_REQ: usize, const MAX_RESP: usize>(
    PhantomData<fn() -> (Req, Resp)>,
);

impl<Req, Resp, const MAX_REQ: usize, const MAX_RESP: usize> Default
    for FramedCodec<Req, Resp, MAX_REQ, MAX_RESP>
{
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Req, Resp, const MAX_REQ: usize, const MAX_RESP: usize> Clone
    for FramedCodec<Req, Resp, MAX_REQ, MAX_RESP>
{
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Reads one frame of at most `max` bytes: a varint length, then the protobuf message.
///
/// Only an I/O error (the stream ended early) is an `Err`; a bad length, a frame over `max`
/// or bytes that do not parse are [`Frame::Garbage`]. Also the entry point of the fuzz
/// target `sync_frames`.
pub async fn read_frame<T: Message + Default, R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<Frame<T>> {
    Ok(match framing::read_frame(io, max).await? {
        Ok(body) => match T::decode(body.as_slice()) {
            Ok(message) => Frame::Message(message),
            Err(e) => Frame::Garbage(format!("frame does not parse: {e}")),
        },
        Err(reason) => Frame::Garbage(reason),
    })
}

/// Writes one frame: the varint length of the encoded message, then the message. Refuses
/// [`Frame::Garbage`] and a message over `max` bytes.
pub async fn write_frame<T: Message, W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    frame: Frame<T>,
    max: usize,
) -> io::Result<()> {
    let message = match frame {
        Frame::Message(message) => message,
        Frame::Garbage(reason) => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, reason));
        }
    };
    framing::write_frame(io, &message.encode_to_vec(), max).await
}

impl<Req, Resp, const MAX_REQ: usize, const MAX_RESP: usize> request_response::Codec
    for FramedCodec<Req, Resp, MAX_REQ, MAX_RESP>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Default + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Frame<Req>;
    type Response = Frame<Resp>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_REQ).await
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESP).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Self::Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, request, MAX_REQ).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Self::Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, response, MAX_RESP).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::{sync_request, SyncHello};

    fn hello() -> SyncRequest {
        SyncRequest {
            request: Some(sync_request::Request::Hello(SyncHello {
                nonce: vec![7; 32],
            })),
        }
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, Frame::Message(hello()), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        let read: Frame<SyncRequest> = read_frame(&mut buf.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert!(matches!(read, Frame::Message(m) if m == hello()));
    }

    /// A reader that serves `data`, then ends, and records the largest buffer it was given.
    struct Recording<'a> {
        data: &'a [u8],
        largest_buffer: usize,
    }

    impl AsyncRead for Recording<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut [u8],
        ) -> std::task::Poll<io::Result<usize>> {
            self.largest_buffer = self.largest_buffer.max(buf.len());
            let n = buf.len().min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            std::task::Poll::Ready(Ok(n))
        }
    }

    #[tokio::test]
    async fn an_announced_length_allocates_nothing_until_bytes_arrive() {
        // Found while writing the `sync_frames` fuzz target: the body buffer was allocated at
        // the announced length before any byte of it arrived, so 4 bytes per stream made the
        // node hold 2 MiB each.
        let mut stream = Vec::new();
        prost::encoding::encode_varint(MAX_REQUEST_BYTES as u64, &mut stream);
        stream.extend_from_slice(&[0; 10]);
        let mut reader = Recording {
            data: &stream,
            largest_buffer: 0,
        };
        let err = read_frame::<SyncRequest, _>(&mut reader, MAX_REQUEST_BYTES)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            reader.largest_buffer < 4096,
            "a {} byte buffer for 10 bytes",
            reader.largest_buffer
        );
    }

    #[tokio::test]
    async fn a_length_over_64_bits_is_garbage() {
        // Found while writing the `sync_frames` fuzz target: the bits of a tenth length byte
        // above the first were dropped, so `80 80 80 80 80 80 80 80 80 02` read as a length
        // of 0 and an empty request.
        let mut stream = vec![0x80; 9];
        stream.push(0x02);
        let read: Frame<SyncRequest> = read_frame(&mut stream.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert!(matches!(read, Frame::Garbage(reason) if reason.contains("64 bits")));
        // The largest u64 is still a length (over the cap).
        let mut stream = vec![0xff; 9];
        stream.push(0x01);
        let read: Frame<SyncRequest> = read_frame(&mut stream.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert!(matches!(read, Frame::Garbage(reason) if reason.contains("cap")));
    }

    #[tokio::test]
    async fn garbage_and_oversized_frames_are_flagged() {
        let garbage = [5u8, 0xff, 0xff, 0xff, 0xff, 0xff];
        let read: Frame<SyncRequest> = read_frame(&mut garbage.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert!(matches!(read, Frame::Garbage(_)));
        let mut huge = Vec::new();
        prost::encoding::encode_varint(MAX_REQUEST_BYTES as u64 + 1, &mut huge);
        let read: Frame<SyncRequest> = read_frame(&mut huge.as_slice(), MAX_REQUEST_BYTES)
            .await
            .unwrap();
        assert!(matches!(read, Frame::Garbage(reason) if reason.contains("cap")));
        let truncated = [10u8, 1, 2];
        assert!(
            read_frame::<SyncRequest, _>(&mut truncated.as_slice(), MAX_REQUEST_BYTES)
                .await
                .is_err()
        );
    }
}
