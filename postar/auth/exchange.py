"""One SASL AUTH exchange (PLAIN, LOGIN) over any protocol: SMTP, POP3.

``start`` and ``respond`` return the next ``Challenge``, a ``Failed`` with the
reason, or the authenticated ``Account``; each protocol turns these into its
own replies. Attempts go through the one ``LoginGate``, so failures are
counted, delayed and logged the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from postar.auth import sasl
from postar.auth.login import LoginGate, Refusal
from postar.store import Account


@dataclass(frozen=True)
class Challenge:
    text: str  # base64; "" for PLAIN's empty challenge


class Failure(Enum):
    BLOCKED = "too many failed logins"
    UNKNOWN_MECHANISM = "unsupported mechanism"
    CANCELLED = "cancelled by the client"
    MALFORMED = "malformed response"
    FAILED = "wrong credentials"


@dataclass(frozen=True)
class Failed:
    failure: Failure
    reason: str = ""


class SASLExchange:
    def __init__(self, logins: LoginGate, client_ip: str, connection_id: str, protocol: str):
        self._logins = logins
        self._ip = client_ip
        self._id = connection_id
        self._protocol = protocol
        self._mechanism = ""
        self._username: str | None = None

    async def start(self, mechanism: str, initial: str | None) -> Challenge | Failed | Account:
        if self._logins.blocked(self._ip, self._id):
            return Failed(Failure.BLOCKED)
        mechanism = mechanism.upper()
        if mechanism not in sasl.MECHANISMS:
            return Failed(Failure.UNKNOWN_MECHANISM)
        self._mechanism = mechanism
        if initial is None:
            return Challenge("" if mechanism == "PLAIN" else sasl.LOGIN_USERNAME_CHALLENGE)
        return await self._take(initial)

    async def respond(self, line: bytes) -> Challenge | Failed | Account:
        text = line.decode("ascii", "replace").strip()
        if text == "*":
            return Failed(Failure.CANCELLED)
        return await self._take(text)

    async def _take(self, response: str) -> Challenge | Failed | Account:
        if self._mechanism == "PLAIN":
            login = sasl.parse_plain(response)
            if isinstance(login, sasl.SASLError):
                return Failed(Failure.MALFORMED, login.reason)
            return await self._verify(login.username, login.password)
        value = sasl.parse_login_field(response, "LOGIN response")
        if isinstance(value, sasl.SASLError):
            return Failed(Failure.MALFORMED, value.reason)
        if self._username is None:
            self._username = value
            return Challenge(sasl.LOGIN_PASSWORD_CHALLENGE)
        return await self._verify(self._username, value)

    async def _verify(self, username: str, password: str) -> Failed | Account:
        outcome = await self._logins.login(self._ip, username, password, connection_id=self._id,
                                           method=f"{self._protocol}/{self._mechanism}")
        if outcome is Refusal.BLOCKED:
            return Failed(Failure.BLOCKED)
        if outcome is Refusal.FAILED:
            return Failed(Failure.FAILED)
        return outcome
