-- Rendezvous server: the registrations peers make with this node (and every node sharing the
-- database), so they survive a restart and every node answers the same discovers.

-- One row: the registration id sequence and the number of stored registrations. Every
-- write to the rendezvous tables updates this row first (a row lock held until commit), so
-- batches from every node sharing the database commit one after the other and ids become
-- visible in increasing order: a discover cookie (the last id a client saw) never skips a
-- registration committed later with a smaller id. `registrations` counts the rows, expired
-- or not; each registration batch first deletes the expired rows, so there it is the count
-- the total cap applies to.
CREATE TABLE rendezvous_state (
    singleton SMALLINT PRIMARY KEY CHECK (singleton = 1),
    -- The id given to the newest registration (ids are never reused).
    last_id BIGINT NOT NULL CHECK (last_id >= 0),
    registrations BIGINT NOT NULL CHECK (registrations >= 0)
);

INSERT INTO rendezvous_state (singleton, last_id, registrations) VALUES (1, 0, 0);

-- One row per (namespace, peer): a refresh deletes the old row and inserts a new one with a
-- new id, so clients paging with a cookie see the refreshed registration again.
CREATE TABLE rendezvous_registrations (
    -- From rendezvous_state.last_id: discover pages walk it, cookies carry it.
    id BIGINT PRIMARY KEY CHECK (id > 0),
    -- 1 to 255 bytes of UTF-8, compared bytewise.
    namespace TEXT COLLATE "C" NOT NULL CHECK (octet_length(namespace) BETWEEN 1 AND 255),
    -- The registering peer's id (its multihash bytes).
    peer_id BYTEA NOT NULL,
    -- The signed peer record envelope exactly as received (legacy or standard format).
    record BYTEA NOT NULL,
    -- Unix second from which the registration is expired (never returned, then purged).
    expires_at BIGINT NOT NULL
);

-- How many registrations each peer holds, so the per-peer cap never counts a peer's rows
-- (a peer may hold thousands). Updated with the registrations, under the state row's lock; a
-- peer's row goes when its count reaches 0. Like rendezvous_state.registrations, it counts expired
-- rows until a batch or a purge deletes them (a batch deletes them before checking caps).
CREATE TABLE rendezvous_peers (
    peer_id BYTEA PRIMARY KEY,
    registrations BIGINT NOT NULL CHECK (registrations >= 0)
);

-- A peer registers at most once per namespace; a batch looks its (peer, namespace) keys up
-- here to find the registrations it refreshes.
CREATE UNIQUE INDEX rendezvous_by_peer ON rendezvous_registrations (peer_id, namespace);
-- Discover in one namespace: one range scan in id order from the cookie's id. (No INCLUDE
-- of the record: index tuples are limited to about 2.7 kB and records may be larger.) The
-- planner only walks it in order once its statistics know the namespace is large; the store
-- runs ANALYZE on this table each time the registration count doubles.
CREATE INDEX rendezvous_by_namespace ON rendezvous_registrations (namespace, id);
-- Purging expired registrations: one range scan from the oldest expiry.
CREATE INDEX rendezvous_by_expiry ON rendezvous_registrations (expires_at);
