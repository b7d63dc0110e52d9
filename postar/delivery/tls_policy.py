"""What TLS an outbound connection to a domain's MX host must satisfy.

RFCs: 7672 (DANE for SMTP) with 6698 and 7671 (TLSA matching), 8461 (MTA-STS),
6125 §6.4 (certificate names, wildcards), 7435 (opportunistic TLS otherwise).

Before connecting, the client asks ``requirement(domain, mx_host, ...)``:

* ``dane``: the MX host's addresses and its TLSA records are DNSSEC-validated. TLS is
  mandatory; the chain must match a DANE-TA(2) or DANE-EE(3) record (RFC 7672 §3.1), checked
  by ``check_peer`` after a handshake without PKIX verification. Secure TLSA records none of
  which is usable still make TLS mandatory, unauthenticated. DANE comes first: a domain's
  MTA-STS policy is not consulted for a host that has it (RFC 8461 §2).
* ``mta-sts``: the domain publishes an enforce policy (``mta_sts.py``: fetched over HTTPS, cached by its
  id). TLS is mandatory, the certificate PKIX-valid for the MX host name (the context does
  that), and MX hosts the policy does not name are not used (``mx_allowed``).
* ``mta-sts-testing``: the same checks, whose failures are only logged.
* ``opportunistic``: STARTTLS when offered, nothing verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone

import _ssl
import dns.asyncresolver
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from postar.delivery.dns import (DNSFailure, TLSARecord, ip_literal, lookup_host,
                                 tlsa_records)
from postar.delivery.recent import Recent
from postar.delivery.mta_sts import STSPolicies, mx_allowed, name_matches

log = logging.getLogger("postar.delivery")

Resolver = dns.asyncresolver.Resolver

MAX_CHAIN = 10

DANE_TA, DANE_EE = 2, 3
_DIGEST_SIZES = {0: None, 1: 32, 2: 64}     # matching types: full, SHA-256, SHA-512


class TLSPolicyError(Exception):
    """This MX host must not be used now (an MTA-STS enforce policy does not name it)."""

    temporary = True

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TLSRequirement:
    mandatory: bool                    # no STARTTLS, or a failed check_peer: do not deliver
    verify_names: tuple[str, ...]      # names the certificate must carry (empty: none checked)
    tlsa: tuple[TLSARecord, ...]       # usable DANE records the chain must match
    source: str                        # "dane", "mta-sts", "mta-sts-testing", "opportunistic"


OPPORTUNISTIC = TLSRequirement(False, (), (), "opportunistic")


# -- DANE (RFC 7672) --

def usable(record: TLSARecord) -> bool:
    """DANE-TA(2) and DANE-EE(3) with a known selector and matching type; PKIX-TA(0) and
    PKIX-EE(1) are unusable for SMTP, which has no agreed set of CAs (RFC 7672 §3.1.3)."""
    if record.usage not in (DANE_TA, DANE_EE) or record.selector not in (0, 1):
        return False
    if record.matching not in _DIGEST_SIZES:
        return False
    size = _DIGEST_SIZES[record.matching]
    return len(record.data) == size if size else bool(record.data)


async def dane_requirement(domain: str, mx_host: str, resolver: Resolver, port: int = 25,
                           mx_secure: bool = False) -> TLSRequirement | None:
    """DANE's requirement for the host, or None when DANE does not apply to it."""
    if ip_literal(mx_host) is not None:
        return None
    mx = mx_host.rstrip(".").lower()
    host = await lookup_host(mx, resolver)
    if not host.secure:
        return None  # RFC 7672 §2.2.2: TLSA records only for hosts with secure addresses
    bases = list(dict.fromkeys([host.canonical, mx]))  # the CNAME-expanded name first (§2.2.3)
    for base in bases:
        records = await tlsa_records(base, port, resolver)
        if records is not None:
            break
    else:
        return None
    good = tuple(r for r in records if usable(r))
    if not good:
        log.info("%s: all TLSA records unusable, TLS without authentication", mx)
        return TLSRequirement(True, (), (), "dane")
    # RFC 7672 §3.2.2: the next-hop domain is a reference identifier only via a secure MX RRset
    names = tuple(dict.fromkeys(bases + ([domain.rstrip(".").lower()] if mx_secure else [])))
    return TLSRequirement(True, names, good, "dane")


