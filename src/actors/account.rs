//! [`AccountActor`]: the local account. It owns the account keys, the records of the groups
//! the account is in, the contact state, and the registry of group store actors (one per log,
//! started on first use, replaced when they stopped while idle).
//!
//! Account-level changes (joining, leaving, contacts) are serialised through this actor and
//! each is recorded as an event in the account log (the metadata log of the account group).
//! Message sends only pass through: the actor looks the group up and forwards to the group's
//! messages store, which batches and commits.

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use rand::rngs::OsRng;

use crate::{
    actors::group_store::{GroupStoreActor, LocalWrite, LogAppended, Write},
    crypto::{
        derive_account_group, seal_chain_key, sign_account_disclosure, sign_member_device,
        AccountKeys, SenderChain, SigningKey, VerifyingKey,
    },
    error::Error,
    group::{GroupContext, GroupKind, GroupRecord, GroupReference, ViewBody},
    log::{EntryId, LogId, LogKind},
    metrics::Metrics,
    proto::{berty_protocol::AccountEventType, wire},
    replication::replicator::{Directory, GroupLinks, GroupsChanged},
    sealed_values::SealedValues,
    storage::{
        value_keys::{ValueKey, ValuePrefix},
        Storage,
    },
};

/// The metadata write sharing `chain` (its key and counter) of this device with one member,
/// sealed to that member's key.
fn chain_key_share(
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
    .map_err(|e| Error::Internal(format!("sealing the chain key: {e}")))?;
    Ok(LocalWrite::Metadata {
        event: wire::MetadataEvent {
            event: Some(wire::metadata_event::Event::ChainKey(wire::ChainKeyShare {
                recipient_member_pk: recipient.as_bytes().to_vec(),
                sealed_chain_key,
            })),
        },
        view: None,
    })
}

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
    ) -> Result<Self, Error> {
        let genesis = derive_account_group(keys.account_proof())
            .map_err(|e| Error::Internal(format!("deriving the account group: {e}")))?;
        let (group_keys, proof) = genesis
            .finish(&keys.account_pk())
            .map_err(|e| Error::Internal(format!("deriving the account group: {e}")))?;
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

    fn joined_group(&self, group_pk: &[u8; 32]) -> Result<Arc<GroupContext>, Error> {
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
        let (account_pk, account_signature) = match group.record.kind {
            GroupKind::Multi => (
                self.keys.account_pk().as_bytes().to_vec(),
                sign_account_disclosure(self.keys.account(), &group_pk, &member_pk)
                    .to_bytes()
                    .to_vec(),
            ),
            // In account and contact groups the member key is the account key.
            GroupKind::Account | GroupKind::Contact => (member_pk.as_bytes().to_vec(), Vec::new()),
        };
        let chain = SenderChain::generate(group_pk, &mut OsRng);
        let chain_write = chain_key_share(&group_pk, &device_pk, &member_pk, &chain)?;
        let member_write = LocalWrite::Metadata {
            event: wire::MetadataEvent {
                event: Some(wire::metadata_event::Event::MemberDevice(
                    wire::MemberDevice {
                        member_pk: member_pk.as_bytes().to_vec(),
                        device_pk: device_pk.as_bytes().to_vec(),
                        member_signature: member_signature.to_bytes().to_vec(),
                        account_pk: account_pk.clone(),
                        account_signature,
                        meta: meta.clone(),
                    },
                )),
            },
            view: Some(ViewBody::Member { account_pk, meta }),
        };
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
        })
    }

    /// Connects the account to replication before it starts: every store reports its commits,
    /// and the account reports its groups (at start and on every change).
    pub fn set_replication(&mut self, replication: Replication) {
        self.replicator = Some(replication);
    }

    /// The groups to replicate: the account group and every group not left.
    fn directory(&self) -> Directory {
        let links = |g: &GroupContext| GroupLinks {
            link_key: g.keys().link_key().clone(),
            signing_pk: g.keys().signing_pk(),
        };
        let mut directory: HashMap<[u8; 32], GroupLinks> = self
            .groups
            .iter()
            .filter(|(_, g)| !g.record.left)
            .map(|(pk, g)| (*pk, links(g)))
            .collect();
        directory.insert(
            self.account_group.record.group_pk().to_bytes(),
            links(&self.account_group),
        );
        Arc::new(directory)
    }

    /// Tells replication the current groups.
    fn publish_directory(&self) {
        if let Some(replicator) = &self.replicator {
            replicator.groups.do_send(GroupsChanged(self.directory()));
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
}

impl DeviceSetup {
    /// Saves the chain, then writes the member and chain-key events.
    async fn run(self, values: &SealedValues) -> Result<(), Error> {
        values.put(&self.chain_key, &self.chain.to_bytes()).await?;
        values
            .put(&self.first_chain_key, &self.chain.to_bytes())
            .await?;
        for write in self.writes {
            send(&self.metadata, write).await?;
        }
        Ok(())
    }
}

async fn send(store: &Addr<GroupStoreActor>, write: LocalWrite) -> Result<EntryId, Error> {
    store
        .send(Write(write))
        .await
        .map_err(|_| Error::Unavailable("group store actor is gone".into()))?
}

/// An account event write, shown to clients as `event_type` with `subject` and `data`.
pub(crate) fn account_event(
    event_type: AccountEventType,
    subject: Vec<u8>,
    data: Vec<u8>,
    extra: impl FnOnce(&mut wire::AccountEvent),
) -> LocalWrite {
    let mut event = wire::AccountEvent {
        event_type: event_type as i32,
        subject: subject.clone(),
        data: data.clone(),
        ..Default::default()
    };
    extra(&mut event);
    LocalWrite::Metadata {
        event: wire::MetadataEvent {
            event: Some(wire::metadata_event::Event::AccountEvent(event)),
        },
        view: Some(ViewBody::Account {
            event_type: event_type as i32,
            subject,
            data,
        }),
    }
}

impl Actor for AccountActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish_directory();
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
            .map(|result, _, _| {
                if let Err(e) = result {
                    tracing::error!(%e, "setting this device up in its groups failed");
                }
            }),
        );
    }
}

