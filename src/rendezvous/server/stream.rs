//! Serving one inbound stream: requests are read one after another until the peer closes the
//! stream, each answered before the next is read (go and js clients send REGISTER, then
//! DISCOVER, on one stream; rust-libp2p's sends one request per stream).

use std::{io, time::Duration};

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use libp2p::PeerId;

use super::RendezvousServer;
use crate::rendezvous::wire::{
    read_message, write_message, Request, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
};

/// Requests served on one stream. Clients send a few (a registration or two, then
/// discovers) and open another stream for more; the cap keeps one stream from holding a
/// server task for ever.
pub const MAX_REQUESTS_PER_STREAM: usize = 64;

/// Why the service of a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The peer closed the stream between two requests (or in the middle of one).
    Closed,
    /// [`MAX_REQUESTS_PER_STREAM`] requests were served.
    Cap,
    /// A request was not read, answered and written within the time per request.
    TimedOut,
    /// A frame held a message that is no request (a response, an unknown type).
    NotARequest,
    /// A frame over [`MAX_REQUEST_BYTES`], one that does not parse, or a failed write.
    Failed(io::ErrorKind),
}

impl RendezvousServer {
    /// Serves the requests `peer` sends on `stream` until it closes it, at most
    /// [`MAX_REQUESTS_PER_STREAM`], each within `per_request` (waiting for it included);
    /// then closes the stream. A request with no answer (UNREGISTER) leaves the stream open
    /// for the next.
    pub async fn serve_stream<S>(
        &self,
        peer: PeerId,
        mut stream: S,
        per_request: Duration,
    ) -> StreamEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let end = self.serve_requests(peer, &mut stream, per_request).await;
        match end {
            StreamEnd::Cap => tracing::debug!(
                %peer,
                cap = MAX_REQUESTS_PER_STREAM,
                "rendezvous stream reached its cap of requests; closing it"
            ),
            StreamEnd::Closed => {}
            other => tracing::debug!(%peer, end = ?other, "rendezvous stream closed"),
        }
        // The peer may be gone already: nothing to do about a failed close.
        let _ = stream.close().await;
        end
    }

    async fn serve_requests<S>(
        &self,
        peer: PeerId,
        stream: &mut S,
        per_request: Duration,
    ) -> StreamEnd
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        for _ in 0..MAX_REQUESTS_PER_STREAM {
            match tokio::time::timeout(per_request, self.serve_one(peer, stream)).await {
                Ok(Ok(())) => {}
                Ok(Err(end)) => return end,
                Err(_) => return StreamEnd::TimedOut,
            }
        }
        StreamEnd::Cap
    }

    /// Reads one request from `stream` and writes its answer, if it has one.
    async fn serve_one<S>(&self, peer: PeerId, stream: &mut S) -> Result<(), StreamEnd>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let message = read_message(stream, MAX_REQUEST_BYTES)
            .await
            .map_err(|err| match err.kind() {
                io::ErrorKind::UnexpectedEof => StreamEnd::Closed,
                kind => StreamEnd::Failed(kind),
            })?;
        let request = Request::try_from(message).map_err(|not_a_request| {
            self.not_a_request(&peer, not_a_request);
            StreamEnd::NotARequest
        })?;
        if let Some(answer) = self.answer(peer, request).await {
            write_message(stream, &answer, MAX_RESPONSE_BYTES)
                .await
                .map_err(|err| StreamEnd::Failed(err.kind()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use futures::io::Cursor;
    use libp2p::identity::Keypair;
    use prost::Message as _;

    use super::*;
    use crate::rendezvous::{
        server::test_support::{
            discover, discover_answer, record_of, register, register_status, server,
        },
        wire::{Message, MessageType, ResponseStatus, Unregister},
    };

    /// A stream that reads `input` (then ends, or stays silent when `hang`) and keeps
    /// what is written.
    struct Pipe {
        input: Cursor<Vec<u8>>,
        hang: bool,
        output: Vec<u8>,
        closed: bool,
    }

    impl Pipe {
        fn new(frames: &[Message]) -> Self {
            let mut input = Vec::new();
            for frame in frames {
                frame.encode_length_delimited(&mut input).unwrap();
            }
            Self {
                input: Cursor::new(input),
                hang: false,
                output: Vec::new(),
                closed: false,
            }
        }

        /// The answers written, in order.
        fn answers(&self) -> Vec<Message> {
            let mut rest = &self.output[..];
            let mut answers = Vec::new();
            while !rest.is_empty() {
                answers.push(Message::decode_length_delimited(&mut rest).unwrap());
            }
            answers
        }
    }

    impl AsyncRead for Pipe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = &mut *self;
            let done = this.input.position() == this.input.get_ref().len() as u64;
            if done && this.hang {
                return Poll::Pending;
            }
            Pin::new(&mut this.input).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Pipe {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.output).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.closed = true;
            Poll::Ready(Ok(()))
        }
    }

    const PER_REQUEST: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn requests_are_served_in_order_until_the_stream_ends() {
        let (server, _) = server().await;
        let key = Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let mut untyped = register(Some("ns"), Some(record_of(&key)), None);
        untyped.r#type = None;
        let unregister = Message {
            r#type: Some(MessageType::Unregister as i32),
            unregister: Some(Unregister {
                ns: Some("ns".into()),
                id: None,
            }),
            ..Default::default()
        };
        let mut pipe = Pipe::new(&[
            untyped,
            discover(Some("ns"), None, None),
            unregister,
            discover(Some("ns"), None, None),
        ]);
        let end = server.serve_stream(peer, &mut pipe, PER_REQUEST).await;
        assert_eq!(end, StreamEnd::Closed);
        assert!(pipe.closed);
        let answers = pipe.answers();
        assert_eq!(answers.len(), 3, "UNREGISTER gets no answer");
        assert_eq!(
            register_status(Some(answers[0].clone())).0,
            ResponseStatus::Ok
        );
        assert_eq!(
            discover_answer(Some(answers[1].clone()))
                .registrations
                .len(),
            1
        );
        assert!(discover_answer(Some(answers[2].clone()))
            .registrations
            .is_empty());
    }

    #[tokio::test]
    async fn a_stream_is_closed_after_its_cap_of_requests() {
        let (server, _) = server().await;
        let requests = vec![discover(Some("ns"), None, None); MAX_REQUESTS_PER_STREAM + 1];
        let mut pipe = Pipe::new(&requests);
        let end = server
            .serve_stream(PeerId::random(), &mut pipe, PER_REQUEST)
            .await;
        assert_eq!(end, StreamEnd::Cap);
        assert!(pipe.closed);
        assert_eq!(pipe.answers().len(), MAX_REQUESTS_PER_STREAM);
        assert_eq!(server.stats().discovers, MAX_REQUESTS_PER_STREAM as u64);
    }

    #[tokio::test]
    async fn a_message_that_is_no_request_ends_the_stream() {
        let (server, _) = server().await;
        let response = Message {
            r#type: Some(MessageType::RegisterResponse as i32),
            ..Default::default()
        };
        let mut pipe = Pipe::new(&[response, discover(Some("ns"), None, None)]);
        let end = server
            .serve_stream(PeerId::random(), &mut pipe, PER_REQUEST)
            .await;
        assert_eq!(end, StreamEnd::NotARequest);
        assert!(pipe.answers().is_empty());
        assert_eq!(server.stats().malformed, 1);
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_after_its_last_answer() {
        let (server, _) = server().await;
        let mut pipe = Pipe::new(&[discover(Some("ns"), None, None)]);
        pipe.hang = true;
        let end = server
            .serve_stream(PeerId::random(), &mut pipe, Duration::from_millis(50))
            .await;
        assert_eq!(end, StreamEnd::TimedOut);
        assert_eq!(pipe.answers().len(), 1);
        assert!(pipe.closed);
    }
}
