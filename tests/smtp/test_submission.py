"""Submission on 587 (STARTTLS) and 465 (implicit TLS): AUTH, sender ownership, the queue."""

from __future__ import annotations

import smtplib
import uuid

import pytest

from postar.smtp import replies
from tests.conftest import PASSWORD, USERS, message


def unique() -> str:
    return uuid.uuid4().hex


def reply_of(error: smtplib.SMTPResponseException) -> tuple[int, str]:
    return error.smtp_code, error.smtp_error.split()[0].decode()


def test_before_tls_auth_is_not_offered_and_refused_538(server):
    client = server.smtp("submission")
    assert not client.has_extn("auth")
    assert client.has_extn("starttls")
    code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0")
    assert (code, text.split()[0].decode()) == (538, "5.7.11")
    client.quit()


def test_mail_before_tls_is_530(server):
    client = server.smtp("submission")
    code, text = client.mail(USERS[0])
    assert (code, text.split()[0].decode()) == (530, "5.7.0")
    client.quit()


def test_mail_before_auth_is_530_5_7_0(server):
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    assert client.has_extn("auth") and "PLAIN" in client.esmtp_features["auth"].upper()
    code, text = client.mail(USERS[0])
    assert (code, text.split()[0].decode()) == (replies.AUTH_REQUIRED.code, replies.AUTH_REQUIRED.enhanced)
    client.quit()


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_login_and_send_to_local_and_remote(server, mechanism):
    marker = unique()
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    client.user, client.password = USERS[0], PASSWORD
    code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"),
                          initial_response_ok=(mechanism == "PLAIN"))
    assert code == 235
    refused = client.sendmail(USERS[0], [USERS[1], f"carol.{marker}@remote.test"],
                              message(subject=marker, sender=USERS[0], to=USERS[1]))
    assert refused == {}
    client.quit()
    [stored] = [m for m in server.messages(USERS[1]) if marker.encode() in m.content]
    assert b"with ESMTPSA id" in stored.content
    [entry] = [e for e in server.queue() if any(marker in r.address for r in e.recipients)]
    assert entry.sender == USERS[0]
    assert [r.address for r in entry.recipients] == [f"carol.{marker}@remote.test"]


def test_implicit_tls_port_465(server):
    marker = unique()
    client = server.submissions()
    assert client.has_extn("auth") and not client.has_extn("starttls")
    client.login(USERS[0], PASSWORD)
    client.sendmail(USERS[0], [USERS[0]], message(subject=marker, sender=USERS[0]))
    client.quit()
    assert [m for m in server.messages(USERS[0]) if marker.encode() in m.content]


def test_wrong_password_is_535_5_7_8(server):
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    with pytest.raises(smtplib.SMTPAuthenticationError) as error:
        client.login(USERS[0], "not the password")
    assert reply_of(error.value) == (535, "5.7.8")
    client.login(USERS[0], PASSWORD)  # the session goes on
    client.quit()


def test_auth_cancelled_with_star(server):
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    assert client.docmd("AUTH LOGIN")[0] == 334
    code, text = client.docmd("*")
    assert (code, text.split()[0].decode()) == (501, "5.7.0")
    client.quit()


def test_second_auth_is_503(server):
    client = server.submission()
    code, text = client.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0")
    assert (code, text.split()[0].decode()) == (503, "5.5.1")
    client.quit()


def test_sender_of_another_account_is_553_5_7_1(server):
    client = server.submission()
    with pytest.raises(smtplib.SMTPSenderRefused) as error:
        client.sendmail(USERS[1], [USERS[0]], message(sender=USERS[1]))
    assert reply_of(error.value) == (553, "5.7.1")
    code, text = client.mail("<>")
    assert (code, text.split()[0].decode()) == (553, "5.7.1")
    client.quit()


def test_alias_of_the_account_may_be_the_sender(server):
    client = server.submission()
    assert client.mail("postmaster@example.test")[0] == 250
    client.rset()
    assert client.mail("Alice@Example.Test")[0] == 250  # addresses compare without case
    client.quit()


def test_dsn_parameters_are_recorded_in_the_queue(server):
    marker = unique()
    client = server.submission()
    client.sendmail(USERS[0], [f"dsn.{marker}@remote.test"], message(subject=marker, sender=USERS[0]),
                    mail_options=["RET=HDRS", f"ENVID=env+2B{marker}"],
                    rcpt_options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;dsn.{marker}@remote.test"])
    client.quit()
    [entry] = [e for e in server.queue() if any(marker in r.address for r in e.recipients)]
    assert (entry.ret, entry.envid) == ("HDRS", f"env+{marker}")
    [recipient] = entry.recipients
    assert recipient.notify == "SUCCESS,FAILURE"
    assert recipient.orcpt == f"rfc822;dsn.{marker}@remote.test"
