//! The account's side of the courier ([`crate::courier`]): what it hands the courier at start
//! and on every change (the seed to advertise, the outbox), and what it does with the
//! courier's reports: a delivered request joins the contact group, a failed attempt is kept
//! in the outbox with its next time, an incoming request is recorded (`ContactRequested`)
//! or dropped.

use actix::prelude::*;

use super::{
    contact_key, outbox_key, records::ContactState, send, settings, ContactRecord, OutboxItem,
};
use crate::{
    actors::account::{account_event, AccountActor, Joining},
    courier::{Advertise, Deliver, Delivered, DeliveryFailed, IncomingRequest},
    crypto::{derive_contact_group, RendezvousSeed, SigningKey, VerifyingKey},
    error::Error,
    group::GroupReference,
    handshake::OutgoingContact,
    proto::berty_protocol::AccountEventType,
    storage::value_keys::ValuePrefix,
};

/// The contact group of this account and `contact`: derived by both sides alike (SPEC
/// section 4), its creation proof naming the lower of the two account keys as creator.
pub(crate) fn contact_group(own: &SigningKey, contact: &VerifyingKey) -> Result<Joining, Error> {
    let genesis = derive_contact_group(own, contact)
        .map_err(|e| Error::crypto("deriving the contact group", e))?;
    let own_pk = own.verifying_key();
    let creator = if own_pk.as_bytes() < contact.as_bytes() {
        own_pk
    } else {
        *contact
    };
    let (keys, proof) = genesis
        .finish(&creator)
        .map_err(|e| Error::crypto("deriving the contact group", e))?;
    Ok(Joining {
        reference: GroupReference { keys, proof },
        meta: Vec::new(),
        contact: Some(*contact),
        record_event: true,
    })
}

/// What the courier sends for an outbox item.
pub(super) fn deliver(item: &OutboxItem, own_seed: Option<RendezvousSeed>) -> Deliver {
    Deliver {
        target: item.target.clone(),
        contact: OutgoingContact {
            own_seed,
            target_seed: item.target.rendezvous_seed.clone(),
            meta: item.meta.clone(),
        },
        attempts: item.attempts,
        not_before_unix: item.next_attempt_unix,
    }
}

impl AccountActor {
    /// Hands the courier the seed to advertise and every request waiting in the outbox.
    pub(crate) fn start_contacts(&mut self) {
        let Some(courier) = self.courier.clone() else {
            return;
        };
        let values = self.values.clone();
        let load = async move {
            let state = settings(&values).await?;
            let outbox = values.list(ValuePrefix::Outbox).await?;
            let seed = state.rendezvous_seed.filter(|_| state.enabled);
            courier.do_send(Advertise(seed));
            let own_seed = settings(&values).await?.rendezvous_seed;
            for (_, bytes) in outbox {
                let item = OutboxItem::decode(&bytes)?;
                courier.do_send(deliver(&item, own_seed.clone()));
            }
            Ok::<_, Error>(())
        };
        // Off the actor's context: a future spawned there is paused while the actor waits on
        // an atomic handler, and one paused holding the storage's write connection would
        // block that handler's own writes.
        actix::spawn(async move {
            if let Err(e) = load.await {
                tracing::error!(%e, "cannot load the contact requests to deliver");
            }
        });
    }
}

/// A delivered request: the outbox item goes, and this account joins the contact group
/// (the target joins it when it accepts).
impl Handler<Delivered> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Self::Context) {
        let values = self.values.clone();
        let target = msg.target;
        let log_failure = move |result: Result<(), Error>| {
            if let Err(e) = result {
                tracing::error!(target = %hex::encode(&target.as_bytes()[..8]), %e, "cannot join the contact group after delivering a request");
            }
        };
        let joining = match contact_group(self.keys.account(), &target) {
            Ok(joining) => joining,
            Err(e) => return log_failure(Err(e)),
        };
        // Joined first: a crash in between leaves the request in the outbox, delivered
        // again (the target drops a request it already has).
        ctx.wait(
            self.join(joining)
                .then(move |joined, actor, _| {
                    async move {
                        joined?;
                        values.delete(&outbox_key(&target)).await?;
                        Ok(())
                    }
                    .into_actor(actor)
                })
                .map(move |result, _, _| log_failure(result)),
        );
    }
}

/// A failed attempt: its count and next time are kept, so a restart resumes the back-off.
impl Handler<DeliveryFailed> for AccountActor {
    type Result = ();

