"""What every line-based listener shares: accepting, buffering, TLS, limits, shutdown.

``Listener`` owns one listening socket and its connections: the connection
limit per client address (counted over all listeners that share one
``ConnectionCounter``), the idle timeout (one sweep a second over all
connections costs less than a timer per read), and shutdown. ``Connection`` is
an ``asyncio.Protocol`` with its own input buffer, so a protocol can search a
large block for its terminator instead of reading a line at a time, and
replies to pipelined commands are written together when the input runs dry.
SMTP, IMAP and POP3 subclass it with their own ``serve`` loop.

Every session gets its turn, and every session ends (docs/security.md):
- input is read no faster than it is served: above ``INPUT_HIGH_WATER`` octets of
  unprocessed input the socket is not read (TCP flow control holds the client
  back), and COMPRESS=DEFLATE input is inflated only as far as that bound;
- after ``COMMANDS_PER_TURN`` commands served from buffered input, or once
  ``OUTPUT_HIGH_WATER`` octets of replies are queued, the replies are sent, the
  session waits until the client takes them, and the loop gets a turn;
- a connection is counted, per address and in total, when it is accepted, before
  any TLS handshake; over a limit it gets the protocol's busy reply and is closed;
- deadlines: signing in (``login``), each command line once begun (``command``),
  each transfer at a minimum rate (Postfix's smtpd_min_data_rate), idleness
  between commands, and replies the client does not take (the write deadline).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
import zlib
from typing import Callable

from postar.session_limits import ConnectionCounter, Deadlines, Expired

log = logging.getLogger("postar")

INPUT_HIGH_WATER = 64 * 1024
OUTPUT_HIGH_WATER = 64 * 1024
COMMANDS_PER_TURN = 32
HANDSHAKE_TIMEOUT = 30.0
MAX_TLS_REFUSALS = 32  # refused implicit-TLS connections given a handshake for their busy reply
REFUSAL_TIMEOUT = 5.0
_ids = itertools.count(1)


class Closed(Exception):
    """The client went away."""


class ShuttingDown(Exception):
    """The server is stopping and this session may stop now."""


class TooLong:
    """What ``read_line`` returns for a line over its limit (the line is consumed)."""


TOO_LONG = TooLong()


class _Refusal(asyncio.Protocol):
    """A refused connection: whatever it sends is ignored."""


class Listener:
    def __init__(self, name: str, connection_class: Callable[["Listener"], "Connection"], *,
                 per_ip_limit: int, deadlines: Deadlines, counter: ConnectionCounter,
                 ssl_context: ssl.SSLContext | None, implicit_tls: bool):
        self.name = name
        self.connection_class = connection_class
        self.per_ip_limit = per_ip_limit
        self.deadlines = deadlines
        self.counter = counter
        self.ssl_context = ssl_context
        self.implicit_tls = implicit_tls
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task] = set()  # held until done: a pending task is never garbage
        self.closing = False
        self._server: asyncio.Server | None = None
        self._tls_socket: socket.socket | None = None
        self._acceptor: asyncio.Task | None = None
        self._refusing = 0
        self._sweeper: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        if self.implicit_tls:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._tls_socket = socket.create_server((host, port), family=family, backlog=1024)
            self._tls_socket.setblocking(False)
            self._acceptor = loop.create_task(self._accept_tls(self._tls_socket))
        else:
            self._server = await loop.create_server(
                lambda: self.connection_class(self), host, port, backlog=1024, reuse_address=True)
        self._sweeper = loop.create_task(self._sweep_idle())

    @property
    def sockets(self) -> list:
        if self._tls_socket is not None:
            return [self._tls_socket]
        return list(self._server.sockets) if self._server else []

    async def _accept_tls(self, listening: socket.socket) -> None:
        """Implicit TLS: each connection is counted when accepted, before its handshake, so
        half-open handshakes count against the address and the total like any session."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                accepted, peer = await loop.sock_accept(listening)
            except OSError as e:  # out of descriptors: the total limit should have kept room
                log.warning("%s: accept failed: %s", self.name, e)
                await asyncio.sleep(0.1)
                continue
            address = peer[0]
            refused = "shutdown" if self.closing else self.counter.refusal(address, self.per_ip_limit)
            if refused is not None:
                if refused != "shutdown":
                    log.warning("too many connections from %s on %s (%s)", address, self.name, refused)
                if self._refusing < MAX_TLS_REFUSALS:  # a few get the busy reply over TLS
                    self.hold(self._refuse_over_tls(accepted, refused))
                else:
                    accepted.close()
                continue
            self.counter.add(address)
            self.hold(self._handshake(accepted, address))

    def hold(self, work) -> asyncio.Task:
        """Run ``work`` as a task held in ``tasks`` until it is done (shutdown waits for
        them; a pending task nobody holds could be collected as garbage)."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _refuse_over_tls(self, accepted: socket.socket, reason: str) -> None:
        """The protocol's busy reply over TLS, as over plaintext; at most MAX_TLS_REFUSALS
        at once, so refusals cannot hold descriptors or CPU without bound."""
        loop = asyncio.get_running_loop()
        self._refusing += 1
        try:
            transport, connection = await loop.connect_accepted_socket(
                lambda: _Refusal(), accepted, ssl=self.ssl_context, ssl_handshake_timeout=REFUSAL_TIMEOUT)
            transport.write(self.connection_class.refusal(reason))
            transport.close()
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError):
            accepted.close()
        finally:
            self._refusing -= 1

    async def _handshake(self, accepted: socket.socket, address: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: self.connection_class(self, counted=address), accepted,
                ssl=self.ssl_context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except (OSError, ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
            log.info("%s: TLS handshake failed with %s: %s", self.name, address, e)
            accepted.close()
            self.counter.remove(address)

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.deadlines.shortest / 4))
            now = asyncio.get_running_loop().time()
            for connection in list(self.connections):
                connection.check_deadlines(now)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting; sessions that may stop now are told so, the others get ``grace``."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if self._acceptor is not None:
            self._acceptor.cancel()
            self._tls_socket.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            connection.wake()
        tasks = list(self.tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)


class Connection(asyncio.Protocol):
    """One client connection; subclasses implement ``serve`` and the refusal texts."""

    max_line = 2048

    def __init__(self, listener: Listener, counted: str | None = None):
        self.listener = listener
        self.transport = None  # an asyncio or uvloop transport
        self.client_ip = "unknown"
        self.id = f"{listener.name}#{next(_ids)}"
        self.buffer = bytearray()
        self.out: list[bytes] = []
        self.eof = False
        self.task: asyncio.Task | None = None
        self._counted = counted is not None  # counted already when accepted (implicit TLS)
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future | None = None
        self._waiting_since = 0.0
        self.signed_in = False
        self._connected_at = self._loop.time()
        self._line_started: float | None = None  # a command line begun but not complete
        self._transfer_started: float | None = None
        self._transfer_octets = 0
        self._served = 0  # commands served from buffered input since the loop last had a turn
        self._out_size = 0
        self._writable: asyncio.Future | None = None
        self._write_blocked_since = 0.0
        self._reading_paused = False
        self._deflate = None  # zlib streams once COMPRESS=DEFLATE is on
        self._inflate = None
        self._compressed = b""  # input not yet inflated

    # What a protocol defines -------------------------------------------------------

    async def serve(self) -> None:
        raise NotImplementedError

    @staticmethod
    def refusal(reason: str) -> bytes:
        """The bytes that turn a client away: reason is "shutdown", "too many connections"
        (from its address) or "server busy" (in total)."""
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
        refused = None if self._counted else listener.counter.refusal(self.client_ip, listener.per_ip_limit)
        if refused is not None:
            if refused == "server busy":
                log.warning("%s: server busy (%d connections) on %s, client=%s refused", self.id,
                            listener.counter.total, listener.name, self.client_ip)
            else:
                log.warning("too many connections from %s on %s", self.client_ip, listener.name)
            return self._turn_away(refused)
        if not self._counted:
            listener.counter.add(self.client_ip)
            self._counted = True
        listener.connections.add(self)
        self.task = listener.hold(self._run())

    def _turn_away(self, reason: str) -> None:
        self.transport.write(self.refusal(reason))
        self.transport.close()
        if self._counted:
            self.listener.counter.remove(self.client_ip)
            self._counted = False

    async def _run(self) -> None:
        try:
            await self.serve()
        except Exception:
            log.exception("%s: connection failed", self.id)
        finally:
            await self.close()

    def data_received(self, data: bytes) -> None:
        if self._transfer_started is not None:
            self._transfer_octets += len(data)
        if self._inflate is not None:
            self._compressed += data
            self._inflate_some()
        else:
            self.buffer += data
        if (len(self.buffer) > INPUT_HIGH_WATER or self._compressed) and not self._reading_paused \
                and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self.wake()

    def _inflate_some(self) -> bool:
        """Inflate pending compressed input up to the input bound; True when any came out."""
        room = INPUT_HIGH_WATER + 1 - len(self.buffer)
        if not self._compressed or room <= 0:
            return False
        out = self._inflate.decompress(self._compressed, room)
        self._compressed = self._inflate.unconsumed_tail
        self.buffer += out
        return bool(out)

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
            self.listener.counter.remove(self.client_ip)
            self._counted = False
        self.listener.connections.discard(self)

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()
        self._write_blocked_since = self._loop.time()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def now_signed_in(self) -> None:
        """The client has logged in: the login deadline no longer applies."""
        self.signed_in = True

    def check_deadlines(self, now: float) -> None:
        """Called about once a second: end a session whose current phase is over its time."""
        reason = self._expired(now)
        if reason is None:
            return
        log.info("%s: %s deadline passed, client=%s", self.id, reason, self.client_ip)
        error = Expired(reason)
        if reason == "write":  # it does not read: nothing more can reach it
            self._writable.set_exception(error)
            if self.transport is not None:
                self.transport.abort()
        else:
            self._waiter.set_exception(error)

    def _expired(self, now: float) -> str | None:
        deadlines = self.listener.deadlines
        if self._writable is not None and not self._writable.done():
            return "write" if now - self._write_blocked_since > deadlines.idle else None
        if self._waiter is None or self._waiter.done():
            return None  # working, not waiting for the client
        if deadlines.login and not self.signed_in and now - self._connected_at > deadlines.login:
            return "login"
        if self._transfer_started is not None:
            elapsed = now - self._transfer_started
            allowed = deadlines.command + (self._transfer_octets / deadlines.min_rate if deadlines.min_rate else elapsed)
            if deadlines.command and elapsed > allowed:
                return "transfer"
        elif deadlines.command and self._line_started is not None and now - self._line_started > deadlines.command:
            return "command"
        if now - self._waiting_since > deadlines.idle:
            return "idle"
        return None

    def begin_transfer(self) -> None:
        """A DATA, BDAT or literal transfer starts: the minimum rate applies until it ends."""
        self._transfer_started = self._loop.time()
        self._transfer_octets = 0

    def end_transfer(self) -> None:
        self._transfer_started = None

    # Reading -----------------------------------------------------------------------

    async def wait_for_input(self) -> None:
        """Send what is pending, then wait for more input.

        Raises Closed at EOF, ShuttingDown when the server stops and the session
        may stop, asyncio.TimeoutError after the idle timeout.
        """
        self._served = 0
        if self._compressed and self._inflate_some():
            return
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
                self._line_started = None
                await self._take_turn()
                if discarding or len(line) > limit:
                    return TOO_LONG
                return line.rstrip(b"\n").removesuffix(b"\r")
            if len(self.buffer) > limit:
                self.buffer.clear()
                discarding = True
            if self.eof and not self._compressed:
                raise Closed
            if self._line_started is None and (self.buffer or discarding):
                self._line_started = self._loop.time()
            await self.wait_for_input()

    async def _take_turn(self) -> None:
        """Bound the work done for one connection between two turns of the event loop."""
        self._served += 1
        if self._served >= COMMANDS_PER_TURN or self._out_size >= OUTPUT_HIGH_WATER:
            self._served = 0
            await self.flush()  # waits while the client does not take its replies
            await asyncio.sleep(0)

    async def read_exactly(self, size: int, keep: bool = True) -> bytes:
        """The next ``size`` octets (dropped as they come when ``keep`` is false)."""
        remaining = size
        parts: list[bytes] = []
        self.begin_transfer()
        try:
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
        finally:
            self.end_transfer()

    # Writing -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.out.append(data)
        self._out_size += len(data)

    async def flush(self) -> None:
        """Send what is queued; wait while the client has not taken what was sent before
        (Expired("write") once it has not for the idle limit)."""
        if self.out and self.transport is not None and not self.transport.is_closing():
            data = b"".join(self.out)
            if self._deflate is not None:
                data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
            self.transport.write(data)
        self.out.clear()
        self._out_size = 0
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
        self._compressed, self.buffer = bytes(self.buffer), bytearray()
        self._inflate_some()

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
                                                   server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
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
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        if self.transport is not None:
            self.transport.close()
        self.listener.connections.discard(self)
