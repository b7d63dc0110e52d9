"""STORE, keywords, CONDSTORE, EXPUNGE, CLOSE, UNSELECT and EXAMINE over real sockets (RFC 9051 §6.4; RFC 7162).

Each test works in a fresh mailbox of the shared account alice, filled by
APPEND. Compared with Dovecot 2.3.19: same flags in every FETCH, and the
same updated FLAGS and PERMANENTFLAGS before the first FETCH that shows a new
keyword; Dovecot refuses \\Recent in STORE with BAD where postar ignores it,
and reports EXPUNGEs in ascending order where postar goes from the top (both
valid: each number is valid when it is sent).
"""

from __future__ import annotations

import re

import pytest

from tests.imap.wire import (
    Wire,
    append,
    imapclient,
    unique,
)


def message(n: int) -> bytes:
    return f"From: a@remote.test\r\nSubject: message {n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def box(server):
    """A fresh mailbox with messages 1:3 (UIDs 1:3), selected; (wire, name)."""
    wire = Wire.login(server)
    name = unique("store-")
    wire.expect("OK", f"CREATE {name}")
    assert [append(wire, name, message(n)) for n in (1, 2, 3)] == [1, 2, 3]
    assert b"* 3 EXISTS" in wire.expect("OK [READ-WRITE]", f"SELECT {name}")
    yield wire, name
    wire.close()


def apply_expunges(uids: list[int], untagged: list[bytes]) -> list[int]:
    """What a client's view becomes after the EXPUNGE responses, in order."""
    view = list(uids)
    for line in untagged:
        match = re.fullmatch(rb"\* (\d+) EXPUNGE", line)
        if match:
            del view[int(match.group(1)) - 1]
    return view


def modseq(wire: Wire, uid: int) -> int:
    [line] = [u for u in wire.expect("OK", f"UID FETCH {uid} MODSEQ") if f"UID {uid} ".encode() in u]
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


# STORE ---------------------------------------------------------------------------------

def test_store_flags_add_remove_and_silent(box):
    wire, _ = box
    assert wire.expect("OK", "STORE 1 FLAGS (\\Flagged)") == [b"* 1 FETCH (FLAGS (\\Flagged))"]
    assert wire.expect("OK", "STORE 1 +FLAGS (\\Seen \\Answered)") == [
        b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Answered))"]
    assert wire.expect("OK", "STORE 1 -FLAGS (\\Flagged)") == [b"* 1 FETCH (FLAGS (\\Seen \\Answered))"]
    assert wire.expect("OK", "STORE 2:3 +FLAGS.SILENT (\\Deleted)") == []
    assert wire.expect("OK", "STORE 1 FLAGS.SILENT ()") == []
    assert wire.expect("OK", "FETCH 1:3 FLAGS") == [b"* 1 FETCH (FLAGS ())", b"* 2 FETCH (FLAGS (\\Deleted))",
                                                     b"* 3 FETCH (FLAGS (\\Deleted))"]
    assert wire.expect("OK", "UID STORE 3 -FLAGS (\\deleted)") == [b"* 3 FETCH (FLAGS () UID 3)"]
    assert wire.expect("OK", "STORE 2 +flags.silent (\\SEEN)") == []  # names and flags in any case
    assert wire.expect("OK", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS (\\Deleted \\Seen))"]


SYSTEM = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def announced(*keywords: bytes, readonly: bool = False) -> list[bytes]:
    """The FLAGS and PERMANENTFLAGS responses that tell of ``keywords`` (in the order they came)."""
    flags = b" ".join((SYSTEM,) + keywords)
    permanent = b"()" if readonly else b"(" + flags + b" \\*)"
    return [b"* FLAGS (" + flags + b")", b"* OK [PERMANENTFLAGS " + permanent + b"] Flags permitted"]