    fn handle(&mut self, msg: DeliveryFailed, _: &mut Self::Context) {
        let values = self.values.clone();
        let update = async move {
            let key = outbox_key(&msg.target);
            // Removed meanwhile: nothing to keep.
            let Some(bytes) = values.get(&key).await? else {
                return Ok(());
            };
            let mut item = OutboxItem::decode(&bytes)?;
            item.attempts = msg.attempts;
            item.next_attempt_unix = msg.next_attempt_unix;
            values.put(&key, &item.encode()).await?;
            Ok::<_, Error>(())
        };
        // Off the actor's context (see `start_contacts`).
        actix::spawn(async move {
            if let Err(e) = update.await {
                tracing::warn!(%e, "cannot save a contact request's next attempt");
            }
        });
    }
}

/// Why an incoming request is dropped, if it is.
fn refusal(
    enabled: bool,
    current_seed: Option<&RendezvousSeed>,
    used_seed: &RendezvousSeed,
    existing: Option<&ContactRecord>,
) -> Option<&'static str> {
    if !enabled {
        return Some("contact requests are disabled");
    }
    if current_seed.map(RendezvousSeed::as_bytes) != Some(used_seed.as_bytes()) {
        return Some("made with a reference that was reset");
    }
    match existing {
        Some(record) if record.blocked => Some("the requester is blocked"),
        Some(record) if record.state == ContactState::Accepted => Some("already a contact"),
        Some(record) if record.state == ContactState::Incoming => Some("already requested"),
        _ => None,
    }
}

/// An incoming request: recorded as `ContactRequested` unless requests are off, the
/// reference was reset, the requester is blocked or already known.
impl Handler<IncomingRequest> for AccountActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: IncomingRequest, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let values = self.values.clone();
        let own = self.keys.account_pk();
        let contact = msg.contact;
        let peer = msg.peer;
        AtomicResponse::new(Box::pin(
            async move {
                let requester = contact.account_pk;
                if requester == own {
                    return Ok(());
                }
                let state = settings(&values).await?;
                let existing = super::contact(&values, &requester).await?;
                if let Some(why) = refusal(
                    state.enabled,
                    state.rendezvous_seed.as_ref(),
                    &contact.reference_seed,
                    existing.as_ref(),
                ) {
                    tracing::info!(%peer, requester = %hex::encode(&requester.as_bytes()[..8]), why, "contact request dropped");
                    return Ok(());
                }
                send(
                    &store,
                    account_event(
                        AccountEventType::ContactRequested,
                        requester.as_bytes().to_vec(),
                        contact.meta.clone(),
                        |_| {},
                    ),
                )
                .await?;
                let record = ContactRecord {
                    account: requester,
                    state: ContactState::Incoming,
                    blocked: false,
                    meta: contact.meta,
                    rendezvous_seed: contact.rendezvous_seed,
                };
                values.put(&contact_key(&requester), &record.encode()).await?;
                tracing::info!(%peer, requester = %hex::encode(&requester.as_bytes()[..8]), "contact request received");
                Ok::<_, Error>(())
            }
            .into_actor(self)
            .map(|result, _, _| {
                if let Err(e) = result {
                    tracing::error!(%e, "cannot record an incoming contact request");
                }
            }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn record(state: ContactState, blocked: bool) -> ContactRecord {
        ContactRecord {
            account: SigningKey::generate(&mut OsRng).verifying_key(),
            state,
            blocked,
            meta: Vec::new(),
            rendezvous_seed: None,
        }
    }

    #[test]
    fn incoming_requests_are_dropped_for_each_reason() {
        let seed = RendezvousSeed::generate(&mut OsRng);
        let other = RendezvousSeed::generate(&mut OsRng);
        assert_eq!(refusal(true, Some(&seed), &seed, None), None);
        assert!(refusal(false, Some(&seed), &seed, None).is_some());
        assert_eq!(
            refusal(true, Some(&seed), &other, None),
            Some("made with a reference that was reset")
        );
        assert_eq!(
            refusal(true, None, &seed, None),
            Some("made with a reference that was reset")
        );
        let blocked = record(ContactState::Outgoing, true);
        assert_eq!(
            refusal(true, Some(&seed), &seed, Some(&blocked)),
            Some("the requester is blocked")
        );
        let outgoing = record(ContactState::Outgoing, false);
        assert_eq!(refusal(true, Some(&seed), &seed, Some(&outgoing)), None);
        let accepted = record(ContactState::Accepted, false);
        assert!(refusal(true, Some(&seed), &seed, Some(&accepted)).is_some());
    }

    #[test]
    fn both_sides_derive_the_same_contact_group() {
        let a = SigningKey::generate(&mut OsRng);
        let b = SigningKey::generate(&mut OsRng);
        let ab = contact_group(&a, &b.verifying_key()).unwrap();
        let ba = contact_group(&b, &a.verifying_key()).unwrap();
        assert_eq!(ab.reference.encode(), ba.reference.encode());
        assert_eq!(ab.contact, Some(b.verifying_key()));
    }
}
