-- One index on a random key per stored event instead of two (issue 14).
--
-- Events were indexed by (log_key, entry_id), a random 32-byte key. An event is now found by
-- entry through its entry's clock: the entry's primary key gives the lamport, and
-- `events_by_order` (log_key, lamport, entry_id) the event. That index also serves every
-- history read, filtering on `kind` (subscriptions read one log, whose events are nearly all
-- of the kind they want).
DROP INDEX events_by_entry;
DROP INDEX events_by_order;
-- One event per entry, in the log's total order.
CREATE UNIQUE INDEX events_by_order ON events (log_key, lamport, entry_id);
