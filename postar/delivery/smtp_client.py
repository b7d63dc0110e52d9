"""The SMTP client side (RFC 5321): one connection to another domain's mail server.

EHLO (HELO when EHLO is refused), STARTTLS (RFC 3207) with the context the TLS
policy asks for, and one transaction per message with all its recipients of
that destination: with PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in
one write. Parameters follow what the server offers: SIZE (RFC 1870),
BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), and the DSN parameters
(RFC 3461) passed on when it offers DSN. Every failure is an ``SMTPFailure``
saying whether it is worth retrying and at which stage it happened.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from postar.message.lines import dot_stuffed

MAX_REPLY_LINE = 4096
MAX_REPLY_LINES = 100


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class SMTPFailure(Exception):
    """The connection or the session failed: nothing was delivered on it."""

    def __init__(self, reason: str, *, temporary: bool = True, reply: Reply | None = None, stage: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.reply = reply
        self.stage = stage  # "mail" when the server refused the sender itself


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[tuple[str, str, str], ...]  # (address, NOTIFY, ORCPT)
    envid: str = ""
    ret: str = ""
    smtputf8: bool = False  # the submitter declared SMTPUTF8

    def needs_smtputf8(self, content: bytes) -> bool:
        """RFC 6531 §3.4: only a message with UTF-8 in its addresses or header needs the extension."""
        if not self.smtputf8:
            return False
        end = content.find(b"\r\n\r\n")
        return not (self.sender.isascii() and all(a.isascii() for a, _, _ in self.recipients)
                    and content[:end if end >= 0 else len(content)].isascii())


@dataclass
class Outcome:
    """The server's answer for each recipient (by address) and to the end of DATA."""

    recipients: dict[str, Reply] = field(default_factory=dict)
    data: Reply | None = None


