"""postar.imap.sort_thread and the SORT / THREAD commands (RFC 5256, RFC 5957).

Pure: base subject extraction step by step (§2.1), sent dates (§2.2), criteria
parsing, every sort key with REVERSE and the sequence number tie-break,
ORDEREDSUBJECT and each step of REFERENCES (links, duplicates, loops, dummies,
pruning, subject merging, sibling order), the THREAD and SORT lines byte for
byte, a 5,000-message thread without recursion, and properties: any messages
thread into a well-formed reply naming each exactly once. Sockets: APPEND into a
mailbox of the test's own, then UID SORT, SORT, THREAD and the error replies;
and a message delivered over SMTP found in INBOX by SORT with search keys.
"""

from __future__ import annotations

import imaplib
import re
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postar.imap.sort_thread import (
    Criterion, Sortable, Thread, base_subject, message_ids, ordered_subject, parse_sort_criteria, references,
    sent_date, sort_messages, sort_response, thread_response,
)
from tests.conftest import USERS


def msg(n: int, *, when: float | None = None, size: int = 100, uid: int | None = None,
        refs: str = "", **envelope: str) -> Sortable:
    """Message ``n`` (its msn); envelope fields by name, ``message_id`` for message-id and so on."""
    fields = {name.rstrip("_").replace("_", "-"): value for name, value in envelope.items()}
    return Sortable(msn=n, number=n if uid is None else uid, internal_date=float(n if when is None else when),
                    size=size, envelope=fields, references=refs)


def numbers(messages: list[Sortable]) -> list[int]:
    return [m.number for m in messages]


def render(threads: list[Thread]) -> str:
    return thread_response(threads).decode()[len("* THREAD"):].strip()


# Base subject (RFC 5256 §2.1) ------------------------------------------------------------------

@pytest.mark.parametrize("subject, base, reply", [
    ("hello", "hello", False),
    ("Re: hello", "hello", True),
    ("RE:hello", "hello", True),
    ("re : hello", "hello", True),               # subj-refwd: *WSP before the colon
    ("Fw: hello", "hello", True),
    ("FWD: hello", "hello", True),
    ("Re[2]: hello", "hello", True),             # a blob inside the subj-refwd
    ("Re: Re: Fwd: hello", "hello", True),
    ("[list] hello", "hello", False),            # (4) a blob alone is no reply
    ("[list] Re: hello", "hello", True),         # (3) blobs before a subj-refwd
    ("Re: [list] Re: hello", "hello", True),
    ("[a][b] hello", "hello", False),
    ("[a][b]", "[b]", False),                    # the last blob is the base when nothing follows
    ("[only]", "[only]", False),
    ("hello (fwd)", "hello", True),              # (2) trailers
    ("hello (FWD)(fwd)  ", "hello", True),
    ("[fwd: hello]", "hello", True),             # (6) the forward wrapper
    ("[Fwd: Re: hello (fwd)]", "hello", True),
    ("[fwd: [x]]", "[x]", True),
    ("Re: [fwd: hello] (fwd)", "hello", True),
    ("  spaced \t out\t ", "spaced out", False),  # (1) whitespace
    ("Ref: hello", "Ref: hello", False),         # not a subj-refwd
    ("Reply: hello", "Reply: hello", False),
    ("Re:", "", True),
    ("", "", False),
    ("=?utf-8?q?Re=3A_caf=C3=A9?=", "café", True),  # (1) decoded before the rules
    ("=?utf-8?b?W2xpc3Rd?= =?utf-8?q?_Fwd=3A_x?=", "x", True),
    ("[liste-ñ] x", "x", False),                 # 8-bit characters in a blob, as Dovecot
])
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def test_base_subject_of_hostile_subjects_is_fast() -> None:
    started = time.monotonic()
    for subject in ("[a]" * 100_000, "[fwd:" * 50_000 + "x" + "]" * 50_000, "x" + "(fwd)" * 100_000,
                    "Re: " * 100_000 + "x", "[" * 100_000):
        base_subject(subject)
    assert time.monotonic() - started < 5


