"""What every SMTP session of one server shares: config, store, routing, login checks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from postar.auth.passwords import Authenticator
from postar.auth.throttle import LoginThrottle
from postar.config import Config
from postar.delivery.routing import Router
from postar.store import Store


@dataclass
class Context:
    config: Config
    store: Store
    router: Router
    authenticator: Authenticator
    throttle: LoginThrottle
    tls_available: bool
    # Open connections per client address, over all SMTP listeners.
    connections_by_ip: Counter[str] = field(default_factory=Counter)