class SMTPClient:
    def __init__(self, local_hostname: str, timeout: float):
        self.local_hostname = local_hostname
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self.tls = ""  # e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384" once STARTTLS is done
        self.replied = False  # the server answered MAIL in the current transaction
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self, address: str, port: int, connect_timeout: float,
                      implicit_tls: ssl.SSLContext | None = None, server_hostname: str = "") -> Reply:
        """Connect and read the greeting; with ``implicit_tls``, TLS from the start (RFC 8314, port 465)."""
        tls = {"ssl": implicit_tls, "server_hostname": server_hostname} if implicit_tls else {}
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(address, port, limit=MAX_REPLY_LINE * 4, **tls), connect_timeout)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            raise SMTPFailure(f"connect to {address}:{port} failed: {e or 'timed out'}") from None
        if implicit_tls is not None:
            self._note_tls(self._writer.get_extra_info("ssl_object"))
        greeting = await self.read_reply(connect_timeout)
        if greeting.code != 220:
            raise SMTPFailure(f"greeting: {greeting}", temporary=not greeting.permanent, reply=greeting)
        return greeting

    async def hello(self) -> None:
        reply = await self.command(f"EHLO {self.local_hostname}")
        if reply.code != 250:
            self.extensions = {}
            reply = await self.command(f"HELO {self.local_hostname}")
            if reply.code != 250:
                raise SMTPFailure(f"HELO: {reply}", temporary=not reply.permanent, reply=reply)
            return
        self.extensions = {}
        for line in reply.lines[1:]:
            keyword, _, value = line.partition(" ")
            self.extensions[keyword.upper()] = value

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> ssl.SSLObject:
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            raise SMTPFailure(f"STARTTLS: {reply}", temporary=not reply.permanent, reply=reply)
        try:
            await asyncio.wait_for(self._writer.start_tls(context, server_hostname=server_hostname), self.timeout)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as e:
            raise SMTPFailure(f"TLS handshake failed: {e or 'timed out'}") from None
        ssl_object = self._writer.get_extra_info("ssl_object")
        self._note_tls(ssl_object)
        await self.hello()  # RFC 3207 §4.2: forget what was learnt before TLS
        return ssl_object

    def _note_tls(self, ssl_object: ssl.SSLObject) -> None:
        cipher = ssl_object.cipher()
        self.tls = f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

    async def send(self, envelope: Envelope, content: bytes) -> Outcome:
        """One transaction; refused recipients are in the outcome, not raised."""
        mail = f"MAIL FROM:<{envelope.sender}>" + self._mail_parameters(envelope, content)
        rcpts = [f"RCPT TO:<{address}>" + self._rcpt_parameters(notify, orcpt)
                 for address, notify, orcpt in envelope.recipients]
        outcome = Outcome()
        self.replied = False
        if "PIPELINING" in self.extensions:
            self._write("".join(f"{line}\r\n" for line in [mail, *rcpts, "DATA"]))
            mail_reply = await self.read_reply()
            self.replied = True
            for (address, _, _), _ in zip(envelope.recipients, rcpts):
                outcome.recipients[address] = await self.read_reply()
            data_reply = await self.read_reply()
        else:
            mail_reply = await self.command(mail)
            self.replied = True
            if mail_reply.ok:
                for (address, _, _), line in zip(envelope.recipients, rcpts):
                    outcome.recipients[address] = await self.command(line)
            data_reply = None
            if any(r.ok for r in outcome.recipients.values()):
                data_reply = await self.command("DATA")
        if not mail_reply.ok:
            raise SMTPFailure(f"MAIL FROM: {mail_reply}", temporary=not mail_reply.permanent, reply=mail_reply,
                               stage="mail")
        if data_reply is None or data_reply.code != 354:
            if any(r.ok for r in outcome.recipients.values()):  # accepted recipients, DATA refused
                reply = data_reply or Reply(451, ("DATA was not accepted",))
                raise SMTPFailure(f"DATA: {reply}", temporary=not reply.permanent, reply=reply)
            await self._reset()
            return outcome
        self._write_bytes(dot_stuffed(content))
        outcome.data = await self.read_reply(2 * self.timeout)  # RFC 5321 §4.5.3.2.6: 10 minutes
        return outcome

    def _mail_parameters(self, envelope: Envelope, content: bytes) -> str:
        params = []
        if "SIZE" in self.extensions:
            params.append(f"SIZE={len(content)}")
        if not content.isascii():
            params.append("BODY=8BITMIME")
        if envelope.needs_smtputf8(content):
            params.append("SMTPUTF8")
        if "DSN" in self.extensions:
            if envelope.ret:
                params.append(f"RET={envelope.ret}")
            if envelope.envid:
                params.append(f"ENVID={envelope.envid}")
        return "".join(" " + p for p in params)

    def _rcpt_parameters(self, notify: str, orcpt: str) -> str:
        if "DSN" not in self.extensions:
            return ""
        return (f" NOTIFY={notify}" if notify else "") + (f" ORCPT={orcpt}" if orcpt else "")

    async def _reset(self) -> None:
        try:
            await self.command("RSET")
        except SMTPFailure:
            pass

    async def quit(self) -> None:
        if self._writer is None:
            return
        try:
            self._write("QUIT\r\n")
            await asyncio.wait_for(self._reader.read(1024), 5)
        except (SMTPFailure, OSError, asyncio.TimeoutError, ssl.SSLError):
            pass  # the server went first: nothing to say goodbye to
        self.close()

    @property
    def usable(self) -> bool:
        """Connected and not closed by either side (as far as can be told without a read)."""
        return self._writer is not None and not self._writer.is_closing() and not self._reader.at_eof()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # Wire -------------------------------------------------------------------------------

    async def command(self, line: str) -> Reply:
        self._write(line + "\r\n")
        return await self.read_reply()

    def _write(self, text: str) -> None:
        self._write_bytes(text.encode("utf-8"))

    def _write_bytes(self, data: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise SMTPFailure("connection closed by the remote server")
        self._writer.write(data)

    async def read_reply(self, timeout: float | None = None) -> Reply:
        """One reply, all its lines (RFC 5321 §4.2.1), within one timeout."""
        await self._drain()
        lines: list[str] = []
        try:
            async with asyncio.timeout(timeout or self.timeout):
                while True:
                    raw = await self._reader.readuntil(b"\n")
                    line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                    if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                        raise SMTPFailure(f"malformed reply from the remote server: {line[:100]!r}")
                    lines.append(line[4:])
                    if len(line) == 3 or line[3] == " " or len(lines) >= MAX_REPLY_LINES:
                        return Reply(int(line[:3]), tuple(lines))
        except TimeoutError:
            raise SMTPFailure("timed out waiting for the remote server's reply") from None
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError):
            raise SMTPFailure("connection lost while waiting for a reply") from None

    async def _drain(self) -> None:
        if self._writer.transport.get_write_buffer_size() == 0:
            return  # nothing waiting to go out: no timer needed
        try:
            async with asyncio.timeout(self.timeout):
                await self._writer.drain()
        except (OSError, TimeoutError, ssl.SSLError):
            raise SMTPFailure("connection lost while sending") from None
