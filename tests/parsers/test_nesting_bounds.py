"""Nesting is bounded on every recursive path (issue 17, item 7), without a socket.

IMAP lists stop at ``grammar.MAX_LIST_DEPTH`` (100) with a ParseError, so the
command is Invalid with its tag and gets BAD; chains of NOT and OR, which need no
list, stop at the search parser's own bound. A message stops at
``message.MAX_DEPTH`` (100) levels, the last one a text/plain leaf holding the
deeper parts' bytes, and at ``message.MAX_PARTS`` parts; BODYSTRUCTURE,
BODY[section] and SEARCH BODY over such a summary, or over a deeper one built by
hand, never recurse past it. tests/imap/test_imap_nesting.py does the same over
the wire.
"""

from __future__ import annotations

import json

import pytest

from postar.imap import fetch
from postar.imap.grammar import MAX_LIST_DEPTH, ParseError, tokenize
from postar.imap.parser import Invalid, parse_command
from postar.imap.search import Body, Candidate, Scope, matches, parse_search
from postar.message import MAX_DEPTH, MAX_PARTS, summarize, summarize_json
from tests.parsers.fuzz import nested

TOO_DEEP = f"lists nested more than {MAX_LIST_DEPTH} deep"


def list_depth(tokens: list) -> int:
    deepest, stack = 0, [(tokens, 0)]
    while stack:
        token, depth = stack.pop()
        if isinstance(token, list):
            deepest = max(deepest, depth)
            stack.extend((inner, depth + 1) for inner in token)
    return deepest


# IMAP lists and SEARCH --------------------------------------------------------------------------

def test_lists_nest_as_deep_as_the_bound():
    tokens = tokenize(b"(" * MAX_LIST_DEPTH + b"x" + b")" * MAX_LIST_DEPTH)
    assert list_depth(tokens) == MAX_LIST_DEPTH == 100


def test_one_list_deeper_is_a_parse_error():
    with pytest.raises(ParseError, match=TOO_DEEP):
        tokenize(b"(" * 101 + b")" * 101)


@pytest.mark.parametrize("line", [
    b"a LOGIN " + b"(" * 30000,                                   # before login: never closed
    b"a SEARCH " + b"(" * 30000 + b"ALL" + b")" * 30000,          # after: balanced
    b"a FETCH 1 " + b"(" * 101 + b"FLAGS" + b")" * 101,
    b"a APPEND INBOX {3+}\r\n(((" + b" (" * 200,                  # after a literal; the literal's "(" are data
])
def test_deep_lists_make_the_command_invalid_with_its_tag(line):
    assert parse_command(line) == Invalid("a", TOO_DEEP)


def test_parentheses_inside_a_literal_or_a_quoted_string_are_not_lists():
    command = parse_command(b'a LOGIN {300+}\r\n' + b"(" * 300 + b' "' + b"(" * 300 + b'"')
    assert command.args == [b"(" * 300, b"(" * 300]


@pytest.mark.parametrize("keys", [b"NOT " * 15000 + b"ALL", b"OR ALL " * 9000 + b"ALL",
                                  b"(" * 80 + b"ALL" + b")" * 80])
def test_search_criteria_nested_too_deeply_are_refused(keys):
    assert parse_search(tokenize(keys)) == "search criteria nested too deeply"


def test_search_criteria_within_the_bounds_parse():
    assert not isinstance(parse_search(tokenize(b"(" * 60 + b"NOT SEEN" + b")" * 60)), str)


# MIME: depth ----------------------------------------------------------------------------------------

def first_path(summary: dict) -> list[dict]:
    """The parts from the top down, following each first child or enclosed message."""
    path = [summary["part"]]
    while True:
        node = path[-1]
        if node.get("parts"):
            path.append(node["parts"][0])
        elif "message" in node:
            path.append(node["message"]["part"])
        else:
            return path


