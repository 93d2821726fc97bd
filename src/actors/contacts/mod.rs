//! The account actor's contact handling: the contact-request switch and reference, outgoing
//! requests (recorded and queued in a persistent outbox that the courier delivers, see
//! [`delivery`]), accepting (both sides then share the contact group), removing, blocking and
//! unblocking contacts.
//!
//! Each change is recorded as an account event first (the account log is what the account's
//! devices share), then in the local records ([`records`]).

pub mod delivery;
pub mod records;

use std::collections::HashSet;

use actix::prelude::*;
use rand::rngs::OsRng;

use self::records::{ContactRecord, ContactSettings, ContactState, OutboxItem};

use crate::{
    actors::account::{account_event, AccountActor},
    actors::group_store::{GroupStoreActor, LocalWrite, Write},
    courier::{Advertise, Cancel},
    crypto::{RendezvousSeed, VerifyingKey},
    error::Error,
    group::ContactReference,
    proto::berty_protocol::AccountEventType,
    storage::{
        value_keys::{ValueKey, ValuePrefix},
        SealedValues,
    },
};

/// The account keys of the blocked contacts.
pub(crate) async fn blocked_contacts(values: &SealedValues) -> Result<HashSet<[u8; 32]>, Error> {
    let mut blocked = HashSet::new();
    for (_, bytes) in values.list(ValuePrefix::Contacts).await? {
        let record = ContactRecord::decode(&bytes)?;
        if record.blocked {
            blocked.insert(record.account.to_bytes());
        }
    }
    Ok(blocked)
}

impl AccountActor {
    /// Tells the courier what to advertise now.
    fn advertise(&self, state: &ContactSettings) {
        if let Some(courier) = &self.courier {
            courier.do_send(Advertise(
                state.rendezvous_seed.clone().filter(|_| state.enabled),
            ));
        }
    }
}

fn contact_key(pk: &VerifyingKey) -> String {
    ValueKey::Contact {
        account_pk: *pk.as_bytes(),
    }
    .to_string()
}

fn outbox_key(pk: &VerifyingKey) -> String {
    ValueKey::Outbox {
        account_pk: *pk.as_bytes(),
    }
    .to_string()
}

fn settings_key() -> String {
    ValueKey::ContactSettings.to_string()
}

async fn settings(values: &SealedValues) -> Result<ContactSettings, Error> {
    match values.get(&settings_key()).await? {
        Some(bytes) => ContactSettings::decode(&bytes),
        None => Ok(ContactSettings::default()),
    }
}

async fn contact(values: &SealedValues, pk: &VerifyingKey) -> Result<Option<ContactRecord>, Error> {
    match values.get(&contact_key(pk)).await? {
        Some(bytes) => ContactRecord::decode(&bytes).map(Some),
        None => Ok(None),
    }
}

async fn send(store: &Addr<GroupStoreActor>, write: LocalWrite) -> Result<(), Error> {
    store
        .send(Write(write))
        .await
        .map_err(|_| Error::stopped("account store actor is gone"))??;
    Ok(())
}

fn reference_of(account_pk: &VerifyingKey, seed: &RendezvousSeed) -> Vec<u8> {
    ContactReference {
        account_pk: *account_pk,
        rendezvous_seed: seed.clone(),
    }
    .encode()
}

/// Draws a new rendezvous seed, records `ContactRequestReferenceReset` (with the new reference)
/// and puts the seed in `state` (which the caller saves); returns the new reference.
async fn reset_seed(
    store: &Addr<GroupStoreActor>,
    account_pk: &VerifyingKey,
    state: &mut ContactSettings,
) -> Result<Vec<u8>, Error> {
    let seed = RendezvousSeed::generate(&mut OsRng);
    let reference = reference_of(account_pk, &seed);
    send(
        store,
        account_event(
            AccountEventType::ContactRequestReferenceReset,
            Vec::new(),
            reference.clone(),
            |e| e.rendezvous_seed = Some(seed.clone()),
        ),
    )
    .await?;
    state.rendezvous_seed = Some(seed);
    Ok(reference)
}

/// Turns incoming contact requests on or off.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct SetContactRequests(pub bool);

impl Handler<SetContactRequests> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: SetContactRequests, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let values = self.values.clone();
        let account_pk = self.keys.account_pk();
        AtomicResponse::new(Box::pin(
            async move {
                let mut state = settings(&values).await?;
                if msg.0 && state.rendezvous_seed.is_none() {
                    // The first enable draws the seed the reference carries.
                    reset_seed(&store, &account_pk, &mut state).await?;
                }
                let event_type = if msg.0 {
                    AccountEventType::ContactRequestEnabled
                } else {
                    AccountEventType::ContactRequestDisabled
                };
                send(
                    &store,
                    account_event(event_type, Vec::new(), Vec::new(), |_| {}),
                )
                .await?;
                state.enabled = msg.0;
                values.put(&settings_key(), &state.encode()).await?;
                Ok(state)
            }
            .into_actor(self)
            .map(|result: Result<ContactSettings, Error>, actor, _| {
                actor.advertise(&result?);
                Ok(())
            }),
        ))
    }
}

