"""The IMAP grammar and command parser: pure, total, fuzzed (RFC 9051 §9, RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postar.imap.grammar import (
    ParseError, decode_mutf7, encode_mutf7, format_sequence, literal_announced, parse_sequence_set, quoted,
    tokenize,
)
from postar.imap.parser import BadArguments, Command, Invalid, mailbox_name, parse_command


def test_command_with_atoms_strings_lists_and_a_literal():
    command = parse_command(b'a1 APPEND "Sent Items" (\\Seen) {5}\r\nhello')
    assert command == Command("a1", "APPEND", ["Sent Items".encode(), ["\\Seen"], b"hello"])


def test_uid_commands_are_named_with_their_verb():
    assert parse_command(b"7 uid fetch 1:* (FLAGS)") == Command("7", "UID FETCH", ["1:*", ["FLAGS"]])


def test_a_section_with_spaces_and_parens_stays_one_atom():
    command = parse_command(b"t FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100> UID)")
    assert command.args == ["1", ["BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.100>", "UID"]]


@pytest.mark.parametrize("line, args", [
    (b'a LIST "" ~foo', [b"", "~foo"]),  # "~" is an ATOM-CHAR unless "{" follows (issue 10, item 3)
    (b"a SELECT ~", ["~"]),
    (b"a SELECT ~{3}\r\nabc", [b"abc"]),  # literal8 (RFC 3516 §4.3)
    (b"a SELECT foo]", ["foo]"]),  # "]" is an ASTRING-CHAR
    (b"a SELECT a}b", ["a}b"]),  # "}" is an ATOM-CHAR
    (b"a SELECT a[b", ["a[b"]),  # "[" opens a section only after BODY, BINARY...
    (b"a CREATE a[b c]", ["a[b", "c]"]),
    (b"a FETCH 1 body.peek[header.fields (A B)]<0.5>", ["1", "body.peek[header.fields (A B)]<0.5>"]),
    (b"a FETCH 1 (BINARY.SIZE[1] BINARY[2]<0.1>)", ["1", ["BINARY.SIZE[1]", "BINARY[2]<0.1>"]]),
])
def test_atom_chars(line, args):
    assert parse_command(line).args == args


def test_tags_take_brackets_and_braces_but_not_plus():
    assert parse_command(b"a]b}~ NOOP") == Command("a]b}~", "NOOP")
    assert parse_command(b"a+ NOOP") == Invalid("*", "missing or bad tag")
    assert parse_command(b"a{ NOOP") == Invalid("*", "missing or bad tag")


@pytest.mark.parametrize("line, tag, reason", [
    (b"", "*", "missing or bad tag"),
    (b"+ x", "*", "missing or bad tag"),
    (b"a1", "*", "missing or bad tag"),
    (b"a1 ", "a1", "missing or bad command name"),
    (b'a1 LOGIN "unterminated', "a1", "unterminated quoted string"),
    (b"a1 FETCH 1 (FLAGS", "a1", "missing ')'"),
    (b"a1 FETCH 1 FLAGS)", "a1", "unexpected ')'"),
    (b"a1 APPEND INBOX {10}\r\nshort", "a1", "literal shorter than announced"),
    (b'a1 LOGIN "a\\x" b', "a1", "bad escape in quoted string"),
    (b"a1 UID", "a1", "UID needs a command"),
])
def test_bad_commands_become_invalid_with_a_reason(line, tag, reason):
    assert parse_command(line) == Invalid(tag, reason)


@given(st.binary(max_size=300))
def test_parse_command_never_raises(data):
    result = parse_command(data)
    assert isinstance(result, (Command, Invalid))


@given(st.binary(max_size=300))
def test_tokenize_raises_only_parse_errors(data):
    try:
        tokens = tokenize(data)
    except ParseError:
        return
    assert isinstance(tokens, list)


@pytest.mark.parametrize("line, announced", [
    (b"a APPEND INBOX {310}", (310, True)),
    (b"a APPEND INBOX {310+}", (310, False)),
    (b"a APPEND INBOX ~{7}", (7, True)),
    (b"a LOGIN {3} x", None),
    (b"a NOOP", None),
])
def test_literal_announced_at_the_end_of_a_line(line, announced):
    assert literal_announced(line) == announced


@pytest.mark.parametrize("name, encoded", [
    ("Entwürfe", "Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("A&B", "A&-B"),
    ("plain", "plain"),
])
def test_modified_utf7_examples(name, encoded):
    assert encode_mutf7(name) == encoded
    assert decode_mutf7(encoded) == name


@given(st.text(max_size=40))
def test_modified_utf7_round_trips(name):
    assert decode_mutf7(encode_mutf7(name)) == name


@pytest.mark.parametrize("bad", ["&Jjo", "&Jjo!-", "caf\u00e9"])
def test_bad_modified_utf7_is_refused(bad):
    assert decode_mutf7(bad) is None


def test_mailbox_names_are_normalized():
    assert mailbox_name("inbox", utf8=False) == "INBOX"
    assert mailbox_name("Inbox/Sub/", utf8=False) == "INBOX/Sub"
    assert mailbox_name("Entw&APw-rfe", utf8=False) == "Entwürfe"
    assert mailbox_name("Entwürfe".encode(), utf8=True) == "Entwürfe"
    for bad in ("a//b", "", "/"):
        with pytest.raises(BadArguments):
            mailbox_name(bad, utf8=False)


def test_sequence_sets():
    parsed = parse_sequence_set("1:3,7,9:*")
    assert parsed.resolve(10) == [1, 2, 3, 7, 9, 10]
    assert parsed.contains(10, 10) and not parsed.contains(8, 10)
    assert parse_sequence_set("*:4").resolve(6) == [4, 5, 6]
    assert parse_sequence_set("$").saved
    for bad in ("", "0", "1:", "a", "1,,2", "-1", "99999999999"):
        assert parse_sequence_set(bad) is None


@given(st.lists(st.integers(min_value=1, max_value=500), max_size=50))
def test_format_sequence_round_trips(numbers):
    ordered = sorted(set(numbers))
    text = format_sequence(ordered)
    assert (parse_sequence_set(text).resolve(500) if text else []) == ordered


def test_quoted_falls_back_to_a_literal():
    assert quoted('say "hi"\\') == b'"say \\"hi\\"\\\\"'
    assert quoted("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
