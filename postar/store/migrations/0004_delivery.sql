-- Outbound delivery: what an attempt needs to know of a queued message, and
-- per-account settings of the Sent copy.
--   queue.smtputf8: the submitter declared SMTPUTF8 (RFC 6531); the remote must offer it.
--   queue.held: set by `postar queue hold`; held messages are not tried.
--   queue.warned: the delay warning was sent (once).
--   queue_recipients.status: 'queued' (to try at next_attempt), 'sent', 'failed'.
ALTER TABLE queue ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX queue_recipients_due ON queue_recipients(status, next_attempt);
ALTER TABLE accounts ADD COLUMN sent_copy INTEGER NOT NULL DEFAULT 1;
-- A submitted message's copy in Sent, by Message-ID, so that the same message
-- uploaded by the client soon after (IMAP APPEND to Sent) is not stored twice.
CREATE TABLE sent_copies (
    account_id  INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    message_id  TEXT NOT NULL,
    mailbox_id  INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    created     REAL NOT NULL,
    PRIMARY KEY (account_id, message_id)
)
