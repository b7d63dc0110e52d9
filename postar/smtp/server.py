"""SMTP listeners: the session loop around ``postar.listener``'s connection.

DATA is collected in the connection's buffer and searched for its end in
large blocks rather than read a line at a time. Only CRLF.CRLF ends DATA
(RFC 5321 §4.1.1.4), which with the session's refusal of stray CR/LF closes
SMTP smuggling; at STARTTLS anything the client pipelined after the command is
thrown away before the handshake (RFC 3207 §5).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from postar.listener import TOO_LONG, Closed, Connection, Listener, ShuttingDown
from postar.session_limits import ConnectionCounter, Deadlines
from postar.smtp import replies
from postar.context import Context
from postar.smtp.parser import unstuff
from postar.smtp.session import Next, Port, Session, Step, TooBig

log = logging.getLogger("postar.smtp")

_END_OF_DATA = b"\r\n.\r\n"
MAX_COMMAND_LINE = 2048  # RFC 5321 §4.5.3.1.4 says 512; extensions need more, as Postfix allows
IDLE_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: the server timeout is at least 5 minutes


class SMTPListener(Listener):
    """One SMTP listener (MX, submission or submissions)."""

    def __init__(self, context: Context, port: Port, ssl_context: ssl.SSLContext | None,
                 counter: ConnectionCounter):
        limits = context.config.limits
        deadlines = Deadlines.from_limits(limits, IDLE_TIMEOUT, login=port is not Port.MX)
        super().__init__(port.value, SMTPConnection, per_ip_limit=limits.connections_per_ip,
                         deadlines=deadlines, counter=counter, ssl_context=ssl_context,
                         implicit_tls=port is Port.SUBMISSIONS)
        self.context = context
        self.port = port


class SMTPConnection(Connection):
    listener: SMTPListener
    max_line = MAX_COMMAND_LINE

    def __init__(self, listener: SMTPListener, counted: str | None = None):
        super().__init__(listener, counted)
        self.session: Session | None = None
        self._in_transfer = False  # reading DATA or a chunk: a shutdown waits for it

    @staticmethod
    def refusal(reason: str) -> bytes:
        return {"shutdown": replies.SHUTTING_DOWN, "server busy": replies.SERVER_BUSY}.get(
            reason, replies.TOO_MANY_CONNECTIONS).encode()

    def may_stop_now(self) -> bool:
        return not self._in_transfer and not (self.session is not None and self.session.between_chunks)

    async def serve(self) -> None:
        listener = self.listener
        session = self.session = Session(listener.context, listener.port, self.client_ip, self.id, self.tls)
        step = session.greeting()
        try:
            while True:
                if step.reply is not None:
                    self.write(step.reply.encode())
                if session.account is not None and not self.signed_in:
                    self.now_signed_in()
                if step.next is Next.CLOSE:
                    break
                step = await self._advance(session, step)
        except Closed:
            pass
        except asyncio.TimeoutError:
            self.write(replies.TIMEOUT.encode())  # not sent after a write deadline: the transport is gone
            log.info("%s: timeout, client=%s", self.id, self.client_ip)
        except (ShuttingDown, asyncio.CancelledError):
            self.write(replies.SHUTTING_DOWN.encode())
        except Exception:
            log.exception("%s: connection failed", self.id)

    async def _advance(self, session: Session, step: Step) -> Step:
        """Read what the step asks for and hand it to the session."""
        if step.next is Next.STARTTLS:
            if not await self.start_tls():
                raise Closed
            session.tls_started(self.tls)
            return Step(None)
        if step.next is Next.DATA:
            return await session.handle_data(await self._transfer(self._read_dot_data()))
        if step.next is Next.CHUNK:
            payload = await self._transfer(self._read_chunk(step.chunk_size))
            return await session.handle_chunk(payload, step.last_chunk)
        if step.next is Next.COMMAND and self.listener.closing and self.may_stop_now():
            return Step(replies.SHUTTING_DOWN, Next.CLOSE)
        line = await self.read_line()
        if line is TOO_LONG:
            return session.line_too_long()
        if step.next is Next.AUTH_RESPONSE:
            return await session.handle_auth_response(line)
        return await session.handle_line(line)

    async def _transfer(self, read):
        self._in_transfer = True
        self.begin_transfer()
        try:
            return await read
        finally:
            self._in_transfer = False
            self.end_transfer()

    async def _read_dot_data(self) -> bytes | TooBig:
        """Up to CRLF.CRLF; the CRLF that ended the DATA line counts as the first CRLF."""
        limit = self.listener.context.config.limits.message_size
        searched = 0
        discarded = False
        while True:
            if not discarded and self.buffer.startswith(b".\r\n"):  # an empty message
                del self.buffer[:3]
                return b""
            end = self.buffer.find(_END_OF_DATA, max(0, searched - 4))
            if end >= 0:
                payload = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 5]
                return TooBig() if discarded else unstuff(payload)
            searched = len(self.buffer)
            if searched > limit + 1024:  # over the limit even after unstuffing: drop, keep reading
                del self.buffer[:-4]  # keep what may be the start of CRLF.CRLF
                searched = len(self.buffer)
                discarded = True
            await self.wait_for_input()

    async def _read_chunk(self, size: int) -> bytes | TooBig:
        fits = size <= self.listener.context.config.limits.message_size
        payload = await self.read_exactly(size, keep=fits)
        return payload if fits else TooBig()
