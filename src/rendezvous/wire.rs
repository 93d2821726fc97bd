//! The wire format of `/rendezvous/1.0.0`: the protobuf messages of `proto/rendezvous.proto`,
//! framed one [`Message`] per request and per response with an unsigned varint length, as
//! every libp2p implementation of the protocol does ([`read_message`], [`write_message`] and
//! [`RendezvousCodec`]); and [`Request`], what a message asks (the one place that reads a
//! message's type).
//!
//! Reads are capped: a request at [`MAX_REQUEST_BYTES`] (a registration is a namespace and one
//! signed peer record), a response at [`MAX_RESPONSE_BYTES`] (rust-libp2p's cap on any
//! rendezvous message, which the server keeps its discover responses under). A frame over its
//! cap, a bad length or bytes that do not parse are an I/O error, which ends the stream.

use std::io;

use futures::{AsyncRead, AsyncWrite};
use libp2p::{request_response, StreamProtocol};
use prost::Message as _;

use crate::framing;

/// Code generated from `proto/rendezvous.proto` (package `rendezvous.pb`).
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("rendezvous.pb");
}

pub use pb::{
    message::{
        Discover, DiscoverResponse, MessageType, Register, RegisterResponse, ResponseStatus,
        Unregister,
    },
    Message,
};

/// The protocol id.
pub const RENDEZVOUS_PROTOCOL: StreamProtocol = StreamProtocol::new("/rendezvous/1.0.0");
/// Largest request read: a namespace (255 bytes) and a signed peer record with room for many
/// addresses.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Largest response read or written: rust-libp2p refuses any rendezvous message above 1 MiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A request to a rendezvous server: what a [`Message`] asks, decided here and nowhere else.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// REGISTER: a namespace, a signed peer record and a TTL.
    Register(Register),
    /// UNREGISTER: a namespace.
    Unregister(Unregister),
    /// DISCOVER: a namespace (or every one), a limit and a paging cookie.
    Discover(Discover),
}

/// A message that is no request (a response, or a type this protocol does not define).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a rendezvous message of type {0} is not a request")]
pub struct NotARequest(pub i32);

impl TryFrom<Message> for Request {
    type Error = NotARequest;

    /// A message without `type` is a REGISTER: proto2's default is the first value,
    /// REGISTER = 0, which protobuf encoders leave out (js-libp2p's among them).
    fn try_from(message: Message) -> Result<Self, NotARequest> {
        let kind = message.r#type.unwrap_or(MessageType::Register as i32);
        match MessageType::try_from(kind) {
            Ok(MessageType::Register) => Ok(Self::Register(message.register.unwrap_or_default())),
            Ok(MessageType::Unregister) => {
                Ok(Self::Unregister(message.unregister.unwrap_or_default()))
            }
            Ok(MessageType::Discover) => Ok(Self::Discover(message.discover.unwrap_or_default())),
            Ok(_) | Err(_) => Err(NotARequest(kind)),
        }
    }
}

/// The codec of [`RENDEZVOUS_PROTOCOL`] for libp2p's request-response, our client's side (one
/// request per stream): a request and a response are each one length-prefixed [`Message`].
/// The server reads its inbound streams itself ([`crate::rendezvous::server`]), several
/// requests per stream.
///
/// The server never answers UNREGISTER (rust-libp2p's client sends it as a request and
/// ignores the failure when the stream closes unanswered).
#[derive(Debug, Clone, Copy, Default)]
pub struct RendezvousCodec;

/// Reads one frame of at most `max` bytes and parses it; a refused frame or one that does not
/// parse is an [`io::ErrorKind::InvalidData`] error.
pub async fn read_message<R: AsyncRead + Unpin + Send>(
    io: &mut R,
    max: usize,
) -> io::Result<Message> {
    let invalid = |reason: String| io::Error::new(io::ErrorKind::InvalidData, reason);
    let body = framing::read_frame(io, max).await?.map_err(invalid)?;
    Message::decode(body.as_slice()).map_err(|err| invalid(format!("frame does not parse: {err}")))
}

