"""POP3 greeting, CAPA, STLS and logins (RFC 1939 §4-§7, RFC 2449, RFC 2595, RFC 5034),
over real sockets with poplib and a raw connection.

Like Dovecot, postar refuses USER, PASS and AUTH before TLS with
``-ERR [AUTH] Plaintext authentication disallowed ...`` and offers neither USER
nor SASL in CAPA until TLS is on. Unlike Dovecot, loopback clients get no
exemption: the rule is the same everywhere.
"""

from __future__ import annotations

import base64
import poplib

import pytest

from postar.pop3 import responses
from tests.conftest import PASSWORD, USERS
from tests.imap.wire import new_user, plain_response
from tests.pop3.pop import Pop, login_once_free


def capa(pop: Pop) -> list[bytes]:
    return pop.lines("CAPA")


def test_greeting_and_capa_before_tls_offer_stls_not_logins(server):
    pop = Pop.connect(server, tls=False)
    assert pop.greeting == responses.GREETING.rstrip(b"\r\n")
    names = capa(pop)
    assert b"STLS" in names and b"UIDL" in names and b"TOP" in names and b"RESP-CODES" in names
    assert b"PIPELINING" in names and b"AUTH-RESP-CODE" in names
    assert not [n for n in names if n.startswith((b"USER", b"SASL"))]


@pytest.mark.parametrize("command", ["USER alice@example.test", "PASS secret", "AUTH PLAIN",
                                     f"AUTH PLAIN {plain_response(USERS[0], PASSWORD)}"])
def test_logins_before_tls_are_refused_with_auth_code(server, command):
    pop = Pop.connect(server, tls=False)
    assert pop.command(command) + b"\r\n" == responses.PLAINTEXT_REFUSED
    assert pop.command("NOOP") + b"\r\n" == responses.NOT_LOGGED_IN  # still usable, still not in


def test_poplib_stls_then_login(server):
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Plaintext"):
        client.user(USERS[0])
    client.stls(context=server.client_tls())
    assert "USER" in client.capa() and client.capa()["SASL"] == ["PLAIN", "LOGIN"]
    assert "STLS" not in client.capa()
    client.user(USERS[0])
    assert client.pass_(PASSWORD) == b"+OK Logged in."
    assert client.stat()[0] >= 0
    assert client.quit().startswith(b"+OK")


def test_capa_in_transaction_lists_no_login_capabilities(server):
    pop = Pop.login(server, new_user(server))
    names = capa(pop)
    assert b"UIDL" in names and not [n for n in names if n.startswith((b"USER", b"SASL", b"STLS"))]


def test_stls_discards_commands_pipelined_before_the_handshake(server):
    """RFC 2595 §3.1 / the STARTTLS injection flaw: what came with STLS is thrown away."""
    pop = Pop.connect(server, tls=False)
    pop.send(b"STLS\r\nUSER alice@example.test\r\n")
    assert pop.line().startswith(b"+OK Begin TLS")
    pop.sock = server.client_tls().wrap_socket(pop.sock, server_hostname="127.0.0.1")
    assert pop.command(f"PASS {PASSWORD}") + b"\r\n" == responses.NO_USERNAME


def test_stls_twice_and_on_implicit_tls(server):
    pop = Pop.connect(server, tls=False)
    pop.stls(server)
    assert pop.command("STLS") + b"\r\n" == responses.TLS_ACTIVE
    assert Pop.connect(server).command("STLS") + b"\r\n" == responses.TLS_ACTIVE


def test_auth_plain_with_initial_response(server):
    pop = Pop.connect(server)
    assert pop.command(f"AUTH PLAIN {plain_response(USERS[1], PASSWORD)}") == b"+OK Logged in."
    assert pop.command("STAT").startswith(b"+OK ")


def test_auth_plain_with_continuation_and_poplib_rpop_free_login(server):
    pop = Pop.connect(server)
    assert pop.command("AUTH PLAIN") == b"+ "
    assert pop.command(plain_response(USERS[1], PASSWORD)) == b"+OK Logged in."


def test_auth_login_mechanism(server):
    pop = Pop.connect(server)
    assert pop.command("AUTH LOGIN") == b"+ " + base64.b64encode(b"Username:")
    assert pop.command(base64.b64encode(USERS[1].encode())) == b"+ " + base64.b64encode(b"Password:")
    assert pop.command(base64.b64encode(PASSWORD.encode())) == b"+OK Logged in."


