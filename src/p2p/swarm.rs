//! The task that owns the libp2p `Swarm` (it is `!Sync`), driven by [`SwarmCommand`]s.

use std::{collections::HashSet, time::Duration};

use futures::StreamExt;
use libp2p::{
    core::transport::ListenerId, identity::Keypair, multiaddr::Protocol, noise,
    swarm::SwarmEvent, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder,
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

use super::behaviour::Behaviour;

/// How long start-up waits for every listen address to be bound.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections without traffic are closed after this long.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Depth of the command channel.
const COMMAND_QUEUE: usize = 256;

/// What can go wrong starting the swarm.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// Building the transport failed.
    #[error("libp2p transport: {0}")]
    Transport(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address from `p2p.listen`.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The swarm task is gone.
    #[error("the swarm task has stopped")]
    Stopped,
}

/// A request to the swarm task.
#[derive(Debug)]
pub enum SwarmCommand {
    /// Current listen addresses and peer id.
    Info(oneshot::Sender<SwarmInfo>),
}

/// What the swarm reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmInfo {
    /// This node's peer id.
    pub peer_id: PeerId,
    /// Addresses the node listens on, each ending in `/p2p/<peer id>`.
    pub listen_addrs: Vec<Multiaddr>,
    /// Number of peers with an open connection.
    pub connected_peers: usize,
}

/// A cheap, cloneable handle to the swarm task.
#[derive(Debug, Clone)]
pub struct SwarmHandle {
    peer_id: PeerId,
    commands: mpsc::Sender<SwarmCommand>,
}

impl SwarmHandle {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Asks the swarm task for its current state.
    pub async fn info(&self) -> Result<SwarmInfo, P2pError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(SwarmCommand::Info(reply))
            .await
            .map_err(|_| P2pError::Stopped)?;
        answer.await.map_err(|_| P2pError::Stopped)
    }
}

/// Builds the swarm, binds every listen address, then runs it in its own task until
/// `shutdown` turns true. Returns once the listen addresses are known.
pub async fn spawn(
    keypair: Keypair,
    listen: &[Multiaddr],
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SwarmHandle, JoinHandle<()>), P2pError> {
    let mut swarm = build(keypair)?;
    let peer_id = *swarm.local_peer_id();
    let mut pending: HashSet<ListenerId> = HashSet::new();
    for addr in listen {
        let id = swarm.listen_on(addr.clone()).map_err(|e| P2pError::Listen {
            addr: addr.clone(),
            reason: e.to_string(),
        })?;
        pending.insert(id);
    }
    wait_for_listeners(&mut swarm, pending, listen).await?;

    let (commands, mut inbox) = mpsc::channel(COMMAND_QUEUE);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
                command = inbox.recv() => match command {
                    Some(command) => handle_command(&mut swarm, command),
                    None => break,
                },
                event = swarm.select_next_some() => handle_event(event),
            }
        }
        tracing::debug!("swarm task stopped");
    });
    Ok((SwarmHandle { peer_id, commands }, task))
}

fn build(keypair: Keypair) -> Result<Swarm<Behaviour>, P2pError> {
    let transport_err = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport_err(&e))?
        .with_quic()
        .with_behaviour(Behaviour::new)
        .map_err(|e| transport_err(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build())
}

async fn wait_for_listeners(
    swarm: &mut Swarm<Behaviour>,
    mut pending: HashSet<ListenerId>,
    listen: &[Multiaddr],
) -> Result<(), P2pError> {
    let deadline = tokio::time::sleep(LISTEN_TIMEOUT);
    tokio::pin!(deadline);
    while !pending.is_empty() {
        tokio::select! {
            _ = &mut deadline => {
                return Err(P2pError::Listen {
                    addr: listen.first().cloned().unwrap_or_else(Multiaddr::empty),
                    reason: format!("not bound after {LISTEN_TIMEOUT:?}"),
                });
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    tracing::info!(%address, "listening");
                    pending.remove(&listener_id);
                }
                SwarmEvent::ListenerClosed { listener_id, addresses, reason } => {
                    if pending.contains(&listener_id) {
                        return Err(P2pError::Listen {
                            addr: addresses.first().cloned().unwrap_or_else(Multiaddr::empty),
                            reason: format!("{reason:?}"),
                        });
                    }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if pending.contains(&listener_id) {
                        return Err(P2pError::Listen {
                            addr: Multiaddr::empty(),
                            reason: error.to_string(),
                        });
                    }
                }
                other => handle_event(other),
            }
        }
    }
    Ok(())
}

fn handle_command(swarm: &mut Swarm<Behaviour>, command: SwarmCommand) {
    match command {
        SwarmCommand::Info(reply) => {
            let peer_id = *swarm.local_peer_id();
            let listen_addrs = swarm
                .listeners()
                .map(|addr| addr.clone().with(Protocol::P2p(peer_id)))
                .collect();
            let _ = reply.send(SwarmInfo {
                peer_id,
                listen_addrs,
                connected_peers: swarm.connected_peers().count(),
            });
        }
    }
}

fn handle_event(event: SwarmEvent<super::behaviour::BehaviourEvent>) {
    match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } => {
            tracing::debug!(%peer_id, "connection established");
        }
        SwarmEvent::ConnectionClosed { peer_id, .. } => {
            tracing::debug!(%peer_id, "connection closed");
        }
        SwarmEvent::NewListenAddr { address, .. } => tracing::info!(%address, "listening"),
        _ => {}
    }
}
