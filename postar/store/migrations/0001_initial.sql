-- The first schema of the embedded store. Each file in this folder is one
-- version, applied in order inside one transaction; PRAGMA user_version records
-- the last applied.

CREATE TABLE domains (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created  REAL NOT NULL
);

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    address        TEXT NOT NULL UNIQUE COLLATE NOCASE,
    domain_id      INTEGER NOT NULL REFERENCES domains(id),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    imap_enabled   INTEGER NOT NULL DEFAULT 1,
    -- the last UIDVALIDITY given to one of its mailboxes: never given twice
    last_uidvalidity INTEGER NOT NULL DEFAULT 0,
    created        REAL NOT NULL
);

CREATE TABLE app_passwords (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created        REAL NOT NULL,
    UNIQUE (account_id, name)
);

-- address is a full address, or "@domain" for a catch-all; target any address.
CREATE TABLE aliases (
    id       INTEGER PRIMARY KEY,
    address  TEXT NOT NULL COLLATE NOCASE,
    target   TEXT NOT NULL COLLATE NOCASE,
    UNIQUE (address, target)
);

-- AUTOINCREMENT: a deleted mailbox's id is never given to a new one, so a
-- session still holding it can never read another mailbox.
CREATE TABLE mailboxes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    special_use    TEXT NOT NULL DEFAULT '',
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highestmodseq  INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name)
);

-- The exact bytes a client sent, written once and never rewritten; summary is
-- the JSON envelope and body structure parsed once at delivery.
CREATE TABLE blobs (
    id       INTEGER PRIMARY KEY,
    data     BLOB NOT NULL,
    summary  TEXT NOT NULL
);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    mailbox_id     INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid            INTEGER NOT NULL,
    blob_id        INTEGER NOT NULL REFERENCES blobs(id),
    header_prefix  BLOB NOT NULL,
    size           INTEGER NOT NULL,
    flags          TEXT NOT NULL DEFAULT '',
    internal_date  REAL NOT NULL,
    modseq         INTEGER NOT NULL,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_blob ON messages(blob_id);

CREATE TABLE queue (
    id             INTEGER PRIMARY KEY,
    queue_id       TEXT NOT NULL UNIQUE,
    blob_id        INTEGER NOT NULL REFERENCES blobs(id),
    header_prefix  BLOB NOT NULL,
    sender         TEXT NOT NULL,
    submitter      INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    envid          TEXT NOT NULL DEFAULT '',
    ret            TEXT NOT NULL DEFAULT '',
    created        REAL NOT NULL
);
CREATE INDEX queue_blob ON queue(blob_id);

CREATE TABLE queue_recipients (
    id            INTEGER PRIMARY KEY,
    entry_id      INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
    address       TEXT NOT NULL,
    notify        TEXT NOT NULL DEFAULT '',
    orcpt         TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'queued',
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  REAL NOT NULL DEFAULT 0,
    last_reply    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX queue_recipients_entry ON queue_recipients(entry_id);
