"""The SMTP session state machine: commands in, replies and the next read out.

No sockets here. The server feeds each command line, DATA payload, BDAT chunk
or AUTH response to the session, sends the ``Step.reply`` it gets back and
reads what ``Step.next`` asks for. Which commands are allowed when is declared
in one table (``_COMMANDS``) and checked in one gate (``_refusal``); each
handler (``do_mail``...) deals with one verb.

Port policy (RFC 6409, RFC 8314, RFC 3207): on submission, MAIL needs AUTH,
AUTH needs TLS, and the sender must belong to the authenticated account; on the
MX port there is no AUTH and only local recipients are accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Awaitable, Callable

from postar.delivery.accept import LocalRecipient, Trace, accept, new_queue_id
from postar.delivery.routing import Kind
from postar.smtp import replies
from postar.context import Context
from postar.smtp.login import LoginExchange
from postar.smtp.params import MailParams, check_mail_params, check_rcpt_params
from postar.smtp.parser import (
    Address, Auth, Bdat, Data, Hello, Invalid, MailFrom, RcptTo, Simple, parse_command,
)
from postar.smtp.replies import Reply
from postar.store import Account, OutboundRecipient

log = logging.getLogger("postar.smtp")


class Port(Enum):
    MX = "smtp"
    SUBMISSION = "submission"
    SUBMISSIONS = "submissions"


class Next(Enum):
    COMMAND = "command"
    DATA = "data"          # read up to CRLF.CRLF, then call handle_data
    CHUNK = "chunk"        # read Step.chunk_size octets, then call handle_chunk
    AUTH_RESPONSE = "auth"  # read one line, then call handle_auth_response
    STARTTLS = "starttls"  # send the reply, start TLS, then call tls_started
    CLOSE = "close"        # send the reply and close


@dataclass(frozen=True)
class Step:
    reply: Reply | None
    next: Next = Next.COMMAND
    chunk_size: int = 0
    last_chunk: bool = False


class TooBig:
    """What the server passes instead of a payload that exceeded the size limit."""


@dataclass
class Transaction:
    sender: Address | None
    params: MailParams
    recipients: list[str] = field(default_factory=list)
    local_accounts: set[int] = field(default_factory=set)
    outbound: list[OutboundRecipient] = field(default_factory=list)
    local_recipients: list[LocalRecipient] = field(default_factory=list)  # with their DSN parameters
    chunks: list[bytes] | None = None  # BDAT data so far
    chunked_size: int = 0
    chunk_refusal: Reply | None = None  # a BDAT that must be read and then refused


@dataclass(frozen=True)
class _Gate:
    greeted: bool = False
    mail: bool = False
    rcpt: bool = False
    busy: Reply | None = None  # the refusal while a transaction is in progress


class Session:
    def __init__(self, context: Context, port: Port, client_ip: str, connection_id: str, tls: str = ""):
        self.context = context
        self.port = port
        self.client_ip = client_ip
        self.id = connection_id
        self.tls = tls  # description of the TLS in use, "" for none
        self.helo: str | None = None
        self.extended = False
        self.account: Account | None = None
        self.transaction: Transaction | None = None
        self.errors = 0
        self._login: LoginExchange | None = None
        self._blocked_logins = 0

    @property
    def submission(self) -> bool:
        return self.port is not Port.MX

    @property
    def between_chunks(self) -> bool:
        """A BDAT transaction has begun: a shutdown lets it finish, as it lets DATA."""
        return self.transaction is not None and self.transaction.chunks is not None

    # Entry points called by the server ------------------------------------------

    def greeting(self) -> Step:
        return Step(Reply(220, "", f"{self.context.config.hostname} ESMTP postar"))

    async def handle_line(self, line: bytes) -> Step:
        return self._count(await self._guarded(self._dispatch(line)))

    async def _dispatch(self, line: bytes) -> Step:
        command = parse_command(line)
        if isinstance(command, Invalid):
            return Step(command.reply)
        handler, gate = _COMMANDS[type(command) if not isinstance(command, Simple) else command.verb]
        refusal = self._refusal(gate)
        if refusal is not None:
            if isinstance(command, Bdat):
                return self._refuse_chunk(command, refusal)
            return Step(refusal)
        return await handler(self, command)

    async def handle_data(self, payload: bytes | TooBig) -> Step:
        return self._count(await self._guarded(self._finish_data(payload)))

    async def handle_chunk(self, payload: bytes | TooBig, last: bool) -> Step:
        return self._count(await self._guarded(self._take_chunk(payload, last)))

    async def handle_auth_response(self, line: bytes) -> Step:
        return self._count(await self._guarded(self._continue_login(line)))

    def line_too_long(self) -> Step:
        return self._count(Step(replies.LINE_TOO_LONG))

    def tls_started(self, description: str) -> None:
        """RFC 3207 §4.2: forget everything learnt before TLS; the client says EHLO again."""
        self.tls = description
        self.helo = None
        self.transaction = None

    # The gate --------------------------------------------------------------------

    def _refusal(self, gate: _Gate) -> Reply | None:
        if gate.greeted and self.helo is None:
            return replies.NEED_HELO
        if gate.mail and self.transaction is None:
            return replies.NEED_MAIL
        if gate.rcpt and self.transaction is not None and not self.transaction.recipients:
            return replies.NEED_RCPT
        if gate.busy is not None and self.transaction is not None:
            return gate.busy
        return None

    def _count(self, step: Step) -> Step:
        if step.reply is not None and step.reply.is_error and step.next is not Next.CLOSE:
            self.errors += 1
            if self.errors >= self.context.config.limits.errors:
                log.warning("%s: too many errors from %s, closing", self.id, self.client_ip)
                return Step(replies.TOO_MANY_ERRORS, Next.CLOSE)
        return step

    async def _guarded(self, work: Awaitable[Step]) -> Step:
        """Any unexpected failure is logged and answered 451, and the session goes on."""
        try:
            return await work
        except Exception:
            log.exception("%s: error handling a command from %s", self.id, self.client_ip)
            self.transaction = None
            self._login = None
            return Step(replies.LOCAL_ERROR)

    # Handlers, one per verb ------------------------------------------------------

    async def do_hello(self, command: Hello) -> Step:
        """HELO/EHLO (RFC 5321 §4.1.1.1): resets any transaction."""
        self.helo, self.extended, self.transaction = command.domain, command.extended, None
        hostname = self.context.config.hostname
        if not command.extended:
            return Step(replies.HELO_OK(hostname))
        lines = [hostname, "PIPELINING", f"SIZE {self.context.config.limits.message_size}",
                 "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"]
        if not self.tls and self.context.tls_available:
            lines.append("STARTTLS")
        if self.submission and self.tls:
            lines.append("AUTH PLAIN LOGIN")
        return Step(replies.multiline(250, lines))

    async def do_mail(self, command: MailFrom) -> Step:
        """MAIL FROM (RFC 5321 §4.1.1.2)."""
        if self.submission and not self.tls:
            return Step(replies.TLS_REQUIRED)
        if self.submission and self.account is None:
            return Step(replies.AUTH_REQUIRED)
        params = check_mail_params(command.params, self.context.config.limits.message_size)
        if isinstance(params, Reply):
            return Step(params)
        sender = command.sender
        if sender is not None and not sender.is_ascii and not params.smtputf8:
            return Step(replies.NEEDS_SMTPUTF8)
        if self.account is not None and not await self._owns(sender):
            log.warning("%s: sender %s refused for %s, client=%s", self.id, sender or "<>",
                        self.account.address, self.client_ip)
            return Step(replies.SENDER_NOT_OWNED(
                f"<{sender or ''}>: Sender address rejected: not owned by user {self.account.address}"))
        self.transaction = Transaction(sender, params)
        return Step(replies.SENDER_OK)

    async def _owns(self, sender: Address | None) -> bool:
        if sender is None or self.account is None:
            return False
        return str(sender).lower() in await self.context.store.addresses_of(self.account.id)

    async def do_rcpt(self, command: RcptTo) -> Step:
        """RCPT TO (RFC 5321 §4.1.1.3): local recipients always, others only after AUTH."""
        transaction = self.transaction
        if transaction.chunks is not None:
            return Step(replies.BAD_SEQUENCE("Error: RCPT after BDAT"))
        if len(transaction.recipients) >= self.context.config.limits.recipients:
            return Step(replies.TOO_MANY_RECIPIENTS)
        params = check_rcpt_params(command.params)
        if isinstance(params, Reply):
            return Step(params)
        address = command.recipient
        if not address.is_ascii and not transaction.params.smtputf8:
            return Step(replies.NEEDS_SMTPUTF8)
        if self.account is None and (command.source_route or any(c in address.local for c in "@%!")):
            return Step(replies.ROUTING_DENIED(f"<{address}>: Sender-specified routing is not allowed"))
        text = str(address) if address.domain else f"postmaster@{self.context.config.hostname}"
        route = await self.context.router.route(text)
        if route.kind is Kind.UNKNOWN:
            return Step(replies.USER_UNKNOWN(f"<{text}>: Recipient address rejected: user unknown"))
        if route.kind is Kind.REMOTE:
            if self.account is None:
                return Step(replies.RELAY_DENIED(f"<{text}>: Relay access denied"))
            transaction.outbound.append(OutboundRecipient(text, params.notify, params.orcpt))
        else:
            if await self._any_over_quota(route.accounts, transaction.params.size):
                return Step(replies.MAILBOX_FULL(f"<{text}>: Mailbox full"))
            transaction.local_accounts |= route.accounts
            if route.accounts:
                transaction.local_recipients.append(LocalRecipient(text, params.notify, params.orcpt))
            transaction.outbound += [OutboundRecipient(f, params.notify, params.orcpt) for f in route.forwards]
        transaction.recipients.append(text)
        return Step(replies.RECIPIENT_OK)

    async def _any_over_quota(self, accounts: frozenset[int], declared_size: int) -> bool:
        """Whether a recipient's storage (``limits.quota``) cannot take the message: 452 4.2.2
        (RFC 3463: mailbox full), temporary, so the sender retries once mail is deleted."""
        quota = self.context.config.limits.quota
        if not quota:
            return False
        for account_id in accounts:
            if await self.context.store.account_usage(account_id) + declared_size > quota:
                return True
        return False

    async def do_data(self, command: Data) -> Step:
        """DATA (RFC 5321 §4.1.1.4); the payload comes back through handle_data."""
        if self.transaction.chunks is not None:
            return Step(replies.BAD_SEQUENCE("Error: DATA after BDAT"))
        return Step(replies.START_DATA, Next.DATA)

    async def _finish_data(self, payload: bytes | TooBig) -> Step:
        transaction, self.transaction = self.transaction, None
        return await self._deliver(transaction, payload)

    async def do_bdat(self, command: Bdat) -> Step:
        """BDAT (RFC 3030 §2): the chunk is always read, even when it is refused."""
        transaction = self.transaction
        if transaction.chunks is None:
            transaction.chunks = []
        if transaction.chunked_size + command.size > self._size_limit:
            # RFC 3030 §4: a chunk that cannot fit need not be read: refuse it and close,
            # since the octets that follow cannot be told from commands.
            self.transaction = None
            return Step(replies.CHUNK_TOO_BIG, Next.CLOSE)
        return Step(None, Next.CHUNK, command.size, command.last)

    def _refuse_chunk(self, command: Bdat, refusal: Reply) -> Step:
        if self.transaction is None:
            self.transaction = Transaction(None, MailParams(), chunks=[])
        self.transaction.chunk_refusal = refusal
        return Step(None, Next.CHUNK, command.size, command.last)

    async def _take_chunk(self, payload: bytes | TooBig, last: bool) -> Step:
        transaction = self.transaction
        if transaction.chunk_refusal is not None:
            refusal = transaction.chunk_refusal
            self.transaction = None
            return Step(refusal)
        if isinstance(payload, TooBig) or transaction.chunked_size + len(payload) > self._size_limit:
            transaction.chunk_refusal = replies.MESSAGE_TOO_BIG
            transaction.chunks = []
        else:
            transaction.chunks.append(payload)
            transaction.chunked_size += len(payload)
        if not last:
            if transaction.chunk_refusal is not None:
                return Step(transaction.chunk_refusal)
            return Step(replies.CHUNK_OK(f"Ok: {len(payload) if isinstance(payload, bytes) else 0} octets received"))
        self.transaction = None
        if transaction.chunk_refusal is not None:
            return Step(transaction.chunk_refusal)
        return await self._deliver(transaction, b"".join(transaction.chunks))

    @property
    def _size_limit(self) -> int:
        return self.context.config.limits.message_size

    async def _deliver(self, transaction: Transaction, payload: bytes | TooBig) -> Step:
        refusal = None
        if isinstance(payload, TooBig) or len(payload) > self._size_limit:
            refusal = replies.MESSAGE_TOO_BIG
        elif _has_bare_line_ending(payload):
            refusal = replies.BARE_LINE_ENDING
        elif not transaction.recipients:
            refusal = replies.NO_VALID_RECIPIENTS
        if refusal is not None:
            self._log(transaction, "-", 0, refusal)
            return Step(refusal)
        queue_id = new_queue_id()
        sender = str(transaction.sender) if transaction.sender else ""
        queued = await accept(
            self.context.store, self.context.config.hostname, queue_id=queue_id,
            trace=Trace(self.helo or "unknown", self.client_ip, self._protocol(transaction), self.tls),
            sender=sender, recipients=transaction.recipients, data=payload,
            local_accounts=transaction.local_accounts, outbound=transaction.outbound,
            submitter=self.account.id if self.account else None,
            envid=transaction.params.envid, ret=transaction.params.ret, smtputf8=transaction.params.smtputf8,
            sent_copy=await self._sent_copy(), local_recipients=transaction.local_recipients)
        if queued:
            self.context.wake_delivery()
        reply = replies.QUEUED(f"Ok: queued as {queue_id}")
        self._log(transaction, queue_id, len(payload), reply)
        return Step(reply)

    async def _sent_copy(self) -> int | None:
        """The account whose Sent mailbox gets a copy: the submitter's, unless turned off."""
        if self.account is None or not self.context.config.delivery.sent_copy:
            return None
        return self.account.id if await self.context.store.sent_copy_enabled(self.account.id) else None

    def _protocol(self, transaction: Transaction) -> str:
        """RFC 3848 / RFC 6531 §3.7.3 "with" protocol names."""
        base = ("UTF8SMTP" if transaction.params.smtputf8 else "ESMTP") if self.extended else "SMTP"
        return base + ("S" if self.tls else "") + ("A" if self.account else "")

    def _log(self, transaction: Transaction, queue_id: str, size: int, reply: Reply) -> None:
        log.info("%s: client=%s[%s], port=%s%s, from=<%s>, to=%s, size=%d, result=%d %s %s",
                 queue_id, self.helo, self.client_ip, self.port.value,
                 f", sasl_username={self.account.address}" if self.account else "",
                 transaction.sender or "", ",".join(f"<{r}>" for r in transaction.recipients) or "none",
                 size, reply.code, reply.enhanced, reply.text)

    async def do_auth(self, command: Auth) -> Step:
        """AUTH (RFC 4954): submission only, TLS only, once, outside a transaction."""
        if not self.submission:
            return Step(replies.AUTH_NOT_HERE)
        if not self.tls:
            log.warning("%s: plaintext AUTH attempt refused, client=%s", self.id, self.client_ip)
            return Step(replies.ENCRYPTION_REQUIRED)
        if self.account is not None:
            return Step(replies.ALREADY_AUTHENTICATED)
        self._login = LoginExchange(self.context, self.client_ip, self.id)
        return self._login_step(await self._login.start(command.mechanism, command.initial_response))

    async def _continue_login(self, line: bytes) -> Step:
        return self._login_step(await self._login.respond(line))

    def _login_step(self, outcome: Reply | Account) -> Step:
        if isinstance(outcome, Account):
            self.account, self._login = outcome, None
            return Step(replies.AUTH_OK)
        if outcome.code == 334:
            return Step(outcome, Next.AUTH_RESPONSE)
        self._login = None
        if outcome is replies.LOGINS_BLOCKED:
            self._blocked_logins += 1
            if self._blocked_logins > 1:  # told once already: stop listening to it
                return Step(replies.LOGINS_BLOCKED_CLOSING, Next.CLOSE)
        return Step(outcome)

    async def do_starttls(self, command: Simple) -> Step:
        """STARTTLS (RFC 3207): the server discards anything the client pipelined after it."""
        if self.tls:
            return Step(replies.TLS_ALREADY)
        if not self.context.tls_available:
            return Step(replies.TLS_UNAVAILABLE)
        return Step(replies.READY_FOR_TLS, Next.STARTTLS)

    async def do_rset(self, command: Simple) -> Step:
        self.transaction = None
        return Step(replies.OK)

    async def do_noop(self, command: Simple) -> Step:
        return Step(replies.OK)

    async def do_quit(self, command: Simple) -> Step:
        return Step(replies.BYE, Next.CLOSE)

    async def do_help(self, command: Simple) -> Step:
        return Step(replies.HELP)

    async def do_vrfy(self, command: Simple) -> Step:
        """VRFY (RFC 5321 §3.5.3): 252, never revealing which accounts exist."""
        return Step(replies.VRFY_NEVER)

    async def do_expn(self, command: Simple) -> Step:
        return Step(replies.NOT_IMPLEMENTED)


