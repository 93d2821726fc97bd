//! Logging through `tracing`: a filter from config (or `RUST_LOG`), text or JSON lines, on
//! stderr; colours only when stderr is a terminal (never escape codes in a log file).

use std::io::IsTerminal;

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogConfig;

/// Installs the global subscriber. Calling it twice is harmless (the second call does nothing).
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = if log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already installed (tests start several nodes in one process): keep the first one.
    let _ = result;
}
