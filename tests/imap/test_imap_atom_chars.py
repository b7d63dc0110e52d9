"""Characters that are part of an atom: "~" not before "{", "]", "}", "[" outside a section (issue 10, item 3).

RFC 9051 §9: ATOM-CHAR is any CHAR but atom-specials, and ASTRING-CHAR adds "]";
"~" starts a literal8 only as "~{" (RFC 3516 §4.3) and "[" opens a section only
after BODY, BINARY and their .PEEK/.SIZE forms. Before, ``LIST "" ~foo`` and
``SELECT ~foo`` answered "BAD bad literal", ``SELECT foo]`` "BAD unexpected ']'",
``SELECT a[b`` "BAD missing ']'" and ``SELECT a}b`` "BAD empty atom".

Dovecot 2.3.19 (Maildir, "." delimiter; timings cut), command and reply::

    LIST "" ~foo        OK List completed
    SELECT ~foo         NO [CANNOT] Invalid mailbox name: Begins with '~'
    LIST "" ~{3}        BAD Error in IMAP command LIST: literal8 not allowed here
    SELECT foo]         NO Mailbox doesn't exist: foo]
    SELECT a[b          NO Mailbox doesn't exist: a[b
    SELECT a}b          NO Mailbox doesn't exist: a}b
    CREATE x]y          OK Create completed     (likewise a[b, a}b)
    LIST "" a[*         * LIST (\\HasNoChildren) "." a[b
    SELECT a{3}         BAD Error in IMAP command SELECT: Invalid characters in atom
    a}b NOOP            a}b OK NOOP completed.
    a]b NOOP            * BAD Error in IMAP command received by server.

postar differs where it says so: it takes a mailbox name starting with "~"
(Dovecot refuses it because "~" means a home directory in its mail paths;
postar's names are rows in its store, and RFC 9051 §5.1 reserves no such
prefix), so SELECT of one not there is NO [NONEXISTENT]; it takes "]" in a tag
as the grammar does (tag = any ASTRING-CHAR but "+"); it takes a literal8 where
any string goes (Dovecot only in APPEND); before a "{n}" at the end of a line
it asks for the literal and then answers BAD, where Dovecot answers at once.
"""

from __future__ import annotations

import pytest

from tests.imap.wire import Wire, append, quote, unique
from tests.imap.test_imap_mailboxes import listed


@pytest.fixture
def wire(server):
    return Wire.login(server)


def test_tilde_starts_an_atom_unless_a_brace_follows(wire):
    name = "~" + unique()
    assert wire.expect("OK", f'LIST "" {name}') == []
    wire.expect(f"NO [NONEXISTENT] Mailbox does not exist: {name}", f"SELECT {name}")
    wire.expect("NO [NONEXISTENT] Mailbox does not exist: ~", "SELECT ~")
    wire.expect("OK", f"CREATE {name}/sub")
    assert listed(wire.expect("OK", f'LIST "" {name}*')) == {name: {"\\HasChildren"},
                                                            f"{name}/sub": {"\\HasNoChildren"}}
    append(wire, name, b"Subject: tilde\r\n\r\nbody\r\n", flags="~flag")
    wire.expect("OK [READ-WRITE]", f"SELECT {name}")
    assert wire.expect("OK", "SEARCH KEYWORD ~flag") == [b"* SEARCH 1"]
    wire.expect("OK", "STORE 1 -FLAGS (~flag)")
    wire.expect("BAD bad literal", "SELECT ~{x}")  # "~{" starts a literal8, and this is a bad one
    wire.expect("OK [READ-WRITE]", f"SELECT ~{{{len(name)}+}}\r\n{name}")  # a good one
    wire.expect("OK", "NOOP")


@pytest.mark.parametrize("chars", ["x]y", "a}b", "a[b", "x[y]z", "]", "}", "[", "body[x"])
def test_brackets_and_braces_are_atom_chars_in_mailbox_names(wire, chars):
    name = unique() + chars
    wire.expect(f"NO [NONEXISTENT] Mailbox does not exist: {name}", f"SELECT {name}")
    wire.expect("OK", f"CREATE {name}")
    assert listed(wire.expect("OK", f'LIST "" {name}*')) == {name: {"\\HasNoChildren"}}
    wire.expect("OK [READ-WRITE]", f"SELECT {name}")
    wire.expect("OK", "CLOSE")
    wire.expect("OK", f"DELETE {quote(name)}")


def test_sections_still_hold_spaces_and_parentheses(wire):
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    append(wire, name, b"From: a@b.test\r\nTo: c@d.test\r\n\r\nbody\r\n")
    wire.expect("OK", f"SELECT {name}")
    [fetched] = wire.expect("OK", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.9> BINARY.SIZE[1])")
    assert fetched == b"* 1 FETCH (BODY[HEADER.FIELDS (FROM TO)]<0> {9}\r\nFrom: a@b BINARY.SIZE[1] 6)"
    wire.expect("BAD missing ']'", "FETCH 1 BODY.PEEK[HEADER")
    wire.expect("BAD FETCH: unknown fetch attribute", "FETCH 1 FLAGS]")


@pytest.mark.parametrize("tag", ["a}b", "a]b", "}", "~", "a[", "a~"])
def test_tags_take_every_astring_char_but_plus(wire, tag):
    wire.expect("OK", "NOOP", tag=tag)


def test_brace_inside_an_atom_ends_it(wire):
    # "{" is an atom-special: "a{3}" is the atom "a", then a literal: no mailbox name.
    wire.send(b"t1 SELECT a{3}\r\n")
    assert wire.line() == b"+ Ready for literal data\r\n"
    wire.send(b"abc\r\n")
    wire.until("t1", "BAD SELECT: ")
    wire.expect("OK", "NOOP")
