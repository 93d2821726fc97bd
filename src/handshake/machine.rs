//! The two sides of the handshake as pure state machines: no I/O, no clock, no async; the rng
//! is passed in. Each takes the peer's frame bodies in order and says what to send next.
//!
//! A machine that refuses a frame is over: every later frame is refused with
//! [`HandshakeError::Finished`], like every frame after the last.

use std::mem;

use rand::{CryptoRng, RngCore};

use super::{
    frames::{self, ContactPayload, Frame, RequesterProof, ResponderProof},
    HandshakeError, IncomingContact, OutgoingContact,
};
use crate::{
    crypto::{
        CryptoError, HandshakeChannel, HandshakeEphemeral, HandshakeRole, SigningKey,
        TranscriptHash, VerifyingKey, HANDSHAKE_EPHEMERAL_LEN,
    },
    defaults::MAX_META,
};

/// What to do after a frame.
#[derive(Debug)]
pub enum Step<T> {
    /// Send this frame body, then wait for the peer's next frame.
    Send(Vec<u8>),
    /// Send this last frame body; the handshake is then over with `T`.
    SendAndFinish(Vec<u8>, T),
    /// The handshake is over with `T`; nothing more to send.
    Finish(T),
}

/// The requester's side: it knows the account it targets.
#[derive(Debug)]
pub struct Requester {
    own: SigningKey,
    target: VerifyingKey,
    contact: ContactPayload,
    state: RequesterState,
}

#[derive(Debug)]
enum RequesterState {
    AwaitResponderHello {
        ephemeral: HandshakeEphemeral,
    },
    AwaitResponderProof {
        channel: HandshakeChannel,
        transcript: TranscriptHash,
    },
    AwaitAck {
        channel: HandshakeChannel,
    },
    /// Succeeded or failed.
    Over,
}

impl Requester {
    /// Starts a request from the account `own` to the account `target`; returns the machine
    /// and F1, the first frame to send.
    ///
    /// Refused before anything is sent: `meta` over [`MAX_META`], a weak target, or a target
    /// that is `own`.
    pub fn new<R: CryptoRng + RngCore>(
        own: &SigningKey,
        target: &VerifyingKey,
        contact: &OutgoingContact,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        if contact.meta.len() > MAX_META {
            return Err(HandshakeError::MetaTooLarge {
                len: contact.meta.len(),
            });
        }
        if target.is_weak() {
            return Err(HandshakeError::InvalidTarget);
        }
        if own.verifying_key() == *target {
            return Err(HandshakeError::SelfContact);
        }
        let ephemeral = HandshakeEphemeral::generate(rng);
        let hello = frames::encode_hello(&ephemeral.public_bytes());
        let requester = Self {
            own: own.clone(),
            target: *target,
            contact: ContactPayload {
                account_pk: own.verifying_key().to_bytes(),
                rendezvous_seed: contact.own_seed.clone(),
                reference_seed: contact.target_seed.clone(),
                meta: contact.meta.clone(),
            },
            state: RequesterState::AwaitResponderHello { ephemeral },
        };
        Ok((requester, hello))
    }

    /// The frame expected next (`None` once the handshake is over).
    pub fn expecting(&self) -> Option<Frame> {
        match self.state {
            RequesterState::AwaitResponderHello { .. } => Some(Frame::ResponderHello),
            RequesterState::AwaitResponderProof { .. } => Some(Frame::ResponderProof),
            RequesterState::AwaitAck { .. } => Some(Frame::Ack),
            RequesterState::Over => None,
        }
    }

