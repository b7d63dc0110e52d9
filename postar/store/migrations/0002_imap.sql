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
