//! The handshake over a stream: the state machines of [`super::machine`] fed with frames read
//! from an `AsyncRead + AsyncWrite`, their answers written back. This file only moves bytes
//! and applies timeouts.
//!
//! Framing: an unsigned LEB128 varint length (minimal, at most 64 bits), then that many
//! bytes, at most [`MAX_FRAME_LEN`]. A length over the cap is refused from the prefix alone:
//! the body is never read. Frames are written with [`crate::framing::write_frame`]; they are
//! read here rather than with [`crate::framing::read_frame`] so that each defect (stream
//! closed before a frame or in the middle of one, a length over the cap, a malformed
//! length) gets its own [`HandshakeError`].
//!
//! Every read and every write runs under `step_timeout` (`tokio::time::timeout`): a peer that
//! stalls at any step costs at most that long per frame.

use std::{future::Future, time::Duration};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite};
use rand::rngs::OsRng;

use super::{
    frames::{Frame, MAX_FRAME_LEN},
    machine::{Requester, Responder, Step},
    HandshakeError, IncomingContact, OutgoingContact,
};
use crate::{
    crypto::{SigningKey, VerifyingKey},
    framing,
};

/// Longest length prefix: a `u64` takes at most 10 bytes as a varint.
const MAX_PREFIX_LEN: usize = 10;

/// Runs the requester's side on `stream`: `Ok` once the responder acknowledged the contact
/// (F6). `own` is the requester's account key, `target` the account it asks.
pub async fn request<S>(
    stream: &mut S,
    own: &SigningKey,
    target: &VerifyingKey,
    contact: &OutgoingContact,
    step_timeout: Duration,
) -> Result<(), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (requester, hello) = Requester::new(own, target, contact, &mut OsRng)?;
    send(stream, Frame::RequesterHello, &hello, step_timeout).await?;
    drive(stream, requester, step_timeout).await
}

/// Runs the responder's side on `stream` for the account `own`: the requester's contact,
/// its account key proven, once F6 is sent.
pub async fn respond<S>(
    stream: &mut S,
    own: &SigningKey,
    step_timeout: Duration,
) -> Result<IncomingContact, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    drive(stream, Responder::new(own, &mut OsRng), step_timeout).await
}

/// One side's state machine, as the driver sees it.
trait Machine {
    type Outcome;
    fn expecting(&self) -> Option<Frame>;
    fn on_frame(&mut self, frame: &[u8]) -> Result<Step<Self::Outcome>, HandshakeError>;
}

impl Machine for Requester {
    type Outcome = ();
    fn expecting(&self) -> Option<Frame> {
        Requester::expecting(self)
    }
    fn on_frame(&mut self, frame: &[u8]) -> Result<Step<()>, HandshakeError> {
        Requester::on_frame(self, frame)
    }
}

impl Machine for Responder {
    type Outcome = IncomingContact;
    fn expecting(&self) -> Option<Frame> {
        Responder::expecting(self)
    }
    fn on_frame(&mut self, frame: &[u8]) -> Result<Step<IncomingContact>, HandshakeError> {
        Responder::on_frame(self, frame)
    }
}

/// Reads the frames `machine` expects and sends its answers until it finishes.
async fn drive<S, M>(
    stream: &mut S,
    mut machine: M,
    step_timeout: Duration,
) -> Result<M::Outcome, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    M: Machine,
{
    loop {
        let frame = machine.expecting().ok_or(HandshakeError::Finished)?;
        let body = within(
            step_timeout,
            read_frame(stream, frame),
            HandshakeError::Timeout {
                frame,
                after: step_timeout,
            },
        )
        .await?;
        let answer = frame.answer().ok_or(HandshakeError::Finished);
        match machine.on_frame(&body)? {
            Step::Send(reply) => send(stream, answer?, &reply, step_timeout).await?,
            Step::SendAndFinish(reply, outcome) => {
                send(stream, answer?, &reply, step_timeout).await?;
                return Ok(outcome);
            }
            Step::Finish(outcome) => return Ok(outcome),
        }
    }
}

/// `future` within `limit`, else `on_timeout`.
async fn within<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, HandshakeError>>,
    on_timeout: HandshakeError,
) -> Result<T, HandshakeError> {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or(Err(on_timeout))
}

/// Writes one frame (length prefix and body) and flushes, within `step_timeout`.
async fn send<S>(
    stream: &mut S,
    frame: Frame,
    body: &[u8],
    step_timeout: Duration,
) -> Result<(), HandshakeError>
where
    S: AsyncWrite + Unpin + Send,
{
    let write = async {
        framing::write_frame(stream, body, MAX_FRAME_LEN)
            .await
            .map_err(|source| HandshakeError::Io { frame, source })
    };
    let timeout = HandshakeError::SendTimeout {
        frame,
        after: step_timeout,
    };
    within(step_timeout, write, timeout).await
}

