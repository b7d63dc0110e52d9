"""Commands about the connection and login (RFC 9051 §6.1, §6.2; RFC 5161, 2971, 2342, 2177)."""

from __future__ import annotations

import logging

from postar import __version__
from postar.auth import sasl
from postar.auth.login import Refusal
from postar.imap.parser import BadArguments, Command, astring, atom, count
from postar.imap.session import Action, No, Result, Session, State

log = logging.getLogger("postar.imap")

ENABLEABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}


async def do_capability(session: Session, command: Command) -> Result:
    """CAPABILITY (§6.1.1), any state."""
    count(command.args, 0)
    session.send(f"* CAPABILITY {session.capabilities()}\r\n")
    return Result(text="CAPABILITY completed")


async def do_noop(session: Session, command: Command) -> Result:
    """NOOP (§6.1.2) and CHECK: any pending updates come with the reply."""
    count(command.args, 0)
    return Result(text=f"{command.name} completed")


async def do_logout(session: Session, command: Command) -> Result:
    """LOGOUT (§6.1.3)."""
    count(command.args, 0)
    session.send("* BYE Logging out\r\n")
    session.state = State.LOGOUT
    return Result(text="LOGOUT completed", action=Action.LOGOUT)


async def do_starttls(session: Session, command: Command) -> Result:
    """STARTTLS (§6.2.1): not authenticated state only."""
    count(command.args, 0)
    if session.tls:
        return Result("BAD", "TLS is already active")
    if not session.tls_possible:
        raise No("TLS is not available")
    return Result(text="Begin TLS negotiation now", action=Action.STARTTLS)


def _refuse_plaintext(session: Session) -> None:
    if not session.tls:
        log.warning("%s: plaintext login attempt refused, client=%s", session.id, session.client_ip)
        raise No("Log in only after STARTTLS (or on port 993)", "PRIVACYREQUIRED")


async def _log_in(session: Session, username: str, password: str, method: str) -> Result:
    outcome = await session.context.logins.login(session.client_ip, username, password,
                                                 connection_id=session.id, method=f"imap/{method}")
    if outcome is Refusal.BLOCKED:
        raise No("Too many failed logins, try again later", "UNAVAILABLE")
    if outcome is Refusal.FAILED:
        raise No("Authentication failed", "AUTHENTICATIONFAILED")
    if not outcome.imap_enabled:
        log.warning("%s: IMAP access disabled for %s", session.id, outcome.address)
        raise No("IMAP access is turned off for this account", "CONTACTADMIN")
    session.account = outcome
    session.state = State.AUTHENTICATED
    return Result(text="Logged in", code=f"CAPABILITY {session.capabilities()}")


async def do_login(session: Session, command: Command) -> Result:
    """LOGIN (§6.2.3): refused without TLS (LOGINDISABLED)."""
    count(command.args, 2)
    _refuse_plaintext(session)
    return await _log_in(session, astring(command.args[0]), astring(command.args[1]), "LOGIN")


async def do_authenticate(session: Session, command: Command) -> Result:
    """AUTHENTICATE (§6.2.2) PLAIN, with the initial response of SASL-IR (RFC 4959)."""
    count(command.args, 1, 2)
    _refuse_plaintext(session)
    if atom(command.args[0]).upper() != "PLAIN":
        raise No("Unsupported authentication mechanism")
    if session.context.logins.blocked(session.client_ip, session.id):
        raise No("Too many failed logins, try again later", "UNAVAILABLE")
    if len(command.args) == 2:
        return await _plain(session, atom(command.args[1]))
    session.pending_login = command
    return Result(action=Action.AUTH_CONTINUE, continuation=b"+ \r\n")


async def continue_authenticate(session: Session, line: bytes) -> Result:
    session.pending_login = None
    text = line.decode("ascii", "replace").strip()
    if text == "*":
        return Result("BAD", "Authentication cancelled")
    try:
        return await _plain(session, text)
    except No as e:
        return Result("NO", e.text, e.code)


async def _plain(session: Session, response: str) -> Result:
    login = sasl.parse_plain(response)
    if isinstance(login, sasl.SASLError):
        if login.reason == sasl.OTHER_USER:  # well-formed, but not allowed: NO (RFC 5530)
            raise No("Logging in as another user is not allowed", "AUTHORIZATIONFAILED")
        return Result("BAD", f"Bad PLAIN response: {login.reason}")
    return await _log_in(session, login.username, login.password, "PLAIN")


async def do_enable(session: Session, command: Command) -> Result:
    """ENABLE (RFC 5161): reports what it turned on."""
    if not command.args:
        raise BadArguments("ENABLE needs capability names")
    newly = []
    for token in command.args:
        name = atom(token).upper()
        if name in ENABLEABLE and name not in session.enabled:
            if name == "CONDSTORE":
                session.enable_condstore()  # with a mailbox selected, its HIGHESTMODSEQ first
            else:
                session.enabled.add(name)
            newly.append(name)
    if "QRESYNC" in newly:  # RFC 7162 §3.2.3: QRESYNC implies CONDSTORE
        session.enable_condstore()
    session.send(("* ENABLED " + " ".join(newly)).rstrip() + "\r\n")
    return Result(text="ENABLE completed")


async def do_id(session: Session, command: Command) -> Result:
    """ID (RFC 2971): logged, answered with our name and version."""
    count(command.args, 1)
    if isinstance(command.args[0], list) and not session.client_id_logged:  # once: no log flood
        session.client_id_logged = True
        log.info("%s: client id %s", session.id, [astring(t) if not isinstance(t, list) else "" for t in command.args[0]])
    session.send(f'* ID ("name" "postar" "version" "{__version__}")\r\n')
    return Result(text="ID completed")


async def do_namespace(session: Session, command: Command) -> Result:
    """NAMESPACE (RFC 2342): one personal namespace, "/" as delimiter."""
    count(command.args, 0)
    session.send('* NAMESPACE (("" "/")) NIL NIL\r\n')
    return Result(text="NAMESPACE completed")


async def do_idle(session: Session, command: Command) -> Result:
    """IDLE (RFC 2177): the server loop waits for DONE, sending updates as they come."""
    count(command.args, 0)
    return Result(text="IDLE terminated", action=Action.IDLE)


async def do_compress(session: Session, command: Command) -> Result:
    """COMPRESS DEFLATE (RFC 4978): the connection compresses after the tagged OK."""
    count(command.args, 1)
    if atom(command.args[0]).upper() != "DEFLATE":
        raise No("Only DEFLATE is supported")
    if session.compressed:
        raise No("Compression is already on", "COMPRESSIONACTIVE")
    session.compressed = True
    return Result(text="DEFLATE active", action=Action.COMPRESS)