/// Writes `message` as one frame; refuses a message over `max` bytes.
pub async fn write_message<W: AsyncWrite + Unpin + Send>(
    io: &mut W,
    message: &Message,
    max: usize,
) -> io::Result<()> {
    framing::write_frame(io, &message.encode_to_vec(), max).await
}

impl request_response::Codec for RendezvousCodec {
    type Protocol = StreamProtocol;
    type Request = Message;
    type Response = Message;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Message>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_REQUEST_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Message>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Message,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &request, MAX_REQUEST_BYTES).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Message,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &response, MAX_RESPONSE_BYTES).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn register() -> Message {
        Message {
            r#type: Some(MessageType::Register as i32),
            register: Some(Register {
                ns: Some("berty/relay".into()),
                signed_peer_record: Some(vec![7; 300]),
                ttl: Some(7200),
            }),
            ..Default::default()
        }
    }

    async fn frame_of(message: &Message) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        RendezvousCodec
            .write_request(&RENDEZVOUS_PROTOCOL, &mut out, message.clone())
            .await
            .unwrap();
        out.into_inner()
    }

    async fn read_request(bytes: Vec<u8>) -> io::Result<Message> {
        RendezvousCodec
            .read_request(&RENDEZVOUS_PROTOCOL, &mut Cursor::new(bytes))
            .await
    }

    #[tokio::test]
    async fn messages_round_trip_with_a_varint_length() {
        let message = register();
        let frame = frame_of(&message).await;
        let body = message.encode_to_vec();
        // 2-byte varint length (the body is over 127 bytes), then the body.
        assert_eq!(frame[0], 0x80 | (body.len() & 0x7f) as u8);
        assert_eq!(frame[1], (body.len() >> 7) as u8);
        assert_eq!(&frame[2..], &body[..]);
        assert_eq!(read_request(frame).await.unwrap(), message);

        let response = Message {
            r#type: Some(MessageType::DiscoverResponse as i32),
            discover_response: Some(DiscoverResponse {
                registrations: vec![register().register.unwrap()],
                cookie: Some(vec![0, 0, 0, 0, 0, 0, 0, 9]),
                status: Some(ResponseStatus::Ok as i32),
                status_text: None,
            }),
            ..Default::default()
        };
        let mut out = Cursor::new(Vec::new());
        RendezvousCodec
            .write_response(&RENDEZVOUS_PROTOCOL, &mut out, response.clone())
            .await
            .unwrap();
        let read = RendezvousCodec
            .read_response(&RENDEZVOUS_PROTOCOL, &mut Cursor::new(out.into_inner()))
            .await
            .unwrap();
        assert_eq!(read, response);
    }

    #[tokio::test]
    async fn field_numbers_match_the_specification() {
        // type = 1 (varint 0 = REGISTER), register = 2 { ns = 1, signedPeerRecord = 2,
        // ttl = 3 }, encoded by hand.
        let bytes = [
            0x08, 0x00, 0x12, 0x09, 0x0a, 0x02, b'n', b's', 0x12, 0x01, 0xaa, 0x18, 0x3c,
        ];
        let message = Message::decode(&bytes[..]).unwrap();
        assert_eq!(message.r#type, Some(MessageType::Register as i32));
        let register = message.register.unwrap();
        assert_eq!(register.ns.as_deref(), Some("ns"));
        assert_eq!(register.signed_peer_record, Some(vec![0xaa]));
        assert_eq!(register.ttl, Some(60));
        // discoverResponse = 6 { cookie = 2, status = 3 (E_INVALID_COOKIE = 103) }.
        let bytes = [0x08, 0x04, 0x32, 0x05, 0x12, 0x01, 0x01, 0x18, 103];
        let message = Message::decode(&bytes[..]).unwrap();
        assert_eq!(message.r#type, Some(MessageType::DiscoverResponse as i32));
        let response = message.discover_response.unwrap();
        assert_eq!(response.cookie, Some(vec![1]));
        assert_eq!(response.status, Some(ResponseStatus::EInvalidCookie as i32));
        for (status, code) in [
            (ResponseStatus::Ok, 0),
            (ResponseStatus::EInvalidNamespace, 100),
            (ResponseStatus::EInvalidSignedPeerRecord, 101),
            (ResponseStatus::EInvalidTtl, 102),
            (ResponseStatus::EInvalidCookie, 103),
            (ResponseStatus::ENotAuthorized, 200),
            (ResponseStatus::EInternalError, 300),
            (ResponseStatus::EUnavailable, 400),
        ] {
            assert_eq!(status as i32, code);
        }
        for (kind, code) in [
            (MessageType::Register, 0),
            (MessageType::RegisterResponse, 1),
            (MessageType::Unregister, 2),
            (MessageType::Discover, 3),
            (MessageType::DiscoverResponse, 4),
        ] {
            assert_eq!(kind as i32, code);
        }
    }

    #[test]
    fn requests_are_read_from_messages_and_a_missing_type_is_register() {
        // register = 2 { ns = 1 "ns" }, and no `type` field, as encoders write REGISTER (0).
        let message = Message::decode(&[0x12, 0x04, 0x0a, 0x02, b'n', b's'][..]).unwrap();
        assert_eq!(message.r#type, None);
        match Request::try_from(message) {
            Ok(Request::Register(register)) => assert_eq!(register.ns.as_deref(), Some("ns")),
            other => panic!("not a REGISTER: {other:?}"),
        }
        let of_type = |kind: MessageType| Message {
            r#type: Some(kind as i32),
            ..Default::default()
        };
        assert!(matches!(
            Request::try_from(of_type(MessageType::Unregister)),
            Ok(Request::Unregister(_))
        ));
        assert!(matches!(
            Request::try_from(of_type(MessageType::Discover)),
            Ok(Request::Discover(_))
        ));
        for (message, kind) in [
            (of_type(MessageType::RegisterResponse), 1),
            (of_type(MessageType::DiscoverResponse), 4),
            (
                Message {
                    r#type: Some(77),
                    ..Default::default()
                },
                77,
            ),
        ] {
            assert_eq!(Request::try_from(message), Err(NotARequest(kind)));
        }
    }

    #[tokio::test]
    async fn garbage_frames_are_io_errors() {
        // A length over the request cap, without sending the body.
        let mut over = Vec::new();
        prost::encoding::encode_varint((MAX_REQUEST_BYTES + 1) as u64, &mut over);
        let err = read_request(over).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A varint that never ends, and one that overflows 64 bits.
        let err = read_request(vec![0xff; 11]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut overflow = vec![0xff; 9];
        overflow.push(0x7f);
        let err = read_request(overflow).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A body that is not a Message (field 2 says 100 bytes follow, 1 does).
        let err = read_request(vec![3, 0x12, 100, 0]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Invalid UTF-8 in a string field.
        let err = read_request(vec![6, 0x12, 4, 0x0a, 2, 0xff, 0xfe])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Truncated: the length says more than the stream holds.
        let mut truncated = frame_of(&register()).await;
        truncated.truncate(truncated.len() - 1);
        let err = read_request(truncated).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // Nothing at all.
        let err = read_request(Vec::new()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn writes_over_the_cap_are_refused() {
        let mut big = register();
        if let Some(register) = big.register.as_mut() {
            register.signed_peer_record = Some(vec![0; MAX_REQUEST_BYTES]);
        }
        let mut out = Cursor::new(Vec::new());
        let err = RendezvousCodec
            .write_request(&RENDEZVOUS_PROTOCOL, &mut out, big)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.into_inner().is_empty(), "nothing was written");
    }
}
