"""A scripted SMTP server for the fault cases of outbound delivery.

Each connection follows a ``Behaviour``: the greeting, the EHLO extensions, the
reply to MAIL, to each recipient, to DATA and after the message, and where to
stall (never answer) or drop the connection. A list of behaviours is used one
per connection, the last repeating, so the first attempt can see 451 and the
second 250. Every session is recorded for assertions: EHLO name, TLS version,
the MAIL and RCPT lines with their parameters, the message unstuffed, and the
commands grouped by how they arrived, which shows whether the client pipelined.

Blocking sockets, one thread per connection: STARTTLS then wraps the very socket
the commands came on, and whatever plaintext the client pipelined after
STARTTLS is left in our own buffer, where it is recorded and discarded
(RFC 3207 §4.2) instead of being read as if it had come over TLS.
"""

from __future__ import annotations

import base64
import enum
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence


class Action(enum.Enum):
    STALL = "stall"  # never answer; keep reading (and recording) until the client closes
    DROP = "drop"  # close the connection without answering


STALL = Action.STALL
DROP = Action.DROP
Reply = str | Action  # a reply's lines ("250-a\n250 b" for several), or an Action

DEFAULT_EXTENSIONS = ("PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN")
HOSTNAME = "mx.scripted.test"


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one connection; every reply may be STALL or DROP too.

    A reply with code 421 is sent and the connection closed (RFC 5321 §3.8).
    ``mail`` and ``final`` may be lists: one per transaction on the connection,
    the last repeating. ``cut_data_after`` takes ``final`` as soon as that many
    bytes of message content have arrived (at the end at the latest): give it
    STALL or DROP to stall or drop mid-DATA.
    """

    greeting: Reply | None = None  # None: "220 <hostname> ESMTP scripted"
    hostname: str = HOSTNAME  # in the greeting and the first line of the EHLO reply
    extensions: Sequence[str] = DEFAULT_EXTENSIONS
    # A server-side context; offers STARTTLS when set. Its sni_callback is set to record
    # the name the client asks for, unless it has one already.
    tls: ssl.SSLContext | None = None
    ehlo: Reply | None = None  # instead of the 250 extension list, e.g. "502 5.5.1 No EHLO"
    starttls: Reply = "220 2.0.0 Ready to start TLS"
    mail: Reply | Sequence[Reply] = "250 2.1.0 Ok"
    rcpt: Mapping[str, Reply] = field(default_factory=dict)  # address -> reply
    rcpt_default: Reply = "250 2.1.5 Ok"
    data: Reply = "354 End data with <CR><LF>.<CR><LF>"
    final: Reply | Sequence[Reply] = "250 2.0.0 Ok: queued"
    cut_data_after: int | None = None
    # user -> password: AUTH PLAIN is offered after STARTTLS, as a provider's submission server does
    logins: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Recipient:
    line: str  # the RCPT command as sent
    address: str
    params: dict[str, str | None]
    reply: str  # the reply sent, or "stall" / "drop"

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")


@dataclass
class Transaction:
    line: str  # the MAIL command as sent, e.g. "MAIL FROM:<a@b.test> BODY=8BITMIME"
    sender: str
    params: dict[str, str | None]  # keywords upper-cased: {"BODY": "8BITMIME", "SMTPUTF8": None}
    recipients: list[Recipient] = field(default_factory=list)
    data: bytes | None = None  # message content, unstuffed, CRLF as sent; partial unless complete
    complete: bool = False  # the terminating "." arrived
    final: str | None = None  # the reply to the message, or "stall" / "drop"
    started: float = field(default_factory=time.monotonic)  # when MAIL arrived

    @property
    def accepted(self) -> list[str]:
        return [r.address for r in self.recipients if r.accepted]


@dataclass
class Session:
    number: int  # 1 for the first connection
    peer: tuple[str, int]
    behaviour: Behaviour
    ehlo: str | None = None  # the name in the last EHLO or HELO
    tls_version: str | None = None  # e.g. "TLSv1.3" once STARTTLS succeeded
    sni: str | None = None  # the server name the client sent in its TLS hello
    tls_error: str | None = None
    plaintext_after_starttls: bytes = b""  # pipelined after STARTTLS, discarded; must be empty
    commands: list[str] = field(default_factory=list)  # every command line, in order
    # Commands that arrived together: a batch ends where the server found no further
    # command waiting, and at DATA. Several in one batch means the client pipelined.
    batches: list[list[str]] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)  # "C: ..." and "S: ..." lines
    unanswered: bytes = b""  # what arrived after the server began to stall
    quit: bool = False
    open: bool = True
    login: str | None = None  # the user of a successful AUTH
    started: float = field(default_factory=time.monotonic)  # when the connection was accepted

    @property
    def tls(self) -> bool:
        return self.tls_version is not None

    @property
    def messages(self) -> list[bytes]:
        """The content of every message that arrived whole."""
        return [t.data for t in self.transactions if t.complete and t.data is not None]


class Closed(Exception):
    """The conversation is over: the client left, or the server dropped or stalled."""


PATH = re.compile(r"(?i)^(MAIL FROM|RCPT TO):\s*<([^>]*)>\s*(.*)$")


def parse_path(line: str) -> tuple[str, dict[str, str | None]] | None:
    """The address and ESMTP parameters of a MAIL or RCPT line (RFC 5321 §4.1.2)."""
    match = PATH.match(line)
    if match is None:
        return None
    params: dict[str, str | None] = {}
    for word in match.group(3).split():
        key, equals, value = word.partition("=")
        params[key.upper()] = value if equals else None
    return match.group(2), params


def pick(replies: Reply | Sequence[Reply], index: int) -> Reply:
    if isinstance(replies, (str, Action)):
        return replies
    return replies[min(index, len(replies) - 1)]


class Conversation:
    """One connection: reads commands, answers as its Behaviour says, records a Session."""

    def __init__(self, sock: socket.socket, session: Session):
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.behaviour = session.behaviour
        self.buffer = bytearray()
        self.waited = True  # the next command starts a new batch
        self.greeted = False
        self.transaction: Transaction | None = None
        self.lock = threading.Lock()
        self.closed = False

    def run(self) -> None:
        try:
            # RFC 5321 §3.1: after a greeting other than 220 only QUIT is served.
            greeting = self.behaviour.greeting or f"220 {self.behaviour.hostname} ESMTP scripted"
            in_service = self.reply(greeting).startswith("220")
            while True:
                line = self.read_command()
                verb = line.split(" ", 1)[0].upper()
                handler = COMMANDS.get(verb)
                if not in_service and verb != "QUIT":
                    self.reply("503 5.5.1 Error: no service")
                elif handler is None:
                    self.reply("500 5.5.2 Error: command not recognized")
                else:
                    handler(self, line)
        except (Closed, OSError):
            pass
        except Exception as error:  # a bug here: make it visible in the transcript
            self.session.transcript.append(f"-- server error: {error!r}")
            raise
        finally:
            with self.lock:
                self.closed = True
                self.sock.close()
            self.session.open = False

    def abort(self) -> None:
        """Wake a blocked read from another thread (server stop)."""
        with self.lock:
            if self.closed:
                return
            # self.sock may be mid-way to an SSLSocket; the descriptor stays the same.
            try:
                with socket.socket(fileno=os.dup(self.fd)) as duplicate:
                    duplicate.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # I/O

    def fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed
        self.buffer += chunk

    def read_command(self) -> str:
        if not self.buffer:
            self.waited = True
        while (end := self.buffer.find(b"\n")) < 0:
            self.fill()
        raw = bytes(self.buffer[:end + 1])
        del self.buffer[:end + 1]
        line = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        self.session.commands.append(line)
        self.session.transcript.append(f"C: {line}")
        if self.waited or not self.session.batches:
            self.session.batches.append([])
            self.waited = False
        self.session.batches[-1].append(line)
        return line

    def reply(self, reply: Reply) -> str:
        """Send ``reply``; return its text. STALL and DROP end the conversation."""
        if reply is DROP:
            self.session.transcript.append("S: (drop)")
            raise Closed
        if reply is STALL:
            self.session.transcript.append("S: (stall)")
            self.stall()
        lines = reply.split("\n")
        self.session.transcript.extend(f"S: {line}" for line in lines)
        self.sock.sendall("".join(f"{line}\r\n" for line in lines).encode())
        if reply.startswith("421"):
            raise Closed
        return reply

    def stall(self) -> None:
        """Never answer again; keep reading, so the client's closing is seen."""
        self.session.unanswered = bytes(self.buffer)
        self.buffer.clear()
        while chunk := self.sock.recv(65536):
            self.session.unanswered += chunk
        raise Closed

    def read_content(self, transaction: Transaction) -> None:
        """Read the message up to "." (RFC 5321 §4.5.2 unstuffing) or the cut."""
        cut = self.behaviour.cut_data_after
        data = bytearray()
        consumed = 0
        try:
            while True:
                while (end := self.buffer.find(b"\r\n")) >= 0:
                    line = bytes(self.buffer[:end + 2])
                    del self.buffer[:end + 2]
                    consumed += len(line)
                    if line == b".\r\n":
                        transaction.complete = True
                        return
                    data += line[1:] if line.startswith(b".") else line
                    if cut is not None and consumed >= cut:
                        return
                if cut is not None and consumed + len(self.buffer) >= cut:
                    data += self.buffer  # a partial line; unstuffing cannot be told yet
                    self.buffer.clear()
                    return
                self.fill()
        finally:
            transaction.data = bytes(data)

    # Commands (RFC 5321 §4.1.1), one handler each

    def do_ehlo(self, line: str) -> None:
        self.greet(line)
        if self.behaviour.ehlo is not None:
            self.reply(self.behaviour.ehlo)
            return
        extensions = list(self.behaviour.extensions)
        if self.behaviour.tls is not None and not self.session.tls:
            extensions.append("STARTTLS")
        if self.behaviour.logins and self.session.tls:
            extensions.append("AUTH PLAIN")
        keywords = [self.behaviour.hostname, *extensions]
        self.reply("\n".join(f"250{' ' if i == len(keywords) - 1 else '-'}{k}"
                             for i, k in enumerate(keywords)))

    def do_helo(self, line: str) -> None:
        self.greet(line)
        self.reply(f"250 {self.behaviour.hostname}")

    def greet(self, line: str) -> None:
        self.session.ehlo = line.partition(" ")[2].strip() or None
        self.greeted = True
        self.transaction = None

    def do_auth(self, line: str) -> None:
        words = line.split()
        if not (self.behaviour.logins and self.session.tls) or len(words) != 3 or words[1].upper() != "PLAIN":
            self.reply("504 5.5.4 Error: only AUTH PLAIN with an initial response, over TLS")
            return
        try:
            _, user, password = base64.b64decode(words[2]).decode().split("\0")
        except ValueError:
            self.reply("501 5.5.2 Error: malformed response")
            return
        if self.behaviour.logins.get(user) == password:
            self.session.login = user
            self.reply("235 2.7.0 Authentication successful")
        else:
            self.reply("535 5.7.8 Error: authentication failed")

    def do_starttls(self, line: str) -> None:
        if self.behaviour.tls is None or self.session.tls:
            self.reply("502 5.5.1 Error: command not implemented")
            return
        if not self.reply(self.behaviour.starttls).startswith("220"):
            return
        self.session.plaintext_after_starttls = bytes(self.buffer)
        self.buffer.clear()
        context = self.behaviour.tls
        if context.sni_callback is None:
            context.sni_callback = record_sni
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as error:
            self.session.tls_error = str(error)
            raise Closed
        self.session.tls_version = self.sock.version()
        self.session.sni = getattr(self.sock, "sni", None)
        self.session.transcript.append(f"-- TLS {self.session.tls_version}")
        self.greeted = False  # RFC 3207 §4.2: forget everything, expect EHLO again
        self.transaction = None

    def do_mail(self, line: str) -> None:
        parsed = parse_path(line)
        if not self.greeted:
            self.reply("503 5.5.1 Error: send HELO/EHLO first")
        elif self.transaction is not None:
            self.reply("503 5.5.1 Error: nested MAIL command")
        elif parsed is None or not line.upper().startswith("MAIL FROM:"):
            self.reply("501 5.5.4 Syntax: MAIL FROM:<address>")
        else:
            transaction = Transaction(line, *parsed)
            self.session.transactions.append(transaction)
            reply = pick(self.behaviour.mail, len(self.session.transactions) - 1)
            if isinstance(reply, str) and reply.startswith("2"):
                self.transaction = transaction
            self.reply(reply)

    def do_rcpt(self, line: str) -> None:
        parsed = parse_path(line)
        if self.transaction is None:
            self.reply("503 5.5.1 Error: need MAIL command")
        elif parsed is None or not line.upper().startswith("RCPT TO:"):
            self.reply("501 5.5.4 Syntax: RCPT TO:<address>")
        else:
            address, params = parsed
            replies = self.behaviour.rcpt
            reply = replies.get(address, replies.get(address.lower(), self.behaviour.rcpt_default))
            self.transaction.recipients.append(Recipient(line, address, params, text(reply)))
            self.reply(reply)

    def do_data(self, line: str) -> None:
        transaction = self.transaction
        if transaction is None:
            self.reply("503 5.5.1 Error: need MAIL command")
            return
        if not transaction.accepted:
            self.reply("554 5.5.1 Error: no valid recipients")
            return
        if not self.reply(self.behaviour.data).startswith("354"):
            return
        self.read_content(transaction)
        self.waited = True  # RFC 2920 §3.1: DATA ends a group; what follows the "." starts one
        self.transaction = None
        reply = pick(self.behaviour.final, self.session.transactions.index(transaction))
        transaction.final = text(reply)
        self.reply(reply)

    def do_rset(self, line: str) -> None:
        self.transaction = None
        self.reply("250 2.0.0 Ok")

    def do_noop(self, line: str) -> None:
        self.reply("250 2.0.0 Ok")

    def do_quit(self, line: str) -> None:
        self.session.quit = True
        self.reply("221 2.0.0 Bye")
        raise Closed


