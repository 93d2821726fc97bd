//! Domain-separation labels: one per derivation, per signature and per associated-data use.
//!
//! The log entry signature label is [`crate::log::ENTRY_SIGNATURE_LABEL`], owned by the log.
//! Every label is used for exactly one purpose, and no label is a prefix of another, so a
//! label followed by fixed-length fields can never be read as a different statement. Changing
//! any of these changes every derived key and invalidates every signature: they are part of
//! the protocol, like a wire number.

/// HKDF info prefix: member key seed from the account-proof seed (followed by the group key).
pub const KDF_MEMBER_KEY: &[u8] = b"berty-node/v1/kdf/member-key";
/// HKDF info prefix: the group's shared signing key seed from the group secret.
pub const KDF_GROUP_SIGNING_KEY: &[u8] = b"berty-node/v1/kdf/group-signing-key";
/// HKDF info prefix: the group's link key from the group secret.
pub const KDF_GROUP_LINK_KEY: &[u8] = b"berty-node/v1/kdf/group-link-key";
/// HKDF info prefix: the key sealing metadata payloads, from the group secret.
pub const KDF_GROUP_METADATA_KEY: &[u8] = b"berty-node/v1/kdf/group-metadata-key";
/// HKDF info prefix: the key sealing message headers, from the group secret.
pub const KDF_GROUP_HEADER_KEY: &[u8] = b"berty-node/v1/kdf/group-header-key";
/// HKDF info prefix: one ratchet step (next chain key and message key) from a chain key.
pub const KDF_CHAIN_STEP: &[u8] = b"berty-node/v1/kdf/chain-step";
/// HKDF info prefix: the key sealing a chain key, from an ephemeral X25519 exchange.
pub const KDF_SEALED_CHAIN_KEY: &[u8] = b"berty-node/v1/kdf/sealed-chain-key";
/// HKDF info prefix: a contact group's key seed and secret, from the accounts' X25519 exchange.
pub const KDF_CONTACT_GROUP: &[u8] = b"berty-node/v1/kdf/contact-group";
/// Account group (the private group of an account's devices) from the account-proof seed.
pub const KDF_ACCOUNT_GROUP: &[u8] = b"berty-node/v1/kdf/account-group";
/// Associated data of a node value sealed under the data dir's storage key.
pub const AD_SEALED_VALUE: &[u8] = b"berty-node/v1/ad/sealed-value";

/// Signature by the group key: the group's creation proof.
pub const SIG_CREATION_PROOF: &[u8] = b"berty-node/v1/sig/creation-proof";
/// Signature by a member key: binds a device key to the member in a group.
pub const SIG_MEMBER_DEVICE: &[u8] = b"berty-node/v1/sig/member-device";
/// Signature by an account key: a member discloses the account it belongs to.
pub const SIG_ACCOUNT_DISCLOSURE: &[u8] = b"berty-node/v1/sig/account-disclosure";
/// Signature by an account key: a new device of the account (`DevicePaired`), over the account
/// group key and the device's account-level key.
pub const SIG_ACCOUNT_DEVICE: &[u8] = b"berty-node/v1/sig/account-device";
/// Signature by a per-group device key: authorship of a message payload.
pub const SIG_MESSAGE: &[u8] = b"berty-node/v1/sig/message";
/// Signature by a per-group device key: authorship of a metadata payload.
pub const SIG_METADATA: &[u8] = b"berty-node/v1/sig/metadata";

/// Associated data prefix: a chain key sealed to a member.
pub const AD_SEALED_CHAIN_KEY: &[u8] = b"berty-node/v1/ad/sealed-chain-key";
/// Associated data prefix: a message header sealed under the group header key.
pub const AD_MESSAGE_HEADER: &[u8] = b"berty-node/v1/ad/message-header";
/// Associated data prefix: a message body sealed under a message key.
pub const AD_MESSAGE_BODY: &[u8] = b"berty-node/v1/ad/message-body";
/// Associated data prefix: a metadata payload sealed under the group metadata key.
pub const AD_METADATA: &[u8] = b"berty-node/v1/ad/metadata";

