"""Commands on mailboxes (RFC 9051 §6.3, §6.4.1-2; RFC 8438, 4315, 3691); LIST and LSUB are in list_command."""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

from postar.imap.grammar import Literal, Token, format_sequence
from postar.imap.parser import (
    BadArguments, Command, atom, count, mailbox_name, number, parenthesized, sequence_set,
)
from postar.imap.selected import SelectedMailbox
from postar.imap.flags import normalize_flags
from postar.imap.mailbox_names import DELIMITER, encode_name, find
from postar.imap.quota_commands import check_room
from postar.imap.session import No, Result, Session
from postar.message import summarize_json
from postar.store import AlreadyExists, Mailbox, NotFound

_STATUS_ITEMS = ("MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE", "HIGHESTMODSEQ", "RECENT")


async def do_select(session: Session, command: Command) -> Result:
    """SELECT and EXAMINE (§6.3.2, §6.3.3), with CONDSTORE (RFC 7162 §3.1.8)."""
    count(command.args, 1, 2)
    name = mailbox_name(command.args[0], session.utf8)
    resync = None
    if len(command.args) == 2:
        options = parenthesized(command.args[1])
        words = [atom(t).upper() for t in options if not isinstance(t, list)]
        if "CONDSTORE" in words:
            session.enabled.add("CONDSTORE")
        if "QRESYNC" in words:
            if not session.qresync:
                raise BadArguments("QRESYNC must be enabled first (RFC 7162 §3.2.3)")
            resync = _qresync_parameters(options[words.index("QRESYNC") + 1:])
    if session.selected is not None:
        session.select(None)
        session.send("* OK [CLOSED] Previous mailbox closed\r\n")
    mailbox = await find(session, name)
    readonly = command.name == "EXAMINE"
    selected = SelectedMailbox(mailbox, *await session.views.load(session.store, mailbox), readonly=readonly)
    session.send(f"* {selected.exists} EXISTS\r\n")
    if "IMAP4REV2" not in session.enabled:
        session.send("* 0 RECENT\r\n")
        unseen = next((i + 1 for i, uid in enumerate(selected.uids) if "\\Seen" not in selected.flags[uid]), None)
        if unseen:
            session.send(f"* OK [UNSEEN {unseen}] First unseen\r\n")
    for line in selected.flags_responses():
        session.send(line)
    session.send(f"* OK [UIDVALIDITY {mailbox.uidvalidity}] UIDs valid\r\n")
    session.send(f"* OK [UIDNEXT {mailbox.uidnext}] Predicted next UID\r\n")
    session.send(f"* OK [HIGHESTMODSEQ {mailbox.highestmodseq}] Highest\r\n")
    session.select(selected)
    if resync is not None and resync[0] == mailbox.uidvalidity:
        await _resynchronize(session, selected, resync[1], resync[2])
    return Result(text=f"{command.name} completed", code="READ-ONLY" if readonly else "READ-WRITE")


def _qresync_parameters(rest: list) -> tuple[int, int, set[int] | None]:
    """(uidvalidity modseq [known-uids ...]) of SELECT (QRESYNC ...) (RFC 7162 §3.2.5)."""
    if not rest or not isinstance(rest[0], list) or len(rest[0]) < 2:
        raise BadArguments("expected QRESYNC (uidvalidity modseq [known-uids])")
    values = rest[0]
    known = None
    if len(values) > 2 and isinstance(values[2], str):
        uid_set = sequence_set(values[2])
        known = set(uid_set.resolve(max((high or low or 0) for low, high in uid_set.ranges)))
    return number(values[0]), number(values[1]), known


