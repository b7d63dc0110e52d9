"""Commands on the messages of the selected mailbox (RFC 9051 §6.4; RFC 4315, 6851, 7162)."""

from __future__ import annotations

import bisect
import json
import time

from postar.imap import fetch
from postar.imap.flags import normalize_flags
from postar.imap.grammar import SequenceSet, format_sequence
from postar.imap.parser import BadArguments, Command, atom, count, mailbox_name, number, parenthesized, sequence_set
from postar.imap.selected import SelectedMailbox, flag_list
from postar.imap.session import No, Result, Session
from postar.store import FlagMode, MessageInfo, MessageState

_FLAG_MODES = {"FLAGS": FlagMode.SET, "+FLAGS": FlagMode.ADD, "-FLAGS": FlagMode.REMOVE}


def selected_of(session: Session) -> SelectedMailbox:
    if session.selected is None:
        raise No("No mailbox selected")
    return session.selected


def resolve(session: Session, seqset: SequenceSet, uid_mode: bool) -> list[int]:
    """The UIDs a sequence set names in the selected mailbox, ascending."""
    selected = selected_of(session)
    if seqset.saved:
        saved = session.saved_search or set()
        return [u for u in selected.uids if u in saved]
    uids = selected.uids
    if uid_mode:
        largest = uids[-1] if uids else 0
        if len(seqset.ranges) == 1:  # one range, the usual case: a slice
            low, high = (largest if n is None else n for n in seqset.ranges[0])
            return uids[bisect.bisect_left(uids, min(low, high)):bisect.bisect_right(uids, max(low, high))]
        return [u for u in uids if seqset.contains(u, largest)]
    for low, high in seqset.ranges:
        if (low or 0) > selected.exists or (high or 0) > selected.exists or (selected.exists == 0):
            raise BadArguments("message sequence number out of range")
    if len(seqset.ranges) == 1:
        low, high = (selected.exists if n is None else n for n in seqset.ranges[0])
        return uids[min(low, high) - 1:max(low, high)]
    return [selected.uid_at(n) for n in seqset.resolve(selected.exists)]


def _internal_date(timestamp: float) -> str:
    return time.strftime('"%d-%b-%Y %H:%M:%S +0000"', time.gmtime(timestamp))


def _literal(data: bytes, binary: bool = False) -> bytes:
    return (b"~" if binary and b"\0" in data else b"") + b"{%d}\r\n" % len(data) + data


def _fetch_attributes(token) -> list[fetch.FetchAttribute]:
    tokens = token if isinstance(token, list) else [token]
    if not tokens:
        raise BadArguments("empty fetch attribute list")
    attrs: list[fetch.FetchAttribute] = []
    for item in tokens:
        text = atom(item)
        macro = fetch.expand_macro(text) if not isinstance(token, list) else None
        if macro is not None:
            attrs += macro
            continue
        attr = fetch.parse_fetch_attribute(text)
        if attr is None:
            raise BadArguments(f"unknown fetch attribute {text}")
        attrs.append(attr)
    return attrs


def _modifier(args: list, name: str) -> int | None:
    """A (CHANGEDSINCE n) or (UNCHANGEDSINCE n) modifier (RFC 7162 §3.1.3, §3.1.4)."""
    if not args:
        return None
    items = parenthesized(args[0])
    if len(items) != 2 or atom(items[0]).upper() != name:
        raise BadArguments(f"expected ({name} modseq)")
    return number(items[1])


