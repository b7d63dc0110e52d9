"""The TRANSACTION and UPDATE states (RFC 1939 §5-§7): STAT, LIST, UIDL, RETR, TOP,
DELE, RSET, NOOP, QUIT, over real sockets with poplib and a raw connection.

What RETR sends is checked octet for octet against what the store holds (the
server's Return-Path and Received lines plus exactly what SMTP accepted or IMAP
APPEND stored), with CRLF line endings and byte-stuffing undone; LIST and STAT
must announce exactly that many octets.
"""

from __future__ import annotations

import poplib
import signal

from postar.pop3 import responses
from tests.conftest import PASSWORD
from tests.imap.wire import Wire, append, deliver, new_user, unique
from tests.pop3.pop import Pop, login_once_free, unstuff


def stored(server, user: str, mailbox: str = "INBOX") -> list[bytes]:
    return [m.content for m in server.messages(user, mailbox)]


def test_stat_list_retr_match_the_store_octet_for_octet(server):
    user = new_user(server)
    bodies = ["Hi there.\r\n", ".starts with a dot\r\n..two dots\r\n.\tdot tab\r\nend\r\n",
              "ümlaut and 8-bit ✓\r\n", "x" * 998 + "\r\n" + "long\r\n" * 3000]
    for body in bodies:
        deliver(server, user, unique("s"), body)
    expected = stored(server, user)
    pop = Pop.login(server, user)
    assert pop.command("STAT") == f"+OK {len(expected)} {sum(map(len, expected))}".encode()
    assert pop.lines("LIST") == [f"{n} {len(c)}".encode() for n, c in enumerate(expected, 1)]
    for number, content in enumerate(expected, 1):
        status, body = pop.multi(f"RETR {number}")
        assert status == f"+OK {len(content)} octets".encode()
        assert unstuff(body) == content
        assert pop.command(f"LIST {number}") == f"+OK {number} {len(content)}".encode()
    assert b"\r\n..starts with a dot\r\n...two dots\r\n..\tdot tab\r\n" in pop.multi("RETR 2")[1]


def test_poplib_octet_counts_agree_with_list(server):
    user = new_user(server)
    for body in ("one\r\n", ".two\r\n..\r\n"):
        deliver(server, user, unique("s"), body)
    client = server.pop3(user)
    sizes = [int(line.split()[1]) for line in client.list()[1]]
    for number, size in enumerate(sizes, 1):
        response, lines, octets = client.retr(number)
        assert octets == size == len(b"\r\n".join(lines) + b"\r\n")
    client.quit()


def test_appended_messages_with_bare_lf_or_no_final_newline_are_sent_with_crlf(server):
    """IMAP APPEND keeps a client's bytes as they are; POP3 sends CRLF lines and counts them."""
    user = new_user(server)
    wire = Wire.login(server, user)
    raws = [b"Subject: lf\n\nline one\n.dot\nlast\n", b"Subject: open\r\n\r\nno newline at the end",
            b"Subject: mixed\r\n\nbare\r\rcr\n"]
    for raw in raws:
        append(wire, "INBOX", raw)
    expected = [b"Subject: lf\r\n\r\nline one\r\n.dot\r\nlast\r\n",
                b"Subject: open\r\n\r\nno newline at the end\r\n",
                b"Subject: mixed\r\n\r\nbare\r\rcr\r\n"]
    pop = Pop.login(server, user)
    assert pop.lines("LIST") == [f"{n} {len(e)}".encode() for n, e in enumerate(expected, 1)]
    for number, content in enumerate(expected, 1):
        status, body = pop.multi(f"RETR {number}")
        assert (status, unstuff(body)) == (f"+OK {len(content)} octets".encode(), content)


def test_top_sends_the_header_and_the_first_lines(server):
    user = new_user(server)
    deliver(server, user, "top", "one\r\n.two\r\nthree\r\n")
    content = stored(server, user)[0]
    header, body = content.split(b"\r\n\r\n", 1)
    pop = Pop.login(server, user)
    assert unstuff(pop.multi("TOP 1 0")[1]) == header + b"\r\n\r\n"
    assert unstuff(pop.multi("TOP 1 2")[1]) == header + b"\r\n\r\none\r\n.two\r\n"
    assert unstuff(pop.multi("TOP 1 99")[1]) == content
    assert pop.command("TOP 1").startswith(b"-ERR TOP takes two numbers")
    assert pop.command("TOP 1 x").startswith(b"-ERR Invalid number of lines")
    assert pop.command("TOP 2 1") + b"\r\n" == responses.no_such_message(2)


def test_uidl_is_stable_across_sessions_and_deletions(server):
    user = new_user(server)
    for n in range(3):
        deliver(server, user, f"u{n}")
    pop = Pop.login(server, user)
    first = dict(line.split() for line in pop.lines("UIDL"))
    assert len(set(first.values())) == 3 and all(len(u) <= 70 for u in first.values())
    assert pop.command("UIDL 2") == b"+OK 2 " + first[b"2"]
    pop.command("DELE 1")
    assert b"1" not in dict(line.split() for line in pop.lines("UIDL"))
    assert pop.command("QUIT") == b"+OK Logging out, messages deleted."
    deliver(server, user, "u3")
    again = dict(line.split() for line in login_once_free(server, user).lines("UIDL"))
    assert again[b"1"] == first[b"2"] and again[b"2"] == first[b"3"] and again[b"3"] not in first.values()