async def _resynchronize(session: Session, selected: SelectedMailbox, modseq: int, known: set[int] | None) -> None:
    """VANISHED (EARLIER) and FETCH for what changed since the client's modseq (§3.2.5.1)."""
    changes = await session.store.changes_since(selected.mailbox.id, modseq)
    vanished = [u for u in changes.vanished if known is None or u in known]
    if vanished:
        session.send(f"* VANISHED (EARLIER) {format_sequence(vanished)}\r\n")
    told = [state for state in changes.changed if selected.msn(state.uid) is not None]
    for line in selected.announce(state.flags for state in told):  # newer than the view's FLAGS
        session.send(line)
    for state in told:
        session.send(selected.fetch_flags_line(state, uid=True, modseq=True))


async def _create_parents(session: Session, name: str) -> None:
    parts = name.split(DELIMITER)
    for depth in range(1, len(parts)):
        parent = DELIMITER.join(parts[:depth])
        if await session.store.find_mailbox(session.account.id, parent) is None:
            await session.store.create_mailbox(session.account.id, parent)


async def do_create(session: Session, command: Command) -> Result:
    """CREATE (§6.3.4): superior names are made too."""
    count(command.args, 1, 2)
    name = mailbox_name(command.args[0], session.utf8)
    if name == "INBOX":
        raise No("INBOX always exists", "ALREADYEXISTS")
    await _create_parents(session, name)
    try:
        await session.store.create_mailbox(session.account.id, name)
    except AlreadyExists:
        raise No(f"Mailbox exists already: {name}", "ALREADYEXISTS") from None
    return Result(text="CREATE completed")


async def do_delete(session: Session, command: Command) -> Result:
    """DELETE (§6.3.5): not INBOX, not a mailbox with children (as Dovecot)."""
    count(command.args, 1)
    name = mailbox_name(command.args[0], session.utf8)
    if name == "INBOX":
        raise No("INBOX cannot be deleted", "CANNOT")
    await find(session, name)
    boxes = await session.store.list_mailboxes(session.account.id)
    if any(b.name.startswith(name + DELIMITER) for b in boxes):
        raise No("Mailbox has children, delete them first", "HASCHILDREN")  # RFC 9051 §7.1
    if session.selected is not None and session.selected.mailbox.name == name:
        session.select(None)
    await session.store.delete_mailbox(session.account.id, name)
    return Result(text="DELETE completed")


async def do_rename(session: Session, command: Command) -> Result:
    """RENAME (§6.3.6): children follow; INBOX's messages move to the new name."""
    count(command.args, 2)
    old = mailbox_name(command.args[0], session.utf8)
    new = mailbox_name(command.args[1], session.utf8)
    await find(session, old)
    if new == "INBOX" or new.startswith(old + DELIMITER):
        raise No(f"Cannot rename to {new}", "CANNOT")
    await _create_parents(session, new)
    try:
        await session.store.rename_mailbox(session.account.id, old, new)
    except AlreadyExists:
        raise No(f"Mailbox exists already: {new}", "ALREADYEXISTS") from None
    return Result(text="RENAME completed")


async def do_subscribe(session: Session, command: Command) -> Result:
    """SUBSCRIBE and UNSUBSCRIBE (§6.3.7, §6.3.8)."""
    count(command.args, 1)
    name = mailbox_name(command.args[0], session.utf8)
    try:
        await session.store.set_subscribed(session.account.id, name, command.name == "SUBSCRIBE")
    except NotFound:
        raise No(f"Mailbox does not exist: {name}", "NONEXISTENT") from None
    return Result(text=f"{command.name} completed")


def status_items(token: Token) -> tuple[str, ...]:
    """The items of a STATUS list (§6.3.11), upper case; BAD for none or an unknown one."""
    items = tuple(atom(t).upper() for t in parenthesized(token))
    if not items or any(i not in _STATUS_ITEMS for i in items):
        raise BadArguments("unknown STATUS item")
    return items