# Sent date (§2.2) and message IDs ----------------------------------------------------------------

def test_sent_date_is_utc_and_falls_back_to_the_internal_date() -> None:
    assert sent_date(msg(1, date="Thu, 01 Jan 1970 01:00:00 +0100")) == 0.0
    assert sent_date(msg(1, date="Thu, 01 Jan 1970 00:00:00 -0000")) == 0.0
    assert sent_date(msg(1, date="1 Jan 1970 00:01:00 GMT")) == 60.0
    assert sent_date(msg(1, when=42)) == 42.0
    assert sent_date(msg(1, when=42, date="not a date")) == 42.0
    assert sent_date(msg(1, when=42, date="Mon, 99 Foo 2024 99:99 +9999")) == 42.0


def test_message_ids() -> None:
    assert message_ids("<a@x> <b@y>\t(comment) <c@z>") == ["<a@x>", "<b@y>", "<c@z>"]
    assert message_ids("<folded@\r\n x>") == ["<folded@x>"]
    assert message_ids("<no-at> <@x> <a@> junk") == []
    assert message_ids(None) == []


# SORT (§3) ------------------------------------------------------------------------------------

@pytest.mark.parametrize("criteria, expected", [
    (["DATE"], (Criterion("DATE", False),)),
    (["reverse", "arrival", "Subject"], (Criterion("ARRIVAL", True), Criterion("SUBJECT", False))),
    (["CC", "FROM", "SIZE", "TO", "DISPLAYFROM", "REVERSE", "DISPLAYTO"],
     (Criterion("CC", False), Criterion("FROM", False), Criterion("SIZE", False), Criterion("TO", False),
      Criterion("DISPLAYFROM", False), Criterion("DISPLAYTO", True))),
])
def test_parse_sort_criteria(criteria: list, expected: tuple) -> None:
    assert parse_sort_criteria(criteria) == expected


@pytest.mark.parametrize("token", ["DATE", [], ["REVERSE"], ["REVERSE", "REVERSE", "DATE"], ["DATE", "NAME"],
                                   [["DATE"]], [b"DATE"]])
def test_parse_sort_criteria_errors(token) -> None:
    assert isinstance(parse_sort_criteria(token), str)


def sort(messages: list[Sortable], *criteria: str) -> list[int]:
    parsed = parse_sort_criteria(list(criteria))
    assert not isinstance(parsed, str), parsed
    return numbers(sort_messages(messages, parsed))


def test_sort_by_each_key() -> None:
    messages = [
        msg(1, when=30, size=300, subject="Re: banana", from_="Zed <zed@x>", to="b@x", cc="Carl <c@x>",
            date="Mon, 1 Jan 2024 12:00:00 +0000"),
        msg(2, when=10, size=100, subject="apple", from_="=?utf-8?q?=C3=80nne?= <anne@x>", to="Bea <a@x>",
            date="Mon, 1 Jan 2024 13:00:00 +0200"),  # 11:00 UTC
        msg(3, when=20, size=200, subject="[list] Cherry", from_="bob@x", to="c@x, a@x",
            date="garbage"),  # no usable date: the internal date (1970)
    ]
    assert sort(messages, "ARRIVAL") == [2, 3, 1]
    assert sort(messages, "SIZE") == [2, 3, 1]
    assert sort(messages, "DATE") == [3, 2, 1]
    assert sort(messages, "SUBJECT") == [2, 1, 3]      # apple, banana, cherry
    assert sort(messages, "FROM") == [2, 3, 1]         # anne, bob, zed
    assert sort(messages, "TO") == [2, 1, 3]           # a, b, c (the first address only)
    assert sort(messages, "CC") == [2, 3, 1]           # "", "", c: no Cc sorts first, by sequence
    assert sort(messages, "DISPLAYFROM") == [3, 1, 2]  # bob@x, Zed, Ànne (after Z in UTF-8)
    assert sort(messages, "DISPLAYTO") == [1, 2, 3]    # b@x, Bea, c@x


