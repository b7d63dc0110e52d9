"""Recipient routing: local accounts, aliases (expanded recursively), other domains.

The same rules apply whichever port a message arrives on; what each port lets
through (relaying only after AUTH) is the SMTP session's policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from postar.store import Store

MAX_ALIAS_DEPTH = 10  # as Postfix's virtual_alias_recursion_limit (1000) but for humans


class Kind(Enum):
    LOCAL = "local"      # delivered to accounts here (and maybe forwarded)
    UNKNOWN = "unknown"  # a local domain but no such address
    REMOTE = "remote"    # another domain


@dataclass(frozen=True)
class Route:
    kind: Kind
    accounts: frozenset[int] = frozenset()
    forwards: tuple[str, ...] = field(default=())  # remote addresses an alias points to


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Router:
    def __init__(self, store: Store):
        self._store = store

    async def route(self, address: str) -> Route:
        if not await self._store.is_local_domain(domain_of(address)):
            return Route(Kind.REMOTE)
        accounts: set[int] = set()
        forwards: list[str] = []
        await self._expand(address, accounts, forwards, depth=0, seen=set())
        if not accounts and not forwards:
            return Route(Kind.UNKNOWN)
        return Route(Kind.LOCAL, frozenset(accounts), tuple(dict.fromkeys(forwards)))

    async def _expand(self, address: str, accounts: set[int], forwards: list[str],
                      depth: int, seen: set[str]) -> None:
        key = address.lower()
        if key in seen or depth > MAX_ALIAS_DEPTH:
            return
        seen.add(key)
        account = await self._store.find_account(address)
        if account is not None:
            accounts.add(account.id)
            return
        for target in await self._store.alias_targets(address):
            if await self._store.is_local_domain(domain_of(target)):
                await self._expand(target, accounts, forwards, depth + 1, seen)
            else:
                forwards.append(target)
