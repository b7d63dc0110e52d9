"""Several sessions on one mailbox: what each is told, and when (RFC 9051 §5.2, §7.5.1; RFC 2177 IDLE).

Two connections select the same mailbox; a change made by one (or a delivery
over SMTP) must reach the other as untagged FETCH, EXPUNGE or EXISTS at its
next command that allows it, or at once while it IDLEs. Compared with Dovecot
2.3.19: the same responses; Dovecot also ends a session whose selected
mailbox was deleted with "* BYE Selected mailbox was deleted".
"""

from __future__ import annotations

import re
import threading

import pytest

from tests.imap.wire import (
    Wire,
    append,
    deliver,
    imapclient,
    new_user,
    unique,
)


def message(n: int | str) -> bytes:
    return f"From: a@remote.test\r\nSubject: concurrent {n}\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def pair(server):
    """Two sessions of alice with the same fresh mailbox (messages 1:3) selected; (first, second, name)."""
    first, second = Wire.login(server), Wire.login(server)
    name = unique("shared-")
    first.expect("OK", f"CREATE {name}")
    for n in (1, 2, 3):
        append(first, name, message(n))
    first.expect("OK", f"SELECT {name}")
    second.expect("OK", f"SELECT {name}")
    yield first, second, name
    first.close()
    second.close()


def test_flag_change_reaches_the_other_session_at_noop(pair):
    first, second, _ = pair
    first.expect("OK", "STORE 2 +FLAGS (\\Flagged)")
    assert second.expect("OK", "NOOP") == [b"* 2 FETCH (FLAGS (\\Flagged))"]
    assert second.expect("OK", "NOOP") == []  # told once
    first.expect("OK", "STORE 2 -FLAGS (\\Flagged)")
    first.expect("OK", "STORE 3 +FLAGS ($Important)")
    untagged = second.expect("OK", "CHECK")
    assert untagged[:2] == [  # the new keyword before the FETCH that shows it (RFC 9051 §7.3.5)
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important)",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Important \\*)] Flags permitted"]
    assert sorted(untagged[2:]) == [b"* 2 FETCH (FLAGS ())", b"* 3 FETCH (FLAGS ($Important))"]


def test_expunge_reaches_the_other_session_but_not_during_fetch(pair):
    first, second, _ = pair
    first.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert first.expect("OK", "EXPUNGE") == [b"* 1 EXPUNGE"]
    fetched = second.expect("OK", "FETCH 2:3 UID")  # §7.5.1: no EXPUNGE during FETCH, numbers stay valid
    assert not any(u.endswith(b"EXPUNGE") for u in fetched)
    assert b"* 2 FETCH (UID 2)" in fetched and b"* 3 FETCH (UID 3)" in fetched
    assert not any(u.endswith(b"EXPUNGE") for u in second.expect("OK", "SEARCH ALL"))
    untagged = second.expect("OK", "NOOP")
    assert b"* 1 EXPUNGE" in untagged
    assert second.expect("OK", "FETCH 1:* UID") == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)"]


def test_uid_fetch_may_carry_the_expunge(pair):
    first, second, _ = pair
    first.expect("OK", "STORE 3 +FLAGS.SILENT (\\Deleted)")
    first.expect("OK", "EXPUNGE")
    untagged = second.expect("OK", "UID FETCH 1:* FLAGS")  # the UID forms allow it (§7.5.1)
    assert untagged[-1] == b"* 3 EXPUNGE" or b"* 3 EXPUNGE" in second.expect("OK", "NOOP")


def test_delivery_reaches_a_selected_inbox_as_exists(server):
    user = new_user(server)
    deliver(server, user, unique("first-"))
    wire = Wire.login(server, user)
    assert b"* 1 EXISTS" in wire.expect("OK", "SELECT INBOX")
    deliver(server, user, unique("second-"))
    assert wire.expect("OK", "NOOP") == [b"* 2 EXISTS"]
    assert wire.expect("OK", "FETCH 2 UID") == [b"* 2 FETCH (UID 2)"]
    wire.close()


def test_a_delivery_just_before_our_own_store_is_still_announced(server):
    # The new message's change comes before our STORE's in the mailbox's modseq order; the session
    # must still report "* 2 EXISTS" (§5.2, §7.4.1): a view that jumped to the STORE's modseq before
    # asking what changed would never tell, and the message would stay invisible until re-SELECT.
    user = new_user(server)
    deliver(server, user, unique("first-"))
    wire = Wire.login(server, user)
    wire.expect("OK", "SELECT INBOX")
    deliver(server, user, unique("second-"))
    untagged = wire.expect("OK", "STORE 1 +FLAGS (\\Seen)") + wire.expect("OK", "NOOP")
    assert b"* 2 EXISTS" in untagged, untagged
    wire.close()


def test_another_sessions_expunge_just_before_our_store_is_still_announced(pair):
    # As above for an expunge: a lost "* 1 EXPUNGE" would leave a message that no longer exists at
    # number 1 for the rest of the session.
    first, second, _ = pair
    first.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    first.expect("OK", "EXPUNGE")
    untagged = second.expect("OK", "STORE 2 +FLAGS (\\Seen)") + second.expect("OK", "NOOP")
    assert b"* 1 EXPUNGE" in untagged, untagged


