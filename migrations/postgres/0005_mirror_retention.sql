-- Mirror retention (mirror.retention_days): when each batch of a mirrored log was stored,
-- named by the highest cursor it took. Entries of batches older than the retention are
-- deleted (heads are kept), and so are these rows.
CREATE TABLE mirror_batches (
    log_id BYTEA NOT NULL CHECK (octet_length(log_id) = 33),
    last_cursor BIGINT NOT NULL CHECK (last_cursor > 0),
    -- Unix seconds.
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (log_id, last_cursor)
);

CREATE INDEX mirror_batches_by_time ON mirror_batches (stored_at);
