"""The Sent copy (as Gmail does it): every message an account submits lands in its Sent
mailbox, flagged \\Seen, exactly as the client sent it; a client that also uploads the
same message (IMAP APPEND to Sent, matched on Message-ID within ten minutes) still
leaves one copy; ``postar user sent-copy ADDRESS off`` turns it off for one account.
"""

from __future__ import annotations

import re
import uuid

from tests.conftest import PASSWORD, message
from tests.imap.wire import Wire, new_user


def submit(server, user: str, to: list[str], subject: str) -> bytes:
    raw = (f"From: {user}\r\nTo: {', '.join(to)}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\nHello.\r\n").encode()
    client = server.submission(user, PASSWORD)
    client.sendmail(user, to, raw)
    client.quit()
    return raw


def test_a_submitted_message_lands_in_sent_as_sent(server):
    user = new_user(server)
    raw = submit(server, user, ["bob@example.test", "carol@remote.test"], "to sent")
    [copy] = server.messages(user, "Sent")
    assert copy.content == raw and copy.flags == "\\Seen"


def test_the_clients_own_upload_is_not_stored_twice(server):
    user = new_user(server)
    raw = submit(server, user, ["bob@example.test"], "uploaded too")
    [copy] = server.messages(user, "Sent")
    wire = Wire.login(server, user)
    wire.expect("OK [APPENDUID", f"APPEND Sent (\\Seen) {{{len(raw)}+}}\r\n".encode() + raw)
    assert int(re.search(rb"APPENDUID \d+ (\d+)", wire.tagged).group(1)) == copy.uid
    assert len(server.messages(user, "Sent")) == 1
    other = raw.replace(b"Subject: uploaded too", b"Subject: another")
    other = re.sub(rb"Message-ID: <[^>]+>", b"Message-ID: <different@example.test>", other)
    wire.expect("OK [APPENDUID", f"APPEND Sent {{{len(other)}+}}\r\n".encode() + other)
    assert len(server.messages(user, "Sent")) == 2


def test_an_upload_to_another_mailbox_is_kept(server):
    user = new_user(server)
    raw = submit(server, user, ["bob@example.test"], "drafted")
    wire = Wire.login(server, user)
    wire.expect("OK [APPENDUID", f"APPEND Drafts {{{len(raw)}+}}\r\n".encode() + raw)
    assert len(server.messages(user, "Drafts")) == 1 and len(server.messages(user, "Sent")) == 1


def test_sent_copy_off_per_account(server):
    user = new_user(server)
    assert "Sent copy for " + user + " off" in server.cli("user", "sent-copy", user, "off").stdout
    submit(server, user, ["bob@example.test"], "no copy")
    assert server.messages(user, "Sent") == []
    server.cli("user", "sent-copy", user, "on")
    submit(server, user, ["bob@example.test"], "copy again")
    assert len(server.messages(user, "Sent")) == 1


def test_mail_arriving_on_port_25_makes_no_sent_copy(server):
    user = new_user(server)
    client = server.smtp()
    client.sendmail("someone@remote.test", [user], message(to=user))
    client.quit()
    assert server.messages(user, "Sent") == [] and len(server.messages(user)) == 1
