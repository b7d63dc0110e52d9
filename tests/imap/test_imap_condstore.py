"""CONDSTORE and QRESYNC over real sockets (RFC 7162): modseqs, CHANGEDSINCE, VANISHED, resync on SELECT.

Fresh mailboxes of the shared account alice. Compared with Dovecot 2.3.19:
the same VANISHED and FETCH responses for the same exchanges; once CONDSTORE
is on, Dovecot puts UID and MODSEQ in every untagged FETCH, as RFC 7162 asks.
"""

from __future__ import annotations

import re

import pytest

from tests.imap.wire import (
    Wire,
    append,
    unique,
)


def message(n: int) -> bytes:
    return f"From: a@remote.test\r\nSubject: modseq {n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def box(server):
    """A fresh mailbox with messages 1:3 (UIDs 1:3); (wire, name, uidvalidity). Nothing enabled yet."""
    wire = Wire.login(server)
    name = unique("modseq-")
    wire.expect("OK", f"CREATE {name}")
    for n in (1, 2, 3):
        append(wire, name, message(n))
    status = wire.expect("OK", f"STATUS {name} (UIDVALIDITY)")[0]
    yield wire, name, int(re.search(rb"UIDVALIDITY (\d+)", status).group(1))
    wire.close()


def highest(untagged: list[bytes]) -> int:
    [line] = [u for u in untagged if b"[HIGHESTMODSEQ " in u]
    return int(re.search(rb"HIGHESTMODSEQ (\d+)", line).group(1))


def modseq_of(line: bytes) -> int:
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


def test_select_condstore_and_highestmodseq_grow(box):
    wire, name, _ = box
    before = highest(wire.expect("OK", f"SELECT {name} (CONDSTORE)"))
    wire.expect("OK", "STORE 1 +FLAGS.SILENT (\\Seen)")
    status = wire.expect("OK", f"STATUS {name} (HIGHESTMODSEQ)")[0]
    assert int(re.search(rb"HIGHESTMODSEQ (\d+)", status).group(1)) > before


def test_once_enabled_every_untagged_fetch_has_uid_and_modseq(server, box):
    # RFC 7162, CONDSTORE's rule for untagged FETCH: "Once a CONDSTORE enabling command is issued by the
    # client, the server MUST automatically include both UID and mod-sequence data in all subsequent
    # untagged FETCH responses ... whether they were caused by a regular STORE/UID STORE, ... a
    # FETCH/UID FETCH that implicitly set the \Seen flag, or an external agent."
    wire, name, _ = box
    wire.expect("OK", "ENABLE CONDSTORE")
    wire.expect("OK", f"SELECT {name}")
    [stored] = wire.expect("OK", "STORE 1 +FLAGS (\\Flagged)")
    assert re.fullmatch(rb"\* 1 FETCH \(.*\)", stored)
    assert b"UID 1" in stored and b"MODSEQ (" in stored, stored
    [seen] = [u for u in wire.expect("OK", "FETCH 2 BODY[TEXT]") if u.startswith(b"* 2 FETCH")]
    assert b"UID 2" in seen and b"MODSEQ (" in seen, seen
    other = Wire.login(server)
    other.expect("OK", f"SELECT {name}")
    other.expect("OK", "STORE 3 +FLAGS (\\Answered)")
    other.close()
    [external] = wire.expect("OK", "NOOP")
    assert b"UID 3" in external and b"MODSEQ (" in external, external


def test_fetch_changedsince(box):
    wire, name, _ = box
    mark = highest(wire.expect("OK", f"SELECT {name} (CONDSTORE)"))
    wire.expect("OK", "STORE 2 +FLAGS.SILENT (\\Seen)")
    changed = wire.expect("OK", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {mark})")
    assert len(changed) == 1 and changed[0].startswith(b"* 2 FETCH (") and modseq_of(changed[0]) > mark
    assert wire.expect("OK", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq_of(changed[0])})") == []
    [line] = wire.expect("OK", f"SEARCH MODSEQ {mark + 1}")
    assert re.fullmatch(rb"\* SEARCH 2 \(MODSEQ \d+\)", line)


