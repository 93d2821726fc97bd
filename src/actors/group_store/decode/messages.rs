//! The messages view: headers opened, keys taken from the senders' receiver chains in order,
//! bodies opened and author signatures checked in batches (on every core for large ones).

use std::collections::HashMap;

use super::new_event;
use crate::{
    crypto::{
        open_body_unverified, open_header_with, verify_batch, MessageHeader, MessageKey,
        ParsedKeys, ReceiverChain, SignatureCheck,
    },
    group::{GroupContext, ViewBody, ViewEvent},
    log::{parallel::in_parallel, Entry, EntryId, LogKind},
    storage::NewEvent,
};

/// One message entry with its opened header.
#[derive(Clone)]
pub struct OpenedMessage {
    /// The entry.
    pub entry: Entry,
    /// Its header.
    pub header: MessageHeader,
}

/// Opens the headers of message entries; those that do not open are dropped (counted).
/// CPU-bound (one AEAD and one key parse per entry): large batches use every core, and each
/// device key is parsed once per chunk. Run it off the actors' threads.
pub fn open_headers(group: &GroupContext, entries: Vec<Entry>) -> (Vec<OpenedMessage>, usize) {
    let headers = in_parallel(&entries, |chunk| {
        let mut parsed = ParsedKeys::default();
        chunk
            .iter()
            .map(|entry| {
                open_header_with(
                    group.keys(),
                    LogKind::Messages,
                    entry.payload(),
                    &mut parsed,
                )
                .ok()
            })
            .collect::<Vec<_>>()
    });
    let mut skipped = 0;
    let opened = entries
        .into_iter()
        .zip(headers.into_iter().flatten())
        .filter_map(|(entry, header)| match header {
            Some(header) => Some(OpenedMessage { entry, header }),
            None => {
                skipped += 1;
                None
            }
        })
        .collect();
    (opened, skipped)
}

/// What decoding messages produced.
#[derive(Debug, Default)]
pub struct MessagesDecoded {
    /// View events to commit.
    pub events: Vec<NewEvent>,
    /// Messages whose sender's chain key is not here yet: (device, lamport, id).
    pub queued: Vec<([u8; 32], u64, EntryId)>,
    /// Devices whose chain advanced (store their chains).
    pub touched: Vec<[u8; 32]>,
    /// Messages that break a rule (bad signature, key already used, out of window).
    pub skipped: usize,
}

/// A message whose key was found, to open and check.
struct Keyed {
    index: usize,
    key: MessageKey,
    member: [u8; 32],
}

/// A message that opened and whose author signature holds: its index, plaintext, member and
/// key (kept in the stored event, which does not copy the plaintext).
type Checked = (usize, Vec<u8>, [u8; 32], MessageKey);

/// Opens the bodies of `keyed` messages and checks their author signatures (one batch, then
/// one by one if the batch fails): the plaintext of each that opens and verifies, in order.
fn open_and_check(
    group: &GroupContext,
    messages: &[OpenedMessage],
    keyed: &[Keyed],
) -> Vec<Option<Checked>> {
    let opened: Vec<Option<(Checked, SignatureCheck)>> = keyed
        .iter()
        .map(|k| {
            let message = messages.get(k.index)?;
            open_body_unverified(
                group.keys(),
                LogKind::Messages,
                &message.header,
                &k.key,
                message.entry.payload(),
            )
            .ok()
            .map(|(plaintext, check)| ((k.index, plaintext, k.member, k.key.clone()), check))
        })
        .collect();
    let checks: Vec<SignatureCheck> = opened.iter().flatten().map(|o| o.1.clone()).collect();
    let all_valid = verify_batch(&checks).is_ok();
    opened
        .into_iter()
        .map(|o| {
            let (checked, check) = o?;
            (all_valid || check.verify().is_ok()).then_some(checked)
        })
        .collect()
}

