"""DNS look-ups for outbound delivery: MX hosts, their addresses, TXT and TLSA records.

RFCs: 5321 §5.1 (MX order, implicit MX), 7505 (null MX), 6698 and 7672 §2.2 (TLSA only
from DNSSEC-validated answers), 6840 §5.7 (asking for the AD bit). Validation itself is
the resolver's: postar trusts the AD bit of the configured name servers, so they must be a
validating resolver reached over a path nobody can tamper with (loopback, as with a local
unbound), or DANE protects nothing.

Failures are one exception, ``DNSFailure``, whose reason goes into bounces and logs and
whose ``temporary`` says whether to try again later (SERVFAIL, timeouts) or give up
(no such domain, null MX).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.resolver

TIMEOUT = 5.0     # seconds for one server to answer one query
LIFETIME = 20.0   # seconds for a whole look-up, retries and servers included
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 size: no IP fragmentation


class DNSFailure(Exception):
    """A look-up that gave no usable answer; ``reason`` is for people."""

    def __init__(self, reason: str, temporary: bool):
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


@dataclass(frozen=True)
class TLSARecord:
    """One TLSA record (RFC 6698 §2.1): usage, selector, matching type, association data."""

    usage: int
    selector: int
    matching: int
    data: bytes

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.matching} {self.data.hex()}"


@dataclass(frozen=True)
class MailHosts:
    """A domain's mail hosts in the order to try them."""

    hosts: list[str]
    secure: bool     # the MX answer was DNSSEC-validated (RFC 7672 §2.2.1)
    implicit: bool   # no MX records: the domain itself (RFC 5321 §5.1)


@dataclass(frozen=True)
class HostAddresses:
    addresses: list[str]
    secure: bool     # every answer used was DNSSEC-validated (RFC 7672 §2.2.2)
    canonical: str   # the name after CNAMEs (the host itself when none)


def make_resolver(nameservers: list[str]) -> dns.asyncresolver.Resolver:
    """A resolver asking ``nameservers`` ("host" or "host:port"; empty: /etc/resolv.conf)."""
    if nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [_nameserver(server) for server in nameservers]
    else:
        resolver = dns.asyncresolver.Resolver()
    resolver.timeout = TIMEOUT
    resolver.lifetime = LIFETIME
    # DO asks for DNSSEC data, so that a validating resolver reports the AD bit (RFC 4035
    # §3.2.1); AD in the query asks for it even without the records (RFC 6840 §5.7).
    resolver.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
    resolver.flags = dns.flags.RD | dns.flags.AD
    return resolver


def _nameserver(server: str) -> dns.nameserver.Nameserver:
    host, port = server.strip(), 53
    if host.startswith("["):                       # "[v6]" or "[v6]:port"
        host, _, rest = host[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif host.count(":") == 1:                     # "v4:port" or "name:port"; a bare v6 has more
        host, _, number = host.partition(":")
        port = int(number)
    try:
        ipaddress.ip_address(host)
    except ValueError:  # a name: resolved once, at start, by the system
        host = socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP)[0][4][0]
    return dns.nameserver.Do53Nameserver(host, port)


def ip_literal(host: str) -> str | None:
    """The address in ``host`` when it is one ("192.0.2.1", "[2001:db8::1]", "[IPv6:...]")."""
    text = host.strip("[]")
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


async def _resolve(name: str, rdtype: str, resolver: dns.asyncresolver.Resolver,
                   ) -> dns.resolver.Answer:
    """The answer (possibly empty: NODATA); DNSFailure for NXDOMAIN and every failure."""
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException:
        raise DNSFailure(f"{name!r} is not a valid domain name", temporary=False) from None
    try:
        return await resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        raise DNSFailure(f"no such domain {name}", temporary=False) from None
    except dns.resolver.YXDOMAIN:
        raise DNSFailure(f"{name} is too long once its DNAME is followed", temporary=False) from None
    except dns.resolver.NoNameservers as e:
        raise DNSFailure(f"DNS server failure looking up {rdtype} of {name} ({_rcode(e)})",
                         temporary=True) from None
    except dns.exception.Timeout:
        raise DNSFailure(f"DNS timeout looking up {rdtype} of {name}", temporary=True) from None
    except dns.exception.DNSException as e:
        raise DNSFailure(f"DNS error looking up {rdtype} of {name}: {e}", temporary=True) from None


def _rcode(error: dns.resolver.NoNameservers) -> str:
    """What the servers answered: an rcode name such as SERVFAIL, or the I/O error."""
    for entry in error.kwargs.get("errors") or []:
        if isinstance(entry[3], str):
            return entry[3]
    entries = error.kwargs.get("errors") or []
    return type(entries[0][3]).__name__ if entries else "no answer"


def _secure(answer: dns.resolver.Answer) -> bool:
    return bool(answer.response.flags & dns.flags.AD)


