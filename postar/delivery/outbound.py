"""Outbound delivery as one part of the service: the resolver, TLS policies, the runner."""

from __future__ import annotations

from dns.resolver import LRUCache

from postar.config import Config
from postar.delivery import dns
from postar.delivery.mail_hosts import DNSMailHosts
from postar.delivery.queue_runner import QueueRunner
from postar.delivery.tls_policy import TLSPolicies
from postar.store import Store


def make_runner(config: Config, store: Store) -> QueueRunner:
    settings = config.delivery
    resolver = dns.make_resolver(settings.nameservers)
    resolver.cache = LRUCache(10000)  # answers kept for their TTL, as a caching resolver would
    policies = TLSPolicies(resolver, mx_port=settings.mx_port, mta_sts_port=settings.mta_sts_port,
                           ca_file=settings.ca_file)
    return QueueRunner(config, store, DNSMailHosts(resolver, settings.mx_port, policies), policies)