def test_another_sessions_flag_change_just_before_our_store_is_still_announced(pair):
    first, second, _ = pair
    first.expect("OK", "STORE 3 +FLAGS (\\Flagged)")
    untagged = second.expect("OK", "UID STORE 2 +FLAGS (\\Seen)") + second.expect("OK", "NOOP")
    assert b"* 3 FETCH (FLAGS (\\Flagged))" in untagged, untagged


def test_idle_sees_a_delivery(server):
    user = new_user(server)
    client = imapclient(server, user)
    client.select_folder("INBOX")
    client.idle()
    deliver(server, user, unique("idle-"))
    responses = []
    for _ in range(3):  # a few waits: the first may end on something else
        responses += client.idle_check(timeout=10)
        if (1, b"EXISTS") in responses:
            break
    client.idle_done()
    assert (1, b"EXISTS") in responses, responses
    assert len(client.search(["ALL"])) == 1
    client.logout()


def test_idle_sees_other_sessions_flags_and_expunges(pair):
    first, second, _ = pair
    second.send(b"i1 IDLE\r\n")
    assert second.response().startswith(b"+ ")
    first.expect("OK", "STORE 2 +FLAGS (\\Answered)")
    assert second.response() == b"* 2 FETCH (FLAGS (\\Answered))"
    first.expect("OK", "STORE 1 +FLAGS.SILENT (\\Deleted)")
    first.expect("OK", "EXPUNGE")
    updates = [second.response()]
    while updates[-1] != b"* 1 EXPUNGE":  # expunges are allowed while idling
        updates.append(second.response())
    assert updates[:-1] in ([], [b"* 1 FETCH (FLAGS (\\Deleted))"])  # the flag may come first
    append(first, pair[2], message(4))
    assert second.response() == b"* 3 EXISTS"
    second.send(b"DONE\r\n")
    assert second.until("i1", "OK") == []
    assert second.expect("OK", "FETCH 1:* UID") == [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)", b"* 3 FETCH (UID 4)"]


def test_move_reaches_the_other_session_as_expunge(server, pair):
    first, second, _ = pair
    target = unique("moved-")
    first.expect("OK", f"CREATE {target}")
    first.expect("OK", f"MOVE 1 {target}")
    assert second.expect("OK", "NOOP") == [b"* 1 EXPUNGE"]
    second.send(b"i1 IDLE\r\n")
    assert second.response().startswith(b"+ ")
    first.expect("OK", f"UID MOVE 3 {target}")
    assert second.response() == b"* 2 EXPUNGE"
    second.send(b"DONE\r\n")
    second.until("i1", "OK")


def test_deleting_the_mailbox_of_an_idling_session_ends_it(pair):
    first, second, name = pair
    second.send(b"i1 IDLE\r\n")
    assert second.response().startswith(b"+ ")
    first.expect("OK", "SELECT INBOX")
    first.expect("OK", f"DELETE {name}")
    assert second.response().startswith(b"* BYE")
    assert second.closed()


def test_idle_in_the_authenticated_state_and_a_bad_end(server):
    wire = Wire.login(server)
    wire.send(b"i1 IDLE\r\n")
    assert wire.response().startswith(b"+ ")
    wire.send(b"NOT DONE\r\n")
    wire.until("i1", "BAD")
    wire.expect("OK", "NOOP")
    wire.close()


def test_uids_are_never_reused(server):
    wire = Wire.login(server)
    name = unique("uids-")
    wire.expect("OK", f"CREATE {name}")
    uids = [append(wire, name, message(n)) for n in (1, 2)]
    wire.expect("OK", f"SELECT {name}")
    wire.expect("OK", "STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    wire.expect("OK", "EXPUNGE")
    uidnext = int(re.search(rb"UIDNEXT (\d+)", wire.expect("OK", f"STATUS {name} (UIDNEXT)")[0]).group(1))
    assert uidnext > uids[-1]
    again = append(wire, name, message(3))
    assert again > uids[-1] and again >= uidnext
    untagged = wire.expect("OK", f"SELECT {name}")
    assert b"* 1 EXISTS" in untagged
    assert f"* OK [UIDNEXT {again + 1}] Predicted next UID".encode() in untagged
    wire.close()


def test_deleting_a_mailbox_another_session_has_selected_ends_that_session(pair):
    first, second, name = pair
    first.expect("OK", "SELECT INBOX")
    first.expect("OK", f"DELETE {name}")
    second.send(b"n1 NOOP\r\n")
    response = second.response()
    assert response.startswith(b"* BYE"), response
    assert second.closed()


def test_concurrent_appends_get_distinct_uids(server):
    name = unique("parallel-")
    setup = Wire.login(server)
    setup.expect("OK", f"CREATE {name}")
    uids: list[int] = []
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            wire = Wire.login(server)
            for n in range(5):
                uids.append(append(wire, name, message(f"{k}.{n}")))
            wire.close()
        except Exception as e:  # noqa: BLE001 (reported below, on the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(uids) == 20 and len(set(uids)) == 20
    assert b"MESSAGES 20" in setup.expect("OK", f"STATUS {name} (MESSAGES)")[0]
    setup.close()


def test_two_sessions_adding_flags_to_one_message_keep_both(pair):
    first, second, _ = pair
    first.expect("OK", "STORE 1 +FLAGS (\\Seen)")
    second.expect("OK", "STORE 1 +FLAGS (\\Flagged)")
    assert first.expect("OK", "FETCH 1 FLAGS")[-1] == b"* 1 FETCH (FLAGS (\\Seen \\Flagged))"
