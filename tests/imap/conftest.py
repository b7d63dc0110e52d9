"""Every raw IMAP connection a test opened is closed after it, so a failing test cannot use
up the per-address connection limit of the shared server."""

from __future__ import annotations

import pytest

from tests.imap.wire import OPEN


@pytest.fixture(autouse=True)
def close_wires():
    """Close every Wire a test opened (the shared server allows 50 connections per address)."""
    yield
    while OPEN:
        OPEN.pop().close()
