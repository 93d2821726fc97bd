//! HKDF-SHA256 with the info given in parts (label first), used by every derivation here.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::CryptoError;

/// HKDF-SHA256 with no salt: `N` bytes from `ikm` and the concatenation of `info`.
pub(crate) fn hkdf_sha256<const N: usize>(
    ikm: &[u8],
    info: &[&[u8]],
) -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut okm = Zeroizing::new([0u8; N]);
    Hkdf::<Sha256>::new(None, ikm)
        .expand_multi_info(info, okm.as_mut())
        .map_err(|_| CryptoError::KeyDerivation)?;
    Ok(okm)
}
