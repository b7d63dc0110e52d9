"""What every SMTP session of one server shares: config, store, routing, login checks."""

from __future__ import annotations

from dataclasses import dataclass

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
