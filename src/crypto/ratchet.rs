//! The per-device symmetric ratchet of a group's message log.
//!
//! Each device of each group has a chain key and a counter. One step is
//! HKDF-SHA256(ikm = chain key, info = [`labels::KDF_CHAIN_STEP`] || group pk), 64 bytes:
//! the first 32 are the next chain key, the last 32 the message key of the current counter.
//!
//! The sender side is a [`SenderChain`]; every member keeps a [`ReceiverChain`] per sending
//! device, started from the chain key and counter that device sealed to it. Keys are one-way:
//! a chain key reveals nothing about earlier message keys, but everything about later ones
//! (no post-compromise security).

use std::{collections::BTreeMap, fmt};

use ed25519_dalek::VerifyingKey;
use rand::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::{
    codec::Reader, envelope::SymmetricKey, kdf::hkdf_sha256, keys::KEY_LEN, labels,
    secret::secret_bytes, CryptoError,
};

/// How far a receiver derives ahead of the next expected counter, and how many skipped
/// message keys it keeps (oldest dropped first) for out-of-order delivery.
pub const RECEIVE_WINDOW: u64 = 4096;

/// Version of a stored sender chain.
const SENDER_VERSION: u8 = 1;
/// Version of a stored receiver chain.
const RECEIVER_VERSION: u8 = 1;

secret_bytes!(
    /// A 32-byte chain key: the state from which all later message keys of a device follow.
    ChainKey
);

impl ChainKey {
    /// One ratchet step: the next chain key and the message key for the current counter.
    pub fn step(&self, group_pk: &VerifyingKey) -> Result<(ChainKey, MessageKey), CryptoError> {
        let out = hkdf_sha256::<{ 2 * KEY_LEN }>(
            self.as_bytes(),
            &[labels::KDF_CHAIN_STEP, group_pk.as_bytes()],
        )?;
        let mut next = Zeroizing::new([0u8; KEY_LEN]);
        let mut message = Zeroizing::new([0u8; KEY_LEN]);
        next.copy_from_slice(&out[..KEY_LEN]);
        message.copy_from_slice(&out[KEY_LEN..]);
        Ok((
            ChainKey::from_zeroizing(next),
            MessageKey(SymmetricKey::from_zeroizing(message)),
        ))
    }
}

/// The key sealing the body of one message; use it once, then drop it (clones exist only
/// inside trial copies of a [`ReceiverChain`]).
#[derive(Clone)]
pub struct MessageKey(SymmetricKey);

impl MessageKey {
    /// From its 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(SymmetricKey::from_bytes(bytes))
    }

    /// The bytes (keep them secret).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        self.0.as_bytes()
    }

    /// The key as an envelope key.
    pub fn as_symmetric(&self) -> &SymmetricKey {
        &self.0
    }
}

impl fmt::Debug for MessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageKey(<secret>)")
    }
}

/// This device's sending chain in one group.
///
/// Persist the state (see [`SenderChain::to_bytes`]) in the same transaction that stores the
/// message sealed with the key [`SenderChain::next_key`] returned, so a key is never reused.
#[derive(Clone)]
pub struct SenderChain {
    group_pk: VerifyingKey,
    chain_key: ChainKey,
    counter: u64,
}

impl SenderChain {
    /// Length of [`SenderChain::to_bytes`].
    pub const ENCODED_LEN: usize = 1 + KEY_LEN + KEY_LEN + 8;

    /// A new chain with a random chain key, starting at counter 0.
    pub fn generate<R: CryptoRng + RngCore>(group_pk: VerifyingKey, rng: &mut R) -> Self {
        Self::from_parts(group_pk, ChainKey::generate(rng), 0)
    }

    /// A chain whose next message uses `counter` and the key that follows from `chain_key`.
    pub fn from_parts(group_pk: VerifyingKey, chain_key: ChainKey, counter: u64) -> Self {
        Self {
            group_pk,
            chain_key,
            counter,
        }
    }

    /// The group this chain belongs to.
    pub fn group_pk(&self) -> &VerifyingKey {
        &self.group_pk
    }

    /// The current chain key: what to seal to a member (with [`SenderChain::counter`]) so it can
    /// read this device's messages from now on.
    pub fn chain_key(&self) -> &ChainKey {
        &self.chain_key
    }