/// MAC key label: a replica's proof that it holds a group's link key (sync hello).
pub const MAC_LINK_PROOF: &[u8] = b"berty-node/v1/mac/link-proof";

/// MAC key label: a group's rotating discovery key (DHT provider records).
pub const MAC_LINK_DISCOVERY: &[u8] = b"berty-node/v1/mac/link-discovery";

/// MAC key label: a group's gossipsub topic name.
pub const MAC_LINK_TOPIC: &[u8] = b"berty-node/v1/mac/link-topic";
/// MAC key label: the key sealing a group's gossipsub announcements.
pub const MAC_LINK_GOSSIP_KEY: &[u8] = b"berty-node/v1/mac/link-gossip-key";
/// Associated data prefix: a gossipsub announcement sealed under the link-derived key.
pub const AD_GOSSIP: &[u8] = b"berty-node/v1/ad/gossip";

/// HKDF info prefix: the contact handshake's two channel keys, from its two X25519 exchanges
/// (followed by both ephemeral keys and the responder's account key).
pub const KDF_CONTACT_HANDSHAKE: &[u8] = b"berty-node/v1/kdf/contact-handshake";
/// Hash prefix: the contact handshake's transcript hash (followed by both ephemeral keys and
/// both account keys).
pub const HASH_CONTACT_HANDSHAKE: &[u8] = b"berty-node/v1/hash/contact-handshake";
/// Signature by the requester's account key: its proof in the contact handshake (followed by
/// the transcript hash).
pub const SIG_CONTACT_HANDSHAKE_REQUESTER: &[u8] = b"berty-node/v1/sig/contact-handshake-requester";
/// Signature by the responder's account key: its proof in the contact handshake (followed by
/// the transcript hash).
pub const SIG_CONTACT_HANDSHAKE_RESPONDER: &[u8] = b"berty-node/v1/sig/contact-handshake-responder";
/// Associated data of every sealed frame of the contact handshake.
pub const AD_CONTACT_HANDSHAKE: &[u8] = b"berty-node/v1/ad/contact-handshake";

/// Every label above, for the distinctness test.
#[cfg(test)]
pub(crate) const ALL: &[&[u8]] = &[
    KDF_MEMBER_KEY,
    KDF_GROUP_SIGNING_KEY,
    KDF_GROUP_LINK_KEY,
    KDF_GROUP_METADATA_KEY,
    KDF_GROUP_HEADER_KEY,
    KDF_CHAIN_STEP,
    KDF_SEALED_CHAIN_KEY,
    KDF_CONTACT_GROUP,
    SIG_CREATION_PROOF,
    SIG_MEMBER_DEVICE,
    SIG_ACCOUNT_DISCLOSURE,
    SIG_ACCOUNT_DEVICE,
    SIG_MESSAGE,
    SIG_METADATA,
    AD_SEALED_CHAIN_KEY,
    AD_MESSAGE_HEADER,
    AD_MESSAGE_BODY,
    AD_METADATA,
    KDF_ACCOUNT_GROUP,
    AD_SEALED_VALUE,
    MAC_LINK_PROOF,
    MAC_LINK_DISCOVERY,
    MAC_LINK_TOPIC,
    MAC_LINK_GOSSIP_KEY,
    AD_GOSSIP,
    KDF_CONTACT_HANDSHAKE,
    HASH_CONTACT_HANDSHAKE,
    SIG_CONTACT_HANDSHAKE_REQUESTER,
    SIG_CONTACT_HANDSHAKE_RESPONDER,
    AD_CONTACT_HANDSHAKE,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn labels_are_distinct_and_prefix_free() {
        let mut all = ALL.to_vec();
        all.push(crate::log::ENTRY_SIGNATURE_LABEL);
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} is a prefix of {:?}", a, b);
                }
            }
        }
    }
}
