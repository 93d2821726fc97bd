-- Mirror role: the tokens the operator issued and the groups mirrored under them (see
-- src/storage/mirror/mod.rs). The entries of a mirrored group live in the log tables.

CREATE TABLE mirror_tokens (
    -- Public id, shown to the operator.
    id TEXT NOT NULL PRIMARY KEY,
    -- SHA-256 of the bearer token; the token itself is never stored.
    token_hash BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    label TEXT NOT NULL,
    max_groups BIGINT NOT NULL CHECK (max_groups >= 0),
    max_bytes BIGINT NOT NULL CHECK (max_bytes >= 0),
    -- Unix seconds.
    created_at BIGINT NOT NULL
);

CREATE TABLE mirror_groups (
    group_pk BYTEA NOT NULL PRIMARY KEY CHECK (octet_length(group_pk) = 32),
    signing_pk BYTEA NOT NULL CHECK (octet_length(signing_pk) = 32),
    -- Stored as it is: every mirror node on the database proves it.
    link_key BYTEA NOT NULL CHECK (octet_length(link_key) = 32),
    creation_proof BYTEA NOT NULL,
    token_id TEXT NOT NULL REFERENCES mirror_tokens (id),
    -- Unix seconds.
    registered_at BIGINT NOT NULL,
    entries BIGINT NOT NULL CHECK (entries >= 0),
    bytes BIGINT NOT NULL CHECK (bytes >= 0),
    last_activity BIGINT NOT NULL
);

CREATE INDEX mirror_groups_by_token ON mirror_groups (token_id);
