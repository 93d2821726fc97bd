//! The admin routes.

use actix_web::{
    body::BoxBody,
    dev::{ServiceRequest, ServiceResponse},
    guard,
    http::header,
    middleware::{from_fn, Next},
    web, HttpRequest, HttpResponse,
};
use libp2p::{Multiaddr, PeerId};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::{dashboard, mirror, peers, stats, AdminState};
// The ban's query lives with the peers routes; the fuzz targets and decoder properties read
// every admin query from here.
pub use super::peers::BanQuery;
use crate::{defaults, metrics, p2p::P2pError};

/// Registers every route. Every `/admin/v1/` route checks the bearer token first, before its
/// path, query or body is read, so an unauthenticated caller learns nothing about its input.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|err, _| bad_input(err)))
        .app_data(web::QueryConfig::default().error_handler(|err, _| bad_input(err)))
        .route("/healthz", get_or_head().to(healthz))
        .route("/readyz", get_or_head().to(readyz))
        .route("/metrics", get_or_head().to(metrics_text))
        .configure(dashboard::configure)
        .service(
            web::scope("/admin/v1")
                .wrap(from_fn(require_token))
                .route("/node", web::get().to(node_info))
                .route("/peers", web::get().to(peers::connected_peers))
                .route("/peers/{peer}/ban", web::post().to(peers::ban_peer))
                .route("/peers/{peer}/ban", web::delete().to(peers::unban_peer))
                .route("/dial", web::post().to(dial))
                .route("/test/{control}/{peer}", web::post().to(test_control))
                .route("/relay", web::get().to(relay_stats))
                .route("/rendezvous", web::get().to(rendezvous_registrations))
                .route(
                    "/rendezvous/namespaces",
                    web::get().to(rendezvous_namespaces),
                )
                .route("/stats/series", web::get().to(stats::series))
                .route("/mirror/tokens", web::post().to(mirror::issue_token))
                .route("/mirror/tokens", web::get().to(mirror::list_tokens))
                .route(
                    "/mirror/tokens/{id}",
                    web::delete().to(mirror::revoke_token),
                )
                .route("/mirror/groups", web::get().to(mirror::list_groups)),
        );
}

/// A route answering `GET` and `HEAD` (probes and load balancers use either).
fn get_or_head() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A malformed query or body, answered as JSON like every other admin error.
fn bad_input(err: impl std::fmt::Display) -> actix_web::Error {
    let response = HttpResponse::BadRequest().json(json!({ "error": err.to_string() }));
    actix_web::error::InternalError::from_response(err.to_string(), response).into()
}

/// The middleware in front of `/admin/v1/`: 404 when the admin API is off, 401 without the
/// right bearer token; only then does the route run.
async fn require_token(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let denied = match req.app_data::<web::Data<AdminState>>() {
        Some(state) => check_token(state, req.request()),
        None => Some(
            HttpResponse::InternalServerError().json(json!({ "error": "admin state missing" })),
        ),
    };
    match denied {
        Some(response) => Ok(req.into_response(response)),
        None => next.call(req).await,
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Storage readiness comes from its health state (probed in the background), so this answers
/// at once even while the database does not.
async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    let mut problems = Vec::new();
    let health = state.storage.health();
    if let Err(e) = health.check() {
        problems.push(format!("storage: {e}"));
    }
    state.metrics.storage_up.set(i64::from(health.is_up()));
    // A swarm task too busy to answer within a second is not ready either; a probe must
    // get its answer before its own deadline.
    match tokio::time::timeout(defaults::READY_SWARM_TIMEOUT, state.swarm.info()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("swarm: {e}")),
        Err(_) => problems.push(format!(
            "swarm: no answer within {} ms",
            defaults::READY_SWARM_TIMEOUT.as_millis()
        )),
    }
    if problems.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        tracing::warn!(?problems, "not ready");
        HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "not ready", "problems": problems }))
    }
}