async def do_fetch(session: Session, command: Command) -> Result:
    """FETCH and UID FETCH (§6.4.5), CHANGEDSINCE (RFC 7162 §3.1.4)."""
    count(command.args, 2, 3)
    selected = selected_of(session)
    uids = resolve(session, sequence_set(command.args[0]), command.uid)
    attrs = _fetch_attributes(command.args[1])
    changed_since, vanished = _fetch_modifiers(command.args[2:], command.uid, session.qresync)
    if changed_since is not None or any(a.name == "MODSEQ" for a in attrs):
        session.enable_condstore()
    # RFC 7162 §3.1.4, §3.2.4: with CONDSTORE on, every FETCH carries MODSEQ (and UID, as Dovecot)
    if (command.uid or session.condstore) and not any(a.name == "UID" for a in attrs):
        attrs.insert(0, fetch.FetchAttribute("UID"))
    if (changed_since is not None or session.condstore) and not any(a.name == "MODSEQ" for a in attrs):
        attrs.append(fetch.FetchAttribute("MODSEQ"))
    if vanished:
        await _report_vanished(session, selected, command.args[0], changed_since)
    if all(a.name in ("UID", "FLAGS") for a in attrs):
        _fetch_from_view(session, selected, uids, [a.name for a in attrs])
        return Result(text=f"{command.name} completed")
    infos = await _infos(session, selected, uids, attrs)
    marks_seen = not selected.readonly and any(
        a.section is not None and not a.peek and a.name != "BINARY.SIZE" for a in attrs)
    if marks_seen or any(a.name == "FLAGS" for a in attrs):  # the store's flags may be newer than the view's
        for line in selected.announce({info.flags for info in infos}):
            session.send(line)
    failed = ""
    for info in infos:
        if changed_since is not None and info.modseq <= changed_since:
            continue
        if marks_seen and "\\Seen" not in info.flags:
            updated, _ = await session.store.update_flags(selected.mailbox.id, [info.uid], ("\\Seen",), FlagMode.ADD)
            if updated:
                info = _with_state(info, updated[0])
                selected.set_flags(info.uid, info.flags)
                if not any(a.name == "FLAGS" for a in attrs):
                    attrs.append(fetch.FetchAttribute("FLAGS"))
        items, problem = await _render(session, info, attrs)
        failed = failed or problem
        msn = selected.msn(info.uid)
        session.send(f"* {msn} FETCH (".encode() + b" ".join(items) + b")\r\n")
    if failed:
        raise No(failed, "UNKNOWN-CTE")
    return Result(text=f"{command.name} completed")


_STATE_ONLY = frozenset({"UID", "FLAGS", "MODSEQ"})


def _fetch_from_view(session: Session, selected: SelectedMailbox, uids: list[int], names: list[str]) -> None:
    """UID and FLAGS as the session's view knows them: what clients ask of a whole mailbox
    to resynchronize, answered without the store. Changes other sessions made since the
    view was refreshed follow as untagged FETCH right after (§7.4.1 allows that order)."""
    flags = selected.flags
    # Most messages share a few flag sets: render each once, as the line's tail.
    tails = {flag_set: f"FLAGS ({' '.join(flag_set)}))\r\n" for flag_set in set(flags[uid] for uid in uids)}
    if "FLAGS" in names:
        for line in selected.announce(tails):  # told already when they reached the view; cheap to make sure
            session.send(line)
    numbers = range(1, len(uids) + 1) if len(uids) == selected.exists else [selected.msn(u) for u in uids]
    if "FLAGS" not in names:
        lines = [f"* {n} FETCH (UID {uid})\r\n" for n, uid in zip(numbers, uids)]
    elif "UID" in names:
        lines = [f"* {n} FETCH (UID {uid} {tails[flags[uid]]}" for n, uid in zip(numbers, uids)]
    else:
        lines = [f"* {n} FETCH ({tails[flags[uid]]}" for n, uid in zip(numbers, uids)]
    session.send("".join(lines))

async def _infos(session: Session, selected: SelectedMailbox, uids: list[int],
                 attrs: list[fetch.FetchAttribute]) -> list[MessageInfo]:
    """What FETCH needs of each message; for UID, FLAGS and MODSEQ alone (what clients
    ask of a whole mailbox to resynchronize) one cheap scan instead of every summary."""
    if any(a.name not in _STATE_ONLY for a in attrs):
        return await session.store.message_infos(selected.mailbox.id, uids)
    wanted = set(uids)
    return [MessageInfo.of_state(s) for s in await session.store.message_states(selected.mailbox.id)
            if s.uid in wanted]


