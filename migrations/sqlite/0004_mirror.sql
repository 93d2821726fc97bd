-- Mirror role: the tokens the operator issued and the groups mirrored under them (see
-- src/storage/mirror/mod.rs). The entries of a mirrored group live in the log tables.

CREATE TABLE mirror_tokens (
    -- Public id, shown to the operator.
    id TEXT NOT NULL PRIMARY KEY,
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    label TEXT NOT NULL,
    max_groups INTEGER NOT NULL CHECK (max_groups >= 0),
    max_bytes INTEGER NOT NULL CHECK (max_bytes >= 0),
    -- Unix seconds.
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE mirror_groups (
    group_pk BLOB NOT NULL PRIMARY KEY CHECK (length(group_pk) = 32),
    signing_pk BLOB NOT NULL CHECK (length(signing_pk) = 32),
    -- Stored as it is: every mirror node on the database proves it.
    link_key BLOB NOT NULL CHECK (length(link_key) = 32),
    creation_proof BLOB NOT NULL,
    token_id TEXT NOT NULL REFERENCES mirror_tokens (id),
    -- Unix seconds.
    registered_at INTEGER NOT NULL,
    entries INTEGER NOT NULL CHECK (entries >= 0),
    bytes INTEGER NOT NULL CHECK (bytes >= 0),
    last_activity INTEGER NOT NULL
) STRICT;

CREATE INDEX mirror_groups_by_token ON mirror_groups (token_id);
