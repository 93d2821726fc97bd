//! What the client prints, as pure functions from replies to text (so tests need no node).
//!
//! - Keys, references and event ids: alone on one line, base64url without padding.
//! - Subscription events: one JSON object per line, every field of the event, binary values in
//!   base64url without padding, byte strings also as `*_text` when they are valid UTF-8.
//! - `config`: one pretty-printed JSON object.
//! - `device pair`: one JSON object on one line (this device's key, the `DevicePaired` entry
//!   id, whether it was paired already).
//! - Failures, on stderr: `error: <CODE>: <message>` for a gRPC status (the canonical upper-case
//!   code name), `error: <message>` for anything else.

use std::io::{self, Write};

use serde::Serialize;
use tonic::{Code, Status};

use super::encoding::encode;
use crate::proto::berty_protocol::{
    self as pb, instance_get_configuration::SettingState, AccountEventType,
    GroupSettingStoreSettingType,
};

/// An enum value by its schema name, or by number when this client does not know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EnumValue {
    /// A value this client knows, by its name in the schema.
    Name(&'static str),
    /// A value newer than this client.
    Number(i32),
}

/// The fields of `GroupStoreEvent` and its `EventBase`, flattened into each group event line.
#[derive(Debug, Serialize)]
struct GroupEventFields {
    id: String,
    parent_ids: Vec<String>,
    cursor: u64,
    group_pub_key: String,
    group_member_pub_key: String,
    group_device_pub_key: String,
    account_pub_key: String,
}

impl GroupEventFields {
    fn new(event: Option<&pb::GroupStoreEvent>) -> Self {
        let event = event.cloned().unwrap_or_default();
        let base = event.event_base.unwrap_or_default();
        Self {
            id: encode(&base.id),
            parent_ids: base.parent_ids.iter().map(|p| encode(p)).collect(),
            cursor: event.cursor,
            group_pub_key: encode(&event.group_pub_key),
            group_member_pub_key: encode(&event.group_member_pub_key),
            group_device_pub_key: encode(&event.group_device_pub_key),
            account_pub_key: encode(&event.account_pub_key),
        }
    }
}

#[derive(Serialize)]
struct MessageLine {
    #[serde(flatten)]
    event: GroupEventFields,
    payload_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_text: Option<String>,
}

#[derive(Serialize)]
struct MemberLine {
    #[serde(flatten)]
    event: GroupEventFields,
    meta_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta_text: Option<String>,
}

#[derive(Serialize)]
struct SettingLine<'a> {
    #[serde(flatten)]
    event: GroupEventFields,
    setting_type: EnumValue,
    key: &'a str,
    value_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_text: Option<String>,
}

#[derive(Serialize)]
struct AccountLine {
    id: String,
    parent_ids: Vec<String>,
    cursor: u64,
    event_type: EnumValue,
    subject_public_key_bytes: String,
    data_base64: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_text: Option<String>,
}

#[derive(Serialize)]
struct ConfigView<'a> {
    peer_id: &'a str,
    listeners: &'a [String],
    ble_enabled: EnumValue,
    wifi_p2p_enabled: EnumValue,
    mdns_enabled: EnumValue,
    relay_enabled: EnumValue,
}

/// One JSON line for a `group subscribe` event (`GroupMessageStoreEvent`).
pub fn message_event_line(event: &pb::GroupMessageStoreEvent) -> serde_json::Result<String> {
    serde_json::to_string(&MessageLine {
        event: GroupEventFields::new(event.group_store_event.as_ref()),
        payload_base64: encode(&event.payload),
        payload_text: utf8(&event.payload),
    })
}

/// One JSON line for a `group members` event (`GroupMemberStoreEvent`).
pub fn member_event_line(event: &pb::GroupMemberStoreEvent) -> serde_json::Result<String> {
    serde_json::to_string(&MemberLine {
        event: GroupEventFields::new(event.group_store_event.as_ref()),
        meta_base64: encode(&event.meta),
        meta_text: utf8(&event.meta),
    })
}

/// One JSON line for a `group settings` event (`GroupSettingStoreEvent`).
pub fn setting_event_line(event: &pb::GroupSettingStoreEvent) -> serde_json::Result<String> {
    serde_json::to_string(&SettingLine {
        event: GroupEventFields::new(event.group_store_event.as_ref()),
        setting_type: setting_type_name(event.setting_type),
        key: &event.key,
        value_base64: encode(&event.value),
        value_text: utf8(&event.value),
    })
}

/// One JSON line for an `account subscribe` event (`AccountStoreEvent`).
pub fn account_event_line(event: &pb::AccountStoreEvent) -> serde_json::Result<String> {
    let base = event.event_base.clone().unwrap_or_default();
    serde_json::to_string(&AccountLine {
        id: encode(&base.id),
        parent_ids: base.parent_ids.iter().map(|p| encode(p)).collect(),
        cursor: event.cursor,
        event_type: account_event_type_name(event.event_type),
        subject_public_key_bytes: encode(&event.subject_public_key_bytes),
        data_base64: encode(&event.data),
        data_text: utf8(&event.data),
    })
}

