-- Each log keeps the highest Lamport clock it has stored (issue 14).
--
-- An entry whose clock is above it cannot be stored yet, so an append looks up only the
-- entries at or below it (and the parents its batch does not hold) instead of every id of
-- the batch and every parent: a sync page of 4,096 entries built on the log's heads looks
-- up one id instead of 8,192. Kept in the log's row, which every append locks first, so it
-- is read and advanced under that lock. Entries deleted later (a mirror's retention) leave
-- it as an upper bound, which only means more lookups. NULL: no entry stored yet. Stored
-- like every `lamport` column (top bit flipped).
ALTER TABLE logs ADD COLUMN max_lamport INTEGER;

UPDATE logs SET max_lamport = (SELECT max(lamport) FROM entries WHERE entries.log_key = logs.log_key);
