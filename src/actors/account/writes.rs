//! Settings, messages and app events written through the account, and opening a log.

use super::*;

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
            let write = LocalWrite::metadata(MetadataEvent::Setting {
                scope: msg.scope,
                key: msg.key,
                value: msg.value,
            });
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
