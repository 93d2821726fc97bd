//! The node values a **new device** keeps of an export (`init --import`), key by key:
//!
//! | exported | on the new device |
//! |---|---|
//! | `group/<g>` | the record with a new per-group device key |
//! | `chain/<g>` | the exporting device's sender chain becomes its receiver chain here (`recv/<g>/<its device>`), with its binding (`member/<g>/<its device>`): this device reads what the exporting device writes from now on (what it wrote before comes decoded with the export) |
//! | `chain0/<g>` | dropped: the new device makes its own chains on first start |
//! | `shared/<g>/<member>` | dropped: the exporting device shared its chain key, not this one; after its setup in a group the new device shares its own with every member the group knows |
//! | `device/imported`, `device/paired` | dropped; `device/imported` then names the exporting device (its account-level key), which DevicePair requires |
//! | anything else | kept |
//!
//! The exporting device's bindings are added because a device never stores its own (its
//! entries are not decoded where they are written); without them the new device would show
//! nothing the exporting device writes after the export.

use std::collections::HashMap;

use super::invalid;
use crate::{
    crypto::{derive_account_group, AccountKeys, ReceiverChain, SenderChain, SigningKey},
    error::Error,
    group::{GroupContext, GroupRecord},
    proto::wire,
    storage::value_keys::ValueKey,
};
use rand::rngs::OsRng;

/// The exporting device in one group: its device key there and its member key.
struct Exporter {
    device_pk: [u8; 32],
    member_pk: [u8; 32],
}

