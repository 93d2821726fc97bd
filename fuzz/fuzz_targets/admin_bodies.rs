//! The admin API's request bodies and queries (`admin::routes`): what actix-web hands to
//! serde (`web::Query` is `serde_urlencoded`, `web::Json` is `serde_json`), and the parsing
//! of the strings they carry (peer ids in paths, multiaddrs to dial).
#![no_main]

use std::str::FromStr;

use berty_node::admin::routes::{BanQuery, DialBody, RendezvousQuery};
use libfuzzer_sys::fuzz_target;
use libp2p::{Multiaddr, PeerId};

fuzz_target!(|data: &[u8]| {
    let _ = serde_urlencoded::from_bytes::<BanQuery>(data);
    let _ = serde_urlencoded::from_bytes::<RendezvousQuery>(data);
    let _ = serde_json::from_slice::<DialBody>(data);
    let _ = serde_json::from_slice::<BanQuery>(data);

    // The parsers the handlers call on those strings (libp2p's: they must not panic; their
    // round trips are libp2p's business).
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = Multiaddr::try_from(data.to_vec());
        return;
    };
    let _ = PeerId::from_str(text);
    if let Ok(addr) = Multiaddr::from_str(text) {
        let _ = berty_node::p2p::peer_id_of(&addr);
    }
    // A dial body with this text as its address, as a client would send it.
    let body = serde_json::json!({ "addr": text }).to_string();
    assert!(
        serde_json::from_str::<DialBody>(&body).is_ok(),
        "a dial body with any string parses"
    );
});
