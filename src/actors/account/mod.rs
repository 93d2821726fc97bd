//! [`AccountActor`]: the local account. It owns the account keys, the records of the groups
//! the account is in, the contact state, and the registry of group store actors (one per log,
//! started on first use, replaced when they stopped while idle).
//!
//! Account-level changes (joining, leaving, contacts) are serialised through this actor and
//! each is recorded as an event in the account log (the metadata log of the account group).
//! Message sends only pass through: the actor looks the group up and forwards to the group's
//! messages store, which batches and commits.

mod chain_keys;
mod devices;
mod groups;
pub mod mirrors;
mod writes;

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use rand::rngs::OsRng;

use crate::{
    actors::group_store::{GroupStoreActor, Learnt, LocalWrite, ReplayQueued, Write},
    crypto::{
        derive_account_group, seal_chain_key, sign_account_disclosure, sign_member_device,
        AccountKeys, SenderChain, SigningKey, VerifyingKey,
    },
    error::Error,
    group::{
        metadata::{AccountEvent, ChainKeyShare, Disclosure, MemberDevice},
        GroupContext, GroupKind, GroupRecord, GroupReference, MetadataEvent,
    },
    log::{EntryId, LogId, LogKind},
    metrics::Metrics,
    proto::berty_protocol::AccountEventType,
    replication::ports::{
        Directory, DirectorySource, GroupLinks, GroupStores, GroupsChanged, LogAppended,
    },
    storage::SealedValues,
    storage::{
        value_keys::{ValueKey, ValuePrefix},
        Storage,
    },
};

pub use devices::{PairDevice, Paired};
pub use groups::{CreateGroup, InviteGroup, JoinGroup, Joining, LeaveGroup};
pub use writes::{AppendAppEvent, OpenAccountLog, OpenLog, SendMessage, SetSetting};

use chain_keys::{chain_key_share, known_members, share_chain};

/// The account actor.
pub struct AccountActor {
    pub(crate) keys: AccountKeys,
    /// The logs (node values go through `values`, sealed).
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) values: SealedValues,
    metrics: Metrics,
    pub(crate) account_group: Arc<GroupContext>,
    pub(crate) groups: HashMap<[u8; 32], Arc<GroupContext>>,
    stores: HashMap<LogId, Addr<GroupStoreActor>>,
    next_seq: u64,
    replicator: Option<Replication>,
    /// This actor, as the stores reach it (set when it starts).
    follow_ups: Option<Recipient<Learnt>>,
    /// The mirrors each group is registered with (replication keeps them connected).
    mirrors: HashMap<[u8; 32], Vec<mirrors::MirrorOfGroup>>,
    /// The network side of contacts (none without a swarm, in unit tests).
    pub(crate) courier: Option<Addr<crate::courier::ContactCourier>>,
    /// Blocked contacts' account keys: their contact groups are not replicated.
    pub(crate) blocked: std::collections::HashSet<[u8; 32]>,
    lifeline: crate::supervision::Lifeline,
}

/// Where the account tells replication about new entries and about its groups.
#[derive(Clone)]
pub struct Replication {
    /// Receives every commit of every store.
    pub appended: Recipient<LogAppended>,
    /// Receives the groups to replicate whenever they change.
    pub groups: Recipient<GroupsChanged>,
}