/// Decodes messages in total order with the receiver chains of their senders (advanced as
/// keys are used). Keys are found in order (each sender's chain is sequential); bodies are
/// opened and author signatures checked in batches, on every core for large batches; a
/// failed batch is checked one by one so a bad message never hides good ones. CPU-bound: run
/// it off the actors' threads.
pub fn decode_messages(
    group: &GroupContext,
    chains: &mut HashMap<[u8; 32], ReceiverChain>,
    members: &HashMap<[u8; 32], [u8; 32]>,
    messages: &[OpenedMessage],
) -> MessagesDecoded {
    let mut out = MessagesDecoded::default();
    // Open with keys from trial copies of the chains: a forged message must not burn the key
    // of the genuine one (the real chain moves only for messages whose author signature
    // holds). Walking a copy forward keeps a batch linear in its size.
    let mut trials: HashMap<[u8; 32], ReceiverChain> = HashMap::new();
    // Keys already taken from a trial copy in this batch: two messages naming the same device
    // and counter (a forgery and the genuine one) both get the key to try; the real chain
    // below gives it to the first whose author signature holds.
    let mut taken: HashMap<([u8; 32], u64), MessageKey> = HashMap::new();
    let mut keyed: Vec<Keyed> = Vec::new();
    for (index, message) in messages.iter().enumerate() {
        let device = message.header.device.to_bytes();
        let (Some(chain), Some(member)) = (chains.get(&device), members.get(&device)) else {
            out.queued
                .push((device, message.entry.lamport(), message.entry.id()));
            continue;
        };
        let counter = message.header.counter;
        let key = match taken.get(&(device, counter)) {
            Some(key) => Ok(key.clone()),
            None => {
                let trial = trials.entry(device).or_insert_with(|| chain.clone());
                trial.consume(counter).inspect(|key| {
                    taken.insert((device, counter), key.clone());
                })
            }
        };
        match key {
            Ok(key) => keyed.push(Keyed {
                index,
                key,
                member: *member,
            }),
            Err(e) => {
                tracing::debug!(entry = %message.entry.id(), %e, "message key unavailable");
                out.skipped += 1;
            }
        }
    }
    let checked: Vec<_> = in_parallel(&keyed, |chunk| open_and_check(group, messages, chunk))
        .into_iter()
        .flatten()
        .collect();
    // When every keyed message opened and its author signature holds, and no two named the
    // same key, the real chains would take exactly the steps the trial copies took, in the
    // same order (a failed step changes no chain): the copies replace them, and the keys are
    // not derived twice.
    let trials_hold = keyed.len() == taken.len() && checked.iter().all(Option::is_some);
    if trials_hold {
        chains.extend(trials);
    }
    for result in checked {
        let Some((index, plaintext, member, key)) = result else {
            out.skipped += 1;
            continue;
        };
        let Some(message) = messages.get(index) else {
            continue;
        };
        let device = message.header.device.to_bytes();
        // Use the key up now; a second message with the same counter fails here.
        if !trials_hold {
            let consumed = chains
                .get_mut(&device)
                .map(|chain| chain.consume(message.header.counter));
            if !matches!(consumed, Some(Ok(_))) {
                out.skipped += 1;
                continue;
            }
        }
        if !out.touched.contains(&device) {
            out.touched.push(device);
        }
        let event = ViewEvent {
            member_pk: member,
            device_pk: device,
            body: ViewBody::Message { payload: plaintext },
        };
        let stored = ViewEvent::keyed_message(member, device, message.header.counter, &key);
        out.events
            .push(new_event(&message.entry, &event, Some(&stored)));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::OsRng;

    use super::super::fixtures::*;
    use super::*;
    use crate::{crypto::SenderChain, group::EventKind};

    #[test]
    fn a_batch_longer_than_the_receive_window_opens_whole() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let count = crate::crypto::RECEIVE_WINDOW as usize + 100;
        let texts: Vec<Vec<u8>> = (0..count).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        let entries = messages(&b, &mut chain, &refs);
        let (opened, _) = open_headers(&a.context, entries);
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 0);
        assert_eq!(out.events.len(), count);
    }

    #[test]
    fn messages_open_in_order_with_the_senders_chain() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let texts: [&[u8]; 3] = [b"one", b"two", b"three"];
        let entries = messages(&b, &mut chain, &texts);
        let (opened, unopened) = open_headers(&a.context, entries.clone());
        assert_eq!(unopened, 0);
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 0);
        assert!(out.queued.is_empty());
        assert_eq!(out.touched, vec![b.device_pk()]);
        assert_eq!(
            views(&out.events),
            texts.map(|text| message_view(&b, text)).to_vec()
        );
        assert_eq!(
            ids(&out.events),
            entries.iter().map(Entry::id).collect::<Vec<_>>()
        );
        assert!(out
            .events
            .iter()
            .all(|e| e.kind == EventKind::Message.as_u8()));
        assert_eq!(chains[&b.device_pk()].next_counter(), 3);
        // Storage keeps each message keyed to its entry, which opens back to the same view.
        let group_pk = a.context.keys().group_pk().to_bytes();
        for (event, entry) in out.events.iter().zip(&entries) {
            let stored = ViewEvent::decode(event.stored.as_deref().unwrap()).unwrap();
            assert!(stored.needs_entry());
            assert_eq!(
                stored.opened(&group_pk, entry.payload()).unwrap(),
                ViewEvent::decode(&event.body).unwrap()
            );
        }
    }

    #[test]
    fn messages_without_the_senders_chain_are_queued() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"one", b"two"]);
        let (opened, _) = open_headers(&a.context, entries.clone());
        let out = decode_messages(&a.context, &mut HashMap::new(), &members, &opened);
        assert!(out.events.is_empty());
        assert_eq!(out.skipped, 0);
        assert!(out.touched.is_empty());
        assert_eq!(
            out.queued,
            entries
                .iter()
                .map(|e| (b.device_pk(), e.lamport(), e.id()))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_message_with_a_bad_author_signature_is_skipped_and_the_others_still_open() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"one", b"two", b"three"]);
        let (mut opened, _) = open_headers(&a.context, entries.clone());
        // The body still opens (its key and associated data do not cover the signature);
        // only the author signature check fails, so the batch check fails as a whole.
        opened[1].header.signature = opened[0].header.signature;
        let out = decode_messages(&a.context, &mut chains, &members, &opened);
        assert_eq!(out.skipped, 1);
        assert_eq!(
            views(&out.events),
            vec![message_view(&b, b"one"), message_view(&b, b"three")]
        );
        assert_eq!(ids(&out.events), vec![entries[0].id(), entries[2].id()]);
    }

    // A member holding B's chain key writes an entry whose header claims B's device and a
    // counter B has not used yet, with a signature that does not verify: it is skipped, and
    // the key of that counter stays for B's genuine message.
    #[test]
    fn a_message_with_a_bad_signature_does_not_burn_the_key_of_the_genuine_one() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"genuine", b"later"]);
        let (mut forged, _) = open_headers(&a.context, entries.clone());
        forged[0].header.signature = forged[1].header.signature;
        let out = decode_messages(&a.context, &mut chains, &members, &forged[..1]);
        assert_eq!(out.skipped, 1);
        let (genuine, _) = open_headers(&a.context, entries);
        let out = decode_messages(&a.context, &mut chains, &members, &genuine[..1]);
        assert_eq!(out.skipped, 0);
        assert_eq!(views(&out.events), vec![message_view(&b, b"genuine")]);
    }

    // The same in one batch: the forgery comes first and names the genuine message's counter;
    // the genuine one, later in the batch, still opens (found while fuzzing `decode_messages`).
    #[test]
    fn a_forgery_earlier_in_the_same_batch_does_not_burn_the_genuine_key() {
        let [a, b] = group::<2>();
        let mut chain = SenderChain::generate(*a.context.keys().group_pk(), &mut OsRng);
        let mut chains = HashMap::from([(b.device_pk(), receiver(&chain))]);
        let members = HashMap::from([(b.device_pk(), b.member_pk())]);
        let entries = messages(&b, &mut chain, &[b"genuine", b"later"]);
        let (genuine, _) = open_headers(&a.context, entries.clone());
        let mut forged = genuine[0].clone();
        forged.header.signature = genuine[1].header.signature;
        let batch = vec![forged, genuine[0].clone(), genuine[1].clone()];
        let out = decode_messages(&a.context, &mut chains, &members, &batch);
        assert_eq!(out.skipped, 1, "only the forgery");
        assert_eq!(
            views(&out.events),
            vec![message_view(&b, b"genuine"), message_view(&b, b"later")]
        );
        assert_eq!(ids(&out.events), vec![entries[0].id(), entries[1].id()]);
    }
}
