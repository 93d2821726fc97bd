//! The four `*Subscribe` calls: the range flags they share, and printing a stream one JSON line
//! per event until the server ends it or the user presses Ctrl-C.

use std::{future::Future, io};

use clap::Args;
use tonic::Streaming;

use super::{
    encoding::{parse_event_id, Binary},
    output::print_line,
};

/// Which events to stream (`since`/`until` are inclusive event ids).
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// First event to print (inclusive), an event id; default: the oldest.
    #[arg(long, value_name = "ID", value_parser = parse_event_id)]
    since: Option<Binary>,
    /// Last event to print (inclusive), an event id; default: print history, then follow live
    /// events until Ctrl-C.
    #[arg(long, value_name = "ID", value_parser = parse_event_id)]
    until: Option<Binary>,
    /// Walk from --until (or the newest) back to --since (or the oldest), then end.
    #[arg(long)]
    backwards: bool,
    /// Resume strictly after this arrival cursor (the "cursor" of the last event you saw), then
    /// follow live events.
    #[arg(long, value_name = "N")]
    since_cursor: Option<u64>,
}

/// The request fields every subscription shares, as sent on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Range {
    /// `since` (empty: from the first event).
    pub since: Vec<u8>,
    /// `until` (empty: history, then live).
    pub until: Vec<u8>,
    /// `go_backwards`.
    pub go_backwards: bool,
    /// `since_cursor` extension (0: not set).
    pub since_cursor: u64,
}

impl RangeArgs {
    /// The wire form of the flags.
    pub fn range(&self) -> Range {
        Range {
            since: self.since.clone().map(|b| b.0).unwrap_or_default(),
            until: self.until.clone().map(|b| b.0).unwrap_or_default(),
            go_backwards: self.backwards,
            since_cursor: self.since_cursor.unwrap_or(0),
        }
    }
}

/// Prints each reply as one line (flushed), until the server ends the stream. A closed stdout
/// (`... | head -1`) ends the command quietly, at once, not at the next event; a status from
/// the server is an error.
pub async fn print_stream<R>(
    mut stream: Streaming<R>,
    render: impl Fn(R) -> serde_json::Result<String>,
) -> anyhow::Result<()> {
    let closed = stdout_closed();
    tokio::pin!(closed);
    loop {
        let reply = tokio::select! {
            reply = stream.message() => reply?,
            () = &mut closed => return Ok(()),
        };
        let Some(reply) = reply else {
            return Ok(());
        };
        match print_line(&render(reply)?) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(anyhow::anyhow!("cannot write to stdout: {e}")),
        }
    }
}

/// Completes when the reader of stdout goes away (the pipe's read end is closed). Never
/// completes where that cannot be watched (a regular file, or no reactor support).
async fn stdout_closed() {
    use tokio::io::{unix::AsyncFd, Interest};
    // `with_interest` is deprecated because a registered fd could be closed and reused behind
    // the reactor's back; fd 1 is never closed while this process runs, so that cannot happen
    // here (and the replacement is `unsafe`, which this crate forbids).
    #[allow(deprecated)]
    let registered = AsyncFd::with_interest(io::stdout(), Interest::WRITABLE | Interest::ERROR);
    let Ok(stdout) = registered else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut guard) = stdout.ready(Interest::WRITABLE | Interest::ERROR).await else {
            return std::future::pending().await;
        };
        let ready = guard.ready();
        if ready.is_write_closed() || ready.is_error() {
            return;
        }
        guard.clear_ready();
    }
}

/// Runs `work` to its end, or until Ctrl-C, which ends it cleanly (exit code 0).
pub async fn until_interrupted(
    work: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = work => result,
        // If the handler cannot be installed, this branch is disabled and `work` runs on.
        Ok(()) = tokio::signal::ctrl_c() => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::client::encoding::encode;

    #[derive(Parser)]
    struct Subscribe {
        #[command(flatten)]
        range: RangeArgs,
    }

    fn range(args: &[&str]) -> Result<Range, clap::Error> {
        Subscribe::try_parse_from(std::iter::once("subscribe").chain(args.iter().copied()))
            .map(|s| s.range.range())
    }

    #[test]
    fn no_flags_is_everything_then_live() {
        assert_eq!(range(&[]).unwrap(), Range::default());
    }

    #[test]
    fn flags_map_to_the_wire_fields() {
        let since = encode(&[1; 32]);
        let until = hex::encode([2; 32]);
        let range = range(&[
            "--since",
            &since,
            "--until",
            &until,
            "--backwards",
            "--since-cursor",
            "17",
        ])
        .unwrap();
        assert_eq!(
            range,
            Range {
                since: vec![1; 32],
                until: vec![2; 32],
                go_backwards: true,
                since_cursor: 17,
            }
        );
    }

    #[test]
    fn a_bad_id_is_a_usage_error_naming_the_flag() {
        let error = range(&["--since", "nope!"]).err().unwrap();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(error.to_string().contains("--since <ID>"), "{error}");
        let error = range(&["--until", &encode(&[0; 16])]).err().unwrap();
        assert!(
            error.to_string().contains("expected 32 bytes, got 16"),
            "{error}"
        );
        assert!(range(&["--since-cursor", "-1"]).is_err());
    }
}
