"""IMAP server: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) on 143 (STARTTLS) and 993.

Extensions: LITERAL+ (RFC 7888), SASL-IR (RFC 4959), ENABLE (RFC 5161),
UTF8=ACCEPT (RFC 6855), ID (RFC 2971), IDLE (RFC 2177), NAMESPACE (RFC 2342),
UIDPLUS (RFC 4315), MOVE (RFC 6851), UNSELECT (RFC 3691), SPECIAL-USE (RFC 6154),
LIST-EXTENDED and LIST-STATUS (RFC 5258, RFC 5819), ESEARCH (RFC 4731),
CONDSTORE (RFC 7162), STATUS=SIZE (RFC 8438), BINARY (RFC 3516).

``grammar`` holds the shared grammar, ``parser`` turns bytes into commands,
``session`` and ``selected`` are the state machine and the selected mailbox's
view, ``commands`` is the command table with one small handler per verb,
``fetch`` and ``search`` render and evaluate, ``server`` owns the sockets.
"""
