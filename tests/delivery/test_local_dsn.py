"""NOTIFY=SUCCESS (RFC 3461 §4.1) on mail stored here: postar made the final delivery, so it
reports it (RFC 3464 §2.3.3: Action: delivered, Status: 2.0.0) to the envelope sender, with the
ENVID and ORCPT the client gave (RFC 3464 §2.2.1, §2.3.1). A local sender submitting on 587 finds
the report in its INBOX; a remote sender on port 25 gets it by mail, from the null sender.
Never for a recipient that did not ask, and never to the null sender.

The report is stored before the 250 that accepts the message, so the tests look right
after the client's transaction, over real SMTP sessions.
"""

from __future__ import annotations

import email


from tests.conftest import USERS
from tests.delivery.outbound import SENDER, reports, submit
from tests.delivery.scripted_smtp import Behaviour

ZONES = {"remote.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.8"]}}
BOB = USERS[1]
SUCCESS = ("NOTIFY=SUCCESS", f"ORCPT=rfc822;{BOB}")


def fields(report: email.message.Message) -> list[dict[str, str]]:
    """The message/delivery-status part's groups: the per-message one first, then each recipient's."""
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return [dict(group.items()) for group in part.get_payload()]


def test_a_local_sender_on_submission_gets_a_delivered_report_in_its_inbox(world):
    postar = world.postar()
    raw = submit(postar, [BOB], subject="tell me it arrived", mail_options=("ENVID=env-42",),
                 rcpt_options=SUCCESS)
    assert any(m.content.endswith(raw) for m in postar.messages(BOB))
    [report] = reports(postar, SENDER)
    assert report["Subject"] == "Successful Mail Delivery Report" and report["To"] == SENDER
    assert report.get_content_type() == "multipart/report"
    message, recipient = fields(report)
    assert message["Original-Envelope-Id"] == "env-42" and message["Reporting-MTA"] == "dns; mx.example.test"
    assert recipient["Final-Recipient"] == f"rfc822; {BOB}"
    assert recipient["Original-Recipient"] == f"rfc822;{BOB}"
    assert recipient["Action"] == "delivered" and recipient["Status"] == "2.0.0"
    # the original's header comes back, not its body (RFC 3461 §4.3: RET is for failures)
    [returned] = [p for p in report.walk() if p.get_content_type() == "text/rfc822-headers"]
    assert "Subject: tell me it arrived" in returned.get_payload() and "Hello." not in returned.get_payload()
    [stored] = [m for m in postar.messages(SENDER) if b"MAILER-DAEMON" in m.content]
    assert stored.content.startswith(b"Return-Path: <>\r\n")


def test_only_the_recipients_that_asked_are_reported(world):
    postar = world.postar()
    client = postar.submission()
    client.ehlo()
    client.mail(SENDER)
    assert client.rcpt(BOB, ["NOTIFY=SUCCESS,FAILURE"])[0] == 250
    assert client.rcpt(f"team@{BOB.split('@')[1]}", ["NOTIFY=FAILURE"])[0] == 250
    assert client.rcpt(SENDER)[0] == 250  # no NOTIFY: failures only (RFC 3461 §4.1)
    assert client.data(b"Subject: three\r\n\r\nHi.\r\n")[0] == 250
    client.quit()
    [report] = reports(postar, SENDER)
    [recipient] = fields(report)[1:]
    assert recipient["Final-Recipient"] == f"rfc822; {BOB}" and "Original-Recipient" not in recipient


def test_no_report_when_success_was_not_asked(world):
    postar = world.postar()
    submit(postar, [BOB], rcpt_options=("NOTIFY=FAILURE,DELAY",))
    submit(postar, [BOB])
    assert len(postar.messages(BOB)) == 2
    assert reports(postar, SENDER) == []


def test_a_remote_sender_on_port_25_gets_the_report_by_mail(world):
    fake = world.scripted("127.0.0.8", Behaviour())
    postar = world.postar()
    client = postar.smtp()
    client.sendmail("carol@remote.test", [BOB], b"Subject: from afar\r\n\r\nHi.\r\n",
                    mail_options=["ENVID=far-7"], rcpt_options=list(SUCCESS))
    client.quit()
    [session] = fake.wait_for(lambda sessions: sessions and sessions[0].messages)
    [transaction] = session.transactions
    assert transaction.sender == "" and transaction.accepted == ["carol@remote.test"]
    report = email.message_from_bytes(session.messages[0])
    assert report["Subject"] == "Successful Mail Delivery Report"
    message, recipient = fields(report)
    assert message["Original-Envelope-Id"] == "far-7"
    assert recipient["Action"] == "delivered" and recipient["Status"] == "2.0.0"
    assert recipient["Original-Recipient"] == f"rfc822;{BOB}"


def test_never_to_the_null_sender(world):
    postar = world.postar()
    client = postar.smtp()
    client.sendmail("", [BOB], b"Subject: a bounce\r\n\r\nHi.\r\n", rcpt_options=list(SUCCESS))
    client.quit()
    assert len(postar.messages(BOB)) == 1
    assert postar.queue() == []  # nothing waits to go out: no report was made
