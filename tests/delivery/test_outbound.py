"""Outbound delivery end to end: postar submits to other domains' MX hosts, found in a real
DNS server (unbound), delivered to real receiving MTAs (Postfix on 127.0.0.x).

Covered here: MX preference and fallback, implicit MX, null MX and NXDOMAIN bouncing
at once, permanent refusals bouncing with the remote text in the DSN while the other
recipients are delivered, extensions the remote lacks, DKIM signatures checked by
dkimpy against the key published in the DNS, DSN parameters (NOTIFY, RET, ENVID,
ORCPT), delay warnings, expiry, and the queue commands.
"""

from __future__ import annotations

import dkim
import dns.resolver
import pytest

from tests.delivery.outbound import SENDER, delivery_status, reports, submit, wait_until

ZONES = {
    "remote.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.2"]},
    "backup.test": {"@": ["MX 10 mx1", "MX 20 mx2"], "mx1": ["A 127.0.0.3"], "mx2": ["A 127.0.0.2"]},
    "implicit.test": {"@": ["A 127.0.0.2"]},
    "nullmx.test": {"@": ["MX 0 ."]},
    "dead.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.4"]},
    "strict.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.5"]},
}


def test_delivery_over_tls_with_all_recipients_of_a_domain_in_one_transaction(world):
    receiver = world.receiver("127.0.0.2", ["remote.test", "implicit.test"])
    postar = world.postar()
    raw = submit(postar, ["bob@remote.test", "carol@remote.test"], body="Hi.\r\n.leading dot\r\n")
    [got] = receiver.wait_for(1)
    assert got.sender == SENDER and got.recipients == ("bob@remote.test", "carol@remote.test")
    assert got.tls_version in ("TLSv1.2", "TLSv1.3")
    received, _, rest = got.message.partition(b"\r\nFrom: ")
    assert b"Received: from client.test" in received and b"by mx.example.test (postar)" in received
    assert b"From: " + rest == raw
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "status=sent (250 2.0.0 Ok" in postar.log() and "tls=TLSv1" in postar.log()


def test_mx_preference_falls_back_to_the_next_host(world):
    receiver = world.receiver("127.0.0.2", ["backup.test"])  # mx1 on 127.0.0.3 refuses connections
    postar = world.postar()
    submit(postar, ["dave@backup.test"])
    [got] = receiver.wait_for(1)
    assert got.recipients == ("dave@backup.test",)
    assert "mx1.backup.test[127.0.0.3]" in postar.log() and "relay=mx2.backup.test[127.0.0.2]" in postar.log()


def test_no_mx_means_the_domain_itself(world):
    receiver = world.receiver("127.0.0.2", ["implicit.test"])
    postar = world.postar()
    submit(postar, ["erin@implicit.test"])
    assert receiver.wait_for(1)[0].recipients == ("erin@implicit.test",)


@pytest.mark.parametrize("address, status, words", [
    ("x@nullmx.test", "5.1.10", "null MX"),
    ("x@nosuch.remote.test", "5.1.2", "no such domain"),
])
def test_undeliverable_domains_bounce_at_once(world, address, status, words):
    postar = world.postar()
    raw = submit(postar, [address], subject="doomed")
    [report] = wait_until(lambda: reports(postar), what="the bounce")
    assert report["Subject"] == "Undelivered Mail Returned to Sender" and report["To"] == SENDER
    [recipient] = delivery_status(report)
    assert recipient["Final-Recipient"] == f"rfc822; {address}" and recipient["Status"] == status
    assert recipient["Action"] == "failed" and words in recipient["Diagnostic-Code"]
    assert [p.get_content_type() for p in report.walk()][-2] == "message/rfc822"
    assert postar.queue() == []
    bounce = [m for m in postar.messages(SENDER) if b"MAILER-DAEMON" in m.content][0]
    assert bounce.content.startswith(b"Return-Path: <>\r\n")
    assert b"Content-Type: message/rfc822\r\n\r\nReceived: from client.test" in bounce.content
    assert raw + b"\r\n--" in bounce.content  # the whole message, byte for byte