async fn metrics_text(state: web::Data<AdminState>) -> HttpResponse {
    match metrics::render(&state.registry) {
        Ok(body) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
            .body(body),
        Err(e) => HttpResponse::InternalServerError().body(format!("encoding metrics: {e}")),
    }
}

/// `None` when the request may proceed, else the response to send.
fn check_token(state: &AdminState, req: &HttpRequest) -> Option<HttpResponse> {
    let Some(token) = &state.token else {
        return Some(HttpResponse::NotFound().json(json!({
            "error": "admin API is off: set admin.token or admin.token_file"
        })));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        // `ct_eq` of slices of different lengths is false.
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => None,
        _ => Some(
            HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(json!({ "error": "missing or wrong bearer token" })),
        ),
    }
}

/// `GET /admin/v1/node`: identity, addresses, uptime, storage and its health, and which
/// roles run and serve.
async fn node_info(state: web::Data<AdminState>) -> HttpResponse {
    let (info, relay) = match (state.swarm.info().await, state.swarm.relay_stats().await) {
        (Ok(info), Ok(relay)) => (info, relay),
        (Err(e), _) | (_, Err(e)) => {
            return HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
        }
    };
    let addrs =
        |addrs: &[libp2p::Multiaddr]| addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let health = state.storage.health();
    HttpResponse::Ok().json(json!({
        "peer_id": info.peer_id.to_string(),
        "listen_addrs": addrs(&info.listen_addrs),
        "external_addrs": addrs(&info.external_addrs),
        "connected_peers": info.connected_peers,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "storage": {
            "backend": state.storage_backend,
            "database": health.database(),
            "up": health.is_up(),
            "problem": health.check().err().map(|e| e.to_string()),
        },
        "roles": {
            "relay": {
                "enabled": relay.enabled,
                "serving": relay.serving,
                "reason": relay.refusal(),
            },
            "rendezvous": { "enabled": state.rendezvous.is_some() },
            "mirror": { "enabled": state.mirror.is_some() },
            "mdns": { "enabled": info.mdns },
        },
    }))
}

/// The swarm's errors: test controls off 403, stopped 503, anything else 502.
pub(super) fn p2p_error(e: &P2pError) -> HttpResponse {
    match e {
        P2pError::TestControlsDisabled => {
            HttpResponse::Forbidden().json(json!({ "error": e.to_string() }))
        }
        P2pError::Stopped => {
            HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
        }
        _ => HttpResponse::BadGateway().json(json!({ "error": e.to_string() })),
    }
}

fn parse_peer(peer: &str) -> Option<PeerId> {
    peer.parse().ok()
}

fn bad_peer(peer: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": format!("not a peer id: {peer}") }))
}

/// Body of `POST /admin/v1/dial`.
#[derive(serde::Deserialize)]
pub struct DialBody {
    /// A multiaddr, with or without `/p2p/<peer id>`.
    addr: String,
}

/// `POST /admin/v1/dial` with `{"addr": "..."}`: connects to a peer; answers with its id.
async fn dial(state: web::Data<AdminState>, body: web::Json<DialBody>) -> HttpResponse {
    let addr: Multiaddr = match body.addr.parse() {
        Ok(addr) => addr,
        Err(_) => {
            return HttpResponse::BadRequest()
                .json(json!({ "error": format!("not a multiaddr: {}", body.addr) }))
        }
    };
    match state.swarm.dial(addr).await {
        Ok(peer) => HttpResponse::Ok().json(json!({ "peer_id": peer.to_string() })),
        Err(e) => p2p_error(&e),
    }
}

/// `POST /admin/v1/test/{partition|refuse_direct|heal}/{peer}`: the swarm's test controls
/// (403 unless `p2p.test_controls`).
async fn test_control(
    state: web::Data<AdminState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (control, peer) = path.into_inner();
    let Some(peer) = parse_peer(&peer) else {
        return bad_peer(&peer);
    };
    let result = match control.as_str() {
        "partition" => state.swarm.partition(peer).await,
        "refuse_direct" => state.swarm.refuse_direct(peer).await,
        "heal" => state.swarm.heal(peer).await,
        other => {
            return HttpResponse::NotFound()
                .json(json!({ "error": format!("no test control {other}") }))
        }
    };
    match result {
        Ok(()) => {
            HttpResponse::Ok().json(json!({ "control": control, "peer_id": peer.to_string() }))
        }
        Err(e) => p2p_error(&e),
    }
}

