"""Interoperability with Debian's swaks, a real SMTP client, against the shared server.

Submission with STARTTLS and AUTH PLAIN/LOGIN, implicit TLS on 465, pipelining
on port 25, and the refusals a client must understand: relay denied, a wrong
password, and a sender address the account does not own. swaks does not verify
the server certificate, so the test CA is not needed here. The swaks in Debian
(20201014) cannot send MAIL/RCPT parameters, so DSN NOTIFY/ORCPT are covered by
the smtplib tests in tests/smtp/test_submission.py instead.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from postar.smtp import replies
from tests.conftest import PASSWORD, USERS

pytestmark = pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")

# swaks exit codes (swaks(1), EXIT CODES)
NO_RCPTS_ACCEPTED = 24
MAIL_REFUSED = 23
AUTH_FAILED = 28


def unique() -> str:
    return uuid.uuid4().hex


def swaks(server, port: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(server.ports[port]),
                           "--ehlo", "client.test", "--timeout", "30", *args],
                          capture_output=True, text=True, timeout=120)


def login(mechanism: str, password: str = PASSWORD, user: str = USERS[0]) -> list[str]:
    return ["--auth", mechanism, "--auth-user", user, "--auth-password", password]


def replied(result: subprocess.CompletedProcess, reply: replies.Reply) -> bool:
    """Whether the server sent ``reply``'s code and enhanced code (the text may name an address)."""
    # swaks marks what it received "<-" (plain), "<~" (TLS), and errors with a "*": "<**", "<~*".
    received = [line[4:] for line in result.stdout.splitlines() if line.startswith("<")]
    return any(line.startswith(f"{reply.code} {reply.enhanced} ") for line in received)


def stored_with(server, address: str, marker: str):
    return [m for m in server.messages(address) if f"X-Test: {marker}".encode() in m.content]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_submission_starttls_auth_local_and_remote(server, mechanism):
    marker = unique()
    remote = f"carol.{marker}@remote.test"
    result = swaks(server, "submission", "-tls", *login(mechanism), "--from", USERS[0],
                   "--to", f"{USERS[1]},{remote}", "--header", f"X-Test: {marker}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert replied(result, replies.AUTH_OK), result.stdout
    [stored] = stored_with(server, USERS[1], marker)
    assert b"with ESMTPSA id" in stored.content
    assert b"X-Mailer: swaks" in stored.content
    [entry] = [e for e in server.queue() if any(r.address == remote for r in e.recipients)]
    assert entry.sender == USERS[0]
    # Only the remote recipient is queued, and with no DSN parameters since none were sent.
    assert [(r.address, r.notify, r.orcpt) for r in entry.recipients] == [(remote, "", "")]


def test_implicit_tls_on_465(server):
    marker = unique()
    result = swaks(server, "submissions", "--tls-on-connect", *login("LOGIN"), "--from", USERS[0],
                   "--to", USERS[0], "--header", f"X-Test: {marker}")
    assert result.returncode == 0, result.stdout + result.stderr
    [stored] = stored_with(server, USERS[0], marker)
    assert b"with ESMTPSA id" in stored.content
    assert b"(using TLSv1." in stored.content


def test_pipelining_on_port_25(server):
    marker = unique()
    result = swaks(server, "smtp", "--pipeline", "--from", "bob@remote.test",
                   "--to", f"{USERS[0]},nobody@example.test,{USERS[1]}", "--header", f"X-Test: {marker}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    sent = [n for n, line in enumerate(lines) if line.startswith(" -> ")]
    mail = next(n for n in sent if lines[n].startswith(" -> MAIL FROM:"))
    # swaks really pipelined: MAIL, three RCPTs and DATA went out before any reply came back...
    assert [lines[n][4:8] for n in range(mail, mail + 5)] == ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"]
    # ...and the replies came back in the order of the commands.
    answers = [line[4:].split(" ", 2)[:2] for line in lines[mail + 5:mail + 10]]
    assert answers == [["250", "2.1.0"], ["250", "2.1.5"], ["550", "5.1.1"], ["250", "2.1.5"], ["354", "End"]]
    assert len(stored_with(server, USERS[0], marker)) == 1
    assert len(stored_with(server, USERS[1], marker)) == 1


def test_relay_from_port_25_is_denied(server):
    marker = unique()
    result = swaks(server, "smtp", "--from", "bob@remote.test", "--to", f"carol.{marker}@other.test",
                   "--header", f"X-Test: {marker}")
    assert result.returncode == NO_RCPTS_ACCEPTED, result.stdout + result.stderr
    assert replied(result, replies.RELAY_DENIED), result.stdout
    assert not [e for e in server.queue() if any(marker in r.address for r in e.recipients)]


def test_wrong_password_is_535_5_7_8(server):
    result = swaks(server, "submission", "-tls", *login("PLAIN", password="not the password"),
                   "--from", USERS[0], "--to", USERS[1])
    assert result.returncode == AUTH_FAILED, result.stdout + result.stderr
    assert replied(result, replies.AUTH_FAILED), result.stdout
    assert " -> MAIL FROM" not in result.stdout and " ~> MAIL FROM" not in result.stdout


def test_sender_not_owned_is_553_5_7_1(server):
    marker = unique()
    result = swaks(server, "submission", "-tls", *login("PLAIN"), "--from", "carol@other.test",
                   "--to", USERS[1], "--header", f"X-Test: {marker}")
    assert result.returncode == MAIL_REFUSED, result.stdout + result.stderr
    assert replied(result, replies.SENDER_NOT_OWNED), result.stdout
    assert not stored_with(server, USERS[1], marker)