/// Reads one frame's body (at most [`MAX_FRAME_LEN`] bytes).
async fn read_frame<S>(stream: &mut S, frame: Frame) -> Result<Vec<u8>, HandshakeError>
where
    S: AsyncRead + Unpin + Send,
{
    let (len, prefix_len) = read_length(stream, frame).await?;
    let mut body = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        match stream.read(&mut body[filled..]).await {
            Ok(0) => {
                return Err(HandshakeError::Truncated {
                    frame,
                    received: prefix_len + filled,
                })
            }
            Ok(n) => filled += n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(HandshakeError::Io { frame, source }),
        }
    }
    Ok(body)
}

/// Reads the varint length prefix; returns the length and the prefix's own length.
async fn read_length<S>(stream: &mut S, frame: Frame) -> Result<(usize, usize), HandshakeError>
where
    S: AsyncRead + Unpin + Send,
{
    let mut value: u64 = 0;
    for i in 0..MAX_PREFIX_LEN {
        let byte = read_byte(stream, frame, i).await?;
        let bits = u64::from(byte & 0x7f);
        // The tenth byte holds bit 63 only.
        if i == MAX_PREFIX_LEN - 1 && bits > 1 {
            return Err(HandshakeError::BadLength { frame });
        }
        value |= bits << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after others is a non-minimal encoding.
            if byte == 0 && i > 0 {
                return Err(HandshakeError::BadLength { frame });
            }
            return match usize::try_from(value) {
                Ok(len) if len <= MAX_FRAME_LEN => Ok((len, i + 1)),
                _ => Err(HandshakeError::FrameTooLarge {
                    frame,
                    announced: value,
                }),
            };
        }
    }
    Err(HandshakeError::BadLength { frame })
}

