"""Fixtures for outbound delivery: real and scripted receiving servers on 127.0.0.2-9.

Each "domain's MX" is a server of its own on another loopback address, all on
the one port ``loopback_port`` gives, which is what postar's ``mx_port`` is set
to. Certificates come from the session's trustme CA (tests/conftest.py), for the
MX host name and its address.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import tempfile
from pathlib import Path
from typing import Callable

import pytest
import trustme

from tests.delivery.receivers import DAEMON_DIRECTORY, PostfixReceiver
from tests.delivery.scripted_smtp import Behaviour, ScriptedSMTP

MX_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(2, 10))


def free_loopback_port(addresses: tuple[str, ...] = MX_ADDRESSES, tries: int = 50) -> int:
    """A TCP port that nothing holds on any of ``addresses`` right now."""
    for _ in range(tries):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        if all(can_listen(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no port free on all of {', '.join(addresses)} after {tries} tries")


def can_listen(address: str, port: int) -> bool:
    # SO_REUSEADDR as the servers bind, so a TIME_WAIT left by an earlier test does not count.
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
            probe.listen()
        except OSError:
            return False
    return True


@pytest.fixture
def loopback_port() -> int:
    """One port free on each of 127.0.0.2-127.0.0.9."""
    return free_loopback_port()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> Callable[..., tuple[Path, Path]]:
    """``tls_files(hostname, *more_names) -> (cert_path, key_path)``, issued by the test CA.

    Names may be host names or IP addresses. The certificate file holds the chain.
    """
    def issue(*names: str) -> tuple[Path, Path]:
        cert = ca.issue_cert(*names)
        directory = Path(tempfile.mkdtemp(prefix="tls-", dir=tmp_path))
        cert_path, key_path = directory / "cert.pem", directory / "key.pem"
        cert_path.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        return cert_path, key_path
    return issue


@pytest.fixture
def server_tls(tls_files) -> Callable[..., ssl.SSLContext]:
    """``server_tls(hostname, *more_names)``: a server-side SSLContext for a ScriptedSMTP."""
    def context(*names: str) -> ssl.SSLContext:
        cert, key = tls_files(*names)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(cert, key)
        return server
    return context


@pytest.fixture
def postfix_receiver(tls_files) -> Callable[..., PostfixReceiver]:
    """``postfix_receiver(ip, port, domains, tls=True, hostname=None, settings=None)``.

    Starts a PostfixReceiver for ``domains`` (MX host name ``mx.<first domain>``
    unless given), with a certificate from the test CA for that name and ``ip``
    when ``tls``; stopped and removed after the test. Needs root and Postfix.
    """
    if os.geteuid() != 0 or not (DAEMON_DIRECTORY / "master").exists():
        pytest.skip("needs root and Debian's postfix package")
    started: list[PostfixReceiver] = []

    def start(ip: str, port: int, domains: list[str], tls: bool = True, hostname: str | None = None,
              settings: dict[str, str] | None = None) -> PostfixReceiver:
        hostname = hostname or f"mx.{domains[0]}"
        cert, key = tls_files(hostname, ip) if tls else (None, None)
        # Not under tmp_path: pytest makes its directories 0700, and Postfix's
        # unprivileged daemons must walk down to theirs.
        root = Path(tempfile.mkdtemp(prefix="postar-postfix-"))
        root.chmod(0o755)
        receiver = PostfixReceiver(root / "postfix", ip, port, domains, cert=cert, key=key,
                                   hostname=hostname, settings=settings)
        started.append(receiver)
        receiver.start()
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
        shutil.rmtree(receiver.root.parent, ignore_errors=True)


@pytest.fixture
def scripted_smtp() -> Callable[..., ScriptedSMTP]:
    """``scripted_smtp(ip, port, *behaviours)``: a started ScriptedSMTP, stopped after the test."""
    started: list[ScriptedSMTP] = []

    def start(ip: str, port: int, *behaviours: Behaviour) -> ScriptedSMTP:
        server = ScriptedSMTP(ip, port, *behaviours)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def world(tmp_path: Path, ca: trustme.CA, dns_server):
    """A World (tests/delivery/outbound.py) around the test module's own ``dns_server``."""
    from tests.delivery.outbound import World

    made = World(tmp_path, ca, dns_server)
    yield made
    made.close()


@pytest.fixture(scope="module")
def dns_server(request, tmp_path_factory):
    """unbound serving the test module's ``ZONES``; a module with other needs defines its own."""
    server = serve_zones(tmp_path_factory.mktemp("dns"), request.module.ZONES)
    yield server
    server.stop()


def serve_zones(directory: Path, zones: dict):
    """A started DNSServer with ``zones``; for a test module's ``dns_server`` fixture."""
    from tests.delivery.dnsserver import DNSServer

    server = DNSServer(directory)
    for name, records in zones.items():
        server.zone(name, records)
    server.start()
    return server
