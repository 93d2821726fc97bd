//! The shape shared by the module's 32-byte secrets (group secret, link key, chain key...).

/// Defines a 32-byte secret newtype: zeroized on drop, never printed.
macro_rules! secret_bytes {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(::zeroize::Zeroizing<[u8; $crate::crypto::KEY_LEN]>);

        impl $name {
            /// From its 32 bytes.
            pub fn from_bytes(bytes: [u8; $crate::crypto::KEY_LEN]) -> Self {
                Self(::zeroize::Zeroizing::new(bytes))
            }

            /// From bytes already held in a zeroizing buffer.
            pub fn from_zeroizing(bytes: ::zeroize::Zeroizing<[u8; $crate::crypto::KEY_LEN]>) -> Self {
                Self(bytes)
            }

            /// From a slice, which must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, $crate::crypto::CryptoError> {
                let bytes: [u8; $crate::crypto::KEY_LEN] = bytes.try_into().map_err(|_| $crate::crypto::CryptoError::Malformed {
                    what: stringify!($name),
                })?;
                Ok(Self::from_bytes(bytes))
            }

            /// A random value.
            pub fn generate<R: ::rand::CryptoRng + ::rand::RngCore>(rng: &mut R) -> Self {
                let mut bytes = ::zeroize::Zeroizing::new([0u8; $crate::crypto::KEY_LEN]);
                rng.fill_bytes(bytes.as_mut());
                Self(bytes)
            }

            /// The bytes (keep them secret).
            pub fn as_bytes(&self) -> &[u8; $crate::crypto::KEY_LEN] {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<secret>)"))
            }
        }
    };
}
pub(crate) use secret_bytes;