async def requirement(domain: str, mx_host: str, resolver: Resolver, policies: STSPolicies, *,
                      port: int = 25, mx_secure: bool = False) -> TLSRequirement:
    """The TLS the connection to ``mx_host`` (port ``port``) for ``domain`` must have.

    Raises DNSFailure (a host with secure addresses whose TLSA look-up fails must not be
    used now, RFC 7672 §2.2) and TLSPolicyError (an enforce policy does not name the host);
    both mean: try the next host, and retry later if none is left.
    """
    dane = await dane_requirement(domain, mx_host, resolver, port, mx_secure)
    if dane is not None:
        return dane
    policy = await policies.get(domain, resolver)
    if policy is None or policy.mode == "none":
        return OPPORTUNISTIC
    mx = mx_host.rstrip(".").lower()
    if policy.mode == "testing":
        if not mx_allowed(policy, mx):
            log.info("%s: MX host %s not in the MTA-STS policy (testing mode)", domain, mx)
        return TLSRequirement(False, (mx,), (), "mta-sts-testing")
    if not mx_allowed(policy, mx):
        raise TLSPolicyError(f"{mx} is not an MX host the MTA-STS policy of {domain} allows (RFC 8461 §4.1)")
    return TLSRequirement(True, (mx,), (), "mta-sts")