    /// Takes the responder's next frame body: F2 is answered with F3, F4 with F5, and F6
    /// finishes the handshake.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Step<()>, HandshakeError> {
        match mem::replace(&mut self.state, RequesterState::Over) {
            RequesterState::AwaitResponderHello { ephemeral } => {
                let ephemeral_pk = ephemeral.public_bytes();
                let responder_ephemeral = frames::parse_hello(Frame::ResponderHello, frame)?;
                let mut channel =
                    HandshakeChannel::for_requester(ephemeral, &responder_ephemeral, &self.target)
                        .map_err(|_| HandshakeError::WeakEphemeral {
                            frame: Frame::ResponderHello,
                        })?;
                let own_pk = self.own.verifying_key();
                let transcript =
                    TranscriptHash::new(&ephemeral_pk, &responder_ephemeral, &self.target, &own_pk);
                let proof = RequesterProof {
                    account_pk: own_pk,
                    signature: transcript.sign(&self.own, HandshakeRole::Requester),
                };
                let sealed = seal(&mut channel, Frame::RequesterProof, &proof.encode())?;
                self.state = RequesterState::AwaitResponderProof {
                    channel,
                    transcript,
                };
                Ok(Step::Send(sealed))
            }
            RequesterState::AwaitResponderProof {
                mut channel,
                transcript,
            } => {
                let plaintext = open(&mut channel, Frame::ResponderProof, frame)?;
                let proof = ResponderProof::parse(&plaintext)?;
                transcript
                    .verify(&self.target, HandshakeRole::Responder, &proof.signature)
                    .map_err(|_| HandshakeError::BadSignature {
                        frame: Frame::ResponderProof,
                    })?;
                let contact = self.contact.encode()?;
                let sealed = seal(&mut channel, Frame::Contact, &contact)?;
                self.state = RequesterState::AwaitAck { channel };
                Ok(Step::Send(sealed))
            }
            RequesterState::AwaitAck { mut channel } => {
                let plaintext = open(&mut channel, Frame::Ack, frame)?;
                frames::parse_ack(&plaintext)?;
                Ok(Step::Finish(()))
            }
            RequesterState::Over => Err(HandshakeError::Finished),
        }
    }
}

/// The responder's side: it holds the account key the requester targets.
#[derive(Debug)]
pub struct Responder {
    own: SigningKey,
    state: ResponderState,
}

#[derive(Debug)]
enum ResponderState {
    AwaitRequesterHello {
        ephemeral: HandshakeEphemeral,
    },
    AwaitRequesterProof {
        channel: HandshakeChannel,
        requester_ephemeral: [u8; HANDSHAKE_EPHEMERAL_LEN],
        ephemeral_pk: [u8; HANDSHAKE_EPHEMERAL_LEN],
    },
    AwaitContact {
        channel: HandshakeChannel,
        requester: VerifyingKey,
    },
    /// Succeeded or failed.
    Over,
}

impl Responder {
    /// Waits for a request to the account `own`.
    pub fn new<R: CryptoRng + RngCore>(own: &SigningKey, rng: &mut R) -> Self {
        Self {
            own: own.clone(),
            state: ResponderState::AwaitRequesterHello {
                ephemeral: HandshakeEphemeral::generate(rng),
            },
        }
    }

    /// The frame expected next (`None` once the handshake is over).
    pub fn expecting(&self) -> Option<Frame> {
        match self.state {
            ResponderState::AwaitRequesterHello { .. } => Some(Frame::RequesterHello),
            ResponderState::AwaitRequesterProof { .. } => Some(Frame::RequesterProof),
            ResponderState::AwaitContact { .. } => Some(Frame::Contact),
            ResponderState::Over => None,
        }
    }

