"""IMAP login over real sockets: STARTTLS, LOGIN, AUTHENTICATE PLAIN, app passwords, states, throttling.

Transcripts, one line per exchange, on ``tests/imap/wire.py``'s ``Wire``.
Checked against Dovecot 2.3.19 (Debian 12) on loopback: same status and
response code for every exchange here; Dovecot names no IMAP4rev2, and it
answers commands of the wrong state with BAD as postar does.
"""

from __future__ import annotations

import imaplib
import re

from imapclient import IMAPClient

from tests.conftest import PASSWORD, USERS
from tests.imap.wire import Wire, quote, unique, new_user, imapclient, plain_response, capabilities



def test_plain_port_offers_starttls_and_no_login(server):
    wire = Wire.connect(server, tls=False)
    assert wire.greeting.startswith(b"* OK [CAPABILITY ")
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "STARTTLS" in words and "LOGINDISABLED" in words and "IMAP4rev1" in words
    assert not any(w.startswith("AUTH=") for w in words)
    wire.close()


def test_login_before_starttls_is_privacyrequired(server):
    wire = Wire.connect(server, tls=False)
    wire.expect("NO [PRIVACYREQUIRED]", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("NO [PRIVACYREQUIRED]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.expect("NO [PRIVACYREQUIRED]", "AUTHENTICATE PLAIN")  # refused before any continuation
    wire.expect("BAD", "SELECT INBOX")  # still not authenticated
    wire.close()


def test_starttls_then_login(server):
    wire = Wire.connect(server, tls=False)
    wire.starttls(server)
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "AUTH=PLAIN" in words
    assert "STARTTLS" not in words and "LOGINDISABLED" not in words
    wire.expect("BAD", "STARTTLS")  # TLS is already active
    wire.expect("OK [CAPABILITY ", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_starttls_discards_commands_pipelined_in_plain_text(server):
    # RFC 9051 §6.2.1 / RFC 2595 §3.1: plaintext sent after STARTTLS must not run inside TLS.
    wire = Wire.connect(server, tls=False)
    wire.send(b"s1 STARTTLS\r\ns2 CAPABILITY\r\n")
    assert wire.until("s1", "OK") == []
    wire.sock = server.client_tls().wrap_socket(wire.sock, server_hostname="127.0.0.1")
    wire.buffer = b""
    assert wire.expect("OK", "NOOP", tag="s3") == []  # no reply for s2
    wire.close()


def test_imaplib_starttls_login(server):
    client = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    client.starttls(ssl_context=server.client_tls())
    assert client.login(USERS[1], PASSWORD)[0] == "OK"
    assert client.select("INBOX")[0] == "OK"
    client.logout()


# LOGIN and AUTHENTICATE on implicit TLS -------------------------------------------------

def test_implicit_tls_offers_auth_plain_without_starttls(server):
    wire = Wire.connect(server)
    words = capabilities(wire.expect("OK", "CAPABILITY"))
    assert "AUTH=PLAIN" in words and "SASL-IR" in words
    assert "STARTTLS" not in words and "LOGINDISABLED" not in words
    login_words = wire.expect("OK [CAPABILITY", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    assert login_words == []
    assert "AUTH=PLAIN" not in wire.tagged.decode()  # no more login capabilities once logged in
    wire.close()


def test_login_with_literals(server):
    wire = Wire.connect(server)
    user = USERS[0].encode()
    wire.send(b"l1 LOGIN {%d}\r\n" % len(user))
    assert wire.response().startswith(b"+")
    wire.send(user + b" {%d}\r\n" % len(PASSWORD))
    assert wire.response().startswith(b"+")
    wire.send(PASSWORD.encode() + b"\r\n")
    wire.until("l1", "OK")
    wire.close()


def test_authenticate_plain_with_initial_response(server):
    wire = Wire.connect(server)
    wire.expect("OK", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_authenticate_plain_with_continuation(server):
    wire = Wire.connect(server)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response() == b"+ "
    wire.send(plain_response(USERS[1], PASSWORD).encode() + b"\r\n")
    wire.until("a1", "OK")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_imaplib_authenticate_plain(server):
    client = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.client_tls(), timeout=30)
    typ, _ = client.authenticate("PLAIN", lambda _: f"\0{USERS[1]}\0{PASSWORD}".encode())
    assert typ == "OK" and client.state == "AUTH"
    client.logout()


def test_authenticate_cancelled_or_garbled_is_bad_and_session_goes_on(server):
    wire = Wire.connect(server)
    wire.send(b"a1 AUTHENTICATE PLAIN\r\n")
    assert wire.response().startswith(b"+")
    wire.send(b"*\r\n")  # RFC 9051 §6.2.2: a cancelled exchange is BAD
    wire.until("a1", "BAD")
    wire.expect("BAD", "AUTHENTICATE PLAIN !!notbase64!!")
    wire.expect("NO", "AUTHENTICATE CRAM-MD5")  # not offered
    wire.expect("OK", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.close()


def test_authenticate_plain_as_another_user_is_refused(start_server):
    private = start_server()
    wire = Wire.connect(private)
    # authzid bob, authcid alice with alice's password: alice may not act as bob. The exchange is
    # well-formed, so this is an authorization failure, NO (RFC 9051 §6.2.2, RFC 4616 §2; RFC 5530's
    # AUTHORIZATIONFAILED fits; Dovecot says NO [AUTHENTICATIONFAILED]), not BAD.
    wire.expect("NO", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD, authzid=USERS[1])}")
    wire.expect("BAD", "SELECT INBOX")
    wire.close()


def test_wrong_password_is_authenticationfailed_and_the_session_may_retry(start_server):
    private = start_server()  # failed logins are counted per address: kept off the shared server
    wire = Wire.connect(private)
    wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {USERS[0]} wrong")
    wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN nobody@example.test {quote(PASSWORD)}")
    wire.expect("NO [AUTHENTICATIONFAILED]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], 'wrong')}")
    wire.expect("BAD", "SELECT INBOX")
    wire.expect("OK", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.close()


def test_app_password_logs_in_with_or_without_spaces(server):
    name = unique("client")
    output = server.cli("user", "app-password", USERS[1], "--name", name).stdout
    password = output.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"[a-z]{4}( [a-z]{4}){3}", password), output
    for typed in (password, password.replace(" ", "")):
        wire = Wire.connect(server)
        wire.expect("OK", f"LOGIN {USERS[1]} {quote(typed)}")
        wire.close()
    client = IMAPClient("127.0.0.1", port=server.ports["imaps"], ssl=True, ssl_context=server.client_tls(), timeout=30)
    client.login(USERS[1], password)
    assert client.folder_exists("INBOX")
    client.logout()


def test_too_many_failures_give_unavailable_even_for_the_right_password(start_server):
    private = start_server(extra_limits="failed_logins = 3")
    wire = Wire.connect(private)
    for _ in range(3):
        wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {USERS[0]} wrong")
    wire.expect("NO [UNAVAILABLE]", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    wire.expect("NO [UNAVAILABLE]", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}")
    wire.close()
    other = Wire.connect(private)  # the limit is per address, not per connection
    other.expect("NO [UNAVAILABLE]", f"LOGIN {USERS[1]} {quote(PASSWORD)}")
    other.send(b"a1 AUTHENTICATE PLAIN\r\n")  # refused before the continuation
    other.until("a1", "NO [UNAVAILABLE]")
    other.close()


def test_connections_per_address_are_limited(start_server):
    private = start_server(extra_limits="connections_per_ip = 2")
    first, second = Wire.connect(private), Wire.connect(private)
    third = Wire.connect(private)
    assert third.greeting.startswith(b"* BYE [UNAVAILABLE]")
    assert third.closed()
    first.expect("OK", "NOOP")
    first.close()
    second.expect("OK", "NOOP")
    second.close()


def test_imap_access_switch_refuses_login(server):
    address = new_user(server)
    server.cli("user", "imap", address, "off")
    wire = Wire.connect(server)
    wire.expect("NO [CONTACTADMIN]", f"LOGIN {address} {quote(PASSWORD)}")
    wire.close()
    assert "IMAP access disabled for " + address in server.log()
    server.cli("user", "imap", address, "on")
    wire = Wire.connect(server)
    wire.expect("OK", f"LOGIN {address} {quote(PASSWORD)}")
    wire.close()


# States (RFC 9051 §3) ----------------------------------------------------------------

def test_commands_in_the_wrong_state_are_bad(server):
    wire = Wire.connect(server)
    for command in ("SELECT INBOX", "LIST \"\" *", "CREATE x", "ENABLE UTF8=ACCEPT", "IDLE", "FETCH 1 FLAGS",
                    "NAMESPACE", "APPEND INBOX {1+}\r\nx"):
        wire.expect("BAD", command)
    for command in ("NOOP", "CAPABILITY", 'ID ("name" "pytest")'):
        wire.expect("OK", command)
    wire.close()
    wire = Wire.login(server)  # a new session: 20 BADs in one would close it (limits.errors)
    for command in (f"LOGIN {USERS[0]} {quote(PASSWORD)}", f"AUTHENTICATE PLAIN {plain_response(USERS[0], PASSWORD)}",
                    "STARTTLS", "FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "EXPUNGE", "CLOSE", "UNSELECT",
                    "SEARCH ALL", "UID FETCH 1 FLAGS", "COPY 1 INBOX", "CHECK"):
        wire.expect("BAD", command)
    wire.expect("OK", "EXAMINE INBOX")
    wire.expect("OK", "CLOSE")
    wire.expect("BAD", "FETCH 1 FLAGS")  # back in the authenticated state
    wire.close()


def test_logout_says_bye_then_ok_then_closes(server):
    wire = Wire.login(server)
    untagged = wire.expect("OK", "LOGOUT")
    assert len(untagged) == 1 and untagged[0].startswith(b"* BYE ")
    assert wire.closed()


def test_logout_before_login(server):
    wire = Wire.connect(server, tls=False)
    [bye] = wire.expect("OK", "LOGOUT")
    assert bye.startswith(b"* BYE")
    assert wire.closed()


def test_imapclient_login_and_capabilities(server):
    client = imapclient(server, USERS[1])
    caps = client.capabilities()
    for word in (b"IMAP4REV1", b"IDLE", b"UIDPLUS", b"MOVE", b"CONDSTORE", b"ESEARCH", b"SPECIAL-USE"):
        assert word in caps
    assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
    client.logout()
