//! Sealed gossip announcements (`crypto::link`) and how replication opens and parses them
//! (`replication::wire::open_gossip`).
//!
//! The input is tried twice: as the bytes received on a group's topic (which nobody without
//! the link key can make open), and as the plaintext a link-key holder sealed, so the parsing
//! behind the AEAD is reached too.
#![no_main]

mod common;

use berty_node::{
    crypto::{gossip_topic, open_announcement, seal_announcement, LinkKey},
    log::LogKind,
    p2p::Announcement,
    proto::wire::SyncAnnounce,
    replication::wire::{check_received, open_gossip},
};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let link_key = common::GROUP.keys.link_key();
    let topic = gossip_topic(link_key);

    // As received.
    if let Some(announce) = open_gossip(link_key, &topic, data) {
        check(announce);
    }

    // As sealed by a member.
    let mut rng = common::rng();
    let sealed = seal_announcement(link_key, &topic, data, &mut rng).expect("seal");
    assert_eq!(
        open_announcement(link_key, &topic, &sealed).expect("opens"),
        data,
        "gossip round trip"
    );
    assert!(open_announcement(link_key, "bn1-other", &sealed).is_err());
    assert!(open_announcement(&LinkKey::from_bytes([9; 32]), &topic, &sealed).is_err());
    let parsed = open_gossip(link_key, &topic, &sealed);
    let wire = SyncAnnounce::decode(data).ok();
    assert_eq!(
        parsed.is_some(),
        wire.is_some_and(|w| Announcement::try_from(w).is_ok())
    );
    if let Some(announce) = parsed {
        // Sealed again, it opens to the same announcement.
        let again =
            seal_announcement(link_key, &topic, &announce.clone().encode(), &mut rng).expect("seal");
        assert_eq!(
            open_gossip(link_key, &topic, &again).as_ref(),
            Some(&announce)
        );
        check(announce);
    }
});

/// What the replicator does with an opened announcement.
fn check(announce: Announcement) {
    let signing_pk = common::GROUP.keys.signing_pk();
    let _ = check_received(announce.log, &signing_pk, &announce.entries);
    let _ = LogKind::from_byte(announce.log.kind().as_byte());
}
