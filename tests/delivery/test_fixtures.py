"""Self-tests of the receiving servers the outbound-delivery tests rely on.

PostfixReceiver: what a client sends arrives byte for byte after the one header
Postfix adds, its Received header; STARTTLS is used and seen (smtplib and
swaks). ScriptedSMTP: every reply, stall and drop mode does what it says, and
the recordings hold what the client sent.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from tests.delivery.conftest import can_listen
from tests.delivery.scripted_smtp import DROP, STALL, Behaviour

NET, ORG = "example.net", "example.org"
MX1, MX2 = "127.0.0.2", "127.0.0.3"

# dots at line starts (stuffed on the wire), an empty line, a 998-octet line (RFC 5321 §4.5.3.1.6)
EXACT = (b"From: Sender <sender@origin.test>\r\nTo: a@example.net, b@example.org\r\n"
         b"Subject: exact bytes\r\nMessage-ID: <exact.1@origin.test>\r\n"
         b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n"
         b"line one\r\n.one dot\r\n..two dots\r\n.\r\n\r\n" + b"x" * 998 + b"\r\nlast line\r\n")
# No Date, Message-ID or From: Postfix must not add them for a remote client.
BARE = b"Subject: bare\r\n\r\nno other header\r\n"


def client_tls(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def smtp(ip: str, port: int, timeout: float = 10) -> smtplib.SMTP:
    return smtplib.SMTP(ip, port, local_hostname="client.test", timeout=timeout)


# PostfixReceiver


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@pytest.fixture(params=["now", "the 3rd, in another zone"])
def clock(request, monkeypatch):
    """The receiving Postfix's clock: as it is, or (libfaketime) on a one-digit day of the
    month in a zone whose abbreviation is not a word, so the test cannot depend on the date."""
    if request.param == "now":
        return {}
    if not FAKETIME.exists():
        pytest.skip("needs Debian's faketime package")
    monkeypatch.setenv("LD_PRELOAD", str(FAKETIME))
    monkeypatch.setenv("FAKETIME", "@2026-12-03 10:00:00")
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    # master(8) passes its daemons only the environment named here (postconf(5))
    return {"import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_PRELOAD FAKETIME"}


def test_postfix_delivers_exact_bytes_after_its_received_header_over_starttls(
        postfix_receiver, loopback_port, ca, clock):
    receiver = postfix_receiver(MX1, loopback_port, [NET, ORG], settings=clock)
    with smtp(MX1, loopback_port) as client:
        client.starttls(context=client_tls(ca))  # verifies the certificate for 127.0.0.2
        client.ehlo()
        assert client.sendmail("sender@origin.test", ["a@example.net", "b@example.org"], EXACT) == {}
    [received] = receiver.wait_for(1)
    assert received.sender == "sender@origin.test"
    assert received.recipients == ("a@example.net", "b@example.org")  # one delivery for both
    assert (received.client, received.helo) == ("127.0.0.1", "client.test")
    assert received.tls and received.protocol == "ESMTPS" and received.tls_version == "TLSv1.3"
    # The only thing Postfix adds: its Received header, first, folded with tabs; with
    # several recipients there is no "for <...>" clause. Line ends are LF on delivery.
    assert re.fullmatch(
        rb"Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n"
        rb"\t\(using TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)\n"
        rb"\t key-exchange \S+ server-signature [^\n]+\)\n"
        rb"\t\(No client certificate requested\)\n"
        rb"\tby mx\.example\.net \(Postfix\) with ESMTPS id " + received.queue_id.encode() + rb";\n"
        # Postfix pads a one-digit day with a space ("Thu,  3 Dec"), and the zone
        # comment is the host's abbreviation, which need not be a word ("(-03)").
        rb"\t\w{3}, {1,2}\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}(?: \([^)\n]*\))?\n",
        received.trace_header)
    if clock:
        assert b"\tThu,  3 Dec 2026 " in received.trace_header and b" -0300 (-03)\n" in received.trace_header
    assert received.data == received.trace_header + EXACT.replace(b"\r\n", b"\n")
    assert received.message == EXACT
    [tls_line] = receiver.tls_log()
    assert "Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3" in tls_line


def test_postfix_without_tls_adds_nothing_but_received_for_one_recipient(
        postfix_receiver, loopback_port):
    receiver = postfix_receiver(MX1, loopback_port, [NET], tls=False)
    with smtp(MX1, loopback_port) as client:
        code, extensions = client.ehlo()
        assert code == 250 and b"STARTTLS" not in extensions
        for keyword in (b"PIPELINING", b"8BITMIME", b"SMTPUTF8", b"DSN", b"ENHANCEDSTATUSCODES"):
            assert keyword in extensions.splitlines()
        client.sendmail("sender@origin.test", ["Someone.Unknown@example.net"], BARE)
    [received] = receiver.wait_for(1)
    assert received.recipients == ("Someone.Unknown@example.net",)  # any local part, case kept
    assert not received.tls and received.protocol == "ESMTP" and received.tls_version is None
    assert received.trace_header.startswith(b"Received: from client.test (unknown [127.0.0.1])\n"
                                            b"\tby mx.example.net (Postfix) with ESMTP id ")
    assert b"\n\tfor <Someone.Unknown@example.net>; " in received.trace_header
    assert received.message == BARE
    assert receiver.tls_log() == []


def test_postfix_smtputf8_and_8bitmime(postfix_receiver, loopback_port, ca):
    receiver = postfix_receiver(MX1, loopback_port, [NET, "bücher.example"])
    raw = "From: Jürgen <jürgen@origin.test>\r\nSubject: Grüße\r\n\r\nDrei Äpfel, 8 bit.\r\n".encode()
    with smtp(MX1, loopback_port) as client:
        client.starttls(context=client_tls(ca))
        client.ehlo()
        client.sendmail("jürgen@origin.test", ["ännchen@bücher.example"], raw,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [received] = receiver.wait_for(1)
    assert received.smtputf8 and received.tls and received.protocol == "UTF8SMTPS"
    assert (received.sender, received.recipients) == ("jürgen@origin.test", ("ännchen@bücher.example",))
    assert received.message == raw


def test_postfix_received_keeps_the_order_of_arrival(postfix_receiver, loopback_port):
    receiver = postfix_receiver(MX1, loopback_port, [NET], tls=False)
    with smtp(MX1, loopback_port) as client:
        for n in range(6):  # Postfix delivers them in parallel, in any order
            client.sendmail("sender@origin.test", [f"r{n}@example.net"], BARE)
    received = receiver.wait_for(6)
    assert [r.recipients for r in received] == [(f"r{n}@example.net",) for n in range(6)]


def test_postfix_null_sender_and_relay_refusal(postfix_receiver, loopback_port):
    receiver = postfix_receiver(MX1, loopback_port, [NET], tls=False)
    with smtp(MX1, loopback_port) as client:
        client.ehlo()
        assert client.mail("<>")[0] == 250
        code, text = client.rcpt("someone@elsewhere.test")
        assert (code, text.split(b" ")[0]) == (554, b"5.7.1")  # a real MX relays for no one
        assert client.rcpt("postmaster@example.net")[0] == 250
        assert client.data(BARE)[0] == 250
    [received] = receiver.wait_for(1)
    assert received.sender == "" and received.recipients == ("postmaster@example.net",)


def test_postfix_notifications_show_the_dsn_parameters(postfix_receiver, loopback_port):
    receiver = postfix_receiver(MX1, loopback_port, [NET], tls=False)
    with smtp(MX1, loopback_port) as client:
        client.sendmail("sender@origin.test", ["a@example.net"], BARE, mail_options=["RET=HDRS", "ENVID=env-1"],
                        rcpt_options=["NOTIFY=SUCCESS", "ORCPT=rfc822;orig@example.net"])
    assert len(receiver.wait_for(1)) == 1
    [notice] = receiver.wait_for_notifications(1)  # RFC 3461 success notice, captured instead of sent to origin.test
    assert (notice.sender, notice.recipients, notice.client) == ("", ("sender@origin.test",), "")
    # pipe(8) counts as handing on, not as delivery into a mailbox: "relayed" (RFC 3464 §2.3.3)
    for field in (b"Original-Envelope-Id: env-1", b"Original-Recipient: rfc822;orig@example.net",
                  b"Final-Recipient: rfc822; a@example.net", b"Action: relayed", b"Status: 2.0.0",
                  b"Content-Type: text/rfc822-headers"):  # RET=HDRS: the headers only
        assert field in notice.data
    assert notice.trace_header.startswith(b"Received: by mx.example.net (Postfix)\n\tid ")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_postfix_with_swaks_starttls(postfix_receiver, loopback_port, ca, tmp_path):
    receiver = postfix_receiver(MX1, loopback_port, [NET])
    ca_file, data_file = tmp_path / "ca.pem", tmp_path / "message.eml"
    ca.cert_pem.write_to_path(str(ca_file))
    # swaks sends the file with CRLF line ends, dots stuffed, then CRLF "." CRLF itself.
    data_file.write_bytes(b"Subject: via swaks\n\n.leading dot\nbody")
    result = subprocess.run(
        ["swaks", "--server", MX1, "--port", str(loopback_port), "--ehlo", "swaks.test",
         "--from", "sender@origin.test", "--to", "a@example.net", "-tls", "--tls-verify",
         "--tls-ca-path", str(ca_file), "--data", f"@{data_file}", "--timeout", "10"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TLS started with cipher TLSv1.3" in result.stdout
    [received] = receiver.wait_for(1)
    assert received.tls_version == "TLSv1.3" and received.helo == "swaks.test"
    assert received.data == received.trace_header + data_file.read_bytes() + b"\n"
    assert len(receiver.tls_log()) == 1


def test_two_postfix_receivers_share_a_port_and_stop_cleanly(postfix_receiver, loopback_port):
    first = postfix_receiver(MX1, loopback_port, [NET], tls=False)
    second = postfix_receiver(MX2, loopback_port, [ORG], tls=False)
    for ip, address in ((MX1, "a@example.net"), (MX2, "b@example.org")):
        with smtp(ip, loopback_port) as client:
            client.sendmail("sender@origin.test", [address], BARE)
    assert [r.recipients for r in first.wait_for(1)] == [("a@example.net",)]
    assert [r.recipients for r in second.wait_for(1)] == [("b@example.org",)]
    first.stop()
    assert can_listen(MX1, loopback_port)  # every Postfix process let go of the socket
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((MX1, loopback_port), timeout=5)
    first.start()  # the same instance starts again, its mail still there
    assert len(first.received()) == 1


# ScriptedSMTP


def test_scripted_default_accepts_and_records_a_transaction(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port)
    with smtp(MX1, loopback_port) as client:
        code, text = client.ehlo()
        assert text.decode().splitlines() == ["mx.scripted.test", "PIPELINING", "SIZE 10240000",
                                              "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]
        client.sendmail("sender@origin.test", ["a@example.net", "b@example.net"], EXACT,
                        mail_options=["BODY=8BITMIME"],
                        rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@example.net"])
    [session] = server.wait_closed(1)
    assert session.ehlo == "client.test" and session.quit and not session.tls
    [transaction] = session.transactions
    # smtplib sends the verb in lower case and adds SIZE itself
    assert transaction.line == f"mail FROM:<sender@origin.test> size={len(EXACT)} BODY=8BITMIME"
    assert transaction.sender == "sender@origin.test"
    assert transaction.params == {"SIZE": str(len(EXACT)), "BODY": "8BITMIME"}
    assert [r.address for r in transaction.recipients] == ["a@example.net", "b@example.net"]
    assert transaction.recipients[0].params == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;a@example.net"}
    assert transaction.data == EXACT and transaction.complete  # unstuffed
    assert transaction.final == "250 2.0.0 Ok: queued"
    assert session.messages == [EXACT]
    # smtplib does not pipeline: every command arrived alone.
    assert all(len(batch) == 1 for batch in session.batches)


@pytest.mark.parametrize("greeting, error", [
    ("554 5.3.2 No service here", smtplib.SMTPConnectError),
    ("421 4.3.2 Too busy", smtplib.SMTPConnectError),
    (DROP, smtplib.SMTPServerDisconnected),
    (STALL, smtplib.SMTPServerDisconnected),  # smtplib reports its read timeout so
])
def test_scripted_greetings(scripted_smtp, loopback_port, greeting, error):
    server = scripted_smtp(MX1, loopback_port, Behaviour(greeting=greeting))
    with pytest.raises(error):
        smtp(MX1, loopback_port, timeout=0.5)
    [session] = server.wait_closed(1)
    assert session.commands == []


def test_scripted_554_greeting_serves_only_quit(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(greeting="554 5.3.2 No service"))
    with socket.create_connection((MX1, loopback_port), timeout=5) as raw:
        stream = raw.makefile("rwb")
        assert stream.readline() == b"554 5.3.2 No service\r\n"
        stream.write(b"EHLO client.test\r\nQUIT\r\n")
        stream.flush()
        assert stream.readline() == b"503 5.5.1 Error: no service\r\n"
        assert stream.readline() == b"221 2.0.0 Bye\r\n"
    assert server.wait_closed(1)[0].quit


def test_scripted_starttls_and_extensions(scripted_smtp, loopback_port, server_tls, ca):
    tls = server_tls("mx.example.net", MX1)
    server = scripted_smtp(MX1, loopback_port, Behaviour(extensions=("SIZE 1000", "8BITMIME"), tls=tls))
    with smtp(MX1, loopback_port) as client:
        assert client.ehlo()[1].splitlines() == [b"mx.scripted.test", b"SIZE 1000", b"8BITMIME", b"STARTTLS"]
        client.starttls(context=client_tls(ca))  # smtplib sends no SNI for an IP address
        assert client.ehlo()[1].splitlines() == [b"mx.scripted.test", b"SIZE 1000", b"8BITMIME"]
        client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    [session] = server.wait_closed(1)
    assert session.tls and session.tls_version == "TLSv1.3" and session.plaintext_after_starttls == b""
    assert session.sni is None
    assert [c.split()[0] for c in session.commands] == ["ehlo", "STARTTLS", "ehlo", "mail", "rcpt",
                                                        "data", "QUIT"]
    assert session.messages == [BARE]


def test_scripted_records_plaintext_pipelined_after_starttls(scripted_smtp, loopback_port, server_tls, ca):
    server = scripted_smtp(MX1, loopback_port, Behaviour(tls=server_tls("mx.example.net")))
    with socket.create_connection((MX1, loopback_port), timeout=5) as raw:
        raw.recv(1000)
        raw.sendall(b"EHLO client.test\r\n")
        while not raw.recv(1000).endswith(b"250 STARTTLS\r\n"):
            pass
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        assert raw.recv(1000) == b"220 2.0.0 Ready to start TLS\r\n"
        with client_tls(ca).wrap_socket(raw, server_hostname="mx.example.net") as tls:
            tls.sendall(b"MAIL FROM:<a@b.test>\r\n")
            assert tls.recv(1000) == b"503 5.5.1 Error: send HELO/EHLO first\r\n"  # state was reset
    [session] = server.wait_closed(1)
    assert session.plaintext_after_starttls == b"MAIL FROM:<injected@evil.test>\r\n"
    assert session.sni == "mx.example.net"
    assert "MAIL FROM:<injected@evil.test>" not in session.commands


def test_scripted_ehlo_refused_falls_back_to_helo(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(ehlo="502 5.5.1 No EHLO here"))
    with smtp(MX1, loopback_port) as client:
        client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    [session] = server.wait_closed(1)
    assert [c.split()[0] for c in session.commands[:2]] == ["ehlo", "helo"]
    assert session.messages == [BARE]


def test_scripted_per_recipient_replies(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(rcpt={
        "gone@example.net": "550 5.1.1 No such user", "full@example.net": "452 4.2.2 Mailbox full"}))
    with smtp(MX1, loopback_port) as client:
        refused = client.sendmail("sender@origin.test",
                                  ["a@example.net", "gone@example.net", "full@example.net"], BARE)
    assert refused == {"gone@example.net": (550, b"5.1.1 No such user"),
                       "full@example.net": (452, b"4.2.2 Mailbox full")}
    [transaction] = server.wait_closed(1)[0].transactions
    assert [(r.address, r.accepted) for r in transaction.recipients] == [
        ("a@example.net", True), ("gone@example.net", False), ("full@example.net", False)]
    assert transaction.accepted == ["a@example.net"] and transaction.complete


def test_scripted_no_valid_recipients_refuses_data(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(rcpt_default="550 5.1.1 No such user"))
    with smtp(MX1, loopback_port) as client:
        client.ehlo()
        client.mail("sender@origin.test")
        client.rcpt("a@example.net")
        with pytest.raises(smtplib.SMTPDataError) as raised:
            client.data(BARE)
        assert (raised.value.smtp_code, raised.value.smtp_error) == (554, b"5.5.1 Error: no valid recipients")
    [transaction] = server.wait_closed(1)[0].transactions
    assert transaction.data is None


@pytest.mark.parametrize("stage, error", [
    ({"mail": "451 4.3.0 Try later"}, smtplib.SMTPSenderRefused),
    ({"data": "554 5.6.0 Bad content"}, smtplib.SMTPDataError),
    ({"final": "451 4.3.0 Try later"}, smtplib.SMTPDataError),
    ({"final": "554 5.6.0 Rejected"}, smtplib.SMTPDataError),
])
def test_scripted_refusals_at_each_stage(scripted_smtp, loopback_port, stage, error):
    server = scripted_smtp(MX1, loopback_port, Behaviour(**stage))
    with smtp(MX1, loopback_port) as client:
        with pytest.raises(error) as raised:
            client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    code, _, text = next(iter(stage.values())).partition(" ")
    assert raised.value.smtp_code == int(code) and raised.value.smtp_error == text.encode()
    [session] = server.wait_closed(1)
    if "final" in stage:
        assert session.transactions[0].complete and session.transactions[0].final == stage["final"]


def test_scripted_421_closes_the_connection(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(mail="421 4.3.2 Shutting down"))
    client = smtp(MX1, loopback_port)
    with pytest.raises(smtplib.SMTPSenderRefused) as raised:
        client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    assert raised.value.smtp_code == 421
    [session] = server.wait_closed(1)  # closed by the server, without QUIT
    assert not session.quit and session.transcript[-1] == "S: 421 4.3.2 Shutting down"
    client.close()


@pytest.mark.parametrize("final", [STALL, DROP])
def test_scripted_stall_or_drop_mid_data(scripted_smtp, loopback_port, final):
    server = scripted_smtp(MX1, loopback_port, Behaviour(cut_data_after=100, final=final))
    client = smtp(MX1, loopback_port, timeout=1)
    with pytest.raises(smtplib.SMTPServerDisconnected):  # a read timeout, or the connection closed
        client.sendmail("sender@origin.test", ["a@example.net"], EXACT)
    client.close()
    [session] = server.wait_closed(1)
    [transaction] = session.transactions
    assert not transaction.complete and transaction.final == final.value
    assert 100 <= len(transaction.data) < len(EXACT) and EXACT.startswith(transaction.data)
    if final is STALL:  # kept reading: the rest of the message and the final dot came unanswered
        assert session.unanswered.endswith(b"last line\r\n.\r\n")


def test_scripted_drop_after_the_whole_message(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(final=DROP))
    with smtp(MX1, loopback_port) as client:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail("sender@origin.test", ["a@example.net"], EXACT)
    [transaction] = server.wait_closed(1)[0].transactions
    assert transaction.complete and transaction.data == EXACT and transaction.final == "drop"


def test_scripted_behaviour_per_connection(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(final="451 4.3.0 Try later"), Behaviour())
    for expected in (451, 250, 250):
        with smtp(MX1, loopback_port) as client:
            client.ehlo()
            client.mail("sender@origin.test")
            client.rcpt("a@example.net")
            assert client.data(BARE)[0] == expected
    server.script(Behaviour(final="554 5.6.0 Now refused"))
    with smtp(MX1, loopback_port) as client:
        with pytest.raises(smtplib.SMTPDataError):
            client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    assert server.connections == 4
    sessions = server.wait_closed(4)
    assert [s.number for s in sessions] == [1, 2, 3, 4]
    assert [s.transactions[0].final[:3] for s in sessions] == ["451", "250", "250", "554"]


def test_scripted_final_replies_per_transaction(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(final=["250 2.0.0 first", "452 4.3.1 Full"]))
    with smtp(MX1, loopback_port) as client:
        client.sendmail("sender@origin.test", ["a@example.net"], BARE)
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError):
                client.sendmail("sender@origin.test", ["a@example.net"], BARE)
    [session] = server.wait_closed(1)
    assert [t.final for t in session.transactions] == ["250 2.0.0 first", "452 4.3.1 Full", "452 4.3.1 Full"]


def test_scripted_pipelining(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(rcpt={"gone@example.net": "550 5.1.1 No such user"}))
    with socket.create_connection((MX1, loopback_port), timeout=5) as raw:
        stream = raw.makefile("rwb")
        stream.readline()
        stream.write(b"EHLO client.test\r\n")
        stream.flush()
        while not stream.readline().startswith(b"250 "):
            pass
        # RFC 2920 §3.1: MAIL, RCPT and DATA in one go; DATA ends the group.
        stream.write(b"MAIL FROM:<s@origin.test>\r\nRCPT TO:<a@example.net>\r\n"
                     b"RCPT TO:<gone@example.net>\r\nDATA\r\n")
        stream.flush()
        assert [stream.readline() for _ in range(4)] == [
            b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n", b"550 5.1.1 No such user\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n"]
        stream.write(b"Subject: piped\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        stream.flush()
        assert stream.readline() == b"250 2.0.0 Ok: queued\r\n"
        assert stream.readline() == b"221 2.0.0 Bye\r\n"
    [session] = server.wait_closed(1)
    assert session.batches == [
        ["EHLO client.test"],
        ["MAIL FROM:<s@origin.test>", "RCPT TO:<a@example.net>", "RCPT TO:<gone@example.net>", "DATA"],
        ["QUIT"]]
    assert session.messages == [b"Subject: piped\r\n\r\n.dot\r\n"]


def test_scripted_stop_ends_stalled_connections(scripted_smtp, loopback_port):
    server = scripted_smtp(MX1, loopback_port, Behaviour(greeting=STALL))
    with socket.create_connection((MX1, loopback_port), timeout=5) as raw:
        server.wait_for(lambda sessions: len(sessions) == 1)
        server.stop()
        assert raw.recv(100) == b""  # closed, not a timeout
    assert not server.sessions[0].open
    assert can_listen(MX1, loopback_port)