def test_keywords(box):
    wire, name = box
    assert wire.expect("OK", "STORE 1 +FLAGS ($Forwarded Project_x)") == announced(b"$Forwarded", b"Project_x") + [
        b"* 1 FETCH (FLAGS ($Forwarded Project_x))"]
    assert wire.expect("OK", "STORE 1 +FLAGS (project_X)") == [b"* 1 FETCH (FLAGS ($Forwarded Project_x))"]
    untagged = wire.expect("OK", f"SELECT {name}")
    [flags] = [u for u in untagged if u.startswith(b"* FLAGS ")]
    assert b"$Forwarded" in flags and b"Project_x" in flags
    assert wire.expect("OK", "SEARCH KEYWORD Project_x") == [b"* SEARCH 1"]
    assert wire.expect("OK", "SEARCH UNKEYWORD $Forwarded") == [b"* SEARCH 2 3"]
    assert wire.expect("OK", "STORE 1 -FLAGS ($Forwarded)") == [b"* 1 FETCH (FLAGS (Project_x))"]


def test_a_new_keyword_is_announced_before_the_first_fetch_that_shows_it(server, box):
    """RFC 9051 §7.3.5 (RFC 3501 §7.2.6): the client records FLAGS; issue 10 saw FETCH FLAGS with
    keywords no FLAGS had listed, in the session that stored them and in the others. Dovecot 2.3.19,
    the same exchanges (a: this session, b: another, c: one with it EXAMINEd; a's FETCH add \\Recent):

        a STORE 1 +FLAGS ($Label1)
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)
        * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted.
        * 1 FETCH (FLAGS (\\Recent $Label1))
        a STORE 2 +FLAGS ($Label1)
        * 2 FETCH (FLAGS (\\Recent $Label1))
        a STORE 2 +FLAGS.SILENT ($hello)
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello)
        * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello \\*)] Flags permitted.
        b NOOP
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello)
        * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello \\*)] Flags permitted.
        * 1 FETCH (FLAGS ($Label1))
        * 2 FETCH (FLAGS ($Label1 $hello))
        c NOOP
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello)
        * OK [PERMANENTFLAGS ()] Read-only mailbox.
        * 1 FETCH (FLAGS ($Label1))
        * 2 FETCH (FLAGS ($Label1 $hello))
        a APPEND ... ($Fresh) {21+}
        * FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello $Fresh)
        * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $hello $Fresh \\*)] Flags permitted.
        * 4 EXISTS
        a STORE 1:4 -FLAGS ($Label1 $hello $Fresh)
        * 1 FETCH (FLAGS (\\Recent)) ...           (no FLAGS: the list never shrinks)

    postar words PERMANENTFLAGS () "Flags permitted" as before; its SELECT lists the keywords in
    use, Dovecot's every keyword the mailbox ever had."""
    wire, name = box
    other = Wire.login(server)
    other.expect("OK", f"SELECT {name}")
    reader = Wire.login(server)
    reader.expect("OK", f"EXAMINE {name}")
    assert wire.expect("OK", "STORE 1 +FLAGS ($Label1)") == announced(b"$Label1") + [
        b"* 1 FETCH (FLAGS ($Label1))"]
    assert wire.expect("OK", "STORE 2 +FLAGS ($Label1)") == [b"* 2 FETCH (FLAGS ($Label1))"]
    assert wire.expect("OK", "STORE 2 +FLAGS.SILENT ($hello)") == announced(b"$Label1", b"$hello")
    assert wire.expect("OK", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS ($Label1 $hello))"]
    told = [b"* 1 FETCH (FLAGS ($Label1))", b"* 2 FETCH (FLAGS ($Label1 $hello))"]
    assert other.expect("OK", "NOOP") == announced(b"$Label1", b"$hello") + told
    assert reader.expect("OK", "NOOP") == announced(b"$Label1", b"$hello", readonly=True) + told
    data = b"From: a@remote.test\r\nSubject: fresh\r\n\r\nbody\r\n"
    appended = wire.expect("OK", f"APPEND {name} ($Fresh) {{{len(data)}+}}\r\n".encode() + data)
    assert appended == announced(b"$Label1", b"$hello", b"$Fresh") + [b"* 4 EXISTS"]
    assert other.expect("OK", "NOOP") == announced(b"$Label1", b"$hello", b"$Fresh") + [b"* 4 EXISTS"]
    assert other.expect("OK", "FETCH 4 FLAGS") == [b"* 4 FETCH (FLAGS ($Fresh))"]
    stored = wire.expect("OK", "STORE 1:4 -FLAGS ($Label1 $hello $Fresh)")
    assert not any(line.startswith(b"* FLAGS") for line in stored), stored
    other.close()
    reader.close()


