//! The admin HTTP server (actix-web): health, readiness, Prometheus metrics, and the
//! token-protected `/admin/v1/` API.
//!
//! | route | auth | answer |
//! |---|---|---|
//! | `GET /healthz` | none | 200 while the process serves HTTP |
//! | `GET /readyz` | none | 200 when storage and the swarm answer, else 503 with the reason |
//! | `GET /metrics` | none | Prometheus text format |
//! | `GET /` and `/dashboard/*` | none | the operator's dashboard ([`dashboard`]; holds no data) |
//! | `GET /admin/v1/node` | admin token | peer id, addresses, version, uptime, storage, roles |
//! | `GET /admin/v1/peers` | admin token | connected peers: addresses, direct or relayed, agent, ping; refused peers |
//! | `GET /admin/v1/relay` | admin token | relay server state: reservations, circuits, limits |
//! | `GET /admin/v1/rendezvous` | admin token | rendezvous registrations (`?namespace=&after=&limit=`) |
//! | `GET /admin/v1/rendezvous/namespaces` | admin token | namespaces and their registration counts |
//! | `POST`/`DELETE /admin/v1/peers/{peer}/ban`, `POST /admin/v1/dial` | admin token | ban or unban a peer ([`peers`]); dial an address |
//! | `GET /admin/v1/stats/series` | admin token | the dashboard's live figures ([`stats`]) |
//! | `POST`/`GET /admin/v1/mirror/tokens`, `DELETE /admin/v1/mirror/tokens/{id}` | admin token | mirror tokens ([`mirror`]) |
//! | `GET /admin/v1/mirror/groups` | admin token | mirrored groups with their counters |
//!
//! Every route, its input and its answers: `docs/admin-api.md`.
//!
//! `/admin/v1/` routes answer 404 when no `admin.token` is configured, and 401 without the
//! right token, before their input is read. `/healthz`, `/readyz` and `/metrics` answer `HEAD`
//! too.

pub mod dashboard;
pub mod mirror;
pub mod peers;
pub mod routes;
pub mod stats;
pub mod status;

use std::{net::SocketAddr, sync::Arc};

use actix_web::{
    body::MessageBody,
    dev::{ServerHandle, ServiceRequest, ServiceResponse},
    middleware::{from_fn, Next},
    web, App, HttpServer,
};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::{metrics::Metrics, p2p::SwarmHandle, storage::Storage};

/// Everything the routes need; shared by every worker.
#[derive(Clone)]
pub struct AdminState {
    /// The one metrics registry.
    pub registry: Arc<Registry>,
    /// Metric handles (readiness updates `storage_up`).
    pub metrics: Metrics,
    /// Storage: `/readyz` answers from its health (probed in the background), which also
    /// drives the `storage_up` gauge.
    pub storage: Arc<dyn Storage>,
    /// The swarm, asked by `/readyz` and `/admin/v1/node`.
    pub swarm: SwarmHandle,
    /// Bearer token for `/admin/v1/`; `None` turns those routes off.
    pub token: Option<String>,
    /// The replicator (peer actors' state), when replication runs.
    pub replicator: Option<actix::Addr<crate::replication::Replicator>>,
    /// This node's peer id (a node never bans itself).
    pub peer_id: libp2p::PeerId,
    /// Default ban length (`p2p.penalty_secs`).
    pub penalty: std::time::Duration,
    /// The rendezvous server, when `rendezvous.enabled`.
    pub rendezvous: Option<crate::rendezvous::RendezvousServer>,
    /// The mirror, when `mirror.enabled`.
    pub mirror: Option<MirrorAdmin>,
    /// `sqlite` or `postgres`.
    pub storage_backend: &'static str,
    /// When the node started (its uptime).
    pub started: std::time::Instant,
    /// The dashboard's live figures, sampled by the server every `admin.stats_period_ms`.
    pub stats: stats::Stats,
}

/// What the admin routes need of the mirror.
#[derive(Clone)]
pub struct MirrorAdmin {
    /// The mirror actor (told to reload after a revocation).
    pub actor: actix::Addr<crate::mirror::MirrorActor>,
    /// `mirror.default_max_groups`: a token's group quota unless its issue says otherwise.
    pub default_max_groups: u64,
    /// `mirror.default_max_bytes`: a token's byte quota unless its issue says otherwise.
    pub default_max_bytes: u64,
}

/// A running admin server.
pub struct AdminServer {
    /// The bound address (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Stops the server.
    pub handle: ServerHandle,
    /// Ends when the server stops.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `addr` and serves the admin routes. Must run inside the actix system.
pub fn serve(addr: SocketAddr, state: AdminState) -> std::io::Result<AdminServer> {
    let listener = std::net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    tokio::spawn(follow_storage_health(
        state.storage.health(),
        state.metrics.storage_up.clone(),
    ));
    tokio::spawn(follow_probe_durations(
        state.storage.health().probe_durations(),
        state.metrics.storage_probe_seconds.0.clone(),
    ));
    let sampler = state.stats.clone().sample(state.registry.clone());
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(in_span))
            .app_data(data.clone())
            .configure(routes::configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    let handle = server.handle();
    // The sampler lives in the server's task: it stops with the server, and should it panic,
    // the task fails and the node stops naming the admin server.
    let task = actix::spawn(async move {
        tokio::select! {
            result = server => result,
            () = sampler => Err(std::io::Error::other("the stats sampler stopped")),
        }
    });
    Ok(AdminServer { addr, handle, task })
}

/// Runs each request in a span naming its method and route pattern
/// (`/admin/v1/peers/{peer}/ban`: the pattern, not the peer id).
async fn in_span<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let route = req
        .resource_map()
        .match_pattern(req.path())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("admin", method = %req.method(), route);
    next.call(req).instrument(span).await
}

/// Keeps the `storage_up` gauge equal to the storage's health (1 up, 0 down) as it changes;
/// ends with the storage.
async fn follow_storage_health(
    health: crate::storage::StorageHealth,
    storage_up: prometheus_client::metrics::gauge::Gauge,
) {
    let mut changes = health.subscribe();
    loop {
        let up = matches!(*changes.borrow_and_update(), crate::storage::Health::Up);
        storage_up.set(i64::from(up));
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Observes each storage probe's round trip in the `storage_probe_seconds` histogram; ends
/// with the storage.
async fn follow_probe_durations(
    mut durations: tokio::sync::watch::Receiver<Option<std::time::Duration>>,
    histogram: prometheus_client::metrics::histogram::Histogram,
) {
    while durations.changed().await.is_ok() {
        if let Some(duration) = *durations.borrow_and_update() {
            histogram.observe(duration.as_secs_f64());
        }
    }
}
