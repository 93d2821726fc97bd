//! What replication and the group stores say to each other, defined on replication's floor so
//! that the stores (above) depend on it and replication never depends on the stores.
//!
//! - The account, and the mirror when it runs, publish the groups to replicate
//!   ([`GroupsChanged`] with a [`Directory`]): per group its link key, its signing key, the
//!   addresses of its two stores ([`GroupStores`]) and the replicas to keep connected (its
//!   mirrors), so replication hands verified entries straight to a store ([`AppendRemote`])
//!   without asking anyone per batch.
//! - Every store tells the replicator about each commit that added entries ([`LogAppended`]).

use std::{collections::HashMap, sync::Arc};

use actix::prelude::*;
use libp2p::{Multiaddr, PeerId};

use crate::{
    crypto::{LinkKey, VerifyingKey},
    error::Error,
    log::{Entry, EntryId, LogKind, OrderKey},
};

/// Appends entries from another replica, in total order, each already decoded and checked
/// against the group signing key. Entries are stored up to the first that names a parent
/// this node does not have (the caller fetches from further back) or that breaks the
/// Lamport rule (the sender is misbehaving).
#[derive(Message)]
#[rtype(result = "Result<RemoteOutcome, Error>")]
pub struct AppendRemote {
    /// The entries, parents before children.
    pub entries: Vec<Entry>,
    /// The peer they came from.
    pub source: Option<PeerId>,
}

/// What [`AppendRemote`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteOutcome {
    /// Entries newly stored.
    pub stored: usize,
    /// Entries already stored.
    pub existing: usize,
    /// An entry names a parent not stored here: the entries from it on were not stored.
    pub missing_parent: Option<EntryId>,
    /// An entry breaks the Lamport rule: nothing from it on was stored.
    pub violation: Option<String>,
    /// Entries stored that show nothing (they break a rule of the group).
    pub skipped: usize,
}

/// What a store tells the replicator after each commit that added entries.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LogAppended {
    /// The log.
    pub log: crate::log::LogId,
    /// Its heads after the commit.
    pub heads: Vec<OrderKey>,
    /// The new entries (encoded), in total order.
    pub entries: Vec<Vec<u8>>,
    /// The peer they came from (`None` for local writes).
    pub source: Option<PeerId>,
}

/// The two stores of one group, as replication reaches them.
#[derive(Clone)]
pub struct GroupStores {
    /// The metadata log's store.
    pub metadata: Recipient<AppendRemote>,
    /// The messages log's store.
    pub messages: Recipient<AppendRemote>,
}

impl GroupStores {
    /// The store of `kind`.
    pub fn of(&self, kind: LogKind) -> &Recipient<AppendRemote> {
        match kind {
            LogKind::Metadata => &self.metadata,
            LogKind::Messages => &self.messages,
        }
    }
}

/// What replication needs of one group: never its secret.
#[derive(Clone)]
pub struct GroupLinks {
    /// The link key (hello tags, gossip sealing, discovery keys).
    pub link_key: LinkKey,
    /// The public half of the group signing key (checks every received entry).
    pub signing_pk: VerifyingKey,
    /// Where verified entries of the group go.
    pub stores: GroupStores,
    /// Replicas to keep connected (the group's mirrors), with where to reach them.
    pub replicas: Vec<(PeerId, Vec<Multiaddr>)>,
}

/// The groups this node replicates, by group public key.
pub type Directory = Arc<HashMap<[u8; 32], GroupLinks>>;

/// Who publishes a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirectorySource {
    /// The account: the groups it is a member of.
    Account,
    /// The mirror: the groups it keeps for others (blind).
    Mirror,
}

/// The groups one source replicates changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupsChanged {
    /// Who publishes.
    pub source: DirectorySource,
    /// Its groups now.
    pub groups: Directory,
}

/// The directory of every source together; a group both sources hold is the account's (a
/// member reads it; a blind copy would only store it).
pub fn merge_directories(sources: &HashMap<DirectorySource, Directory>) -> Directory {
    let mut merged: HashMap<[u8; 32], GroupLinks> = HashMap::new();
    for source in [DirectorySource::Mirror, DirectorySource::Account] {
        if let Some(groups) = sources.get(&source) {
            merged.extend(groups.iter().map(|(pk, links)| (*pk, links.clone())));
        }
    }
    Arc::new(merged)
}
