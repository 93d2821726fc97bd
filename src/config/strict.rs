//! Strict value types for the configuration: a boolean must be `true` or `false`, a number a
//! whole number in range. The `config` crate would otherwise read `"yes"` as `true` and
//! `1.5` as `1`; a setting that says something else than what the node does is refused.
//!
//! Environment variables arrive as text and are parsed (`BERTY_NODE__P2P__MDNS=true`), so the
//! same rules hold for every layer.

use std::fmt;

use serde::{
    de::{self, Unexpected, Visitor},
    Deserializer,
};

/// `true` or `false`, nothing else.
pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Strict;
    impl Visitor<'_> for Strict {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }
    }
    deserializer.deserialize_any(Strict)
}

/// A whole number from 0 to `u64::MAX`.
pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// A whole number from 0 to `u32::MAX`.
pub fn u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = deserializer.deserialize_any(WholeNumber)?;
    u32::try_from(value).map_err(|_| {
        de::Error::invalid_value(
            Unexpected::Unsigned(value),
            &"a whole number up to 4294967295",
        )
    })
}

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number (no quotes, no decimals)")
    }
    fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
    }
}
