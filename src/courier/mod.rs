//! The contact-request courier ([`ContactCourier`]): the network side of contacts.
//!
//! - **Advertising.** While the account takes contact requests it hands the courier its
//!   rendezvous seed ([`Advertise`]); the courier registers the account's current rendezvous
//!   points (and the next or previous one near a period boundary) at every rendezvous server
//!   of `p2p.rendezvous` and provides them in the DHT, renews them, and withdraws them
//!   (unregister, stop providing) when requests are disabled or the seed is reset.
//! - **Delivering.** Each outgoing request ([`Deliver`]) is tried until a peer completes the
//!   handshake as the target ([`deliver`]); failures back off ([`schedule`]) and are reported
//!   to the account ([`DeliveryFailed`]), which keeps the outbox, so requests survive
//!   restarts. Success is [`Delivered`].
//! - **Answering.** Incoming handshakes are answered by [`inbound`]; each completed one goes to
//!   the account as an [`IncomingRequest`].
//!
//! The account owns the contact state; the courier only holds its schedule in memory.

pub mod deliver;
pub mod inbound;
pub mod schedule;

use std::{
    collections::HashSet,
    num::NonZeroU64,
    time::{Duration, Instant},
};

use actix::prelude::*;
use libp2p::{PeerId, StreamProtocol};

use self::{deliver::Attempt, schedule::Schedule};
use crate::{
    clock::unix_now,
    crypto::{points_to_advertise, RendezvousSeed, SigningKey, VerifyingKey},
    group::ContactReference,
    handshake::{IncomingContact, OutgoingContact},
    metrics::Metrics,
    p2p::SwarmHandle,
    replication::discovery::{namespace, Registrations, RENDEZVOUS_TTL_SECS},
};

/// The contact handshake's protocol.
pub const CONTACT_PROTOCOL: StreamProtocol = StreamProtocol::new(crate::handshake::PROTOCOL);
/// Around a period boundary, the points on both sides of it are advertised and looked up
/// for this long, so clocks that differ by less still meet.
pub const POINT_MARGIN_SECS: u64 = 10 * 60;
/// How often the courier looks for due requests, besides waking when one falls due (a
/// request left waiting because too many attempts were in flight is taken at the next tick).
const TICK: Duration = Duration::from_millis(500);
/// How often advertisements are checked (renewed when close to expiry, rotated at period
/// boundaries, retried when a server was unreachable).
const ADVERTISE_EVERY: Duration = Duration::from_secs(10);
/// Delivery attempts in flight at once.
const MAX_ATTEMPTS_IN_FLIGHT: usize = 8;
/// Timeout of each handshake step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the courier needs to know of the node.
#[derive(Clone)]
pub struct CourierSettings {
    /// Rendezvous servers (`p2p.rendezvous`).
    pub servers: Vec<PeerId>,
    /// Length of a rendezvous period.
    pub period: NonZeroU64,
}

/// Where the courier reports to the account.
#[derive(Clone)]
pub struct AccountPorts {
    /// A request reached its target.
    pub delivered: Recipient<Delivered>,
    /// An attempt failed; when the next one is due.
    pub failed: Recipient<DeliveryFailed>,
    /// A request came in.
    pub incoming: Recipient<IncomingRequest>,
}

/// Advertise this account's rendezvous points from `seed` (`None`: withdraw them).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Advertise(pub Option<RendezvousSeed>);

/// An outgoing request to deliver.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Whom to reach.
    pub target: ContactReference,
    /// What to tell them.
    pub contact: OutgoingContact,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix seconds before which no attempt is made (0: now).
    pub not_before_unix: u64,
}

/// Stop trying to deliver the request to this account (removed or blocked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel(pub VerifyingKey);

/// Connects the courier to the account (done once, when both run).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub AccountPorts);

/// A request reached its target: the target's node completed the handshake.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delivered {
    /// The target's account key.
    pub target: VerifyingKey,
    /// The peer that answered.
    pub peer: PeerId,
}

