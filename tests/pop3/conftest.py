"""Every raw POP3 connection a test opened is closed after it, so a failing test cannot
hold an account's maildrop lock or use up the shared server's per-address limit."""

from __future__ import annotations

import pytest

from tests.pop3.pop import OPEN


@pytest.fixture(autouse=True)
def close_pops():
    yield
    while OPEN:
        OPEN.pop().close()
