"""QUOTA (RFC 9208): one quota root "" per account, STORAGE in units of 1024 octets."""

from __future__ import annotations

from postar.imap.mailbox_names import encode_name, find
from postar.imap.parser import Command, astring, count, mailbox_name
from postar.imap.session import No, Result, Session

ROOT = '""'


async def _storage_line(session: Session) -> str | None:
    limit = session.context.config.limits.quota
    if not limit:
        return None
    used = await session.store.account_usage(session.account.id)
    return f"* QUOTA {ROOT} (STORAGE {used // 1024} {limit // 1024})\r\n"


async def do_getquotaroot(session: Session, command: Command) -> Result:
    """GETQUOTAROOT (RFC 9208 §4.3.2): every mailbox is under the account's root."""
    count(command.args, 1)
    box = await find(session, mailbox_name(command.args[0], session.utf8))
    limited = bool(session.context.config.limits.quota)
    session.send(b"* QUOTAROOT " + encode_name(session, box.name) + (b" " + ROOT.encode() if limited else b"")
                 + b"\r\n")
    line = await _storage_line(session)
    if line:
        session.send(line)
    return Result(text="GETQUOTAROOT completed")


async def do_getquota(session: Session, command: Command) -> Result:
    """GETQUOTA (RFC 9208 §4.3.1)."""
    count(command.args, 1)
    line = await _storage_line(session)
    if astring(command.args[0]) != "" or line is None:
        raise No("No such quota root", "NONEXISTENT")
    session.send(line)
    return Result(text="GETQUOTA completed")


async def do_setquota(session: Session, command: Command) -> Result:
    """SETQUOTA (RFC 9208 §4.3.3): quotas are set in the server's config."""
    raise No("Quotas are set by the administrator", "NOPERM")


async def check_room(session: Session, adding: int) -> None:
    """Raises NO [OVERQUOTA] when ``adding`` octets would go over the account's quota."""
    limit = session.context.config.limits.quota
    if limit and await session.store.account_usage(session.account.id) + adding > limit:
        raise No("Over quota", "OVERQUOTA")
