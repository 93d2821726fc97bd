//! Export files (`import::parse_export`, what `init --import` / `--restore` reads before it
//! writes anything).
//!
//! Selector byte (bit 0: import as a new device or restore; bit 1: raw bytes or edits of a
//! valid export, see `common::mutate`), then the input.
#![no_main]

mod common;

use std::sync::LazyLock;

use berty_node::{
    actors::export::EXPORT_VERSION,
    crypto::{AccountKeys, SigningKey},
    group::{GroupKind, GroupRecord},
    import::{parse_export, ImportMode},
    log::{Entry, LogId, LogKind},
    proto::wire,
    storage::value_keys::ValueKey,
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn account() -> AccountKeys {
    AccountKeys::from_seeds(&[10; 32], &[11; 32], &[12; 32])
}

/// A small valid export: an account, a group record, a chain, one log of three entries with
/// an event.
static SAMPLE: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let keys = &common::GROUP.keys;
    let record = GroupRecord {
        kind: GroupKind::Multi,
        keys: keys.clone(),
        proof: Some(common::GROUP.proof.clone()),
        device: SigningKey::from_bytes(&[13; 32]),
        left: false,
        contact_pk: None,
        joined_seq: 1,
    };
    let log = LogId::new(keys.group_pk().to_bytes(), LogKind::Metadata);
    let root = Entry::sign(keys.signing_key(), log, vec![], 1, b"one").expect("sign");
    let second = Entry::sign(keys.signing_key(), log, vec![root.id()], 2, b"two").expect("sign");
    let third = Entry::sign(keys.signing_key(), log, vec![second.id()], 3, b"").expect("sign");
    wire::Export {
        version: EXPORT_VERSION,
        account_keys: account().to_bytes().to_vec(),
        values: vec![
            wire::ExportValue {
                key: ValueKey::Group {
                    group_pk: keys.group_pk().to_bytes(),
                }
                .to_string(),
                value: record.encode(),
            },
            wire::ExportValue {
                key: "chain/sender".into(),
                value: vec![1; 73],
            },
            wire::ExportValue {
                key: "settings".into(),
                value: b"{}".to_vec(),
            },
        ],
        logs: vec![wire::ExportLog {
            log_id: log.to_bytes().to_vec(),
            entries: vec![
                root.bytes().to_vec(),
                second.bytes().to_vec(),
                third.bytes().to_vec(),
            ],
            events: vec![wire::ExportEvent {
                entry_id: second.id().as_bytes().to_vec(),
                kind: 1,
                body: vec![0x0a, 0x01, 0x00],
            }],
        }],
    }
    .encode_to_vec()
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mode = if selector & 1 == 0 {
        ImportMode::NewDevice
    } else {
        ImportMode::Restore
    };
    let bytes = if selector & 2 == 0 {
        rest.to_vec()
    } else {
        common::mutate(&SAMPLE, rest)
    };
    let Ok(parsed) = parse_export(&bytes, mode) else {
        return;
    };
    let export = wire::Export::decode(bytes.as_slice()).expect("it parsed once");
    assert_eq!(parsed.logs.len(), export.logs.len());
    for (log, wire_log) in parsed.logs.iter().zip(&export.logs) {
        assert_eq!(log.log_id.to_bytes().as_slice(), wire_log.log_id.as_slice());
        assert_eq!(log.entries.len(), wire_log.entries.len());
        assert_eq!(log.events.len(), wire_log.events.len());
        for (entry, raw) in log.entries.iter().zip(&wire_log.entries) {
            assert_eq!(&entry.bytes, raw);
        }
    }
    let original = AccountKeys::from_bytes(&export.account_keys).expect("parsed once");
    assert_eq!(parsed.keys.account_pk(), original.account_pk());
    match mode {
        ImportMode::Restore => {
            assert_eq!(parsed.keys.device_pk(), original.device_pk());
            let values: Vec<_> = export
                .values
                .into_iter()
                .map(|v| (v.key, v.value))
                .collect();
            assert_eq!(
                parsed.values, values,
                "a restore keeps every value as it is"
            );
        }
        ImportMode::NewDevice => {
            assert!(parsed
                .values
                .iter()
                .all(|(key, _)| !key.starts_with("chain/")));
        }
    }
});