/// The node values (key, plaintext) a new device with `keys` stores from the values of an
/// export made by the device with `exported` keys.
pub(super) fn adapt_values(
    exported: &AccountKeys,
    keys: &AccountKeys,
    values: Vec<wire::ExportValue>,
) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut exporter = HashMap::new();
    let account_group = derive_account_group(exported.account_proof())
        .and_then(|genesis| genesis.finish(&exported.account_pk()))
        .map_err(|e| Error::crypto("deriving the account group", e))?
        .0;
    exporter.insert(
        account_group.group_pk().to_bytes(),
        Exporter {
            device_pk: exported.device_pk().to_bytes(),
            member_pk: exported.account_pk().to_bytes(),
        },
    );
    let mut records = HashMap::new();
    for value in &values {
        if let Ok(ValueKey::Group { group_pk }) = ValueKey::parse(&value.key) {
            let mut record = GroupRecord::decode(&value.value).map_err(invalid)?;
            let member = GroupContext::new(record.clone(), keys)?.member;
            exporter.insert(
                group_pk,
                Exporter {
                    device_pk: record.device.verifying_key().to_bytes(),
                    member_pk: member.verifying_key().to_bytes(),
                },
            );
            record.device = SigningKey::generate(&mut OsRng);
            records.insert(group_pk, record.encode());
        }
    }

    let mut kept = Vec::with_capacity(values.len() + 1);
    let mut added = Vec::new();
    for value in values {
        match ValueKey::parse(&value.key) {
            Ok(ValueKey::Group { group_pk }) => {
                if let Some(record) = records.remove(&group_pk) {
                    kept.push((value.key, record));
                }
            }
            Ok(ValueKey::Chain { group_pk }) => {
                let Some(exporter) = exporter.get(&group_pk) else {
                    continue;
                };
                let chain = SenderChain::from_bytes(&value.value)
                    .map_err(|e| invalid(format!("sender chain: {e}")))?;
                let receiver = ReceiverChain::new(
                    *chain.group_pk(),
                    chain.chain_key().clone(),
                    chain.counter(),
                );
                let device_pk = exporter.device_pk;
                added.push((
                    ValueKey::Receiver {
                        group_pk,
                        device_pk,
                    }
                    .to_string(),
                    receiver.to_bytes().to_vec(),
                ));
                added.push((
                    ValueKey::Member {
                        group_pk,
                        device_pk,
                    }
                    .to_string(),
                    exporter.member_pk.to_vec(),
                ));
            }
            Ok(
                ValueKey::FirstChain { .. }
                | ValueKey::SharedChain { .. }
                | ValueKey::DeviceImported
                | ValueKey::DevicePaired,
            ) => {}
            _ => kept.push((value.key, value.value)),
        }
    }
    kept.extend(added);
    kept.push((
        ValueKey::DeviceImported.to_string(),
        exported.device_pk().to_bytes().to_vec(),
    ));
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crypto::GroupGenesis;
    use crate::group::GroupKind;

    fn value(key: impl ToString, value: &[u8]) -> wire::ExportValue {
        wire::ExportValue {
            key: key.to_string(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn a_new_device_reads_the_exporting_device_and_owes_every_member_its_own_chain() {
        let exported = AccountKeys::generate(&mut OsRng);
        let keys = exported.with_new_device(&mut OsRng);
        let genesis = GroupGenesis::generate(&mut OsRng);
        let member = exported.member_key(&genesis.group_pk()).unwrap();
        let (group_keys, proof) = genesis.finish(&member.verifying_key()).unwrap();
        let old_device = SigningKey::generate(&mut OsRng);
        let record = GroupRecord {
            kind: GroupKind::Multi,
            keys: group_keys.clone(),
            proof: Some(proof),
            device: old_device.clone(),
            left: false,
            contact_pk: None,
            joined_seq: 1,
        };
        let g = group_keys.group_pk().to_bytes();
        let mut chain = SenderChain::generate(*group_keys.group_pk(), &mut OsRng);
        for _ in 0..3 {
            chain.next_key().unwrap();
        }
        let (account_group, _) = derive_account_group(exported.account_proof())
            .unwrap()
            .finish(&exported.account_pk())
            .unwrap();
        let a = account_group.group_pk().to_bytes();
        let account_chain = SenderChain::generate(*account_group.group_pk(), &mut OsRng);
        let other = ValueKey::Member {
            group_pk: g,
            device_pk: [9; 32],
        };
        let values = vec![
            value(ValueKey::Chain { group_pk: a }, &account_chain.to_bytes()),
            value(ValueKey::Chain { group_pk: g }, &chain.to_bytes()),
            value(ValueKey::FirstChain { group_pk: g }, &chain.to_bytes()),
            value(ValueKey::DeviceImported, &[1; 32]),
            value(ValueKey::DevicePaired, &[2; 32]),
            value(ValueKey::Group { group_pk: g }, &record.encode()),
            value(other, &[8; 32]),
            value(
                ValueKey::SharedChain {
                    group_pk: g,
                    member_pk: [8; 32],
                },
                &[1],
            ),
            value("settings", b"kept"),
        ];
        let adapted: BTreeMap<String, Vec<u8>> = adapt_values(&exported, &keys, values)
            .unwrap()
            .into_iter()
            .collect();

        let kept =
            GroupRecord::decode(&adapted[&ValueKey::Group { group_pk: g }.to_string()]).unwrap();
        assert_ne!(kept.device.verifying_key(), old_device.verifying_key());
        assert_eq!(adapted[&other.to_string()], vec![8; 32]);
        assert_eq!(adapted["settings"], b"kept".to_vec());
        assert_eq!(
            adapted[&ValueKey::DeviceImported.to_string()],
            exported.device_pk().to_bytes().to_vec()
        );
        for gone in [
            ValueKey::Chain { group_pk: g },
            ValueKey::Chain { group_pk: a },
            ValueKey::FirstChain { group_pk: g },
            ValueKey::DevicePaired,
            ValueKey::SharedChain {
                group_pk: g,
                member_pk: [8; 32],
            },
        ] {
            assert!(!adapted.contains_key(&gone.to_string()), "{gone}");
        }
        // The exporting device's next message in the group opens here.
        let device_pk = old_device.verifying_key().to_bytes();
        let receiver = ReceiverChain::from_bytes(
            &adapted[&ValueKey::Receiver {
                group_pk: g,
                device_pk,
            }
            .to_string()],
        )
        .unwrap();
        let (counter, key) = chain.next_key().unwrap();
        assert_eq!(counter, 3);
        assert_eq!(
            receiver.message_key(counter).unwrap().as_bytes(),
            key.as_bytes()
        );
        assert_eq!(
            adapted[&ValueKey::Member {
                group_pk: g,
                device_pk
            }
            .to_string()],
            member.verifying_key().to_bytes().to_vec()
        );
        // In the account group the exporting device is its account-level device, the member
        // the account key.
        let device_pk = exported.device_pk().to_bytes();
        assert_eq!(
            adapted[&ValueKey::Member {
                group_pk: a,
                device_pk
            }
            .to_string()],
            exported.account_pk().to_bytes().to_vec()
        );
        assert!(adapted.contains_key(
            &ValueKey::Receiver {
                group_pk: a,
                device_pk
            }
            .to_string()
        ));
    }
}