    /// The counter of the next message.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The counter and key for the next message, advancing the chain.
    pub fn next_key(&mut self) -> Result<(u64, MessageKey), CryptoError> {
        let following = self
            .counter
            .checked_add(1)
            .ok_or(CryptoError::CounterExhausted)?;
        let (chain_key, message_key) = self.chain_key.step(&self.group_pk)?;
        let counter = self.counter;
        self.chain_key = chain_key;
        self.counter = following;
        Ok((counter, message_key))
    }

    /// The state for storage: version `1` || group pk (32) || chain key (32) || counter
    /// (u64 big-endian), 73 bytes. Keep the result secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(Self::ENCODED_LEN));
        out.push(SENDER_VERSION);
        out.extend_from_slice(self.group_pk.as_bytes());
        out.extend_from_slice(self.chain_key.as_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// Parses [`SenderChain::to_bytes`]; any other input is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut reader = Reader::new(bytes, "sender chain");
        reader.version(SENDER_VERSION)?;
        let group_pk = reader.public_key()?;
        let chain_key = ChainKey::from_zeroizing(Zeroizing::new(reader.array()?));
        let counter = reader.u64()?;
        reader.finish()?;
        Ok(Self::from_parts(group_pk, chain_key, counter))
    }
}

impl fmt::Debug for SenderChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderChain")
            .field("group_pk", &hex::encode(self.group_pk.as_bytes()))
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// A member's view of another device's chain: derives message keys by counter, in any order
/// inside [`RECEIVE_WINDOW`], and hands out each key once. A clone is a trial copy: keys used
/// on it stay available on the original.
#[derive(Clone)]
pub struct ReceiverChain {
    group_pk: VerifyingKey,
    /// The chain key whose step yields the key of `next`.
    chain_key: ChainKey,
    /// The lowest counter never derived.
    next: u64,
    /// The lowest counter whose key may still be held; below it keys are gone.
    oldest: u64,
    /// Keys derived while skipping ahead and not used yet, by counter (all in `oldest..next`).
    skipped: BTreeMap<u64, MessageKey>,
}

impl ReceiverChain {
    /// A chain from a chain key and the counter it stands for (as sealed by the sender).
    pub fn new(group_pk: VerifyingKey, chain_key: ChainKey, counter: u64) -> Self {
        Self {
            group_pk,
            chain_key,
            next: counter,
            oldest: counter,
            skipped: BTreeMap::new(),
        }
    }

    /// The group this chain belongs to.
    pub fn group_pk(&self) -> &VerifyingKey {
        &self.group_pk
    }

    /// The lowest counter whose key has never been derived.
    pub fn next_counter(&self) -> u64 {
        self.next
    }

    /// How many skipped keys are held for messages not yet received.
    pub fn skipped_len(&self) -> usize {
        self.skipped.len()
    }

    /// The message key of `counter` without using it up: for opening and verifying a message
    /// before committing to it with [`ReceiverChain::consume`], so a forged header cannot move
    /// the chain.
    pub fn message_key(&self, counter: u64) -> Result<MessageKey, CryptoError> {
        if counter < self.next {
            return self
                .held(counter)
                .map(|key| MessageKey::from_bytes(*key.as_bytes()));
        }
        self.check_ahead(counter)?;
        let mut chain_key = self.chain_key.clone();
        for _ in self.next..counter {
            chain_key = chain_key.step(&self.group_pk)?.0;
        }
        Ok(chain_key.step(&self.group_pk)?.1)
    }

    /// The message key of `counter`, deleted from the chain: a second call with the same
    /// counter fails with [`CryptoError::KeyAlreadyUsed`]. Keys skipped on the way are kept
    /// (at most [`RECEIVE_WINDOW`], the oldest dropped first). On error nothing changes.
    pub fn consume(&mut self, counter: u64) -> Result<MessageKey, CryptoError> {
        if counter < self.next {
            self.held(counter)?;
            return self
                .skipped
                .remove(&counter)
                .ok_or(CryptoError::KeyAlreadyUsed { counter });
        }
        let following = self.check_ahead(counter)?;
        let mut chain_key = self.chain_key.clone();
        let mut skipped = Vec::new();
        for skipped_counter in self.next..counter {
            let (next_chain_key, message_key) = chain_key.step(&self.group_pk)?;
            skipped.push((skipped_counter, message_key));
            chain_key = next_chain_key;
        }
        let (next_chain_key, message_key) = chain_key.step(&self.group_pk)?;
        self.chain_key = next_chain_key;
        self.next = following;
        self.skipped.extend(skipped);
        while self.skipped.len() as u64 > RECEIVE_WINDOW {
            if let Some((dropped, _)) = self.skipped.pop_first() {
                self.oldest = dropped + 1;
            }
        }
        Ok(message_key)
    }

