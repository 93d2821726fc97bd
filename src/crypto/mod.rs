//! Keys, derivations, envelopes, the per-device ratchet (pure, no I/O).
//!
//! # Layout
//!
//! - [`labels`]: the domain-separation label of every derivation, signature and associated
//!   data.
//! - `keys`: account keys, member keys, parsing of public keys and signatures.
//! - `signatures`: member/device and account bindings, batch verification.
//! - `group`: group keys derived from the group secret; `creation_proof`: the group key's
//!   proof of the group's parameters and creator.
//! - `envelope`: XChaCha20-Poly1305 with random nonces.
//! - `ratchet`: per-device sender and receiver chains; `sealed_chain_key`: a chain key sealed
//!   to one member.
//! - `message`: message payloads (sealed header and body); `metadata`: metadata payloads.
//! - `contact`: contact groups and rendezvous points.
//! - `handshake`: the contact handshake's ephemeral keys, channel keys, sealed frames and
//!   account proofs (the protocol is in `crate::handshake`).
//! - `link`: the sync hello's link-key proof tags and the rotating discovery keys.
//! - `error`: [`CryptoError`].
//!
//! Every binary layout starts with a version byte and is documented in its module; decoders
//! refuse short, long or out-of-range input with an error and never panic. Secret types zeroize
//! on drop and print nothing secret.

mod codec;
mod contact;
mod creation_proof;
mod envelope;
mod error;
mod group;
mod handshake;
mod kdf;
mod keys;
pub mod labels;
mod link;
mod message;
mod metadata;
mod ratchet;
mod sealed_chain_key;
mod secret;
mod signatures;

#[cfg(test)]
mod known_answers;

pub use contact::{
    derive_account_group, derive_contact_group, period_start, points_to_advertise, RendezvousPoint,
    RendezvousSeed, DEFAULT_RENDEZVOUS_PERIOD_SECS,
};
pub use creation_proof::CreationProof;
pub use envelope::{open, seal, SymmetricKey, ENVELOPE_OVERHEAD, NONCE_LEN, TAG_LEN};
pub use error::CryptoError;
pub use group::{GroupGenesis, GroupKeys, GroupSecret, LinkKey};
pub use handshake::{
    HandshakeChannel, HandshakeEphemeral, HandshakeRole, TranscriptHash, HANDSHAKE_EPHEMERAL_LEN,
    HANDSHAKE_TAG_LEN, TRANSCRIPT_HASH_LEN,
};
pub use keys::{
    derive_member_key, parse_public_key, parse_signature, signing_key_from_seed, AccountKeys,
    ParsedKeys, KEY_LEN, SIGNATURE_LEN,
};
pub use link::{
    discovery_key, discovery_keys, gossip_topic, link_proof_tag, open_announcement,
    seal_announcement, DISCOVERY_MARGIN_SECS, DISCOVERY_PERIOD_SECS, LINK_NONCE_LEN, LINK_TAG_LEN,
};
pub use message::{
    open_body, open_body_unverified, open_header, open_header_with, open_stored_body, seal_message,
    MessageHeader, MESSAGE_OVERHEAD,
};
pub use metadata::{
    open_metadata, open_metadata_unverified, seal_metadata, OpenedMetadata, METADATA_OVERHEAD,
};
pub use ratchet::{ChainKey, MessageKey, ReceiverChain, SenderChain, RECEIVE_WINDOW};
pub use sealed_chain_key::{open_chain_key, seal_chain_key, SEALED_CHAIN_KEY_LEN};
pub use signatures::{
    sign_account_device, sign_account_disclosure, sign_member_device, verify_account_device,
    verify_account_disclosure, verify_batch, verify_member_device, SignatureCheck,
};

/// The Ed25519 types used throughout: private keys, public keys, signatures.
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
