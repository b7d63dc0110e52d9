"""One delivery attempt: a queued message's recipients at one destination domain.

The MX hosts are tried in order (RFC 5321 §5.1), each of their addresses in
turn, until one server gives an answer for the recipients: a connection that
fails, a greeting that refuses, a TLS requirement not met, all move on to the
next address; an answer (accepted, refused, or "try later") ends the attempt.
The TLS requirement per host (DANE, MTA-STS, or opportunistic) comes from the
``TLSPolicies`` the runner holds. A message that needs an extension the
server lacks (8BITMIME, SMTPUTF8, or a SIZE too small) fails for good, with a
reason the bounce repeats.
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol

from postar.config import Delivery as DeliveryConfig
from postar.config import split_address
from postar.delivery.connections import ConnectionCache
from postar.delivery.smtp_client import Envelope, Outcome, SMTPClient, SMTPFailure
from postar.delivery.tls_policy import OPPORTUNISTIC, TLSPolicies, TLSRequirement

log = logging.getLogger("postar.delivery")


@dataclass(frozen=True)
class Answer:
    """What happened to one recipient in this attempt."""

    final: bool          # delivered or failed for good (else: retry later)
    delivered: bool
    reply: str           # the remote reply or our reason
    host: str = ""       # "mx.example.org[192.0.2.1]:25", when a server answered
    tls: str = ""
    dsn_passed_on: bool = False  # the server offered DSN, so it will report SUCCESS/DELAY itself


@dataclass
class Route:
    """Where to connect: (name, port) hosts in order, the smarthost's login if any; or, with no
    hosts, why not (``error``, ``final`` when the DNS says the domain takes no mail)."""

    hosts: list[tuple[str, int]]
    login: tuple[str, str] | None = None
    error: str = ""
    final: bool = False
    smarthost: bool = False  # the recipient domain's DANE or MTA-STS does not apply to the relay


class MailHosts(Protocol):
    """What delivery needs of the DNS: where a domain's mail goes, and a host's addresses
    (``mail_hosts.DNSMailHosts``)."""

    async def route(self, domain: str) -> Route: ...

    async def addresses(self, host: str) -> list[str]: ...


@dataclass
class _Progress:
    answers: dict[str, Answer] = field(default_factory=dict)
    last_error: str = "no mail server could be reached"
    last_host: str = ""  # where the last error happened, and with which TLS
    last_tls: str = ""


async def attempt(config: DeliveryConfig, hostname: str, domain: str, route: Route, envelope: Envelope,
                  content: bytes, resolver: MailHosts, policies: TLSPolicies,
                  cache: ConnectionCache | None = None) -> dict[str, Answer]:
    """Every recipient of ``envelope`` gets an Answer."""
    progress = _Progress()
    for host, port in route.hosts:
        try:
            addresses = await resolver.addresses(host)
        except Exception as e:  # DNSFailure; any other error is as good a reason to move on
            progress.last_error = f"{host}: {e}"
            continue
        for address in addresses:
            server = _Server(config, hostname, domain, host, address, port, route, policies, cache)
            if await _session(server, envelope, content, progress):
                return _complete(progress, envelope)
    return _complete(progress, envelope)


def _complete(progress: _Progress, envelope: Envelope) -> dict[str, Answer]:
    for address, _, _ in envelope.recipients:
        progress.answers.setdefault(address, Answer(False, False, progress.last_error, progress.last_host,
                                                     progress.last_tls))
    return progress.answers


@dataclass
class _Server:
    """One address of one host to try, and what a connection to it needs."""

    config: DeliveryConfig
    hostname: str
    domain: str
    host: str
    address: str
    port: int
    route: Route
    policies: TLSPolicies
    cache: ConnectionCache | None

    @property
    def where(self) -> str:
        return f"{self.host}[{self.address}]:{self.port}"

    async def requirement(self) -> TLSRequirement:
        if self.route.login is not None or self.route.smarthost:
            return OPPORTUNISTIC  # the relay's TLS is set by _connect_smarthost / opportunistic
        try:
            return await self.policies.requirement(self.domain, self.host)
        except Exception as e:  # DNSFailure (TLSA SERVFAIL), TLSPolicyError (MTA-STS): not now
            raise SMTPFailure(getattr(e, "reason", str(e))) from None

    async def connect(self, requirement: TLSRequirement) -> SMTPClient:
        client = SMTPClient(self.hostname, self.config.command_timeout)
        try:
            if self.route.login is not None:  # a smarthost: verified TLS, always, before the password
                await _connect_smarthost(client, self.config, self.host, self.address, self.port)
                await _login(client, *self.route.login)
            else:
                await _connect_mx(client, self.config, self.domain, self.host, self.address, self.port,
                                  self.policies, requirement)
        except BaseException:
            await client.quit()
            raise
        return client


async def _session(server: _Server, envelope: Envelope, content: bytes, progress: _Progress) -> bool:
    """One transaction on a connection (a cached one when there is); True when it settled the
    attempt (every recipient answered)."""
    where, client = server.where, None
    try:
        requirement = await server.requirement()
        key = (server.host, server.address, server.port, requirement, server.route.login)
        cached = server.cache.take(key) if server.cache is not None else None
        client, opened = cached if cached else (await server.connect(requirement), time.monotonic())
        try:
            outcome = await _transaction(client, envelope, content)
        except SMTPFailure:
            if not cached or client.replied:
                raise
            await client.quit()  # the server closed the cached session meanwhile: a new one
            client, opened = await server.connect(requirement), time.monotonic()
            outcome = await _transaction(client, envelope, content)
    except SMTPFailure as failure:
        tls = client.tls if client else ""
        progress.last_error = f"{where}: {failure.reason}"
        progress.last_host, progress.last_tls = where, tls
        log.info("%s: %s", server.domain, progress.last_error)
        if client is not None:
            await client.quit()
        if failure.stage == "mail" and failure.reply is not None and failure.reply.permanent:
            for recipient, _, _ in envelope.recipients:  # the sender itself is refused: final for everyone
                progress.answers[recipient] = Answer(True, False, str(failure.reply), where, tls)
            return True
        return False
    delivered = isinstance(outcome, Outcome) and outcome.data is not None and outcome.data.ok
    if server.cache is not None and client.usable and delivered:  # an unhappy server gets a fresh start
        server.cache.give(key, client, opened)
    else:
        await client.quit()
    if isinstance(outcome, str):  # the server lacks what the message needs
        for recipient, _, _ in envelope.recipients:
            progress.answers[recipient] = Answer(True, False, outcome, where, client.tls)
        return True
    dsn = "DSN" in client.extensions
    for recipient, _, _ in envelope.recipients:
        reply = outcome.recipients.get(recipient)
        if reply is None or not reply.ok:
            final = reply is not None and reply.permanent
            progress.answers[recipient] = Answer(final, False, str(reply) if reply else progress.last_error,
                                                 where, client.tls)
        elif outcome.data is not None and outcome.data.ok:
            progress.answers[recipient] = Answer(True, True, str(outcome.data), where, client.tls, dsn)
        else:
            data = outcome.data
            progress.answers[recipient] = Answer(bool(data and data.permanent), False,
                                                 str(data) if data else "no reply to DATA", where, client.tls)
    return True


async def _transaction(client: SMTPClient, envelope: Envelope, content: bytes) -> Outcome | str:
    """The server's answers; or, when it lacks what the message needs, why (nothing sent)."""
    return _unsupported(client, envelope, content) or await client.send(envelope, content)


