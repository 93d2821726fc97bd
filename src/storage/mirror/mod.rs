//! What the mirror role persists: the tokens the operator issued and the groups mirrored under
//! them. The entries of a mirrored group live in the ordinary log tables; only the mirror's
//! own bookkeeping is here.
//!
//! The database is the source of truth: several mirror nodes sharing one PostgreSQL database
//! see the same tokens and groups (each node's mirror actor reloads them), and a registration
//! through one node is served by every other.
//!
//! # Tables
//!
//! - `mirror_tokens`: one row per live token: its id, the SHA-256 of the bearer token (never
//!   the token), a label and its quotas. Revoking a token deletes its row.
//! - `mirror_groups`: one row per mirrored group: the public parameters a blind replica needs
//!   (group key, signing key, link key, creation proof), the token it was registered under,
//!   and counters (entries, bytes, last activity) kept in step by each append.
//! - `mirror_batches`: when each appended batch was stored (its highest cursor), for
//!   `mirror.retention_days`: a purge deletes the entries of older batches, except heads.
//! - `mirror_batches`: when each appended batch was stored (its highest cursor), for
//!   `mirror.retention_days`: a purge deletes the entries of older batches, except heads.
//!
//! The link key is stored as it is (not sealed under a node's storage key): every mirror node
//! on the database must be able to prove it. It lets its holder find the group's replicas and
//! fetch its sealed entries, never read them.

mod sql;

use async_trait::async_trait;

use super::Result;

/// A token to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its public id (shown to the operator, used to revoke it).
    pub id: String,
    /// SHA-256 of the bearer token.
    pub token_hash: [u8; 32],
    /// What the operator called it.
    pub label: String,
    /// Most groups mirrored under it.
    pub max_groups: u64,
    /// Most bytes of entries stored for its groups, all together.
    pub max_bytes: u64,
    /// Unix seconds of its issue.
    pub created_at: u64,
}

/// A stored token with what its groups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUsage {
    /// Its public id.
    pub id: String,
    /// Its label.
    pub label: String,
    /// Most groups mirrored under it.
    pub max_groups: u64,
    /// Most bytes for its groups.
    pub max_bytes: u64,
    /// Unix seconds of its issue.
    pub created_at: u64,
    /// Groups mirrored under it now.
    pub groups: u64,
    /// Bytes of entries its groups hold now.
    pub bytes: u64,
}

/// A group to mirror: its public parameters, already checked by the caller (the creation
/// proof verifies against the three keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMirroredGroup {
    /// The group public key.
    pub group_pk: [u8; 32],
    /// The group's signing public key (checks every entry).
    pub signing_pk: [u8; 32],
    /// The group's link key.
    pub link_key: [u8; 32],
    /// The encoded creation proof.
    pub creation_proof: Vec<u8>,
    /// The token it is registered under.
    pub token_id: String,
}

/// A mirrored group, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirroredGroup {
    /// The group public key.
    pub group_pk: [u8; 32],
    /// The group's signing public key.
    pub signing_pk: [u8; 32],
    /// The group's link key.
    pub link_key: [u8; 32],
    /// The encoded creation proof.
    pub creation_proof: Vec<u8>,
    /// The token it is registered under.
    pub token_id: String,
    /// Unix seconds of its registration.
    pub registered_at: u64,
    /// Entries stored for it.
    pub entries: u64,
    /// Bytes of those entries.
    pub bytes: u64,
    /// Unix seconds of its last registration or append.
    pub last_activity: u64,
}

/// What [`MirrorStore::register_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRegistration {
    /// Newly mirrored.
    Registered,
    /// Already mirrored (under this or another token): nothing changed.
    AlreadyMirrored,
    /// The token mirrors as many groups as it may.
    GroupQuota,
    /// The token is not (or no longer) stored.
    UnknownToken,
}

/// The mirror's persistence, in the node's database.
#[async_trait]
pub trait MirrorStore: Send + Sync {
    /// Stores a new token.
    async fn insert_token(&self, token: &NewToken) -> Result<()>;

    /// The live token whose hash is `token_hash`, with its usage.
    async fn token_by_hash(&self, token_hash: &[u8; 32]) -> Result<Option<TokenUsage>>;

    /// The live token `id`, with its usage.
    async fn token(&self, id: &str) -> Result<Option<TokenUsage>>;

    /// Every live token with its usage, by creation time.
    async fn tokens(&self) -> Result<Vec<TokenUsage>>;

    /// Deletes token `id`, its groups and their log data in one transaction; the groups
    /// deleted, or `None` when no such token is stored.
    async fn revoke_token(&self, id: &str) -> Result<Option<Vec<[u8; 32]>>>;

    /// Mirrors a group under its token, unless the token's group quota is reached; the
    /// check and the insert are one transaction (several nodes may register at once).
    async fn register_group(&self, group: &NewMirroredGroup, now: u64)
        -> Result<GroupRegistration>;

    /// Stops mirroring `group_pk` when it is mirrored under `token_id`, deleting its log data;
    /// whether it was.
    async fn unregister_group(&self, group_pk: &[u8; 32], token_id: &str) -> Result<bool>;

    /// Every mirrored group, by group key.
    async fn groups(&self) -> Result<Vec<MirroredGroup>>;

    /// Records a batch appended to a mirrored log: adds its entries and bytes to its group's
    /// counters, sets its last activity, and remembers the batch (by its highest cursor) for
    /// retention. A group no longer mirrored is left alone.
    async fn record_append(&self, batch: &AppendedBatch) -> Result<()>;

    /// Retention: deletes the entries of mirrored batches stored before `cutoff` (unix
    /// seconds), except the logs' heads, and takes them off their groups' counters.
    async fn purge_before(&self, cutoff: u64) -> Result<Purged>;
}

/// A batch a blind store appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatch {
    /// The log.
    pub log: crate::log::LogId,
    /// Entries newly stored.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The highest cursor among them.
    pub last_cursor: u64,
    /// Unix seconds.
    pub at: u64,
}

/// What [`MirrorStore::purge_before`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Entries deleted.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
}
