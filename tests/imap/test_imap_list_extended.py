"""LIST-EXTENDED options and RECURSIVEMATCH, and LSUB's "%" rule (issue 10, items 7 and 8).

RFC 5258 §3: an unknown selection or return option is BAD, and so is
RECURSIVEMATCH alone or with REMOTE only (§3.1); with (SUBSCRIBED
RECURSIVEMATCH) a name that matches the pattern but is not subscribed is listed
with CHILDINFO ("SUBSCRIBED") when a subscribed descendant is not listed itself
(§3.5 and example 9). RFC 3501 §6.3.9: LSUB with "%" lists an unsubscribed
parent of a deeper subscription as \\Noselect. Before, postar ignored unknown
options, answered RECURSIVEMATCH alone, never sent CHILDINFO and listed no
such parent.

Each test has a fresh account (postar subscribes its INBOX and special-use
mailboxes, left out of the comparisons here); the hierarchy is RFC 5258's example 9
in small: e2 and e2/m subscribed; f2 not, f2/b1 and f2/b2 are; z2 not, z2/b2
and z2/b22 are; q2/b2 subscribed, then deleted with q2; and lx/a/b subscribed
under lx and lx/a, which are not.

Dovecot 2.3.19 (Maildir: "." delimiter, parents not made by CREATE, so they
are \\NonExistent there), timings cut::

    LIST (imaptest) "" ""           BAD Error in IMAP command LIST: Unknown select options
    LIST (recursivematch) "" ""     BAD Error in IMAP command LIST: RECURSIVEMATCH must not be the only selection
    LIST (REMOTE RECURSIVEMATCH) "" "*"   (the same)
    LIST "" "" RETURN (imaptest)    BAD Error in IMAP command LIST: Unknown return options
    LIST "" "*" RETURN (STATUS)     BAD Error in IMAP command LIST: Unknown return options
    LIST "" "x" RETURN (STATUS (BOGUS))   BAD ... Invalid status item BOGUS
    LIST ("SUBSCRIBED") "" "x"      BAD ... List options contains non-atoms
    LSUB (SUBSCRIBED) "" "*"        BAD Error in IMAP command LSUB: Invalid reference
    LIST (SUBSCRIBED) "" ""         OK (nothing listed; so LIST "" (""))

    LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"
    * LIST (\\Subscribed) "." e2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\NonExistent) "." f2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\Subscribed) "." f2.b2
    * LIST (\\Subscribed) "." z2.b2
    * LIST (\\Subscribed) "." z2.b22
    * LIST (\\Subscribed \\NonExistent) "." q2.b2
    LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"
    * LIST (\\NonExistent) "." lx (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\Subscribed) "." e2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\NonExistent) "." f2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\NonExistent) "." z2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\NonExistent) "." q2 (CHILDINFO ("SUBSCRIBED"))
    LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"
    * LIST (\\Subscribed) "." lx.a.b
    * LIST (\\Subscribed) "." e2 (CHILDINFO ("SUBSCRIBED"))
    * LIST (\\Subscribed) "." e2.m   ... f2.b1, f2.b2, z2.b2, z2.b22, q2.b2 (\\Subscribed \\NonExistent)
    LIST (SUBSCRIBED RECURSIVEMATCH) "" "lx.%"    * LIST (\\NonExistent) "." lx.a (CHILDINFO ("SUBSCRIBED"))
    LIST (SUBSCRIBED) "" "l%"                     (nothing)
    LSUB "" "%"
    * LSUB (\\Noselect) "." lx
    * LSUB () "." e2
    * LSUB (\\Noselect) "." f2
    * LSUB (\\Noselect) "." z2
    * LSUB (\\Noselect) "." q2
    LSUB "" "*"       * LSUB () "." lx.a.b, e2, e2.m, f2.b1, f2.b2, z2.b2, z2.b22, q2.b2
    LSUB "" "lx.%"    * LSUB (\\Noselect) "." lx.a       (and so LSUB "lx." "%")

postar lists the same names with the same CHILDINFO, and differs where it
says so: its parents exist (CREATE makes them, RFC 9051 §6.3.4), so they carry
\\HasChildren rather than \\NonExistent, and it always sends \\HasChildren or
\\HasNoChildren and the special-use attributes; it writes the tag "CHILDINFO"
quoted, as RFC 5258's examples do (Dovecot as an atom; both are astrings); it
refuses RETURN after LSUB, which has none in RFC 3501 (Dovecot takes it); for
LIST (SUBSCRIBED RECURSIVEMATCH) "" ("lx" "lx/a") it lists both lx and lx/a,
as RFC 5258 §3.5 asks of every name matching some pattern, where Dovecot lists
lx/a only.
"""