async def status_line(session: Session, box: Mailbox, items: tuple[str, ...]) -> bytes:
    status = await session.store.mailbox_status(box.id)
    values = {"MESSAGES": status.messages, "UIDNEXT": status.uidnext, "UIDVALIDITY": status.uidvalidity,
              "UNSEEN": status.unseen, "DELETED": status.deleted, "SIZE": status.size,
              "HIGHESTMODSEQ": status.highestmodseq, "RECENT": 0}
    pairs = " ".join(f"{item} {values[item]}" for item in items)
    return b"* STATUS " + encode_name(session, box.name) + f" ({pairs})\r\n".encode()


async def do_status(session: Session, command: Command) -> Result:
    """STATUS (§6.3.11), with SIZE (RFC 8438), DELETED and HIGHESTMODSEQ."""
    count(command.args, 2)
    box = await find(session, mailbox_name(command.args[0], session.utf8))
    items = status_items(command.args[1])
    line = await status_line(session, box, items)
    if "HIGHESTMODSEQ" in items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE enabling command
    session.send(line)
    return Result(text="STATUS completed")


def _message_literal(rest: list) -> bytes:
    """append-data: a literal, or UTF8 (literal8) after UTF8=ACCEPT (RFC 6855 §4)."""
    if len(rest) >= 2 and isinstance(rest[0], str) and rest[0].upper() == "UTF8" and isinstance(rest[1], list):
        rest.pop(0)
        inner = rest.pop(0)
        if len(inner) == 1 and isinstance(inner[0], Literal):
            return inner[0]
        raise BadArguments("expected UTF8 (literal)")
    if not rest or not isinstance(rest[0], Literal):
        raise BadArguments("expected a message literal")
    return rest.pop(0)


_DATE_TIME = re.compile(r"[ \d]\d-[A-Za-z]{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}")


def parse_date_time(text: str) -> float:
    """date-time (§9): "17-Jul-1996 02:44:25 -0700", the zone required."""
    if not _DATE_TIME.fullmatch(text):
        raise BadArguments(f"bad date-time {text[:40]!r}")
    try:
        day, month, rest = text.strip().split("-", 2)
        return parsedate_to_datetime(f"{day} {month} {rest}").timestamp()
    except (ValueError, TypeError):
        raise BadArguments(f"bad date-time {text!r}") from None


async def do_append(session: Session, command: Command) -> Result:
    """APPEND (§6.3.12), several messages at once (MULTIAPPEND, RFC 3502); APPENDUID (RFC 4315)."""
    if len(command.args) < 2:
        raise BadArguments("APPEND needs a mailbox and a message")
    name = mailbox_name(command.args[0], session.utf8)
    mailbox = await session.store.find_mailbox(session.account.id, name)
    if mailbox is None:
        raise No(f"Mailbox does not exist: {name}", "TRYCREATE")
    messages = []
    rest = list(command.args[1:])
    while rest:
        flags: tuple[str, ...] = ()
        date = time.time()
        if isinstance(rest[0], list):
            flags = normalize_flags(rest.pop(0))
        if rest and not isinstance(rest[0], (Literal, list)) and isinstance(rest[0], bytes):
            date = parse_date_time(rest.pop(0).decode("ascii", "replace"))
        data = _message_literal(rest)
        if len(data) > session.context.config.limits.message_size:
            raise No("Message too big", "TOOBIG")
        messages.append((data, flags, date))
    await check_room(session, sum(len(data) for data, _, _ in messages))
    uids = [await session.store.append(mailbox.id, data, flags, date, summarize_json(data))
            for data, flags, date in messages]
    uid_text = ",".join(map(str, uids))
    return Result(text="APPEND completed", code=f"APPENDUID {mailbox.uidvalidity} {uid_text}")


async def do_close(session: Session, command: Command) -> Result:
    """CLOSE (§6.4.1) expunges silently unless read-only; UNSELECT (RFC 3691) does not."""
    count(command.args, 0)
    selected = session.selected
    if command.name == "CLOSE" and selected is not None and not selected.readonly:
        await session.store.expunge(selected.mailbox.id)
    session.select(None)
    return Result(text=f"{command.name} completed")