/// Creates a multi-member group with this account as creator and first member.
#[derive(Message)]
#[rtype(result = "Result<[u8; 32], Error>")]
pub struct CreateGroup;

impl Handler<CreateGroup> for AccountActor {
    type Result = AtomicResponse<Self, Result<[u8; 32], Error>>;

    fn handle(&mut self, _: CreateGroup, _: &mut Self::Context) -> Self::Result {
        let result = (|| {
            let genesis = crate::crypto::GroupGenesis::generate(&mut OsRng);
            let member = self
                .keys
                .member_key(&genesis.group_pk())
                .map_err(|e| Error::Internal(e.to_string()))?;
            let (keys, proof) = genesis
                .finish(&member.verifying_key())
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok(GroupReference { keys, proof })
        })();
        match result {
            Ok(reference) => self.join(reference, Vec::new()),
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

/// Joins a group from its reference.
#[derive(Message)]
#[rtype(result = "Result<[u8; 32], Error>")]
pub struct JoinGroup {
    /// The parsed, verified reference.
    pub reference: GroupReference,
    /// Shown to members on this device's member event.
    pub meta: Vec<u8>,
}

impl Handler<JoinGroup> for AccountActor {
    type Result = AtomicResponse<Self, Result<[u8; 32], Error>>;

    fn handle(&mut self, msg: JoinGroup, _: &mut Self::Context) -> Self::Result {
        self.join(msg.reference, msg.meta)
    }
}

impl AccountActor {
    fn join(
        &mut self,
        reference: GroupReference,
        meta: Vec<u8>,
    ) -> AtomicResponse<Self, Result<[u8; 32], Error>> {
        let group_pk = reference.keys.group_pk().to_bytes();
        if let Some(existing) = self.group(&group_pk) {
            let result = if existing.record.kind == GroupKind::Account {
                Err(Error::InvalidArgument("this is the account group".into()))
            } else if existing.record.left {
                Err(Error::FailedPrecondition(
                    "this account left the group; rejoining is not supported".into(),
                ))
            } else {
                Ok(group_pk)
            };
            return AtomicResponse::new(Box::pin(fut::ready(result)));
        }
        let prepared = (|| {
            let record = GroupRecord {
                kind: GroupKind::Multi,
                keys: reference.keys.clone(),
                proof: Some(reference.proof.clone()),
                device: SigningKey::generate(&mut OsRng),
                left: false,
                contact_pk: None,
                joined_seq: self.next_seq,
            };
            let group = Arc::new(GroupContext::new(record, &self.keys)?);
            let setup = self.device_setup(&group, meta)?;
            Ok::<_, Error>((group, setup))
        })();
        let (group, setup) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        self.next_seq += 1;
        let account = self.account_store();
        let values = self.values.clone();
        let record_key = Self::record_key(&group);
        let record = group.record.encode();
        let joined = account_event(
            AccountEventType::GroupJoined,
            group_pk.to_vec(),
            Vec::new(),
            |e| e.group = Some(reference.to_wire()),
        );
        AtomicResponse::new(Box::pin(
            async move {
                values.put(&record_key, &record).await?;
                setup.run(&values).await?;
                send(&account, joined).await?;
                Ok(())
            }
            .into_actor(self)
            .map(move |result: Result<(), Error>, actor, _| {
                result?;
                actor.groups.insert(group_pk, group);
                actor.publish_directory();
                Ok(group_pk)
            }),
        ))
    }
}

/// The invitation to a multi-member group this account is in.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, Error>")]
pub struct InviteGroup(pub [u8; 32]);

impl Handler<InviteGroup> for AccountActor {
    type Result = Result<Vec<u8>, Error>;

    fn handle(&mut self, msg: InviteGroup, _: &mut Self::Context) -> Self::Result {
        let group = self.joined_group(&msg.0)?;
        let Some(proof) = group
            .record
            .proof
            .clone()
            .filter(|_| group.record.kind == GroupKind::Multi)
        else {
            return Err(Error::InvalidArgument(
                "only multi-member groups have invitations".into(),
            ));
        };
        Ok(GroupReference {
            keys: group.record.keys.clone(),
            proof,
        }
        .encode())
    }
}

/// Leaves a group: history stays readable, sends fail from now on.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct LeaveGroup(pub [u8; 32]);

impl Handler<LeaveGroup> for AccountActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, msg: LeaveGroup, _: &mut Self::Context) -> Self::Result {
        let group_pk = msg.0;
        let prepared = self.joined_group(&group_pk).and_then(|group| {
            if group.record.kind != GroupKind::Multi {
                return Err(Error::InvalidArgument(
                    "only multi-member groups can be left (remove the contact instead)".into(),
                ));
            }
            let mut record = group.record.clone();
            record.left = true;
            Ok(Arc::new(GroupContext::new(record, &self.keys)?))
        });
        let left = match prepared {
            Ok(left) => left,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let account = self.account_store();
        let values = self.values.clone();
        let record_key = Self::record_key(&left);
        let record = left.record.encode();
        let event = account_event(
            AccountEventType::GroupLeft,
            group_pk.to_vec(),
            Vec::new(),
            |_| {},
        );
        AtomicResponse::new(Box::pin(
            async move {
                send(&account, event).await?;
                values.put(&record_key, &record).await?;
                Ok(())
            }
            .into_actor(self)
            .map(move |result: Result<(), Error>, actor, _| {
                result?;
                // The stores stay registered (one actor per log); with no writes allowed they
                // only serve reads and stop once idle.
                actor.groups.insert(group_pk, left);
                actor.publish_directory();
                Ok(())
            }),
        ))
    }
}

/// Writes a setting in a joined group.
#[derive(Message)]
#[rtype(result = "Result<EntryId, Error>")]
pub struct SetSetting {
    /// The group.
    pub group_pk: [u8; 32],
    /// Group-wide (creator only) or the caller's member setting.
    pub scope: crate::group::view::SettingScope,
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

impl Handler<SetSetting> for AccountActor {
    type Result = ResponseFuture<Result<EntryId, Error>>;

    fn handle(&mut self, msg: SetSetting, _: &mut Self::Context) -> Self::Result {
        use crate::group::view::SettingScope;
        let prepared = self.joined_group(&msg.group_pk).and_then(|group| {
            if msg.scope == SettingScope::Group && !group.is_creator() {
                return Err(Error::PermissionDenied(
                    "only the group's creator may set group settings".into(),
                ));
            }
            Ok(self.store(&group, LogKind::Metadata))
        });
        Box::pin(async move {
            let store = prepared?;
            let scope = match msg.scope {
                SettingScope::Group => wire::SettingScope::Group,
                SettingScope::Member => wire::SettingScope::Member,
            };
            let write = LocalWrite::Metadata {
                event: wire::MetadataEvent {
                    event: Some(wire::metadata_event::Event::Setting(wire::Setting {
                        scope: scope as i32,
                        key: msg.key.clone(),
                        value: msg.value.clone(),
                    })),
                },
                view: Some(ViewBody::Setting {
                    scope: msg.scope,
                    key: msg.key,
                    value: msg.value,
                }),
            };
            send(&store, write).await
        })
    }
}

/// Sends a message to a joined group; replies with the stored entry's id.
#[derive(Message)]
#[rtype(result = "Result<EntryId, Error>")]
pub struct SendMessage {
    /// The group.
    pub group_pk: [u8; 32],
    /// The plaintext.
    pub payload: Vec<u8>,
}

impl Handler<SendMessage> for AccountActor {
    type Result = ResponseFuture<Result<EntryId, Error>>;

    fn handle(&mut self, msg: SendMessage, _: &mut Self::Context) -> Self::Result {
        let store = self
            .joined_group(&msg.group_pk)
            .map(|group| self.store(&group, LogKind::Messages));
        Box::pin(async move {
            send(
                &store?,
                LocalWrite::Message {
                    payload: msg.payload,
                },
            )
            .await
        })
    }
}

/// Appends an app-specific event to the account log.
#[derive(Message)]
#[rtype(result = "Result<EntryId, Error>")]
pub struct AppendAppEvent(pub Vec<u8>);

impl Handler<AppendAppEvent> for AccountActor {
    type Result = ResponseFuture<Result<EntryId, Error>>;

    fn handle(&mut self, msg: AppendAppEvent, _: &mut Self::Context) -> Self::Result {
        let store = self.account_store();
        let device = self.keys.device_pk().as_bytes().to_vec();
        let event = account_event(AccountEventType::AppSpecified, device, msg.0, |_| {});
        Box::pin(async move { send(&store, event).await })
    }
}

/// The store of one log of a known group (joined or left), for reading and watching.
#[derive(Message)]
#[rtype(result = "Result<(Addr<GroupStoreActor>, Arc<GroupContext>), Error>")]
pub struct OpenLog {
    /// The group.
    pub group_pk: [u8; 32],
    /// Which log.
    pub kind: LogKind,
}

impl Handler<OpenLog> for AccountActor {
    type Result = Result<(Addr<GroupStoreActor>, Arc<GroupContext>), Error>;

    fn handle(&mut self, msg: OpenLog, _: &mut Self::Context) -> Self::Result {
        let group = self.known_group(&msg.group_pk)?;
        Ok((self.store(&group, msg.kind), group))
    }
}

/// The account log's store and the account group.
#[derive(Message)]
#[rtype(result = "(Addr<GroupStoreActor>, Arc<GroupContext>)")]
pub struct OpenAccountLog;

impl Handler<OpenAccountLog> for AccountActor {
    type Result = MessageResult<OpenAccountLog>;

    fn handle(&mut self, _: OpenAccountLog, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.account_store(), self.account_group.clone()))
    }
}

/// Shares this device's chain key (from its first message on, so the whole history reads)
/// with members seen for the first time, once per member.
#[derive(Message)]
#[rtype(result = "Result<(), Error>")]
pub struct ShareChainKey {
    /// The group.
    pub group_pk: [u8; 32],
    /// The members.
    pub members: Vec<[u8; 32]>,
}

impl Handler<ShareChainKey> for AccountActor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: ShareChainKey, _: &mut Self::Context) -> Self::Result {
        let group = match self.joined_group(&msg.group_pk) {
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
                .map_err(|e| Error::Internal(format!("stored chain does not parse: {e}")))?;
            for member in msg.members {
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
                let write = chain_key_share(&group_pk, &device_pk, &member_pk, &chain)?;
                send(&metadata, write).await?;
                values.put(&marker, &[1]).await?;
            }
            Ok(())
        })
    }
}