/// An attempt failed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliveryFailed {
    /// The target's account key.
    pub target: VerifyingKey,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt.
    pub next_attempt_unix: u64,
    /// Why.
    pub reason: String,
}

/// A request that completed the handshake: the requester's key is proven.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IncomingRequest {
    /// The peer it came from.
    pub peer: PeerId,
    /// The request.
    pub contact: IncomingContact,
}

/// The contact-request courier actor.
pub struct ContactCourier {
    swarm: SwarmHandle,
    account: SigningKey,
    settings: CourierSettings,
    metrics: Metrics,
    ports: Option<AccountPorts>,
    schedule: Schedule<Deliver>,
    seed: Option<RendezvousSeed>,
    advertised: HashSet<[u8; 32]>,
    registrations: Registrations,
    /// A round of advertisement is in flight.
    advertising: bool,
    /// The seed changed during that round: run another when it ends.
    readvertise: bool,
}

impl ContactCourier {
    /// A courier for the account whose key is `account`.
    pub fn new(
        swarm: SwarmHandle,
        account: SigningKey,
        settings: CourierSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            swarm,
            account,
            settings,
            metrics,
            ports: None,
            schedule: Schedule::default(),
            seed: None,
            advertised: HashSet::new(),
            registrations: Registrations::default(),
            advertising: false,
            readvertise: false,
        }
    }

    /// Starts the attempts that are due.
    fn deliver_due(&mut self, ctx: &mut Context<Self>) {
        let room = MAX_ATTEMPTS_IN_FLIGHT.saturating_sub(self.schedule.in_flight());
        if room == 0 || self.ports.is_none() {
            return;
        }
        for (target, item) in self.schedule.take_due(Instant::now(), room) {
            let attempt = Attempt {
                swarm: self.swarm.clone(),
                account: self.account.clone(),
                servers: self.settings.servers.clone(),
                period: self.settings.period,
                step_timeout: STEP_TIMEOUT,
                target: item.target.clone(),
                contact: item.contact.clone(),
            };
            ctx.spawn(
                attempt
                    .run()
                    .into_actor(self)
                    .map(move |result, actor, ctx| actor.attempt_done(target, item, result, ctx)),
            );
        }
    }

    fn attempt_done(
        &mut self,
        target: [u8; 32],
        item: Deliver,
        result: Result<PeerId, String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(ports) = &self.ports else { return };
        match result {
            Ok(peer) => {
                self.metrics.contact_delivery("delivered");
                self.schedule.remove(&target);
                tracing::info!(%peer, target = %hex::encode(&target[..8]), "contact request delivered");
                ports.delivered.do_send(Delivered {
                    target: item.target.account_pk,
                    peer,
                });
            }
            Err(reason) => {
                self.metrics.contact_delivery("failed");
                let now = Instant::now();
                let Some((attempts, due)) = self.schedule.failed(&target, now) else {
                    return; // cancelled meanwhile
                };
                let wait = due.saturating_duration_since(now);
                // Woken when it is due, not at the next tick after.
                ctx.run_later(wait, |actor, ctx| actor.deliver_due(ctx));
                tracing::debug!(target = %hex::encode(&target[..8]), attempts, ?wait, %reason, "contact request not delivered yet");
                ports.failed.do_send(DeliveryFailed {
                    target: item.target.account_pk,
                    attempts,
                    next_attempt_unix: unix_now().saturating_add(wait.as_secs()),
                    reason,
                });
            }
        }
    }

    /// Brings the advertisements in line with the seed: withdraws points no longer current,
    /// provides new ones, registers those due at every server.
    fn advertise(&mut self, ctx: &mut Context<Self>) {
        if self.advertising {
            // One round at a time; a change meanwhile is taken up when it ends.
            self.readvertise = true;
            return;
        }
        let points: HashSet<[u8; 32]> = match &self.seed {
            Some(seed) => points_to_advertise(
                &self.account.verifying_key(),
                seed,
                unix_now(),
                self.settings.period,
                POINT_MARGIN_SECS,
            )
            .iter()
            .map(|p| *p.as_bytes())
            .collect(),
            None => HashSet::new(),
        };
        let withdrawn: Vec<[u8; 32]> = self.advertised.difference(&points).copied().collect();
        let added: Vec<[u8; 32]> = points.difference(&self.advertised).copied().collect();
        let wanted: Vec<[u8; 32]> = points.iter().copied().collect();
        let register = self
            .registrations
            .due(&self.settings.servers, &wanted, Instant::now());
        self.advertised = points;
        if withdrawn.is_empty() && added.is_empty() && register.is_empty() {
            return;
        }
        self.advertising = true;
        let swarm = self.swarm.clone();
        let servers = self.settings.servers.clone();
        let round = async move {
            for point in &withdrawn {
                for server in &servers {
                    let _ = swarm.rendezvous_unregister(*server, namespace(point)).await;
                }
                let _ = swarm.stop_providing(point.to_vec()).await;
            }
            for point in &added {
                if let Err(e) = swarm.provide(point.to_vec()).await {
                    tracing::debug!(%e, "cannot provide a rendezvous point");
                }
            }
            let mut registered = Vec::new();
            for (server, point) in register {
                match swarm
                    .rendezvous_register(server, namespace(&point), Some(RENDEZVOUS_TTL_SECS))
                    .await
                {
                    Ok(ttl) => registered.push(((server, point), Duration::from_secs(ttl))),
                    Err(e) => tracing::debug!(%server, %e, "cannot register a rendezvous point"),
                }
            }
            registered
        };
        ctx.spawn(round.into_actor(self).map(|registered, actor, ctx| {
            actor.advertising = false;
            let now = Instant::now();
            for (pair, ttl) in registered {
                actor.registrations.registered(pair, now, ttl);
            }
            if std::mem::take(&mut actor.readvertise) {
                actor.advertise(ctx);
            }
        }));
    }
}