def test_sort_reverse_ties_and_several_keys() -> None:
    messages = [msg(1, size=5, subject="b"), msg(2, size=7, subject="a"), msg(3, size=5, subject="A"),
                msg(4, size=7, subject="re: B")]
    assert sort(messages, "SUBJECT") == [2, 3, 1, 4]            # ties in sequence order, case-insensitive
    assert sort(messages, "REVERSE", "SUBJECT") == [1, 4, 2, 3]  # REVERSE leaves the tie-break alone
    assert sort(messages, "SIZE", "REVERSE", "SUBJECT") == [1, 3, 4, 2]
    assert sort(messages, "REVERSE", "SIZE", "SUBJECT") == [2, 4, 3, 1]
    assert sort([], "DATE") == []


def test_sort_display_falls_back_to_the_address() -> None:
    messages = [msg(1, from_="Undisclosed:;"), msg(2, from_='"" <mia@y>'), msg(3, from_="<ann>"), msg(4)]
    # a group sorts by its name; no name sorts by mailbox@host; no From by ""
    assert sort(messages, "DISPLAYFROM") == [4, 3, 2, 1]
    assert sort(messages, "FROM") == [4, 3, 2, 1]


def test_sort_response() -> None:
    assert sort_response([2, 3, 6]) == b"* SORT 2 3 6\r\n"
    assert sort_response([]) == b"* SORT\r\n"
    assert sort_response([5, 1], modseq=917) == b"* SORT 5 1 (MODSEQ 917)\r\n"
    assert sort_response([], modseq=917) == b"* SORT\r\n"


# THREAD=ORDEREDSUBJECT --------------------------------------------------------------------------

def test_ordered_subject() -> None:
    messages = [msg(1, subject="b", when=5), msg(2, subject="a", when=1), msg(3, subject="Re: a", when=4),
                msg(4, subject="c", when=9), msg(5, subject="[fwd: A]", when=2), msg(6, subject="re: c", when=0)]
    # a: 2, 5, 3 by date; c: 6 before 4; threads by their first message's date
    assert render(ordered_subject(messages)) == "(6 4)(2 (5)(3))(1)"
    assert render(ordered_subject([])) == ""


# THREAD=REFERENCES ------------------------------------------------------------------------------

def test_references_chains_and_in_reply_to() -> None:
    messages = [
        msg(1, message_id="<1@x>", subject="t"),
        msg(2, message_id="<2@x>", in_reply_to="<1@x>", subject="Re: t"),
        msg(3, message_id="<3@x>", refs="<1@x> <2@x>", subject="Re: t"),
        msg(4, message_id="<4@x>", refs="<1@x>", in_reply_to="<3@x>", subject="Re: t"),  # References wins
        msg(5, message_id="<5@x>", in_reply_to="<2@x> <1@x>", subject="other"),        # the first ID only
    ]
    assert render(references(messages)) == "(1 (2 (3)(5))(4))"


def test_references_missing_parents_make_dummies() -> None:
    messages = [
        msg(1, message_id="<1@x>", in_reply_to="<gone@x>", subject="a"),
        msg(2, message_id="<2@x>", in_reply_to="<gone@x>", subject="b"),
        msg(3, message_id="<3@x>", refs="<lost@x> <also-lost@x>", subject="c"),  # one child: promoted
        msg(4, message_id="<4@x>", refs="<top@x> <mid@x>", subject="d"),
        msg(5, message_id="<5@x>", refs="<top@x> <mid@x> <4@x>", subject="e"),
        msg(6, message_id="<6@x>", refs="<top@x> <other@x>", subject="f"),
    ]
    # the dummy <gone> keeps 1 and 2; <mid> (not top level) gives 4 up to the dummy <top>
    assert render(references(messages)) == "((1)(2))(3)((4 5)(6))"


