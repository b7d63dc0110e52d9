"""SORT, UID SORT, THREAD and UID THREAD (RFC 5256 §3; RFC 5957 DISPLAYFROM/DISPLAYTO).

Both commands search first, with the keys of ``search`` after a mandatory charset,
then order or group what matched with ``sort_thread``.
"""

from __future__ import annotations

import json

from postar.imap.message_commands import selected_of
from postar.imap.parser import BadArguments, Command
from postar.imap.search import BADCHARSET, Candidate, Scope, SearchRequest, matches, parse_search
from postar.imap.session import No, Result, Session
from postar.imap.sort_thread import (
    THREAD_ALGORITHMS, Sortable, ordered_subject, parse_sort_criteria, references, sort_messages, sort_response,
    thread_response,
)
from postar.message import header_fields, split_header


async def do_sort(session: Session, command: Command) -> Result:
    """SORT (sort-criteria) charset search-key... — selected state, RFC 5256 §3."""
    if len(command.args) < 3:
        raise BadArguments("SORT needs sort criteria, a charset and search keys")
    criteria = parse_sort_criteria(command.args[0])
    if isinstance(criteria, str):
        raise BadArguments(criteria)
    found, modseqs = await _search(session, command, with_references=False)
    ordered = sort_messages(found, criteria)
    session.send(sort_response([m.number for m in ordered], max(modseqs.values()) if modseqs else None))
    return Result(text=f"{command.name} completed")


async def do_thread(session: Session, command: Command) -> Result:
    """THREAD algorithm charset search-key... — selected state, RFC 5256 §3."""
    if len(command.args) < 3:
        raise BadArguments("THREAD needs an algorithm, a charset and search keys")
    algorithm = command.args[0].upper() if isinstance(command.args[0], str) else ""
    if algorithm not in THREAD_ALGORITHMS:
        raise BadArguments(f"unknown threading algorithm {str(command.args[0])[:40]}")
    found, _ = await _search(session, command, with_references=algorithm == "REFERENCES")
    threads = references(found) if algorithm == "REFERENCES" else ordered_subject(found)
    session.send(thread_response(threads))
    return Result(text=f"{command.name} completed")


def _request(command: Command) -> SearchRequest:
    """The charset and search keys after the first argument, read as SEARCH CHARSET would read them."""
    request = parse_search(["CHARSET", *command.args[1:]])
    if isinstance(request, str):
        if request.startswith("BADCHARSET"):
            raise No("Unsupported charset", BADCHARSET)
        raise BadArguments(request)
    return request


async def _search(session: Session, command: Command,
                  with_references: bool) -> tuple[list[Sortable], dict[int, int] | None]:
    """The matching messages; and their modseqs by number when a MODSEQ key asks for them."""
    request = _request(command)
    selected = selected_of(session)
    if request.uses_modseq:
        session.enable_condstore()
    infos = await session.store.message_infos(selected.mailbox.id, list(selected.uids))
    scope = Scope(selected.exists, selected.uids[-1] if selected.uids else 0, session.saved_search)
    found: list[Sortable] = []
    modseqs: dict[int, int] = {}
    for info in infos:
        content = None
        if request.needs_content:
            content = await session.store.message_content(selected.mailbox.id, info.uid)
        summary = json.loads(info.summary)
        candidate = Candidate(selected.msn(info.uid) or 0, info.uid, info.flags, info.internal_date, info.size,
                              info.modseq, summary, content, info.prefix_length)
        if not matches(request.key, candidate, scope):
            continue
        refs = ""
        if with_references:
            if content is None:
                content = await session.store.message_content(selected.mailbox.id, info.uid)
            refs = _references(content)
        number = info.uid if command.uid else candidate.msn
        envelope = summary.get("envelope", {}) if isinstance(summary, dict) else {}
        found.append(Sortable(candidate.msn, number, info.internal_date, info.size, envelope, refs))
        modseqs[number] = info.modseq
    return found, modseqs if request.uses_modseq else None


def _references(content: bytes | None) -> str:
    """The References field of the top-level header (RFC 5322 §3.6.4); not in the envelope."""
    if not content:
        return ""
    return header_fields(content[:split_header(content)], ("references",)).get("references", "")
