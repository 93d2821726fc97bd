//! `berty-node client`: drives a running node's `berty.protocol.ProtocolService` over gRPC from
//! the command line, one subcommand per call, so a person can use the node without writing code.
//!
//! ```text
//! berty-node client [--addr URL] [--token TOKEN | --token-file PATH] <COMMAND>
//!   config                      InstanceGetConfiguration
//!   export --out FILE           InstanceExportData
//!   group  create | invite | join | leave | send | subscribe | members | settings
//!          | set-group | set-member
//!   account subscribe | append
//!   contact reference | reset-reference | enable | disable | enqueue | accept | remove
//!          | block | unblock
//!   device pair
//!   mirror register | list | unregister
//! ```
//!
//! - [`connection`]: the address, the bearer token interceptor, the gRPC channel.
//! - [`encoding`]: text forms of keys, references and ids (base64url out; base64url, base64
//!   or hex in).
//! - [`payload`]: payloads, setting values and `meta` from text, base64 or a file.
//! - [`output`]: replies and events rendered as lines and JSON (pure), and error lines.
//! - [`subscription`]: the range flags of the `*Subscribe` calls and printing a stream.
//! - [`group`], [`account`], [`contact`], [`export`]: the commands of each area.
//!
//! `docs/cli.md` documents every command, the encodings, the JSON lines and the exit codes.

pub mod account;
pub mod connection;
pub mod contact;
pub mod encoding;
pub mod export;
pub mod group;
pub mod mirror;
pub mod output;
pub mod payload;
pub mod subscription;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::proto::berty_protocol::{device_pair, instance_get_configuration};
use account::AccountCommand;
use connection::{parse_addr, parse_token, read_token_file, BearerToken, Connector, DEFAULT_ADDR};
use contact::ContactCommand;
use export::ExportArgs;
use group::GroupCommand;

/// Exit code of a command that failed after its arguments were parsed (a gRPC status, an
/// unreachable node, an unreadable file). clap exits with 2 on usage errors.
pub const EXIT_FAILURE: i32 = 1;

/// Text shown at the end of `berty-node client --help`.
const AFTER_HELP: &str = "\
Binary values (keys, references, event ids) are printed as base64url without padding. On input,
base64url, standard base64 and hex are accepted; prefix a value with \"hex:\" or \"base64:\" to
say which when it could be both. Subscriptions print one JSON object per line until the stream
ends or Ctrl-C. Exit codes: 0 success, 1 the call failed (\"error: <CODE>: <message>\" on
stderr), 2 bad usage. See docs/cli.md.";

/// Global flags of `berty-node client` and the command to run.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct ClientArgs {
    /// The node's gRPC API address (`http://host:port`; `host:port` means `http://`).
    #[arg(
        long,
        global = true,
        env = "BERTY_NODE_ADDR",
        default_value = DEFAULT_ADDR,
        value_name = "URL",
        value_parser = parse_addr
    )]
    addr: String,
    /// Bearer token of the node's API (its `api.token`), sent on every call.
    #[arg(
        long,
        global = true,
        env = "BERTY_NODE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_token,
        conflicts_with = "token_file"
    )]
    token: Option<String>,
    /// Read the bearer token from this file (surrounding whitespace is ignored).
    #[arg(
        long,
        global = true,
        env = "BERTY_NODE_TOKEN_FILE",
        value_name = "PATH"
    )]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: ClientCommand,
}

/// One command per `ProtocolService` call, grouped by area.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show the node's peer id, listen addresses and transports (InstanceGetConfiguration).
    Config,
    /// Export the account (every key, group and log) to a file with mode 0600
    /// (InstanceExportData).
    Export(ExportArgs),
    /// Groups: create, invite, join, leave, send, and follow messages, members and settings.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The account's own event log: follow it, append app events.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Contacts: your reference, requests, accept, remove, block.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Devices of this account.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Store-and-forward mirrors of a group: register, list, unregister.
    #[command(subcommand)]
    Mirror(mirror::MirrorCommand),
}

/// Device calls.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Record this device, made by `init --import`, in the account log (DevicePair); prints
    /// its key, the DevicePaired entry id and whether it was paired already.
    Pair,
}

