"""Every parser that reads client input, fuzzed: its own error or a result, never another exception.

The properties live in ``tests/parsers/fuzz.py`` (SMTP commands and parameters
with SASL, IMAP commands with literals, SEARCH, FETCH attributes and SORT
criteria, POP3, the MIME summary with FETCH and SEARCH over it, addresses, RFC
2047 words), each also checking that the parser's peak memory stays linear in
its input. Here each runs a modest number of examples so the suite stays quick;
``bench/fuzz_parsers.py --examples N`` runs them for as long as wanted.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.parsers.fuzz import PROPERTIES, check_imap, check_mime, check_smtp, nested

EXAMPLES = {"mime": 150, "address": 150}  # the slow ones; the others get 200


@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.name for p in PROPERTIES])
def test_parser_answers_any_input_with_its_own_error_or_a_result(prop):
    quick = settings(max_examples=EXAMPLES.get(prop.name, 200), deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    quick(given(prop.inputs)(prop.check))()


# The inputs of issue 17, item 7, always run, whatever hypothesis draws ------------------------

@pytest.mark.parametrize("data", [
    b"a LOGIN " + b"(" * 30000,
    b"a SEARCH " + b"(" * 30000 + b"ALL" + b")" * 30000,
    b"a SEARCH " + b"NOT " * 15000 + b"ALL",
    b"a SEARCH " + b"OR ALL " * 9000 + b"ALL",
    b"a SELECT ~foo",
    b"a FETCH 1 BODY[" + b"9" * 5000 + b"]",
    b"a FETCH 1 (" + b"(" * 200 + b"FLAGS" + b")" * 201,
])
def test_issue_inputs_for_imap(data):
    check_imap(data)


def test_issue_inputs_for_smtp():
    check_smtp(b"MAIL FROM:<" + b"(" * 30000 + b"@x>")
    check_smtp(b"RCPT TO:<@" + b"a,@" * 5000 + b"b:c@d> NOTIFY=" + b"SUCCESS," * 1000)


@pytest.mark.parametrize("kind", [0, 1], ids=["message/rfc822", "multipart"])
def test_issue_input_ten_thousand_nested_parts(kind):
    check_mime(nested(10000, kind))