def test_dele_rset_and_quit_delete_only_at_quit(server):
    user = new_user(server)
    for n in range(3):
        deliver(server, user, f"d{n}")
    contents = stored(server, user)
    pop = Pop.login(server, user)
    assert pop.command("DELE 2") + b"\r\n" == responses.DELETED
    assert pop.command("DELE 2") + b"\r\n" == responses.ALREADY_DELETED
    assert pop.command("RETR 2") + b"\r\n" == responses.ALREADY_DELETED
    assert pop.command("LIST 2") + b"\r\n" == responses.ALREADY_DELETED
    assert pop.command("STAT") == f"+OK 2 {len(contents[0]) + len(contents[2])}".encode()
    assert [line.split()[0] for line in pop.lines("LIST")] == [b"1", b"3"]
    assert len(stored(server, user)) == 3  # nothing happens before QUIT
    assert pop.command("RSET").startswith(b"+OK 3 messages")
    pop.command("DELE 1")
    pop.command("DELE 3")
    assert pop.command("QUIT") + b"\r\n" == responses.LOGGING_OUT_DELETED
    assert stored(server, user) == [contents[1]]


def test_a_dropped_connection_deletes_nothing(server):
    user = new_user(server)
    deliver(server, user, "keep me")
    pop = Pop.login(server, user)
    pop.command("DELE 1")
    pop.close()
    again = login_once_free(server, user)
    assert again.command("STAT").startswith(b"+OK 1 ")


def test_disconnect_in_the_middle_of_a_large_retr(server):
    user = new_user(server)
    deliver(server, user, "big", "0123456789abcdef" * 60000 + "\r\n")
    pop = Pop.login(server, user)
    pop.command("DELE 1")
    pop.send(b"RETR 1\r\n")  # DELE'd: refused; then a fresh session reads half a RETR and leaves
    assert pop.line() + b"\r\n" == responses.ALREADY_DELETED
    pop.close()
    again = login_once_free(server, user)
    again.send(b"RETR 1\r\n")
    assert again.line().startswith(b"+OK")
    again.sock.recv(4096)
    again.close()
    third = login_once_free(server, user)
    assert third.command("STAT").startswith(b"+OK 1 ")
    assert len(unstuff(third.multi("RETR 1")[1])) == len(stored(server, user)[0])


def test_pipelined_commands_are_answered_in_order(server):
    user = new_user(server)
    deliver(server, user, "p1")
    deliver(server, user, "p2")
    pop = Pop.connect(server)
    pop.send(f"USER {user}\r\nPASS {PASSWORD}\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 2\r\nDELE 1\r\nQUIT\r\n")
    assert pop.line() == b"+OK"
    assert pop.line() == b"+OK Logged in."
    assert pop.line().startswith(b"+OK 2 ")
    assert pop.line() == b"+OK" and len(pop.body().splitlines()) == 2
    assert pop.line().startswith(b"+OK 1 ")
    assert pop.line().startswith(b"+OK ") and b"Subject: p2" in pop.body()
    assert pop.line() == b"+OK Marked to be deleted."
    assert pop.line() == b"+OK Logging out, messages deleted."
    assert [c for c in stored(server, user) if b"Subject: p1" in c] == []


def test_message_expunged_over_imap_during_the_session(server):
    user = new_user(server)
    deliver(server, user, "gone")
    pop = Pop.login(server, user)
    wire = Wire.login(server, user)
    wire.expect("OK", "SELECT INBOX")
    wire.expect("OK", "STORE 1 +FLAGS (\\Deleted)")
    wire.expect("OK", "EXPUNGE")
    assert pop.command("STAT").startswith(b"+OK 1 ")  # the maildrop stays as it was at login
    assert pop.command("RETR 1") + b"\r\n" == responses.VANISHED
    pop.command("DELE 1")
    assert pop.command("QUIT") == b"+OK Logging out, messages deleted."


def test_new_mail_shows_in_the_next_session_only(server):
    user = new_user(server)
    pop = Pop.login(server, user)
    deliver(server, user, "later")
    assert pop.command("STAT") == b"+OK 0 0"
    pop.command("QUIT")
    assert login_once_free(server, user).command("STAT").startswith(b"+OK 1 ")


def test_deletions_survive_kill_9_after_the_quit_reply(start_server):
    private = start_server()
    user = "alice@example.test"
    for n in range(5):
        deliver(private, user, f"k{n}")
    client = private.pop3(user)
    for number in (1, 3, 5):
        client.dele(number)
    assert client.quit().startswith(b"+OK")
    private.stop(signal.SIGKILL)
    private.start()
    client = private.pop3(user)
    assert client.stat()[0] == 2
    assert [b"Subject: k1" in b"\r\n".join(client.retr(n)[1]) for n in (1, 2)] == [True, False]
    client.quit()
    assert private.store_problems() == []


def test_empty_maildrop(server):
    pop = Pop.login(server, new_user(server))
    assert pop.command("STAT") == b"+OK 0 0"
    assert pop.lines("LIST") == [] and pop.lines("UIDL") == []
    assert pop.command("RETR 1") + b"\r\n" == responses.no_such_message(1)
    assert pop.command("QUIT") == b"+OK Logging out."


def test_poplib_full_session_on_the_stls_port(server):
    user = new_user(server)
    raw = deliver(server, user, "stls")
    client = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    client.stls(context=server.client_tls())
    client.user(user)
    client.pass_(PASSWORD)
    assert b"\r\n".join(client.retr(1)[1]).endswith(raw.rstrip(b"\r\n"))
    client.quit()
