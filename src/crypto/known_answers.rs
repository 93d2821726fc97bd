//! Known-answer tests: published vectors for the primitives, and our own derivations
//! checked against `tests/vectors/crypto.json` so any accidental change shows.

use super::*;
