//! `client mirror ...`: registering a group with store-and-forward mirrors (our
//! `berty.node.v1.MirrorService`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{
    connection::{read_token_file, Connector},
    encoding::{parse_key, Binary},
    output,
};
use crate::proto::node_api::{mirror_list, mirror_register, mirror_unregister};

/// Mirror calls. GROUP is a group public key (base64url, base64 or hex).
#[derive(Debug, Subcommand)]
pub enum MirrorCommand {
    /// Register a group with a mirror; the node syncs with it whenever it is online (prints
    /// the mirror's peer id) (MirrorRegister).
    Register {
        /// The group.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// The mirror's address, ending with `/p2p/<its peer id>`.
        #[arg(value_name = "MIRROR_MULTIADDR")]
        mirror: String,
        /// The token the mirror's operator issued.
        #[command(flatten)]
        token: MirrorToken,
    },
    /// List the mirrors a group is registered with, one JSON object per line (MirrorList).
    List {
        /// The group.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
    },
    /// Ask a mirror to drop a group, and forget it (MirrorUnregister).
    Unregister {
        /// The group.
        #[arg(value_name = "GROUP", value_parser = parse_key)]
        group: Binary,
        /// The mirror's peer id.
        #[arg(value_name = "MIRROR_PEER_ID")]
        mirror: String,
    },
}

/// The mirror token, given or read from a file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct MirrorToken {
    /// The token.
    #[arg(long = "mirror-token", value_name = "TOKEN")]
    token: Option<String>,
    /// Read the token from this file (surrounding whitespace is ignored).
    #[arg(long = "mirror-token-file", value_name = "PATH")]
    file: Option<PathBuf>,
}

impl MirrorToken {
    fn read(&self) -> anyhow::Result<String> {
        match (&self.token, &self.file) {
            (Some(token), _) => Ok(token.trim().to_owned()),
            (None, Some(path)) => read_token_file(path).map_err(|e| {
                anyhow::anyhow!(
                    "{}",
                    e.to_string().replace("--token-file", "--mirror-token-file")
                )
            }),
            (None, None) => anyhow::bail!("give --mirror-token or --mirror-token-file"),
        }
    }
}

/// Runs one `mirror` command against the node.
pub async fn run(command: MirrorCommand, connector: &Connector) -> anyhow::Result<()> {
    match command {
        MirrorCommand::Register {
            group,
            mirror,
            token,
        } => {
            let token = token.read()?;
            let reply = connector
                .connect_mirror()
                .await?
                .mirror_register(mirror_register::Request {
                    group_pk: group.0,
                    mirror_addr: mirror,
                    token,
                })
                .await?
                .into_inner();
            if reply.already {
                output::print_stderr("note: the mirror kept this group already");
            }
            output::print_line(&reply.mirror_peer_id)?;
        }
        MirrorCommand::List { group } => {
            let reply = connector
                .connect_mirror()
                .await?
                .mirror_list(mirror_list::Request { group_pk: group.0 })
                .await?
                .into_inner();
            for mirror in reply.mirrors {
                let line = json!({
                    "peer_id": mirror.peer_id,
                    "addrs": mirror.addrs,
                    "registered_at": mirror.registered_at,
                });
                output::print_line(&line.to_string())?;
            }
        }
        MirrorCommand::Unregister { group, mirror } => {
            connector
                .connect_mirror()
                .await?
                .mirror_unregister(mirror_unregister::Request {
                    group_pk: group.0,
                    mirror_peer_id: mirror,
                })
                .await?;
        }
    }
    Ok(())
}
