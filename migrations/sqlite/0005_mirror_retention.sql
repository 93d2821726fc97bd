-- Mirror retention (mirror.retention_days): when each batch of a mirrored log was stored,
-- named by the highest cursor it took. Entries of batches older than the retention are
-- deleted (heads are kept), and so are these rows.
CREATE TABLE mirror_batches (
    log_id BLOB NOT NULL CHECK (length(log_id) = 33),
    last_cursor INTEGER NOT NULL CHECK (last_cursor > 0),
    -- Unix seconds.
    stored_at INTEGER NOT NULL,
    PRIMARY KEY (log_id, last_cursor)
) STRICT;

CREATE INDEX mirror_batches_by_time ON mirror_batches (stored_at);