/// This account's contact reference; empty while requests are disabled.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, Error>")]
pub struct GetContactReference;

impl Handler<GetContactReference> for AccountActor {
    type Result = ResponseFuture<Result<Vec<u8>, Error>>;

    fn handle(&mut self, _: GetContactReference, _: &mut Self::Context) -> Self::Result {
        let values = self.values.clone();
        let account_pk = self.keys.account_pk();
        Box::pin(async move {
            let state = settings(&values).await?;
            Ok(match (&state.rendezvous_seed, state.enabled) {
                (Some(seed), true) => reference_of(&account_pk, seed),
                _ => Vec::new(),
            })
        })
    }
}

/// Draws a new rendezvous seed so old references stop reaching this account; returns the new
/// reference.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, Error>")]
pub struct ResetContactReference;

impl Handler<ResetContactReference> for AccountActor {
    type Result = AtomicResponse<Self, Result<Vec<u8>, Error>>;

    fn handle(&mut self, _: ResetContactReference, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let values = self.values.clone();
        let account_pk = self.keys.account_pk();
        AtomicResponse::new(Box::pin(
            async move {
                let mut state = settings(&values).await?;
                let reference = reset_seed(&store, &account_pk, &mut state).await?;
                values.put(&settings_key(), &state.encode()).await?;
                Ok((reference, state))
            }
            .into_actor(self)
            .map(
                |result: Result<(Vec<u8>, ContactSettings), Error>, actor, _| {
                    let (reference, state) = result?;
                    actor.advertise(&state);
                    Ok(reference)
                },
            ),
        ))
    }
}

/// Records an outgoing contact request and queues it for delivery.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct EnqueueContactRequest {
    /// The other account's reference.
    pub reference: ContactReference,
    /// What we show them.
    pub meta: Vec<u8>,
}

impl Handler<EnqueueContactRequest> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: EnqueueContactRequest, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let values = self.values.clone();
        let own = self.keys.account_pk();
        AtomicResponse::new(Box::pin(
            async move {
                let target = msg.reference.account_pk;
                if target == own {
                    return Err(Error::InvalidArgument(
                        "reference: this is this account's own reference".into(),
                    ));
                }
                let existing = contact(&values, &target).await?;
                if let Some(existing) = &existing {
                    if existing.state == ContactState::Accepted {
                        return Err(Error::FailedPrecondition(
                            "this account is already a contact".into(),
                        ));
                    }
                }
                // A new request does not lift a block: only ContactUnblock does (and records
                // it in the account log).
                let blocked = existing.is_some_and(|e| e.blocked);
                send(
                    &store,
                    account_event(
                        AccountEventType::ContactRequestEnqueued,
                        target.as_bytes().to_vec(),
                        msg.meta.clone(),
                        |_| {},
                    ),
                )
                .await?;
                let record = ContactRecord {
                    account: target,
                    state: ContactState::Outgoing,
                    blocked,
                    meta: msg.meta.clone(),
                    rendezvous_seed: Some(msg.reference.rendezvous_seed.clone()),
                };
                values.put(&contact_key(&target), &record.encode()).await?;
                let item = OutboxItem {
                    target: msg.reference,
                    meta: msg.meta,
                    attempts: 0,
                    next_attempt_unix: 0,
                };
                values.put(&outbox_key(&target), &item.encode()).await?;
                if blocked {
                    // Kept, not sent, until ContactUnblock.
                    return Ok(None);
                }
                let own_seed = settings(&values).await?.rendezvous_seed;
                Ok(Some(delivery::deliver(&item, own_seed)))
            }
            .into_actor(self)
            .map(
                |result: Result<Option<crate::courier::Deliver>, Error>, actor, _| {
                    if let (Some(deliver), Some(courier)) = (result?, &actor.courier) {
                        courier.do_send(deliver);
                    }
                    Ok(())
                },
            ),
        ))
    }
}

/// What to do with a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactAction {
    /// Accept an incoming request.
    Accept,
    /// Remove the contact (leave the contact group).
    Remove,
    /// Block: drop its requests and messages.
    Block,
    /// Unblock.
    Unblock,
}

/// Applies a [`ContactAction`] to a known contact (`NOT_FOUND` otherwise).
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct UpdateContact {
    /// The contact's account key.
    pub contact_pk: VerifyingKey,
    /// What to do.
    pub action: ContactAction,
}