def _has_bare_line_ending(data: bytes) -> bool:
    """RFC 5321 §2.3.8: CR and LF only as a pair. Refusing strays stops SMTP smuggling."""
    pairs = data.count(b"\r\n")
    return data.count(b"\n") != pairs or data.count(b"\r") != pairs


Handler = Callable[[Session, object], Awaitable[Step]]

# The command table: handler and what must hold before it may run.
_COMMANDS: dict[object, tuple[Handler, _Gate]] = {
    Hello: (Session.do_hello, _Gate()),
    MailFrom: (Session.do_mail, _Gate(greeted=True, busy=replies.NESTED_MAIL)),
    RcptTo: (Session.do_rcpt, _Gate(greeted=True, mail=True)),
    Data: (Session.do_data, _Gate(greeted=True, mail=True, rcpt=True)),
    Bdat: (Session.do_bdat, _Gate(greeted=True, mail=True, rcpt=True)),
    Auth: (Session.do_auth, _Gate(greeted=True, busy=replies.IN_TRANSACTION)),
    "STARTTLS": (Session.do_starttls, _Gate(greeted=True, busy=replies.IN_TRANSACTION)),
    "RSET": (Session.do_rset, _Gate()),
    "NOOP": (Session.do_noop, _Gate()),
    "QUIT": (Session.do_quit, _Gate()),
    "HELP": (Session.do_help, _Gate()),
    "VRFY": (Session.do_vrfy, _Gate()),
    "EXPN": (Session.do_expn, _Gate()),
}