def record_sni(tls_socket: ssl.SSLSocket, server_name: str | None, context: ssl.SSLContext) -> None:
    tls_socket.sni = server_name  # read back by do_starttls; None when the client sent none


def text(reply: Reply) -> str:
    return reply.value if isinstance(reply, Action) else reply


COMMANDS: dict[str, Callable[[Conversation, str], None]] = {
    "EHLO": Conversation.do_ehlo,
    "HELO": Conversation.do_helo,
    "STARTTLS": Conversation.do_starttls,
    "AUTH": Conversation.do_auth,
    "MAIL": Conversation.do_mail,
    "RCPT": Conversation.do_rcpt,
    "DATA": Conversation.do_data,
    "RSET": Conversation.do_rset,
    "NOOP": Conversation.do_noop,
    "QUIT": Conversation.do_quit,
}


class ScriptedSMTP:
    """A scripted SMTP server on ``ip``:``port``; connection n follows behaviours[n-1].

    The last behaviour repeats; ``script()`` sets new ones for the connections
    that follow. Use as a context manager or call ``start()`` and ``stop()``.
    """

    def __init__(self, ip: str, port: int, *behaviours: Behaviour):
        self.ip = ip
        self.port = port
        self.lock = threading.Lock()
        self._sessions: list[Session] = []
        self._conversations: list[Conversation] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self.script(*behaviours)

    def script(self, *behaviours: Behaviour) -> None:
        """Behaviours for the next connections, one each, the last repeating."""
        with self.lock:
            self._script = list(behaviours) or [Behaviour()]
            self._script_from = len(self._sessions)

    @property
    def sessions(self) -> list[Session]:
        """Every connection so far, the first first."""
        with self.lock:
            return list(self._sessions)

    @property
    def connections(self) -> int:
        return len(self.sessions)

    def wait_for(self, condition: Callable[[list[Session]], bool], timeout: float = 10.0) -> list[Session]:
        """The sessions, once ``condition(sessions)`` holds; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not condition(sessions := self.sessions):
            if time.monotonic() > deadline:
                raise AssertionError("condition not met; transcripts:\n" + "\n\n".join(
                    "\n".join(s.transcript) for s in sessions))
            time.sleep(0.01)
        return sessions

    def wait_closed(self, count: int = 1, timeout: float = 10.0) -> list[Session]:
        """The sessions, once at least ``count`` connections came and all have ended."""
        return self.wait_for(lambda s: len(s) >= count and not any(x.open for x in s), timeout)

    def start(self) -> None:
        self._listener = socket.create_server((self.ip, self.port))  # SO_REUSEADDR on POSIX
        self._accepting = threading.Thread(target=self._accept, args=(self._listener,), daemon=True,
                                           name=f"scripted-smtp-{self.ip}:{self.port}")
        self._accepting.start()

    def stop(self) -> None:
        """Close the listener and every connection, stalled ones too; wait for the threads."""
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        listener.close()
        self._accepting.join(timeout=10)
        with self.lock:
            conversations = list(self._conversations)
        for conversation in conversations:
            conversation.abort()
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, peer = listener.accept()
            except OSError:
                return
            with self.lock:
                index = len(self._sessions) - self._script_from
                behaviour = self._script[min(index, len(self._script) - 1)]
                session = Session(len(self._sessions) + 1, peer, behaviour)
                conversation = Conversation(sock, session)
                self._sessions.append(session)
                self._conversations.append(conversation)
                thread = threading.Thread(target=conversation.run, daemon=True,
                                          name=f"scripted-smtp-session-{session.number}")
                self._threads.append(thread)
            thread.start()

    def __enter__(self) -> ScriptedSMTP:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