def _fetch_modifiers(args: list, uid: bool, qresync: bool) -> tuple[int | None, bool]:
    """(CHANGEDSINCE n [VANISHED]) of FETCH (RFC 7162 §3.1.4, §3.2.6)."""
    if not args:
        return None, False
    items = [atom(t).upper() for t in parenthesized(args[0])]
    if len(items) not in (2, 3) or items[0] != "CHANGEDSINCE":
        raise BadArguments("expected (CHANGEDSINCE modseq [VANISHED])")
    vanished = len(items) == 3
    if vanished and (items[2] != "VANISHED" or not uid or not qresync):
        raise BadArguments("VANISHED needs UID FETCH and QRESYNC enabled")
    return number(items[1]), vanished


async def _report_vanished(session: Session, selected: SelectedMailbox, uid_set, since: int) -> None:
    requested = sequence_set(uid_set)
    largest = selected.uidnext
    changes = await session.store.changes_since(selected.mailbox.id, since)
    gone = [u for u in changes.vanished if requested.contains(u, largest)]
    if gone:
        session.send(f"* VANISHED (EARLIER) {format_sequence(gone)}\r\n")


def _with_state(info: MessageInfo, state: MessageState) -> MessageInfo:
    return MessageInfo(info.uid, state.flags, state.modseq, info.size, info.internal_date, info.summary,
                       info.prefix_length)


async def _render(session: Session, info: MessageInfo, attrs: list[fetch.FetchAttribute]) -> tuple[list[bytes], str]:
    summary = json.loads(info.summary) if info.summary else {}
    content: bytes | None = None
    items: list[bytes] = []
    problem = ""
    for attr in attrs:
        name = attr.name
        if name == "UID":
            items.append(b"UID %d" % info.uid)
        elif name == "FLAGS":
            items.append(f"FLAGS {flag_list(info.flags)}".encode())
        elif name == "INTERNALDATE":
            items.append(b"INTERNALDATE " + _internal_date(info.internal_date).encode())
        elif name == "RFC822.SIZE":
            items.append(b"RFC822.SIZE %d" % info.size)
        elif name == "MODSEQ":
            items.append(b"MODSEQ (%d)" % info.modseq)
        elif name == "ENVELOPE":
            items.append(b"ENVELOPE " + fetch.envelope(summary["envelope"]))
        elif name in ("BODY", "BODYSTRUCTURE") and attr.section is None:
            items.append(name.encode() + b" " + fetch.bodystructure(summary["part"], name == "BODYSTRUCTURE"))
        else:
            if content is None:
                content = await session.store.message_content(session.selected.mailbox.id, info.uid) or b""
            if name.startswith("BINARY"):
                data = fetch.binary(content, info.prefix_length, summary, attr.section or "")
                if data is None:
                    problem = f"Unknown Content-Transfer-Encoding in {fetch.response_name(attr)}"
                    continue
                if name == "BINARY.SIZE":
                    items.append(fetch.response_name(attr).encode() + b" %d" % len(data))
                    continue
            else:
                data = fetch.section(content, info.prefix_length, summary, attr.section or "") or b""
            if attr.partial:
                data = fetch.partial(data, attr.partial[0], attr.partial[1])
            items.append(fetch.response_name(attr).encode() + b" " + _literal(data, name.startswith("BINARY")))
    return items, problem