def test_store_bad_arguments(box):
    wire, _ = box
    wire.expect("BAD", "STORE 1 +FLAGS (\\Bogus)")
    wire.expect("BAD", "STORE 1 +FLAGS (a]b)")
    wire.expect("BAD", "STORE 1 TAGS (\\Seen)")
    wire.expect("BAD", "STORE 4 +FLAGS (\\Seen)")  # beyond the last message
    wire.expect("BAD", "STORE 1 +FLAGS")
    assert wire.expect("OK", "UID STORE 4 +FLAGS (\\Seen)") == []  # a missing UID is no error
    assert wire.expect("OK", "FETCH 1:3 FLAGS") == [b"* %d FETCH (FLAGS ())" % n for n in (1, 2, 3)]


def test_uid_store_unchangedsince_reports_modified(server, box):
    wire, name = box
    wire.expect("OK", "ENABLE CONDSTORE")
    known = max(modseq(wire, 1), modseq(wire, 2))
    other = Wire.login(server)
    other.expect("OK", f"SELECT {name}")
    other.expect("OK", "STORE 2 +FLAGS (\\Flagged)")  # changed after `known`
    other.close()
    untagged = wire.expect("OK [MODIFIED 2]", f"UID STORE 1:2 (UNCHANGEDSINCE {known}) +FLAGS (\\Answered)")
    stored = [u for u in untagged if u.startswith(b"* 1 FETCH")]
    assert len(stored) == 1 and re.fullmatch(rb"\* 1 FETCH \(FLAGS \(\\Answered\) UID 1 MODSEQ \(\d+\)\)", stored[0])
    assert not any(b"\\Answered" in u for u in untagged if u.startswith(b"* 2 FETCH"))
    # UNCHANGEDSINCE enabled CONDSTORE: from now on every FETCH carries UID and MODSEQ (RFC 7162 §3.1)
    fetched = wire.expect("OK", "FETCH 1:2 FLAGS")[:2]
    assert fetched[0].startswith(b"* 1 FETCH (UID ") and b"FLAGS (\\Answered) MODSEQ (" in fetched[0]
    assert fetched[1].startswith(b"* 2 FETCH (UID ") and b"FLAGS (\\Flagged) MODSEQ (" in fetched[1]
    current = modseq(wire, 2)
    silent = wire.expect("OK", f"UID STORE 2 (UNCHANGEDSINCE {current}) +FLAGS.SILENT (\\Seen)")
    # RFC 7162 §3.1.3: with UNCHANGEDSINCE the FETCH (with MODSEQ) comes even for .SILENT
    assert len(silent) == 1 and re.fullmatch(rb"\* 2 FETCH \(.*MODSEQ \((\d+)\).*\)", silent[0])
    assert int(re.search(rb"MODSEQ \((\d+)\)", silent[0]).group(1)) > current


