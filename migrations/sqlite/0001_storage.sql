-- Storage schema: logs with their entries and heads, and node values.
--
-- Ids are raw bytes: a log id is the group public key followed by the log kind byte
-- (33 bytes), an entry id is the SHA-256 of the entry's bytes (32 bytes).
-- Lamport clocks are unsigned 64-bit; a `lamport` column holds the clock with its top bit
-- flipped (clock - 2^63), which fits a signed 64-bit integer and keeps the order.

-- One row per log, created by its first append. Every append locks this row first, which
-- serialises cursor assignment per log. Other tables name the log by its small `log_key`
-- rather than its 33-byte id: that keeps every index narrow, which is what append throughput
-- on large logs depends on.
CREATE TABLE logs (
    log_key INTEGER PRIMARY KEY,
    log_id BLOB NOT NULL UNIQUE CHECK (length(log_id) = 33),
    -- Cursor of the newest stored entry (cursors count arrivals from 1, without gaps).
    last_cursor INTEGER NOT NULL CHECK (last_cursor >= 0),
    entry_count INTEGER NOT NULL CHECK (entry_count >= 0)
) STRICT;

CREATE TABLE entries (
    log_key INTEGER NOT NULL REFERENCES logs (log_key),
    entry_id BLOB NOT NULL CHECK (length(entry_id) = 32),
    lamport INTEGER NOT NULL,
    -- This replica's arrival sequence in the log.
    cursor INTEGER NOT NULL CHECK (cursor > 0),
    -- The parent ids concatenated, in the entry's order.
    parents BLOB NOT NULL CHECK (length(parents) % 32 = 0),
    -- The entry exactly as received or written.
    bytes BLOB NOT NULL,
    PRIMARY KEY (log_key, entry_id)
) STRICT;

-- Total order (lamport, id), walked both ways.
CREATE UNIQUE INDEX entries_by_order ON entries (log_key, lamport, entry_id);
-- Arrival order.
CREATE UNIQUE INDEX entries_by_cursor ON entries (log_key, cursor);

-- Entries no stored entry names as parent. Parents are always stored before their children
-- (appends check it with the log locked), so a new entry can only be named as parent by
-- entries of its own batch: each append works out the new heads itself, and no table of
-- parent links is needed.
CREATE TABLE heads (
    log_key INTEGER NOT NULL,
    entry_id BLOB NOT NULL,
    lamport INTEGER NOT NULL,
    PRIMARY KEY (log_key, entry_id),
    FOREIGN KEY (log_key, entry_id) REFERENCES entries (log_key, entry_id)
) STRICT, WITHOUT ROWID;

-- Small node-level state (flags, counters) by key.
CREATE TABLE node_values (
    key TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
