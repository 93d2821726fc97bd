//! `berty-node`: command-line entry. Parses flags and configuration, then hands over to the
//! library ([`berty_node::node::Node`]).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use berty_node::{
    config::{NodeConfig, Overrides, Sources},
    data_dir::DataDir,
    import::{self, ImportMode},
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
    Init(InitArgs),
    /// Drive a running node over its gRPC API: groups, contacts, account events, export.
    Client(berty_node::client::ClientArgs),
}

#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Make this data dir a new device of the account exported in FILE (new device keys).
    #[arg(long, value_name = "FILE", conflicts_with = "restore")]
    import: Option<PathBuf>,
    /// Restore the exported instance itself (same device identity). Only for an instance
    /// that is gone: two live instances of one device would reuse message keys.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
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

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", berty_node::error::one_line(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args.load()?),
        Command::Init(args) => {
            let from = args.import.clone().or(args.restore.clone());
            let mode = if args.restore.is_some() {
                ImportMode::Restore
            } else {
                ImportMode::NewDevice
            };
            init(args.common.load()?, from.map(|file| (file, mode)))
        }
        Command::Client(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            if let Err(error) = runtime.block_on(berty_node::client::run(args)) {
                std::process::exit(berty_node::client::report(&error));
            }
            Ok(())
        }
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
    let (result, runtime) = system.block_on(async move {
        let runtime = tokio::runtime::Handle::current();
        let result = async {
            let stop = termination_signal().context("installing the signal handlers")?;
            let node = Node::start(config).await.context("starting the node")?;
            node.print_addresses();
            node.run_until(stop).await?;
            Ok(())
        }
        .await;
        (result, runtime)
    });
    // Work still in flight (never acknowledged) is dropped with the system; database
    // connections it held need a runtime context to be released while that happens.
    let _context = runtime.enter();
    drop(system);
    result
}

fn init(config: NodeConfig, import: Option<(PathBuf, ImportMode)>) -> anyhow::Result<()> {
    let data_dir = DataDir::open(&config.data_dir)?;
    if config.database_url.is_empty() {
        data_dir.create_private_file(berty_node::defaults::SQLITE_FILE_NAME)?;
    }
    if let Some((file, mode)) = import {
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let summary = runtime
            .block_on(import::import(
                &config.data_dir,
                &config.database_url,
                &bytes,
                mode,
            ))
            .with_context(|| format!("importing {}", file.display()))?;
        println!(
            "imported values {} logs {} entries {} events {}",
            summary.values, summary.logs, summary.entries, summary.events
        );
    }
    let peer_key = keystore::load_or_create_peer_key(&config.data_dir)?;
    let account = keystore::load_or_create_account(&config.data_dir)?;
    println!("data_dir {}", config.data_dir.display());
    println!("peer_id {}", peer_key.public().to_peer_id());
    println!(
        "account_pk {}",
        hex::encode(account.account_pk().as_bytes())
    );
    println!("device_pk {}", hex::encode(account.device_pk().as_bytes()));
    Ok(())
}
