"""SEARCH and UID SEARCH (RFC 9051 §6.4.4), with ESEARCH (RFC 4731), SAVE (RFC 5182)
and the MODSEQ key (RFC 7162 §3.1.5); the keys themselves are in ``search``."""

from __future__ import annotations

import json

from postar.imap.message_commands import selected_of
from postar.imap.parser import BadArguments, Command
from postar.imap.search import BADCHARSET, Candidate, Scope, esearch_response, matches, parse_search, saved_result, search_response
from postar.imap.session import No, Result, Session
from postar.store import MessageInfo


def _asks_to_save(args: list) -> bool:
    return (len(args) > 1 and isinstance(args[0], str) and args[0].upper() == "RETURN"
            and isinstance(args[1], list) and any(isinstance(t, str) and t.upper() == "SAVE" for t in args[1]))


async def do_search(session: Session, command: Command) -> Result:
    request = parse_search(command.args)
    if isinstance(request, str):
        if request.startswith("BADCHARSET"):
            if _asks_to_save(command.args):  # RFC 5182 §2.1: a SAVE answered NO empties "$"
                session.saved_search = set()
            raise No("Unsupported charset", BADCHARSET)
        raise BadArguments(request)
    selected = selected_of(session)
    if request.uses_modseq:
        session.enable_condstore()
    if request.needs_details:
        infos = await session.store.message_infos(selected.mailbox.id, list(selected.uids))
    else:  # flags and numbers only: one cheap scan, no summaries
        infos = [MessageInfo.of_state(s) for s in await session.store.message_states(selected.mailbox.id) if selected.msn(s.uid)]
    scope = Scope(selected.exists, selected.uids[-1] if selected.uids else 0, session.saved_search)
    found: list[int] = []
    modseqs: dict[int, int] = {}
    for info in infos:
        content = None
        if request.needs_content:
            content = await session.store.message_content(selected.mailbox.id, info.uid)
        candidate = Candidate(selected.msn(info.uid) or 0, info.uid, info.flags, info.internal_date, info.size,
                              info.modseq, json.loads(info.summary) if info.summary else {}, content,
                              info.prefix_length)
        if matches(request.key, candidate, scope):
            number = info.uid if command.uid else candidate.msn
            found.append(number)
            modseqs[number] = info.modseq
    if "SAVE" in request.options:
        numbers = saved_result(found, request.options)
        session.saved_search = numbers if command.uid else {selected.uid_at(n) for n in numbers}
    if request.options:
        session.send(esearch_response(command.tag, command.uid, found, request.options,
                                      modseqs if request.uses_modseq else None))
    else:
        highest = max(modseqs.values()) if request.uses_modseq and modseqs else None
        session.send(search_response(found, highest))
    return Result(text=f"{command.name} completed")