    /// For `counter >= next`: checks it is within the window and not the last counter, and
    /// returns the counter that follows it.
    fn check_ahead(&self, counter: u64) -> Result<u64, CryptoError> {
        if counter - self.next > RECEIVE_WINDOW {
            return Err(CryptoError::WindowExceeded {
                counter,
                next: self.next,
                window: RECEIVE_WINDOW,
            });
        }
        counter.checked_add(1).ok_or(CryptoError::CounterExhausted)
    }

    /// The held key of a counter below `next`.
    fn held(&self, counter: u64) -> Result<&MessageKey, CryptoError> {
        if counter < self.oldest {
            return Err(CryptoError::CounterTooOld {
                counter,
                oldest: self.oldest,
            });
        }
        self.skipped
            .get(&counter)
            .ok_or(CryptoError::KeyAlreadyUsed { counter })
    }

    /// The state for storage: version `1` || group pk (32) || chain key (32) || next counter
    /// (u64 BE) || oldest counter (u64 BE) || number of skipped keys (u32 BE) || for each, by
    /// ascending counter: counter (u64 BE) || message key (32). Keep the result secret.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            1 + 2 * KEY_LEN + 20 + self.skipped.len() * (8 + KEY_LEN),
        ));
        out.push(RECEIVER_VERSION);
        out.extend_from_slice(self.group_pk.as_bytes());
        out.extend_from_slice(self.chain_key.as_bytes());
        out.extend_from_slice(&self.next.to_be_bytes());
        out.extend_from_slice(&self.oldest.to_be_bytes());
        // At most RECEIVE_WINDOW entries, which fits in a u32.
        out.extend_from_slice(&(self.skipped.len() as u32).to_be_bytes());
        for (counter, key) in &self.skipped {
            out.extend_from_slice(&counter.to_be_bytes());
            out.extend_from_slice(key.as_bytes());
        }
        out
    }

    /// Parses [`ReceiverChain::to_bytes`], checking every invariant; any other input is an
    /// error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let mut reader = Reader::new(bytes, "receiver chain");
        reader.version(RECEIVER_VERSION)?;
        let group_pk = reader.public_key()?;
        let chain_key = ChainKey::from_zeroizing(Zeroizing::new(reader.array()?));
        let next = reader.u64()?;
        let oldest = reader.u64()?;
        let count = u64::from(reader.u32()?);
        if oldest > next || count > RECEIVE_WINDOW {
            return Err(reader.malformed());
        }
        let mut skipped = BTreeMap::new();
        let mut lowest_allowed = oldest;
        for _ in 0..count {
            let counter = reader.u64()?;
            if counter < lowest_allowed || counter >= next {
                return Err(reader.malformed());
            }
            lowest_allowed = counter + 1;
            let key = MessageKey(SymmetricKey::from_zeroizing(Zeroizing::new(
                reader.array()?,
            )));
            skipped.insert(counter, key);
        }
        reader.finish()?;
        Ok(Self {
            group_pk,
            chain_key,
            next,
            oldest,
            skipped,
        })
    }
}

