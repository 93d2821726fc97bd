//! Reaching the node: the address, the bearer token, and the gRPC channel.

use std::{error::Error as StdError, path::Path, time::Duration};

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::{Channel, Endpoint},
    Request, Status,
};

use crate::proto::{
    berty_protocol::protocol_service_client::ProtocolServiceClient,
    node_api::mirror_service_client::MirrorServiceClient,
};

/// Where the client looks for the node when `--addr` and `BERTY_NODE_ADDR` are not given
/// (the node's default `api.grpc_listen`).
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:9091";
/// Largest reply the client accepts (an export holds every key, group and log).
pub const MAX_DECODING_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// How long connecting may take before the call fails with `UNAVAILABLE`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `ProtocolService` client that sends the bearer token on every call.
pub type ProtocolClient = ProtocolServiceClient<InterceptedService<Channel, BearerToken>>;
/// A `berty.node.v1.MirrorService` client that sends the bearer token on every call.
pub type MirrorClient = MirrorServiceClient<InterceptedService<Channel, BearerToken>>;

/// clap value parser for `--addr`: `http://host:port`, or `host:port` (read as `http://`).
///
/// TLS is not built into this client, so `https://` is refused with a hint rather than failing
/// later with a transport error.
pub fn parse_addr(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let scheme = url.split("://").next().unwrap_or_default();
    if scheme.eq_ignore_ascii_case("https") {
        return Err(
            "this client does not speak TLS; use http:// (through an SSH tunnel or a \
                    TLS-terminating proxy when the node is remote)"
                .to_string(),
        );
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!(
            "unsupported scheme {scheme:?}; use http://host:port"
        ));
    }
    Endpoint::from_shared(url.clone()).map_err(|e| format!("not a valid address: {e}"))?;
    Ok(url)
}

/// clap value parser for `--token`: printable ASCII (it travels in an HTTP/2 header).
pub fn parse_token(text: &str) -> Result<String, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("the token is empty".to_string());
    }
    bearer_value(token)?;
    Ok(token.to_string())
}

/// Reads a token from a file (surrounding whitespace, such as the final newline, is ignored).
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --token-file {}: {e}", path.display()))?;
    parse_token(&text).map_err(|e| anyhow::anyhow!("--token-file {}: {e}", path.display()))
}

fn bearer_value(token: &str) -> Result<MetadataValue<Ascii>, String> {
    if !token.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("the token must be printable ASCII".to_string());
    }
    let mut value = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| "the token must be printable ASCII".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Adds `authorization: Bearer <token>` to every call (nothing when no token is configured).
#[derive(Clone, Default)]
pub struct BearerToken {
    header: Option<MetadataValue<Ascii>>,
}

impl BearerToken {
    /// The interceptor for `token` (`None`: send no header). Fails on a token that cannot be
    /// sent in a header.
    pub fn new(token: Option<&str>) -> Result<Self, String> {
        Ok(Self {
            header: token.map(bearer_value).transpose()?,
        })
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// What is needed to open a connection; connecting is deferred so that local input (payload
/// files, output paths) is checked before the node is contacted.
#[derive(Clone)]
pub struct Connector {
    addr: String,
    token: BearerToken,
}

impl Connector {
    /// A connector for `addr` (already checked by [`parse_addr`]).
    pub fn new(addr: String, token: BearerToken) -> Self {
        Self { addr, token }
    }

    /// Opens the channel for `ProtocolService`. A failure is reported as `UNAVAILABLE`, like
    /// any unreachable server.
    pub async fn connect(&self) -> Result<ProtocolClient, Status> {
        Ok(
            ProtocolServiceClient::with_interceptor(self.channel().await?, self.token.clone())
                .max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
        )
    }

    /// Opens the channel for our `MirrorService`.
    pub async fn connect_mirror(&self) -> Result<MirrorClient, Status> {
        Ok(MirrorServiceClient::with_interceptor(
            self.channel().await?,
            self.token.clone(),
        ))
    }

    async fn channel(&self) -> Result<Channel, Status> {
        let endpoint = Endpoint::from_shared(self.addr.clone())
            .map_err(|e| Status::invalid_argument(format!("bad address {}: {e}", self.addr)))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect().await.map_err(|e| {
            Status::unavailable(format!(
                "cannot connect to {}: {}",
                self.addr,
                error_chain(&e)
            ))
        })?;
        Ok(channel)
    }
}

/// An error and its sources, joined with ": " (transport errors hide the cause in sources).
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_http() {
        assert_eq!(
            parse_addr("127.0.0.1:9091").unwrap(),
            "http://127.0.0.1:9091"
        );
        assert_eq!(parse_addr(" http://[::1]:1 ").unwrap(), "http://[::1]:1");
        assert_eq!(parse_addr("HTTP://node:9091").unwrap(), "HTTP://node:9091");
        assert!(parse_addr("https://node:9091").unwrap_err().contains("TLS"));
        assert!(parse_addr("ftp://node").unwrap_err().contains("scheme"));
        assert!(parse_addr("http://a b").is_err());
    }

    #[test]
    fn tokens_are_trimmed_and_checked() {
        assert_eq!(parse_token(" s3cret\n").unwrap(), "s3cret");
        assert!(parse_token(" \n").is_err());
        assert!(parse_token("two\nlines").is_err());
        assert!(parse_token("caf\u{e9}").is_err());
    }

    #[test]
    fn the_interceptor_sends_the_bearer_header() {
        let mut with = BearerToken::new(Some("abc")).unwrap();
        let request = with.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer abc"
        );
        let mut without = BearerToken::new(None).unwrap();
        let request = without.call(Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }
}