@pytest.mark.parametrize("kind, nesting", [(1, "multipart"), (0, "message")])
def test_ten_thousand_nested_parts_stop_at_the_hundredth_level_as_a_text_leaf(kind, nesting):
    data = nested(10000, kind)
    summary = summarize(data)
    path = first_path(summary)
    assert len(path) == MAX_DEPTH == 100
    assert all(part["type"] == nesting for part in path[:-1])
    leaf = path[-1]
    assert (leaf["type"], leaf["subtype"], leaf["params"], leaf["overflow"]) == \
        ("text", "plain", {"charset": "us-ascii"}, True)
    below = data[leaf["body"][0]:leaf["body"][1]]
    assert b"needle" in below and below.count(b"Content-Type:") > 9000  # the deeper parts, unparsed
    assert json.loads(summarize_json(data)) == summary


def test_bodystructure_of_the_hundred_levels():
    data = nested(10000, 1)
    structure = fetch.bodystructure(summarize(data)["part"], True)
    assert structure.startswith(b"(" * 100 + b'"TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" ')
    assert structure.endswith(b' "MIXED" ("BOUNDARY" "b0.") NIL NIL NIL)')
    messages = fetch.bodystructure(summarize(nested(10000, 0))["part"], False)
    assert messages.count(b'("MESSAGE" "RFC822"') == 99 and messages.count(b'("TEXT" "PLAIN"') == 1


def test_body_sections_at_and_past_the_last_level():
    data = nested(10000, 1)
    summary = summarize(data)
    leaf = first_path(summary)[-1]
    assert fetch.section(data, 0, summary, ".".join(["1"] * 99)) == data[leaf["body"][0]:leaf["body"][1]]
    assert fetch.section(data, 0, summary, ".".join(["1"] * 99) + ".MIME") == \
        b'Content-Type: multipart/mixed; boundary="b99."\r\n\r\n'
    assert fetch.section(data, 0, summary, ".".join(["1"] * 100)) == b""
    assert fetch.section(data, 0, summary, ".".join(["1"] * 10000)) == b""


@pytest.mark.parametrize("kind", [0, 1])
def test_search_body_reads_the_text_below_the_last_level(kind):
    data = nested(10000, kind)
    message = Candidate(msn=1, uid=1, flags=(), internal_date=0.0, size=len(data), modseq=1,
                        summary=summarize(data), content=data, prefix_length=0)
    scope = Scope(largest_msn=1, largest_uid=1)
    assert matches(Body("needle", with_header=False), message, scope)
    assert not matches(Body("haystack", with_header=False), message, scope)


# MIME: breadth, and summaries deeper than summarize makes ---------------------------------------------

def test_the_part_reaching_max_parts_takes_in_the_rest_of_its_parent():
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20000 + b"--b--\r\n"
    top = summarize(data)["part"]
    assert len(top["parts"]) == MAX_PARTS - 1 == 9999  # the message itself is the first part
    last = top["parts"][-1]
    assert last["body"][1] == top["body"][1]
    assert data[last["body"][0]:last["body"][1]].count(b"--b\r\n") == 20000 - 9999  # the parts not made
    assert fetch.bodystructure(top, True).count(b'("TEXT" "PLAIN"') == 9999


def test_a_summary_deeper_than_summarize_makes_is_cut_off_rather_than_recursed():
    leaf = {"type": "text", "subtype": "plain", "params": {}, "header": [0, 0], "body": [0, 6], "lines": 0}
    part = leaf
    for _ in range(5000):
        part = {"type": "multipart", "subtype": "mixed", "params": {}, "header": [0, 0], "body": [0, 6],
                "parts": [part]}
    structure = fetch.bodystructure(part, True)
    assert structure.startswith(b"(" * (MAX_DEPTH + 1) + b'"TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0')
    message = Candidate(msn=1, uid=1, flags=(), internal_date=0.0, size=6, modseq=1,
                        summary={"part": part}, content=b"needle", prefix_length=0)
    assert not matches(Body("needle", with_header=False), message, Scope(1, 1))


def test_part_numbers_past_32_bits_are_no_section():
    assert fetch.parse_section("9" * 5000) is None  # int() of it would raise (4300 digits at most)
    assert fetch.parse_fetch_attribute("BODY[" + "9" * 5000 + "]") is None
    assert fetch.parse_section("4294967295.TEXT") == fetch.Section((4294967295,), "TEXT")