impl Handler<UpdateContact> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: UpdateContact, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let values = self.values.clone();
        let pk = msg.contact_pk;
        let action = msg.action;
        let recorded = async move {
            let hex_pk = hex::encode(pk.as_bytes());
            let mut record = contact(&values, &pk)
                .await?
                .ok_or_else(|| Error::NotFound(format!("no contact or request from {hex_pk}")))?;
            let event_type = match action {
                ContactAction::Accept => {
                    if record.state != ContactState::Incoming {
                        return Err(Error::NotFound(format!(
                            "no incoming contact request from {hex_pk}"
                        )));
                    }
                    record.state = ContactState::Accepted;
                    AccountEventType::ContactAccepted
                }
                ContactAction::Remove => AccountEventType::ContactRemoved,
                ContactAction::Block => {
                    record.blocked = true;
                    AccountEventType::ContactBlocked
                }
                ContactAction::Unblock => {
                    if !record.blocked {
                        return Err(Error::FailedPrecondition(format!(
                            "contact {hex_pk} is not blocked"
                        )));
                    }
                    record.blocked = false;
                    AccountEventType::ContactUnblocked
                }
            };
            send(
                &store,
                account_event(event_type, pk.as_bytes().to_vec(), Vec::new(), |_| {}),
            )
            .await?;
            if action == ContactAction::Remove {
                values.delete(&contact_key(&pk)).await?;
                values.delete(&outbox_key(&pk)).await?;
            } else {
                values.put(&contact_key(&pk), &record.encode()).await?;
            }
            // An unblocked contact's request waiting in the outbox goes out again.
            let redeliver = match (action, values.get(&outbox_key(&pk)).await?) {
                (ContactAction::Unblock, Some(bytes)) => {
                    let item = OutboxItem::decode(&bytes)?;
                    let own_seed = settings(&values).await?.rendezvous_seed;
                    Some(delivery::deliver(&item, own_seed))
                }
                _ => None,
            };
            Ok(redeliver)
        };
        AtomicResponse::new(Box::pin(recorded.into_actor(self).then(
            move |result, actor, _| match result {
                Ok(redeliver) => actor.after_contact_update(pk, action, redeliver),
                Err(e) => Box::pin(fut::ready(Err(e))),
            },
        )))
    }
}

impl AccountActor {
    /// What a contact change does beyond its records: the contact group joined (accept) or
    /// left (remove), its replication stopped (block) or resumed (unblock), deliveries
    /// cancelled or resumed.
    fn after_contact_update(
        &mut self,
        pk: VerifyingKey,
        action: ContactAction,
        redeliver: Option<crate::courier::Deliver>,
    ) -> ResponseActFuture<Self, Result<(), Error>> {
        if matches!(action, ContactAction::Remove | ContactAction::Block) {
            if let Some(courier) = &self.courier {
                courier.do_send(Cancel(pk));
            }
        }
        match action {
            ContactAction::Accept => match delivery::contact_group(self.keys.account(), &pk) {
                Ok(joining) => Box::pin(self.join(joining).map(|joined, _, _| joined.map(|_| ()))),
                Err(e) => Box::pin(fut::ready(Err(e))),
            },
            ContactAction::Remove => {
                let group_pk = delivery::contact_group(self.keys.account(), &pk)
                    .map(|joining| joining.reference.keys.group_pk().to_bytes());
                match group_pk {
                    Ok(group_pk) if self.joined_group(&group_pk).is_ok() => {
                        self.leave(group_pk, true)
                    }
                    Ok(_) => Box::pin(fut::ready(Ok(()))),
                    Err(e) => Box::pin(fut::ready(Err(e))),
                }
            }
            ContactAction::Block | ContactAction::Unblock => {
                if action == ContactAction::Block {
                    self.blocked.insert(pk.to_bytes());
                } else {
                    self.blocked.remove(pk.as_bytes());
                }
                self.publish_directory();
                if let (Some(deliver), Some(courier)) = (redeliver, &self.courier) {
                    courier.do_send(deliver);
                }
                Box::pin(fut::ready(Ok(())))
            }
        }
    }

    /// The contact's account appeared in a contact group (its member key is its account
    /// key): a request of ours to it was accepted.
    pub(crate) fn contact_members_seen(&mut self, group_pk: &[u8; 32], members: &[[u8; 32]]) {
        let Some(contact_pk) = self.groups.get(group_pk).and_then(|g| g.record.contact_pk) else {
            return;
        };
        if !members.contains(contact_pk.as_bytes()) {
            return;
        }
        let values = self.values.clone();
        let update = async move {
            let Some(mut record) = contact(&values, &contact_pk).await? else {
                return Ok(());
            };
            if record.state == ContactState::Outgoing {
                record.state = ContactState::Accepted;
                values
                    .put(&contact_key(&contact_pk), &record.encode())
                    .await?;
            }
            Ok::<_, Error>(())
        };
        // Off the actor's context (see `start_contacts`).
        actix::spawn(async move {
            if let Err(e) = update.await {
                tracing::warn!(%e, "cannot record an accepted contact request");
            }
        });
    }
}
