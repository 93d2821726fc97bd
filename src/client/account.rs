//! `client account ...`: the account's own event log.

use clap::Subcommand;

use super::{
    connection::Connector,
    output,
    payload::PayloadArgs,
    subscription::{print_stream, until_interrupted, Range, RangeArgs},
};
use crate::proto::berty_protocol::{account_append_app_specific_event, account_subscribe};

/// Account calls.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Print the account's events (groups joined, contacts, devices, app events), one JSON
    /// object per line (AccountSubscribe).
    Subscribe {
        /// Which events.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Append an app-specific event to the account log, shared with the account's other
    /// devices (AccountAppendAppSpecificEvent).
    Append {
        /// The event's content.
        #[command(flatten)]
        payload: PayloadArgs,
    },
}

/// Runs one `account` command against the node.
pub async fn run(command: AccountCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        AccountCommand::Subscribe { range } => {
            let request = subscribe_request(range.range());
            until_interrupted(async {
                let stream = connector
                    .connect()
                    .await?
                    .account_subscribe(request)
                    .await?
                    .into_inner();
                print_stream(stream, |reply| {
                    output::account_event_line(&reply.event.unwrap_or_default())
                })
                .await
            })
            .await
        }
        AccountCommand::Append { payload } => {
            let request = account_append_app_specific_event::Request {
                payload: payload.read()?,
            };
            connector
                .connect()
                .await?
                .account_append_app_specific_event(request)
                .await?;
            Ok(())
        }
    }
}

/// The `account subscribe` request.
pub fn subscribe_request(range: Range) -> account_subscribe::Request {
    account_subscribe::Request {
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    }
}
