//! This device's chain key shared with the members it meets, and what remote metadata taught.

use super::*;

/// The metadata write sharing `chain` (its key and counter) of this device with one member,
/// sealed to that member's key.
pub(super) fn chain_key_share(
    group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
    recipient: &VerifyingKey,
    chain: &SenderChain,
) -> Result<LocalWrite, Error> {
    let sealed_chain_key = seal_chain_key(
        group_pk,
        device_pk,
        recipient,
        chain.chain_key(),
        chain.counter(),
        &mut OsRng,
    )
    .map_err(|e| Error::crypto("sealing the chain key", e))?;
    Ok(LocalWrite::metadata(MetadataEvent::ChainKey(
        ChainKeyShare {
            recipient: *recipient,
            sealed_chain_key,
        },
    )))
}

/// Shares `chain` (this device's first chain state in `group_pk`) with each of `members` it
/// was not shared with yet (the `shared/` markers), one metadata write per member.
pub(super) async fn share_chain(
    values: &SealedValues,
    metadata: &Addr<GroupStoreActor>,
    group_pk: &VerifyingKey,
    device_pk: &VerifyingKey,
    chain: &SenderChain,
    members: Vec<[u8; 32]>,
) -> Result<(), Error> {
    for member in members {
        let marker = ValueKey::SharedChain {
            group_pk: *group_pk.as_bytes(),
            member_pk: member,
        }
        .to_string();
        if values.get(&marker).await?.is_some() {
            continue;
        }
        let Ok(member_pk) = crate::crypto::parse_public_key(&member) else {
            continue;
        };
        let write = chain_key_share(group_pk, device_pk, &member_pk, chain)?;
        send(metadata, write).await?;
        values.put(&marker, &[1]).await?;
    }
    Ok(())
}

/// The members the group's metadata taught this device (the `member/` bindings), other than
/// `own_member`, each once.
pub(super) async fn known_members(
    values: &SealedValues,
    group_pk: &VerifyingKey,
    own_member: &VerifyingKey,
) -> Result<Vec<[u8; 32]>, Error> {
    let bindings = values
        .list(ValuePrefix::Members {
            group_pk: group_pk.to_bytes(),
        })
        .await?;
    let mut members: Vec<[u8; 32]> = bindings
        .into_iter()
        .filter_map(|(_, member)| <[u8; 32]>::try_from(member).ok())
        .filter(|member| member != own_member.as_bytes())
        .collect();
    members.sort_unstable();
    members.dedup();
    Ok(members)
}

impl AccountActor {
    /// Shares this device's chain key (from its first message on, so the whole history
    /// reads) with members seen for the first time, once per member.
    fn share_chain_key(
        &mut self,
        group_pk: &[u8; 32],
        members: Vec<[u8; 32]>,
    ) -> ResponseFuture<Result<(), Error>> {
        let group = match self.joined_group(group_pk) {
            Ok(group) => group,
            // Left or unknown: nothing to share.
            Err(_) => return Box::pin(async { Ok(()) }),
        };
        let metadata = self.store(&group, LogKind::Metadata);
        let values = self.values.clone();
        Box::pin(async move {
            let group_pk = *group.record.group_pk();
            let device_pk = group.record.device.verifying_key();
            let first = match values
                .get(
                    &ValueKey::FirstChain {
                        group_pk: *group_pk.as_bytes(),
                    }
                    .to_string(),
                )
                .await?
            {
                Some(bytes) => Some(bytes),
                None => {
                    let chain = ValueKey::Chain {
                        group_pk: *group_pk.as_bytes(),
                    };
                    values.get(&chain.to_string()).await?
                }
            };
            let Some(first) = first else {
                return Ok(());
            };
            let chain = SenderChain::from_bytes(&first)
                .map_err(|e| Error::crypto("stored chain does not parse", e))?;
            share_chain(&values, &metadata, &group_pk, &device_pk, &chain, members).await
        })
    }
}

/// Shares this device's chain key with the new members, has the messages store open what
/// waited for the new chains, and follows the groups the account's other devices joined or
/// left (`devices.rs`).
impl Handler<Learnt> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: Learnt, ctx: &mut Self::Context) {
        let group_pk = msg.group_pk;
        self.contact_members_seen(&group_pk, &msg.new_members);
        self.follow_other_devices(msg.joined, msg.left, ctx);
        if !msg.new_members.is_empty() {
            let share = self.share_chain_key(&group_pk, msg.new_members);
            // Off the actor's context: a future spawned there is paused while the actor runs
            // an atomic handler, and paused holding the storage's write connection it would
            // block that handler's writes.
            actix::spawn(async move {
                if let Err(e) = share.await {
                    tracing::warn!(group = %hex::encode(&group_pk[..8]), %e, "cannot share the chain key");
                }
            });
        }
        if !msg.new_chains.is_empty() {
            let Some(group) = self.group(&group_pk) else {
                return;
            };
            let messages = self.store(&group, LogKind::Messages);
            let replay = messages.send(ReplayQueued {
                devices: msg.new_chains,
            });
            ctx.spawn(
                replay
                    .into_actor(self)
                    .map(move |result, _, _| match result {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(group = %hex::encode(&group_pk[..8]), %e, "cannot open queued messages")
                        }
                        Err(_) => tracing::warn!("messages store stopped before opening queued messages"),
                    }),
            );
        }
    }
}
