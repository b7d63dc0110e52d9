"""MTA-STS (RFC 8461): a domain's policy, fetched over HTTPS and cached by its id.

``STSPolicies.get`` reads the TXT record ``_mta-sts.DOMAIN`` and fetches the
policy from ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` (certificate
verified, no redirects, 64 KiB at most) only when the id changed; a policy
stays in force until its max_age runs out, even when the record or the policy
server goes away (§5.1). ``tls_policy`` turns a policy into a TLS requirement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from dataclasses import dataclass, replace
from typing import Callable

import dns.asyncresolver

from postar.delivery.dns import (DNSFailure, host_addresses, txt_records)

log = logging.getLogger("postar.delivery")

Resolver = dns.asyncresolver.Resolver

POLICY_PATH = "/.well-known/mta-sts.txt"   # RFC 8461 §3.3
MAX_POLICY_BYTES = 64 * 1024                # RFC 8461 §3.3: senders may limit the size to 64 KiB
MAX_HEADER_BYTES = 16 * 1024
FETCH_TIMEOUT = 60.0                        # RFC 8461 §3.3 suggests about a minute
MAX_AGE_LIMIT = 31557600                    # RFC 8461 §3.2: a year at most
REFETCH_AFTER_FAILURE = 300.0               # seconds before a failed fetch of the same id is tried again


@dataclass(frozen=True)
class STSPolicy:
    mode: str                # "enforce", "testing" or "none"
    mx: tuple[str, ...]      # host names and "*.domain" patterns
    max_age: int             # seconds
    id: str = ""             # the TXT record's id it was fetched under
    fetched: float = 0.0     # time.time() of the fetch

    @property
    def expires(self) -> float:
        return self.fetched + self.max_age


class PolicyFetchError(Exception):
    pass


def sts_id(records: list[str]) -> str | None:
    """The id of the one ``v=STSv1`` TXT record (RFC 8461 §3.1), None when there is not
    exactly one or it is malformed."""
    candidates = [r for r in records if re.match(r"v=STSv1[ \t]*;", r)]
    if len(candidates) != 1:
        return None
    fields = dict(part.strip().partition("=")[::2] for part in candidates[0].split(";") if part.strip())
    policy_id = fields.get("id", "")
    return policy_id if re.fullmatch(r"[A-Za-z0-9]{1,32}", policy_id) else None


def parse_policy(text: str) -> STSPolicy:
    """The policy file's fields (RFC 8461 §3.2); ValueError naming what is wrong."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"line without a colon: {line[:60]!r}")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(value.lower().rstrip("."))
        else:
            fields.setdefault(key, value)  # a repeated field: the first counts
    if fields.get("version") != "STSv1":
        raise ValueError("version is not STSv1")
    mode = fields.get("mode", "")
    if mode not in ("enforce", "testing", "none"):
        raise ValueError(f"mode {mode!r} is not enforce, testing or none")
    if not re.fullmatch(r"[0-9]{1,10}", fields.get("max_age", "")):
        raise ValueError("max_age is missing or not a number")
    if mode != "none" and not mx:
        raise ValueError("no mx lines")
    for pattern in mx:
        if not re.fullmatch(r"(\*\.)?[a-z0-9_-]+(\.[a-z0-9_-]+)*", pattern):
            raise ValueError(f"mx {pattern!r} is not a host name or *.domain pattern")
    return STSPolicy(mode, tuple(mx), min(int(fields["max_age"]), MAX_AGE_LIMIT))


def mx_allowed(policy: STSPolicy, mx_host: str) -> bool:
    """Whether the policy names ``mx_host`` (RFC 8461 §4.1: "*." matches one label)."""
    host = mx_host.rstrip(".").lower()
    return any(name_matches(pattern, host) for pattern in policy.mx)


