-- Storage schema: logs with their entries and heads, and node values.
--
-- Ids are raw bytes: a log id is the group public key followed by the log kind byte
-- (33 bytes), an entry id is the SHA-256 of the entry's bytes (32 bytes).
-- Lamport clocks are unsigned 64-bit; a `lamport` column holds the clock with its top bit
-- flipped (clock - 2^63), which fits a BIGINT and keeps the order.

-- One row per log, created by its first append. Every append locks this row first (held
-- until commit), which serialises cursor assignment per log across all writers. Other tables
-- name the log by its small `log_key` rather than its 33-byte id: that keeps every index
-- narrow. (The upsert that creates the row draws a key even when the row exists, so keys
-- have gaps; BIGINT never runs out.)
CREATE TABLE logs (
    log_key BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    log_id BYTEA NOT NULL UNIQUE CHECK (octet_length(log_id) = 33),
    -- Cursor of the newest stored entry (cursors count arrivals from 1, without gaps).
    last_cursor BIGINT NOT NULL CHECK (last_cursor >= 0),
    entry_count BIGINT NOT NULL CHECK (entry_count >= 0)
);

CREATE TABLE entries (
    log_key BIGINT NOT NULL REFERENCES logs (log_key),
    entry_id BYTEA NOT NULL CHECK (octet_length(entry_id) = 32),
    lamport BIGINT NOT NULL,
    -- This replica's arrival sequence in the log.
    cursor BIGINT NOT NULL CHECK (cursor > 0),
    -- The parent ids concatenated, in the entry's order.
    parents BYTEA NOT NULL CHECK (octet_length(parents) % 32 = 0),
    -- The entry exactly as received or written.
    bytes BYTEA NOT NULL,
    PRIMARY KEY (log_key, entry_id)
);

-- Total order (lamport, id), walked both ways.
CREATE UNIQUE INDEX entries_by_order ON entries (log_key, lamport, entry_id);
-- Arrival order.
CREATE UNIQUE INDEX entries_by_cursor ON entries (log_key, cursor);

-- Entries no stored entry names as parent. Parents are always stored before their children
-- (appends check it with the log locked), so a new entry can only be named as parent by
-- entries of its own batch: each append works out the new heads itself, and no table of
-- parent links is needed.
CREATE TABLE heads (
    log_key BIGINT NOT NULL,
    entry_id BYTEA NOT NULL,
    lamport BIGINT NOT NULL,
    PRIMARY KEY (log_key, entry_id),
    FOREIGN KEY (log_key, entry_id) REFERENCES entries (log_key, entry_id)
);

-- Small node-level state (flags, counters) by key.
CREATE TABLE node_values (
    -- "C" collation: keys compare bytewise, as on SQLite, and prefix scans can use the index.
    key TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);