def test_unchangedsince_zero_always_fails(box):
    # RFC 7162 §3.1.3: "Use of UNCHANGEDSINCE with a modification sequence of 0 always fails".
    wire, _ = box
    wire.expect("OK [MODIFIED 1]", "STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    assert wire.expect("OK", "FETCH 1 FLAGS")[0].startswith(b"* 1 FETCH (UID 1 FLAGS () MODSEQ (")


def test_store_after_another_session_expunged_is_still_answered(server, box):
    wire, name = box
    other = Wire.login(server)
    other.expect("OK", f"SELECT {name}")
    other.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.expect("OK", "EXPUNGE")
    other.close()
    untagged = wire.expect("OK", "STORE 2 +FLAGS (\\Seen)")  # no EXPUNGE during STORE (§7.5.1)
    assert not any(u.endswith(b" EXPUNGE") for u in untagged)
    assert b"* 2 FETCH (FLAGS (\\Seen))" in untagged
    # that the EXPUNGE must still come later: test_imap_concurrency.py


# EXPUNGE, CLOSE, UNSELECT --------------------------------------------------------------

def test_expunge(box):
    wire, _ = box
    wire.expect("OK", "STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    untagged = wire.expect("OK", "EXPUNGE")
    assert sorted(untagged) == sorted(set(untagged)) and len(untagged) == 2
    assert apply_expunges([1, 2, 3], untagged) == [2]
    assert wire.expect("OK", "FETCH 1:* UID") == [b"* 1 FETCH (UID 2)"]
    assert wire.expect("OK", "EXPUNGE") == []
    wire.expect("BAD", "FETCH 2 UID")  # only one message now


def test_uid_expunge_only_the_named_uids(box):
    wire, _ = box
    wire.expect("OK", "STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    assert wire.expect("OK", "UID EXPUNGE 2:3") == [b"* 2 EXPUNGE"]  # 3 is not \Deleted
    assert wire.expect("OK", "UID FETCH 1:* FLAGS") == [b"* 1 FETCH (UID 1 FLAGS (\\Deleted))",
                                                         b"* 2 FETCH (UID 3 FLAGS ())"]
    wire.expect("BAD", "UID EXPUNGE")


def test_close_expunges_silently_and_unselect_does_not(box):
    wire, name = box
    wire.expect("OK", "STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert wire.expect("OK", "UNSELECT") == []
    assert b"* 3 EXISTS" in wire.expect("OK", f"SELECT {name}")
    assert wire.expect("OK", "CLOSE") == []  # no EXPUNGE responses (§6.4.1)
    wire.expect("BAD", "NOOP extra")
    assert b"* 2 EXISTS" in wire.expect("OK", f"SELECT {name}")
    assert wire.expect("OK", "FETCH 1:* UID") == [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"]


def test_examine_is_read_only(server, box):
    wire, name = box
    wire.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    target = unique("copy-")
    wire.expect("OK", f"CREATE {target}")
    untagged = wire.expect("OK [READ-ONLY]", f"EXAMINE {name}")
    assert b"* OK [CLOSED] Previous mailbox closed" in untagged
    assert b"* OK [PERMANENTFLAGS ()] Flags permitted" in untagged
    wire.expect("NO", "STORE 2 +FLAGS (\\Seen)")
    wire.expect("NO", "UID STORE 2 +FLAGS (\\Seen)")
    wire.expect("NO", "EXPUNGE")
    wire.expect("NO", "UID EXPUNGE 1")
    wire.expect("NO", f"MOVE 2 {target}")
    wire.expect("OK [COPYUID", f"COPY 2 {target}")  # copying out is reading
    assert wire.expect("OK", "CLOSE") == []  # does not expunge a read-only mailbox
    assert b"* 3 EXISTS" in wire.expect("OK", f"SELECT {name}")
    assert wire.expect("OK", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS ())"]


def test_imapclient_flags(server):
    client = imapclient(server)
    name = unique("ic-")
    client.create_folder(name)
    uid = int(re.search(rb"APPENDUID \d+ (\d+)", client.append(name, message(1))).group(1))
    client.select_folder(name)
    client.add_flags([uid], [b"\\Flagged", b"$Label1"])
    assert set(client.get_flags([uid])[uid]) == {b"\\Flagged", b"$Label1"}
    client.remove_flags([uid], [b"\\Flagged"])
    assert client.get_flags([uid])[uid] == (b"$Label1",)
    client.set_flags([uid], [b"\\Seen"])
    assert client.get_flags([uid])[uid] == (b"\\Seen",)
    client.delete_messages([uid])
    client.expunge()
    assert client.search(["ALL"]) == []
    client.logout()