/// `GET /admin/v1/relay`: the circuit relay server: on or off, serving or not (it needs a
/// confirmed external address) and why not, the confirmed external addresses, reservations
/// and circuits now and since start, and the bytes relayed since start.
async fn relay_stats(state: web::Data<AdminState>) -> HttpResponse {
    match state.swarm.relay_stats().await {
        Ok(stats) => HttpResponse::Ok().json(json!({
            "enabled": stats.enabled,
            "serving": stats.serving,
            "reason": stats.refusal(),
            "external_addresses": stats.external_addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "reserved_peers": stats.reserved_peers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "active_reservations": stats.active_reservations,
            "active_circuits": stats.active_circuits,
            "reservations_accepted": stats.reservations_accepted,
            "reservations_renewed": stats.reservations_renewed,
            "reservations_denied": stats.reservations_denied,
            "circuits_accepted": stats.circuits_accepted,
            "circuits_denied": stats.circuits_denied,
            "bytes_relayed": stats.bytes_relayed,
        })),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() })),
    }
}

fn no_rendezvous() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "error": "this node is no rendezvous server (rendezvous.enabled = false)" }))
}

/// `GET /admin/v1/rendezvous/namespaces`: the namespaces holding unexpired registrations,
/// each with how many, the fullest first (at most 1000).
async fn rendezvous_namespaces(state: web::Data<AdminState>) -> HttpResponse {
    let Some(server) = &state.rendezvous else {
        return no_rendezvous();
    };
    match (
        server.namespaces(defaults::RENDEZVOUS_NAMESPACES).await,
        server.count().await,
    ) {
        (Ok(namespaces), Ok(count)) => HttpResponse::Ok().json(json!({
            "registrations_total": count,
            "namespaces": namespaces.iter().map(|(namespace, registrations)| json!({
                "namespace": namespace,
                "registrations": registrations,
            })).collect::<Vec<_>>(),
        })),
        (Err(e), _) | (_, Err(e)) => {
            HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
        }
    }
}

/// Query of `GET /admin/v1/rendezvous`.
#[derive(serde::Deserialize)]
pub struct RendezvousQuery {
    /// Only this namespace (default: every namespace).
    namespace: Option<String>,
    /// Registrations with an id above this one (paging: the last id of the previous page).
    after: Option<u64>,
    /// Page size (default and most: 1000).
    limit: Option<u32>,
}

/// `GET /admin/v1/rendezvous[?namespace=..&after=..&limit=..]`: the rendezvous server's
/// unexpired registrations in id order (404 when `rendezvous.enabled` is off).
async fn rendezvous_registrations(
    state: web::Data<AdminState>,
    query: web::Query<RendezvousQuery>,
) -> HttpResponse {
    let Some(server) = &state.rendezvous else {
        return no_rendezvous();
    };
    let limit = query
        .limit
        .unwrap_or(defaults::RENDEZVOUS_PAGE)
        .clamp(1, defaults::RENDEZVOUS_PAGE);
    let page = server
        .registrations(query.namespace.as_deref(), query.after.unwrap_or(0), limit)
        .await;
    let count = server.count().await;
    match (page, count) {
        (Ok(page), Ok(count)) => HttpResponse::Ok().json(json!({
            "registrations_total": count,
            "registrations": page.iter().map(|r| json!({
                "id": r.id,
                "namespace": r.namespace,
                "peer_id": r.peer_id.to_string(),
                "addresses": r.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "record_format": format!("{:?}", r.format).to_lowercase(),
                "ttl_secs": r.ttl_secs,
            })).collect::<Vec<_>>(),
        })),
        (Err(e), _) | (_, Err(e)) => {
            HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
        }
    }
}