impl fmt::Debug for ReceiverChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverChain")
            .field("group_pk", &hex::encode(self.group_pk.as_bytes()))
            .field("next", &self.next)
            .field("oldest", &self.oldest)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use rand::rngs::OsRng;

    fn group() -> VerifyingKey {
        SigningKey::from_bytes(&[1; 32]).verifying_key()
    }

    fn sender_keys(chain: &mut SenderChain, n: u64) -> Vec<[u8; 32]> {
        let start = chain.counter();
        (0..n)
            .map(|i| {
                let (counter, key) = chain.next_key().unwrap();
                assert_eq!(counter, start + i);
                *key.as_bytes()
            })
            .collect()
    }

    fn pair() -> (SenderChain, ReceiverChain) {
        let sender = SenderChain::generate(group(), &mut OsRng);
        let receiver = ReceiverChain::new(group(), sender.chain_key().clone(), sender.counter());
        (sender, receiver)
    }

    #[test]
    fn in_order_delivery() {
        let (mut sender, mut receiver) = pair();
        for expected in sender_keys(&mut sender, 10).iter() {
            let counter = receiver.next_counter();
            assert_eq!(receiver.message_key(counter).unwrap().as_bytes(), expected);
            assert_eq!(receiver.consume(counter).unwrap().as_bytes(), expected);
        }
        assert_eq!(receiver.skipped_len(), 0);
        assert_eq!(
            receiver.consume(3).unwrap_err(),
            CryptoError::KeyAlreadyUsed { counter: 3 }
        );
    }

    #[test]
    fn a_late_joiner_reads_from_the_sealed_counter_on() {
        let mut sender = SenderChain::generate(group(), &mut OsRng);
        sender_keys(&mut sender, 5);
        let mut receiver =
            ReceiverChain::new(group(), sender.chain_key().clone(), sender.counter());
        let later = sender_keys(&mut sender, 2);
        assert_eq!(receiver.consume(6).unwrap().as_bytes(), &later[1]);
        assert_eq!(receiver.consume(5).unwrap().as_bytes(), &later[0]);
        assert_eq!(
            receiver.consume(4).unwrap_err(),
            CryptoError::CounterTooOld {
                counter: 4,
                oldest: 5
            }
        );
    }

    #[test]
    fn the_window_bounds_how_far_ahead_a_receiver_derives() {
        let (_, mut receiver) = pair();
        assert_eq!(
            receiver.consume(RECEIVE_WINDOW + 1).unwrap_err(),
            CryptoError::WindowExceeded {
                counter: RECEIVE_WINDOW + 1,
                next: 0,
                window: RECEIVE_WINDOW
            }
        );
        assert!(receiver.message_key(RECEIVE_WINDOW + 1).is_err());
        assert_eq!(receiver.next_counter(), 0);
        receiver.consume(RECEIVE_WINDOW).unwrap();
        assert_eq!(receiver.skipped_len() as u64, RECEIVE_WINDOW);
        // Skipping further drops the oldest skipped keys.
        receiver.consume(RECEIVE_WINDOW + 3).unwrap();
        assert_eq!(receiver.skipped_len() as u64, RECEIVE_WINDOW);
        assert_eq!(
            receiver.consume(1).unwrap_err(),
            CryptoError::CounterTooOld {
                counter: 1,
                oldest: 2
            }
        );
        receiver.consume(2).unwrap();
    }

    #[test]
    fn a_failed_lookup_changes_nothing() {
        let (mut sender, mut receiver) = pair();
        let keys = sender_keys(&mut sender, 3);
        let before = receiver.to_bytes();
        assert!(receiver.consume(RECEIVE_WINDOW + 5).is_err());
        assert_eq!(receiver.to_bytes(), before);
        assert_eq!(receiver.message_key(2).unwrap().as_bytes(), &keys[2]);
        assert_eq!(receiver.to_bytes(), before);
    }

    #[test]
    fn sender_counter_exhaustion_is_an_error() {
        let mut sender = SenderChain::from_parts(group(), ChainKey::from_bytes([2; 32]), u64::MAX);
        assert_eq!(
            sender.next_key().unwrap_err(),
            CryptoError::CounterExhausted
        );
        let mut receiver = ReceiverChain::new(group(), ChainKey::from_bytes([2; 32]), u64::MAX);
        assert_eq!(
            receiver.consume(u64::MAX).unwrap_err(),
            CryptoError::CounterExhausted
        );
    }

    #[test]
    fn states_round_trip_and_refuse_garbage() {
        let (mut sender, mut receiver) = pair();
        sender_keys(&mut sender, 3);
        receiver.consume(7).unwrap();
        let back = SenderChain::from_bytes(&sender.to_bytes()).unwrap();
        assert_eq!(back.to_bytes(), sender.to_bytes());
        assert_eq!(sender.to_bytes().len(), SenderChain::ENCODED_LEN);
        let back = ReceiverChain::from_bytes(&receiver.to_bytes()).unwrap();
        assert_eq!(back.to_bytes(), receiver.to_bytes());
        let mut long = receiver.to_bytes().to_vec();
        long.push(0);
        assert!(ReceiverChain::from_bytes(&long).is_err());
        // A skipped counter at or beyond `next` is refused.
        let mut bad = receiver.to_bytes().to_vec();
        let first_entry = 1 + 64 + 20;
        bad[first_entry..first_entry + 8].copy_from_slice(&8u64.to_be_bytes());
        assert!(ReceiverChain::from_bytes(&bad).is_err());
    }

    #[test]
    fn debug_shows_no_secret() {
        let chain = SenderChain::from_parts(group(), ChainKey::from_bytes([0xcd; 32]), 0);
        let receiver = ReceiverChain::new(group(), ChainKey::from_bytes([0xcd; 32]), 0);
        for shown in [
            format!("{chain:?}"),
            format!("{receiver:?}"),
            format!("{:?}", chain.chain_key()),
            format!("{:?}", MessageKey::from_bytes([0xcd; 32])),
        ] {
            assert!(!shown.contains("cdcd"), "{shown}");
        }
    }

    fn delivery_order() -> impl Strategy<Value = Vec<u64>> {
        (1u64..200)
            .prop_flat_map(|n| Just((0..n).collect::<Vec<_>>()).prop_shuffle())
            .prop_flat_map(|order| {
                let len = order.len();
                (Just(order), 1..=len)
            })
            .prop_map(|(order, keep)| order[..keep].to_vec())
    }

    proptest! {
        #[test]
        fn receiver_matches_sender_in_any_order(
            order in delivery_order(),
            start in 0u64..1_000_000,
            reload_every in 1usize..20,
        ) {
            let mut sender =
                SenderChain::from_parts(group(), ChainKey::generate(&mut OsRng), start);
            let mut receiver =
                ReceiverChain::new(group(), sender.chain_key().clone(), start);
            let sent: Vec<_> = (0..200).map(|_| sender.next_key().unwrap()).collect();
            for (i, &offset) in order.iter().enumerate() {
                let (counter, expected) = &sent[offset as usize];
                prop_assert_eq!(*counter, start + offset);
                let peeked = receiver.message_key(*counter).unwrap();
                prop_assert_eq!(peeked.as_bytes(), expected.as_bytes());
                let used = receiver.consume(*counter).unwrap();
                prop_assert_eq!(used.as_bytes(), expected.as_bytes());
                if i % reload_every == 0 {
                    receiver = ReceiverChain::from_bytes(&receiver.to_bytes()).unwrap();
                }
            }
            for &offset in &order {
                let counter = start + offset;
                prop_assert_eq!(
                    receiver.consume(counter).unwrap_err(),
                    CryptoError::KeyAlreadyUsed { counter }
                );
                prop_assert!(receiver.message_key(counter).is_err());
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = SenderChain::from_bytes(&bytes);
            let _ = ReceiverChain::from_bytes(&bytes);
        }

        #[test]
        fn receiver_decoder_never_panics_on_plausible_headers(
            next in any::<u64>(),
            oldest in any::<u64>(),
            count in 0u32..4,
            entries in proptest::collection::vec(any::<(u64, [u8; 32])>(), 0..4),
        ) {
            let mut bytes = ReceiverChain::new(group(), ChainKey::from_bytes([0; 32]), 0)
                .to_bytes()
                .to_vec();
            bytes.truncate(1 + 64);
            bytes.extend_from_slice(&next.to_be_bytes());
            bytes.extend_from_slice(&oldest.to_be_bytes());
            bytes.extend_from_slice(&count.to_be_bytes());
            for (counter, key) in entries {
                bytes.extend_from_slice(&counter.to_be_bytes());
                bytes.extend_from_slice(&key);
            }
            if let Ok(chain) = ReceiverChain::from_bytes(&bytes) {
                prop_assert_eq!(chain.to_bytes().to_vec(), bytes);
            }
        }
    }
}
