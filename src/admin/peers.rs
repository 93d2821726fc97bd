//! The peers routes: who is connected and what their peer actors know, who is refused, and
//! banning (a penalty) and unbanning.

use std::{collections::HashMap, time::Duration, time::Instant};

use actix_web::{web, HttpResponse};
use libp2p::PeerId;
use serde_json::json;

use super::{routes::p2p_error, AdminState};
use crate::{
    defaults::MAX_DURATION_SECS,
    p2p::RefusedPeer,
    replication::{PeerState, PeerStates},
};

/// `GET /admin/v1/peers`: connected peers, their connections (direct or relayed), the agent
/// they announced, the last ping round trip, and what their peer actor knows: protocols,
/// listen addresses, how many groups they replicate with us, entries received, penalty; then
/// the peers refused now (banned, or held off by a test control).
pub async fn connected_peers(state: web::Data<AdminState>) -> HttpResponse {
    let actors: HashMap<String, PeerState> = match &state.replicator {
        Some(replicator) => replicator
            .send(PeerStates)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|s| (s.peer_id.clone(), s))
            .collect(),
        None => HashMap::new(),
    };
    let (peers, refused) = match (
        state.swarm.connected_peers().await,
        state.swarm.refused_peers().await,
    ) {
        (Ok(peers), Ok(refused)) => (peers, refused),
        (Err(e), _) | (_, Err(e)) => {
            return HttpResponse::ServiceUnavailable().json(json!({ "error": e.to_string() }))
        }
    };
    let now = Instant::now();
    HttpResponse::Ok().json(json!({
        "peers": peers.iter().map(|p| json!({
            "peer_id": p.peer_id.to_string(),
            "agent_version": p.agent_version,
            "rtt_ms": p.rtt.map(|d| d.as_secs_f64() * 1000.0),
            "connections": p.connections.iter().map(|c| json!({
                "remote_addr": c.remote_addr.to_string(),
                "route": c.route.label(),
                "direction": if c.inbound { "inbound" } else { "outbound" },
            })).collect::<Vec<_>>(),
            "replication": actors.get(&p.peer_id.to_string()),
        })).collect::<Vec<_>>(),
        "refused": refused.iter().map(|r| refused_json(r, now)).collect::<Vec<_>>(),
    }))
}

fn refused_json(refused: &RefusedPeer, now: Instant) -> serde_json::Value {
    json!({
        "peer_id": refused.peer.to_string(),
        "banned_secs_left": refused
            .penalised_until
            .map(|until| until.saturating_duration_since(now).as_secs()),
        "partitioned": refused.partitioned,
        "direct_refused": refused.direct_refused,
    })
}

fn bad_peer(peer: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": format!("not a peer id: {peer}") }))
}

/// Query of `POST /admin/v1/peers/{peer}/ban`.
#[derive(serde::Deserialize)]
pub struct BanQuery {
    /// How long, in seconds (default: `p2p.penalty_secs`).
    secs: Option<u64>,
}

/// `POST /admin/v1/peers/{peer}/ban[?secs=N]`: disconnects the peer and refuses it.
pub async fn ban_peer(
    state: web::Data<AdminState>,
    peer: web::Path<String>,
    query: web::Query<BanQuery>,
) -> HttpResponse {
    let Ok(peer) = peer.parse::<PeerId>() else {
        return bad_peer(&peer);
    };
    if peer == state.peer_id {
        return HttpResponse::BadRequest()
            .json(json!({ "error": "a node cannot ban its own peer id" }));
    }
    let duration = match query.secs {
        None => state.penalty,
        Some(secs @ 1..=MAX_DURATION_SECS) => Duration::from_secs(secs),
        Some(secs) => return HttpResponse::BadRequest().json(json!({
            "error": format!("secs must be from 1 to {MAX_DURATION_SECS} (ten years), not {secs}")
        })),
    };
    match state.swarm.penalise(peer, duration).await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "peer_id": peer.to_string(),
            "banned_secs": duration.as_secs(),
        })),
        Err(e) => p2p_error(&e),
    }
}

/// `DELETE /admin/v1/peers/{peer}/ban`: lifts the peer's ban (a penalty, given by this route
/// or for invalid data), so it may connect again; 404 when it serves none.
pub async fn unban_peer(state: web::Data<AdminState>, peer: web::Path<String>) -> HttpResponse {
    let Ok(peer) = peer.parse::<PeerId>() else {
        return bad_peer(&peer);
    };
    match state.swarm.forgive(peer).await {
        Ok(true) => {
            HttpResponse::Ok().json(json!({ "peer_id": peer.to_string(), "banned": false }))
        }
        Ok(false) => {
            HttpResponse::NotFound().json(json!({ "error": format!("peer {peer} is not banned") }))
        }
        Err(e) => p2p_error(&e),
    }
}