/// The `config` output: the node's configuration as pretty-printed JSON.
pub fn config_text(reply: &pb::instance_get_configuration::Reply) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&ConfigView {
        peer_id: &reply.peer_id,
        listeners: &reply.listeners,
        ble_enabled: setting_state_name(reply.ble_enabled),
        wifi_p2p_enabled: setting_state_name(reply.wifi_p2p_enabled),
        mdns_enabled: setting_state_name(reply.mdns_enabled),
        relay_enabled: setting_state_name(reply.relay_enabled),
    })
}

#[derive(Serialize)]
struct PairedLine {
    device_pk: String,
    event_id: String,
    already_paired: bool,
}

/// The `device pair` output: one JSON line.
pub fn device_pair_line(reply: &pb::device_pair::Reply) -> serde_json::Result<String> {
    serde_json::to_string(&PairedLine {
        device_pk: encode(&reply.device_pk),
        event_id: encode(&reply.event_id),
        already_paired: reply.already_paired,
    })
}

/// `AccountEventType` by its schema name (`AccountEventType_GroupJoined`, ...).
pub fn account_event_type_name(value: i32) -> EnumValue {
    AccountEventType::try_from(value)
        .map(|t| EnumValue::Name(t.as_str_name()))
        .unwrap_or(EnumValue::Number(value))
}

/// `GroupSettingStoreSettingType` by its schema name (`Group`, `Member`, `Unknown`).
pub fn setting_type_name(value: i32) -> EnumValue {
    GroupSettingStoreSettingType::try_from(value)
        .map(|t| EnumValue::Name(t.as_str_name()))
        .unwrap_or(EnumValue::Number(value))
}

/// `InstanceGetConfiguration.SettingState` by its schema name (`Enabled`, `Unavailable`, ...).
pub fn setting_state_name(value: i32) -> EnumValue {
    SettingState::try_from(value)
        .map(|s| EnumValue::Name(s.as_str_name()))
        .unwrap_or(EnumValue::Number(value))
}

/// The canonical gRPC name of a status code (`UNAUTHENTICATED`, `NOT_FOUND`, ...).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `error: <CODE>: <message>` (or `error: <CODE>` when the message is empty).
pub fn status_line(status: &Status) -> String {
    let message = printable(status.message());
    if message.is_empty() {
        format!("error: {}", code_name(status.code()))
    } else {
        format!("error: {}: {message}", code_name(status.code()))
    }
}

/// The stderr line for a failed command: the gRPC status if there is one in the error chain,
/// otherwise the error and its causes.
pub fn error_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Status>())
        .map(status_line)
        .unwrap_or_else(|| format!("error: {}", printable(&format!("{error:#}"))))
}

/// Writes one line to stdout and flushes it, so a reader of a pipe sees each event at once.
pub fn print_line(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(line.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere left to report it).
pub fn print_stderr(line: &str) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    let _ = stderr.write_all(b"\n");
}