def test_auth_cancel_unknown_mechanism_and_bad_base64(server):
    pop = Pop.connect(server)
    assert pop.command("AUTH PLAIN") == b"+ "
    assert pop.command("*") + b"\r\n" == responses.AUTH_CANCELLED
    assert pop.command("AUTH CRAM-MD5") + b"\r\n" == responses.UNKNOWN_MECHANISM
    assert pop.command("AUTH PLAIN !!!notbase64").startswith(b"-ERR Invalid AUTH response")
    assert pop.command(f"AUTH PLAIN {plain_response(USERS[1], PASSWORD, authzid=USERS[0])}").startswith(
        b"-ERR Invalid AUTH response: logging in as another user")
    assert pop.lines("AUTH") == [b"PLAIN", b"LOGIN"]  # the old listing form
    assert pop.command(f"AUTH PLAIN {plain_response(USERS[1], PASSWORD)}") == b"+OK Logged in."


@pytest.mark.parametrize("user, password", [(USERS[0], "wrong"), ("nobody@example.test", PASSWORD),
                                            ("alice", PASSWORD)])
def test_wrong_credentials_get_auth_code(server, user, password):
    pop = Pop.connect(server)
    assert pop.command(f"USER {user}") == b"+OK"
    assert pop.command(f"PASS {password}") + b"\r\n" == responses.AUTH_FAILED
    assert pop.command("STAT") + b"\r\n" == responses.NOT_LOGGED_IN
    assert pop.command(f"USER {USERS[1]}") == b"+OK"  # may try again
    assert pop.command(f"PASS {PASSWORD}") == b"+OK Logged in."


def test_pass_takes_the_rest_of_the_line(server):
    user = new_user(server)
    server.cli("user", "passwd", user, "--password-stdin", input="with  two spaces\n")
    pop = Pop.connect(server)
    pop.command(f"USER {user}")
    assert pop.command("PASS with  two spaces") == b"+OK Logged in."
    pop.command("QUIT")
    client = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.client_tls(), timeout=30)
    client.user(user)
    assert client.pass_("with  two spaces") == b"+OK Logged in."


def test_app_password_logs_in(server):
    user = new_user(server)
    printed = server.cli("user", "app-password", user, "--name", "phone").stdout
    app_password = printed.strip().splitlines()[-1]
    client = server.pop3(user, app_password)
    assert client.stat() == (0, 0)


def test_disabled_account_is_refused(server):
    user = new_user(server)
    server.cli("user", "disable", user)
    pop = Pop.connect(server)
    pop.command(f"USER {user}")
    assert pop.command(f"PASS {PASSWORD}") + b"\r\n" == responses.AUTH_FAILED


def test_pop_access_off_is_refused_with_sys_perm(server):
    user = new_user(server)
    server.cli("user", "pop", "access", user, "off")
    pop = Pop.connect(server)
    pop.command(f"USER {user}")
    assert pop.command(f"PASS {PASSWORD}") + b"\r\n" == responses.POP_TURNED_OFF
    server.cli("user", "pop", "access", user, "all")
    assert Pop.login(server, user).command("STAT") == b"+OK 0 0"


def test_second_session_gets_in_use_until_the_first_ends(server):
    user = new_user(server)
    first = Pop.login(server, user)
    second = Pop.connect(server)
    second.command(f"USER {user}")
    assert second.command(f"PASS {PASSWORD}") + b"\r\n" == responses.IN_USE
    assert first.command("QUIT") == b"+OK Logging out."
    assert first.closed()
    second.command(f"USER {user}")
    assert second.command(f"PASS {PASSWORD}") == b"+OK Logged in."
    second.close()  # a dropped connection releases the lock too, once the server sees it go
    third = login_once_free(server, user)
    assert third.command("STAT") == b"+OK 0 0"



def test_imap_and_pop3_may_be_open_together(server):
    user = new_user(server)
    imap = server.imap(user)
    pop = Pop.login(server, user)
    assert pop.command("STAT") == b"+OK 0 0"
    imap.logout()


def test_failed_logins_are_limited(start_server):
    private = start_server("failed_logins = 3\nfailed_login_window = 600")
    pop = Pop.connect(private)
    for _ in range(3):
        pop.command(f"USER {USERS[0]}")
        assert pop.command("PASS wrong") + b"\r\n" == responses.AUTH_FAILED
    pop.command(f"USER {USERS[0]}")
    assert pop.command(f"PASS {PASSWORD}") + b"\r\n" == responses.LOGINS_BLOCKED
    assert pop.command(f"AUTH PLAIN {plain_response(USERS[0], PASSWORD)}") + b"\r\n" == responses.LOGINS_BLOCKED
    assert "login refused" in private.log()


def test_login_commands_after_login_are_refused(server):
    pop = Pop.login(server, new_user(server))
    for command in ("USER x", "PASS y", "AUTH PLAIN", "STLS"):
        assert pop.command(command) + b"\r\n" == responses.ALREADY_LOGGED_IN
    assert pop.command("NOOP") == b"+OK"


def test_no_password_in_the_log(server):
    pop = Pop.connect(server)
    pop.command(f"USER {USERS[0]}")
    pop.command("PASS sekrit-pop-password-123")
    pop.command("QUIT")
    assert "sekrit-pop-password-123" not in server.log()
