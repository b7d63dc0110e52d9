"""One POP3 session: the AUTHORIZATION and TRANSACTION states and QUIT's UPDATE
(RFC 1939 §3-§6), CAPA (RFC 2449), STLS (RFC 2595 §4), AUTH (RFC 5034).

The session never touches the socket: ``handle_line`` takes a command line
and returns a ``Step``, the reply bytes and what the connection must do next
(read a command, read an AUTH response, start TLS, or close). Logins need TLS
first, go through the same login gate as SMTP and IMAP, and then take the
account's exclusive maildrop lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable

from postar.auth import sasl
from postar.auth.exchange import Challenge, Failed, Failure, SASLExchange
from postar.auth.login import Refusal
from postar.context import Context
from postar.pop3 import responses as r
from postar.message.lines import dot_stuffed
from postar.pop3.maildrop import Maildrop, MaildropLocks, top_payload
from postar.pop3.parser import Command, ParseError, line_count, message_number, parse_command
from postar.store import Account, PopAccess, StoreError

log = logging.getLogger("postar.pop3")


class State(Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    DONE = "done"


class Next(Enum):
    COMMAND = "command"
    AUTH_RESPONSE = "auth response"
    STLS = "stls"
    CLOSE = "close"


@dataclass(frozen=True)
class Step:
    reply: bytes
    next: Next = Next.COMMAND
    error: bool = False  # counts towards limits.errors


_AUTH_FAILURES = {
    Failure.BLOCKED: r.LOGINS_BLOCKED,
    Failure.UNKNOWN_MECHANISM: r.UNKNOWN_MECHANISM,
    Failure.CANCELLED: r.AUTH_CANCELLED,
    Failure.FAILED: r.AUTH_FAILED,
}


class Session:
    def __init__(self, context: Context, locks: MaildropLocks, client_ip: str, connection_id: str, *,
                 tls: bool, tls_possible: bool):
        self.context = context
        self.store = context.store
        self.locks = locks
        self.client_ip = client_ip
        self.id = connection_id
        self.tls = tls
        self.tls_possible = tls_possible
        self.state = State.AUTHORIZATION
        self.account: Account | None = None
        self.maildrop: Maildrop | None = None
        self.inbox_id = 0
        self._username: str | None = None
        self._exchange: SASLExchange | None = None
        self._commands: dict[str, Callable[[Command], Awaitable[Step]]] = {
            "CAPA": self.do_capa, "QUIT": self.do_quit, "STLS": self.do_stls, "USER": self.do_user,
            "PASS": self.do_pass, "AUTH": self.do_auth, "STAT": self.do_stat, "LIST": self.do_list,
            "RETR": self.do_retr, "DELE": self.do_dele, "NOOP": self.do_noop, "RSET": self.do_rset,
            "TOP": self.do_top, "UIDL": self.do_uidl,
        }

    def greeting(self) -> bytes:
        return r.GREETING

    def capabilities(self) -> list[str]:
        """RFC 2449 §6; USER and SASL only where a login may happen now (after TLS)."""
        names = ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"]
        if self.state is State.AUTHORIZATION:
            if self.tls:
                names += ["USER", "SASL " + " ".join(sasl.MECHANISMS)]
            elif self.tls_possible:
                names.append("STLS")
        return names + ["IMPLEMENTATION postar"]

    def tls_started(self) -> None:
        self.tls = True
        self._username = None  # RFC 2595 §4: forget what came before TLS

    def close(self) -> None:
        """The connection is gone: release the lock; nothing marked is applied."""
        if self.account is not None and self.state is State.TRANSACTION:
            self.locks.release(self.account.id)
        self.state = State.DONE

    # Dispatch ------------------------------------------------------------------

    async def handle_line(self, line: bytes) -> Step:
        command = parse_command(line)
        if isinstance(command, ParseError):
            return Step(r.error(command.reason), error=True)
        handler = self._commands.get(command.verb)
        if handler is None:
            return Step(r.error(f"Unknown command: {command.verb}"), error=True)
        return await handler(command)

    def _in(self, state: State) -> Step | None:
        """None when the session is in ``state``; otherwise the refusal."""
        if self.state is state:
            return None
        wrong = r.NOT_LOGGED_IN if self.state is State.AUTHORIZATION else r.ALREADY_LOGGED_IN
        return Step(wrong, error=True)

    # Any state -----------------------------------------------------------------

    async def do_capa(self, command: Command) -> Step:
        return Step(r.multiline("Capability list follows", ["CAPA", *self.capabilities()]))

    async def do_quit(self, command: Command) -> Step:
        if self.state is not State.TRANSACTION:
            self.state = State.DONE
            return Step(r.LOGGING_OUT, Next.CLOSE)
        return await self._update()

    # AUTHORIZATION --------------------------------------------------------------

    async def do_stls(self, command: Command) -> Step:
        if refused := self._in(State.AUTHORIZATION):
            return refused
        if self.tls:
            return Step(r.TLS_ACTIVE, error=True)
        if not self.tls_possible:
            return Step(r.TLS_UNAVAILABLE, error=True)
        return Step(r.STLS_BEGIN, Next.STLS)

    def _plaintext_refused(self) -> Step | None:
        if self.tls:
            return None
        log.warning("%s: plaintext login attempt refused, client=%s", self.id, self.client_ip)
        return Step(r.PLAINTEXT_REFUSED, error=True)

    async def do_user(self, command: Command) -> Step:
        if refused := self._in(State.AUTHORIZATION) or self._plaintext_refused():
            return refused
        if len(command.args) != 1:
            return Step(r.error("USER takes one argument: your full e-mail address."), error=True)
        self._username = command.args[0]
        return Step(r.OK)

    async def do_pass(self, command: Command) -> Step:
        if refused := self._in(State.AUTHORIZATION) or self._plaintext_refused():
            return refused
        if self._username is None:
            return Step(r.NO_USERNAME, error=True)
        username, self._username = self._username, None
        if not command.rest:
            return Step(r.error("PASS takes the password as its argument."), error=True)
        outcome = await self.context.logins.login(self.client_ip, username, command.rest,
                                                  connection_id=self.id, method="pop3/USER")
        if outcome is Refusal.BLOCKED:
            return Step(r.LOGINS_BLOCKED)
        if outcome is Refusal.FAILED:
            return Step(r.AUTH_FAILED)
        return await self._open(outcome)

    async def do_auth(self, command: Command) -> Step:
        if refused := self._in(State.AUTHORIZATION) or self._plaintext_refused():
            return refused
        if not command.args:  # the pre-RFC 5034 listing some clients still ask for
            return Step(r.multiline("", list(sasl.MECHANISMS)))
        if len(command.args) > 2:
            return Step(r.error("AUTH takes a mechanism and an optional initial response."), error=True)
        self._exchange = SASLExchange(self.context.logins, self.client_ip, self.id, "pop3")
        initial = command.args[1] if len(command.args) == 2 else None
        return await self._auth_step(await self._exchange.start(command.args[0], initial))

    async def handle_auth_response(self, line: bytes) -> Step:
        assert self._exchange is not None
        return await self._auth_step(await self._exchange.respond(line))

    async def _auth_step(self, outcome: Challenge | Failed | Account) -> Step:
        if isinstance(outcome, Challenge):
            return Step(f"+ {outcome.text}\r\n".encode(), Next.AUTH_RESPONSE)
        self._exchange = None
        if isinstance(outcome, Failed):
            if outcome.failure is Failure.MALFORMED:
                return Step(r.error(f"Invalid AUTH response: {outcome.reason}."), error=True)
            return Step(_AUTH_FAILURES[outcome.failure], error=outcome.failure is Failure.UNKNOWN_MECHANISM)
        return await self._open(outcome)

    async def _open(self, account: Account) -> Step:
        """Logged in: check POP access, lock the maildrop, list it."""
        try:
            settings = await self.store.pop_settings(account.id)
            inbox = await self.store.find_mailbox(account.id, "INBOX")
        except StoreError:
            return Step(r.MAILDROP_FAILED)
        if settings.access is PopAccess.OFF:
            log.warning("%s: POP access turned off for %s", self.id, account.address)
            return Step(r.POP_TURNED_OFF)
        if inbox is None:
            return Step(r.MAILDROP_FAILED)
        if not self.locks.acquire(account.id):
            log.info("%s: maildrop of %s in use", self.id, account.address)
            return Step(r.IN_USE)
        from_uid = settings.from_uid if settings.access is PopAccess.NEW else 0
        messages = await self.store.pop_messages(inbox.id, from_uid)
        self.account, self.state = account, State.TRANSACTION
        self.inbox_id = inbox.id
        self.maildrop = Maildrop(messages, inbox.uidvalidity, settings.on_retrieve)
        log.info("%s: maildrop of %s opened, %d messages", self.id, account.address, len(messages))
        return Step(r.LOGGED_IN)

    # TRANSACTION ----------------------------------------------------------------

    def _message(self, command: Command, args: int = 1) -> tuple[int, Step | None]:
        """The message number argument; (0, refusal) when the command cannot go on."""
        if refused := self._in(State.TRANSACTION):
            return 0, refused
        if len(command.args) != args:
            return 0, Step(r.error(f"{command.verb} takes {'a message number' if args == 1 else 'two numbers'}."),
                           error=True)
        number = message_number(command.args[0])
        if number is None:
            return 0, Step(r.error(f"Invalid message number: {command.args[0][:20]}"), error=True)
        assert self.maildrop is not None
        if not self.maildrop.exists(number):
            return 0, Step(r.no_such_message(number))
        if self.maildrop.find(number) is None:
            return 0, Step(r.ALREADY_DELETED)
        return number, None

    async def do_stat(self, command: Command) -> Step:
        if refused := self._in(State.TRANSACTION):
            return refused
        count, octets = self.maildrop.totals()
        return Step(r.ok(f"{count} {octets}"))

    async def _listing(self, command: Command, value: Callable) -> Step:
        """LIST and UIDL: one message with an argument, every undeleted one without."""
        if not command.args:
            if refused := self._in(State.TRANSACTION):
                return refused
            lines = [f"{n} {value(m)}" for n, m in self.maildrop.listing()]
            return Step(r.multiline("", lines))
        number, refused = self._message(command)
        if refused:
            return refused
        return Step(r.ok(f"{number} {value(self.maildrop.find(number))}"))

    async def do_list(self, command: Command) -> Step:
        return await self._listing(command, lambda message: message.size)

    async def do_uidl(self, command: Command) -> Step:
        return await self._listing(command, lambda message: self.maildrop.unique_id(message))

    async def do_retr(self, command: Command) -> Step:
        number, refused = self._message(command)
        if refused:
            return refused
        message = self.maildrop.find(number)
        content = await self.store.message_content(self.inbox_id, message.uid)
        if content is None:
            return Step(r.VANISHED)
        self.maildrop.retrieved.add(number)
        return Step(r.ok(f"{message.size} octets") + dot_stuffed(content))

    async def do_top(self, command: Command) -> Step:
        number, refused = self._message(command, args=2)
        if refused:
            return refused
        lines = line_count(command.args[1])
        if lines is None:
            return Step(r.error(f"Invalid number of lines: {command.args[1][:20]}"), error=True)
        content = await self.store.message_content(self.inbox_id, self.maildrop.find(number).uid)
        if content is None:
            return Step(r.VANISHED)
        return Step(r.OK + top_payload(content, lines))

    async def do_dele(self, command: Command) -> Step:
        number, refused = self._message(command)
        if refused:
            return refused
        self.maildrop.deleted.add(number)
        return Step(r.DELETED)

    async def do_noop(self, command: Command) -> Step:
        return self._in(State.TRANSACTION) or Step(r.OK)

    async def do_rset(self, command: Command) -> Step:
        if refused := self._in(State.TRANSACTION):
            return refused
        self.maildrop.reset()
        count, octets = self.maildrop.totals()
        return Step(r.ok(f"{count} messages ({octets} octets)."))

    # UPDATE ---------------------------------------------------------------------

    async def _update(self) -> Step:
        """QUIT in TRANSACTION: apply deletions and the download setting, durably, then close."""
        settlement = self.maildrop.settlement()
        try:
            if settlement:
                moves = {}
                for name, uids in (("Archive", settlement.to_archive), ("Trash", settlement.to_trash)):
                    if uids:
                        moves[await self._special_mailbox(name)] = uids
                await self.store.settle(self.inbox_id, seen=settlement.seen, moves=moves, remove=settlement.remove)
        except StoreError as e:
            log.error("%s: QUIT could not update the maildrop of %s: %s", self.id, self.account.address, e)
            self.close()
            return Step(r.UPDATE_FAILED, Next.CLOSE)
        log.info("%s: QUIT for %s: %d deleted, %d archived, %d trashed, %d marked read", self.id,
                 self.account.address, len(settlement.remove), len(settlement.to_archive),
                 len(settlement.to_trash), len(settlement.seen))
        self.close()
        return Step(r.LOGGING_OUT_DELETED if self.maildrop.deleted else r.LOGGING_OUT, Next.CLOSE)

    async def _special_mailbox(self, name: str) -> int:
        """The account's Archive or Trash (by special use, else by name), made when missing."""
        use = "\\" + name
        mailboxes = await self.store.list_mailboxes(self.account.id)
        for mailbox in sorted(mailboxes, key=lambda m: (m.special_use != use, m.name != name)):
            if mailbox.special_use == use or mailbox.name == name:
                return mailbox.id
        return (await self.store.create_mailbox(self.account.id, name)).id
