-- Planner statistics only for the columns reads filter or order on (issue 14).
--
-- ANALYZE builds each column's statistics from a sample of its values (sorted, compared,
-- hashed). An entry's bytes, an event's body and both tables' parents are up to a kilobyte or
-- more each, no query filters or orders on them, and their statistics were most of the cost
-- of every ANALYZE the storage runs in the background while logs grow (a catch-up of 100,000
-- entries ran it five times on the member, about 0.9 s of server CPU in all). Without them
-- ANALYZE reads the same sample and skips the work on those columns.
ALTER TABLE entries ALTER COLUMN bytes SET STATISTICS 0, ALTER COLUMN parents SET STATISTICS 0;
ALTER TABLE events ALTER COLUMN body SET STATISTICS 0, ALTER COLUMN parents SET STATISTICS 0;