fn utf8(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

/// Control characters from the server escaped, so a message cannot drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn group_event() -> pb::GroupStoreEvent {
        pb::GroupStoreEvent {
            event_base: Some(pb::EventBase {
                id: vec![1; 32],
                parent_ids: vec![vec![2; 32], vec![3; 32]],
            }),
            group_pub_key: vec![4; 32],
            group_member_pub_key: vec![5; 32],
            group_device_pub_key: vec![6; 32],
            account_pub_key: Vec::new(),
            cursor: 42,
        }
    }

    fn parse(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn a_message_event_has_every_field() {
        let line = message_event_line(&pb::GroupMessageStoreEvent {
            group_store_event: Some(group_event()),
            payload: "héllo\n".as_bytes().to_vec(),
        })
        .unwrap();
        assert_eq!(
            parse(&line),
            json!({
                "id": encode(&[1; 32]),
                "parent_ids": [encode(&[2; 32]), encode(&[3; 32])],
                "cursor": 42,
                "group_pub_key": encode(&[4; 32]),
                "group_member_pub_key": encode(&[5; 32]),
                "group_device_pub_key": encode(&[6; 32]),
                "account_pub_key": "",
                "payload_base64": encode("héllo\n".as_bytes()),
                "payload_text": "héllo\n",
            })
        );
        // Fields come in a stable, readable order.
        assert!(line.starts_with("{\"id\":\"AQEB"), "{line}");
        assert!(line.find("\"cursor\"") < line.find("\"payload_base64\""));
    }

    #[test]
    fn binary_payloads_have_no_text() {
        let line = message_event_line(&pb::GroupMessageStoreEvent {
            group_store_event: Some(group_event()),
            payload: vec![0xff, 0xfe, 0x00],
        })
        .unwrap();
        let value = parse(&line);
        assert_eq!(value["payload_base64"], "__4A");
        assert!(value.get("payload_text").is_none());
    }

    #[test]
    fn a_missing_group_event_renders_as_empty_fields() {
        let value = parse(&message_event_line(&pb::GroupMessageStoreEvent::default()).unwrap());
        assert_eq!(value["id"], "");
        assert_eq!(value["parent_ids"], json!([]));
        assert_eq!(value["cursor"], 0);
        assert_eq!(value["payload_text"], "");
    }

    #[test]
    fn a_member_event_shows_meta() {
        let value = parse(
            &member_event_line(&pb::GroupMemberStoreEvent {
                group_store_event: Some(group_event()),
                meta: b"Alice".to_vec(),
            })
            .unwrap(),
        );
        assert_eq!(value["group_member_pub_key"], encode(&[5; 32]));
        assert_eq!(value["meta_base64"], "QWxpY2U");
        assert_eq!(value["meta_text"], "Alice");
    }

    #[test]
    fn a_setting_event_names_its_type() {
        let value = parse(
            &setting_event_line(&pb::GroupSettingStoreEvent {
                group_store_event: Some(group_event()),
                setting_type: GroupSettingStoreSettingType::Member as i32,
                key: "name".to_string(),
                value: b"Bob".to_vec(),
            })
            .unwrap(),
        );
        assert_eq!(value["setting_type"], "Member");
        assert_eq!(value["key"], "name");
        assert_eq!(value["value_base64"], "Qm9i");
        assert_eq!(value["value_text"], "Bob");
        assert_eq!(value["cursor"], 42);
    }

    #[test]
    fn an_account_event_names_its_type() {
        let event = pb::AccountStoreEvent {
            subject_public_key_bytes: vec![7; 32],
            data: Vec::new(),
            event_base: Some(pb::EventBase {
                id: vec![8; 32],
                parent_ids: vec![vec![9; 32]],
            }),
            event_type: AccountEventType::GroupJoined as i32,
            cursor: 3,
        };
        assert_eq!(
            parse(&account_event_line(&event).unwrap()),
            json!({
                "id": encode(&[8; 32]),
                "parent_ids": [encode(&[9; 32])],
                "cursor": 3,
                "event_type": "AccountEventType_GroupJoined",
                "subject_public_key_bytes": encode(&[7; 32]),
                "data_base64": "",
                "data_text": "",
            })
        );
        let unknown = pb::AccountStoreEvent {
            event_type: 99,
            ..event
        };
        assert_eq!(
            parse(&account_event_line(&unknown).unwrap())["event_type"],
            99
        );
    }

    #[test]
    fn config_is_pretty_json_with_state_names() {
        let text = config_text(&pb::instance_get_configuration::Reply {
            peer_id: "12D3KooWexample".to_string(),
            listeners: vec!["/ip4/127.0.0.1/tcp/4040/p2p/12D3KooWexample".to_string()],
            ble_enabled: SettingState::Unavailable as i32,
            wifi_p2p_enabled: SettingState::Unavailable as i32,
            mdns_enabled: SettingState::Disabled as i32,
            relay_enabled: SettingState::Enabled as i32,
        })
        .unwrap();
        assert!(
            text.contains("\n  \"peer_id\": \"12D3KooWexample\""),
            "{text}"
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["ble_enabled"], "Unavailable");
        assert_eq!(value["mdns_enabled"], "Disabled");
        assert_eq!(value["relay_enabled"], "Enabled");
        assert_eq!(
            value["listeners"][0],
            "/ip4/127.0.0.1/tcp/4040/p2p/12D3KooWexample"
        );
    }

    #[test]
    fn device_pair_is_one_json_line() {
        let line = device_pair_line(&pb::device_pair::Reply {
            device_pk: vec![0xfb; 3],
            event_id: vec![1, 2, 3],
            already_paired: true,
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"device_pk":"-_v7","event_id":"AQID","already_paired":true}"#
        );
    }

    #[test]
    fn statuses_print_their_canonical_code() {
        assert_eq!(
            status_line(&Status::unauthenticated("missing or wrong bearer token")),
            "error: UNAUTHENTICATED: missing or wrong bearer token"
        );
        assert_eq!(status_line(&Status::not_found("")), "error: NOT_FOUND");
        assert_eq!(
            status_line(&Status::internal("a\nb\u{1b}[31m")),
            "error: INTERNAL: a\\nb\\u{1b}[31m"
        );
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn errors_find_the_status_behind_context() {
        let error = anyhow::Error::new(Status::permission_denied("creator only"))
            .context("group set-group");
        assert_eq!(error_line(&error), "error: PERMISSION_DENIED: creator only");
        let local = anyhow::anyhow!("out.bin exists").context("export");
        assert_eq!(error_line(&local), "error: export: out.bin exists");
    }
}
