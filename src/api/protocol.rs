//! The `ProtocolService` implementation: validates requests (limits, keys, references),
//! turns them into account-actor messages, and maps domain errors to gRPC statuses.

use std::{pin::Pin, sync::Arc};

use actix::{Addr, Handler, Message};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{
    actors::{
        account::{
            AccountActor, AppendAppEvent, CreateGroup, InviteGroup, JoinGroup, LeaveGroup,
            OpenAccountLog, OpenLog, PairDevice, SendMessage, SetSetting,
        },
        contacts::{
            ContactAction, EnqueueContactRequest, GetContactReference, ResetContactReference,
            SetContactRequests, UpdateContact,
        },
        export::ExportData,
    },
    api::{
        checked_keys::CheckedKeys,
        convert,
        subscriptions::{self, Convert, Range, Source},
    },
    defaults,
    error::Error,
    group::{parse_key, view::SettingScope, ContactReference, EventKind, GroupReference},
    log::{LogId, LogKind},
    metrics::Metrics,
    p2p::SwarmHandle,
    proto::berty_protocol::{self as pb, protocol_service_server::ProtocolService},
    storage::{Storage, StoredEvent},
};

/// A server-streaming reply.
type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The state of optional transports and roles, as reported by `InstanceGetConfiguration`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Capabilities {
    /// mDNS discovery is running.
    pub mdns: bool,
    /// The relay (client or server) is running.
    pub relay: bool,
}

/// The service, cheap to clone (every field is a handle).
#[derive(Clone)]
pub struct ProtocolApi {
    swarm: SwarmHandle,
    account: Addr<AccountActor>,
    storage: Arc<dyn Storage>,
    capabilities: Capabilities,
    metrics: Metrics,
    checked_keys: Arc<CheckedKeys>,
}

impl ProtocolApi {
    /// The API over a running node.
    pub fn new(
        swarm: SwarmHandle,
        account: Addr<AccountActor>,
        storage: Arc<dyn Storage>,
        capabilities: Capabilities,
        metrics: Metrics,
    ) -> Self {
        Self {
            swarm,
            account,
            storage,
            capabilities,
            metrics,
            checked_keys: Arc::default(),
        }
    }

    /// The group key a request names (`INVALID_ARGUMENT` naming `field` when it is not a
    /// public key), recorded in the call's span.
    fn group_key(&self, field: &str, bytes: &[u8]) -> Result<[u8; 32], Error> {
        let group_pk = self.checked_keys.check(field, bytes)?;
        super::record_group(&group_pk);
        Ok(group_pk)
    }

    /// The log of `kind` of the group a request names, and the event kind read from it.
    fn group_log(
        &self,
        group_pk: &[u8],
        kind: LogKind,
        event: EventKind,
    ) -> Result<(LogId, EventKind), Error> {
        Ok((
            LogId::new(self.group_key("group_pub_key", group_pk)?, kind),
            event,
        ))
    }

    /// Counts the call in metrics and turns domain errors into statuses.
    fn finish<T>(
        &self,
        method: &'static str,
        result: Result<T, Error>,
    ) -> Result<Response<T>, Status> {
        let result = result.map(Response::new).map_err(Status::from);
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        if let Err(status) = &result {
            tracing::debug!(method, code = ?status.code(), message = status.message(), "call failed");
        }
        self.metrics.observe_grpc(method, code);
        result
    }

    /// Sends a message to the account actor.
    async fn ask<M>(&self, msg: M) -> Result<M::Result, Error>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        AccountActor: Handler<M>,
    {
        self.account
            .send(msg)
            .await
            .map_err(|_| Error::stopped("the account actor is not running"))
    }

    async fn subscribe<T: Send + 'static>(
        &self,
        method: &'static str,
        log: Result<(LogId, EventKind), Error>,
        range: Range,
        convert: Convert<T>,
    ) -> Result<Response<ReplyStream<T>>, Status> {
        let result = async {
            let (log, kind) = log?;
            let (store, _) = self
                .ask(OpenLog {
                    group_pk: *log.group_pk(),
                    kind: log.kind(),
                })
                .await??;
            let source = Source {
                storage: self.storage.clone(),
                log,
                store,
                kinds: vec![kind.as_u8()],
            };
            let stream =
                subscriptions::subscribe(source, range, convert, self.metrics.clone()).await?;
            Ok(Box::pin(stream) as ReplyStream<T>)
        }
        .await;
        self.finish(method, result)
    }
}

fn setting_state(on: bool) -> i32 {
    use pb::instance_get_configuration::SettingState;
    if on {
        SettingState::Enabled as i32
    } else {
        SettingState::Disabled as i32
    }
}

