//! Answering a member's mirror request: the checks (role enabled, token, creation proof,
//! quotas) and the registration in storage. The database decides; the actor reloads after.

use crate::{
    error::Error,
    p2p::mirror_message::{MirrorRefusal, MirrorRegistration, MirrorRequest, MirrorResponse},
    storage::{
        mirror::{GroupRegistration, NewMirroredGroup},
        Storage, StorageError,
    },
};

use super::tokens;

/// Answers one request (the swarm hands requests to the mirror only when the role runs; it
/// refuses them as disabled otherwise); `true` in the second place when the mirrored groups
/// changed.
pub async fn answer(storage: &dyn Storage, request: MirrorRequest) -> (MirrorResponse, bool) {
    let result = match request {
        MirrorRequest::Register(registration) => register(storage, *registration).await,
        MirrorRequest::Unregister { group_pk, token } => {
            unregister(storage, &group_pk, &token).await
        }
    };
    match result {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(%e, "cannot answer a mirror request");
            (
                MirrorResponse::refused(MirrorRefusal::Unavailable, e.to_string()),
                false,
            )
        }
    }
}

async fn register(
    storage: &dyn Storage,
    registration: MirrorRegistration,
) -> Result<(MirrorResponse, bool), StorageError> {
    let MirrorRegistration {
        group_pk,
        signing_pk,
        link_key,
        creation_proof,
        token,
    } = registration;
    let Some(usage) = storage
        .mirror()
        .token_by_hash(&tokens::hash(&token))
        .await?
    else {
        return Ok((refused(MirrorRefusal::BadToken), false));
    };
    if creation_proof
        .verify(&group_pk, &signing_pk, &link_key)
        .is_err()
    {
        return Ok((refused(MirrorRefusal::BadProof), false));
    }
    if usage.bytes >= usage.max_bytes {
        let message = format!(
            "token {} holds {} of its {} bytes",
            usage.id, usage.bytes, usage.max_bytes
        );
        return Ok((
            MirrorResponse::refused(MirrorRefusal::ByteQuota, message),
            false,
        ));
    }
    let group = NewMirroredGroup {
        group_pk: group_pk.to_bytes(),
        signing_pk: signing_pk.to_bytes(),
        link_key: *link_key.as_bytes(),
        creation_proof: creation_proof.encode(),
        token_id: usage.id.clone(),
    };
    Ok(
        match storage
            .mirror()
            .register_group(&group, crate::clock::unix_now())
            .await?
        {
            GroupRegistration::Registered => (MirrorResponse::Done { already: false }, true),
            GroupRegistration::AlreadyMirrored => (MirrorResponse::Done { already: true }, false),
            GroupRegistration::GroupQuota => {
                let message = format!(
                    "token {} mirrors {} of its {} groups",
                    usage.id, usage.groups, usage.max_groups
                );
                (
                    MirrorResponse::refused(MirrorRefusal::GroupQuota, message),
                    false,
                )
            }
            GroupRegistration::UnknownToken => (refused(MirrorRefusal::BadToken), false),
        },
    )
}

async fn unregister(
    storage: &dyn Storage,
    group_pk: &[u8; 32],
    token: &str,
) -> Result<(MirrorResponse, bool), StorageError> {
    let Some(usage) = storage.mirror().token_by_hash(&tokens::hash(token)).await? else {
        return Ok((refused(MirrorRefusal::BadToken), false));
    };
    Ok(
        if storage
            .mirror()
            .unregister_group(group_pk, &usage.id)
            .await?
        {
            (MirrorResponse::Done { already: false }, true)
        } else {
            (refused(MirrorRefusal::NotFound), false)
        },
    )
}

/// A refusal whose reason says it all (the requester prints the reason itself).
fn refused(reason: MirrorRefusal) -> MirrorResponse {
    MirrorResponse::refused(reason, "")
}

/// The client-side error for a mirror's refusal.
pub fn refusal_error(reason: MirrorRefusal, message: &str) -> Error {
    let text = if message.is_empty() {
        format!("the mirror refused: {reason}")
    } else {
        format!("the mirror refused: {reason} ({message})")
    };
    match reason {
        MirrorRefusal::BadToken => Error::PermissionDenied(text),
        MirrorRefusal::GroupQuota | MirrorRefusal::ByteQuota => Error::ResourceExhausted(text),
        MirrorRefusal::Disabled => Error::FailedPrecondition(text),
        MirrorRefusal::BadProof | MirrorRefusal::Malformed => Error::InvalidArgument(text),
        MirrorRefusal::Unavailable => Error::Unavailable(text),
        MirrorRefusal::NotFound => Error::NotFound(text),
    }
}