def client_context(requirement: TLSRequirement, ca_file: str = "") -> ssl.SSLContext:
    """The context for STARTTLS; the client passes the MX host name as server_hostname (the
    SNI DANE asks for, RFC 7672 §8.1, and the name MTA-STS verifies)."""
    if requirement.source == "mta-sts":
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    else:
        # DANE checks the chain itself in check_peer; the others accept any certificate
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def peer_chain(peer: ssl.SSLObject | ssl.SSLSocket | list[bytes] | tuple[bytes, ...]) -> list[bytes]:
    """The certificates the server presented, DER, leaf first.

    Python 3.13 has SSLObject.get_unverified_chain(); 3.10 to 3.12 have the same method on
    the private _ssl object behind it (returning _ssl.Certificate). Failing both: the leaf.
    """
    if isinstance(peer, (list, tuple)):
        return [bytes(der) for der in peer]
    getter = getattr(peer, "get_unverified_chain", None)
    if getter is None:
        getter = getattr(getattr(peer, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        return [c if isinstance(c, bytes) else c.public_bytes(_ssl.ENCODING_DER) for c in getter() or ()]
    leaf = peer.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def check_peer(peer: ssl.SSLObject | ssl.SSLSocket | list[bytes] | tuple[bytes, ...],
               requirement: TLSRequirement, mx_host: str) -> str | None:
    """Why the presented certificate does not satisfy ``requirement`` (None: it does).

    For mta-sts the handshake already verified the chain against the CAs; the names and
    dates are checked here again so that testing mode has something to log.
    """
    if not requirement.tlsa and not requirement.verify_names:
        return None
    chain = peer_chain(peer)
    if not chain:
        return f"{mx_host} presented no certificate"
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        return f"{mx_host} presented a certificate that cannot be parsed"
    if requirement.tlsa:
        return _check_dane(chain, certs, requirement, mx_host)
    return _dates_problem(certs[:1]) or _names_problem(certs[0], requirement.verify_names)


def _check_dane(chain: list[bytes], certs: list[x509.Certificate], requirement: TLSRequirement,
                mx_host: str) -> str | None:
    for record in requirement.tlsa:
        if record.usage == DANE_EE and _matches(record, chain[0], certs[0]):
            return None  # RFC 7672 §3.1.1: neither names nor dates matter with DANE-EE
    anchors = [r for r in requirement.tlsa if r.usage == DANE_TA]
    path = _path_to_anchor(chain, certs, anchors) if anchors else None
    if path is None:
        return f"no TLSA record of {mx_host} matches its certificate chain"
    # RFC 7672 §3.1.2: with DANE-TA the server's names and validity dates count
    return _dates_problem([certs[i] for i in path[:-1]] or certs[:1]) or \
        _names_problem(certs[0], requirement.verify_names)


def _path_to_anchor(chain: list[bytes], certs: list[x509.Certificate],
                    anchors: list[TLSARecord]) -> list[int] | None:
    """Indexes from the leaf up to a certificate that matches an anchor, each signed by the next."""
    path = [0]
    for _ in range(MAX_CHAIN):
        here = path[-1]
        if any(_matches(r, chain[here], certs[here]) for r in anchors):
            return path
        issuer = next((i for i, c in enumerate(certs) if i not in path and c.subject == certs[here].issuer
                       and _signed_by(certs[here], c)), None)
        if issuer is None:
            return None
        path.append(issuer)
    return None


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _matches(record: TLSARecord, der: bytes, cert: x509.Certificate) -> bool:
    data = der
    if record.selector == 1:
        try:
            data = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        except (ValueError, TypeError):  # a key type cryptography cannot load
            return False
    if record.matching == 1:
        data = hashlib.sha256(data).digest()
    elif record.matching == 2:
        data = hashlib.sha512(data).digest()
    return hmac.compare_digest(data, record.data)


def _dates_problem(certs: list[x509.Certificate]) -> str | None:
    now = datetime.now(timezone.utc)
    for cert in certs:
        if now < cert.not_valid_before_utc:
            return f"certificate {cert.subject.rfc4514_string()} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
        if now > cert.not_valid_after_utc:
            return f"certificate {cert.subject.rfc4514_string()} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names in the subjectAltName, or the subject CN when it has none (RFC 6125 §6.4.4)."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                 if isinstance(a.value, str)]
    return [n.rstrip(".").lower() for n in names]


def _names_problem(cert: x509.Certificate, names: tuple[str, ...]) -> str | None:
    if not names:
        return None
    presented = _cert_names(cert)
    if any(name_matches(p, name) for p in presented for name in names):
        return None
    return f"certificate names {', '.join(presented) or '(none)'} do not include {' or '.join(names)}"


class TLSPolicies:
    """The calls the delivery attempt makes, with the resolver, MTA-STS cache and settings."""

    def __init__(self, resolver: Resolver, *, mx_port: int = 25, mta_sts_port: int = 443,
                 ca_file: str = ""):
        self.resolver, self.mx_port, self.ca_file = resolver, mx_port, ca_file
        self.sts = STSPolicies(mta_sts_port, ca_file)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._requirements = Recent()

    async def requirement(self, domain: str, mx_host: str) -> TLSRequirement:
        return await self._requirements.get((domain, mx_host), lambda: requirement(
            domain, mx_host, self.resolver, self.sts, port=self.mx_port))

    def context(self, requirement: TLSRequirement) -> ssl.SSLContext:
        if requirement.source not in self._contexts:
            self._contexts[requirement.source] = client_context(requirement, self.ca_file)
        return self._contexts[requirement.source]

    def check(self, peer: ssl.SSLObject, requirement: TLSRequirement, mx_host: str) -> str | None:
        return check_peer(peer, requirement, mx_host)

    async def allowed_hosts(self, domain: str, hosts: list[str]) -> list[str]:
        """The hosts an enforce policy allows, plus those DANE covers (RFC 8461 §2)."""
        policy = await self.sts.get(domain, self.resolver)
        if policy is None or policy.mode != "enforce":
            return hosts
        allowed = []
        for host in hosts:
            if mx_allowed(policy, host):
                allowed.append(host)
                continue
            with contextlib.suppress(DNSFailure):
                if await dane_requirement(domain, host, self.resolver, self.mx_port) is not None:
                    allowed.append(host)
        return allowed
