"""postar.message.addresses.address_text: a field's addresses written back plainly, the text
SEARCH FROM, TO, CC and BCC look in (as Dovecot's message_address_write)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postar.message.addresses import address_text


@pytest.mark.parametrize("value, text", [
    ("user@x.test", "user@x.test"),
    ("User Name <user@x.test>", "User Name <user@x.test>"),
    ('"Quoted, Name" <user@x.test>', "Quoted, Name <user@x.test>"),
    ("user@x.test (comment)", "comment <user@x.test>"),
    ("(comment) user@x.test", "user@x.test"),
    ("user(comment)@x.test", "comment <user@x.test>"),
    ("user @ x.test", "user@x.test"),
    ('"user"@x.test', "user@x.test"),
    ("<@relay.test:user@x.test>", "user@x.test"),
    ("a@x.test, b@y.test", "a@x.test, b@y.test"),
    ("team: a@x.test, b@y.test;", "team: a@x.test, b@y.test;"),
    ("undisclosed:;, user@x.test", "undisclosed:;, user@x.test"),
    ("=?utf-8?q?J=C3=B6rg?= <user@x.test>", "=?utf-8?q?J=C3=B6rg?= <user@x.test>"),  # decoded by the caller
    ("local-only", "local-only"),
    ("", ""),
])
def test_address_text(value, text):
    assert address_text(value) == text


@given(st.text(max_size=200))
def test_address_text_takes_anything(value):
    assert isinstance(address_text(value), str)
