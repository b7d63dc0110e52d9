"""Port 25: other mail servers deliver to local recipients, without AUTH."""

from __future__ import annotations

import smtplib
import socket
import uuid

import pytest

from postar.smtp import replies
from tests.conftest import HOSTNAME, USERS, message


def unique() -> str:
    return uuid.uuid4().hex


def find(server, address: str, marker: str):
    return [m for m in server.messages(address) if marker.encode() in m.content]


def test_ehlo_advertises_extensions_but_no_auth(server):
    client = server.smtp()
    code, text = client.ehlo("client.test")
    assert code == 250
    keywords = text.decode().splitlines()
    assert keywords[0] == HOSTNAME
    for keyword in ("PIPELINING", "SIZE 1048576", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                    "CHUNKING", "DSN", "STARTTLS"):
        assert keyword in keywords
    assert not any(k.startswith("AUTH") for k in keywords)
    client.quit()


def test_delivery_stores_exact_bytes_with_trace_headers(server):
    marker = unique()
    body = f"line one {marker}\r\n..a line that started with a dot\r\n\r\nend\r\n"
    raw = message(subject=marker, body=body)
    client = server.smtp()
    client.sendmail("bob@remote.test", [USERS[0]], raw)
    client.quit()
    [stored] = find(server, USERS[0], marker)
    assert stored.content.startswith(b"Return-Path: <bob@remote.test>\r\nReceived: from client.test ([127.0.0.1])")
    assert f"by {HOSTNAME} (postar) with ESMTP id".encode() in stored.content
    assert f"for <{USERS[0]}>;".encode() in stored.content
    # smtplib dot-stuffs; the store holds the client's message exactly, unstuffed.
    assert stored.content.endswith(raw)
    assert stored.size == len(stored.content)
    assert stored.mailbox == "INBOX" and stored.uid >= 1


def test_starttls_on_port_25_marks_received_as_esmtps(server):
    marker = unique()
    client = server.smtp()
    client.starttls(context=server.client_tls())
    client.ehlo("client.test")
    client.sendmail("bob@remote.test", [USERS[1]], message(subject=marker, to=USERS[1]))
    client.quit()
    [stored] = find(server, USERS[1], marker)
    assert b"with ESMTPS id" in stored.content
    assert b"(using TLSv1." in stored.content


def test_alias_expands_to_every_target_once(server):
    marker = unique()
    client = server.smtp()
    client.sendmail("bob@remote.test", ["team@example.test", USERS[0]], message(subject=marker))
    client.quit()
    assert len(find(server, USERS[0], marker)) == 1
    assert len(find(server, USERS[1], marker)) == 1


def test_postmaster_without_domain_is_accepted(server):
    client = server.smtp()
    client.mail("bob@remote.test")
    code, _ = client.rcpt("<postmaster@example.test>")
    assert code == 250
    client.quit()


def test_unknown_local_recipient_is_550_5_1_1(server):
    client = server.smtp()
    client.mail("bob@remote.test")
    code, text = client.rcpt("nobody@example.test")
    assert (code, text.split()[0].decode()) == (550, "5.1.1")
    client.quit()


@pytest.mark.parametrize("recipient", [
    "carol@other.test",
    "<@example.test:carol@other.test>",       # source route through us
    "carol%other.test@example.test",          # the percent hack
    '"carol@other.test"@example.test',        # quoted local part holding an @
    "other.test!carol@example.test",          # bang path
    "carol@[192.0.2.1]",                      # address literal
])
def test_relaying_is_denied_on_port_25(server, recipient):
    client = server.smtp()
    client.mail("bob@remote.test")
    code, text = client.rcpt(recipient if recipient.startswith("<") else f"<{recipient}>")
    assert code in (550, 554), text
    assert text.split()[0] == b"5.7.1"
    client.quit()
    assert not [e for e in server.queue() if "other.test" in " ".join(r.address for r in e.recipients)]


def test_auth_is_not_offered_on_port_25(server):
    client = server.smtp()
    client.starttls(context=server.client_tls())
    client.ehlo()
    code, text = client.docmd("AUTH", "PLAIN AGFsaWNlAHg=")
    assert (code, text.decode()) == (replies.AUTH_NOT_HERE.code, f"{replies.AUTH_NOT_HERE.enhanced} {replies.AUTH_NOT_HERE.text}")
    client.quit()


def test_vrfy_never_reveals_accounts(server):
    client = server.smtp()
    assert client.verify(USERS[0])[0] == 252
    assert client.verify("nobody@example.test")[0] == 252
    client.quit()


def test_help_noop_rset(server):
    client = server.smtp()
    assert client.help().startswith(b"2.0.0 Commands:")
    assert client.noop()[0] == 250
    client.mail("bob@remote.test")
    assert client.rset()[0] == 250
    assert client.mail("bob@remote.test")[0] == 250  # RSET ended the transaction
    client.quit()


def test_too_many_recipients_is_452_4_5_3(server):
    client = server.smtp()
    client.mail("bob@remote.test")
    for _ in range(5):
        assert client.rcpt(USERS[0])[0] == 250
    code, text = client.rcpt(USERS[1])
    assert (code, text.split()[0]) == (452, b"4.5.3")
    client.quit()