async def lookup_mx(domain: str, resolver: dns.asyncresolver.Resolver) -> MailHosts:
    """The hosts to try for ``domain`` (RFC 5321 §5.1), each checked to have an address.

    MX records by preference, equal preferences in random order; no MX records: the domain
    itself. Raises DNSFailure: permanent for no such domain, a null MX (RFC 7505) or no host
    with an address; temporary when the DNS could not answer.
    """
    domain = domain.rstrip(".").lower()
    answer = await _resolve(domain, "MX", resolver)
    records = [(r.preference, r.exchange) for r in answer.rrset or ()]
    if len(records) == 1 and records[0][1] == dns.name.root:
        raise DNSFailure("null MX: the domain accepts no mail (RFC 7505)", temporary=False)
    implicit = not records
    if implicit:
        hosts = [domain]
    else:
        by_preference: dict[int, list[str]] = {}
        for preference, exchange in records:
            if exchange != dns.name.root:  # a null MX beside real ones is no host (RFC 7505 §3)
                by_preference.setdefault(preference, []).append(exchange.to_text(omit_final_dot=True).lower())
        hosts = []
        for preference in sorted(by_preference):
            group = by_preference[preference]
            random.shuffle(group)  # RFC 5321 §5.1: spread the load among equals
            hosts += [h for h in group if h not in hosts]
    checks = await asyncio.gather(*(_address_problem(host, resolver) for host in hosts))
    usable = [host for host, problem in zip(hosts, checks) if problem is None or problem.temporary]
    if not usable:
        if implicit:
            reason = f"{domain} has no MX records and no address: {checks[0].reason}"
        else:
            reason = f"no MX host of {domain} has an address: " + "; ".join(str(p) for p in checks)
        raise DNSFailure(reason, temporary=False)
    return MailHosts(usable, _secure(answer), implicit)


async def mail_hosts(domain: str, resolver: dns.asyncresolver.Resolver) -> list[str]:
    """``lookup_mx(domain).hosts``: the host names to try, in order."""
    return (await lookup_mx(domain, resolver)).hosts


async def _address_problem(host: str, resolver: dns.asyncresolver.Resolver) -> DNSFailure | None:
    try:
        await lookup_host(host, resolver)
    except DNSFailure as failure:
        return failure
    return None


async def lookup_host(host: str, resolver: dns.asyncresolver.Resolver) -> HostAddresses:
    """IPv4 then IPv6 addresses of ``host`` (an IP literal is its own address, not secure).

    Raises DNSFailure: permanent for no such host or no address records; temporary when
    neither look-up gave an address and one of them failed for now.
    """
    literal = ip_literal(host)
    if literal is not None:
        return HostAddresses([literal], False, literal)
    host = host.rstrip(".").lower()
    results = await asyncio.gather(_resolve(host, "A", resolver), _resolve(host, "AAAA", resolver),
                                   return_exceptions=True)
    addresses: list[str] = []
    secure = True
    canonical = host
    failures: list[DNSFailure] = []
    for result in results:
        if isinstance(result, DNSFailure):
            failures.append(result)
        elif isinstance(result, BaseException):
            raise result
        elif result.rrset is not None:
            addresses += [r.address for r in result.rrset]
            secure = secure and _secure(result)
            canonical = result.canonical_name.to_text(omit_final_dot=True).lower()
    if addresses:
        # an AAAA look-up that failed leaves the IPv4 addresses usable, but not as secure
        return HostAddresses(addresses, secure and not failures, canonical)
    temporary = [f for f in failures if f.temporary]
    if temporary:
        raise DNSFailure(temporary[0].reason, temporary=True)
    if failures:
        raise DNSFailure(f"no such host {host}", temporary=False)
    raise DNSFailure(f"{host} has no address (no A or AAAA record)", temporary=False)


async def host_addresses(host: str, resolver: dns.asyncresolver.Resolver) -> list[str]:
    """``lookup_host(host).addresses``."""
    return (await lookup_host(host, resolver)).addresses


async def txt_records(name: str, resolver: dns.asyncresolver.Resolver) -> list[str]:
    """Each TXT record at ``name`` as one string (its strings joined, RFC 7208 §3.3 style);
    [] when there are none or the name does not exist; DNSFailure(temporary) otherwise."""
    try:
        answer = await _resolve(name, "TXT", resolver)
    except DNSFailure as failure:
        if failure.temporary:
            raise
        return []
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset or ()]


async def tlsa_records(host: str, port: int, resolver: dns.asyncresolver.Resolver,
                       ) -> list[TLSARecord] | None:
    """The DNSSEC-validated TLSA records of ``_PORT._tcp.HOST`` (RFC 7672 §2.2).

    None when there are none or the answer is not validated (insecure zones have no DANE);
    DNSFailure(temporary) when the look-up fails, SERVFAIL included, which for a host whose
    addresses are secure means "do not deliver to it now" (RFC 7672 §2.2).
    """
    name = f"_{port}._tcp.{host.rstrip('.')}"
    try:
        answer = await _resolve(name, "TLSA", resolver)
    except DNSFailure as failure:
        if failure.temporary:
            raise
        return None
    if answer.rrset is None or not _secure(answer):
        return None
    return [TLSARecord(r.usage, r.selector, r.mtype, bytes(r.cert)) for r in answer.rrset]