impl AccountActor {
    /// Loads the account's groups and makes sure this device is set up in each of them
    /// (first start, or first start after an import as a new device).
    pub async fn load(
        keys: AccountKeys,
        storage: Arc<dyn Storage>,
        values: SealedValues,
        metrics: Metrics,
        lifeline: crate::supervision::Lifeline,
    ) -> Result<Self, Error> {
        let genesis = derive_account_group(keys.account_proof())
            .map_err(|e| Error::crypto("deriving the account group", e))?;
        let (group_keys, proof) = genesis
            .finish(&keys.account_pk())
            .map_err(|e| Error::crypto("deriving the account group", e))?;
        let account_record = GroupRecord {
            kind: GroupKind::Account,
            keys: group_keys,
            proof: Some(proof),
            device: keys.device().clone(),
            left: false,
            contact_pk: None,
            joined_seq: 0,
        };
        let account_group = Arc::new(GroupContext::new(account_record, &keys)?);

        let mut groups = HashMap::new();
        let mut next_seq = 1;
        let mut after: Option<String> = None;
        loop {
            let page = values
                .page(ValuePrefix::Groups, after.as_deref(), 500)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, plaintext) in page {
                let record = GroupRecord::decode(&plaintext)?;
                next_seq = next_seq.max(record.joined_seq + 1);
                let pk = record.group_pk().to_bytes();
                groups.insert(pk, Arc::new(GroupContext::new(record, &keys)?));
            }
        }
        let mirrors = mirrors::load_mirrors(&values).await?;
        let blocked = crate::actors::contacts::blocked_contacts(&values).await?;
        Ok(Self {
            keys,
            storage,
            values,
            metrics,
            account_group,
            groups,
            stores: HashMap::new(),
            next_seq,
            replicator: None,
            follow_ups: None,
            mirrors,
            courier: None,
            blocked,
            lifeline,
        })
    }

    /// The address of the store of `log` of `group`, started if it is not running.
    fn store(&mut self, group: &Arc<GroupContext>, kind: LogKind) -> Addr<GroupStoreActor> {
        let log = LogId::new(group.record.group_pk().to_bytes(), kind);
        if let Some(addr) = self.stores.get(&log) {
            if addr.connected() {
                return addr.clone();
            }
        }
        self.stores.retain(|_, addr| addr.connected());
        let addr = GroupStoreActor::new(
            log,
            group.clone(),
            self.storage.clone(),
            self.values.clone(),
            self.metrics.clone(),
            self.replicator.as_ref().map(|r| r.appended.clone()),
            self.follow_ups.clone(),
            self.lifeline
                .child("group store", crate::supervision::GROUP_STORE_RESTART),
        )
        .start();
        self.stores.insert(log, addr.clone());
        addr
    }

    /// A joined group by key, or the account group.
    fn group(&self, group_pk: &[u8; 32]) -> Option<Arc<GroupContext>> {
        if self.account_group.record.group_pk().as_bytes() == group_pk {
            return Some(self.account_group.clone());
        }
        self.groups.get(group_pk).cloned()
    }

    fn known_group(&self, group_pk: &[u8; 32]) -> Result<Arc<GroupContext>, Error> {
        self.group(group_pk).ok_or_else(|| {
            Error::NotFound(format!(
                "group {} is not known to this account",
                hex::encode(group_pk)
            ))
        })
    }

    pub(crate) fn joined_group(&self, group_pk: &[u8; 32]) -> Result<Arc<GroupContext>, Error> {
        let group = self.known_group(group_pk)?;
        if group.record.left {
            return Err(Error::FailedPrecondition(format!(
                "this account left group {}",
                hex::encode(group_pk)
            )));
        }
        Ok(group)
    }

    pub(crate) fn account_store(&mut self) -> Addr<GroupStoreActor> {
        let group = self.account_group.clone();
        self.store(&group, LogKind::Metadata)
    }

    /// Everything needed to set this device up in a group: the writes, done in order.
    fn device_setup(
        &mut self,
        group: &Arc<GroupContext>,
        meta: Vec<u8>,
    ) -> Result<DeviceSetup, Error> {
        let group_pk = *group.record.group_pk();
        let device_pk = group.record.device.verifying_key();
        let member_pk = group.member.verifying_key();
        let member_signature = sign_member_device(&group.member, &group_pk, &device_pk);
        let disclosure = match group.record.kind {
            GroupKind::Multi => Disclosure::Signed {
                account: self.keys.account_pk(),
                signature: sign_account_disclosure(self.keys.account(), &group_pk, &member_pk),
            },
            // In account and contact groups the member key is the account key.
            GroupKind::Account | GroupKind::Contact => Disclosure::MemberIsAccount,
        };
        let chain = SenderChain::generate(group_pk, &mut OsRng);
        let chain_write = chain_key_share(&group_pk, &device_pk, &member_pk, &chain)?;
        let member_write = LocalWrite::metadata(MetadataEvent::MemberDevice(MemberDevice {
            member: member_pk,
            device: device_pk,
            member_signature,
            disclosure,
            meta,
        }));
        Ok(DeviceSetup {
            metadata: self.store(group, LogKind::Metadata),
            writes: vec![member_write, chain_write],
            chain_key: ValueKey::Chain {
                group_pk: *group_pk.as_bytes(),
            }
            .to_string(),
            first_chain_key: ValueKey::FirstChain {
                group_pk: *group_pk.as_bytes(),
            }
            .to_string(),
            chain,
            group_pk,
            device_pk,
            member_pk,
        })
    }

    /// Connects the account to replication before it starts: every store reports its commits,
    /// and the account reports its groups (at start and on every change).
    pub fn set_replication(&mut self, replication: Replication) {
        self.replicator = Some(replication);
    }

    /// Connects the account to the contact-request courier before it starts.
    pub fn set_courier(&mut self, courier: Addr<crate::courier::ContactCourier>) {
        self.courier = Some(courier);
    }

    /// The groups to replicate (the account group and every group not left), each with its
    /// two stores (started if they are not running).
    fn directory(&mut self) -> Directory {
        let mut groups: Vec<Arc<GroupContext>> = self
            .groups
            .values()
            .filter(|g| !g.record.left)
            .filter(|g| {
                // A blocked contact's group is not replicated: its messages never arrive.
                g.record
                    .contact_pk
                    .is_none_or(|pk| !self.blocked.contains(pk.as_bytes()))
            })
            .cloned()
            .collect();
        groups.push(self.account_group.clone());
        let directory = groups
            .into_iter()
            .map(|g| {
                let links = GroupLinks {
                    link_key: g.keys().link_key().clone(),
                    signing_pk: g.keys().signing_pk(),
                    stores: GroupStores {
                        metadata: self.store(&g, LogKind::Metadata).recipient(),
                        messages: self.store(&g, LogKind::Messages).recipient(),
                    },
                    replicas: self
                        .mirrors
                        .get(g.record.group_pk().as_bytes())
                        .map(|mirrors| mirrors.iter().map(|m| (m.peer, m.addrs.clone())).collect())
                        .unwrap_or_default(),
                };
                (g.record.group_pk().to_bytes(), links)
            })
            .collect();
        Arc::new(directory)
    }

    /// Tells replication the current groups.
    pub(crate) fn publish_directory(&mut self) {
        if self.replicator.is_some() {
            let directory = self.directory();
            if let Some(replicator) = &self.replicator {
                replicator.groups.do_send(GroupsChanged {
                    source: DirectorySource::Account,
                    groups: directory,
                });
            }
        }
    }

    fn record_key(group: &GroupContext) -> String {
        ValueKey::Group {
            group_pk: group.record.group_pk().to_bytes(),
        }
        .to_string()
    }
}
/// The writes that set this device up in a group.
struct DeviceSetup {
    metadata: Addr<GroupStoreActor>,
    writes: Vec<LocalWrite>,
    chain_key: String,
    first_chain_key: String,
    chain: SenderChain,
    group_pk: VerifyingKey,
    device_pk: VerifyingKey,
    member_pk: VerifyingKey,
}

