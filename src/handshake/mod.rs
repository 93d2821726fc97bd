//! The contact-request handshake, `/berty/contact_req/1.0.0`: a requester who holds an
//! account's contact reference proves its own account to that account over one stream, and
//! hands it a contact request (its account key, its rendezvous seed, `meta`) that only the true
//! holder of the account can read.
//!
//! # The protocol in short
//!
//! The requester R knows the responder's account key `A_r` (from a contact reference) and
//! holds its own account key `A_i`; the responder S holds `A_r`'s secret. Six frames, each
//! varint length-prefixed, at most [`MAX_FRAME_LEN`] bytes, each awaited under a timeout:
//!
//! 1. F1, R to S: version `0x01` || R's ephemeral X25519 key `e_i`.
//! 2. F2, S to R: version `0x01` || S's ephemeral X25519 key `e_r`.
//!
//!    Both derive a channel (one ChaCha20-Poly1305 key per direction, counter nonces) from
//!    X25519(`e_i`, `e_r`) and X25519(`e_i`, `A_r` as X25519): only `A_r`'s holder can open
//!    what R seals. See [`crate::crypto::HandshakeChannel`].
//! 3. F3, R to S, sealed: `A_i` || `A_i`'s signature of the transcript hash `TH` (both
//!    ephemeral keys, both account keys). S checks the signature.
//! 4. F4, S to R, sealed: `A_r`'s signature of `TH` (another label). R checks it with `A_r`.
//! 5. F5, R to S, sealed: the contact ([`frames::ContactPayload`]). S checks its account key
//!    is the `A_i` proven in F3.
//! 6. F6, S to R, sealed: an acknowledgement byte. S sends it whenever F5 checks out, whatever
//!    it later does with the request (a blocked requester must not learn it is blocked); R
//!    succeeds once it opens F6.
//!
//! The layouts are in [`frames`], the key schedule in [`crate::crypto::HandshakeChannel`] and
//! [`crate::crypto::TranscriptHash`], the whole protocol byte by byte in `docs/protocol.md`.
//!
//! # API
//!
//! - [`request`] and [`respond`]: one side of the handshake over a stream
//!   (`futures::io::{AsyncRead, AsyncWrite}`), a timeout on every read and every write
//!   (`tokio::time::timeout`, so they run inside a tokio runtime with its timer). They neither
//!   close nor drop the stream: the caller does, also after an error.
//! - [`Requester`] and [`Responder`]: the same as pure state machines (no I/O, no clock, the
//!   rng passed in): feed each received frame body to `on_frame`, send what the [`Step`]
//!   says.
//! - [`OutgoingContact`] (what the requester sends) and [`IncomingContact`] (what the responder
//!   gets, its account key proven); [`HandshakeError`], one variant per cause.
//!
//! What the responder does with an [`IncomingContact`] (drop it for a reset reference or a
//! blocked account, record it) is the caller's business, after F6 went out.

pub mod frames;
mod machine;
mod stream;

use std::{io, time::Duration};

use crate::crypto::{CryptoError, RendezvousSeed, VerifyingKey};

pub use frames::{Frame, FrameError, MAX_FRAME_LEN};
pub use machine::{Requester, Responder, Step};
pub use stream::{request, respond};

/// The libp2p protocol name.
pub const PROTOCOL: &str = "/berty/contact_req/1.0.0";

/// What a requester sends (its account key comes from its signing key).
#[derive(Debug, Clone)]
pub struct OutgoingContact {
    /// The requester's own rendezvous seed, so the responder can reach it back.
    pub own_seed: Option<RendezvousSeed>,
    /// The responder's rendezvous seed, from the contact reference the requester holds (the
    /// responder drops requests made with a reference it has since reset).
    pub target_seed: RendezvousSeed,
    /// Free bytes for the responder's application, at most [`crate::defaults::MAX_META`].
    pub meta: Vec<u8>,
}

/// What a responder receives.
#[derive(Debug, Clone)]
pub struct IncomingContact {
    /// The requester's account key, proven by its signature of this session's transcript.
    pub account_pk: VerifyingKey,
    /// The requester's own rendezvous seed, if it sent one.
    pub rendezvous_seed: Option<RendezvousSeed>,
    /// The responder's rendezvous seed the requester used (compare with the current one).
    pub reference_seed: RendezvousSeed,
    /// The requester's `meta`, at most [`crate::defaults::MAX_META`] bytes.
    pub meta: Vec<u8>,
}

