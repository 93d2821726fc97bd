//! `client group ...`: create, invite, join, leave, send, subscribe, members, settings.

use clap::Subcommand;

use super::{
    connection::Connector,
    encoding::{parse_key, parse_reference, Binary},
    output,
    payload::{MetaArgs, PayloadArgs, ValueArgs},
    print_bytes,
    subscription::{print_stream, until_interrupted, Range, RangeArgs},
};
use crate::proto::berty_protocol::{
    group_create, group_invite, group_join, group_leave, group_member_subscribe,
    group_message_send, group_message_subscribe, group_setting_set_group, group_setting_set_member,
    group_setting_store_subscribe,
};

/// Group calls. GROUP is a group public key (base64url, base64 or hex).
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group with this account as creator and first member; prints the group key
    /// (GroupCreate).
    Create,
    /// Print an invitation reference for a group (GroupInvite).
    Invite {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
    },
    /// Join a group with an invitation reference (GroupJoin).
    Join {
        /// The reference printed by `group invite`.
        #[arg(value_name = "REFERENCE", value_parser = parse_reference)]
        reference: Binary,
        /// What the other members see on your member event.
        #[command(flatten)]
        meta: MetaArgs,
    },
    /// Leave a group: stop replicating it; its history stays readable (GroupLeave).
    Leave {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
    },
    /// Send a message; prints its event id (GroupMessageSend).
    #[command(override_usage = "berty-node client group send [OPTIONS] <GROUP> \
                                <TEXT | --payload-file PATH | --payload-base64 BASE64>")]
    Send {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// What to send.
        #[command(flatten)]
        payload: PayloadArgs,
    },
    /// Print the group's messages, one JSON object per line (GroupMessageSubscribe).
    Subscribe {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// Which messages.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Print the group's member devices, one JSON object per line (GroupMemberSubscribe).
    Members {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// Which member events.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Print the group's setting changes, one JSON object per line (GroupSettingSubscribe).
    Settings {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// Which setting events.
        #[command(flatten)]
        range: RangeArgs,
    },
    /// Set a group-wide setting; only the group's creator may (GroupSettingSetGroup).
    #[command(
        override_usage = "berty-node client group set-group [OPTIONS] <GROUP> <KEY> \
                                <VALUE | --value-file PATH | --value-base64 BASE64>"
    )]
    SetGroup {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// The setting's name.
        key: String,
        /// The setting's value.
        #[command(flatten)]
        value: ValueArgs,
    },
    /// Set one of your own member settings in a group (GroupSettingSetMember).
    #[command(
        override_usage = "berty-node client group set-member [OPTIONS] <GROUP> <KEY> \
                                <VALUE | --value-file PATH | --value-base64 BASE64>"
    )]
    SetMember {
        /// The group public key.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// The setting's name.
        key: String,
        /// The setting's value.
        #[command(flatten)]
        value: ValueArgs,
    },
}

/// Runs one `group` command against the node.
pub async fn run(command: GroupCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create
        | GroupCommand::Invite { .. }
        | GroupCommand::Join { .. }
        | GroupCommand::Leave { .. } => run_membership(command, connector).await,
        GroupCommand::Send { .. }
        | GroupCommand::SetGroup { .. }
        | GroupCommand::SetMember { .. } => run_write(command, connector).await,
        GroupCommand::Subscribe { .. }
        | GroupCommand::Members { .. }
        | GroupCommand::Settings { .. } => run_stream(command, connector).await,
    }
}

/// A command routed to the wrong runner (cannot happen: [`run`] routes by variant).
fn unreachable_command() -> anyhow::Result<()> {
    anyhow::bail!("internal error: group command routed to the wrong runner")
}

