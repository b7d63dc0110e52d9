"""What every line-based listener shares: accepting, buffering, TLS, limits, shutdown.

``Listener`` owns one listening socket and its connections: the connection
limit per client address (counted over all listeners that share one
``ConnectionCounter``), the idle timeout (one sweep a second over all
connections costs less than a timer per read), and shutdown. ``Connection`` is
an ``asyncio.Protocol`` with its own input buffer, so a protocol can search a
large block for its terminator instead of reading a line at a time, and
replies to pipelined commands are written together when the input runs dry.
SMTP, IMAP and POP3 subclass it with their own ``serve`` loop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import zlib
from collections import Counter
from typing import Callable

log = logging.getLogger("postar")

_HIGH_WATER = 256 * 1024
_MAX_INFLATED = 16 * 1024 * 1024
_ids = itertools.count(1)


class Closed(Exception):
    """The client went away."""


class ShuttingDown(Exception):
    """The server is stopping and this session may stop now."""


class TooLong:
    """What ``read_line`` returns for a line over its limit (the line is consumed)."""


TOO_LONG = TooLong()


class ConnectionCounter(Counter):
    """Open connections per client address, shared by the listeners of one service."""


class Listener:
    def __init__(self, name: str, connection_class: Callable[["Listener"], "Connection"], *,
                 per_ip_limit: int, idle_timeout: float, counter: ConnectionCounter,
                 ssl_context: ssl.SSLContext | None, implicit_tls: bool):
        self.name = name
        self.connection_class = connection_class
        self.per_ip_limit = per_ip_limit
        self.idle_timeout = idle_timeout
        self.counter = counter
        self.ssl_context = ssl_context
        self.implicit_tls = implicit_tls
        self.connections: set[Connection] = set()
        self.closing = False
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        tls = {"ssl": self.ssl_context, "ssl_handshake_timeout": 30} if self.implicit_tls else {}
        self._server = await loop.create_server(
            lambda: self.connection_class(self), host, port, backlog=1024, reuse_address=True, **tls)
        self._sweeper = loop.create_task(self._sweep_idle())

    @property
    def sockets(self) -> list:
        return list(self._server.sockets) if self._server else []

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 4))
            now = asyncio.get_running_loop().time()
            for connection in list(self.connections):
                connection.time_out_if_idle(now)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; sessions that may stop now are told so, the others get ``grace``."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.wake()
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)


class Connection(asyncio.Protocol):
    """One client connection; subclasses implement ``serve`` and the refusal texts."""

    max_line = 2048

    def __init__(self, listener: Listener):
        self.listener = listener
        self.transport = None  # an asyncio or uvloop transport
        self.client_ip = "unknown"
        self.id = f"{listener.name}#{next(_ids)}"
        self.buffer = bytearray()
        self.out: list[bytes] = []
        self.eof = False
        self.task: asyncio.Task | None = None
        self._counted = False
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future | None = None
        self._waiting_since = 0.0
        self.idle_limit = listener.idle_timeout  # IMAP's IDLE raises it
        self._writable: asyncio.Future | None = None
        self._reading_paused = False
        self._deflate = None  # zlib streams once COMPRESS=DEFLATE is on
        self._inflate = None

    # What a protocol defines -------------------------------------------------------

    async def serve(self) -> None:
        raise NotImplementedError

    def refusal(self, reason: str) -> bytes:
        """The bytes that turn a client away: reason is "shutdown" or "too many connections"."""
        raise NotImplementedError

    def may_stop_now(self) -> bool:
        """Whether a shutdown may end this session now (not in the middle of a transfer)."""
        return True

    # asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else "unknown"
        listener = self.listener
        if listener.closing:
            return self._turn_away("shutdown")
        if listener.counter[self.client_ip] >= listener.per_ip_limit:
            log.warning("too many connections from %s on %s", self.client_ip, listener.name)
            return self._turn_away("too many connections")
        listener.counter[self.client_ip] += 1
        self._counted = True
        listener.connections.add(self)
        self.task = self._loop.create_task(self._run())

    def _turn_away(self, reason: str) -> None:
        self.transport.write(self.refusal(reason))
        self.transport.close()

    async def _run(self) -> None:
        try:
            await self.serve()
        finally:
            await self.close()

    def data_received(self, data: bytes) -> None:
        if self._inflate is not None:
            data = self._inflate.decompress(data, _MAX_INFLATED)
            if self._inflate.unconsumed_tail:  # one packet inflating past 16 MiB: a bomb
                log.warning("%s: compressed input too large, closing", self.id)
                self.transport.abort()
                return
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
        if self._counted:
            counter = self.listener.counter
            counter[self.client_ip] -= 1
            if counter[self.client_ip] <= 0:
                del counter[self.client_ip]
            self._counted = False
        self.listener.connections.discard(self)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def time_out_if_idle(self, now: float) -> None:
        if self._waiter is not None and not self._waiter.done() and now - self._waiting_since > self.idle_limit:
            self._waiter.set_exception(asyncio.TimeoutError())

    # Reading -----------------------------------------------------------------------

    async def wait_for_input(self) -> None:
        """Send what is pending, then wait for more input.

        Raises Closed at EOF, ShuttingDown when the server stops and the session
        may stop, asyncio.TimeoutError after the idle timeout.
        """
        if self.eof:
            raise Closed
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
        if self.listener.closing and self.may_stop_now():
            raise ShuttingDown
        if self.eof and not self.buffer:
            raise Closed

    async def read_line(self, limit: int | None = None) -> bytes | TooLong:
        """The next line without its CRLF (or bare LF); TOO_LONG for one over ``limit``."""
        limit = limit or self.max_line
        discarding = False
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                if discarding or len(line) > limit:
                    return TOO_LONG
                return line.rstrip(b"\n").removesuffix(b"\r")
            if len(self.buffer) > limit:
                self.buffer.clear()
                discarding = True
            if self.eof:
                raise Closed
            await self.wait_for_input()

    async def read_exactly(self, size: int, keep: bool = True) -> bytes:
        """The next ``size`` octets (dropped as they come when ``keep`` is false)."""
        remaining = size
        parts: list[bytes] = []
        while True:
            take = min(remaining, len(self.buffer))
            if take:
                if keep:
                    parts.append(bytes(self.buffer[:take]))
                del self.buffer[:take]
                remaining -= take
            if remaining == 0:
                return b"".join(parts)
            await self.wait_for_input()

    # Writing -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.out.append(data)

    async def flush(self) -> None:
        if self.out and self.transport is not None and not self.transport.is_closing():
            data = b"".join(self.out)
            if self._deflate is not None:
                data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self.transport.write(data)
        self.out.clear()
        if self._writable is not None:
            await self._writable

    async def start_deflate(self) -> None:
        """From now on both directions are raw DEFLATE streams (RFC 4978 §4, RFC 1951).

        What is pending is sent uncompressed first; input the client already sent after its
        command was compressed, so it is inflated now.
        """
        await self.flush()
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        pending, self.buffer = bytes(self.buffer), bytearray()
        if pending:
            self.data_received(pending)

    def ack_now(self) -> None:
        """Acknowledge received data at once instead of after the kernel's delayed-ACK timer.

        After a continuation request the client sends a literal; a client whose Nagle
        holds back the literal's last bytes until our ACK would otherwise wait ~40 ms.
        """
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None and hasattr(socket, "TCP_QUICKACK"):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            except OSError:
                pass

    @property
    def compressed(self) -> bool:
        return self._deflate is not None

    async def start_tls(self) -> bool:
        """Upgrade to TLS; anything the client sent before the handshake is discarded.

        (RFC 3207 §5, RFC 9051 §6.2.1, RFC 2595 §3.1: the STARTTLS injection flaw.)
        """
        await self.flush()
        self.buffer.clear()
        try:
            transport = await self._loop.start_tls(self.transport, self, self.listener.ssl_context,
                                                   server_side=True, ssl_handshake_timeout=30)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            log.info("%s: TLS handshake failed with %s: %s", self.id, self.client_ip, e)
            return False
        if transport is None:
            return False
        self.transport = transport
        self.buffer.clear()
        return True

    @property
    def tls(self) -> str:
        """e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)", "" without TLS."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        if ssl_object is None:
            return ""
        name, _, bits = ssl_object.cipher() or ("unknown", "", 0)
        return f"{ssl_object.version()} with cipher {name} ({bits}/{bits} bits)"

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), 5)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        if self.transport is not None:
            self.transport.close()
        self.listener.connections.discard(self)
