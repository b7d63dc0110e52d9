"""A real DNS server for delivery tests: Debian's unbound on a free loopback port.

Debian packages: ``unbound`` (``unbound`` and ``unbound-control``). Zones are signed in
Python with dnspython's ``dns.dnssec.sign_zone`` (the ``dnspython[dnssec]`` test extra;
dnspython 2.9 wants cryptography >= 50 for it), so neither ``ldnsutils`` nor ``bind9utils``
is needed.

Each test zone is written as a zone file and loaded as an unbound ``auth-zone`` with
``for-upstream: yes`` and ``for-downstream: no``: unbound's iterator takes the zone's data
as if an authoritative server had sent it, and its validator checks the signatures of a
signed zone against the trust anchor (the DS of the zone's key) written into the config.
Answers from a signed zone therefore carry the AD bit, as from a validating resolver on the
Internet, and answers from an unsigned zone (no trust anchor above it) do not.

Ways to get SERVFAIL, as a real resolver gives it:

* ``bogus=True``: the zone is signed, but the trust anchor is another key's; every name in
  it fails validation.
* ``broken={("name", "TYPE"), ...}``: in a signed zone, these RRsets' signatures are
  corrupted; only those look-ups fail (e.g. TLSA while the addresses validate).
* ``servfail(name)``: the name is delegated to a server that will not answer for it
  (unbound itself, which refuses queries without recursion there). A delegation to a
  port where nobody listens would do the same but takes unbound over a minute to give up.

Records are zone-file text, one ``"TYPE RDATA"`` per string, owner names relative to the
zone (``"@"`` for its apex)::

    server = DNSServer(tmp_path)
    server.zone("example.test", {"@": ["MX 10 mx1", "MX 20 mx2"], "mx1": ["A 127.0.0.2"]})
    server.zone("dane.test", {"mx": ["A 127.0.0.3"], "_25._tcp.mx": [tlsa_rdata(3, 1, 1, der)]},
                signed=True)
    server.start()
    resolver = make_resolver([server.nameserver])
    server.zone("example.test", {...})   # replaced while running: reloaded, caches emptied
    server.servfail("broken.test")
    server.stop()

Every zone gets an SOA, an NS ``ns.<zone>`` and that name's address 127.0.0.1. There is no
root zone: a name under ``.test`` outside every test zone SERVFAILs (the root servers are
unreachable), a name under ``.invalid`` is NXDOMAIN (unbound's own RFC 6761 zone).
"""

from __future__ import annotations

import datetime
import hashlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography import x509

Records = dict[str, list[str]]


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 at the moment of asking."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def tlsa_rdata(usage: int, selector: int, matching: int, cert_der: bytes) -> str:
    """``"TLSA u s m DATA"`` for a DER certificate, computed here independently of postar."""
    data = cert_der
    if selector == 1:
        data = x509.load_der_x509_certificate(cert_der).public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if matching == 1:
        data = hashlib.sha256(data).digest()
    elif matching == 2:
        data = hashlib.sha512(data).digest()
    return f"TLSA {usage} {selector} {matching} {data.hex()}"


@dataclass
class _Zone:
    name: str
    records: Records
    signed: bool
    bogus: bool
    broken: frozenset[tuple[str, str]]
    ds: str = ""  # the trust anchor (DS record text) when signed