def test_references_duplicate_and_missing_message_ids() -> None:
    messages = [
        msg(1, message_id="<same@x>", subject="one"),
        msg(2, message_id="<same@x>", subject="two"),      # a duplicate gets an ID of its own
        msg(3, in_reply_to="<same@x>", subject="three"),   # a reply to the first
        msg(4, message_id="not valid", subject="four"),
    ]
    assert render(references(messages)) == "(1 3)(2)(4)"


def test_references_loops_are_not_made() -> None:
    messages = [
        msg(1, message_id="<1@x>", refs="<2@x>", subject="a"),
        msg(2, message_id="<2@x>", refs="<1@x>", subject="b"),  # would make 1 its own ancestor: left
        msg(3, message_id="<3@x>", refs="<3@x>", subject="c"),  # refers to itself
        msg(4, message_id="<4@x>", refs="<5@x> <4@x> <5@x>", subject="d"),
    ]
    assert render(references(messages)) == "(2 1)(3)(4)"


def test_references_a_message_own_references_override_others() -> None:
    messages = [
        msg(1, message_id="<a@x>", subject="a"),
        msg(2, message_id="<c@x>", refs="<a@x> <b@x>", subject="c"),  # truncated: says c is below b
        msg(3, message_id="<b@x>", subject="b"),                      # b has no references: no parent
    ]
    assert render(references(messages)) == "(1)(3 2)"


def test_references_subject_grouping() -> None:
    messages = [
        msg(1, message_id="<1@x>", subject="lunch", when=1),
        msg(2, message_id="<2@x>", subject="Re: lunch", when=2),        # a reply: joins 1
        msg(3, message_id="<3@x>", subject="meeting", when=3),
        msg(4, message_id="<4@x>", subject="meeting", when=4),          # two originals: a new dummy
        msg(5, message_id="<5@x>", subject="Re: meeting", when=5),      # then joins the dummy
        msg(6, message_id="<6@x>", subject="[fwd: news]", when=6),
        msg(7, message_id="<7@x>", subject="news", when=7),             # the original holds the table
        msg(8, message_id="<8@x>", subject="", when=8),                 # empty subjects stay apart
        msg(9, message_id="<9@x>", subject="", when=9),
    ]
    assert render(references(messages)) == "(1 2)((3)(4)(5))(7 6)(8)(9)"


def test_references_subject_grouping_with_dummies() -> None:
    messages = [
        msg(1, message_id="<1@x>", in_reply_to="<gone@x>", subject="Re: x", when=1),
        msg(2, message_id="<2@x>", in_reply_to="<gone@x>", subject="Re: x", when=2),
        msg(3, message_id="<3@x>", in_reply_to="<lost@x>", subject="Re: x", when=3),
        msg(4, message_id="<4@x>", in_reply_to="<lost@x>", subject="x", when=4),
        msg(5, message_id="<5@x>", subject="x", when=0),
    ]
    # the first dummy holds the subject; the second's children and 5 join it
    assert render(references(messages)) == "((5)(1)(2)(3)(4))"


def test_references_siblings_sorted_by_sent_date_then_sequence() -> None:
    messages = [
        msg(1, message_id="<1@x>", subject="p", date="Mon, 1 Jan 2024 10:00:00 +0000"),
        msg(2, message_id="<2@x>", in_reply_to="<1@x>", subject="q", date="Mon, 1 Jan 2024 12:00:00 +0000"),
        msg(3, message_id="<3@x>", in_reply_to="<1@x>", subject="r", date="Mon, 1 Jan 2024 11:00:00 +0000"),
        msg(4, message_id="<4@x>", in_reply_to="<1@x>", subject="s", date="Mon, 1 Jan 2024 11:00:00 +0000"),
        msg(5, message_id="<5@x>", subject="t", date="Mon, 1 Jan 2024 09:00:00 +0000"),
    ]
    assert render(references(messages)) == "(5)(1 (3)(4)(2))"


