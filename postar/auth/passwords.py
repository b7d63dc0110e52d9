"""Password hashing and login verification (argon2id, off the event loop).

Only argon2id hashes are ever stored. A verification costs tens of milliseconds
of CPU and its memory cost (64 MiB) in RAM, so it runs in the bounded pool of
``pool.py``: a burst of logins waits its turn instead of multiplying memory.
Mail clients log in again and again with the same password (every poll, every
send); like Dovecot's auth cache, a
successful check is remembered for a while so the next login is a lookup. The
cache key is an HMAC of address and password under a key that lives only in this
process's memory, and the remembered value is the stored hash the password
matched: when the password is changed or the app password revoked that hash is
gone from the account, and the cache misses at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import Awaitable, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from postar.auth.pool import CheckPool
from postar.store import Account, Credentials, Store

_hasher = PasswordHasher()  # argon2id with the library's RFC 9106 defaults


def hash_password(password: str) -> str:
    """The argon2id hash to store for ``password``."""
    return _hasher.hash(password)


def make_app_password() -> str:
    """A random app password, 16 lowercase letters in groups of four like Gmail's.

    Store ``hash_password(app_password_key(it))``: the spaces are optional when typed.
    """
    alphabet = "abcdefghijkmnopqrstuvwxyz"
    letters = "".join(secrets.choice(alphabet) for _ in range(16))
    return " ".join(letters[i:i + 4] for i in range(0, 16, 4))


def app_password_key(password: str) -> str:
    """An app password as hashed and checked: without the spaces."""
    return password.replace(" ", "")


def _matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class Outcome(Enum):
    OK = "ok"
    BAD_PASSWORD = "wrong password"
    NO_ACCOUNT = "no such account"
    DISABLED = "account disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    account: Account | None = None


class Authenticator:
    """Checks a login against the store, with the verified-credentials cache."""

    def __init__(self, store: Store, cache_ttl: float, workers: int = 0):
        self._store = store
        self._ttl = cache_ttl
        self._pool = CheckPool.sized_for(workers, _hasher.memory_cost * 1024)
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._running: dict[bytes, asyncio.Future] = {}

    def _cache_key(self, address: str, password: str) -> bytes:
        message = address.lower().encode() + b"\0" + password.encode("utf-8", "surrogateescape")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    async def login(self, address: str, password: str, *,
                    before_check: Callable[[], Awaitable[None]] | None = None) -> LoginResult:
        """``before_check`` is awaited before an argon2id check, never on a cache hit:
        a password verified a moment ago need not wait again."""
        credentials = await self._store.credentials(address)
        if credentials is None:
            # Spend the same time as a real check, so timing does not reveal accounts.
            if before_check is not None:
                await before_check()
            await self._pool.run(_matches, _DUMMY_HASH, password)
            return LoginResult(Outcome.NO_ACCOUNT)
        candidates = (credentials.password_hash, *credentials.app_password_hashes)
        key = self._cache_key(address, password)
        cached = self._cache.get(key)
        matched = None
        if cached is not None and cached[1] > time.monotonic() and cached[0] in candidates:
            matched = cached[0]
        else:
            self._cache.pop(key, None)
            if before_check is not None:
                await before_check()
            matched = await self._check_once(key, credentials, password)
        if matched is None:
            return LoginResult(Outcome.BAD_PASSWORD, credentials.account)
        if credentials.account.disabled:
            return LoginResult(Outcome.DISABLED, credentials.account)
        return LoginResult(Outcome.OK, credentials.account)

    async def _check_once(self, key: bytes, credentials: Credentials, password: str) -> str | None:
        """The argon2id check; a client opening many connections at once pays for one."""
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        running = asyncio.ensure_future(self._pool.run(_first_match, credentials, password))
        self._running[key] = running
        try:
            matched = await asyncio.shield(running)
        finally:
            self._running.pop(key, None)
        if matched is not None and self._ttl > 0:
            self._remember(key, matched)
        return matched

    def _remember(self, key: bytes, stored_hash: str) -> None:
        now = time.monotonic()
        if len(self._cache) > 10_000:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
        self._cache[key] = (stored_hash, now + self._ttl)


def _first_match(credentials: Credentials, password: str) -> str | None:
    """The stored hash ``password`` matches: the account password or an app password."""
    if _matches(credentials.password_hash, password):
        return credentials.password_hash
    key = app_password_key(password)
    for stored_hash in credentials.app_password_hashes:
        if _matches(stored_hash, key):
            return stored_hash
    return None


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
