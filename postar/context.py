"""What every session of the service shares: config, store, routing, login checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from postar.auth.login import LoginGate
from postar.config import Config
from postar.delivery.routing import Router
from postar.store import Store


@dataclass
class Context:
    config: Config
    store: Store
    router: Router
    logins: LoginGate
    tls_available: bool
    wake_delivery: Callable[[], None] = field(default=lambda: None)  # new mail for the outbound queue