async def _connect_mx(client: SMTPClient, config: DeliveryConfig, domain: str, host: str, address: str,
                      port: int, policies: TLSPolicies, requirement: TLSRequirement) -> None:
    """Connect to an MX host with the TLS its domain's policy asks for (RFC 7672, RFC 8461, RFC 7435);
    to a smarthost without a login, with STARTTLS when offered."""
    await client.connect(address, port, config.connect_timeout)
    await client.hello()
    if "STARTTLS" in client.extensions:
        try:
            ssl_object = await client.starttls(policies.context(requirement), host)
        except SMTPFailure as failure:
            if requirement.mandatory:
                failure.reason = f"TLS required by {requirement.source}: {failure.reason}"
            raise
        problem = policies.check(ssl_object, requirement, host)
        if problem and requirement.mandatory:
            raise SMTPFailure(f"TLS required by {requirement.source}: {problem}")
        if problem:  # MTA-STS testing mode: deliver, and say what enforce would have refused
            log.warning("%s: %s: %s (%s: reported only)", domain, host, problem, requirement.source)
    elif requirement.mandatory:
        raise SMTPFailure(f"TLS required by {requirement.source}, but {host} does not offer STARTTLS")


async def _connect_smarthost(client: SMTPClient, config: DeliveryConfig, host: str, address: str,
                             port: int) -> None:
    context = ssl.create_default_context(cafile=config.ca_file or None)
    if config.ca_file:
        context.load_default_certs()
    if port == 465:
        await client.connect(address, port, config.connect_timeout, implicit_tls=context, server_hostname=host)
        await client.hello()
        return
    await client.connect(address, port, config.connect_timeout)
    await client.hello()
    if "STARTTLS" not in client.extensions:
        raise SMTPFailure(f"the smarthost {host} does not offer STARTTLS; the password is not sent in clear")
    await client.starttls(context, host)


def _unsupported(client: SMTPClient, envelope: Envelope, content: bytes) -> str:
    """Why this server cannot take this message as it is ("" when it can)."""
    if "SMTPUTF8" not in client.extensions and envelope.needs_smtputf8(content):
        return "554 5.6.7 the message needs SMTPUTF8, which the remote server does not offer"
    if not content.isascii() and "8BITMIME" not in client.extensions:
        return "554 5.6.3 the message has 8-bit data and the remote server does not offer 8BITMIME"
    limit = client.extensions.get("SIZE", "")
    if limit.isdigit() and 0 < int(limit) < len(content):
        return f"552 5.3.4 the message ({len(content)} octets) is over the remote server's limit of {limit}"
    return ""


async def _login(client: SMTPClient, user: str, password: str) -> None:
    mechanisms = client.extensions.get("AUTH", "").upper().split()
    if "PLAIN" not in mechanisms:
        raise SMTPFailure("the smarthost offers no AUTH PLAIN", temporary=True)
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    reply = await client.command(f"AUTH PLAIN {token}")
    if reply.code != 235:
        raise SMTPFailure(f"smarthost login failed: {reply}", temporary=True, reply=reply)


def smarthost_route(config: DeliveryConfig) -> Route | None:
    if not config.smarthost:
        return None
    host, port = split_address(config.smarthost)
    login = None
    if config.smarthost_user:
        with open(config.smarthost_password_file, encoding="utf-8") as f:
            login = (config.smarthost_user, f.readline().rstrip("\r\n"))
    return Route([(host, port)], login, smarthost=True)
