"""SMTP server: MX on port 25, submission on 587 (STARTTLS) and 465 (implicit TLS).

RFCs: 5321 (SMTP), 6409 (submission), 8314 (implicit TLS), 3207 (STARTTLS),
4954 (AUTH), 3463 and 2034 (enhanced status codes), 1870 (SIZE), 6152
(8BITMIME), 6531 (SMTPUTF8), 2920 (PIPELINING), 3030 (CHUNKING), 3461 (DSN).

``parser`` turns bytes into command values, ``session`` is the state machine,
``server`` owns sockets, buffers, TLS and timeouts; ``replies`` holds every
reply line, shared with the tests.
"""
