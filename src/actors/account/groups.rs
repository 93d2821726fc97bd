//! Creating, joining, inviting to and leaving groups.

use super::*;

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
            Ok(reference) => AtomicResponse::new(self.join(Joining::multi(reference, Vec::new()))),
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
        AtomicResponse::new(self.join(Joining::multi(msg.reference, msg.meta)))
    }
}

/// A group to join: a multi-member group from its reference, or a contact group.
pub struct Joining {
    /// The group's keys and creation proof.
    pub reference: GroupReference,
    /// Shown to members on this device's member event.
    pub meta: Vec<u8>,
    /// A contact group: the contact's account key.
    pub contact: Option<VerifyingKey>,
    /// Whether to record `GroupJoined` in the account log (not when another device of the
    /// account recorded it already).
    pub record_event: bool,
}

impl Joining {
    /// A multi-member group joined on this device, recorded in the account log.
    pub fn multi(reference: GroupReference, meta: Vec<u8>) -> Self {
        Self {
            reference,
            meta,
            contact: None,
            record_event: true,
        }
    }
}

impl AccountActor {
    /// Joins a group: its record, this device's setup in it, `GroupJoined` (unless another
    /// device recorded it), then replication. Joining a group already joined is a no-op.
    pub(crate) fn join(
        &mut self,
        joining: Joining,
    ) -> ResponseActFuture<Self, Result<[u8; 32], Error>> {
        let Joining {
            reference,
            meta,
            contact,
            record_event,
        } = joining;
        let group_pk = reference.keys.group_pk().to_bytes();
        if let Some(existing) = self.group(&group_pk) {
            if existing.record.left && existing.record.kind == GroupKind::Contact {
                // A removed contact asked again (or accepted again): the same group, back.
                return self.rejoin(&existing, reference, record_event);
            }
            let result = if existing.record.kind == GroupKind::Account {
                Err(Error::InvalidArgument("this is the account group".into()))
            } else if existing.record.left {
                Err(Error::FailedPrecondition(
                    "this account left the group; rejoining is not supported".into(),
                ))
            } else {
                Ok(group_pk)
            };
            return Box::pin(fut::ready(result));
        }
        let prepared = (|| {
            let record = GroupRecord {
                kind: if contact.is_some() {
                    GroupKind::Contact
                } else {
                    GroupKind::Multi
                },
                keys: reference.keys.clone(),
                proof: Some(reference.proof.clone()),
                device: SigningKey::generate(&mut OsRng),
                left: false,
                contact_pk: contact,
                joined_seq: self.next_seq,
            };
            let group = Arc::new(GroupContext::new(record, &self.keys)?);
            let setup = self.device_setup(&group, meta)?;
            Ok::<_, Error>((group, setup))
        })();
        let (group, setup) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        self.next_seq += 1;
        let account = self.account_store();
        let values = self.values.clone();
        let record_key = Self::record_key(&group);
        let record = group.record.encode();
        let joined = record_event.then(|| {
            account_event(
                AccountEventType::GroupJoined,
                group_pk.to_vec(),
                Vec::new(),
                |e| {
                    e.group = Some(reference.clone());
                    e.contact_pk = contact;
                },
            )
        });
        Box::pin(
            async move {
                values.put(&record_key, &record).await?;
                setup.run(&values).await?;
                if let Some(joined) = joined {
                    send(&account, joined).await?;
                }
                Ok(())
            }
            .into_actor(self)
            .map(move |result: Result<(), Error>, actor, _| {
                result?;
                actor.groups.insert(group_pk, group);
                actor.publish_directory();
                Ok(group_pk)
            }),
        )
    }
}

impl AccountActor {
    /// Joins again a contact group this account left (`ContactRemove`): the record is no
    /// longer left, `GroupJoined` is recorded (unless another device did), replication
    /// resumes. This device's chain in the group was kept, so no new setup is needed.
    fn rejoin(
        &mut self,
        existing: &Arc<GroupContext>,
        reference: GroupReference,
        record_event: bool,
    ) -> ResponseActFuture<Self, Result<[u8; 32], Error>> {
        let group_pk = existing.record.group_pk().to_bytes();
        let contact = existing.record.contact_pk;
        let joined = record_event.then(|| {
            account_event(
                AccountEventType::GroupJoined,
                group_pk.to_vec(),
                Vec::new(),
                |e| {
                    e.group = Some(reference);
                    e.contact_pk = contact;
                },
            )
        });
        Box::pin(
            self.set_left(existing, false, joined)
                .map(move |result, _, _| result.map(|()| group_pk)),
        )
    }

    /// Marks a group left or joined again: its record saved, the account event written (when
    /// given), then replication updated. The stores stay registered (one actor per log); a
    /// left group's only serve reads and stop once idle.
    fn set_left(
        &mut self,
        group: &Arc<GroupContext>,
        left: bool,
        event: Option<LocalWrite>,
    ) -> ResponseActFuture<Self, Result<(), Error>> {
        let group_pk = group.record.group_pk().to_bytes();
        let mut record = group.record.clone();
        record.left = left;
        let group = match GroupContext::new(record, &self.keys) {
            Ok(group) => Arc::new(group),
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let account = self.account_store();
        let values = self.values.clone();
        let record_key = Self::record_key(&group);
        let record = group.record.encode();
        Box::pin(
            async move {
                values.put(&record_key, &record).await?;
                if let Some(event) = event {
                    send(&account, event).await?;
                }
                Ok(())
            }
            .into_actor(self)
            .map(move |result: Result<(), Error>, actor, _| {
                result?;
                actor.groups.insert(group_pk, group);
                actor.publish_directory();
                Ok(())
            }),
        )
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
        let multi = self.joined_group(&msg.0).and_then(|group| {
            if group.record.kind == GroupKind::Multi {
                Ok(())
            } else {
                Err(Error::InvalidArgument(
                    "only multi-member groups can be left (remove the contact instead)".into(),
                ))
            }
        });
        match multi {
            Ok(()) => AtomicResponse::new(self.leave(msg.0, true)),
            Err(e) => AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        }
    }
}

impl AccountActor {
    /// Leaves a joined group: `GroupLeft` (unless another device of the account recorded
    /// it), then the record marked left and replication stopped.
    pub(crate) fn leave(
        &mut self,
        group_pk: [u8; 32],
        record_event: bool,
    ) -> ResponseActFuture<Self, Result<(), Error>> {
        let group = match self.joined_group(&group_pk) {
            Ok(group) => group,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let event = record_event.then(|| {
            account_event(
                AccountEventType::GroupLeft,
                group_pk.to_vec(),
                Vec::new(),
                |_| {},
            )
        });
        self.set_left(&group, true, event)
    }
}
