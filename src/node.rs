//! The supervisor: builds every part of the node, starts it, and stops it.
//!
//! [`Node::start`] returns once everything listens, with the addresses actually bound (port 0
//! works). [`Node::run_until`] then waits for a stop signal or for any part to die; either way
//! it stops every part and says why. Must be called inside the actix system, which runs on a
//! multi-threaded tokio runtime (see `main.rs`).

use std::{future::Future, net::SocketAddr, sync::Arc};

use actix::Actor;
use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::watch;

use crate::{
    actors::{account::Replication, AccountActor},
    admin::{self, AdminState},
    api::{self, protocol::Capabilities, ProtocolApi},
    config::NodeConfig,
    data_dir::{DataDir, DataDirError},
    defaults, keystore,
    metrics::Metrics,
    mirror::MirrorActor,
    p2p, rendezvous,
    replication::{ReplicationSettings, Replicator},
    storage::sealed::{self, SealedValues},
    storage::{
        self,
        account_lock::{AccountLock, AccountLockError},
        Storage,
    },
    supervision::{OnDeath, Supervisor},
};

/// Why the node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data dir is unusable or in use by another node.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// Another live node serves this account on the shared database.
    #[error(transparent)]
    AccountLock(#[from] AccountLockError),
    /// Key files.
    #[error(transparent)]
    Keystore(#[from] keystore::KeystoreError),
    /// Storage could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// libp2p could not start.
    #[error(transparent)]
    P2p(#[from] p2p::P2pError),
    /// The gRPC server could not start.
    #[error(transparent)]
    Api(#[from] api::ApiError),
    /// The admin server could not start.
    #[error("cannot start the admin server on {addr}: {source}")]
    Admin {
        /// `admin.listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The account could not be loaded.
    #[error("loading the account: {0}")]
    Account(crate::error::Error),
    /// A part of the node stopped on its own.
    #[error("{part} stopped unexpectedly: {reason}")]
    PartDied {
        /// Which part.
        part: &'static str,
        /// What it reported.
        reason: String,
    },
}

type PartResult = (&'static str, Result<(), String>);

/// A running node.
pub struct Node {
    /// This node's libp2p peer id.
    pub peer_id: PeerId,
    /// Bound gRPC API address.
    pub grpc_addr: SocketAddr,
    /// Bound admin HTTP address.
    pub admin_addr: SocketAddr,
    /// libp2p listen addresses, each with `/p2p/<peer id>`.
    pub listen_addrs: Vec<Multiaddr>,
    /// The storage the node runs on.
    pub storage: Arc<dyn Storage>,
    shutdown: watch::Sender<bool>,
    admin: actix_web::dev::ServerHandle,
    parts: FuturesUnordered<BoxFuture<'static, PartResult>>,
    /// The parts nothing joins (actors, detached tasks) report their deaths here.
    supervisor: Supervisor,
    /// Held until the node is dropped: no second node serves this data dir meanwhile.
    _data_dir: DataDir,
}

impl Node {
    /// Builds and starts every part; returns once all of them listen.
    pub async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let started = std::time::Instant::now();
        let local = Local::open(&config).await?;
        let storage = local.storage.clone();
        let (metrics, mut registry) = Metrics::new();
        metrics.storage_up.set(1);
        registry.register_collector(Box::new(crate::storage::CommitPathsCollector::new(
            storage.clone(),
        )));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let supervisor = Supervisor::new();
        let (network_events, network_inbox) =
            tokio::sync::mpsc::channel(defaults::NETWORK_EVENT_QUEUE);
        let rendezvous = start_rendezvous(
            &config,
            &storage,
            &mut registry,
            &metrics,
            &supervisor,
            &shutdown_rx,
        );
        let (swarm, swarm_task, mirror_inbox) = start_swarm(
            &config,
            local.peer_key,
            rendezvous.clone(),
            (&mut registry, &metrics),
            network_events,
            shutdown_rx.clone(),
        )
        .await?;
        let info = swarm.info().await?;
        let (account, replicator, mirror) = start_actors(
            &config,
            local.account,
            &swarm,
            &storage,
            (&metrics, &supervisor),
            (network_inbox, mirror_inbox),
        )
        .await?;
        let (grpc_addr, grpc_task) = serve_grpc(
            &config,
            &swarm,
            account,
            &storage,
            &info,
            &metrics,
            shutdown_rx,
        )
        .await?;
        let admin = serve_admin(
            &config,
            AdminState {
                registry: Arc::new(registry),
                metrics,
                storage: storage.clone(),
                swarm,
                token: config.admin_token.clone(),
                replicator,
                peer_id: info.peer_id,
                penalty: config.penalty,
                rendezvous,
                mirror,
                // `postgres://` and `postgresql://` (storage::open).
                storage_backend: if config.database_url.starts_with("postgres") {
                    "postgres"
                } else {
                    "sqlite"
                },
                started,
                stats: admin::stats::Stats::new(config.admin_stats_period),
            },
        )?;
        let lock = local.account_lock.map(|lock| (lock, shutdown.subscribe()));
        let parts = joined_parts(swarm_task, grpc_task, admin.task, lock);

        Ok(Self {
            peer_id: info.peer_id,
            grpc_addr,
            admin_addr: admin.addr,
            listen_addrs: info.listen_addrs,
            storage,
            shutdown,
            admin: admin.handle,
            parts,
            supervisor,
            _data_dir: local.data_dir,
        })
    }

    /// Runs until `stop` completes (a clean shutdown, `Ok`) or a part dies (`Err` naming it);
    /// in both cases every part is stopped before this returns.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) -> Result<(), NodeError> {
        let died = tokio::select! {
            _ = stop => None,
            Some((part, result)) = self.parts.next() => Some(NodeError::PartDied {
                part,
                reason: match result {
                    Ok(()) => "ended without error".to_string(),
                    Err(e) => e,
                },
            }),
            death = self.supervisor.next_death() => Some(NodeError::PartDied {
                part: death.part,
                reason: death.reason,
            }),
        };
        if let Some(err) = &died {
            tracing::error!(%err, "shutting the node down");
        } else {
            tracing::info!("shutting down");
        }
        self.stop().await;
        died.map_or(Ok(()), Err)
    }

    async fn stop(mut self) {
        self.supervisor.stop();
        let _ = self.shutdown.send(true);
        self.admin.stop(true).await;
        let drain = async { while self.parts.next().await.is_some() {} };
        if tokio::time::timeout(defaults::SHUTDOWN_GRACE, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?defaults::SHUTDOWN_GRACE,
                "some parts did not stop in time; exiting anyway"
            );
        }
        tracing::info!("stopped");
    }

    /// Prints what an operator needs to reach the node (one line each, stable for scripts).
    pub fn print_addresses(&self) {
        println!("peer_id {}", self.peer_id);
        for addr in &self.listen_addrs {
            println!("p2p_listen {addr}");
        }
        println!("grpc_listen {}", self.grpc_addr);
        println!("admin_listen {}", self.admin_addr);
    }
}

fn flatten<E: ToString>(joined: Result<Result<(), String>, E>) -> Result<(), String> {
    joined.map_err(|e| e.to_string()).and_then(|r| r)
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that completes when
/// either arrives. Call it before starting the node, so a signal sent during start-up is not
/// lost (the default action would kill the process uncleanly).
pub fn termination_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// What the node keeps on this machine: the locked data dir, the keys, storage, and (on
/// PostgreSQL) the account's lock.
struct Local {
    data_dir: DataDir,
    peer_key: libp2p::identity::Keypair,
    account: crate::crypto::AccountKeys,
    storage: Arc<dyn Storage>,
    account_lock: Option<AccountLock>,
}

impl Local {
    async fn open(config: &NodeConfig) -> Result<Self, NodeError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        if config.database_url.is_empty() {
            data_dir.create_private_file(defaults::SQLITE_FILE_NAME)?;
        }
        let peer_key = keystore::load_or_create_peer_key(&config.data_dir)?;
        let account = keystore::load_or_create_account(&config.data_dir)?;
        let storage = storage::open(&config.database_url, &config.data_dir).await?;
        // Before anything of the account is read or written on a shared database.
        let account_lock = if storage::account_lock::is_postgres_url(&config.database_url) {
            Some(AccountLock::acquire(&config.database_url, account.account_pk().as_bytes()).await?)
        } else {
            None
        };
        Ok(Self {
            data_dir,
            peer_key,
            account,
            storage,
            account_lock,
        })
    }
}

/// The rendezvous server when `rendezvous.enabled`, its metrics collector registered and its
/// upkeep task running (a part that stops the node when it dies).
fn start_rendezvous(
    config: &NodeConfig,
    storage: &Arc<dyn Storage>,
    registry: &mut prometheus_client::registry::Registry,
    metrics: &Metrics,
    supervisor: &Supervisor,
    shutdown: &watch::Receiver<bool>,
) -> Option<rendezvous::RendezvousServer> {
    if !config.rendezvous.enabled {
        return None;
    }
    let server = rendezvous::server_for(&config.rendezvous, storage.clone());
    registry.register_collector(Box::new(rendezvous::RendezvousCollector::new(
        server.clone(),
    )));
    let upkeep = supervisor.lifeline("rendezvous upkeep", OnDeath::StopNode);
    tokio::spawn(upkeep.hold(rendezvous::upkeep::run(
        server.clone(),
        metrics.rendezvous_registrations.clone(),
        shutdown.clone(),
    )));
    Some(server)
}

/// The Replicator (when `p2p.replication`) then the AccountActor wired to it: replication
/// starts first, the account hands it the groups (with their stores) and every store reports
/// its commits to it.
#[allow(clippy::too_many_arguments)]
async fn start_account(
    config: &NodeConfig,
    keys: crate::crypto::AccountKeys,
    swarm: &p2p::SwarmHandle,
    storage: &Arc<dyn Storage>,
    metrics: &Metrics,
    supervisor: &Supervisor,
    network_inbox: tokio::sync::mpsc::Receiver<p2p::NetworkEvent>,
) -> Result<(actix::Addr<AccountActor>, Option<actix::Addr<Replicator>>), NodeError> {
    let storage_key = sealed::load_or_create_storage_key(&config.data_dir)?;
    let values = SealedValues::new(storage.clone(), storage_key);
    let replicator = config.replication.then(|| {
        Replicator::new(
            swarm.clone(),
            storage.clone(),
            metrics.clone(),
            ReplicationSettings {
                penalty: config.penalty,
                rendezvous_servers: config
                    .rendezvous_servers
                    .iter()
                    .filter_map(p2p::peer_id_of)
                    .collect(),
            },
            network_inbox,
            supervisor.lifeline("replicator", OnDeath::StopNode),
        )
        .start()
    });
    let courier = crate::courier::ContactCourier::new(
        swarm.clone(),
        keys.account().clone(),
        crate::courier::CourierSettings {
            servers: config
                .rendezvous_servers
                .iter()
                .filter_map(p2p::peer_id_of)
                .collect(),
            period: config.contact_period,
        },
        metrics.clone(),
    )
    .start();
    let lifeline = supervisor.lifeline("account actor", OnDeath::StopNode);
    let mut account = AccountActor::load(keys, storage.clone(), values, metrics.clone(), lifeline)
        .await
        .map_err(NodeError::Account)?;
    account.set_courier(courier);
    if let Some(replicator) = &replicator {
        account.set_replication(Replication {
            appended: replicator.clone().recipient(),
            groups: replicator.clone().recipient(),
        });
    }
    Ok((account.start(), replicator))
}

/// The admin server on `admin.listen`.
fn serve_admin(config: &NodeConfig, state: AdminState) -> Result<admin::AdminServer, NodeError> {
    admin::serve(config.admin_listen, state).map_err(|source| NodeError::Admin {
        addr: config.admin_listen,
        source,
    })
}

/// The swarm task, with our rendezvous server and (when the mirror runs) a channel for the
/// mirror's requests, whose receiving end is returned for the mirror actor.
async fn start_swarm(
    config: &NodeConfig,
    peer_key: libp2p::identity::Keypair,
    rendezvous: Option<rendezvous::RendezvousServer>,
    (registry, metrics): (&mut prometheus_client::registry::Registry, &Metrics),
    network_events: tokio::sync::mpsc::Sender<p2p::NetworkEvent>,
    shutdown: watch::Receiver<bool>,
) -> Result<
    (
        p2p::SwarmHandle,
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::Receiver<p2p::mirror_message::InboundMirrorRequest>,
    ),
    NodeError,
> {
    let mut settings = p2p::P2pSettings::from_config(config);
    settings.rendezvous_server = rendezvous;
    let (mirror_requests, mirror_inbox) =
        tokio::sync::mpsc::channel(crate::defaults::MIRROR_REQUEST_QUEUE);
    if config.mirror.enabled && config.replication {
        settings.mirror_server = Some(mirror_requests);
    }
    let (swarm, task) = p2p::spawn(
        peer_key,
        settings,
        registry,
        metrics.p2p.clone(),
        network_events,
        shutdown,
    )
    .await?;
    Ok((swarm, task, mirror_inbox))
}

/// The gRPC API (`ProtocolService` and our `MirrorService`) on `api.grpc_listen`.
async fn serve_grpc(
    config: &NodeConfig,
    swarm: &p2p::SwarmHandle,
    account: actix::Addr<AccountActor>,
    storage: &Arc<dyn Storage>,
    info: &p2p::SwarmInfo,
    metrics: &Metrics,
    shutdown: watch::Receiver<bool>,
) -> Result<
    (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    ),
    NodeError,
> {
    let capabilities = Capabilities {
        mdns: info.mdns,
        relay: info.relay_server || info.relay_client,
    };
    let mirror = api::MirrorApi::new(swarm.clone(), account.clone(), metrics.clone());
    let api = ProtocolApi::new(
        swarm.clone(),
        account,
        storage.clone(),
        capabilities,
        metrics.clone(),
    );
    Ok(api::serve(
        config.grpc_listen,
        api,
        mirror,
        config.api_token.clone(),
        shutdown,
    )
    .await?)
}

/// The account actor and replication, then the mirror (which needs the replicator).
async fn start_actors(
    config: &NodeConfig,
    keys: crate::crypto::AccountKeys,
    swarm: &p2p::SwarmHandle,
    storage: &Arc<dyn Storage>,
    (metrics, supervisor): (&Metrics, &Supervisor),
    (network_inbox, mirror_inbox): (
        tokio::sync::mpsc::Receiver<p2p::NetworkEvent>,
        tokio::sync::mpsc::Receiver<p2p::mirror_message::InboundMirrorRequest>,
    ),
) -> Result<
    (
        actix::Addr<AccountActor>,
        Option<actix::Addr<Replicator>>,
        Option<admin::MirrorAdmin>,
    ),
    NodeError,
> {
    let (account, replicator) = start_account(
        config,
        keys,
        swarm,
        storage,
        metrics,
        supervisor,
        network_inbox,
    )
    .await?;
    let mirror = start_mirror(
        config,
        storage,
        replicator.as_ref(),
        metrics,
        supervisor,
        mirror_inbox,
    );
    Ok((account, replicator, mirror))
}

/// The mirror, when `mirror.enabled` (it needs replication: without it the role is off, and
/// said so once).
fn start_mirror(
    config: &NodeConfig,
    storage: &Arc<dyn Storage>,
    replicator: Option<&actix::Addr<Replicator>>,
    metrics: &Metrics,
    supervisor: &Supervisor,
    requests: tokio::sync::mpsc::Receiver<p2p::mirror_message::InboundMirrorRequest>,
) -> Option<admin::MirrorAdmin> {
    if !config.mirror.enabled {
        return None;
    }
    let Some(replicator) = replicator else {
        tracing::warn!("mirror.enabled, but p2p.replication is off: the mirror role is off");
        return None;
    };
    let actor = MirrorActor::new(
        storage.clone(),
        config.mirror.retention_days,
        replicator.clone().recipient(),
        replicator.clone().recipient(),
        requests,
        metrics.clone(),
        supervisor.lifeline("mirror", OnDeath::StopNode),
    )
    .start();
    Some(admin::MirrorAdmin {
        actor,
        default_max_groups: config.mirror.default_max_groups,
        default_max_bytes: config.mirror.default_max_bytes,
    })
}

/// The parts the node joins (their end is a death unless the node is stopping).
fn joined_parts(
    swarm: tokio::task::JoinHandle<()>,
    grpc: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    admin: tokio::task::JoinHandle<std::io::Result<()>>,
    account_lock: Option<(AccountLock, watch::Receiver<bool>)>,
) -> FuturesUnordered<BoxFuture<'static, PartResult>> {
    let parts: FuturesUnordered<BoxFuture<'static, PartResult>> = FuturesUnordered::new();
    parts.push(
        swarm
            .map(|r| ("swarm", r.map_err(|e| e.to_string())))
            .boxed(),
    );
    parts.push(
        grpc.map(|r| {
            (
                "gRPC server",
                flatten(r.map(|r| r.map_err(|e| e.to_string()))),
            )
        })
        .boxed(),
    );
    if let Some((lock, stop)) = account_lock {
        parts.push(
            tokio::spawn(lock.hold(stop))
                .map(|r| ("account lock", flatten(r)))
                .boxed(),
        );
    }
    parts.push(
        admin
            .map(|r| {
                (
                    "admin server",
                    flatten(r.map(|r| r.map_err(|e| e.to_string()))),
                )
            })
            .boxed(),
    );
    parts
}