impl Actor for ContactCourier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |actor, ctx| actor.deliver_due(ctx));
        ctx.run_interval(ADVERTISE_EVERY, |actor, ctx| actor.advertise(ctx));
    }
}

impl Handler<Attach> for ContactCourier {
    type Result = ();

    fn handle(&mut self, msg: Attach, _: &mut Self::Context) {
        tokio::spawn(inbound::serve(
            self.swarm.streams(),
            self.account.clone(),
            STEP_TIMEOUT,
            msg.0.incoming.clone(),
            self.metrics.clone(),
        ));
        self.ports = Some(msg.0);
    }
}

impl Handler<Advertise> for ContactCourier {
    type Result = ();

    fn handle(&mut self, msg: Advertise, ctx: &mut Self::Context) {
        let changed = self.seed.as_ref().map(RendezvousSeed::as_bytes)
            != msg.0.as_ref().map(RendezvousSeed::as_bytes);
        self.seed = msg.0;
        if changed {
            self.advertise(ctx);
        }
    }
}

impl Handler<Deliver> for ContactCourier {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let target = msg.target.account_pk.to_bytes();
        // A wait stored before a restart never exceeds the back-off cap from now.
        let wait = Duration::from_secs(msg.not_before_unix.saturating_sub(unix_now()))
            .min(schedule::MAX_BACKOFF);
        let attempts = msg.attempts;
        self.schedule
            .insert(target, msg, attempts, Instant::now() + wait);
        self.deliver_due(ctx);
        if !wait.is_zero() {
            ctx.run_later(wait, |actor, ctx| actor.deliver_due(ctx));
        }
    }
}

impl Handler<Cancel> for ContactCourier {
    type Result = ();

    fn handle(&mut self, msg: Cancel, _: &mut Self::Context) {
        self.schedule.remove(msg.0.as_bytes());
    }
}