def test_a_refused_recipient_bounces_with_the_remote_reply_and_the_others_arrive(world):
    receiver = world.receiver("127.0.0.2", ["remote.test"], settings={
        "smtpd_recipient_restrictions":
            "check_recipient_access inline:{ {nobody@remote.test=550 5.1.1 no such user here} }"})
    postar = world.postar()
    submit(postar, ["nobody@remote.test", "fred@remote.test"], mail_options=("RET=HDRS", "ENVID=env-42"),
           rcpt_options=("NOTIFY=FAILURE", "ORCPT=rfc822;orig@example.test"))
    assert receiver.wait_for(1)[0].recipients == ("fred@remote.test",)
    [report] = wait_until(lambda: reports(postar), what="the bounce")
    [recipient] = delivery_status(report)
    assert recipient["Final-Recipient"] == "rfc822; nobody@remote.test"
    assert recipient["Status"] == "5.1.1" and "no such user here" in recipient["Diagnostic-Code"]
    assert recipient["Remote-MTA"] == "dns; mx.remote.test[127.0.0.2]:%d" % world.port
    assert recipient["Original-Recipient"] == "rfc822;orig@example.test"
    assert "Original-Envelope-Id: env-42" in report.as_string()
    assert [p.get_content_type() for p in report.walk()][-1] == "text/rfc822-headers"  # RET=HDRS
    wait_until(lambda: postar.queue() == [], what="the queue to empty")


def test_notify_never_means_no_bounce(world):
    world.receiver("127.0.0.2", ["remote.test"], settings={
        "smtpd_recipient_restrictions": "check_recipient_access inline:{ {gone@remote.test=550 5.1.1 gone} }"})
    postar = world.postar()
    submit(postar, ["gone@remote.test"], rcpt_options=("NOTIFY=NEVER",))
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "status=bounced (550 5.1.1" in postar.log() and reports(postar) == []


@pytest.mark.parametrize("hidden, message, status", [
    ("smtputf8", dict(sender_utf8=True), "5.6.7"),
    ("8bitmime", dict(body="Grüße aus Köln\r\n"), "5.6.3"),
])
def test_a_message_needing_an_extension_the_remote_lacks_bounces_clearly(world, hidden, message, status):
    world.receiver("127.0.0.2", ["remote.test"], settings={"smtpd_discard_ehlo_keywords": hidden})
    postar = world.postar()
    if message.get("sender_utf8"):
        submit(postar, ["ünïcode@remote.test"], mail_options=("SMTPUTF8",))
    else:
        submit(postar, ["plain@remote.test"], body=message["body"], mail_options=("BODY=8BITMIME",))
    [report] = wait_until(lambda: reports(postar), what="the bounce")
    [recipient] = delivery_status(report)
    assert recipient["Status"] == status and "does not offer" in recipient["Diagnostic-Code"]


def test_a_message_over_the_remote_size_limit_bounces(world):
    world.receiver("127.0.0.2", ["remote.test"], settings={"message_size_limit": "2000"})
    postar = world.postar()
    submit(postar, ["big@remote.test"], body="x" * 70 + "\r\n" * 100 + "y" * 3000 + "\r\n")
    [report] = wait_until(lambda: reports(postar), what="the bounce")
    assert delivery_status(report)[0]["Status"] == "5.3.4"


def test_dkim_signature_verifies_against_the_published_key(world):
    receiver = world.receiver("127.0.0.2", ["remote.test"])
    postar = world.postar()
    printed = postar.cli("dkim", "keygen", "example.test").stdout
    zone_lines = [line for line in printed.splitlines() if " IN TXT " in line and not line.startswith(";")]
    assert len(zone_lines) == 2
    world.dns.zone("example.test", {  # the lines exactly as printed, ready for a zone file
        line.split(" IN ")[0].removesuffix(".example.test."): [line.split(" IN ", 1)[1]] for line in zone_lines})
    submit(postar, ["grace@remote.test"])
    [got] = receiver.wait_for(1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], world.dns.port

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        answer = resolver.resolve(name.decode().rstrip("."), "TXT")
        return b"".join(b"".join(r.strings) for r in answer)

    signed = got.message
    signatures = signed.count(b"DKIM-Signature:")
    assert signatures == 2
    for index in range(signatures):
        assert dkim.DKIM(signed).verify(idx=index, dnsfunc=dnsfunc)
    assert b"d=example.test" in signed and b"a=ed25519-sha256" in signed and b"a=rsa-sha256" in signed


