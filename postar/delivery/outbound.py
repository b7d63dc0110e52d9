"""Outbound delivery as one part of the service: the resolver, TLS policies, the runner."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from postar.config import Config
from postar.delivery import dns
from postar.delivery.mail_hosts import DNSMailHosts
from postar.delivery.queue_runner import QueueRunner
from postar.store import Store


@dataclass(frozen=True)
class _Opportunistic:
    mandatory: bool = False
    source: str = "opportunistic"


class OpportunisticTLS:
    """STARTTLS whenever offered, certificates not checked (RFC 7435)."""

    def __init__(self, ca_file: str = ""):
        self._context = ssl.create_default_context()
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE

    async def requirement(self, domain: str, mx_host: str) -> _Opportunistic:
        return _Opportunistic()

    def context(self, requirement) -> ssl.SSLContext:
        return self._context

    def check(self, ssl_object, requirement, mx_host: str) -> str | None:
        return None

    async def allowed_hosts(self, domain: str, hosts: list[str]) -> list[str]:
        return hosts


def make_runner(config: Config, store: Store) -> QueueRunner:
    settings = config.delivery
    resolver = dns.make_resolver(settings.nameservers)
    policies = OpportunisticTLS(settings.ca_file)
    return QueueRunner(config, store, DNSMailHosts(resolver, settings.mx_port, policies), policies)
