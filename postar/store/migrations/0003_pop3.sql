-- Gmail-style POP settings per account, and what POP3 needs for exact sizes.
--   pop_access: 'off', 'all', or 'new' (only INBOX UIDs from pop_from_uid on).
--   pop_on_retrieve: what a POP download does to the message at QUIT:
--   'keep', 'read' (mark \Seen), 'archive' (move to Archive), 'trash' (move to Trash).
ALTER TABLE accounts ADD COLUMN pop_access TEXT NOT NULL DEFAULT 'all';
ALTER TABLE accounts ADD COLUMN pop_from_uid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN pop_on_retrieve TEXT NOT NULL DEFAULT 'keep';
-- Octets POP3 adds to a blob's bytes on the wire: a CR before each bare LF, and
-- a CRLF after a last line without one. NULL until counted (at open for blobs
-- stored before this column existed).
ALTER TABLE blobs ADD COLUMN pop_extra INTEGER;
