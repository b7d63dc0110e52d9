"""Gmail-style POP settings per account, over real POP3 sessions and the CLI.

Access: off, all mail, or only mail that arrives from now on. What a download
(RETR, then QUIT) does: keep, mark read, archive, move to Trash. A message the
client deletes (DELE, then QUIT) leaves the INBOX: into Archive or Trash when
the setting says so, deleted for good with keep and read. Nothing changes for
TOP, nor for a session that ends without QUIT.
"""

from __future__ import annotations

import pytest

from tests.imap.wire import Wire, deliver, new_user
from tests.pop3.pop import Pop, login_once_free


def flags_by_subject(server, user: str, mailbox: str) -> dict[str, str]:
    found = {}
    for stored in server.messages(user, mailbox):
        subject = stored.content.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
        found[subject] = stored.flags
    return found


def test_cli_shows_and_changes_the_settings(server):
    user = new_user(server)
    shown = server.cli("user", "pop", "show", user).stdout
    assert "POP access of " + user + ": on for all mail" in shown
    assert "downloaded with POP: keep it in the INBOX" in shown
    changed = server.cli("user", "pop", "on-retrieve", user, "trash").stdout
    assert "move it to Trash" in changed
    assert "on for mail that arrives from now on" in server.cli("user", "pop", "access", user, "new").stdout
    assert "move it to Trash" in server.cli("user", "pop", "show", user).stdout
    refused = server.cli("user", "pop", "access", user, "sometimes", check=False)
    assert refused.returncode != 0 and "sometimes" in refused.stderr
    missing = server.cli("user", "pop", "show", "nobody@example.test", check=False)
    assert missing.returncode != 0 and "no account nobody@example.test" in missing.stderr


def test_access_new_offers_only_mail_arriving_from_now_on(server):
    user = new_user(server)
    deliver(server, user, "old")
    server.cli("user", "pop", "access", user, "new")
    deliver(server, user, "new one")
    pop = Pop.login(server, user)
    assert pop.command("STAT").startswith(b"+OK 1 ")
    assert b"Subject: new one" in pop.multi("RETR 1")[1]
    pop.command("QUIT")
    server.cli("user", "pop", "access", user, "all")
    assert login_once_free(server, user).command("STAT").startswith(b"+OK 2 ")


def retrieve_and_delete(server, user: str) -> None:
    """Messages a (retrieved), b (retrieved and deleted), c (deleted unread), d (only TOP), e (untouched)."""
    pop = Pop.login(server, user)
    pop.multi("RETR 1")
    pop.multi("RETR 2")
    pop.command("DELE 2")
    pop.command("DELE 3")
    pop.multi("TOP 4 1")
    assert pop.command("QUIT").startswith(b"+OK Logging out")


@pytest.mark.parametrize("action, inbox, archive, trash", [
    ("keep", {"a": "", "d": "", "e": ""}, {}, {}),
    ("read", {"a": "\\Seen", "d": "", "e": ""}, {}, {}),
    ("archive", {"d": "", "e": ""}, {"a": "\\Seen", "b": "\\Seen", "c": ""}, {}),
    ("trash", {"d": "", "e": ""}, {}, {"a": "\\Seen", "b": "\\Seen", "c": ""}),
])
def test_what_a_download_and_a_deletion_do(server, action, inbox, archive, trash):
    user = new_user(server)
    server.cli("user", "pop", "on-retrieve", user, action)
    for subject in "abcde":
        deliver(server, user, subject)
    retrieve_and_delete(server, user)
    assert flags_by_subject(server, user, "INBOX") == inbox
    assert flags_by_subject(server, user, "Archive") == archive
    assert flags_by_subject(server, user, "Trash") == trash


def test_a_session_without_quit_changes_nothing_whatever_the_setting(server):
    user = new_user(server)
    server.cli("user", "pop", "on-retrieve", user, "archive")
    deliver(server, user, "stay")
    pop = Pop.login(server, user)
    pop.multi("RETR 1")
    pop.command("DELE 1")
    pop.close()
    assert flags_by_subject(server, user, "INBOX") == {"stay": ""}
    login_once_free(server, user).command("QUIT")
    assert flags_by_subject(server, user, "Archive") == {}


def test_archive_follows_a_renamed_archive_mailbox_and_remakes_a_deleted_one(server):
    user = new_user(server)
    server.cli("user", "pop", "on-retrieve", user, "archive")
    wire = Wire.login(server, user)
    wire.expect("OK", "RENAME Archive Kept")
    deliver(server, user, "first")
    retrieve_all(server, user)
    assert flags_by_subject(server, user, "Kept") == {"first": "\\Seen"}
    wire.expect("OK", "DELETE Kept")
    deliver(server, user, "second")
    retrieve_all(server, user)
    assert flags_by_subject(server, user, "Archive") == {"second": "\\Seen"}


def retrieve_all(server, user: str) -> None:
    pop = login_once_free(server, user)
    count = int(pop.command("STAT").split()[1])
    for number in range(1, count + 1):
        pop.multi(f"RETR {number}")
    assert pop.command("QUIT").startswith(b"+OK")


def test_imap_sees_the_move_at_once(server):
    user = new_user(server)
    server.cli("user", "pop", "on-retrieve", user, "trash")
    deliver(server, user, "watched")
    wire = Wire.login(server, user)
    wire.expect("OK", "SELECT INBOX")
    retrieve_all(server, user)
    untagged = wire.expect("OK", "NOOP")
    assert b"* 1 EXPUNGE" in untagged