def test_thread_response_grammar() -> None:  # the RFC 5256 §4 example
    def node(n: int, *children: Thread) -> Thread:
        return Thread(msg(n), list(children))
    tree = [node(2), node(3, node(6, node(4, node(23)), node(44, node(7, node(96)))))]
    assert thread_response(tree) == b"* THREAD (2)(3 6 (4 23)(44 7 96))\r\n"
    assert thread_response([Thread(None, [node(1), node(2, node(3))])]) == b"* THREAD ((1)(2 3))\r\n"
    assert thread_response([]) == b"* THREAD\r\n"


def test_uid_numbers_are_named() -> None:
    messages = [msg(1, uid=101, message_id="<1@x>", subject="a"), msg(2, uid=205, in_reply_to="<1@x>", subject="b")]
    assert render(references(messages)) == "(101 205)"
    assert render(ordered_subject(messages)) == "(101)(205)"


def test_a_long_thread_does_not_recurse() -> None:
    count = 5000
    messages = [msg(1, message_id="<0@x>", subject="deep")]
    messages += [msg(n + 1, message_id=f"<{n}@x>", in_reply_to=f"<{n - 1}@x>", subject="Re: deep")
                 for n in range(1, count)]
    started = time.monotonic()
    line = thread_response(references(messages))
    assert line == ("* THREAD (" + " ".join(str(n) for n in range(1, count + 1)) + ")\r\n").encode()
    assert time.monotonic() - started < 10


# Properties -------------------------------------------------------------------------------------

_IDS = st.sampled_from(["<a@x>", "<b@x>", "<c@x>", "<d@x>", "<e@x>", "junk", ""])
_SUBJECTS = st.sampled_from(["x", "Re: x", "[fwd: x]", "y", "Fwd: y", "", "[l] x", "x (fwd)"])


@st.composite
def _mailboxes(draw) -> list[Sortable]:
    size = draw(st.integers(0, 12))
    return [msg(n, when=draw(st.integers(0, 3)), message_id=draw(_IDS), subject=draw(_SUBJECTS),
                in_reply_to=" ".join(draw(st.lists(_IDS, max_size=2))),
                refs=" ".join(draw(st.lists(_IDS, max_size=4))),
                date=draw(st.sampled_from(["", "Mon, 1 Jan 2024 10:00:00 +0000", "Mon, 1 Jan 2024 10:00:00 +0100"])))
            for n in range(1, size + 1)]


_THREAD_TOKEN = re.compile(r"\(|\)| |[1-9][0-9]*")


def _thread_list(text: str, position: int) -> int:
    """RFC 5256 §4: thread-list = "(" (thread-members / thread-nested) ")"; returns the end."""
    assert text[position] == "(", text
    position += 1
    if text[position] == "(":
        nested = 0
        while text[position] == "(":
            position = _thread_list(text, position)
            nested += 1
        assert nested >= 2, text  # thread-nested = 2*thread-list
    else:
        while True:
            number = re.match(r"[1-9][0-9]*", text[position:])
            assert number, text
            position += number.end()
            if text[position] == ")":
                break
            assert text[position] == " ", text
            position += 1
            if text[position] == "(":
                nested = 0
                while text[position] == "(":
                    position = _thread_list(text, position)
                    nested += 1
                assert nested >= 2, text
                break
    assert text[position] == ")", text
    return position + 1


@settings(max_examples=400, deadline=None)
@given(_mailboxes(), st.booleans())
def test_threads_are_well_formed_and_name_each_message_once(messages: list[Sortable], by_references: bool) -> None:
    line = thread_response(references(messages) if by_references else ordered_subject(messages)).decode()
    assert line.endswith("\r\n")
    body = line[len("* THREAD"):-2]
    position = 1 if body else 0
    while position < len(body):
        position = _thread_list(body, position)
    assert sorted(int(n) for n in re.findall(r"[0-9]+", body)) == [m.number for m in messages]


