-- Decoded views: the events subscriptions replay, stored decrypted beside the log.
--
-- Each log has its own event cursor (arrival order of events in its view), assigned under the
-- log's row lock like entry cursors, so cursors become visible in increasing order.

ALTER TABLE logs ADD COLUMN last_event_cursor BIGINT NOT NULL DEFAULT 0 CHECK (last_event_cursor >= 0);

CREATE TABLE events (
    log_key BIGINT NOT NULL,
    -- Arrival sequence of the event in the log's view (1, 2, 3... without gaps).
    cursor BIGINT NOT NULL CHECK (cursor > 0),
    entry_id BYTEA NOT NULL,
    -- The entry's Lamport clock, stored like entries.lamport (top bit flipped).
    lamport BIGINT NOT NULL,
    -- The entry's parent ids concatenated.
    parents BYTEA NOT NULL CHECK (octet_length(parents) % 32 = 0),
    -- Which subscription the event belongs to (group::EventKind).
    kind BIGINT NOT NULL,
    -- The encoded event (berty.node.wire.v1.ViewEvent).
    body BYTEA NOT NULL,
    PRIMARY KEY (log_key, cursor),
    FOREIGN KEY (log_key, entry_id) REFERENCES entries (log_key, entry_id)
);

CREATE UNIQUE INDEX events_by_entry ON events (log_key, entry_id);
-- History of one kind in total order, both ways.
CREATE INDEX events_by_order ON events (log_key, kind, lamport, entry_id);
