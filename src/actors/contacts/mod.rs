//! The account actor's contact handling: the contact-request switch and reference, outgoing
//! requests (recorded and queued in a persistent outbox until the network delivers them),
//! accepting, removing, blocking and unblocking contacts.
//!
//! Each change is recorded as an account event first (the account log is what the account's
//! devices share), then in the local records ([`records`]).

pub mod records;

use actix::prelude::*;
use rand::rngs::OsRng;

use self::records::{ContactRecord, ContactSettings, ContactState, OutboxItem};

use crate::{
    actors::account::{account_event, AccountActor},
    actors::group_store::{GroupStoreActor, LocalWrite, Write},
    crypto::{RendezvousSeed, VerifyingKey},
    error::Error,
    group::ContactReference,
    proto::berty_protocol::AccountEventType,
    storage::{value_keys::ValueKey, SealedValues},
};

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
                Ok(())
            }
            .into_actor(self),
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
                Ok(reference)
            }
            .into_actor(self),
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
                Ok(())
            }
            .into_actor(self),
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
        AtomicResponse::new(Box::pin(
            async move {
                let pk = msg.contact_pk;
                let hex_pk = hex::encode(pk.as_bytes());
                let mut record = contact(&values, &pk).await?.ok_or_else(|| {
                    Error::NotFound(format!("no contact or request from {hex_pk}"))
                })?;
                let event_type = match msg.action {
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
                if msg.action == ContactAction::Remove {
                    values.delete(&contact_key(&pk)).await?;
                    values.delete(&outbox_key(&pk)).await?;
                } else {
                    values.put(&contact_key(&pk), &record.encode()).await?;
                }
                Ok(())
            }
            .into_actor(self),
        ))
    }
}
