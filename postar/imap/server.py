"""IMAP listeners: commands with their literals in, responses out, TLS and IDLE.

A command is read whole before it is parsed: its line, and for each literal
announced at a line's end (``{n}``, or ``{n+}`` which needs no continuation,
RFC 7888) the continuation request, the n octets and the next line. A literal
over the size limit is refused before any of it is read (RFC 9051 §7.1: TOOBIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from postar.context import Context
from postar.imap.connection_commands import continue_authenticate
from postar.imap.grammar import literal_announced
from postar.imap.parser import parse_command, starts_a_command
from postar.imap.session import Action, Result, Session, State
from postar.imap.views import MailboxViews
from postar.listener import TOO_LONG, Closed, Connection, Listener, ShuttingDown
from postar.session_limits import ConnectionCounter, Deadlines

log = logging.getLogger("postar.imap")

MAX_LINE = 65536  # as Dovecot's imap_max_line_length: long UID sets must fit
# Before login a literal holds at most a user name, a password or a SASL response:
# all the literals of one command together get this much (as Dovecot's login process).
MAX_LITERALS_BEFORE_LOGIN = 8192
IDLE_TIMEOUT = 1800.0  # RFC 2177: clients re-issue IDLE within 29 minutes


class IMAPListener(Listener):
    def __init__(self, context: Context, name: str, ssl_context: ssl.SSLContext | None,
                 counter: ConnectionCounter, implicit_tls: bool, views: MailboxViews):
        limits = context.config.limits
        super().__init__(name, IMAPConnection, per_ip_limit=limits.connections_per_ip,
                         deadlines=Deadlines.from_limits(limits, IDLE_TIMEOUT),
                         counter=counter, ssl_context=ssl_context, implicit_tls=implicit_tls)
        self.context = context
        self.views = views


class _NotDone(Exception):
    """The client sent something other than DONE during IDLE."""


class _Refused(Exception):
    """A command refused before it was read whole (its literal too big)."""

    def __init__(self, response: bytes, close: bool):
        self.response = response
        self.close = close


class IMAPConnection(Connection):
    listener: IMAPListener
    max_line = MAX_LINE

    @staticmethod
    def refusal(reason: str) -> bytes:
        if reason == "shutdown":
            return b"* BYE Server shutting down\r\n"
        if reason == "server busy":
            return b"* BYE [UNAVAILABLE] Server busy, try again later\r\n"
        return b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"

    async def serve(self) -> None:
        context = self.listener.context
        session = Session(context, self.client_ip, self.id, tls=bool(self.tls),
                          tls_possible=self.listener.ssl_context is not None, views=self.listener.views)
        self.write(session.greeting())
        errors = 0
        try:
            while True:
                try:
                    data = await self._read_command(session.state is State.NOT_AUTHENTICATED)
                except _Refused as refused:
                    self.write(refused.response)
                    if refused.close:
                        return
                    continue
                if data is TOO_LONG:
                    self.write(b"* BAD Command line too long\r\n")
                    continue
                command = parse_command(data)
                result = await session.handle(command)
                self.write(session.take_output())
                tag = getattr(command, "tag", "*")
                final = await self._act(session, tag, result)
                if not self.signed_in and session.state in (State.AUTHENTICATED, State.SELECTED):
                    self.now_signed_in()
                if final is None:
                    continue
                self._tagged(tag, final)
                errors = errors + 1 if final.status == "BAD" else errors
                if errors >= context.config.limits.errors:
                    self.write(b"* BYE Too many invalid commands\r\n")
                    return
                if final.action is Action.LOGOUT or session.state is State.LOGOUT:
                    return
        except Closed:
            pass
        except asyncio.TimeoutError:
            self.write(b"* BYE Idle for too long\r\n")
        except (ShuttingDown, asyncio.CancelledError):
            self.write(b"* BYE Server shutting down\r\n")
        except Exception:  # a bug, not the client's doing: still say goodbye (RFC 9051 §7.1.5)
            log.exception("%s: connection failed", self.id)
            self.write(b"* BYE [SERVERBUG] Internal error, closing the connection\r\n")

    def _tagged(self, tag: str, result: Result) -> None:
        code = f"[{result.code}] " if result.code else ""
        self.write(f"{tag} {result.status} {code}{result.text}\r\n".encode())

    async def _act(self, session: Session, tag: str, result: Result) -> Result | None:
        """Carry out what a command asks of the connection; the result to report (None: reported)."""
        if result.action is Action.STARTTLS:
            self._tagged(tag, result)
            if not await self.start_tls():
                raise Closed
            session.tls = True
            return None
        if result.action is Action.COMPRESS:
            self._tagged(tag, result)
            await self.start_deflate()
            return None
        if result.action is Action.AUTH_CONTINUE:
            self.write(result.continuation)
            line = await self.read_line()
            if line is TOO_LONG:
                return Result("BAD", "Authentication response too long")
            result = await continue_authenticate(session, line)
            self.write(session.take_output())
            return result
        if result.action is Action.IDLE:
            try:
                return await self._idle(session, result)
            except _NotDone:
                return Result("BAD", "Expected DONE")
        return result

    async def _idle(self, session: Session, result: Result) -> Result:
        # IDLE waits as long as any command: the idle limit's default, 1800 s, is RFC 2177's floor
        self.write(b"+ idling\r\n")
        selected = session.selected
        watching = session.store.watch(selected.mailbox.id, self.wake) if selected else contextlib.nullcontext()
        with watching as watch:
            await self._idle_until_done(session, watch)
        return result

    async def _idle_until_done(self, session: Session, watch) -> None:
        while True:
            if b"\n" in self.buffer:
                line = await self.read_line()
                if line is TOO_LONG or line.strip().upper() != b"DONE":
                    raise _NotDone
                return
            if watch is not None and watch.event.is_set():
                watch.event.clear()
                await session.refresh(allow_expunge=True)
                self.write(session.take_output())
                if session.state is State.LOGOUT:  # the mailbox was deleted: BYE is on its way
                    return
            await self.wait_for_input()

    async def _read_command(self, before_login: bool) -> bytes:
        """One command with its literals. The literals of one command are bounded in
        total: by the message size, and before login by MAX_LITERALS_BEFORE_LOGIN."""
        limit = MAX_LITERALS_BEFORE_LOGIN if before_login else self.listener.context.config.limits.message_size
        line = await self.read_line()
        if line is TOO_LONG:
            return line
        data = bytearray(line)
        literals = 0
        while (announced := literal_announced(line)) is not None:
            size, synchronizing = announced
            literals += size
            if literals > limit:
                tag = bytes(data.split(b" ", 1)[0]).decode("ascii", "replace")[:64] or "*"
                if not synchronizing:  # its octets are on their way: stop listening
                    raise _Refused(b"* BYE [TOOBIG] Literal over the limit\r\n", close=True)
                if before_login:
                    raise _Refused(f"{tag} BAD Literal of {size} octets is too large before login\r\n".encode(),
                                   close=False)
                raise _Refused(f"{tag} NO [TOOBIG] Literal of {size} octets is over the limit\r\n".encode(),
                               close=False)
            if synchronizing:
                if not starts_a_command(bytes(data)):  # never ask for data that cannot be a command's
                    raise _Refused(b"* BAD Expected a tagged command before a literal\r\n", close=False)
                self.write(b"+ Ready for literal data\r\n")
                await self.flush()
                self.ack_now()
            data += b"\r\n" + await self.read_exactly(size)
            line = await self.read_line()
            if line is TOO_LONG:
                return line
            data += line
            if len(data) > limit + MAX_LINE:  # lines ending in {0+}, one after another
                raise _Refused(b"* BYE Command too long\r\n", close=True)
        return bytes(data)