def test_unreachable_destination_retries_warns_once_then_expires(world):
    postar = world.postar(delivery="retry_min = 0.5\nretry_max = 1.0\ndelay_warning = 1.0\nlifetime = 4.0")
    submit(postar, ["henry@dead.test"], subject="too slow")
    delayed = wait_until(lambda: [r for r in reports(postar) if r["Subject"].startswith("Delayed Mail")],
                         what="the delay warning")
    assert delivery_status(delayed[0])[0]["Action"] == "delayed"
    assert "Will-Retry-Until" in delivery_status(delayed[0])[0]
    failed = wait_until(lambda: [r for r in reports(postar) if r["Subject"].startswith("Undelivered")],
                        what="the bounce after the lifetime")
    [recipient] = delivery_status(failed[0])
    assert recipient["Status"] == "4.4.7" and "expired" in recipient["Diagnostic-Code"]
    assert "connect to 127.0.0.4" in recipient["Diagnostic-Code"]
    assert len([r for r in reports(postar) if r["Subject"].startswith("Delayed Mail")]) == 1
    assert postar.queue() == []


def test_queue_commands_show_hold_retry_release_delete(world):
    postar = world.postar(delivery="retry_min = 3600")
    submit(postar, ["ivan@strict.test"])  # nobody listens on 127.0.0.5 yet
    [entry] = wait_until(lambda: [e for e in postar.queue() if e.recipients[0].attempts == 1],
                         what="the first attempt")
    shown = postar.cli("queue", "show", entry.queue_id).stdout
    assert "ivan@strict.test" in shown and "queued" in shown and "127.0.0.5" in shown
    listed = postar.cli("queue", "list").stdout
    assert entry.queue_id in listed and "1 message in the queue" in listed
    assert "1 message held" in postar.cli("queue", "hold", entry.queue_id).stdout
    receiver = world.receiver("127.0.0.5", ["strict.test"])
    assert "1 recipient to be tried now" in postar.cli("queue", "retry", entry.queue_id).stdout
    assert "held" in postar.cli("queue", "list").stdout  # held: retry does not send it
    assert "1 message released" in postar.cli("queue", "release", "--all").stdout
    assert receiver.wait_for(1)[0].recipients == ("ivan@strict.test",)
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    submit(postar, ["judy@dead.test"])
    [entry] = wait_until(lambda: postar.queue(), what="a queued message")
    assert f"{entry.queue_id} deleted" in postar.cli("queue", "delete", entry.queue_id).stdout
    assert postar.queue() == [] and reports(postar) == []
    missing = postar.cli("queue", "show", "NOSUCHID", check=False)
    assert missing.returncode != 0 and "no queued message NOSUCHID" in missing.stderr


def test_a_bounce_that_cannot_be_delivered_is_dropped_not_bounced(world):
    """A remote sender's message forwarded to a dead domain: the bounce goes to that sender
    with the null sender; when it fails too, nothing more is sent."""
    postar = world.postar()
    postar.cli("alias", "add", "fwd@example.test", "x@nullmx.test")
    client = postar.smtp()
    client.sendmail("someone@gone.remote.test", ["fwd@example.test"], b"Subject: forwarded\r\n\r\nHi.\r\n")
    client.quit()
    wait_until(lambda: postar.log().count("status=bounced") >= 2 and postar.queue() == [],
               what="both bounces")
    assert "to=<someone@gone.remote.test>" in postar.log()
