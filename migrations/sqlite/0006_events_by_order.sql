-- One index on a random key per stored event instead of two (issue 14).
--
-- Events were indexed by (log_key, entry_id), a random 32-byte key, and referenced their
-- entry with a foreign key. An event is now found by entry through its entry's clock: the
-- entry's primary key gives the lamport, and `events_by_order` (log_key, lamport, entry_id)
-- the event. That index also serves every history read, filtering on `kind` (subscriptions
-- read one log, whose events are nearly all of the kind they want). The foreign key goes too:
-- without an index on (log_key, entry_id) each deleted entry would scan the whole table, and
-- the storage code checks that every new event's entry is stored
-- (Events::check_entries_stored), as it already does on PostgreSQL. SQLite cannot drop a
-- constraint, so the table is rebuilt: once, at the first start after the upgrade, in time
-- proportional to the stored events.
CREATE TABLE events_new (
    log_key INTEGER NOT NULL,
    cursor INTEGER NOT NULL CHECK (cursor > 0),
    entry_id BLOB NOT NULL,
    lamport INTEGER NOT NULL,
    parents BLOB NOT NULL CHECK (length(parents) % 32 = 0),
    kind INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (log_key, cursor)
) STRICT;

INSERT INTO events_new (log_key, cursor, entry_id, lamport, parents, kind, body)
    SELECT log_key, cursor, entry_id, lamport, parents, kind, body FROM events ORDER BY log_key, cursor;

DROP TABLE events;

ALTER TABLE events_new RENAME TO events;

-- One event per entry, in the log's total order.
CREATE UNIQUE INDEX events_by_order ON events (log_key, lamport, entry_id);
