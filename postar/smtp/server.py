"""SMTP listeners: sockets, buffering, TLS, timeouts and limits around the session.

Each connection is an ``asyncio.Protocol`` with its own input buffer, so DATA
is searched for its end in large blocks rather than read a line at a time, and
replies to pipelined commands (RFC 2920) are written together when the input
runs dry. Only CRLF.CRLF ends DATA (RFC 5321 §4.1.1.4), which with the
session's refusal of stray CR/LF closes SMTP smuggling; at STARTTLS anything
the client sent after the command is thrown away before the handshake
(RFC 3207 §5, the STARTTLS command-injection flaw).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl

from postar.smtp import replies
from postar.smtp.context import Context
from postar.smtp.parser import unstuff
from postar.smtp.replies import Reply
from postar.smtp.session import Next, Port, Session, Step, TooBig

log = logging.getLogger("postar.smtp")

MAX_COMMAND_LINE = 2048  # RFC 5321 §4.5.3.1.4 says 512; extensions need more, as Postfix allows
_HIGH_WATER = 256 * 1024
_END_OF_DATA = b"\r\n.\r\n"
_ids = itertools.count(1)


class _Closed(Exception):
    """The client went away."""


class _Shutdown(Exception):
    """The server is stopping and this session is between transactions."""


class _TooLong:
    pass


TOO_LONG = _TooLong()


class SMTPServer:
    """One listener (MX, submission or submissions) and its connections."""

    def __init__(self, context: Context, port: Port, ssl_context: ssl.SSLContext | None):
        self.context = context
        self.port = port
        self.ssl_context = ssl_context
        self.implicit_tls = port is Port.SUBMISSIONS
        self.connections: set[Connection] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        tls = {"ssl": self.ssl_context, "ssl_handshake_timeout": 30} if self.implicit_tls else {}
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, backlog=1024, reuse_address=True, **tls)
        self._sweeper = loop.create_task(self._sweep_idle())

    async def _sweep_idle(self) -> None:
        """Time out sessions that wait too long for input.

        One sweep a second over all connections costs less than a timer per read.
        """
        timeout = self.context.config.limits.idle_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = asyncio.get_running_loop().time()
            for connection in list(self.connections):
                connection.time_out_if_idle_since(now - timeout)

    @property
    def sockets(self) -> list:
        return list(self._server.sockets) if self._server else []

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; idle sessions get 421 now, running transactions up to ``grace``."""
        self.closing = True
        if self._server is not None:
            self._server.close()
            if self._sweeper is not None:
                self._sweeper.cancel()
        for connection in list(self.connections):
            connection.wake()
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)