async def fetch_policy(domain: str, resolver: Resolver, *, port: int = 443, ca_file: str = "",
                       timeout: float = FETCH_TIMEOUT) -> STSPolicy:
    """GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt, the certificate verified, no
    redirects followed, at most 64 KiB (RFC 8461 §3.3); PolicyFetchError saying why not."""
    host = f"mta-sts.{domain}"
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    try:
        async with asyncio.timeout(timeout):
            addresses = await host_addresses(host, resolver)
            body = await _https_get(addresses, host, port, context)
    except DNSFailure as failure:
        raise PolicyFetchError(failure.reason) from None
    except TimeoutError:
        raise PolicyFetchError(f"no answer from {host} within {timeout:g} seconds") from None
    except ssl.SSLCertVerificationError as e:
        raise PolicyFetchError(f"certificate of {host} not valid: {e.verify_message}") from None
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        raise PolicyFetchError(f"fetching the policy from {host} failed: {e or type(e).__name__}") from None
    try:
        return parse_policy(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise PolicyFetchError(f"bad policy at {host}: {e}") from None


async def _https_get(addresses: list[str], host: str, port: int, context: ssl.SSLContext) -> bytes:
    for number, address in enumerate(addresses):
        try:
            reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=host,
                                                           limit=MAX_HEADER_BYTES)
            break
        except ssl.SSLError:
            raise
        except OSError:
            if number == len(addresses) - 1:
                raise
    authority = host if port == 443 else f"{host}:{port}"
    writer.write(f"GET {POLICY_PATH} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: postar\r\n"
                 "Accept: text/plain\r\nConnection: close\r\n\r\n".encode())
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        status = status_line.split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/") or status[1] != "200":
            code = status[1] if len(status) > 1 else "?"
            note = " (redirects are not followed, RFC 8461 §3.3)" if code.startswith("3") else ""
            raise ValueError(f"HTTP status {code}{note}")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        # The media type is not checked: a policy served as something else is still meant.
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return await _read_chunked(reader)
        if "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_POLICY_BYTES:
                raise ValueError(f"policy larger than {MAX_POLICY_BYTES} bytes")
            return await reader.readexactly(length)
        body = b""
        while chunk := await reader.read(MAX_POLICY_BYTES + 1 - len(body)):
            body += chunk
            if len(body) > MAX_POLICY_BYTES:
                raise ValueError(f"policy larger than {MAX_POLICY_BYTES} bytes")
        return body
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            return body
        if len(body) + size > MAX_POLICY_BYTES:
            raise ValueError(f"policy larger than {MAX_POLICY_BYTES} bytes")
        body += await reader.readexactly(size)
        await reader.readexactly(2)


class STSPolicies:
    """MTA-STS policies by domain, in memory, refetched when the TXT id changes (RFC 8461 §5.1).

    A cached policy stays in force until its max_age runs out, whatever happens meanwhile to
    the TXT record or the policy server: that is what protects against an attacker who
    blocks them. One instance per queue runner.
    """

    def __init__(self, port: int = 443, ca_file: str = "", timeout: float = FETCH_TIMEOUT,
                 clock: Callable[[], float] = time.time):
        self.port, self.ca_file, self.timeout, self._clock = port, ca_file, timeout, clock
        self._policies: dict[str, STSPolicy] = {}
        self.failures: dict[str, tuple[str, float, str]] = {}  # domain: (id, when, reason)

    async def get(self, domain: str, resolver: Resolver) -> STSPolicy | None:
        domain = domain.rstrip(".").lower()
        now = self._clock()
        cached = self._policies.get(domain)
        if cached is not None and cached.expires <= now:
            del self._policies[domain]
            cached = None
        try:
            policy_id = sts_id(await txt_records(f"_mta-sts.{domain}", resolver))
        except DNSFailure as failure:
            log.info("%s: MTA-STS TXT look-up failed: %s", domain, failure.reason)
            return cached
        if policy_id is None or (cached is not None and cached.id == policy_id):
            return cached
        failed = self.failures.get(domain)
        if failed and failed[0] == policy_id and now - failed[1] < REFETCH_AFTER_FAILURE:
            return cached
        try:
            policy = await fetch_policy(domain, resolver, port=self.port, ca_file=self.ca_file,
                                        timeout=self.timeout)
        except PolicyFetchError as e:
            log.warning("%s: MTA-STS policy %s not fetched: %s", domain, policy_id, e)
            self.failures[domain] = (policy_id, now, str(e))
            return cached
        self.failures.pop(domain, None)
        policy = replace(policy, id=policy_id, fetched=now)
        self._policies[domain] = policy
        return policy


def name_matches(pattern: str, name: str) -> bool:
    """Equal, or a "*." pattern standing for exactly one leftmost label (RFC 6125 §6.4.3)."""
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    label, dot, rest = name.partition(".")
    return bool(label and dot) and rest == pattern[2:]
