-- What IMAP needs beyond delivery: expunged UIDs remembered with the modseq of
-- their removal (so a session, or a QRESYNC client, learns what vanished since
-- a modseq), and look-ups by modseq.

CREATE TABLE expunged (
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    modseq      INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);

-- Subscriptions are names, not mailboxes: deleting a mailbox leaves its
-- subscription (RFC 9051 §6.3.7).
CREATE TABLE subscriptions (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
);
