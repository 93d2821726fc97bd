//! The store-and-forward mirror: this node keeps the encrypted logs of groups that members
//! registered with it, as a **blind replica**: it proves the group's link key like a member,
//! verifies every entry before storing it, serves heads and fetches to members who prove the
//! link key, takes part in the group's gossip and discovery, and never holds the group
//! secret, a member key or a chain key.
//!
//! - [`MirrorActor`] owns the set of mirrored groups: it loads them from the database (the
//!   source of truth, shared by every mirror node on one PostgreSQL), starts one
//!   [`BlindStore`] per log, publishes them to replication as the mirror's directory, and
//!   answers registrations arriving over `/berty-node/mirror/1.0.0`.
//! - [`blind_store`]: storing verified entries within the token's byte quota.
//! - [`register`]: the checks of a registration (token, creation proof, quotas).
//! - [`tokens`]: issuing tokens and the hash that is stored instead.

pub mod blind_store;
pub mod register;
pub mod tokens;

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

pub use blind_store::BlindStore;

use crate::{
    crypto::{parse_public_key, LinkKey},
    log::{LogId, LogKind},
    metrics::Metrics,
    p2p::mirror_message::InboundMirrorRequest,
    replication::ports::{DirectorySource, GroupLinks, GroupStores, GroupsChanged, LogAppended},
    storage::{mirror::MirroredGroup, Storage},
    supervision::Lifeline,
};

/// How often the mirror reloads its groups from the database (registrations and revocations
/// made through another node on the same database take effect within this).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Reload the mirrored groups now (after an admin revocation, say).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reload;

/// One mirrored group as this node serves it.
struct Served {
    token_id: String,
    links: GroupLinks,
    /// Held while the group is served: a store stops once no one holds its address.
    _stores: [Addr<BlindStore>; 2],
}

/// The mirror actor.
pub struct MirrorActor {
    storage: Arc<dyn Storage>,
    /// `mirror.retention_days`: entries stored longer ago are deleted; 0 keeps them.
    retention_days: u64,
    replicator: Recipient<GroupsChanged>,
    appended: Recipient<LogAppended>,
    requests: Option<mpsc::Receiver<InboundMirrorRequest>>,
    served: HashMap<[u8; 32], Served>,
    /// One lock per token, shared by the token's blind stores (see [`BlindStore`]).
    quota_locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    loading: bool,
    metrics: Metrics,
    lifeline: Lifeline,
}

impl MirrorActor {
    /// A mirror over `storage`, answering `requests` from the network and publishing its groups
    /// to `replicator` (whose `appended` learns of each commit).
    pub fn new(
        storage: Arc<dyn Storage>,
        retention_days: u64,
        replicator: Recipient<GroupsChanged>,
        appended: Recipient<LogAppended>,
        requests: mpsc::Receiver<InboundMirrorRequest>,
        metrics: Metrics,
        lifeline: Lifeline,
    ) -> Self {
        Self {
            storage,
            retention_days,
            replicator,
            appended,
            requests: Some(requests),
            served: HashMap::new(),
            quota_locks: HashMap::new(),
            loading: false,
            metrics,
            lifeline,
        }
    }

