"""POP3 listeners: ``pop3`` (port 110, STLS) and ``pop3s`` (port 995, implicit TLS).

The session loop around ``postar.listener``'s connection. Replies to pipelined
commands (RFC 2449 §6.6) are written together when the input runs dry; a
large RETR is written as it is, with the transport's flow control. A client
that goes away without QUIT changes nothing (RFC 1939 §6).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from postar.context import Context
from postar.listener import TOO_LONG, Closed, Connection, Listener, ShuttingDown
from postar.session_limits import ConnectionCounter, Deadlines
from postar.pop3 import responses
from postar.pop3.maildrop import MaildropLocks
from postar.pop3.session import Next, Session, State, Step

log = logging.getLogger("postar.pop3")

MAX_LINE = 4096  # RFC 2449 §4 says 255 octets; SASL responses need more, as in Dovecot
IDLE_TIMEOUT = 600.0  # RFC 1939 §3: an autologout timer of at least 10 minutes


class POP3Listener(Listener):
    def __init__(self, context: Context, name: str, ssl_context: ssl.SSLContext | None,
                 counter: ConnectionCounter, implicit_tls: bool, locks: MaildropLocks):
        limits = context.config.limits
        super().__init__(name, POP3Connection, per_ip_limit=limits.connections_per_ip,
                         deadlines=Deadlines.from_limits(limits, IDLE_TIMEOUT),
                         counter=counter, ssl_context=ssl_context, implicit_tls=implicit_tls)
        self.context = context
        self.locks = locks


class POP3Connection(Connection):
    listener: POP3Listener
    max_line = MAX_LINE

    @staticmethod
    def refusal(reason: str) -> bytes:
        return {"shutdown": responses.SHUTTING_DOWN, "server busy": responses.SERVER_BUSY}.get(
            reason, responses.TOO_MANY_CONNECTIONS)

    async def serve(self) -> None:
        listener = self.listener
        session = Session(listener.context, listener.locks, self.client_ip, self.id, tls=bool(self.tls),
                          tls_possible=listener.ssl_context is not None)
        self.write(session.greeting())
        errors = 0
        try:
            step = Step(b"")
            while True:
                line = await self.read_line()
                if line is TOO_LONG:
                    step = Step(responses.LINE_TOO_LONG, error=True)
                elif step.next is Next.AUTH_RESPONSE:
                    step = await session.handle_auth_response(line)
                else:
                    step = await session.handle_line(line)
                self.write(step.reply)
                if not self.signed_in and session.state is State.TRANSACTION:
                    self.now_signed_in()
                errors += step.error
                if errors >= listener.context.config.limits.errors:
                    self.write(responses.TOO_MANY_ERRORS)
                    return
                if step.next is Next.CLOSE:
                    return
                if step.next is Next.STLS:
                    if not await self.start_tls():
                        return
                    session.tls_started()
        except Closed:
            if session.state is State.TRANSACTION:
                log.info("%s: %s went away without QUIT, nothing deleted", self.id, self.client_ip)
        except asyncio.TimeoutError:
            self.write(responses.TIMEOUT)
            log.info("%s: timeout, client=%s", self.id, self.client_ip)
        except (ShuttingDown, asyncio.CancelledError):
            self.write(responses.SHUTTING_DOWN)
        except Exception:
            log.exception("%s: connection failed", self.id)
        finally:
            session.close()