fn check_len(field: &str, len: usize, max: usize) -> Result<(), Error> {
    if len > max {
        return Err(Error::InvalidArgument(format!(
            "{field}: {len} bytes is over the limit of {max} bytes"
        )));
    }
    Ok(())
}

fn check_setting(key: &str, value: &[u8]) -> Result<(), Error> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key: must not be empty".into()));
    }
    check_len("key", key.len(), defaults::MAX_SETTING_KEY)?;
    check_len("value", value.len(), defaults::MAX_SETTING_VALUE)
}

#[tonic::async_trait]
impl ProtocolService for ProtocolApi {
    type AccountSubscribeStream = ReplyStream<pb::account_subscribe::Reply>;
    type GroupSettingSubscribeStream = ReplyStream<pb::group_setting_store_subscribe::Reply>;
    type GroupMessageSubscribeStream = ReplyStream<pb::group_message_subscribe::Reply>;
    type GroupMemberSubscribeStream = ReplyStream<pb::group_member_subscribe::Reply>;

    async fn instance_export_data(
        &self,
        _: Request<pb::instance_export_data::Request>,
    ) -> Result<Response<pb::instance_export_data::Reply>, Status> {
        let result = async {
            let exported_data = self.ask(ExportData).await??;
            Ok(pb::instance_export_data::Reply { exported_data })
        }
        .await;
        self.finish("InstanceExportData", result)
    }

    async fn instance_get_configuration(
        &self,
        _: Request<pb::instance_get_configuration::Request>,
    ) -> Result<Response<pb::instance_get_configuration::Reply>, Status> {
        use pb::instance_get_configuration::{Reply, SettingState};
        let result = async {
            let info = self
                .swarm
                .info()
                .await
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            Ok(Reply {
                peer_id: info.peer_id.to_string(),
                listeners: info.listen_addrs.iter().map(|a| a.to_string()).collect(),
                ble_enabled: SettingState::Unavailable as i32,
                wifi_p2p_enabled: SettingState::Unavailable as i32,
                mdns_enabled: setting_state(self.capabilities.mdns),
                relay_enabled: setting_state(self.capabilities.relay),
            })
        }
        .await;
        self.finish("InstanceGetConfiguration", result)
    }

    async fn group_create(
        &self,
        _: Request<pb::group_create::Request>,
    ) -> Result<Response<pb::group_create::Reply>, Status> {
        let result = async {
            let group_pk = self.ask(CreateGroup).await??;
            Ok(pb::group_create::Reply {
                group_pub_key: group_pk.to_vec(),
            })
        }
        .await;
        self.finish("GroupCreate", result)
    }

