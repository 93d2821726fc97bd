//! Log entries (`log::Entry::decode`, the signature rule of `log::verify`, the Lamport rule
//! and `log::MemLog`).
//!
//! Selector byte, then:
//! - `0`: bytes as received: decoded; a decoded entry is canonical (re-signing its fields
//!   gives the same layout) and its signature checks agree between `Entry::verify` and
//!   `verify_batch`;
//! - `1`: fields of an entry to sign (round trip: decode of the signed bytes is the entry, the
//!   signature verifies), then edits of the signed bytes (an edited entry that still decodes
//!   must not verify);
//! - `2`: a little DAG of signed entries inserted into a `MemLog` in a fuzzed order.
#![no_main]

mod common;

use berty_node::log::{
    check_lamport, verify_batch, Entry, EntryId, LogId, LogKind, MemLog, MAX_PARENTS,
};
use ed25519_dalek::SigningKey;
use libfuzzer_sys::{
    arbitrary::{Result, Unstructured},
    fuzz_target,
};
use sha2::{Digest, Sha256};

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 3 {
        0 => received(rest),
        1 => {
            let _ = signed(&mut Unstructured::new(rest));
        }
        _ => {
            let _ = dag(&mut Unstructured::new(rest));
        }
    }
});

fn received(bytes: &[u8]) {
    let Ok(entry) = Entry::decode(bytes) else {
        return;
    };
    assert_eq!(entry.bytes(), bytes);
    assert_eq!(entry.id(), EntryId(Sha256::digest(bytes).into()));
    assert!(
        entry.parents().windows(2).all(|w| w[0] < w[1]),
        "parents ascend"
    );
    assert!(entry.parents().len() <= MAX_PARENTS);
    assert_eq!(Entry::decode(entry.bytes()).as_ref(), Ok(&entry));
    // The same fields signed again: the same layout up to the signature.
    let again = Entry::sign(
        &key(),
        entry.log_id(),
        entry.parents().to_vec(),
        entry.lamport(),
        entry.payload(),
    )
    .expect("a decoded entry's fields can be signed");
    assert_eq!(again.bytes().len(), bytes.len());
    assert_eq!(again.bytes()[..bytes.len() - 64], bytes[..bytes.len() - 64]);
    let pk = key().verifying_key();
    let single = entry.verify(&pk).is_ok();
    assert_eq!(
        verify_batch(std::slice::from_ref(&entry), &pk),
        vec![single]
    );
    let _ = check_lamport(&entry, &[]);
    let _ = check_lamport(&entry, &[u64::MAX]);
    let mut log = MemLog::new(entry.log_id());
    let _ = log.insert(entry);
    let _ = log.total_order();
    let _ = log.missing();
}

fn log_id(u: &mut Unstructured) -> Result<LogId> {
    let kind = if u.arbitrary::<bool>()? {
        LogKind::Metadata
    } else {
        LogKind::Messages
    };
    Ok(LogId::new(u.arbitrary()?, kind))
}

fn signed(u: &mut Unstructured) -> Result<()> {
    let log = log_id(u)?;
    let parents: Vec<EntryId> = (0..u.int_in_range(0..=MAX_PARENTS + 2)?)
        .map(|_| u.arbitrary().map(EntryId))
        .collect::<Result<_>>()?;
    let lamport: u64 = u.arbitrary()?;
    let payload_len = u.int_in_range(0..=4096)?;
    let payload = u.bytes(payload_len.min(u.len()))?.to_vec();
    let key = key();
    let Ok(entry) = Entry::sign(&key, log, parents.clone(), lamport, &payload) else {
        return Ok(());
    };
    let decoded = Entry::decode(entry.bytes()).expect("a signed entry decodes");
    assert_eq!(decoded, entry, "entry round trip");
    assert_eq!(decoded.log_id(), log);
    assert_eq!(decoded.lamport(), lamport);
    assert_eq!(decoded.payload(), payload.as_slice());
    let mut sorted = parents;
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(decoded.parents(), sorted.as_slice());
    let pk = key.verifying_key();
    assert!(decoded.verify(&pk).is_ok());
    assert!(decoded
        .verify(&SigningKey::from_bytes(&[6; 32]).verifying_key())
        .is_err());

    // Edited bytes: a change that still decodes must not verify.
    let edits = u.bytes(u.len().min(30))?;
    let edited = common::mutate(entry.bytes(), edits);
    if edited != entry.bytes() {
        if let Ok(tampered) = Entry::decode(&edited) {
            assert!(tampered.verify(&pk).is_err(), "an edited entry verifies");
            assert_eq!(
                verify_batch(&[decoded.clone(), tampered], &pk),
                vec![true, false]
            );
        }
    }
    Ok(())
}

fn dag(u: &mut Unstructured) -> Result<()> {
    let log = log_id(u)?;
    let key = key();
    let mut entries: Vec<Entry> = Vec::new();
    for _ in 0..u.int_in_range(1..=24)? {
        let mut parents = Vec::new();
        if !entries.is_empty() {
            for _ in 0..u.int_in_range(0..=3)? {
                let index = u.choose_index(entries.len())?;
                parents.push(entries[index].clone());
            }
        }
        let right = parents
            .iter()
            .map(Entry::lamport)
            .max()
            .map_or(1, |l| l.saturating_add(1));
        let lamport = if u.ratio(1, 8)? {
            u.arbitrary()?
        } else {
            right
        };
        let ids = parents.iter().map(Entry::id).collect();
        let payload_len = u.int_in_range(0..=8)?;
        let payload = u.bytes(payload_len)?;
        if let Ok(entry) = Entry::sign(&key, log, ids, lamport, payload) {
            entries.push(entry);
        }
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    for i in (1..order.len()).rev() {
        let j = u.int_in_range(0..=i)?;
        order.swap(i, j);
    }
    let mut mem = MemLog::new(log);
    for index in order {
        let _ = mem.insert(entries[index].clone());
    }
    let order = mem.total_order();
    assert_eq!(order.len(), mem.len());
    for head in mem.heads() {
        assert!(mem.contains(&head));
    }
    // Every entry in the log keeps the Lamport rule with its parents.
    for entry in mem.iter() {
        let lamports: Vec<u64> = entry
            .parents()
            .iter()
            .map(|p| mem.get(p).expect("parents are in the log").lamport())
            .collect();
        assert!(check_lamport(entry, &lamports).is_ok());
    }
    Ok(())
}