    /// Takes the requester's next frame body: F1 is answered with F2, F3 with F4, and F5 with
    /// F6 and the contact, whose account key is the one proven in F3.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Step<IncomingContact>, HandshakeError> {
        match mem::replace(&mut self.state, ResponderState::Over) {
            ResponderState::AwaitRequesterHello { ephemeral } => {
                let ephemeral_pk = ephemeral.public_bytes();
                let requester_ephemeral = frames::parse_hello(Frame::RequesterHello, frame)?;
                let channel =
                    HandshakeChannel::for_responder(&self.own, ephemeral, &requester_ephemeral)
                        .map_err(|_| HandshakeError::WeakEphemeral {
                            frame: Frame::RequesterHello,
                        })?;
                self.state = ResponderState::AwaitRequesterProof {
                    channel,
                    requester_ephemeral,
                    ephemeral_pk,
                };
                Ok(Step::Send(frames::encode_hello(&ephemeral_pk)))
            }
            ResponderState::AwaitRequesterProof {
                mut channel,
                requester_ephemeral,
                ephemeral_pk,
            } => {
                let plaintext = open(&mut channel, Frame::RequesterProof, frame)?;
                let proof = RequesterProof::parse(&plaintext)?;
                let own_pk = self.own.verifying_key();
                if proof.account_pk == own_pk {
                    return Err(HandshakeError::SelfContact);
                }
                let transcript = TranscriptHash::new(
                    &requester_ephemeral,
                    &ephemeral_pk,
                    &own_pk,
                    &proof.account_pk,
                );
                transcript
                    .verify(
                        &proof.account_pk,
                        HandshakeRole::Requester,
                        &proof.signature,
                    )
                    .map_err(|_| HandshakeError::BadSignature {
                        frame: Frame::RequesterProof,
                    })?;
                let reply = ResponderProof {
                    signature: transcript.sign(&self.own, HandshakeRole::Responder),
                };
                let sealed = seal(&mut channel, Frame::ResponderProof, &reply.encode())?;
                self.state = ResponderState::AwaitContact {
                    channel,
                    requester: proof.account_pk,
                };
                Ok(Step::Send(sealed))
            }
            ResponderState::AwaitContact {
                mut channel,
                requester,
            } => {
                let plaintext = open(&mut channel, Frame::Contact, frame)?;
                let contact = ContactPayload::parse(&plaintext)?;
                if contact.account_pk != requester.to_bytes() {
                    return Err(HandshakeError::ContactKeyMismatch);
                }
                let ack = seal(&mut channel, Frame::Ack, &frames::encode_ack())?;
                Ok(Step::SendAndFinish(
                    ack,
                    IncomingContact {
                        account_pk: requester,
                        rendezvous_seed: contact.rendezvous_seed,
                        reference_seed: contact.reference_seed,
                        meta: contact.meta,
                    },
                ))
            }
            ResponderState::Over => Err(HandshakeError::Finished),
        }
    }
}

fn seal(
    channel: &mut HandshakeChannel,
    frame: Frame,
    plaintext: &[u8],
) -> Result<Vec<u8>, HandshakeError> {
    channel
        .seal(plaintext)
        .map_err(|source| HandshakeError::Channel { frame, source })
}