@dataclass
class DNSServer:
    """unbound serving test zones on 127.0.0.1:``port``; start() it, stop() it."""

    directory: Path
    port: int = 0
    zones: dict[str, _Zone] = field(default_factory=dict)
    lame: set[str] = field(default_factory=set)
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def nameserver(self) -> str:
        """As postar's config writes it: ``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    def zone(self, name: str, records: Records, *, signed: bool = False, bogus: bool = False,
             broken: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset()) -> None:
        """Add or replace a zone (reloaded at once when running)."""
        name = name.rstrip(".").lower()
        self.zones[name] = _Zone(name, records, signed or bogus or bool(broken), bogus, frozenset(broken))
        self._write_zone(self.zones[name])
        self._reload()

    def remove_zone(self, name: str) -> None:
        self.zones.pop(name.rstrip(".").lower(), None)
        self._reload()

    def servfail(self, name: str) -> None:
        """Make every look-up at or below ``name`` SERVFAIL (a lame delegation)."""
        self.lame.add(name.rstrip(".").lower())
        self._reload()

    # -- the process --

    def start(self, tries: int = 3) -> None:
        for _ in range(tries):
            self.port = free_port()
            self._write_config()
            with open(self.directory / "unbound.out", "ab") as log:
                self.process = subprocess.Popen(["unbound", "-d", "-c", str(self._config_path)],
                                                stdout=log, stderr=log)
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError(f"unbound did not start: {self.log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        text = ""
        for name in ("unbound.out", "unbound.log"):
            path = self.directory / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """One query straight to the server, with the DO bit (for checks in tests)."""
        request = dns.message.make_query(name, rdtype, want_dnssec=True)
        return dns.query.udp(request, "127.0.0.1", port=self.port, timeout=5)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 20
        probe = next(iter(self.zones), "localhost")
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                request = dns.message.make_query(probe, "SOA")
                dns.query.udp(request, "127.0.0.1", port=self.port, timeout=0.2)
                return True
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        return False

    def _reload(self) -> None:
        """Re-read the config and zones; ``reload`` also empties every cache."""
        if self.process is None:
            return
        self._write_config()
        subprocess.run(["unbound-control", "-c", str(self._config_path), "reload"],
                       check=True, capture_output=True, timeout=30)
        if not self._wait_ready():
            raise AssertionError(f"unbound did not come back after reload: {self.log()}")

    # -- files --

    @property
    def _config_path(self) -> Path:
        return self.directory / "unbound.conf"

    def _write_config(self) -> None:
        d = self.directory
        lines = [
            "server:",
            f"  interface: 127.0.0.1@{self.port}",
            f"  port: {self.port}",
            "  do-ip6: no",
            '  username: ""',
            '  chroot: ""',
            f'  directory: "{d}"',
            f'  pidfile: "{d}/unbound.pid"',
            f'  logfile: "{d}/unbound.log"',
            "  use-syslog: no",
            "  verbosity: 1",
            "  val-log-level: 2",
            "  access-control: 127.0.0.0/8 allow",
            # the trust anchors below are the only ones: no root key, no automatic updates
            '  module-config: "validator iterator"',
            "  do-not-query-localhost: no",
            "  qname-minimisation: no",
            "  num-threads: 1",
            "  minimal-responses: no",
            # RFC 6761 names are unbound's own empty zones unless told otherwise
            '  local-zone: "test." nodefault',
        ]
        for zone in self.zones.values():
            if zone.signed:
                lines.append(f'  trust-anchor: "{zone.ds}"')
        lines += [
            "remote-control:",
            "  control-enable: yes",
            f'  control-interface: "{d}/control.sock"',
            "  control-use-cert: no",
        ]
        for zone in self.zones.values():
            lines += ["auth-zone:", f'  name: "{zone.name}."', f'  zonefile: "{d}/{zone.name}.zone"',
                      "  for-upstream: yes", "  for-downstream: no", "  fallback-enabled: no"]
        for name in sorted(self.lame):
            lines += ["stub-zone:", f'  name: "{name}."', f"  stub-addr: 127.0.0.1@{self.port}"]
        self._config_path.write_text("\n".join(lines) + "\n")

    def _write_zone(self, zone: _Zone) -> None:
        origin = dns.name.from_text(zone.name)
        text = [f"$ORIGIN {zone.name}.", "$TTL 300",
                f"@ SOA ns.{zone.name}. hostmaster.{zone.name}. 1 3600 600 86400 60",
                f"@ NS ns.{zone.name}.", "ns A 127.0.0.1"]
        for owner, rdatas in zone.records.items():
            text += [f"{owner} {rdata}" for rdata in rdatas]
        parsed = dns.zone.from_text("\n".join(text) + "\n", origin=origin, relativize=False,
                                    check_origin=True)
        if zone.signed:
            zone.ds = self._sign(parsed, zone)
        parsed.to_file(str(self.directory / f"{zone.name}.zone"), relativize=False)

    @staticmethod
    def _sign(parsed: dns.zone.Zone, zone: _Zone) -> str:
        """Sign with a fresh ECDSA P-256 key (one key as KSK and ZSK); return the trust anchor."""
        algorithm = dns.dnssec.Algorithm.ECDSAP256SHA256
        key = ec.generate_private_key(ec.SECP256R1())
        dnskey = dns.dnssec.make_dnskey(key.public_key(), algorithm, flags=257)
        now = datetime.datetime.now(datetime.timezone.utc)
        dns.dnssec.sign_zone(parsed, keys=[(key, dnskey)], inception=now - datetime.timedelta(hours=1),
                             lifetime=30 * 86400)
        anchor = dnskey
        if zone.bogus:
            other = ec.generate_private_key(ec.SECP256R1())
            anchor = dns.dnssec.make_dnskey(other.public_key(), algorithm, flags=257)
        origin = parsed.origin
        with parsed.writer() as txn:
            for owner, rdtype in zone.broken:
                name = dns.name.from_text(owner, origin) if owner != "@" else origin
                covered = dns.rdatatype.from_text(rdtype)
                sigs = txn.get(name, dns.rdatatype.RRSIG, covered)
                if not sigs:
                    raise ValueError(f"nothing signed at {owner} {rdtype} to break")
                spoiled = [sig.replace(signature=bytes(b ^ 0x55 for b in sig.signature)) for sig in sigs]
                txn.replace(name, sigs.ttl, *spoiled)
        ds = dns.dnssec.make_ds(origin, anchor, "SHA256")
        return f"{origin.to_text()} DS {ds.to_text()}"
