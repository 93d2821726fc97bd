-- Rendezvous server: the registrations peers make with this node (and every node sharing the
-- database), so they survive a restart and every node answers the same discovers.

-- One row: the registration id sequence and the number of stored registrations. Every
-- write to the rendezvous tables updates this row first (a write: SQLite's write lock), so
-- batches from every node sharing the database commit one after the other and ids become
-- visible in increasing order: a discover cookie (the last id a client saw) never skips a
-- registration committed later with a smaller id. `registrations` counts the rows, expired
-- or not; each registration batch first deletes the expired rows, so there it is the count
-- the total cap applies to.
CREATE TABLE rendezvous_state (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    -- The id given to the newest registration (ids are never reused).
    last_id INTEGER NOT NULL CHECK (last_id >= 0),
    registrations INTEGER NOT NULL CHECK (registrations >= 0)
) STRICT;

INSERT INTO rendezvous_state (singleton, last_id, registrations) VALUES (1, 0, 0);

-- One row per (namespace, peer): a refresh deletes the old row and inserts a new one with a
-- new id, so clients paging with a cookie see the refreshed registration again.
CREATE TABLE rendezvous_registrations (
    -- From rendezvous_state.last_id: discover pages walk it, cookies carry it.
    id INTEGER PRIMARY KEY CHECK (id > 0),
    -- 1 to 255 bytes of UTF-8.
    namespace TEXT NOT NULL CHECK (length(CAST(namespace AS BLOB)) BETWEEN 1 AND 255),
    -- The registering peer's id (its multihash bytes).
    peer_id BLOB NOT NULL,
    -- The signed peer record envelope exactly as received (legacy or standard format).
    record BLOB NOT NULL,
    -- Unix second from which the registration is expired (never returned, then purged).
    expires_at INTEGER NOT NULL
) STRICT;

-- How many registrations each peer holds, so the per-peer cap never counts a peer's rows
-- (a peer may hold thousands). Updated with the registrations, under the state row's lock; a
-- peer's row goes when its count reaches 0. Like rendezvous_state.registrations, it counts expired
-- rows until a batch or a purge deletes them (a batch deletes them before checking caps).
CREATE TABLE rendezvous_peers (
    peer_id BLOB PRIMARY KEY,
    registrations INTEGER NOT NULL CHECK (registrations >= 0)
) STRICT, WITHOUT ROWID;

-- A peer registers at most once per namespace; a batch looks its (peer, namespace) keys up
-- here to find the registrations it refreshes.
CREATE UNIQUE INDEX rendezvous_by_peer ON rendezvous_registrations (peer_id, namespace);
-- Discover in one namespace: one range scan in id order from the cookie's id. It covers
-- every column a discover reads, so a page is a few contiguous index pages rather than one
-- table page per registration (rows of one namespace are spread over the whole table): a
-- page of 1,000 out of 100,000 registrations reads in well under a millisecond instead of
-- several. The record is stored twice for it.
CREATE INDEX rendezvous_by_namespace
    ON rendezvous_registrations (namespace, id, expires_at, peer_id, record);
-- Purging expired registrations: one range scan from the oldest expiry.
CREATE INDEX rendezvous_by_expiry ON rendezvous_registrations (expires_at);