@settings(max_examples=200, deadline=None)
@given(_mailboxes(), st.lists(st.sampled_from(["ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",
                                              "DISPLAYFROM", "DISPLAYTO"]), min_size=1, max_size=3),
       st.booleans())
def test_sort_is_a_permutation(messages: list[Sortable], keys: list[str], reverse: bool) -> None:
    criteria = tuple(Criterion(key, reverse) for key in keys)
    assert sorted(numbers(sort_messages(messages, criteria))) == [m.number for m in messages]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("[]():fwdFWDreRE x\t=?"), max_size=40))
def test_base_subject_never_raises_and_is_trimmed(subject: str) -> None:
    base, reply = base_subject(subject)
    assert base == base.strip(" ") and reply in (True, False)


# Over real sockets ------------------------------------------------------------------------------

def _fill(client: imaplib.IMAP4, mailbox: str, messages: list[bytes]) -> None:
    assert client.create(mailbox)[0] == "OK"
    for n, data in enumerate(messages):
        arrival = 1_700_000_000 + 3600 * (len(messages) - n)  # the reverse of the APPEND order
        assert client.append(mailbox, "", imaplib.Time2Internaldate(arrival), data)[0] == "OK"
    assert client.select(mailbox)[0] == "OK"


def _mail(message_id: str, subject: str, sender: str, date: str, *extra: str, body: str = "text\r\n") -> bytes:
    lines = [f"From: {sender}", "To: alice@example.test", f"Subject: {subject}", f"Date: {date}",
             f"Message-ID: <{message_id}@remote.test>", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


THREAD_MAIL = [
    _mail("one", "Plans", "Carol <carol@remote.test>", "Mon, 1 Jan 2024 10:00:00 +0000"),
    _mail("two", "Re: Plans", "alice@example.test", "Mon, 1 Jan 2024 11:00:00 +0000",
          "In-Reply-To: <one@remote.test>", "References: <one@remote.test>"),
    _mail("three", "Unrelated", "Bob <bob@remote.test>", "Mon, 1 Jan 2024 09:00:00 +0000", body="x" * 500),
    _mail("four", "Re: Plans", "dave@remote.test", "Mon, 1 Jan 2024 12:00:00 +0000",
          "In-Reply-To: <one@remote.test>",
          "References: <one@remote.test>\r\n <two@remote.test>"),  # folded, and the reply is to two
    _mail("five", "=?utf-8?q?Re=3A_Unrelated?=", "Eve <eve@remote.test>", "Mon, 1 Jan 2024 08:00:00 +0000"),
]


@pytest.fixture
def imap(server):
    client = server.imap()
    mailbox = f"Sort-{uuid.uuid4().hex[:10]}"
    _fill(client, mailbox, THREAD_MAIL)
    yield client
    client.logout()


def _uids(client: imaplib.IMAP4) -> list[int]:
    typ, data = client.uid("SEARCH", "ALL")
    assert typ == "OK"
    return [int(n) for n in data[0].split()]


def test_uid_sort_and_sort_over_imap(imap) -> None:
    uids = _uids(imap)
    typ, data = imap.uid("SORT", "(SUBJECT REVERSE DATE)", "UTF-8", "ALL")
    assert typ == "OK"
    # Plans: four, two, one (newest first); Unrelated: three then five (five is older: reverse date)
    assert [int(n) for n in data[0].split()] == [uids[3], uids[1], uids[0], uids[2], uids[4]]
    typ, data = imap.sort("(ARRIVAL)", "US-ASCII", "ALL")
    assert typ == "OK" and data == [b"5 4 3 2 1"]
    typ, data = imap.sort("(REVERSE SIZE)", "UTF-8", "FROM", "bob")
    assert typ == "OK" and data == [b"3"]
    typ, data = imap.sort("(FROM)", '"UTF-8"', "NOT", "FROM", "alice")
    assert typ == "OK" and data == [b"3 1 4 5"]
    typ, data = imap.sort("(DISPLAYFROM)", "UTF-8", "ALL")
    assert typ == "OK" and data == [b"2 3 1 4 5"]  # alice@example.test, Bob, Carol, dave@..., Eve
    typ, data = imap.sort("(DATE)", "UTF-8", "MODSEQ", "1")  # RFC 7162 §3.1.5: the highest modseq
    assert typ == "OK" and re.fullmatch(rb"5 3 1 2 4 \(MODSEQ [1-9][0-9]*\)", data[0]), data
    typ, data = imap.sort("(DATE)", "UTF-8", "SUBJECT", "nothing-matches-this")
    assert typ == "OK" and data[0] in (None, b"")  # "* SORT" alone


def test_thread_over_imap(imap) -> None:
    uids = _uids(imap)
    typ, data = imap.thread("REFERENCES", "UTF-8", "ALL")
    assert typ == "OK"
    assert data == [b"(3 5)(1 2 4)"]  # five's subject is a reply: it joins three by subject
    typ, data = imap.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")
    assert typ == "OK"
    assert data == [b"(%d %d)(%d (%d)(%d))" % (uids[4], uids[2], uids[0], uids[1], uids[3])]
    typ, data = imap.thread("REFERENCES", "UTF-8", "SUBJECT", "plans", "NOT", "FROM", "alice")
    assert typ == "OK" and data == [b"(1 4)"]  # the parent of four is not among the results


@pytest.mark.parametrize("command, args, status", [
    ("SORT", ("(NAME)", "UTF-8", "ALL"), "BAD"),
    ("SORT", ("()", "UTF-8", "ALL"), "BAD"),
    ("SORT", ("(REVERSE)", "UTF-8", "ALL"), "BAD"),
    ("SORT", ("(DATE)", "ALL"), "BAD"),  # the charset is mandatory
    ("SORT", ("(DATE)", "UTF-8", "BOGUS"), "BAD"),
    ("SORT", ("(DATE)", "KOI8-R", "ALL"), "NO"),
    ("THREAD", ("JWZ", "UTF-8", "ALL"), "BAD"),
    ("THREAD", ("REFERENCES", "ALL"), "BAD"),
    ("THREAD", ("REFERENCES", "ISO-2022-JP", "ALL"), "NO"),
])
def test_errors_over_imap(imap, command: str, args: tuple, status: str) -> None:
    tag = imap._new_tag().decode()
    imap.send(f"{tag} {command} {' '.join(args)}\r\n".encode())
    while True:
        line = imap.readline()
        if line.startswith(tag.encode()):
            break
    assert line.split()[1].decode() == status, line
    if status == "NO":
        assert b"[BADCHARSET (US-ASCII UTF-8)]" in line


def test_sort_finds_mail_delivered_over_smtp(server) -> None:
    marker = uuid.uuid4().hex
    with server.smtp() as smtp:
        for n, sender in enumerate(("zoe@remote.test", "adam@remote.test")):
            smtp.sendmail(sender, [USERS[1]], _mail(f"{marker}.{n}", f"{marker} {n}", sender,
                                                   "Tue, 2 Jan 2024 10:00:00 +0000"))
    client = server.imap(USERS[1])
    try:
        assert client.select("INBOX")[0] == "OK"
        typ, data = client.uid("SORT", "(FROM)", "UTF-8", "SUBJECT", marker)
        assert typ == "OK"
        found = [int(n) for n in data[0].split()]
        typ, plain = client.uid("SEARCH", "SUBJECT", marker)
        assert sorted(found) == sorted(int(n) for n in plain[0].split()) and len(found) == 2
        assert found[0] > found[1]  # adam, delivered second, sorts first
        typ, data = client.uid("THREAD", "REFERENCES", "UTF-8", "SUBJECT", marker)
        assert typ == "OK" and data == [b"(%d)(%d)" % (found[1], found[0])]  # same sent date: by sequence
    finally:
        client.logout()
