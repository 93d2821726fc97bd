//! Text forms of binary values (keys, references, event ids, payloads) on the command line.
//!
//! Output is always **base64url without padding** (RFC 4648 section 5), so a value can be
//! pasted into a shell or a URL unquoted.
//!
//! Input accepts more, by this rule (surrounding whitespace is ignored):
//!
//! 1. `hex:` or `base64:` in front of the value forces that encoding (`base64:` accepts both
//!    alphabets, padded or not).
//! 2. Otherwise the value is read as base64, standard (`+/`) or url-safe (`-_`) alphabet, padded
//!    or not, **and** as hex when it is made only of an even number of hex digits. If exactly one
//!    reading gives a value of the size the argument needs (32 bytes for keys and event ids, any
//!    size for references), that reading is used; if both do, the value is ambiguous and
//!    rejected with a hint to add a prefix.
//!
//! So a 32-byte key is accepted as 43 base64url characters (what the CLI prints), 44 standard
//! base64 characters, or 64 hex digits (what `berty-node init` prints), with no prefix. A
//! base64url value the CLI printed is never ambiguous for a key or an id: its length is odd.

use std::fmt;

use base64::{
    alphabet,
    engine::{general_purpose, DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};

/// Size of a public key (group, member, device, account, contact) and of an event id.
pub const KEY_LEN: usize = 32;

/// Decoding that accepts padded and unpadded input.
const PADDING_INDIFFERENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// The url-safe alphabet, padding optional.
const URL_SAFE_ANY_PAD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_INDIFFERENT);
/// The standard alphabet, padding optional.
const STANDARD_ANY_PAD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, PADDING_INDIFFERENT);

/// Bytes given on the command line (a newtype so clap treats it as one value).
#[derive(Clone, PartialEq, Eq)]
pub struct Binary(pub Vec<u8>);

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({})", encode(&self.0))
    }
}

/// Why a command-line value is not a valid binary value. The text is shown by clap after
/// `invalid value '...' for '<ARG>'`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Nothing but whitespace.
    #[error("the value is empty")]
    Empty,
    /// Not hex with a `hex:` prefix.
    #[error("not valid hex after \"hex:\"")]
    BadHex,
    /// Neither base64 (either alphabet) nor hex.
    #[error("not base64url, base64 or hex")]
    NotEncoded,
    /// Not base64 where only base64 is accepted.
    #[error("not base64 (standard or url-safe alphabet, padding optional)")]
    NotBase64,
    /// Decoded, but to the wrong size.
    #[error("expected {expected} bytes, got {got} bytes")]
    WrongLength {
        /// What the argument needs.
        expected: usize,
        /// What the value decoded to.
        got: usize,
    },
    /// Valid as hex and as base64, with no way to tell which was meant.
    #[error("ambiguous: valid as hex and as base64; prefix it with \"hex:\" or \"base64:\"")]
    Ambiguous,
}

/// The one output form of binary values: base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Base64 in either alphabet, padded or not (no hex).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    URL_SAFE_ANY_PAD
        .decode(text)
        .or_else(|_| STANDARD_ANY_PAD.decode(text))
        .ok()
}

/// Decodes a value by the rule in the module docs; `expected_len` is the size the argument
/// needs, if it has a fixed size.
pub fn decode(text: &str, expected_len: Option<usize>) -> Result<Vec<u8>, DecodeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DecodeError::Empty);
    }
    let check_len = |bytes: Vec<u8>| match expected_len {
        Some(expected) if bytes.len() != expected => Err(DecodeError::WrongLength {
            expected,
            got: bytes.len(),
        }),
        _ => Ok(bytes),
    };
    if let Some(rest) = strip_prefix_ignore_case(text, "hex:") {
        return check_len(hex::decode(rest.trim()).map_err(|_| DecodeError::BadHex)?);
    }
    if let Some(rest) = strip_prefix_ignore_case(text, "base64:") {
        return check_len(decode_base64(rest).ok_or(DecodeError::NotBase64)?);
    }
    let as_hex = looks_like_hex(text)
        .then(|| hex::decode(text).ok())
        .flatten();
    let as_base64 = decode_base64(text);
    let fits = |bytes: &Vec<u8>| expected_len.is_none_or(|expected| bytes.len() == expected);
    match (as_hex, as_base64) {
        (Some(h), Some(b)) => match (fits(&h), fits(&b)) {
            (true, true) => Err(DecodeError::Ambiguous),
            (true, false) => Ok(h),
            (false, true) => Ok(b),
            (false, false) => check_len(b),
        },
        (Some(h), None) => check_len(h),
        (None, Some(b)) => check_len(b),
        (None, None) => Err(DecodeError::NotEncoded),
    }
}

/// clap value parser for a public key (32 bytes).
pub fn parse_key(text: &str) -> Result<Binary, DecodeError> {
    decode(text, Some(KEY_LEN)).map(Binary)
}

/// clap value parser for an event id (32 bytes).
pub fn parse_event_id(text: &str) -> Result<Binary, DecodeError> {
    decode(text, Some(KEY_LEN)).map(Binary)
}

