//! The account's devices: pairing this device (`DevicePaired` in the account log, signed by
//! the account key), and following the groups the account's other devices join or leave.
//!
//! A device made by `berty-node init --import` carries the `device/imported` node value;
//! only such a device pairs. Pairing writes one `DevicePaired` (subject: this device's
//! account-level key, data empty, the account key's signature over the account group key and
//! that key) and remembers its entry id in `device/paired`, so a second call writes nothing.

use std::collections::HashSet;

use super::groups::Joining;
use super::*;
use crate::crypto::sign_account_device;

/// Why DevicePair refuses a device that was not imported.
pub const NOT_IMPORTED: &str = "this device was not made by `init --import`; DevicePair pairs an \
     imported device (a device restored with `--restore` is the exported device itself and \
     needs no pairing)";

/// Records this device in the account log (`DevicePaired`), once.
#[derive(Message)]
#[rtype(result = "Result<Paired, Error>")]
pub struct PairDevice;

/// What [`PairDevice`] did.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// This device's account-level key (the event's subject).
    pub device_pk: VerifyingKey,
    /// The `DevicePaired` entry in the account log.
    pub event_id: EntryId,
    /// True when the device was paired by an earlier call (nothing was written).
    pub already: bool,
}

impl Handler<PairDevice> for AccountActor {
    // Atomic: two concurrent calls cannot both find no marker and both write.
    type Result = AtomicResponse<Self, Result<Paired, Error>>;

    fn handle(&mut self, _: PairDevice, _: &mut Self::Context) -> Self::Result {
        let values = self.values.clone();
        let account = self.account_store();
        let device_pk = self.keys.device_pk();
        let signature = sign_account_device(
            self.keys.account(),
            self.account_group.record.group_pk(),
            &device_pk,
        );
        let event = account_event(
            AccountEventType::DevicePaired,
            device_pk.to_bytes().to_vec(),
            Vec::new(),
            |e| e.device_signature = Some(signature),
        );
        AtomicResponse::new(Box::pin(
            async move {
                if values
                    .get(&ValueKey::DeviceImported.to_string())
                    .await?
                    .is_none()
                {
                    return Err(Error::FailedPrecondition(NOT_IMPORTED.into()));
                }
                let marker = ValueKey::DevicePaired.to_string();
                if let Some(id) = values.get(&marker).await? {
                    let event_id = EntryId::from_slice(&id).ok_or_else(|| {
                        Error::Internal("the stored DevicePaired entry id is malformed".into())
                    })?;
                    return Ok(Paired {
                        device_pk,
                        event_id,
                        already: true,
                    });
                }
                let event_id = send(&account, event).await?;
                values.put(&marker, event_id.as_bytes()).await?;
                Ok(Paired {
                    device_pk,
                    event_id,
                    already: false,
                })
            }
            .into_actor(self),
        ))
    }
}

/// Joins a group another device of the account joined (its `GroupJoined` came by
/// replication), without recording `GroupJoined` again.
#[derive(Message)]
#[rtype(result = "Result<[u8; 32], Error>")]
struct FollowJoin(Joining);

impl Handler<FollowJoin> for AccountActor {
    type Result = AtomicResponse<Self, Result<[u8; 32], Error>>;

    fn handle(&mut self, msg: FollowJoin, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.join(msg.0))
    }
}

/// Leaves a group another device of the account left, without recording `GroupLeft` again.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
struct FollowLeave([u8; 32]);

impl Handler<FollowLeave> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: FollowLeave, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.leave(msg.0, false))
    }
}

impl AccountActor {
    /// Follows the `GroupJoined` and `GroupLeft` events other devices of the account wrote:
    /// each becomes a join or leave here, in the order of the account log, through the
    /// mailbox (so they are serialised with every other account change). A group this device
    /// already knows is not joined again; one it already left stays left.
    pub(super) fn follow_other_devices(
        &mut self,
        joined: Vec<(GroupReference, Option<VerifyingKey>)>,
        left: Vec<[u8; 32]>,
        ctx: &mut Context<Self>,
    ) {
        let me = ctx.address();
        let mut joining = HashSet::new();
        for (reference, contact) in joined {
            let group_pk = reference.keys.group_pk().to_bytes();
            if self.group(&group_pk).is_some() || !joining.insert(group_pk) {
                continue;
            }
            let join = me.send(FollowJoin(Joining {
                reference,
                meta: Vec::new(),
                contact,
                record_event: false,
            }));
            ctx.spawn(join.into_actor(self).map(move |result, _, _| {
                let group = hex::encode(&group_pk[..8]);
                match result {
                    Ok(Ok(_)) => tracing::info!(%group, "joined a group another device joined"),
                    Ok(Err(e)) => {
                        tracing::warn!(%group, %e, "cannot join a group another device joined")
                    }
                    Err(_) => tracing::warn!(%group, "account stopped before joining"),
                }
            }));
        }
        for group_pk in left {
            // A group joined in this same batch is left after its join (the mailbox keeps
            // the order).
            let known = joining.contains(&group_pk)
                || self.group(&group_pk).is_some_and(|g| !g.record.left);
            if !known {
                continue;
            }
            let leave = me.send(FollowLeave(group_pk));
            ctx.spawn(leave.into_actor(self).map(move |result, _, _| {
                let group = hex::encode(&group_pk[..8]);
                match result {
                    Ok(Ok(())) => tracing::info!(%group, "left a group another device left"),
                    Ok(Err(e)) => {
                        tracing::warn!(%group, %e, "cannot leave a group another device left")
                    }
                    Err(_) => tracing::warn!(%group, "account stopped before leaving"),
                }
            }));
        }
    }
}