    async fn group_join(
        &self,
        request: Request<pb::group_join::Request>,
    ) -> Result<Response<pb::group_join::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            check_len("meta", request.meta.len(), defaults::MAX_META)?;
            let reference = GroupReference::decode(&request.reference)?;
            self.ask(JoinGroup {
                reference,
                meta: request.meta,
            })
            .await??;
            Ok(pb::group_join::Reply {})
        }
        .await;
        self.finish("GroupJoin", result)
    }

    async fn group_leave(
        &self,
        request: Request<pb::group_leave::Request>,
    ) -> Result<Response<pb::group_leave::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            let group_pk = self.group_key("group_pub_key", &request.group_pub_key)?;
            self.ask(LeaveGroup(group_pk)).await??;
            Ok(pb::group_leave::Reply {})
        }
        .await;
        self.finish("GroupLeave", result)
    }

    async fn group_invite(
        &self,
        request: Request<pb::group_invite::Request>,
    ) -> Result<Response<pb::group_invite::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            let group_pk = self.group_key("group_pub_key", &request.group_pub_key)?;
            let reference = self.ask(InviteGroup(group_pk)).await??;
            Ok(pb::group_invite::Reply { reference })
        }
        .await;
        self.finish("GroupInvite", result)
    }

    async fn device_pair(
        &self,
        _: Request<pb::device_pair::Request>,
    ) -> Result<Response<pb::device_pair::Reply>, Status> {
        let result = async {
            let paired = self.ask(PairDevice).await??;
            Ok(pb::device_pair::Reply {
                device_pk: paired.device_pk.to_bytes().to_vec(),
                event_id: paired.event_id.as_bytes().to_vec(),
                already_paired: paired.already,
            })
        }
        .await;
        self.finish("DevicePair", result)
    }

    async fn contact_request_reference(
        &self,
        _: Request<pb::contact_request_reference::Request>,
    ) -> Result<Response<pb::contact_request_reference::Reply>, Status> {
        let result = async {
            let reference = self.ask(GetContactReference).await??;
            Ok(pb::contact_request_reference::Reply { reference })
        }
        .await;
        self.finish("ContactRequestReference", result)
    }

    async fn contact_request_disable(
        &self,
        _: Request<pb::contact_request_disable::Request>,
    ) -> Result<Response<pb::contact_request_disable::Reply>, Status> {
        let result = async {
            self.ask(SetContactRequests(false)).await??;
            Ok(pb::contact_request_disable::Reply {})
        }
        .await;
        self.finish("ContactRequestDisable", result)
    }

    async fn contact_request_enable(
        &self,
        _: Request<pb::contact_request_enable::Request>,
    ) -> Result<Response<pb::contact_request_enable::Reply>, Status> {
        let result = async {
            self.ask(SetContactRequests(true)).await??;
            Ok(pb::contact_request_enable::Reply {})
        }
        .await;
        self.finish("ContactRequestEnable", result)
    }

    async fn contact_request_reset_reference(
        &self,
        _: Request<pb::contact_request_reset_link::Request>,
    ) -> Result<Response<pb::contact_request_reset_link::Reply>, Status> {
        let result = async {
            let reference = self.ask(ResetContactReference).await??;
            Ok(pb::contact_request_reset_link::Reply { reference })
        }
        .await;
        self.finish("ContactRequestResetReference", result)
    }

    async fn contact_request_enqueue(
        &self,
        request: Request<pb::contact_request_enqueue::Request>,
    ) -> Result<Response<pb::contact_request_enqueue::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            check_len("meta", request.meta.len(), defaults::MAX_META)?;
            let reference = ContactReference::decode(&request.reference)?;
            self.ask(EnqueueContactRequest {
                reference,
                meta: request.meta,
            })
            .await??;
            Ok(pb::contact_request_enqueue::Reply {})
        }
        .await;
        self.finish("ContactRequestEnqueue", result)
    }

    async fn contact_request_accept(
        &self,
        request: Request<pb::contact_request_accept::Request>,
    ) -> Result<Response<pb::contact_request_accept::Reply>, Status> {
        let result = self
            .update_contact(&request.into_inner().contact_pub_key, ContactAction::Accept)
            .await
            .map(|()| pb::contact_request_accept::Reply {});
        self.finish("ContactRequestAccept", result)
    }

    async fn contact_remove(
        &self,
        request: Request<pb::contact_remove::Request>,
    ) -> Result<Response<pb::contact_remove::Reply>, Status> {
        let result = self
            .update_contact(&request.into_inner().contact_pub_key, ContactAction::Remove)
            .await
            .map(|()| pb::contact_remove::Reply {});
        self.finish("ContactRemove", result)
    }

    async fn contact_block(
        &self,
        request: Request<pb::contact_block::Request>,
    ) -> Result<Response<pb::contact_block::Reply>, Status> {
        let result = self
            .update_contact(&request.into_inner().contact_pub_key, ContactAction::Block)
            .await
            .map(|()| pb::contact_block::Reply {});
        self.finish("ContactBlock", result)
    }

    async fn contact_unblock(
        &self,
        request: Request<pb::contact_unblock::Request>,
    ) -> Result<Response<pb::contact_unblock::Reply>, Status> {
        let result = self
            .update_contact(
                &request.into_inner().contact_pub_key,
                ContactAction::Unblock,
            )
            .await
            .map(|()| pb::contact_unblock::Reply {});
        self.finish("ContactUnblock", result)
    }

    async fn group_setting_set_group(
        &self,
        request: Request<pb::group_setting_set_group::Request>,
    ) -> Result<Response<pb::group_setting_set_group::Reply>, Status> {
        let r = request.into_inner();
        let result = self
            .set_setting(&r.group_pub_key, SettingScope::Group, r.key, r.value)
            .await
            .map(|()| pb::group_setting_set_group::Reply {});
        self.finish("GroupSettingSetGroup", result)
    }

    async fn group_setting_set_member(
        &self,
        request: Request<pb::group_setting_set_member::Request>,
    ) -> Result<Response<pb::group_setting_set_member::Reply>, Status> {
        let r = request.into_inner();
        let result = self
            .set_setting(&r.group_pub_key, SettingScope::Member, r.key, r.value)
            .await
            .map(|()| pb::group_setting_set_member::Reply {});
        self.finish("GroupSettingSetMember", result)
    }

    async fn group_message_send(
        &self,
        request: Request<pb::group_message_send::Request>,
    ) -> Result<Response<pb::group_message_send::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            let group_pk = self.group_key("group_pub_key", &request.group_pub_key)?;
            check_len(
                "payload",
                request.payload.len(),
                defaults::MAX_MESSAGE_PAYLOAD,
            )?;
            let id = self
                .ask(SendMessage {
                    group_pk,
                    payload: request.payload,
                })
                .await??;
            Ok(pb::group_message_send::Reply {
                event_id: id.as_bytes().to_vec(),
            })
        }
        .await;
        self.finish("GroupMessageSend", result)
    }

    async fn account_append_app_specific_event(
        &self,
        request: Request<pb::account_append_app_specific_event::Request>,
    ) -> Result<Response<pb::account_append_app_specific_event::Reply>, Status> {
        let request = request.into_inner();
        let result = async {
            check_len("payload", request.payload.len(), defaults::MAX_APP_EVENT)?;
            self.ask(AppendAppEvent(request.payload)).await??;
            Ok(pb::account_append_app_specific_event::Reply {})
        }
        .await;
        self.finish("AccountAppendAppSpecificEvent", result)
    }

    async fn account_subscribe(
        &self,
        request: Request<pb::account_subscribe::Request>,
    ) -> Result<Response<Self::AccountSubscribeStream>, Status> {
        let r = request.into_inner();
        let range = Range::new(r.since, r.until, r.go_backwards, r.since_cursor);
        let log = async {
            let (_, group) = self.ask(OpenAccountLog).await?;
            Ok((
                LogId::new(group.record.group_pk().to_bytes(), LogKind::Metadata),
                EventKind::Account,
            ))
        }
        .await;
        self.subscribe("AccountSubscribe", log, range, Arc::new(convert::account))
            .await
    }

    async fn group_setting_subscribe(
        &self,
        request: Request<pb::group_setting_store_subscribe::Request>,
    ) -> Result<Response<Self::GroupSettingSubscribeStream>, Status> {
        let r = request.into_inner();
        let range = Range::new(r.since, r.until, r.go_backwards, r.since_cursor);
        self.subscribe_group(
            "GroupSettingSubscribe",
            &r.group_pub_key,
            (LogKind::Metadata, EventKind::Setting),
            range,
            convert::setting,
        )
        .await
    }

    async fn group_message_subscribe(
        &self,
        request: Request<pb::group_message_subscribe::Request>,
    ) -> Result<Response<Self::GroupMessageSubscribeStream>, Status> {
        let r = request.into_inner();
        let range = Range::new(r.since, r.until, r.go_backwards, r.since_cursor);
        self.subscribe_group(
            "GroupMessageSubscribe",
            &r.group_pub_key,
            (LogKind::Messages, EventKind::Message),
            range,
            convert::message,
        )
        .await
    }

    async fn group_member_subscribe(
        &self,
        request: Request<pb::group_member_subscribe::Request>,
    ) -> Result<Response<Self::GroupMemberSubscribeStream>, Status> {
        let r = request.into_inner();
        let range = Range::new(r.since, r.until, r.go_backwards, r.since_cursor);
        self.subscribe_group(
            "GroupMemberSubscribe",
            &r.group_pub_key,
            (LogKind::Metadata, EventKind::Member),
            range,
            convert::member,
        )
        .await
    }
}

