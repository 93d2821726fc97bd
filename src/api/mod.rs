//! The gRPC API: the `berty.protocol.ProtocolService` served with tonic, with reflection and
//! bearer-token authentication.

pub mod auth;
mod checked_keys;
pub mod convert;
pub mod mirror;
pub mod protocol;
pub mod status;
mod stored_messages;
pub mod subscriptions;

use std::net::SocketAddr;

use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::transport::server::TcpIncoming;

use crate::{
    defaults,
    proto::{
        berty_protocol::protocol_service_server::ProtocolServiceServer,
        node_api::mirror_service_server::MirrorServiceServer, FILE_DESCRIPTOR_SET,
    },
};

pub use mirror::MirrorApi;

pub use protocol::ProtocolApi;

/// What can go wrong starting the gRPC server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} for gRPC: {source}")]
    Bind {
        /// `api.grpc_listen`.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Reflection could not be built from the embedded descriptors.
    #[error("gRPC reflection: {0}")]
    Reflection(String),
}

/// The accepted connections of `listener`, each with `TCP_NODELAY`: replies and stream events
/// are small writes, and without it Nagle's algorithm holds one back until the client's
/// delayed ACK (about 40 ms) — a latency spike on every few deliveries.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The span every gRPC call runs in: `rpc` is the method's name (the last segment of the
/// path, `GroupMessageSend`); `group` is empty until the call parses a group key (see
/// [`record_group`]).
fn call_span(path: &str) -> tracing::Span {
    let rpc = path.rsplit('/').next().unwrap_or(path);
    tracing::info_span!("grpc", rpc, group = tracing::field::Empty)
}

/// Records the group a call names in its span, as the first 8 bytes in hex (as logs print a
/// `LogId`).
pub(crate) fn record_group(group_pk: &[u8; 32]) {
    tracing::Span::current().record("group", hex::encode(&group_pk[..8]));
}

/// Binds `addr` and serves the API until `shutdown` turns true. Returns the bound address
/// (port 0 picks a free port) and the server task, which ends with the server's result.
pub async fn serve(
    addr: SocketAddr,
    api: ProtocolApi,
    mirror: MirrorApi,
    token: Option<String>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<Result<(), tonic::transport::Error>>), ApiError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ApiError::Reflection(e.to_string()))?;
    let auth = auth::BearerAuth::new(token);
    // Reflection says which calls exist; behind the token like everything else.
    let reflection = tonic::service::interceptor::InterceptedService::new(reflection, auth.clone());
    let service = tonic::service::interceptor::InterceptedService::new(
        ProtocolServiceServer::new(api)
            .max_decoding_message_size(defaults::GRPC_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(defaults::GRPC_MAX_MESSAGE_BYTES),
        auth.clone(),
    );
    let mirror = tonic::service::interceptor::InterceptedService::new(
        MirrorServiceServer::new(mirror),
        auth,
    );
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .trace_fn(|request| call_span(request.uri().path()))
            .add_service(reflection)
            .add_service(service)
            .add_service(mirror)
            .serve_with_incoming_shutdown(incoming(listener), async move {
                while !*shutdown.borrow() {
                    if shutdown.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.expect("a connection").unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY on accepted sockets"
        );
    }
}
