-- Record listings order by sort_key byte by byte, as SQLite does, whatever collation the
-- database was created with: a listing must not change order across servers or backends.
ALTER TABLE connection_records ALTER COLUMN sort_key TYPE TEXT COLLATE "C";