fn open(
    channel: &mut HandshakeChannel,
    frame: Frame,
    sealed: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, HandshakeError> {
    channel.open(sealed).map_err(|err| match err {
        CryptoError::DecryptionFailed => HandshakeError::DecryptionFailed { frame },
        source => HandshakeError::Channel { frame, source },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        crypto::{RendezvousSeed, Signature},
        handshake::frames::{FrameError, HELLO_LEN},
    };
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn key() -> SigningKey {
        SigningKey::generate(&mut OsRng)
    }

    fn outgoing(meta: &[u8]) -> OutgoingContact {
        OutgoingContact {
            own_seed: Some(RendezvousSeed::from_bytes([1; 32])),
            target_seed: RendezvousSeed::from_bytes([2; 32]),
            meta: meta.to_vec(),
        }
    }

    fn sent<T: std::fmt::Debug>(step: Result<Step<T>, HandshakeError>) -> Vec<u8> {
        match step {
            Ok(Step::Send(bytes)) => bytes,
            other => panic!("expected a frame to send, got {other:?}"),
        }
    }

    /// Both machines of a session between `a_i` (targeting `target`) and `a_r`, and F1.
    fn start(
        a_i: &SigningKey,
        target: &VerifyingKey,
        a_r: &SigningKey,
    ) -> (Requester, Responder, Vec<u8>) {
        let (requester, f1) = Requester::new(a_i, target, &outgoing(b"hello"), &mut OsRng).unwrap();
        (requester, Responder::new(a_r, &mut OsRng), f1)
    }

    /// Every frame of a successful session, and the contact the responder got.
    struct Session {
        frames: Vec<Vec<u8>>,
        contact: IncomingContact,
    }

    fn full_session(a_i: &SigningKey, a_r: &SigningKey, meta: &[u8]) -> Session {
        let (mut r, f1) =
            Requester::new(a_i, &a_r.verifying_key(), &outgoing(meta), &mut OsRng).unwrap();
        let mut s = Responder::new(a_r, &mut OsRng);
        assert_eq!(s.expecting(), Some(Frame::RequesterHello));
        let f2 = sent(s.on_frame(&f1));
        assert_eq!(r.expecting(), Some(Frame::ResponderHello));
        let f3 = sent(r.on_frame(&f2));
        assert_eq!(s.expecting(), Some(Frame::RequesterProof));
        let f4 = sent(s.on_frame(&f3));
        assert_eq!(r.expecting(), Some(Frame::ResponderProof));
        let f5 = sent(r.on_frame(&f4));
        assert_eq!(s.expecting(), Some(Frame::Contact));
        let (f6, contact) = match s.on_frame(&f5) {
            Ok(Step::SendAndFinish(f6, contact)) => (f6, contact),
            other => panic!("expected the acknowledgement, got {other:?}"),
        };
        assert_eq!(r.expecting(), Some(Frame::Ack));
        assert!(matches!(r.on_frame(&f6), Ok(Step::Finish(()))));
        // Both are over: nothing more is taken.
        assert_eq!(r.expecting(), None);
        assert_eq!(s.expecting(), None);
        assert!(matches!(r.on_frame(&f6), Err(HandshakeError::Finished)));
        assert!(matches!(s.on_frame(&f5), Err(HandshakeError::Finished)));
        Session {
            frames: vec![f1, f2, f3, f4, f5, f6],
            contact,
        }
    }

    #[test]
    fn a_session_delivers_the_proven_contact() {
        let (a_i, a_r) = (key(), key());
        let session = full_session(&a_i, &a_r, b"hello");
        let lengths: Vec<usize> = session.frames.iter().map(Vec::len).collect();
        assert_eq!(lengths, [33, 33, 112, 80, 97 + 5 + 16, 17]);
        assert_eq!(session.frames[0][0], 0x01);
        assert_eq!(session.frames[1][0], 0x01);
        let contact = session.contact;
        assert_eq!(contact.account_pk, a_i.verifying_key());
        assert_eq!(contact.rendezvous_seed.unwrap().as_bytes(), &[1; 32]);
        assert_eq!(contact.reference_seed.as_bytes(), &[2; 32]);
        assert_eq!(contact.meta, b"hello");
        // The largest meta fits a frame.
        let largest = full_session(&a_i, &a_r, &[7; MAX_META]);
        assert_eq!(largest.frames[4].len(), 97 + MAX_META + 16);
        assert!(largest.frames[4].len() <= frames::MAX_FRAME_LEN);
    }

    #[test]
    fn a_request_without_own_seed_arrives_without_one() {
        let (a_i, a_r) = (key(), key());
        let mut contact = outgoing(b"");
        contact.own_seed = None;
        let (mut r, f1) = Requester::new(&a_i, &a_r.verifying_key(), &contact, &mut OsRng).unwrap();
        let mut s = Responder::new(&a_r, &mut OsRng);
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        let f4 = sent(s.on_frame(&f3));
        let f5 = sent(r.on_frame(&f4));
        match s.on_frame(&f5) {
            Ok(Step::SendAndFinish(_, incoming)) => {
                assert!(incoming.rendezvous_seed.is_none());
                assert!(incoming.meta.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_responder_learns_nothing() {
        let (a_i, target, holder) = (key(), key(), key());
        let (mut r, mut s, f1) = start(&a_i, &target.verifying_key(), &holder);
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        // F3 is sealed for the target's key: the holder of another key cannot open it, so it
        // never sees the requester's account key, let alone the contact.
        assert!(matches!(
            s.on_frame(&f3),
            Err(HandshakeError::DecryptionFailed {
                frame: Frame::RequesterProof
            })
        ));
        assert_eq!(s.expecting(), None);
    }

    /// A responder done by hand with the crypto primitives: it answers F1 with F2 and can then
    /// send what the machine never would.
    struct HandResponder {
        channel: HandshakeChannel,
        e_i: [u8; 32],
        e_r: [u8; 32],
    }

    impl HandResponder {
        fn answer(a_r: &SigningKey, f1: &[u8]) -> (Self, Vec<u8>) {
            let e_i = frames::parse_hello(Frame::RequesterHello, f1).unwrap();
            let ephemeral = HandshakeEphemeral::generate(&mut OsRng);
            let e_r = ephemeral.public_bytes();
            let channel = HandshakeChannel::for_responder(a_r, ephemeral, &e_i).unwrap();
            (Self { channel, e_i, e_r }, frames::encode_hello(&e_r))
        }
    }

    /// A requester done by hand: it sends F1 and, given F2, holds the channel.
    struct HandRequester {
        ephemeral: HandshakeEphemeral,
    }

    impl HandRequester {
        fn hello() -> (Self, Vec<u8>) {
            let ephemeral = HandshakeEphemeral::generate(&mut OsRng);
            let f1 = frames::encode_hello(&ephemeral.public_bytes());
            (Self { ephemeral }, f1)
        }

        /// The channel and the transcript of a session with `a_r`, as `a_i` would have it.
        fn channel(
            self,
            f2: &[u8],
            a_r: &VerifyingKey,
            a_i: &VerifyingKey,
        ) -> (HandshakeChannel, TranscriptHash) {
            let e_i = self.ephemeral.public_bytes();
            let e_r = frames::parse_hello(Frame::ResponderHello, f2).unwrap();
            let channel = HandshakeChannel::for_requester(self.ephemeral, &e_r, a_r).unwrap();
            (channel, TranscriptHash::new(&e_i, &e_r, a_r, a_i))
        }
    }

    #[test]
    fn the_requester_refuses_a_responder_proof_that_does_not_verify() {
        let (a_i, a_r, other) = (key(), key(), key());
        type Forge<'a> = Box<dyn Fn(&TranscriptHash, &Signature) -> Signature + 'a>;
        let forgeries: Vec<(&str, Forge)> = vec![
            // The requester's own proof, reflected.
            ("reflected", Box::new(|_, requester_proof| *requester_proof)),
            // The responder's key, the requester's label.
            (
                "wrong label",
                Box::new(|th, _| th.sign(&a_r, HandshakeRole::Requester)),
            ),
            // Another key.
            (
                "other key",
                Box::new(|th, _| th.sign(&other, HandshakeRole::Responder)),
            ),
        ];
        for (name, forge) in forgeries {
            let (mut r, f1) =
                Requester::new(&a_i, &a_r.verifying_key(), &outgoing(b""), &mut OsRng).unwrap();
            let (mut hand, f2) = HandResponder::answer(&a_r, &f1);
            let f3 = sent(r.on_frame(&f2));
            let proof = RequesterProof::parse(&hand.channel.open(&f3).unwrap()).unwrap();
            let th = TranscriptHash::new(
                &hand.e_i,
                &hand.e_r,
                &a_r.verifying_key(),
                &proof.account_pk,
            );
            let signature = forge(&th, &proof.signature);
            let f4 = hand
                .channel
                .seal(&ResponderProof { signature }.encode())
                .unwrap();
            assert!(
                matches!(
                    r.on_frame(&f4),
                    Err(HandshakeError::BadSignature {
                        frame: Frame::ResponderProof
                    })
                ),
                "{name}"
            );
            assert_eq!(r.expecting(), None, "{name}");
        }
        // The honest proof, sent by hand, passes: the forgeries failed for their signature.
        let (mut r, f1) =
            Requester::new(&a_i, &a_r.verifying_key(), &outgoing(b""), &mut OsRng).unwrap();
        let (mut hand, f2) = HandResponder::answer(&a_r, &f1);
        let f3 = sent(r.on_frame(&f2));
        hand.channel.open(&f3).unwrap();
        let th = TranscriptHash::new(
            &hand.e_i,
            &hand.e_r,
            &a_r.verifying_key(),
            &a_i.verifying_key(),
        );
        let signature = th.sign(&a_r, HandshakeRole::Responder);
        let f4 = hand
            .channel
            .seal(&ResponderProof { signature }.encode())
            .unwrap();
        assert!(matches!(r.on_frame(&f4), Ok(Step::Send(_))));
    }

    #[test]
    fn the_responder_refuses_a_requester_proof_that_does_not_verify() {
        let (a_i, a_r, other, third) = (key(), key(), key(), key());
        let (a_i_pk, a_r_pk) = (a_i.verifying_key(), a_r.verifying_key());
        type Forge<'a> = Box<dyn Fn(&TranscriptHash, &HandshakeChannel) -> Signature + 'a>;
        let cases: Vec<(&str, Forge)> = vec![
            (
                "wrong label",
                Box::new(|th, _| th.sign(&a_i, HandshakeRole::Responder)),
            ),
            (
                "other key",
                Box::new(|th, _| th.sign(&other, HandshakeRole::Requester)),
            ),
        ];
        for (name, forge) in cases {
            let mut s = Responder::new(&a_r, &mut OsRng);
            let (hand, f1) = HandRequester::hello();
            let f2 = sent(s.on_frame(&f1));
            let (mut channel, th) = hand.channel(&f2, &a_r_pk, &a_i_pk);
            let signature = forge(&th, &channel);
            let proof = RequesterProof {
                account_pk: a_i_pk,
                signature,
            };
            let f3 = channel.seal(&proof.encode()).unwrap();
            assert!(
                matches!(
                    s.on_frame(&f3),
                    Err(HandshakeError::BadSignature {
                        frame: Frame::RequesterProof
                    })
                ),
                "{name}"
            );
        }
        // A proof made for another responder (the transcript names `third`), relayed here.
        let mut s = Responder::new(&a_r, &mut OsRng);
        let (hand, f1) = HandRequester::hello();
        let f2 = sent(s.on_frame(&f1));
        let (mut channel, _) = hand.channel(&f2, &a_r_pk, &a_i_pk);
        let e_r = frames::parse_hello(Frame::ResponderHello, &f2).unwrap();
        let e_i = frames::parse_hello(Frame::RequesterHello, &f1).unwrap();
        let elsewhere = TranscriptHash::new(&e_i, &e_r, &third.verifying_key(), &a_i_pk);
        let proof = RequesterProof {
            account_pk: a_i_pk,
            signature: elsewhere.sign(&a_i, HandshakeRole::Requester),
        };
        let f3 = channel.seal(&proof.encode()).unwrap();
        assert!(matches!(
            s.on_frame(&f3),
            Err(HandshakeError::BadSignature { .. })
        ));
        // A requester claiming the responder's own key.
        let mut s = Responder::new(&a_r, &mut OsRng);
        let (hand, f1) = HandRequester::hello();
        let f2 = sent(s.on_frame(&f1));
        let (mut channel, th) = hand.channel(&f2, &a_r_pk, &a_r_pk);
        let proof = RequesterProof {
            account_pk: a_r_pk,
            signature: th.sign(&a_r, HandshakeRole::Requester),
        };
        let f3 = channel.seal(&proof.encode()).unwrap();
        assert!(matches!(s.on_frame(&f3), Err(HandshakeError::SelfContact)));
    }

    #[test]
    fn a_contact_naming_another_key_is_refused() {
        let (a_i, a_r, other) = (key(), key(), key());
        let (mut r, mut s, f1) = start(&a_i, &a_r.verifying_key(), &a_r);
        // The requester proves a_i in F3 but names `other` in F5.
        r.contact.account_pk = other.verifying_key().to_bytes();
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        let f4 = sent(s.on_frame(&f3));
        let f5 = sent(r.on_frame(&f4));
        assert!(matches!(
            s.on_frame(&f5),
            Err(HandshakeError::ContactKeyMismatch)
        ));
        assert_eq!(s.expecting(), None);
    }

    #[test]
    fn frames_replayed_within_a_session_do_not_open() {
        let (a_i, a_r) = (key(), key());
        // F3 again where F5 is expected.
        let (mut r, mut s, f1) = start(&a_i, &a_r.verifying_key(), &a_r);
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        let f4 = sent(s.on_frame(&f3));
        assert!(matches!(
            s.on_frame(&f3),
            Err(HandshakeError::DecryptionFailed {
                frame: Frame::Contact
            })
        ));
        // F4 again where F6 is expected.
        let _f5 = sent(r.on_frame(&f4));
        assert!(matches!(
            r.on_frame(&f4),
            Err(HandshakeError::DecryptionFailed { frame: Frame::Ack })
        ));
        // F2 again where F4 is expected.
        let (mut r, mut s, f1) = start(&a_i, &a_r.verifying_key(), &a_r);
        let f2 = sent(s.on_frame(&f1));
        let _f3 = sent(r.on_frame(&f2));
        assert!(matches!(
            r.on_frame(&f2),
            Err(HandshakeError::DecryptionFailed {
                frame: Frame::ResponderProof
            })
        ));
    }

    #[test]
    fn frames_from_another_session_do_not_open() {
        let (a_i, a_r) = (key(), key());
        let old = full_session(&a_i, &a_r, b"old").frames;
        // The old F3 and F5 against a new responder, after a fresh F1 and after the old F1.
        for f1 in [None, Some(old[0].clone())] {
            let (mut r, mut s, fresh_f1) = start(&a_i, &a_r.verifying_key(), &a_r);
            let f2 = sent(s.on_frame(&f1.unwrap_or(fresh_f1)));
            assert!(matches!(
                s.on_frame(&old[2]),
                Err(HandshakeError::DecryptionFailed {
                    frame: Frame::RequesterProof
                })
            ));
            let _ = r.on_frame(&f2);
        }
        let (mut r, mut s, f1) = start(&a_i, &a_r.verifying_key(), &a_r);
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        let _f4 = sent(s.on_frame(&f3));
        assert!(matches!(
            s.on_frame(&old[4]),
            Err(HandshakeError::DecryptionFailed {
                frame: Frame::Contact
            })
        ));
        // The old F2, F4 and F6 against a new requester.
        let (mut r, _, _) = start(&a_i, &a_r.verifying_key(), &a_r);
        let _f3 = sent(r.on_frame(&old[1]));
        assert!(matches!(
            r.on_frame(&old[3]),
            Err(HandshakeError::DecryptionFailed {
                frame: Frame::ResponderProof
            })
        ));
        let (mut r, mut s, f1) = start(&a_i, &a_r.verifying_key(), &a_r);
        let f2 = sent(s.on_frame(&f1));
        let f3 = sent(r.on_frame(&f2));
        let f4 = sent(s.on_frame(&f3));
        let _f5 = sent(r.on_frame(&f4));
        assert!(matches!(
            r.on_frame(&old[5]),
            Err(HandshakeError::DecryptionFailed { frame: Frame::Ack })
        ));
    }

    #[test]
    fn low_order_ephemeral_keys_are_refused() {
        let (a_i, a_r) = (key(), key());
        let zero = frames::encode_hello(&[0; 32]);
        let mut s = Responder::new(&a_r, &mut OsRng);
        assert!(matches!(
            s.on_frame(&zero),
            Err(HandshakeError::WeakEphemeral {
                frame: Frame::RequesterHello
            })
        ));
        let (mut r, _, _) = start(&a_i, &a_r.verifying_key(), &a_r);
        assert!(matches!(
            r.on_frame(&zero),
            Err(HandshakeError::WeakEphemeral {
                frame: Frame::ResponderHello
            })
        ));
    }

    #[test]
    fn bad_hellos_are_named() {
        let a_r = key();
        let mut hello = frames::encode_hello(&[9; 32]);
        hello[0] = 2;
        let mut s = Responder::new(&a_r, &mut OsRng);
        assert!(matches!(
            s.on_frame(&hello),
            Err(HandshakeError::Frame(FrameError::BadVersion {
                frame: Frame::RequesterHello,
                version: 2
            }))
        ));
        let mut s = Responder::new(&a_r, &mut OsRng);
        assert!(matches!(
            s.on_frame(&[1; HELLO_LEN + 1]),
            Err(HandshakeError::Frame(FrameError::Length { .. }))
        ));
    }

    #[test]
    fn requests_that_cannot_be_made_are_refused_before_f1() {
        let (a_i, a_r) = (key(), key());
        let too_big = outgoing(&[0; MAX_META + 1]);
        assert!(matches!(
            Requester::new(&a_i, &a_r.verifying_key(), &too_big, &mut OsRng),
            Err(HandshakeError::MetaTooLarge { len: 1025 })
        ));
        assert!(matches!(
            Requester::new(&a_i, &a_i.verifying_key(), &outgoing(b""), &mut OsRng),
            Err(HandshakeError::SelfContact)
        ));
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        assert!(matches!(
            Requester::new(&a_i, &weak, &outgoing(b""), &mut OsRng),
            Err(HandshakeError::InvalidTarget)
        ));
    }

    /// A requester and a responder in each of their states (waiting for their first,
    /// second, third frame, and over), reached by honest sessions.
    fn every_state() -> (Vec<Requester>, Vec<Responder>) {
        let (a_i, a_r) = (key(), key());
        let (mut requesters, mut responders) = (Vec::new(), Vec::new());
        for depth in 0..4 {
            let (mut r, mut s, mut to_responder) = start(&a_i, &a_r.verifying_key(), &a_r);
            for _ in 0..depth {
                let to_requester = match s.on_frame(&to_responder) {
                    Ok(Step::Send(bytes) | Step::SendAndFinish(bytes, _)) => bytes,
                    other => panic!("{other:?}"),
                };
                match r.on_frame(&to_requester) {
                    Ok(Step::Send(bytes)) => to_responder = bytes,
                    Ok(Step::Finish(())) => {}
                    other => panic!("{other:?}"),
                }
            }
            requesters.push(r);
            responders.push(s);
        }
        (requesters, responders)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_never_panic_any_state(
            bytes in proptest::collection::vec(any::<u8>(), 0..1300),
        ) {
            let (requesters, responders) = every_state();
            for mut r in requesters {
                let expecting = r.expecting();
                let result = r.on_frame(&bytes);
                // Random bytes never open a sealed frame.
                if !matches!(expecting, Some(Frame::ResponderHello)) {
                    prop_assert!(result.is_err());
                }
            }
            for mut s in responders {
                let expecting = s.expecting();
                let result = s.on_frame(&bytes);
                if !matches!(expecting, Some(Frame::RequesterHello)) {
                    prop_assert!(result.is_err());
                }
            }
        }

        #[test]
        fn a_hello_shaped_frame_never_panics(tail in any::<[u8; 32]>()) {
            let (requesters, responders) = every_state();
            let hello = frames::encode_hello(&tail);
            for mut r in requesters {
                let _ = r.on_frame(&hello);
            }
            for mut s in responders {
                let _ = s.on_frame(&hello);
            }
        }
    }
}
