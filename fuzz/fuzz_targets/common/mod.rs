//! Helpers shared by the targets (each target uses some of them).
#![allow(dead_code)]

use std::sync::LazyLock;

use berty_node::crypto::{GroupGenesis, GroupKeys, SigningKey};
use rand::{rngs::StdRng, SeedableRng};

/// A deterministic RNG, so that a crash reproduces from its input alone.
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(0x6265_7274_7946_757a)
}

/// A group made once per process, with a creator member key.
pub struct Fixture {
    /// The group's keys.
    pub keys: GroupKeys,
    /// The creator's member key.
    pub member: SigningKey,
    /// The creation proof.
    pub proof: berty_node::crypto::CreationProof,
}

/// The group every target uses.
pub static GROUP: LazyLock<Fixture> = LazyLock::new(|| {
    let mut rng = rng();
    let member = SigningKey::from_bytes(&[3; 32]);
    let (keys, proof) = GroupGenesis::generate(&mut rng)
        .finish(&member.verifying_key())
        .expect("a group");
    Fixture {
        keys,
        member,
        proof,
    }
});

/// A copy of `sample` changed by `edits`: each 3 bytes `(position high, position low, xor)`
/// flip bits at one position; a trailing single byte truncates the copy to that many bytes
/// from its end removed. Lets a target reach the checks behind a signature or a MAC, which
/// random bytes never pass.
pub fn mutate(sample: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = sample.to_vec();
    let mut chunks = edits.chunks_exact(3);
    for edit in &mut chunks {
        if out.is_empty() {
            break;
        }
        let pos = usize::from(u16::from_be_bytes([edit[0], edit[1]])) % out.len();
        out[pos] ^= edit[2];
    }
    if let [cut] = chunks.remainder() {
        let keep = out.len().saturating_sub(usize::from(*cut));
        out.truncate(keep);
    }
    out
}
