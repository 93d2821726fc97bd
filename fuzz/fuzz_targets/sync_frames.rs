//! Sync protocol frames (`/berty-node/sync/1.0.0`) as a peer sends them: the framing of
//! `p2p::sync_codec`, the conversions to the domain messages of `p2p::sync_message` and the
//! checks on received entries (`replication::wire::check_received`).
//!
//! Input: one selector byte (request or response), then the bytes of the stream.
#![no_main]

mod common;

use berty_node::{
    log::LogId,
    p2p::{
        self,
        sync_codec::{read_frame, write_frame, Frame, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES},
    },
    proto::wire::{SyncRequest, SyncResponse},
    replication::wire::check_received,
};
use futures::executor::block_on;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    if selector & 1 == 0 {
        if let Some(request) = frame::<SyncRequest>(stream, MAX_REQUEST_BYTES) {
            check_request(request);
        }
    } else if let Some(response) = frame::<SyncResponse>(stream, MAX_RESPONSE_BYTES) {
        check_response(response);
    }
});

/// Reads a frame; a message must survive being written and read again.
fn frame<T: Message + Default + Clone + PartialEq>(stream: &[u8], max: usize) -> Option<T> {
    let mut reader = stream;
    let Ok(Frame::Message(message)) = block_on(read_frame::<T, _>(&mut reader, max)) else {
        return None;
    };
    let mut written = Vec::new();
    block_on(write_frame(
        &mut written,
        Frame::Message(message.clone()),
        max,
    ))
    .expect("a frame that was read can be written");
    match block_on(read_frame::<T, _>(&mut written.as_slice(), max)) {
        Ok(Frame::Message(back)) => assert!(back == message, "frame round trip"),
        _ => panic!("a written frame does not read back"),
    }
    Some(message)
}

/// A request that parses goes back to a wire message that parses to the same request.
fn check_request(request: SyncRequest) {
    let Ok(parsed) = p2p::SyncRequest::try_from(request) else {
        return;
    };
    let back = p2p::SyncRequest::try_from(SyncRequest::from(parsed.clone()));
    assert_eq!(back.as_ref(), Ok(&parsed), "request round trip");
    if let p2p::SyncRequest::Announce(announcement) = parsed {
        entries(Some(announcement.log), &announcement.entries);
    }
}

/// The same for responses.
fn check_response(response: SyncResponse) {
    let Ok(parsed) = p2p::SyncResponse::try_from(response) else {
        return;
    };
    let back = p2p::SyncResponse::try_from(SyncResponse::from(parsed.clone()));
    assert_eq!(back.as_ref(), Ok(&parsed), "response round trip");
    if let p2p::SyncResponse::Fetch { entries: raw, .. } = parsed {
        entries(None, &raw);
    }
}

/// The checks a replica runs on entries it receives for a log.
fn entries(log: Option<LogId>, raw: &[Vec<u8>]) {
    let log = log.unwrap_or_else(|| LogId::new([1; 32], berty_node::log::LogKind::Messages));
    let signing_pk = common::GROUP.keys.signing_pk();
    if let Ok(entries) = check_received(log, &signing_pk, raw) {
        assert_eq!(entries.len(), raw.len());
        for (entry, bytes) in entries.iter().zip(raw) {
            assert_eq!(entry.bytes(), bytes.as_slice());
            assert_eq!(entry.log_id(), log);
        }
    }
}