def test_qresync_expunge_says_vanished(box):
    wire, name, _ = box
    assert wire.expect("OK", "ENABLE QRESYNC") == [b"* ENABLED QRESYNC"]
    wire.expect("OK", f"SELECT {name}")
    wire.expect("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert wire.expect("OK", "EXPUNGE") == [b"* VANISHED 2"]


def test_qresync_select_reports_what_changed(box):
    wire, name, uidvalidity = box
    wire.expect("OK", "ENABLE QRESYNC")
    mark = highest(wire.expect("OK", f"SELECT {name}"))
    wire.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    wire.expect("OK", "EXPUNGE")
    wire.expect("OK", "UID STORE 3 +FLAGS.SILENT (\\Seen)")
    wire.expect("OK", "UNSELECT")
    untagged = wire.expect("OK", f"SELECT {name} (QRESYNC ({uidvalidity} {mark}))")
    assert b"* VANISHED (EARLIER) 1" in untagged
    fetches = [u for u in untagged if b" FETCH (" in u]
    assert len(fetches) == 1 and b"UID 3" in fetches[0] and b"\\Seen" in fetches[0]
    other_validity = wire.expect("OK", f"SELECT {name} (QRESYNC ({uidvalidity + 1} {mark}))")
    assert not any(b"VANISHED" in u or b" FETCH (" in u for u in other_validity)  # §3.2.5: stale UIDVALIDITY


def test_uid_fetch_vanished(box):
    wire, name, _ = box
    wire.expect("OK", "ENABLE QRESYNC")
    mark = highest(wire.expect("OK", f"SELECT {name}"))
    wire.expect("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    wire.expect("OK", "EXPUNGE")
    untagged = wire.expect("OK", f"UID FETCH 1:* (FLAGS) (CHANGEDSINCE {mark} VANISHED)")
    assert untagged == [b"* VANISHED (EARLIER) 2"]
    wire.expect("BAD", f"FETCH 1:* (FLAGS) (CHANGEDSINCE {mark} VANISHED)")  # only with UID FETCH


def test_store_on_a_message_another_session_expunged_gives_no_modseq_zero(server, box):
    # Issue 10: "* 2 FETCH (FLAGS () UID 2 MODSEQ (0))". The message is still in this session's
    # view (its EXPUNGE waits for a command that allows it, RFC 9051 §7.5.1) but no longer in the
    # store, and a mod-sequence is at least 1 (RFC 7162 §3.1.1). Dovecot 2.3.19, same exchanges:
    #   a STORE 2 +FLAGS (\Seen)     * 2 FETCH (MODSEQ (10) FLAGS (\Flagged \Deleted \Seen \Recent $Label1))
    #   a STORE 2 +FLAGS (\Flagged)  (nothing: the flag was there already)
    #   a NOOP                       * 2 EXPUNGE
    # It shows a change to a message it no longer has, at a modseq of its own; postar says nothing
    # of a message that is gone, whether the STORE would have changed it or not.
    wire, name, _ = box
    wire.expect("OK", "ENABLE CONDSTORE")
    wire.expect("OK", f"SELECT {name}")
    other = Wire.login(server)
    other.expect("OK", f"SELECT {name}")
    other.expect("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    other.expect("OK", "EXPUNGE")
    assert wire.expect("OK", "STORE 2 +FLAGS (\\Seen)") == []
    stored = wire.expect("OK", "STORE 1:3 +FLAGS (\\Seen)")
    assert [line.split(b" FETCH ")[0] for line in stored] == [b"* 1", b"* 3"], stored
    assert all(modseq_of(line) >= 1 for line in stored), stored
    assert wire.expect("OK", "NOOP") == [b"* 2 EXPUNGE"]
    other.close()


@pytest.mark.parametrize("first", [
    "FETCH 1 MODSEQ", "UID FETCH 1 (FLAGS MODSEQ)", "FETCH 1:2 (FLAGS) (CHANGEDSINCE 1)",
    "STORE 1 (UNCHANGEDSINCE 100) +FLAGS (\\Seen)", "SEARCH MODSEQ 1", "STATUS {name} (HIGHESTMODSEQ)",
    "ENABLE CONDSTORE",
])
def test_the_first_condstore_enabling_command_tells_highestmodseq(box, first):
    # RFC 7162 §3.1: the first CONDSTORE enabling command issued while a mailbox is selected gets
    # the mailbox's HIGHESTMODSEQ. Dovecot 2.3.19, each first command in a fresh session after a
    # plain SELECT, sends it as an untagged OK ahead of the command's own responses, and only once:
    #   x FETCH 1 MODSEQ                               * OK [HIGHESTMODSEQ 4] Highest
    #                                                  * 1 FETCH (MODSEQ (4))
    #   x FETCH 1 MODSEQ                               * 1 FETCH (MODSEQ (4))
    #   x STORE 1 (UNCHANGEDSINCE 100) +FLAGS (\Seen)  * OK [HIGHESTMODSEQ 4] Highest
    #                                                  * 1 FETCH (MODSEQ (5) FLAGS (\Seen))
    #   x STATUS c5 (HIGHESTMODSEQ)                    * OK [HIGHESTMODSEQ 5] Highest
    #                                                  * STATUS c5 (HIGHESTMODSEQ 5)
    #   x ENABLE CONDSTORE                             * OK [HIGHESTMODSEQ 5] Highest
    #                                                  * ENABLED CONDSTORE
    # and the same for UID FETCH ... MODSEQ, CHANGEDSINCE and SEARCH MODSEQ. (RFC 5161 asks clients
    # not to ENABLE once they have selected; Dovecot and postar take it all the same.)
    wire, name, _ = box
    mark = highest(wire.expect("OK", f"SELECT {name}"))
    untagged = wire.expect("OK", first.format(name=name))
    assert untagged[0] == b"* OK [HIGHESTMODSEQ %d] Highest" % mark, untagged
    assert not any(b"HIGHESTMODSEQ" in line for line in untagged[1:] if line.startswith(b"* OK")), untagged
    again = wire.expect("OK", "FETCH 1 MODSEQ") + wire.expect("OK", f"SEARCH MODSEQ {mark}")
    assert not any(line.startswith(b"* OK [HIGHESTMODSEQ") for line in again), again


def test_condstore_enabled_before_select_needs_no_highestmodseq_after_it(box):
    wire, name, _ = box
    assert wire.expect("OK", "ENABLE CONDSTORE") == [b"* ENABLED CONDSTORE"]
    assert b"HIGHESTMODSEQ" in b"".join(wire.expect("OK", f"SELECT {name}"))
    assert not any(line.startswith(b"* OK") for line in wire.expect("OK", "FETCH 1 MODSEQ"))
