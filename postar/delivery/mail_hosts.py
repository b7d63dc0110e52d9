"""Where a domain's mail goes, from the DNS: the route ``attempt`` follows.

The MX hosts in preference order (``dns.mail_hosts``: RFC 5321 §5.1, null MX
per RFC 7505), each at ``delivery.mx_port``; MTA-STS in enforce mode drops
hosts its policy does not name (RFC 8461 §4.1). DNS trouble becomes a route
without hosts that says whether to retry (SERVFAIL, timeouts) or bounce at
once (no such domain, null MX).
"""

from __future__ import annotations

from postar.delivery import dns
from postar.delivery.attempt import Route
from postar.delivery.recent import Recent


class DNSMailHosts:
    def __init__(self, resolver, mx_port: int, policies=None):
        self.resolver = resolver
        self.mx_port = mx_port
        self.policies = policies
        self._routes, self._addresses = Recent(), Recent()

    async def route(self, domain: str) -> Route:
        try:
            hosts = await self._routes.get(domain, lambda: self._hosts(domain))
        except dns.DNSFailure as failure:
            status = "4.4.3" if failure.temporary else ("5.1.10" if "null MX" in failure.reason else "5.1.2")
            code = "451" if failure.temporary else ("556" if status == "5.1.10" else "550")
            return Route([], error=f"{code} {status} {failure.reason}", final=not failure.temporary)
        if not hosts:
            return Route([], error=f"451 4.7.5 no MX host of {domain} is allowed by its MTA-STS policy")
        return Route([(host, self.mx_port) for host in hosts])

    async def addresses(self, host: str) -> list[str]:
        return await self._addresses.get(host, lambda: dns.host_addresses(host, self.resolver))

    async def _hosts(self, domain: str) -> list[str]:
        """The MX hosts to try, those an MTA-STS policy in enforce mode rules out left out."""
        hosts = await dns.mail_hosts(domain, self.resolver)
        if self.policies is not None:
            hosts = await self.policies.allowed_hosts(domain, hosts)
        return hosts