/// One byte of the prefix; the stream ending there is [`HandshakeError::Closed`] before the
/// first byte, [`HandshakeError::Truncated`] after it.
async fn read_byte<S>(stream: &mut S, frame: Frame, read: usize) -> Result<u8, HandshakeError>
where
    S: AsyncRead + Unpin + Send,
{
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte).await {
            Ok(0) if read == 0 => return Err(HandshakeError::Closed { frame }),
            Ok(0) => {
                return Err(HandshakeError::Truncated {
                    frame,
                    received: read,
                })
            }
            Ok(_) => return Ok(byte[0]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => return Err(HandshakeError::Io { frame, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        pin::Pin,
        task::{ready, Context, Poll},
        time::Instant,
    };

    use futures::AsyncWriteExt;

    use super::*;
    use crate::{
        crypto::RendezvousSeed,
        handshake::{frames::FrameError, Frame},
    };

    /// The step timeout of the tests that expect one. The honest steps before it must fit
    /// in it too, on a loaded two-core machine: 300 ms leaves them ample room.
    const STEP: Duration = Duration::from_millis(300);
    /// Long enough that a test failing by timeout instead of by the expected error shows.
    const PATIENT: Duration = Duration::from_secs(5);

    /// One end of an in-memory duplex stream (tokio's), as a `futures::io` stream.
    struct Pipe(tokio::io::DuplexStream);

    fn pipes() -> (Pipe, Pipe) {
        let (a, b) = tokio::io::duplex(4096);
        (Pipe(a), Pipe(b))
    }

    impl AsyncRead for Pipe {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let mut buf = tokio::io::ReadBuf::new(buf);
            ready!(tokio::io::AsyncRead::poll_read(
                Pin::new(&mut self.0),
                cx,
                &mut buf
            ))?;
            Poll::Ready(Ok(buf.filled().len()))
        }
    }

    impl AsyncWrite for Pipe {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            tokio::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
        }

        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            tokio::io::AsyncWrite::poll_shutdown(Pin::new(&mut self.0), cx)
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate(&mut OsRng)
    }

    fn outgoing() -> OutgoingContact {
        OutgoingContact {
            own_seed: Some(RendezvousSeed::from_bytes([1; 32])),
            target_seed: RendezvousSeed::from_bytes([2; 32]),
            meta: b"hi, it's me".to_vec(),
        }
    }

    /// The responder's result when the peer sends `bytes` and then closes its side.
    async fn respond_to_bytes(bytes: &[u8]) -> Result<IncomingContact, HandshakeError> {
        let (mut ours, mut theirs) = pipes();
        theirs.write_all(bytes).await.unwrap();
        theirs.close().await.unwrap();
        respond(&mut ours, &key(), PATIENT).await
    }

    /// The responder's result when the peer sends `bytes` and then keeps the stream open.
    async fn respond_to_stalled_bytes(bytes: &[u8]) -> Result<IncomingContact, HandshakeError> {
        let (mut ours, mut theirs) = pipes();
        theirs.write_all(bytes).await.unwrap();
        let result = respond(&mut ours, &key(), PATIENT).await;
        drop(theirs);
        result
    }

    #[tokio::test]
    async fn a_request_reaches_the_responder() {
        let (a_i, a_r) = (key(), key());
        let (mut requester_end, mut responder_end) = pipes();
        let contact = outgoing();
        let target = a_r.verifying_key();
        let (requested, responded) = tokio::join!(
            request(&mut requester_end, &a_i, &target, &contact, PATIENT),
            respond(&mut responder_end, &a_r, PATIENT),
        );
        requested.unwrap();
        let incoming = responded.unwrap();
        assert_eq!(incoming.account_pk, a_i.verifying_key());
        assert_eq!(incoming.rendezvous_seed.unwrap().as_bytes(), &[1; 32]);
        assert_eq!(incoming.reference_seed.as_bytes(), &[2; 32]);
        assert_eq!(incoming.meta, b"hi, it's me");
    }

    #[tokio::test]
    async fn a_wrong_responder_fails_on_both_sides() {
        let (a_i, target, holder) = (key(), key(), key());
        let (mut requester_end, mut responder_end) = pipes();
        let contact = outgoing();
        let responder = async {
            let result = respond(&mut responder_end, &holder, PATIENT).await;
            // The node drops a stream whose handshake failed.
            drop(responder_end);
            result
        };
        let target = target.verifying_key();
        let (requested, responded) = tokio::join!(
            request(&mut requester_end, &a_i, &target, &contact, PATIENT),
            responder,
        );
        assert!(
            matches!(
                responded,
                Err(HandshakeError::DecryptionFailed {
                    frame: Frame::RequesterProof
                })
            ),
            "{responded:?}"
        );
        assert!(
            matches!(
                requested,
                Err(HandshakeError::Closed {
                    frame: Frame::ResponderProof
                })
            ),
            "{requested:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_closed_early_is_named() {
        let err = respond_to_bytes(&[]).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Closed {
                    frame: Frame::RequesterHello
                }
            ),
            "{err:?}"
        );
        // In the middle of the length prefix.
        let err = respond_to_bytes(&[0x80]).await.unwrap_err();
        assert!(
            matches!(err, HandshakeError::Truncated { received: 1, .. }),
            "{err:?}"
        );
        // In the middle of the body: 33 bytes announced, 10 sent.
        let mut partial = vec![33, 1];
        partial.extend_from_slice(&[7; 9]);
        let err = respond_to_bytes(&partial).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Truncated {
                    frame: Frame::RequesterHello,
                    received: 11
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "stream closed by the peer after 11 bytes of F1 (requester hello)"
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_cap_is_refused_from_its_prefix() {
        let started = Instant::now();
        // 2049 announced, no body sent, the stream left open: only the prefix can refuse it.
        let err = respond_to_stalled_bytes(&[0x81, 0x10]).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::FrameTooLarge {
                    frame: Frame::RequesterHello,
                    announced: 2049
                }
            ),
            "{err:?}"
        );
        assert!(started.elapsed() < PATIENT / 2);
        // The largest length a varint holds.
        let mut huge = vec![0xff; 9];
        huge.push(0x01);
        let err = respond_to_stalled_bytes(&huge).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::FrameTooLarge {
                    announced: u64::MAX,
                    ..
                }
            ),
            "{err:?}"
        );
        // 2048 itself is within the cap: it is read (and then refused as a hello).
        let mut largest = vec![0x80, 0x10, 0x01];
        largest.extend_from_slice(&[0; 2047]);
        let err = respond_to_bytes(&largest).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Frame(FrameError::Length { actual: 2048, .. })
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn malformed_length_prefixes_are_refused() {
        for prefix in [
            &[0x80, 0x00][..],                                             // non-minimal zero
            &[0x81, 0x80, 0x00],                                           // non-minimal one
            &[0xff; 11],                                                   // never ends
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], // over 64 bits
        ] {
            let err = respond_to_stalled_bytes(prefix).await.unwrap_err();
            assert!(
                matches!(err, HandshakeError::BadLength { .. }),
                "{prefix:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_and_wrong_versions_are_refused() {
        // Text where F1 should be.
        let err = respond_to_bytes(b"\x0bhello there").await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Frame(FrameError::BadVersion {
                    frame: Frame::RequesterHello,
                    version: b'h'
                })
            ),
            "{err:?}"
        );
        // A well-formed F1 of version 2.
        let mut v2 = vec![33, 2];
        v2.extend_from_slice(&[9; 32]);
        let err = respond_to_bytes(&v2).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Frame(FrameError::BadVersion { version: 2, .. })
            ),
            "{err:?}"
        );
        // Version 1, wrong length.
        let err = respond_to_bytes(&[3, 1, 2, 3]).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::Frame(FrameError::Length {
                    expected: 33,
                    actual: 3,
                    ..
                })
            ),
            "{err:?}"
        );
        // A proper F1, then garbage where the sealed F3 should be.
        let mut f1 = vec![33, 1];
        f1.extend_from_slice(
            &crate::crypto::HandshakeEphemeral::generate(&mut OsRng).public_bytes(),
        );
        f1.extend_from_slice(&[96 + 16]);
        f1.extend_from_slice(&[0xaa; 96 + 16]);
        let err = respond_to_bytes(&f1).await.unwrap_err();
        assert!(
            matches!(
                err,
                HandshakeError::DecryptionFailed {
                    frame: Frame::RequesterProof
                }
            ),
            "{err:?}"
        );
    }

    /// A responder that answers `answers` frames, then goes silent with the stream open.
    async fn stalling_responder(stream: &mut Pipe, own: &SigningKey, answers: usize) {
        let mut machine = Responder::new(own, &mut OsRng);
        for _ in 0..answers {
            let frame = machine.expecting().unwrap();
            let body = read_frame(stream, frame).await.unwrap();
            match machine.on_frame(&body).unwrap() {
                Step::Send(reply) => framing::write_frame(stream, &reply, MAX_FRAME_LEN)
                    .await
                    .unwrap(),
                other => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(PATIENT).await;
    }

    /// A requester that sends F1 and answers `answers` frames, then goes silent.
    async fn stalling_requester(
        stream: &mut Pipe,
        own: &SigningKey,
        target: &VerifyingKey,
        answers: usize,
    ) {
        let (mut machine, hello) = Requester::new(own, target, &outgoing(), &mut OsRng).unwrap();
        framing::write_frame(stream, &hello, MAX_FRAME_LEN)
            .await
            .unwrap();
        for _ in 0..answers {
            let frame = machine.expecting().unwrap();
            let body = read_frame(stream, frame).await.unwrap();
            match machine.on_frame(&body).unwrap() {
                Step::Send(reply) => framing::write_frame(stream, &reply, MAX_FRAME_LEN)
                    .await
                    .unwrap(),
                other => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(PATIENT).await;
    }

    fn assert_timed_out(result: Result<impl std::fmt::Debug, HandshakeError>, expected: Frame) {
        match result {
            Err(HandshakeError::Timeout { frame, after }) => {
                assert_eq!(frame, expected);
                assert_eq!(after, STEP);
            }
            other => panic!("expected a timeout waiting for {expected}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_silent_responder_times_out_the_requester_at_each_step() {
        let (a_i, a_r) = (key(), key());
        for (answers, awaited) in [
            (0, Frame::ResponderHello),
            (1, Frame::ResponderProof),
            (2, Frame::Ack),
        ] {
            let (mut requester_end, mut responder_end) = pipes();
            let contact = outgoing();
            let target = a_r.verifying_key();
            let started = Instant::now();
            let result = tokio::select! {
                result = request(&mut requester_end, &a_i, &target, &contact, STEP) => result,
                () = stalling_responder(&mut responder_end, &a_r, answers) => panic!("the peer stopped first"),
            };
            assert_timed_out(result, awaited);
            assert!(started.elapsed() < PATIENT / 2);
        }
    }

    #[tokio::test]
    async fn a_silent_requester_times_out_the_responder_at_each_step() {
        let (a_i, a_r) = (key(), key());
        // Not even F1.
        let (mut responder_end, _silent) = pipes();
        assert_timed_out(
            respond(&mut responder_end, &a_r, STEP).await,
            Frame::RequesterHello,
        );
        for (answers, awaited) in [(0, Frame::RequesterProof), (1, Frame::Contact)] {
            let (mut requester_end, mut responder_end) = pipes();
            let target = a_r.verifying_key();
            let result = tokio::select! {
                result = respond(&mut responder_end, &a_r, STEP) => result,
                () = stalling_requester(&mut requester_end, &a_i, &target, answers) => panic!("the peer stopped first"),
            };
            assert_timed_out(result, awaited);
        }
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_times_out_the_sender() {
        let a_r = key();
        // A 16-byte pipe: F1 (34 bytes with its prefix) cannot be written whole.
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut ours = Pipe(ours);
        let result = request(&mut ours, &key(), &a_r.verifying_key(), &outgoing(), STEP).await;
        assert!(
            matches!(
                result,
                Err(HandshakeError::SendTimeout {
                    frame: Frame::RequesterHello,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