from __future__ import annotations

import re

import pytest

from tests.imap.wire import Wire, new_user

DEFAULTS = {"INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"}
LINE = re.compile(rb'\* (?:LIST|LSUB) \(([^)]*)\) "/" "([^"]*)"(.*)')
CHILDINFO = ' ("CHILDINFO" ("SUBSCRIBED"))'


@pytest.fixture
def wire(server):
    """A fresh account holding the hierarchy of the module docstring."""
    wire = Wire.login(server, new_user(server))
    for name in ("e2/m", "f2/b1", "f2/b2", "z2/b2", "z2/b22", "q2/b2", "lx/a/b"):
        wire.expect("OK", f"CREATE {name}")  # and its parents
    for name in ("e2", "e2/m", "f2/b1", "f2/b2", "z2/b2", "z2/b22", "q2/b2", "lx/a/b"):
        wire.expect("OK", f"SUBSCRIBE {name}")
    wire.expect("OK", "DELETE q2/b2")  # the subscription stays (RFC 9051 §6.3.7)
    wire.expect("OK", "DELETE q2")
    return wire


def lines(untagged: list[bytes]) -> list[tuple[str, str, str]]:
    """(name, attributes, what follows the name) of each LIST or LSUB line, INBOX and the
    special-use mailboxes of a new account left out."""
    out = []
    for response in untagged:
        match = LINE.fullmatch(response)
        assert match, response
        if match[2].decode() not in DEFAULTS:
            out.append((match[2].decode(), match[1].decode(), match[3].decode()))
    return out


@pytest.mark.parametrize("command", [
    'LIST (imaptest) "" ""', 'LIST (imaptest) "" "%"', 'LIST (SUBSCRIBED imaptest) "" "*"',
    'LIST (recursivematch) "" ""', 'LIST (RECURSIVEMATCH) "" "*"', 'LIST (REMOTE RECURSIVEMATCH) "" "*"',
    'LIST "" "" RETURN (imaptest)', 'LIST "" "%" RETURN (imaptest)', 'LIST "" "*" RETURN (SUBSCRIBED imaptest)',
    'LIST "" "*" RETURN (STATUS)', 'LIST "" "*" RETURN (STATUS ())', 'LIST "" "nomatch" RETURN (STATUS (BOGUS))',
    'LIST ("SUBSCRIBED") "" "*"', 'LIST "" "*" RETURN', 'LIST "" "*" FOO ()', 'LIST "" ()',
    'LSUB (SUBSCRIBED) "" "*"', 'LSUB "" "*" RETURN (CHILDREN)', 'LSUB "" ("*")',
])
def test_unknown_or_lone_options_are_bad_and_the_session_goes_on(wire, command):
    wire.expect("BAD", command)
    wire.expect("OK", "NOOP")


def test_known_options_are_taken(wire):
    for command in ['LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"', 'LIST (SPECIAL-USE RECURSIVEMATCH) "" "%"',
                    'LIST (REMOTE SUBSCRIBED RECURSIVEMATCH) "" "*"', 'LIST (subscribed) "" "%" RETURN (children)',
                    'LIST () "" "%" RETURN ()', 'LIST (REMOTE) "" "%" RETURN (SUBSCRIBED CHILDREN SPECIAL-USE)']:
        wire.expect("OK", command)