/// Runs one client command against the node. Local input (token file, payload files, the
/// export path) is checked before the node is contacted.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let token = match (args.token, &args.token_file) {
        (Some(token), _) => Some(token),
        (None, Some(path)) => Some(read_token_file(path)?),
        (None, None) => None,
    };
    let interceptor = BearerToken::new(token.as_deref()).map_err(anyhow::Error::msg)?;
    let connector = Connector::new(args.addr, interceptor);
    match args.command {
        ClientCommand::Config => {
            let reply = connector
                .connect()
                .await?
                .instance_get_configuration(instance_get_configuration::Request {})
                .await?
                .into_inner();
            output::print_line(&output::config_text(&reply)?)?;
            Ok(())
        }
        ClientCommand::Export(export) => export::run(export, &connector).await,
        ClientCommand::Group(command) => group::run(command, &connector).await,
        ClientCommand::Account(command) => account::run(command, &connector).await,
        ClientCommand::Contact(command) => contact::run(command, &connector).await,
        ClientCommand::Mirror(command) => mirror::run(command, &connector).await,
        ClientCommand::Device(DeviceCommand::Pair) => {
            let reply = connector
                .connect()
                .await?
                .device_pair(device_pair::Request {})
                .await?
                .into_inner();
            output::print_line(&output::device_pair_line(&reply)?)?;
            Ok(())
        }
    }
}

/// Prints why a command failed (`error: <CODE>: <message>` for a gRPC status) on stderr and
/// returns the process exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    output::print_stderr(&output::error_line(error));
    EXIT_FAILURE
}

/// Prints a key, reference or event id alone on one line. An empty value (a node that does not
/// fill the field) prints an empty line and a warning naming `what`.
fn print_bytes(bytes: &[u8], what: &str) -> anyhow::Result<()> {
    if bytes.is_empty() {
        output::print_stderr(&format!("warning: the node returned no {what}"));
    }
    output::print_line(&encoding::encode(bytes))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// Stands in for the binary's `Cli` with its `client` subcommand.
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Subcommand)]
    enum Top {
        Client(ClientArgs),
    }

    fn parse(args: &[&str]) -> Result<ClientArgs, clap::Error> {
        let argv = ["berty-node", "client"]
            .into_iter()
            .chain(args.iter().copied());
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Top::Client(args) => args,
        })
    }

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let args = parse(&["group", "create", "--addr", "10.0.0.1:9", "--token", "t"]).unwrap();
        assert_eq!(args.addr, "http://10.0.0.1:9");
        assert_eq!(args.token.as_deref(), Some("t"));
        assert!(matches!(
            args.command,
            ClientCommand::Group(GroupCommand::Create)
        ));
    }

    #[test]
    fn token_and_token_file_conflict() {
        let error = parse(&["--token", "a", "--token-file", "/x", "config"])
            .err()
            .unwrap();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_bad_key_is_a_usage_error_naming_the_argument() {
        let error = parse(&["group", "invite", "not-a-key!"]).err().unwrap();
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(error.exit_code(), 2);
        let text = error.to_string();
        assert!(text.contains("<GROUP>"), "{text}");
        assert!(text.contains("not base64url, base64 or hex"), "{text}");
    }

    #[test]
    fn every_rpc_has_a_command() {
        let key = encoding::encode(&[7; 32]);
        let commands: [&[&str]; 23] = [
            &["config"],
            &["export", "--out", "x"],
            &["group", "create"],
            &["group", "join", "cmVmZXJlbmNl", "--meta", "Alice"],
            &["group", "leave", &key],
            &["group", "invite", &key],
            &["device", "pair"],
            &["contact", "reference"],
            &["contact", "disable"],
            &["contact", "enable"],
            &["contact", "reset-reference"],
            &["contact", "enqueue", "cmVmZXJlbmNl"],
            &["contact", "accept", &key],
            &["contact", "remove", &key],
            &["contact", "block", &key],
            &["contact", "unblock", &key],
            &["group", "set-group", &key, "name", "Friends"],
            &["group", "set-member", &key, "name", "--value-base64", "AP8"],
            &["group", "send", &key, "hello"],
            &["account", "append", "--payload-base64", "AP8"],
            &["account", "subscribe", "--backwards"],
            &["group", "settings", &key],
            &["group", "subscribe", &key, "--since-cursor", "3"],
        ];
        for command in commands {
            assert!(
                parse(command).is_ok(),
                "{command:?}: {:?}",
                parse(command).err()
            );
        }
        assert!(parse(&["group", "members", &key]).is_ok());
    }
}
