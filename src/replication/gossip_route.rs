//! Who answers for an announcement received by gossip.
//!
//! Gossipsub forwards a message before this node has looked inside it, so the peer that passed
//! it on (the propagation source) is often not its author. Penalising the forwarder for a bad
//! entry would let one holder of the link key get honest members disconnected from each other,
//! and syncing with a forwarder that never proved the group would show the group to a
//! non-member grafted into the mesh. So:
//!
//! - the **author** (gossipsub's strict validation checked its signature over the message)
//!   answers for the entries inline, when it is connected and proved the group;
//! - otherwise a **forwarder** that proved the group is asked for what the heads name, and
//!   answers only for what it serves itself (the inline entries are left out);
//! - a peer that proved nothing is never asked.

use libp2p::PeerId;

/// Which peer's actor takes an opened announcement, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GossipRoute {
    /// The author, with the inline entries.
    FromAuthor(PeerId),
    /// A forwarder that proved the group: the heads only, fetched from it.
    HeadsFrom(PeerId),
}

/// Chooses who answers for an announcement written by `author` and passed on by `source`;
/// `proven` says whether a peer proved the announcement's group. `None`: drop it.
pub fn route_gossip(
    author: Option<PeerId>,
    source: PeerId,
    proven: impl Fn(&PeerId) -> bool,
) -> Option<GossipRoute> {
    match author {
        Some(author) if proven(&author) => Some(GossipRoute::FromAuthor(author)),
        _ if proven(&source) => Some(GossipRoute::HeadsFrom(source)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_author_answers_for_its_entries_when_it_proved_the_group() {
        let author = PeerId::random();
        let forwarder = PeerId::random();
        assert_eq!(
            route_gossip(Some(author), author, |_| true),
            Some(GossipRoute::FromAuthor(author))
        );
        assert_eq!(
            route_gossip(Some(author), forwarder, |_| true),
            Some(GossipRoute::FromAuthor(author))
        );
    }

    #[test]
    fn a_forwarder_is_asked_only_for_heads_and_only_when_it_proved_the_group() {
        let author = PeerId::random();
        let forwarder = PeerId::random();
        assert_eq!(
            route_gossip(Some(author), forwarder, |p| *p == forwarder),
            Some(GossipRoute::HeadsFrom(forwarder))
        );
        assert_eq!(
            route_gossip(None, forwarder, |p| *p == forwarder),
            Some(GossipRoute::HeadsFrom(forwarder))
        );
        assert_eq!(route_gossip(Some(author), forwarder, |_| false), None);
        assert_eq!(route_gossip(Some(author), author, |p| *p != author), None);
    }
}