/// `create`, `invite`, `join`, `leave`.
async fn run_membership(command: GroupCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        GroupCommand::Create => {
            let reply = connector
                .connect()
                .await?
                .group_create(group_create::Request {})
                .await?
                .into_inner();
            print_bytes(
                &reply.group_pub_key,
                "group key (GroupCreate.Reply field 100)",
            )
        }
        GroupCommand::Invite { group } => {
            let reply = connector
                .connect()
                .await?
                .group_invite(group_invite::Request {
                    group_pub_key: group.0,
                })
                .await?
                .into_inner();
            print_bytes(&reply.reference, "reference")
        }
        GroupCommand::Join { reference, meta } => {
            connector
                .connect()
                .await?
                .group_join(group_join::Request {
                    reference: reference.0,
                    meta: meta.bytes(),
                })
                .await?;
            Ok(())
        }
        GroupCommand::Leave { group } => {
            connector
                .connect()
                .await?
                .group_leave(group_leave::Request {
                    group_pub_key: group.0,
                })
                .await?;
            Ok(())
        }
        _ => unreachable_command(),
    }
}

/// `send`, `set-group`, `set-member`.
async fn run_write(command: GroupCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        GroupCommand::Send { group, payload } => {
            let request = group_message_send::Request {
                group_pub_key: group.0,
                payload: payload.read()?,
            };
            let reply = connector
                .connect()
                .await?
                .group_message_send(request)
                .await?
                .into_inner();
            print_bytes(
                &reply.event_id,
                "event id (GroupMessageSend.Reply field 100)",
            )
        }
        GroupCommand::SetGroup { group, key, value } => {
            let request = group_setting_set_group::Request {
                group_pub_key: group.0,
                key,
                value: value.read()?,
            };
            connector
                .connect()
                .await?
                .group_setting_set_group(request)
                .await?;
            Ok(())
        }
        GroupCommand::SetMember { group, key, value } => {
            let request = group_setting_set_member::Request {
                group_pub_key: group.0,
                key,
                value: value.read()?,
            };
            connector
                .connect()
                .await?
                .group_setting_set_member(request)
                .await?;
            Ok(())
        }
        _ => unreachable_command(),
    }
}

/// Prints one subscription of the group service as JSON lines until interrupted: `$call` on
/// the client with `$request`, each reply's event printed by `$line`.
macro_rules! print_subscription {
    ($connector:expr, $call:ident, $request:expr, $line:path) => {
        until_interrupted(async {
            let stream = $connector
                .connect()
                .await?
                .$call($request)
                .await?
                .into_inner();
            print_stream(stream, |reply| $line(&reply.event.unwrap_or_default())).await
        })
        .await
    };
}

/// `subscribe`, `members`, `settings`: JSON lines until interrupted.
async fn run_stream(command: GroupCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        GroupCommand::Subscribe { group, range } => print_subscription!(
            connector,
            group_message_subscribe,
            message_subscribe_request(group.0, range.range()),
            output::message_event_line
        ),
        GroupCommand::Members { group, range } => print_subscription!(
            connector,
            group_member_subscribe,
            member_subscribe_request(group.0, range.range()),
            output::member_event_line
        ),
        GroupCommand::Settings { group, range } => print_subscription!(
            connector,
            group_setting_subscribe,
            setting_subscribe_request(group.0, range.range()),
            output::setting_event_line
        ),
        _ => unreachable_command(),
    }
}

/// The `group subscribe` request.
pub fn message_subscribe_request(
    group_pub_key: Vec<u8>,
    range: Range,
) -> group_message_subscribe::Request {
    group_message_subscribe::Request {
        group_pub_key,
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    }
}

/// The `group members` request.
pub fn member_subscribe_request(
    group_pub_key: Vec<u8>,
    range: Range,
) -> group_member_subscribe::Request {
    group_member_subscribe::Request {
        group_pub_key,
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    }
}

/// The `group settings` request.
pub fn setting_subscribe_request(
    group_pub_key: Vec<u8>,
    range: Range,
) -> group_setting_store_subscribe::Request {
    group_setting_store_subscribe::Request {
        group_pub_key,
        since: range.since,
        until: range.until,
        go_backwards: range.go_backwards,
        since_cursor: range.since_cursor,
    }
}
