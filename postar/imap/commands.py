"""The IMAP command table: each command's handler and the states it is allowed in.

``updates``: after the command, tell the client about changes in the selected
mailbox; ``allows_expunge``: those updates may include expunges (RFC 9051
§7.5.1 forbids them during FETCH, STORE and SEARCH; the UID forms allow them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from postar.imap import connection_commands as c
from postar.imap import list_command as li
from postar.imap import mailbox_commands as m
from postar.imap import message_commands as msg
from postar.imap import quota_commands as q
from postar.imap import search_command as s
from postar.imap import sort_command as so
from postar.imap.parser import Command
from postar.imap.session import Result, Session, State

ANY = frozenset(State) - {State.LOGOUT}
NOT_AUTHENTICATED = frozenset({State.NOT_AUTHENTICATED})
AUTHENTICATED = frozenset({State.AUTHENTICATED, State.SELECTED})
SELECTED = frozenset({State.SELECTED})


@dataclass(frozen=True)
class Entry:
    handler: Callable[[Session, Command], Awaitable[Result]]
    states: frozenset[State]
    updates: bool = True
    allows_expunge: bool = True


COMMANDS: dict[str, Entry] = {
    "CAPABILITY": Entry(c.do_capability, ANY, updates=False),
    "NOOP": Entry(c.do_noop, ANY),
    "LOGOUT": Entry(c.do_logout, ANY, updates=False),
    "STARTTLS": Entry(c.do_starttls, NOT_AUTHENTICATED),
    "LOGIN": Entry(c.do_login, NOT_AUTHENTICATED),
    "AUTHENTICATE": Entry(c.do_authenticate, NOT_AUTHENTICATED),
    "ENABLE": Entry(c.do_enable, AUTHENTICATED),
    "ID": Entry(c.do_id, ANY),
    "NAMESPACE": Entry(c.do_namespace, AUTHENTICATED),
    "IDLE": Entry(c.do_idle, AUTHENTICATED),
    "COMPRESS": Entry(c.do_compress, AUTHENTICATED),
    "SELECT": Entry(m.do_select, AUTHENTICATED, updates=False),
    "EXAMINE": Entry(m.do_select, AUTHENTICATED, updates=False),
    "CREATE": Entry(m.do_create, AUTHENTICATED),
    "DELETE": Entry(m.do_delete, AUTHENTICATED),
    "RENAME": Entry(m.do_rename, AUTHENTICATED),
    "SUBSCRIBE": Entry(m.do_subscribe, AUTHENTICATED),
    "UNSUBSCRIBE": Entry(m.do_subscribe, AUTHENTICATED),
    "LIST": Entry(li.do_list, AUTHENTICATED),
    "LSUB": Entry(li.do_list, AUTHENTICATED),
    "STATUS": Entry(m.do_status, AUTHENTICATED),
    "APPEND": Entry(m.do_append, AUTHENTICATED),
    "GETQUOTAROOT": Entry(q.do_getquotaroot, AUTHENTICATED),
    "GETQUOTA": Entry(q.do_getquota, AUTHENTICATED),
    "SETQUOTA": Entry(q.do_setquota, AUTHENTICATED),
    "CHECK": Entry(c.do_noop, SELECTED),
    "CLOSE": Entry(m.do_close, SELECTED, updates=False),
    "UNSELECT": Entry(m.do_close, SELECTED, updates=False),
    "EXPUNGE": Entry(msg.do_expunge, SELECTED),
    "UID EXPUNGE": Entry(msg.do_expunge, SELECTED),
    "FETCH": Entry(msg.do_fetch, SELECTED, allows_expunge=False),
    "UID FETCH": Entry(msg.do_fetch, SELECTED),
    "STORE": Entry(msg.do_store, SELECTED, allows_expunge=False),
    "UID STORE": Entry(msg.do_store, SELECTED),
    "COPY": Entry(msg.do_copy, SELECTED, allows_expunge=False),
    "UID COPY": Entry(msg.do_copy, SELECTED),
    "MOVE": Entry(msg.do_copy, SELECTED, allows_expunge=False),
    "UID MOVE": Entry(msg.do_copy, SELECTED),
    "SEARCH": Entry(s.do_search, SELECTED, allows_expunge=False),
    "UID SEARCH": Entry(s.do_search, SELECTED),
    "SORT": Entry(so.do_sort, SELECTED, allows_expunge=False),
    "UID SORT": Entry(so.do_sort, SELECTED),
    "THREAD": Entry(so.do_thread, SELECTED, allows_expunge=False),
    "UID THREAD": Entry(so.do_thread, SELECTED),
}