impl ProtocolApi {
    /// A subscription to one kind of event of one of a group's logs.
    async fn subscribe_group<T: Send + 'static>(
        &self,
        method: &'static str,
        group_pub_key: &[u8],
        (log_kind, event_kind): (LogKind, EventKind),
        range: Range,
        convert: fn(&[u8; 32], &StoredEvent) -> Result<Option<T>, Error>,
    ) -> Result<Response<ReplyStream<T>>, Status> {
        let log = self.group_log(group_pub_key, log_kind, event_kind);
        let group_pk = log.as_ref().map(|(l, _)| *l.group_pk()).unwrap_or_default();
        self.subscribe(method, log, range, Arc::new(move |e| convert(&group_pk, e)))
            .await
    }

    async fn update_contact(&self, contact_pk: &[u8], action: ContactAction) -> Result<(), Error> {
        let contact_pk = parse_key("contact_pub_key", contact_pk)?;
        self.ask(UpdateContact { contact_pk, action }).await?
    }

    async fn set_setting(
        &self,
        group_pk: &[u8],
        scope: SettingScope,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        let group_pk = self.group_key("group_pub_key", group_pk)?;
        check_setting(&key, &value)?;
        self.ask(SetSetting {
            group_pk,
            scope,
            key,
            value,
        })
        .await??;
        Ok(())
    }
}