/// clap value parser for a group or contact reference (any size).
pub fn parse_reference(text: &str) -> Result<Binary, DecodeError> {
    decode(text, None).map(Binary)
}

/// clap value parser for `--*-base64` options: base64 only, either alphabet, padding optional;
/// the empty string is the empty value.
pub fn parse_base64(text: &str) -> Result<Binary, DecodeError> {
    decode_base64(text)
        .map(Binary)
        .ok_or(DecodeError::NotBase64)
}

fn looks_like_hex(text: &str) -> bool {
    text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [
        0xfb, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
        0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c,
        0x1d, 0x3e,
    ];

    #[test]
    fn output_is_base64url_without_padding() {
        let text = encode(&KEY);
        assert_eq!(text.len(), 43);
        assert!(!text.contains('='));
        assert!(!text.contains('+') && !text.contains('/'));
        assert!(text.starts_with("-_8B"), "{text}");
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"hi?>"), "aGk_Pg");
    }

    #[test]
    fn a_key_round_trips_through_every_accepted_form() {
        let forms = [
            encode(&KEY),
            general_purpose::STANDARD.encode(KEY),
            general_purpose::STANDARD_NO_PAD.encode(KEY),
            general_purpose::URL_SAFE.encode(KEY),
            hex::encode(KEY),
            hex::encode_upper(KEY),
            format!("hex:{}", hex::encode(KEY)),
            format!("HEX:{}", hex::encode(KEY)),
            format!("base64:{}", encode(&KEY)),
            format!("  {}\n", encode(&KEY)),
        ];
        for form in forms {
            assert_eq!(parse_key(&form).map(|b| b.0), Ok(KEY.to_vec()), "{form:?}");
        }
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert_eq!(
            parse_key(&encode(&[1u8; 31])),
            Err(DecodeError::WrongLength {
                expected: 32,
                got: 31
            })
        );
        assert_eq!(
            parse_key("hex:00"),
            Err(DecodeError::WrongLength {
                expected: 32,
                got: 1
            })
        );
    }

    #[test]
    fn sixty_four_hex_digits_are_hex_for_a_key_even_though_they_are_also_base64() {
        // As base64 these 64 characters are 48 bytes, which no key is.
        let text = "00".repeat(32);
        assert_eq!(decode_base64(&text).map(|b| b.len()), Some(48));
        assert_eq!(parse_key(&text).map(|b| b.0), Ok(vec![0u8; 32]));
    }

    #[test]
    fn all_hex_digits_are_ambiguous_for_a_reference_without_a_prefix() {
        let text = "abcd".repeat(4);
        assert_eq!(parse_reference(&text), Err(DecodeError::Ambiguous));
        assert_eq!(
            parse_reference(&format!("hex:{text}")).map(|b| b.0),
            Ok(hex::decode(&text).unwrap())
        );
        assert_eq!(
            parse_reference(&format!("base64:{text}")).map(|b| b.0),
            Ok(decode_base64(&text).unwrap())
        );
    }

    #[test]
    fn a_printed_reference_reads_back() {
        let reference: Vec<u8> = (0u8..=200).collect();
        assert_eq!(
            parse_reference(&encode(&reference)).map(|b| b.0),
            Ok(reference.clone())
        );
        assert_eq!(
            parse_reference(&general_purpose::STANDARD.encode(&reference)).map(|b| b.0),
            Ok(reference)
        );
    }

    #[test]
    fn garbage_is_rejected_with_a_reason() {
        assert_eq!(parse_key(""), Err(DecodeError::Empty));
        assert_eq!(parse_key("   "), Err(DecodeError::Empty));
        assert_eq!(parse_key("not a key!"), Err(DecodeError::NotEncoded));
        assert_eq!(parse_key("hex:zz"), Err(DecodeError::BadHex));
        assert_eq!(parse_reference("a-b+c/d_"), Err(DecodeError::NotEncoded));
        assert_eq!(parse_reference("base64:***"), Err(DecodeError::NotBase64));
        assert_eq!(
            DecodeError::Ambiguous.to_string(),
            "ambiguous: valid as hex and as base64; prefix it with \"hex:\" or \"base64:\""
        );
    }

    #[test]
    fn payload_base64_accepts_both_alphabets_and_the_empty_value() {
        let bytes = [0xfbu8, 0xff, 0xfe];
        assert_eq!(parse_base64("+//+").map(|b| b.0), Ok(bytes.to_vec()));
        assert_eq!(parse_base64("-__-").map(|b| b.0), Ok(bytes.to_vec()));
        assert_eq!(parse_base64("aGk").map(|b| b.0), Ok(b"hi".to_vec()));
        assert_eq!(parse_base64("aGk=").map(|b| b.0), Ok(b"hi".to_vec()));
        assert_eq!(parse_base64("").map(|b| b.0), Ok(Vec::new()));
        assert_eq!(parse_base64("a"), Err(DecodeError::NotBase64));
    }

    #[test]
    fn debug_shows_the_output_form() {
        assert_eq!(format!("{:?}", Binary(b"hi".to_vec())), "Binary(aGk)");
    }
}
