//! Helpers shared by the integration tests.
#![allow(dead_code, unused_macros)]

pub mod node;
pub mod postgres;
pub mod protocol;