/// Why a handshake failed. Messages name the frame concerned and never carry key material.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer sent nothing (or not the whole frame) in time.
    #[error("timed out after {after:?} waiting for {frame}")]
    Timeout {
        /// The frame awaited.
        frame: Frame,
        /// The step timeout.
        after: Duration,
    },
    /// The peer did not take our frame in time.
    #[error("timed out after {after:?} sending {frame}")]
    SendTimeout {
        /// The frame being sent.
        frame: Frame,
        /// The step timeout.
        after: Duration,
    },
    /// The stream failed.
    #[error("I/O error on {frame}: {source}")]
    Io {
        /// The frame being read or sent.
        frame: Frame,
        /// The stream's error.
        #[source]
        source: io::Error,
    },
    /// The stream ended where a frame should have started.
    #[error("stream closed by the peer before {frame}")]
    Closed {
        /// The frame awaited.
        frame: Frame,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream closed by the peer after {received} bytes of {frame}")]
    Truncated {
        /// The frame being read.
        frame: Frame,
        /// Bytes of it received, length prefix included.
        received: usize,
    },
    /// The length prefix announces more than [`MAX_FRAME_LEN`] bytes (the body is not read).
    #[error("{frame} announces {announced} bytes, over the cap of {MAX_FRAME_LEN}")]
    FrameTooLarge {
        /// The frame being read.
        frame: Frame,
        /// The announced length.
        announced: u64,
    },
    /// The length prefix is not a minimal unsigned varint of at most 64 bits.
    #[error("{frame} has a malformed length prefix")]
    BadLength {
        /// The frame being read.
        frame: Frame,
    },
    /// A frame, or a sealed frame's plaintext, does not follow its layout (bad version
    /// included).
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The peer's ephemeral key has low order: an exchange with it is not contributory.
    #[error("{frame} carries a low-order ephemeral key")]
    WeakEphemeral {
        /// F1 or F2.
        frame: Frame,
    },
    /// A sealed frame does not open under this session's keys and counter: sealed for
    /// another account (the requester targets another key than the responder holds), taken
    /// from another session, replayed, or altered.
    #[error("{frame} does not open: wrong responder key, replayed or altered")]
    DecryptionFailed {
        /// The sealed frame.
        frame: Frame,
    },
    /// The signature in F3 (requester) or F4 (responder) does not verify for the claimed key
    /// and this session's transcript.
    #[error("the signature in {frame} does not verify")]
    BadSignature {
        /// F3 or F4.
        frame: Frame,
    },
    /// F5's account key is not the key the requester proved in F3.
    #[error(
        "{} names another account key than the one proven in {}",
        Frame::Contact,
        Frame::RequesterProof
    )]
    ContactKeyMismatch,
    /// The requester and the responder are the same account.
    #[error("a contact request to one's own account")]
    SelfContact,
    /// The requester's target is not a usable account key (a weak key).
    #[error("the target account key is a weak key")]
    InvalidTarget,
    /// The requester's `meta` is over [`crate::defaults::MAX_META`] (nothing was sent).
    #[error("meta of {len} bytes, over the cap of {}", crate::defaults::MAX_META)]
    MetaTooLarge {
        /// The length of `meta`.
        len: usize,
    },
    /// A frame was fed to a state machine that expects none: the handshake succeeded or
    /// failed already.
    #[error("no frame expected: the handshake is over")]
    Finished,
    /// The channel failed to seal or open for another reason than a bad frame (a bug: the
    /// frames and counters are far below the cipher's limits).
    #[error("channel failure on {frame}: {source}")]
    Channel {
        /// The frame being sealed or opened.
        frame: Frame,
        /// The cause.
        #[source]
        source: CryptoError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well_in_a_log_line() {
        let cases = [
            (
                HandshakeError::Timeout {
                    frame: Frame::ResponderProof,
                    after: Duration::from_millis(100),
                },
                "timed out after 100ms waiting for F4 (responder proof)",
            ),
            (
                HandshakeError::FrameTooLarge {
                    frame: Frame::RequesterHello,
                    announced: 2049,
                },
                "F1 (requester hello) announces 2049 bytes, over the cap of 2048",
            ),
            (
                HandshakeError::DecryptionFailed {
                    frame: Frame::RequesterProof,
                },
                "F3 (requester proof) does not open: wrong responder key, replayed or altered",
            ),
            (
                HandshakeError::ContactKeyMismatch,
                "F5 (contact) names another account key than the one proven in F3 \
                 (requester proof)",
            ),
            (
                HandshakeError::Frame(FrameError::BadVersion {
                    frame: Frame::RequesterHello,
                    version: 2,
                }),
                "F1 (requester hello) has version 2, this node speaks version 1",
            ),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
        }
    }
}
