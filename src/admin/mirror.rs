//! The mirror's admin routes: tokens (issue, list, revoke) and the mirrored groups.
//!
//! A token is shown once, in the answer that issues it; the node keeps only its SHA-256.

use actix_web::{web, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::Deserialize;
use serde_json::json;

use super::{status::http_status, AdminState};
use crate::{
    clock::unix_now,
    error::Error,
    mirror::{tokens, Reload},
    storage::mirror::{NewToken, TokenUsage},
};

/// Longest token label.
const MAX_LABEL_BYTES: usize = 200;

/// The body of `POST /admin/v1/mirror/tokens` (every field optional; an empty body is `{}`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// Groups the token may mirror (default `mirror.default_max_groups`).
    pub max_groups: Option<u64>,
    /// Bytes the token's groups may hold (default `mirror.default_max_bytes`).
    pub max_bytes: Option<u64>,
    /// A name for the operator.
    pub label: Option<String>,
}

fn error(err: &Error) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(http_status(err))
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({ "error": err.to_string() }))
}

fn no_mirror() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": "this node runs no mirror (mirror.enabled = false, or p2p.replication = false)"
    }))
}

/// The largest quota a token can hold (stored as a signed 64-bit integer).
const MAX_QUOTA: u64 = i64::MAX as u64;

fn token_json(token: &TokenUsage) -> serde_json::Value {
    json!({
        "id": token.id,
        "label": token.label,
        "max_groups": token.max_groups,
        "max_bytes": token.max_bytes,
        "created_at": token.created_at,
        "groups": token.groups,
        "bytes": token.bytes,
    })
}

/// `POST /admin/v1/mirror/tokens`: issues a token; `201` with its id and the token (shown
/// this once).
pub async fn issue_token(state: web::Data<AdminState>, body: web::Bytes) -> HttpResponse {
    let Some(mirror) = &state.mirror else {
        return no_mirror();
    };
    let request: IssueToken = if body.iter().all(u8::is_ascii_whitespace) {
        IssueToken::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                return error(&Error::InvalidArgument(format!("token request: {e}")));
            }
        }
    };
    let label = request.label.unwrap_or_default();
    if label.len() > MAX_LABEL_BYTES {
        return error(&Error::InvalidArgument(format!(
            "label: at most {MAX_LABEL_BYTES} bytes"
        )));
    }
    let issued = tokens::issue();
    let token = NewToken {
        id: issued.id.clone(),
        token_hash: tokens::hash(&issued.token),
        label,
        max_groups: request
            .max_groups
            .unwrap_or(mirror.default_max_groups)
            .min(MAX_QUOTA),
        max_bytes: request
            .max_bytes
            .unwrap_or(mirror.default_max_bytes)
            .min(MAX_QUOTA),
        created_at: unix_now(),
    };
    if let Err(e) = state.storage.mirror().insert_token(&token).await {
        return error(&e.into());
    }
    tracing::info!(id = %token.id, label = %token.label, "mirror token issued");
    HttpResponse::Created().json(json!({
        "id": token.id,
        "token": issued.token,
        "label": token.label,
        "max_groups": token.max_groups,
        "max_bytes": token.max_bytes,
    }))
}

/// `GET /admin/v1/mirror/tokens`: every live token with its quotas and usage (never the token).
pub async fn list_tokens(state: web::Data<AdminState>) -> HttpResponse {
    if state.mirror.is_none() {
        return no_mirror();
    }
    match state.storage.mirror().tokens().await {
        Ok(tokens) => HttpResponse::Ok().json(tokens.iter().map(token_json).collect::<Vec<_>>()),
        Err(e) => error(&e.into()),
    }
}

/// `DELETE /admin/v1/mirror/tokens/{id}`: revokes a token; its groups stop being served and
/// their data is deleted.
pub async fn revoke_token(state: web::Data<AdminState>, id: web::Path<String>) -> HttpResponse {
    let Some(mirror) = &state.mirror else {
        return no_mirror();
    };
    match state.storage.mirror().revoke_token(&id).await {
        Ok(Some(groups)) => {
            mirror.actor.do_send(Reload);
            tracing::info!(id = %id, groups = groups.len(), "mirror token revoked");
            HttpResponse::Ok().json(json!({
                "id": id.as_str(),
                "groups_deleted": groups.iter().map(|g| URL_SAFE_NO_PAD.encode(g)).collect::<Vec<_>>(),
            }))
        }
        Ok(None) => error(&Error::NotFound(format!("no mirror token {id}"))),
        Err(e) => error(&e.into()),
    }
}

/// `GET /admin/v1/mirror/groups`: every mirrored group with its token, entries, bytes and last
/// activity.
pub async fn list_groups(state: web::Data<AdminState>) -> HttpResponse {
    if state.mirror.is_none() {
        return no_mirror();
    }
    match state.storage.mirror().groups().await {
        Ok(groups) => HttpResponse::Ok().json(
            groups
                .iter()
                .map(|g| {
                    json!({
                        "group": URL_SAFE_NO_PAD.encode(g.group_pk),
                        "token_id": g.token_id,
                        "entries": g.entries,
                        "bytes": g.bytes,
                        "registered_at": g.registered_at,
                        "last_activity": g.last_activity,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => error(&e.into()),
    }
}
