"""Mailbox names as clients see them: "/" as the hierarchy delimiter, modified UTF-7
unless the client enabled UTF-8 (RFC 3501 §5.1.3, RFC 6855), and looking one up."""

from __future__ import annotations

from postar.imap.grammar import encode_mutf7, quoted
from postar.imap.session import No, Session
from postar.store import Mailbox

DELIMITER = "/"


def encode_name(session: Session, name: str) -> bytes:
    return quoted(name if session.utf8 else encode_mutf7(name))


async def find(session: Session, name: str) -> Mailbox:
    """The account's mailbox ``name``; NO [NONEXISTENT] when there is none."""
    mailbox = await session.store.find_mailbox(session.account.id, name)
    if mailbox is None:
        raise No(f"Mailbox does not exist: {name}", "NONEXISTENT")
    return mailbox