class Connection(asyncio.Protocol):
    def __init__(self, server: SMTPServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.out: list[bytes] = []
        self.eof = False
        self.counted_ip = ""
        self.task: asyncio.Task | None = None
        self._waiter: asyncio.Future | None = None
        self._waiting_since = 0.0
        self._loop = asyncio.get_running_loop()
        self._writable: asyncio.Future | None = None
        self._reading_paused = False
        self._in_transfer = False  # reading DATA or a chunk: shutdown waits for it
        self.session: Session | None = None

    # asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport) -> None:  # an asyncio or uvloop transport
        self.transport = transport
        peer = transport.get_extra_info("peername")
        ip = peer[0] if peer else "unknown"
        server = self.server
        if server.closing:
            transport.write(replies.SHUTTING_DOWN.encode())
            transport.close()
            return
        if server.context.connections_by_ip[ip] >= server.context.config.limits.connections_per_ip:
            log.warning("too many connections from %s on %s", ip, server.port.value)
            transport.write(replies.TOO_MANY_CONNECTIONS.encode())
            transport.close()
            return
        server.context.connections_by_ip[ip] += 1
        self.counted_ip = ip
        server.connections.add(self)
        tls = describe_tls(transport) if server.implicit_tls else ""
        self.session = Session(server.context, server.port, ip, f"{server.port.value}#{next(_ids)}", tls)
        self.task = self._loop.create_task(self.serve(self.session))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self._waiter is not None:
            self.wake()
        elif len(self.buffer) > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        """A client may send its last commands and half-close: answer them before closing.

        (asyncio's TLS transports cannot stay half-open, so over TLS the answer is lost.)
        """
        self.eof = True
        self.wake()
        return self.transport is not None and self.transport.get_extra_info("ssl_object") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self.counted_ip:
            self.server.context.connections_by_ip[self.counted_ip] -= 1
            if self.server.context.connections_by_ip[self.counted_ip] <= 0:
                del self.server.context.connections_by_ip[self.counted_ip]
            self.counted_ip = ""
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _session_between_chunks(self) -> bool:
        return self.session is not None and self.session.between_chunks

    def time_out_if_idle_since(self, moment: float) -> None:
        if self._waiter is not None and not self._waiter.done() and self._waiting_since < moment:
            self._waiter.set_exception(asyncio.TimeoutError())

    # The session loop ------------------------------------------------------------

    async def serve(self, session: Session) -> None:
        step = session.greeting()
        try:
            while True:
                if step.reply is not None:
                    self.send(step.reply)
                if step.next is Next.CLOSE:
                    break
                step = await self._advance(session, step)
        except _Closed:
            pass
        except asyncio.TimeoutError:
            self.send(replies.TIMEOUT)
            log.info("%s: timeout, client=%s", session.id, session.client_ip)
        except (_Shutdown, asyncio.CancelledError):
            self.send(replies.SHUTTING_DOWN)
        except Exception:
            log.exception("%s: connection failed", session.id)
        finally:
            await self._close()

    async def _advance(self, session: Session, step: Step) -> Step:
        """Read what the step asks for and hand it to the session."""
        if step.next is Next.STARTTLS:
            if not await self._start_tls():
                raise _Closed
            session.tls_started(describe_tls(self.transport))
            return Step(None)
        if step.next is Next.DATA:
            return await session.handle_data(await self._read_transfer(self._read_dot_data))
        if step.next is Next.CHUNK:
            payload = await self._read_transfer(lambda: self._read_chunk(step.chunk_size))
            return await session.handle_chunk(payload, step.last_chunk)
        if step.next is Next.COMMAND and self.server.closing and not session.between_chunks:
            return Step(replies.SHUTTING_DOWN, Next.CLOSE)
        line = await self._read_line()
        if line is TOO_LONG:
            return session.line_too_long()
        assert isinstance(line, bytes)
        if step.next is Next.AUTH_RESPONSE:
            return await session.handle_auth_response(line)
        return await session.handle_line(line)

    # Reading ---------------------------------------------------------------------

    async def _wait(self) -> None:
        """Send what is pending, then wait for more input (or EOF, or shutdown)."""
        if self.eof:
            raise _Closed
        await self.flush()
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._waiter = self._loop.create_future()
        self._waiting_since = self._loop.time()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self.server.closing and not self._in_transfer and not self._session_between_chunks():
            raise _Shutdown
        if self.eof and not self.buffer:
            raise _Closed

    async def _read_line(self) -> bytes | _TooLong:
        discarding = False
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                if discarding or len(line) > MAX_COMMAND_LINE:
                    return TOO_LONG
                return line.rstrip(b"\n").removesuffix(b"\r")
            if len(self.buffer) > MAX_COMMAND_LINE:
                self.buffer.clear()
                discarding = True
            if self.eof:
                raise _Closed
            await self._wait()

    async def _read_transfer(self, read) -> bytes | TooBig:
        self._in_transfer = True
        try:
            return await read()
        finally:
            self._in_transfer = False

    async def _read_dot_data(self) -> bytes | TooBig:
        """Up to CRLF.CRLF; the CRLF that ended the DATA line counts as the first CRLF."""
        limit = self.server.context.config.limits.message_size
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
            await self._wait()

    async def _read_chunk(self, size: int) -> bytes | TooBig:
        limit = self.server.context.config.limits.message_size
        remaining = size
        parts: list[bytes] = []
        while True:
            take = min(remaining, len(self.buffer))
            if take:
                if size <= limit:
                    parts.append(bytes(self.buffer[:take]))
                del self.buffer[:take]
                remaining -= take
            if remaining == 0:
                return b"".join(parts) if size <= limit else TooBig()
            await self._wait()

    # Writing ---------------------------------------------------------------------

    def send(self, reply: Reply) -> None:
        self.out.append(reply.encode())

    async def flush(self) -> None:
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.out))
        self.out.clear()
        if self._writable is not None:
            await self._writable

    async def _start_tls(self) -> bool:
        await self.flush()
        self.buffer.clear()  # RFC 3207 §5: nothing sent before the handshake may count after it
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self.transport, self, self.server.ssl_context,
                                             server_side=True, ssl_handshake_timeout=30)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            log.info("STARTTLS handshake failed with %s: %s", self.counted_ip, e)
            return False
        if transport is None:
            return False
        self.transport = transport
        self.buffer.clear()
        return True

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), 5)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        if self.transport is not None:
            self.transport.close()
        self.server.connections.discard(self)


def describe_tls(transport: asyncio.BaseTransport | None) -> str:
    """e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", as Postfix writes it."""
    ssl_object = transport.get_extra_info("ssl_object") if transport else None
    if ssl_object is None:
        return ""
    name, _, bits = ssl_object.cipher() or ("unknown", "", 0)
    return f"{ssl_object.version()} with cipher {name} ({bits}/{bits} bits)"
