//! Building the libp2p `Swarm` and starting the task that owns it (it is `!Sync`).

use std::collections::HashMap;

use libp2p::{
    core::{transport::ListenerId, upgrade},
    identity::Keypair,
    noise, quic, tcp, yamux, Multiaddr, Swarm, SwarmBuilder, Transport,
};
use prometheus_client::registry::Registry;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use super::{
    behaviour::Behaviour,
    error::P2pError,
    handle::SwarmHandle,
    listen::{self, Expected},
    network_event::NetworkEvent,
    relay_bytes::{CountingMuxer, CountingUpgrade},
    settings::P2pSettings,
    task::SwarmTask,
};
use crate::metrics::P2pMetrics;

/// Depth of the command channel.
const COMMAND_QUEUE: usize = 256;

/// Builds the swarm, binds every listen address, announces the configured external addresses,
/// dials the bootstrap peers, then runs the swarm in its own task until `shutdown` turns true
/// (or every handle is dropped). Returns once the listen addresses are known.
///
/// libp2p's own metrics (bandwidth, swarm, identify, kad, ping, relay, dcutr) are registered in
/// `registry` under `libp2p_`; ours update `metrics`. Connections, identify results, sync
/// requests and protocol violations go to `events` (never waited on: dropped when full).
/// Every direct connection's muxer (yamux on TCP, QUIC's own) counts the bytes the relay
/// server forwards into `metrics.relay_bytes` (`relay_bytes`).
pub async fn spawn(
    keypair: Keypair,
    settings: P2pSettings,
    registry: &mut Registry,
    metrics: P2pMetrics,
    events: mpsc::Sender<NetworkEvent>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SwarmHandle, JoinHandle<()>), P2pError> {
    let mut swarm = build(keypair.clone(), &settings, registry, &metrics)?;
    let peer_id = *swarm.local_peer_id();
    let streams = swarm.behaviour().streams.new_control();
    let mut pending: HashMap<ListenerId, (Multiaddr, Expected)> = HashMap::new();
    for addr in &settings.listen {
        listen::check_tcp_port_free(addr)?;
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| P2pError::Listen {
                addr: addr.clone(),
                reason: crate::error::one_line(&e),
            })?;
        pending.insert(id, (addr.clone(), Expected::for_listen_addr(addr)));
    }
    let libp2p_metrics = libp2p::metrics::Metrics::new(registry);
    let mut task = SwarmTask::new(swarm, settings, metrics, libp2p_metrics, events, keypair);
    task.wait_for_listeners(pending).await?;
    task.start_networking();

    let (commands, inbox) = mpsc::channel(COMMAND_QUEUE);
    let join = tokio::spawn(task.run(inbox, shutdown));
    Ok((SwarmHandle::new(peer_id, commands, streams), join))
}

fn build(
    keypair: Keypair,
    settings: &P2pSettings,
    registry: &mut Registry,
    metrics: &P2pMetrics,
) -> Result<Swarm<Behaviour>, P2pError> {
    let transport_err = |e: &dyn std::fmt::Display| P2pError::Transport(e.to_string());
    let idle = settings.timings.idle_connection;
    let (tcp_bytes, quic_bytes) = (metrics.relay_bytes.clone(), metrics.relay_bytes.clone());
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            || CountingUpgrade::new(yamux::Config::default(), tcp_bytes),
        )
        .map_err(|e| transport_err(&e))?
        // `with_quic()`, its muxer wrapped.
        .with_other_transport(|key| {
            quic::tokio::Transport::new(quic::Config::new(key))
                .map(move |(peer, muxer), _| (peer, CountingMuxer::new(muxer, quic_bytes)))
        })
        .map_err(|e| transport_err(&e))?
        .with_dns()
        .map_err(|e| transport_err(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| transport_err(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key, relay_client| Behaviour::new(key, relay_client, settings, metrics))
        .map_err(|e| transport_err(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(idle)
                // Outbound streams with one protocol send their first bytes with the
                // proposal instead of a round trip later (docs/decisions.md, "Lazy
                // protocol negotiation on outbound streams").
                .with_substream_upgrade_protocol_override(upgrade::Version::V1Lazy)
        })
        .build())
}
