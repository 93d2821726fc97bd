//! A reader for the module's fixed byte layouts: every read is bounds-checked, and a decoder
//! ends with [`Reader::finish`] so trailing bytes are rejected.

use ed25519_dalek::{Signature, VerifyingKey};

use super::{keys, CryptoError};

/// Reads fields front to back from a byte slice; any shortfall is [`CryptoError::Malformed`].
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, naming the encoding `what` in errors.
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    /// The error for this encoding.
    pub(crate) fn malformed(&self) -> CryptoError {
        CryptoError::Malformed { what: self.what }
    }

    /// Reads the version byte and checks it equals `expected`.
    pub(crate) fn version(&mut self, expected: u8) -> Result<(), CryptoError> {
        let [version] = self.array::<1>()?;
        if version == expected {
            Ok(())
        } else {
            Err(CryptoError::UnsupportedVersion {
                what: self.what,
                version,
            })
        }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CryptoError> {
        if self.rest.len() < n {
            return Err(self.malformed());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CryptoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// A big-endian `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, CryptoError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, CryptoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A 32-byte Ed25519 public key, validated as by [`keys::parse_public_key`].
    pub(crate) fn public_key(&mut self) -> Result<VerifyingKey, CryptoError> {
        keys::parse_public_key(self.bytes(keys::KEY_LEN)?)
    }

    /// As [`Self::public_key`], through `parsed` (see [`keys::ParsedKeys`]).
    pub(crate) fn public_key_with(
        &mut self,
        parsed: &mut keys::ParsedKeys,
    ) -> Result<VerifyingKey, CryptoError> {
        parsed.parse(self.bytes(keys::KEY_LEN)?)
    }

    /// A 64-byte Ed25519 signature.
    pub(crate) fn signature(&mut self) -> Result<Signature, CryptoError> {
        keys::parse_signature(self.bytes(keys::SIGNATURE_LEN)?)
    }

    /// Everything left.
    pub(crate) fn remaining(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Succeeds only if every byte was read.
    pub(crate) fn finish(self) -> Result<(), CryptoError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed())
        }
    }
}
