//! The `ProtocolService` implementation: translates calls into actor messages and domain
//! errors into gRPC statuses.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{
    error::Error,
    metrics::Metrics,
    p2p::SwarmHandle,
    proto::berty_protocol::{self as pb, protocol_service_server::ProtocolService},
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
    capabilities: Capabilities,
    metrics: Metrics,
}

impl ProtocolApi {
    /// The API over a running node.
    pub fn new(swarm: SwarmHandle, capabilities: Capabilities, metrics: Metrics) -> Self {
        Self {
            swarm,
            capabilities,
            metrics,
        }
    }

    /// Counts the call in metrics and turns domain errors into statuses.
    fn finish<T>(&self, method: &'static str, result: Result<T, Error>) -> Result<Response<T>, Status> {
        let result = result.map(Response::new).map_err(Status::from);
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.metrics.observe_grpc(method, code);
        result
    }

    fn not_yet<T>(&self, method: &'static str) -> Result<Response<T>, Status> {
        self.finish(
            method,
            Err(Error::Unimplemented(format!(
                "{method} is not implemented by this berty-node version yet"
            ))),
        )
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

/// Writes the `ProtocolService` impl: the calls served so far, verbatim, plus an
/// `UNIMPLEMENTED` answer for each call not served yet. (A macro because `async_trait` must see
/// the stubs already expanded.)
macro_rules! protocol_service {
    (
        served { $($served:tt)* }
        not_yet { $($fn_name:ident: $module:ident => $rpc:literal),* $(,)? }
        not_yet_stream { $($sfn_name:ident: $stream:ident, $smodule:ident => $srpc:literal),* $(,)? }
    ) => {
        #[tonic::async_trait]
        impl ProtocolService for ProtocolApi {
            $($served)*
            $(
                async fn $fn_name(
                    &self,
                    _: Request<pb::$module::Request>,
                ) -> Result<Response<pb::$module::Reply>, Status> {
                    self.not_yet($rpc)
                }
            )*
            $(
                async fn $sfn_name(
                    &self,
                    _: Request<pb::$smodule::Request>,
                ) -> Result<Response<Self::$stream>, Status> {
                    self.not_yet($srpc)
                }
            )*
        }
    };
}

protocol_service! {
    served {
    type AccountSubscribeStream = ReplyStream<pb::account_subscribe::Reply>;
    type GroupSettingSubscribeStream = ReplyStream<pb::group_setting_store_subscribe::Reply>;
    type GroupMessageSubscribeStream = ReplyStream<pb::group_message_subscribe::Reply>;
    type GroupMemberSubscribeStream = ReplyStream<pb::group_member_subscribe::Reply>;

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
    }

    not_yet {
        instance_export_data: instance_export_data => "InstanceExportData",
        group_create: group_create => "GroupCreate",
        group_join: group_join => "GroupJoin",
        group_leave: group_leave => "GroupLeave",
        group_invite: group_invite => "GroupInvite",
        device_pair: device_pair => "DevicePair",
        contact_request_reference: contact_request_reference => "ContactRequestReference",
        contact_request_disable: contact_request_disable => "ContactRequestDisable",
        contact_request_enable: contact_request_enable => "ContactRequestEnable",
        contact_request_reset_reference: contact_request_reset_link => "ContactRequestResetReference",
        contact_request_enqueue: contact_request_enqueue => "ContactRequestEnqueue",
        contact_request_accept: contact_request_accept => "ContactRequestAccept",
        contact_remove: contact_remove => "ContactRemove",
        contact_block: contact_block => "ContactBlock",
        contact_unblock: contact_unblock => "ContactUnblock",
        group_setting_set_group: group_setting_set_group => "GroupSettingSetGroup",
        group_setting_set_member: group_setting_set_member => "GroupSettingSetMember",
        group_message_send: group_message_send => "GroupMessageSend",
        account_append_app_specific_event: account_append_app_specific_event => "AccountAppendAppSpecificEvent",
    }

    not_yet_stream {
        account_subscribe: AccountSubscribeStream, account_subscribe => "AccountSubscribe",
        group_setting_subscribe: GroupSettingSubscribeStream, group_setting_store_subscribe => "GroupSettingSubscribe",
        group_message_subscribe: GroupMessageSubscribeStream, group_message_subscribe => "GroupMessageSubscribe",
        group_member_subscribe: GroupMemberSubscribeStream, group_member_subscribe => "GroupMemberSubscribe",
    }
}
