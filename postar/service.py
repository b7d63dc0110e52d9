"""Start-up and shutdown of the whole service on one event loop.

Every part enters one ``AsyncExitStack`` (store first, listeners after), so a
SIGTERM or SIGINT unwinds them in reverse: listeners stop accepting, idle
sessions get 421, running transactions get ``limits.shutdown_grace`` seconds
to finish and be stored, then the store drains its last commit and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import ssl

from postar import tls
from postar.auth.login import LoginGate
from postar.auth.passwords import Authenticator
from postar.auth.throttle import LoginThrottle
from postar.config import Config, hostname_problem, split_address
from postar.delivery.outbound import make_runner
from postar.delivery.routing import Router
from postar.context import Context
from postar.imap.server import IMAPListener
from postar.imap.views import MailboxViews
from postar.listener import Listener
from postar.session_limits import ConnectionCounter
from postar.pop3.maildrop import MaildropLocks
from postar.pop3.server import POP3Listener
from postar.smtp.server import SMTPListener
from postar.smtp.session import Port
from postar.store import control
from postar.store.sqlite import SQLiteStore

log = logging.getLogger("postar")


class StartupError(Exception):
    """A listener could not bind, or the TLS files are unusable."""


async def run(config: Config, config_path: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        store = await SQLiteStore.open(config.data_path)
        stack.push_async_callback(store.close)
        try:
            ssl_context: ssl.SSLContext | None = tls.server_context(config)
        except (OSError, ssl.SSLError) as e:
            raise StartupError(f"cannot load the TLS certificate: {e}") from None
        limits = config.limits
        context = Context(
            config=config, store=store, router=Router(store),
            logins=LoginGate(
                Authenticator(store, limits.auth_cache_ttl, limits.password_workers),
                LoginThrottle(limits.failed_logins, limits.failed_logins_per_account, limits.failed_login_window,
                              limits.account_penalty, limits.account_penalty_max),
                limits.failed_login_delay),
            tls_available=ssl_context is not None)
        # the per-address and total limits count over all listeners
        counter = ConnectionCounter(limits.max_connections or connection_budget(raise_open_file_limit()))
        listeners: list[tuple[str, Listener]] = [
            (port.value, SMTPListener(context, port, ssl_context, counter)) for port in Port]
        views = MailboxViews()  # both IMAP listeners share the cached mailbox views
        listeners += [("imap", IMAPListener(context, "imap", ssl_context, counter, False, views)),
                      ("imaps", IMAPListener(context, "imaps", ssl_context, counter, True, views))]
        locks = MaildropLocks()  # one POP3 session per account, over both POP3 listeners
        listeners += [("pop3", POP3Listener(context, "pop3", ssl_context, counter, False, locks)),
                      ("pop3s", POP3Listener(context, "pop3s", ssl_context, counter, True, locks))]
        listening = []
        for name, listener in listeners:
            address = getattr(config.listen, name)
            if not address:
                continue
            host, number = split_address(address)
            try:
                await listener.start(host, number)
            except OSError as e:
                raise StartupError(
                    f"cannot listen on {address} for {name}: {e.strerror}. Is another mail "
                    f"server running? Choose another address with [listen] {name} = ...") from None
            stack.push_async_callback(listener.shutdown, limits.shutdown_grace)
            for sock in listener.sockets:
                bound = sock.getsockname()
                listening.append(f"{name} on {bound[0]}:{bound[1]}")
        runner = make_runner(config, store)
        context.wake_delivery = runner.wake
        stack.enter_context(control.wake_requests(config.data_path, runner.wake))  # `postar queue retry`
        delivering = loop.create_task(runner.run())
        stack.push_async_callback(_stop_task, delivering)  # before the store closes, after the listeners
        print("postar listening: " + ", ".join(listening), flush=True)
        log.info("at most %d client connections at once, %d from one address",
                 counter.max_total, limits.connections_per_ip)
        problem = hostname_problem(config.hostname)
        if problem:
            print(f"warning: {problem}: other mail servers may refuse its mail; "
                  "set hostname in the config file", flush=True)
        if not await store.list_accounts():
            print(_first_steps(config, config_path), flush=True)
        await stop.wait()
        log.info("stopping")
    log.info("stopped")


# Descriptors kept back from clients: the store, its WAL, listening sockets, outbound
# delivery's connections (delivery.concurrency) and DNS; as Postfix keeps back its own.
_RESERVED_DESCRIPTORS = 256


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a root shell on Debian gives 1,024
    of a hard 524,288 or more); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_budget(open_files: int) -> int:
    """The default ``limits.max_connections`` for a process that may open ``open_files``."""
    return max(16, open_files - _RESERVED_DESCRIPTORS)


async def _stop_task(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _first_steps(config: Config, config_path: str | None) -> str:
    option = f" --config {config_path}" if config_path else ""
    labels = config.hostname.split(".")
    domain = ".".join(labels[1:]) if len(labels) > 2 else "example.org"
    return (
        "No accounts yet. Add your domain and the first user:\n"
        f"  postar{option} domain add {domain}\n"
        f"  postar{option} user add you@{domain}\n"
        f"  postar{option} alias add postmaster@{domain} you@{domain}"
    )