    /// Loads the groups from the database and serves exactly those.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        if self.loading {
            return;
        }
        self.loading = true;
        let storage = self.storage.clone();
        ctx.spawn(
            async move { storage.mirror().groups().await }
                .into_actor(self)
                .map(|loaded, actor, _| {
                    actor.loading = false;
                    match loaded {
                        Ok(groups) => actor.serve(groups),
                        Err(e) => tracing::warn!(%e, "cannot load the mirrored groups"),
                    }
                }),
        );
    }

    /// Deletes the entries stored longer ago than `mirror.retention_days` (heads stay).
    fn purge(&mut self, ctx: &mut Context<Self>) {
        let storage = self.storage.clone();
        let cutoff = crate::clock::unix_now()
            .saturating_sub(self.retention_days.saturating_mul(24 * 60 * 60));
        ctx.spawn(
            async move { storage.mirror().purge_before(cutoff).await }
                .into_actor(self)
                .map(|purged, _, _| match purged {
                    Ok(purged) if purged.entries > 0 => tracing::info!(
                        entries = purged.entries,
                        bytes = purged.bytes,
                        "mirrored entries past retention deleted"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%e, "cannot purge mirrored entries past retention"),
                }),
        );
    }

    /// Starts stores for new groups, stops those of groups gone, and publishes the directory
    /// when anything changed.
    fn serve(&mut self, groups: Vec<MirroredGroup>) {
        let wanted: HashMap<[u8; 32], MirroredGroup> =
            groups.into_iter().map(|g| (g.group_pk, g)).collect();
        let before = self.served.len();
        self.served.retain(|pk, served| {
            wanted
                .get(pk)
                .is_some_and(|g| g.token_id == served.token_id)
        });
        let mut changed = before != self.served.len();
        for (pk, group) in wanted {
            if self.served.contains_key(&pk) {
                continue;
            }
            match self.start_group(&group) {
                Some(served) => {
                    self.served.insert(pk, served);
                    changed = true;
                }
                None => tracing::warn!(
                    group = %hex::encode(&pk[..8]),
                    "a mirrored group's stored keys are not valid; not served"
                ),
            }
        }
        if changed {
            let groups: HashMap<[u8; 32], GroupLinks> = self
                .served
                .iter()
                .map(|(pk, served)| (*pk, served.links.clone()))
                .collect();
            tracing::info!(groups = groups.len(), "mirroring");
            self.metrics
                .mirror_groups
                .set(i64::try_from(groups.len()).unwrap_or(i64::MAX));
            self.replicator.do_send(GroupsChanged {
                source: DirectorySource::Mirror,
                groups: Arc::new(groups),
            });
        }
    }

    fn start_group(&mut self, group: &MirroredGroup) -> Option<Served> {
        let signing_pk = parse_public_key(&group.signing_pk).ok()?;
        let quota = self
            .quota_locks
            .entry(group.token_id.clone())
            .or_default()
            .clone();
        let store = |kind| {
            BlindStore::new(
                self.storage.clone(),
                LogId::new(group.group_pk, kind),
                group.token_id.clone(),
                self.appended.clone(),
                self.metrics.clone(),
                quota.clone(),
            )
            .start()
        };
        let stores = [store(LogKind::Metadata), store(LogKind::Messages)];
        let links = GroupLinks {
            link_key: LinkKey::from_bytes(group.link_key),
            signing_pk,
            stores: GroupStores {
                metadata: stores[0].clone().recipient(),
                messages: stores[1].clone().recipient(),
            },
            replicas: Vec::new(),
        };
        Some(Served {
            token_id: group.token_id.clone(),
            links,
            _stores: stores,
        })
    }
}

impl Actor for MirrorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        if let Some(requests) = self.requests.take() {
            ctx.add_stream(ReceiverStream::new(requests));
        }
        self.reload(ctx);
        ctx.run_interval(RELOAD_INTERVAL, |actor, ctx| actor.reload(ctx));
        if self.retention_days > 0 {
            self.purge(ctx);
            ctx.run_interval(crate::defaults::MIRROR_PURGE_INTERVAL, |actor, ctx| {
                actor.purge(ctx)
            });
        }
    }
}

impl StreamHandler<InboundMirrorRequest> for MirrorActor {
    fn handle(&mut self, item: InboundMirrorRequest, ctx: &mut Self::Context) {
        let storage = self.storage.clone();
        let InboundMirrorRequest {
            peer,
            request,
            reply,
        } = item;
        ctx.spawn(
            async move { register::answer(storage.as_ref(), request).await }
                .into_actor(self)
                .map(move |(response, changed), actor, ctx| {
                    tracing::info!(%peer, ?response, "mirror request answered");
                    let _ = reply.send(response);
                    if changed {
                        actor.reload(ctx);
                    }
                }),
        );
    }

    fn finished(&mut self, _: &mut Self::Context) {
        tracing::debug!("mirror requests ended");
    }
}

impl Handler<Reload> for MirrorActor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        self.reload(ctx);
    }
}