impl DeviceSetup {
    /// Saves the chain, writes the member and chain-key events, then shares the chain with
    /// every member the group already knows (a device imported from an export knows the
    /// members the exporting device met; later members get it through `Learnt`).
    async fn run(self, values: &SealedValues) -> Result<(), Error> {
        values.put(&self.chain_key, &self.chain.to_bytes()).await?;
        values
            .put(&self.first_chain_key, &self.chain.to_bytes())
            .await?;
        for write in self.writes {
            send(&self.metadata, write).await?;
        }
        let members = known_members(values, &self.group_pk, &self.member_pk).await?;
        share_chain(
            values,
            &self.metadata,
            &self.group_pk,
            &self.device_pk,
            &self.chain,
            members,
        )
        .await
    }
}
async fn send(store: &Addr<GroupStoreActor>, write: LocalWrite) -> Result<EntryId, Error> {
    store
        .send(Write(write))
        .await
        .map_err(|_| Error::stopped("group store actor is gone"))?
}

/// An account event write, shown to clients as `event_type` with `subject` and `data`.
pub(crate) fn account_event(
    event_type: AccountEventType,
    subject: Vec<u8>,
    data: Vec<u8>,
    extra: impl FnOnce(&mut AccountEvent),
) -> LocalWrite {
    let mut event = AccountEvent::new(event_type as i32, subject, data);
    extra(&mut event);
    LocalWrite::metadata(MetadataEvent::Account(event))
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.lifeline.arm(ctx);
        self.follow_ups = Some(ctx.address().recipient());
        if let Some(courier) = &self.courier {
            courier.do_send(crate::courier::Attach(crate::courier::AccountPorts {
                delivered: ctx.address().recipient(),
                failed: ctx.address().recipient(),
                incoming: ctx.address().recipient(),
            }));
        }
        self.start_contacts();
        tracing::info!(
            account = %hex::encode(&self.keys.account_pk().as_bytes()[..8]),
            device = %hex::encode(&self.keys.device_pk().as_bytes()[..8]),
            groups = self.groups.len(),
            "account started"
        );
        // Set this device up in every group it has no chain in yet (the account group on
        // first start; every group after an import as a new device).
        let mut groups: Vec<Arc<GroupContext>> = self.groups.values().cloned().collect();
        groups.push(self.account_group.clone());
        let values = self.values.clone();
        let mut setups = Vec::new();
        for group in groups.into_iter().filter(|g| !g.record.left) {
            match self.device_setup(&group, Vec::new()) {
                Ok(setup) => setups.push(setup),
                Err(e) => tracing::error!(%e, "cannot prepare device setup"),
            }
        }
        ctx.wait(
            async move {
                for setup in setups {
                    if values.get(&setup.chain_key).await?.is_none() {
                        setup.run(&values).await?;
                    }
                }
                Ok::<_, Error>(())
            }
            .into_actor(self)
            .map(|result, actor, _| {
                if let Err(e) = result {
                    tracing::error!(%e, "setting this device up in its groups failed");
                }
                // After the setup: publishing starts every group's stores, and a messages
                // store loads this device's chain when it starts.
                actor.publish_directory();
            }),
        );
    }
}
