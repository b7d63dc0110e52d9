"""The IMAP session: states, the one gate, errors that know their reply, updates.

RFC 9051 §3: not authenticated → authenticated → selected → logout. Each
command is looked up in ``commands.COMMANDS``, which says in which states it
is allowed; the gate here checks it once. Handlers raise ``No`` (a tagged NO
with an optional response code) or ``BadArguments`` (BAD); anything else is
logged with the connection id and answered ``NO [SERVERBUG]``, and the session
goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

from postar.imap.parser import BadArguments, Command, Invalid
from postar.imap.selected import MailboxDeleted, SelectedMailbox
from postar.imap.views import MailboxViews
from postar.context import Context
from postar.store import Account

log = logging.getLogger("postar.imap")


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class Action(Enum):
    NONE = "none"
    STARTTLS = "starttls"          # send the tagged OK, then start TLS
    LOGOUT = "logout"              # send the responses, then close
    IDLE = "idle"                  # send "+ idling", wait for DONE while refreshing
    AUTH_CONTINUE = "authenticate"  # send the continuation, read one line for continue_login
    COMPRESS = "compress"          # send the tagged OK, then compress both directions


@dataclass(frozen=True)
class Result:
    status: str = "OK"   # OK, NO or BAD
    text: str = "done"
    code: str = ""       # a response code without brackets, e.g. "READ-WRITE"
    action: Action = Action.NONE
    continuation: bytes = b""


class No(Exception):
    """A refusal: tagged NO with an optional response code (RFC 9051 §7.1)."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.text = text
        self.code = code


class Session:
    def __init__(self, context: Context, client_ip: str, connection_id: str, tls: bool, tls_possible: bool,
                 views: MailboxViews):
        self.context = context
        self.views = views
        self.store = context.store
        self.client_ip = client_ip
        self.id = connection_id
        self.tls = tls
        self.tls_possible = tls_possible
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: SelectedMailbox | None = None
        self.enabled: set[str] = set()
        self.client_id_logged = False  # ID (RFC 2971) is logged once per session
        self.saved_search: set[int] | None = None
        self.pending_login = None  # the SASL exchange waiting for a client response
        self.compressed = False
        self._out: list[bytes] = []

    # Output ----------------------------------------------------------------------

    def send(self, line: bytes | str) -> None:
        self._out.append(line.encode() if isinstance(line, str) else line)

    def take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    def enable_condstore(self) -> None:
        """After a CONDSTORE enabling command (RFC 7162 §3.1: FETCH or SEARCH of MODSEQ, CHANGEDSINCE,
        UNCHANGEDSINCE, STATUS HIGHESTMODSEQ, ENABLE). The first one while a mailbox is selected
        is followed by the mailbox's HIGHESTMODSEQ, sent as Dovecot does: an untagged OK before
        the command's own responses. It is the view's modseq: every change up to it has been told
        (expunges held back by §7.5.1 aside), where the store's may be ahead of the client."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        if self.selected is not None:
            self.send(f"* OK [HIGHESTMODSEQ {self.selected.modseq}] Highest\r\n")

    def capabilities(self) -> str:
        words = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "MULTIAPPEND", "ENABLE", "ID", "IDLE", "NAMESPACE",
                 "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS",
                 "ESEARCH", "SEARCHRES", "CONDSTORE", "QRESYNC", "STATUS=SIZE", "UTF8=ACCEPT", "BINARY", "QUOTA",
                 "QUOTA=RES-STORAGE", "COMPRESS=DEFLATE", "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"]
        if not self.tls and self.tls_possible:
            words.append("STARTTLS")
        if self.state is State.NOT_AUTHENTICATED:
            words += ["AUTH=PLAIN"] if self.tls else ["LOGINDISABLED"]
        return " ".join(words)

    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY {self.capabilities()}] {self.context.config.hostname} IMAP postar ready\r\n".encode()

    # Dispatch --------------------------------------------------------------------

    async def handle(self, command: Command | Invalid) -> Result:
        """Run one command; its untagged responses are in ``take_output``."""
        from postar.imap.commands import COMMANDS  # the table imports the handlers, which import this

        if isinstance(command, Invalid):
            return Result("BAD", command.reason)
        entry = COMMANDS.get(command.name)
        if entry is None:
            return Result("BAD", f"unknown command {command.name}")
        if self.state not in entry.states:
            return Result("BAD", f"{command.name} not allowed {_state_phrase(self.state)}")
        try:
            result = await entry.handler(self, command)
        except BadArguments as e:
            result = Result("BAD", f"{command.name}: {e}")
        except No as e:
            result = Result("NO", e.text, e.code)
        except Exception:
            log.exception("%s: %s failed for %s", self.id, command.name, self.account.address if self.account else "-")
            result = Result("NO", "internal error, try again", "SERVERBUG")
        if self.state is State.SELECTED and entry.updates:
            await self.refresh(allow_expunge=entry.allows_expunge or command.uid)
        return result

    async def refresh(self, allow_expunge: bool) -> None:
        """Tell the client what changed in the selected mailbox (§5.2, §7.5.1)."""
        if self.selected is None:
            return
        try:
            lines = await self.selected.refresh(self.store, allow_expunge, self.condstore, self.qresync)
        except MailboxDeleted:  # as Dovecot: the session cannot go on with it
            self.send("* BYE Selected mailbox was deleted, have to disconnect\r\n")
            self.state = State.LOGOUT
            return
        for line in lines:
            self.send(line)

    def select(self, selected: SelectedMailbox | None) -> None:
        self.selected = selected
        self.state = State.SELECTED if selected else State.AUTHENTICATED
        self.saved_search = None


def _state_phrase(state: State) -> str:
    if state is State.NOT_AUTHENTICATED:
        return "before LOGIN"
    if state is State.AUTHENTICATED:
        return "without a selected mailbox"
    return f"in the {state.value} state"