async def do_store(session: Session, command: Command) -> Result:
    """STORE and UID STORE (§6.4.6), UNCHANGEDSINCE (RFC 7162 §3.1.3)."""
    args = list(command.args)
    if len(args) not in (3, 4):
        raise BadArguments("STORE needs a sequence set, an item and flags")
    selected = selected_of(session)
    if selected.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    uids = resolve(session, sequence_set(args.pop(0)), command.uid)
    unchanged_since = _modifier(args[:1], "UNCHANGEDSINCE") if len(args) == 3 else None
    if unchanged_since is not None:
        args.pop(0)
        session.enable_condstore()
    item = atom(args[0]).upper()
    silent = item.endswith(".SILENT")
    mode = _FLAG_MODES.get(item.removesuffix(".SILENT"))
    if mode is None:
        raise BadArguments(f"unknown STORE item {item}")
    flags = normalize_flags(args[1])
    updated, refused = await session.store.update_flags(selected.mailbox.id, uids, flags, mode, unchanged_since)
    for state in updated:  # the view's modseq stays: the refresh must still see others' changes
        selected.set_flags(state.uid, state.flags)
    changed = {s.uid: s for s in updated}
    if session.condstore and not silent:  # the unchanged ones are told with their modseq too
        wanted = set(uids) - set(changed) - set(refused)
        changed.update({s.uid: s for s in await session.store.message_states(selected.mailbox.id) if s.uid in wanted})
    for line in selected.announce(s.flags for s in changed.values()):  # even when .SILENT: the view has them
        session.send(line)
    for uid in uids:
        if uid in refused or selected.msn(uid) is None:
            continue
        state = changed.get(uid)
        if state is not None and silent and unchanged_since is None:
            continue
        if state is None:
            # With CONDSTORE, a UID the store had neither changed nor listed is gone: another
            # session expunged it after this view was refreshed (its EXPUNGE waits, §7.5.1). It has
            # no mod-sequence to show (RFC 7162 §3.1.1: at least 1), so it is not told; Dovecot is
            # silent about it too.
            if silent or session.condstore:
                continue
            state = MessageState(uid, selected.flags.get(uid, ()), 0)  # its modseq is not shown
        session.send(selected.fetch_flags_line(state, uid=command.uid or session.condstore,
                                               modseq=session.condstore))
    if refused:
        return Result(text="Conditional STORE failed", code=f"MODIFIED {format_sequence(refused)}")
    return Result(text=f"{command.name} completed")


async def do_copy(session: Session, command: Command) -> Result:
    """COPY, MOVE and their UID forms (§6.4.7, RFC 6851), with COPYUID (RFC 4315)."""
    count(command.args, 2)
    selected = selected_of(session)
    uids = resolve(session, sequence_set(command.args[0]), command.uid)
    moving = command.name.endswith("MOVE")
    if moving and selected.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    name = mailbox_name(command.args[1], session.utf8)
    target = await session.store.find_mailbox(session.account.id, name)
    if target is None:
        raise No(f"Mailbox does not exist: {name}", "TRYCREATE")
    pairs = await session.store.copy_messages(selected.mailbox.id, uids, target.id, move=moving)
    if not pairs:
        return Result(text=f"No messages {'moved' if moving else 'copied'}")
    copyuid = f"COPYUID {target.uidvalidity} {format_sequence([s for s, _ in pairs])} " \
              f"{format_sequence([d for _, d in pairs])}"
    if not moving:
        return Result(text="COPY completed", code=copyuid)
    session.send(f"* OK [{copyuid}] Moved\r\n")
    for line in selected.forget([s for s, _ in pairs], session.qresync):
        session.send(line)
    return Result(text="MOVE completed")


async def do_expunge(session: Session, command: Command) -> Result:
    """EXPUNGE (§6.4.3) and UID EXPUNGE (RFC 4315 §2.1)."""
    selected = selected_of(session)
    if command.uid:
        count(command.args, 1)
        uids: list[int] | None = resolve(session, sequence_set(command.args[0]), True)
    else:
        count(command.args, 0)
        uids = None
    if selected.readonly:
        raise No("Mailbox is read-only", "READ-ONLY")
    for line in selected.forget(await session.store.expunge(selected.mailbox.id, uids), session.qresync):
        session.send(line)
    return Result(text=f"{command.name} completed")

