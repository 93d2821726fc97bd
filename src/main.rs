//! `berty-node`: command-line entry. Parses flags and configuration, then hands over to the
//! library ([`berty_node::node::Node`]).

use std::path::PathBuf;

use anyhow::Context;
use berty_node::{
    config::{NodeConfig, Overrides, Sources},
    keystore,
    node::{termination_signal, Node},
    telemetry,
};
use clap::{Args, Parser, Subcommand};

/// A Berty Protocol peer and always-on infrastructure node.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node (SQLite in ./data when nothing is configured).
    Serve(CommonArgs),
    /// Create the data dir, the peer key and the account, then exit.
    Init(CommonArgs),
}

#[derive(Args)]
struct CommonArgs {
    /// TOML configuration file (see config/default.toml for every key).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (overrides `storage.database_url`).
    #[arg(long)]
    database_url: Option<String>,
    /// gRPC listen address (overrides `api.grpc_listen`).
    #[arg(long)]
    grpc_listen: Option<String>,
    /// Admin HTTP listen address (overrides `admin.listen`).
    #[arg(long)]
    admin_listen: Option<String>,
    /// libp2p listen multiaddr, repeatable (overrides `p2p.listen`).
    #[arg(long)]
    p2p_listen: Vec<String>,
}

impl CommonArgs {
    fn load(self) -> anyhow::Result<NodeConfig> {
        let sources = Sources {
            file: self.config,
            env: None,
            overrides: Overrides {
                data_dir: self.data_dir,
                database_url: self.database_url,
                grpc_listen: self.grpc_listen,
                admin_listen: self.admin_listen,
                p2p_listen: self.p2p_listen,
            },
        };
        Ok(NodeConfig::load(&sources)?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args.load()?),
        Command::Init(args) => init(args.load()?),
    }
}

fn serve(config: NodeConfig) -> anyhow::Result<()> {
    telemetry::init(&config.log);
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| {
                eprintln!("cannot start the tokio runtime: {e}");
                std::process::exit(1)
            })
    });
    system.block_on(async move {
        let node = Node::start(config).await.context("starting the node")?;
        node.print_addresses();
        node.run_until(termination_signal()).await?;
        Ok(())
    })
}

fn init(config: NodeConfig) -> anyhow::Result<()> {
    keystore::ensure_dir(&config.data_dir)?;
    let peer_key = keystore::load_or_create_peer_key(&config.data_dir)?;
    let account = keystore::load_or_create_account(&config.data_dir)?;
    println!("data_dir {}", config.data_dir.display());
    println!("peer_id {}", peer_key.public().to_peer_id());
    println!("account_pk {}", hex::encode(account.account_pk().as_bytes()));
    println!("device_pk {}", hex::encode(account.device_pk().as_bytes()));
    Ok(())
}
