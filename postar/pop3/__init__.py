"""POP3 (RFC 1939) with CAPA and response codes (RFC 2449, RFC 3206), STLS
(RFC 2595) and AUTH (RFC 5034): parser, maildrop, session and server apart."""