def test_an_empty_pattern_is_special_in_the_basic_form_only(wire):
    assert wire.expect("OK", 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""']
    for command in ('LIST (SUBSCRIBED) "" ""', 'LIST "" ("")', 'LIST "" "" RETURN ()', 'LIST () "" ""'):
        assert wire.expect("OK", command) == [], command
    assert lines(wire.expect("OK", 'LIST "" ("" "e2")')) == [("e2", "\\HasChildren", "")]


def test_recursivematch_lists_an_unsubscribed_parent_with_childinfo(wire):
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "l%"')) == [
        ("lx", "\\HasChildren", CHILDINFO)]
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "lx/%"')) == [
        ("lx/a", "\\HasChildren", CHILDINFO)]
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "l*"')) == [
        ("lx/a/b", "\\HasNoChildren \\Subscribed", "")]
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("lx" "lx/a")')) == [
        ("lx", "\\HasChildren", CHILDINFO), ("lx/a", "\\HasChildren", CHILDINFO)]
    assert wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "lx%a"') == []
    assert wire.expect("OK", 'LIST (SUBSCRIBED) "" "l%"') == []  # no CHILDINFO without RECURSIVEMATCH
    assert wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "l%" RETURN (STATUS (MESSAGES))') == [
        b'* LIST (\\HasChildren) "/" "lx"' + CHILDINFO.encode(), b'* STATUS "lx" (MESSAGES 0)']


def test_recursivematch_as_in_rfc_5258_example_9(wire):
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"')) == [
        ("e2", "\\HasChildren \\Subscribed", CHILDINFO),
        ("f2", "\\HasChildren", CHILDINFO),  # f2/b1 is not listed
        ("f2/b2", "\\HasNoChildren \\Subscribed", ""),
        ("q2/b2", "\\NonExistent \\Subscribed", ""),  # q2 not: its only subscription is listed
        ("z2/b2", "\\HasNoChildren \\Subscribed", ""),  # z2 not: every subscription under it is
        ("z2/b22", "\\HasNoChildren \\Subscribed", "")]
    assert lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')) == [
        ("e2", "\\HasChildren \\Subscribed", CHILDINFO),
        ("f2", "\\HasChildren", CHILDINFO),
        ("lx", "\\HasChildren", CHILDINFO),
        ("q2", "\\NonExistent", CHILDINFO),
        ("z2", "\\HasChildren", CHILDINFO)]
    assert [name for name, _, info in lines(wire.expect("OK", 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"'))
            if not info] == ["e2/m", "f2/b1", "f2/b2", "lx/a/b", "q2/b2", "z2/b2", "z2/b22"]


def test_lsub_percent_lists_an_unsubscribed_parent_as_noselect(wire):
    assert lines(wire.expect("OK", 'LSUB "" "%"')) == [
        ("e2", "", ""), ("f2", "\\Noselect", ""), ("lx", "\\Noselect", ""), ("q2", "\\Noselect", ""),
        ("z2", "\\Noselect", "")]
    assert lines(wire.expect("OK", 'LSUB "" "lx/%"')) == [("lx/a", "\\Noselect", "")]
    assert lines(wire.expect("OK", 'LSUB "lx/" "%"')) == [("lx/a", "\\Noselect", "")]
    assert lines(wire.expect("OK", 'LSUB "" "l*"')) == [("lx/a/b", "", "")]  # listed itself: lx is not
    assert [name for name, _, _ in lines(wire.expect("OK", 'LSUB "" "*"'))] == [
        "e2", "e2/m", "f2/b1", "f2/b2", "lx/a/b", "q2/b2", "z2/b2", "z2/b22"]
    wire.expect("OK", "SUBSCRIBE lx")
    assert lines(wire.expect("OK", 'LSUB "" "l%"')) == [("lx", "", "")]
