-- Events name their entries; the storage code checks that each new event's entry is stored
-- (Events::check_entries_stored). The foreign key did the same with a FOR KEY SHARE lock on
-- every referenced entry, about a millisecond a row: a catch-up of 20,000 messages took 26 s
-- instead of about 2. SQLite keeps its foreign key: there it costs nothing measurable.
ALTER TABLE events DROP CONSTRAINT events_log_key_entry_id_fkey;