def test_declared_size_over_limit_is_552_5_3_4(server):
    client = server.smtp()
    code, text = client.mail("bob@remote.test", ["SIZE=2000000"])
    assert (code, text.split()[0]) == (552, b"5.3.4")
    client.quit()


def test_actual_size_over_limit_is_552_5_3_4_and_session_goes_on(server):
    marker = unique()
    client = server.smtp()
    client.mail("bob@remote.test")
    client.rcpt(USERS[0])
    code, text = client.data(message(subject=marker, body="x" * 76 + "\r\n") * 1 + b"y" * 1_100_000 + b"\r\n")
    assert (code, text.split()[0]) == (552, b"5.3.4")
    assert client.noop()[0] == 250
    client.quit()
    assert not find(server, USERS[0], marker)


@pytest.mark.parametrize("line, code, enhanced", [
    ("FOO bar", 500, "5.5.2"),
    ("MAIL TO:<a@b.test>", 501, "5.5.4"),
    ("MAIL FROM:<not an address>", 501, "5.1.7"),
    ("MAIL FROM:<a@b.test> BODY=BINARYMIME", 501, "5.5.4"),
    ("MAIL FROM:<a@b.test> FROBNICATE=1", 555, "5.5.4"),
    ("RCPT TO:<alice@example.test>", 503, "5.5.1"),
    ("DATA", 503, "5.5.1"),
    ("HELO", 501, "5.5.4"),
])
def test_syntax_and_sequence_errors(server, line, code, enhanced):
    client = server.smtp()
    got_code, text = client.docmd(line)
    assert (got_code, text.split()[0].decode()) == (code, enhanced)
    assert client.noop()[0] == 250
    client.quit()


def test_mail_before_helo_is_503(server):
    client = smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30)
    code, text = client.docmd("MAIL FROM:<bob@remote.test>")
    assert (code, text.split()[0]) == (503, b"5.5.1")
    client.quit()


def test_smtputf8_address_needs_the_parameter(server):
    client = server.smtp()
    client.command_encoding = "utf-8"
    code, text = client.docmd("MAIL FROM:<jörg@remote.test>")
    assert (code, text.split()[0]) == (553, b"5.6.7")
    assert client.docmd("MAIL FROM:<jörg@remote.test> SMTPUTF8")[0] == 250
    client.quit()


def test_bdat_chunks_are_joined(server):
    marker = unique()
    raw = message(subject=marker)
    client = server.smtp()
    client.mail("bob@remote.test")
    client.rcpt(USERS[1])
    first, second = raw[:20], raw[20:]
    client.send(f"BDAT {len(first)}\r\n".encode() + first)
    assert client.getreply()[0] == 250
    client.send(f"BDAT {len(second)} LAST\r\n".encode() + second)
    code, text = client.getreply()
    assert code == 250 and b"queued as" in text
    client.quit()
    [stored] = find(server, USERS[1], marker)
    assert stored.content.endswith(raw)
    assert b"with ESMTP id" in stored.content


def test_pipelined_transaction_gets_replies_in_order(server):
    marker = unique()
    raw = message(subject=marker)
    client = server.smtp()
    client.send(b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<nobody@example.test>\r\n"
                b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
    assert [client.getreply()[0] for _ in range(4)] == [250, 550, 250, 354]
    client.send(raw + b".\r\n")
    assert client.getreply()[0] == 250
    client.quit()
    assert len(find(server, USERS[0], marker)) == 1


def test_empty_message_is_accepted(server):
    client = server.smtp()
    client.mail("bob@remote.test")
    client.rcpt(USERS[1])
    client.send(b"DATA\r\n")
    assert client.getreply()[0] == 354
    client.send(b".\r\n")
    assert client.getreply()[0] == 250
    assert client.noop()[0] == 250
    client.quit()


def test_half_closed_client_still_gets_every_reply(server):
    """A script that writes its whole session and half-closes (as `nc -N` does) is answered."""
    marker = unique()
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=30) as sock:
        sock.sendall(b"EHLO client.test\r\nMAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
                     b"DATA\r\n" + message(subject=marker) + b".\r\nQUIT\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    codes = [line[:3] for line in received.split(b"\r\n") if line[3:4] == b" "]
    assert codes == [b"220", b"250", b"250", b"250", b"354", b"250", b"221"]
    assert len(find(server, USERS[0], marker)) == 1


def test_recipient_over_quota_is_452_4_2_2_and_imap_reports_it(start_server):
    private = start_server(extra_limits="quota = 4096")
    client = private.smtp()
    client.sendmail("bob@remote.test", [USERS[1]], message(body="x" * 3000 + "\r\n", to=USERS[1]))
    client.mail("bob@remote.test", ["SIZE=2000"])
    code, text = client.rcpt(USERS[1])
    assert (code, text.split()[0]) == (replies.MAILBOX_FULL.code, b"4.2.2")
    assert client.rcpt(USERS[0])[0] == 250  # another account still has room
    client.quit()
    imap = private.imap(USERS[1])
    typ, data = imap.getquotaroot("INBOX")
    assert typ == "OK" and data[1][0].startswith(b'"" (STORAGE 3 4)')
    imap.logout()
