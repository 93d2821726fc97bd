//! Size and shape limits of log entries.
//!
//! Every replica enforces the same limits when it decodes an entry, so an entry that one replica
//! keeps is kept by all of them.

use super::id::{ENTRY_ID_LEN, PUBLIC_KEY_LEN};

/// Most parents one entry may name (a writer with more heads names the 64 highest).
pub const MAX_PARENTS: usize = 64;

/// Largest encrypted payload of one entry: a 1 MiB message plus 4 KiB of envelope overhead
/// (nonces, sealed header, device signature, AEAD tags).
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024 + 4 * 1024;

/// Length in bytes of the entry signature (Ed25519).
pub const SIGNATURE_LEN: usize = 64;

/// Largest encoded entry: every field at its maximum (see `docs/log-format.md`).
///
/// Decoding rejects longer input before looking at it.
pub const MAX_ENTRY_BYTES: usize = {
    let log_id = 2 + PUBLIC_KEY_LEN + 1;
    let parents = MAX_PARENTS * (2 + ENTRY_ID_LEN);
    let lamport = 1 + 10;
    let payload = 1 + varint_len(MAX_PAYLOAD_BYTES as u64) + MAX_PAYLOAD_BYTES;
    let signature = 2 + SIGNATURE_LEN;
    log_id + parents + lamport + payload + signature
};

/// Number of bytes of `value` as a protobuf varint.
pub(crate) const fn varint_len(value: u64) -> usize {
    // 7 bits per byte; zero still takes one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_prost() {
        for value in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            MAX_PAYLOAD_BYTES as u64,
            u64::MAX,
        ] {
            assert_eq!(
                varint_len(value),
                prost::encoding::encoded_len_varint(value)
            );
        }
    }

    #[test]
    fn max_entry_bytes_is_the_documented_bound() {
        assert_eq!(MAX_PAYLOAD_BYTES, 1_052_672);
        assert_eq!(MAX_ENTRY_BYTES, 1_054_964);
    }
}
