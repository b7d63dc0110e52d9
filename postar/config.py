"""The one configuration tree of postar, read from a TOML file.

Every field is documented where it is defined (the ``doc`` metadata); the sample
config and ``docs/configuration.md`` are generated from these definitions by
``postar config sample`` and ``postar config doc``. Unknown keys are an error
naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The config file is unreadable or holds an unknown key or a bad value."""


def _doc(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"doc": text})
    return field(default=default, metadata={"doc": text})


@functools.cache
def machine_hostname() -> str:
    """The system's own name, fully qualified where the system knows its domain (as
    Postfix's ``myhostname``). ``socket.getfqdn()`` alone is not enough: on many
    machines it answers ``localhost`` because /etc/hosts lists the name there."""
    name = socket.gethostname().strip().rstrip(".").lower()
    if "." not in name and name:
        try:
            infos = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)
            canonical = next((i[3] for i in infos if i[3]), "").rstrip(".").lower()
        except OSError:
            canonical = ""
        if "." in canonical and not _is_localhost(canonical):
            name = canonical
    return name


def _is_localhost(name: str) -> bool:
    return name.split(".")[0] in ("localhost", "ip6-localhost", "ip6-loopback")


def hostname_problem(name: str) -> str | None:
    """Why ``name`` is a poor ``hostname`` for a mail server, or None when it is fine:
    other servers check that EHLO and Received name a fully qualified domain."""
    if not name or _is_localhost(name):
        return f"hostname {name!r} names no host other servers can reach"
    if "." not in name.strip("."):
        return f"hostname {name!r} is not a fully qualified domain name"
    return None


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# The standard ports, for a production config (`postar config sample` shows them).
STANDARD_PORTS = {
    "smtp": 25, "submission": 587, "submissions": 465,
    "imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995, "web": 443,
}
# The defaults: unprivileged, so a first start needs no root and never fights
# another mail server already on port 25.
DEFAULT_PORTS = {
    "smtp": 2525, "submission": 5870, "submissions": 4650,
    "imap": 1430, "imaps": 9930, "pop3": 1100, "pop3s": 9950, "web": 8443,
}
SERVED_NOW = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s")


def _default_listen(name: str) -> str:
    return f"0.0.0.0:{DEFAULT_PORTS[name]}" if name in SERVED_NOW else ""


@dataclass
class Listen:
    """Where each service listens, as ``"host:port"``. Without a [listen] table the defaults
    below apply; with one, a key that is absent or empty is off."""

    smtp: str = _doc("Server-to-server SMTP (MX), STARTTLS offered, no AUTH. "
                     "Default 0.0.0.0:2525; the standard port is 25.",
                     factory=lambda: _default_listen("smtp"))
    submission: str = _doc("Message submission with STARTTLS (RFC 6409). "
                           "Default 0.0.0.0:5870; the standard port is 587.",
                           factory=lambda: _default_listen("submission"))
    submissions: str = _doc("Message submission over implicit TLS (RFC 8314). "
                            "Default 0.0.0.0:4650; the standard port is 465.",
                            factory=lambda: _default_listen("submissions"))
    imap: str = _doc("IMAP with STARTTLS; LOGIN only after it. "
                     "Default 0.0.0.0:1430; the standard port is 143.",
                     factory=lambda: _default_listen("imap"))
    imaps: str = _doc("IMAP over implicit TLS. Default 0.0.0.0:9930; the standard port is 993.",
                      factory=lambda: _default_listen("imaps"))
    pop3: str = _doc("POP3 with STLS; USER/PASS and AUTH only after it. "
                     "Default 0.0.0.0:1100; the standard port is 110.",
                     factory=lambda: _default_listen("pop3"))
    pop3s: str = _doc("POP3 over implicit TLS. Default 0.0.0.0:9950; the standard port is 995.",
                      factory=lambda: _default_listen("pop3s"))
    web: str = _doc("Web settings and autoconfig (not served yet).", "")


@dataclass
class TLS:
    """The certificate every listener presents."""

    cert: str = _doc("PEM certificate chain. Empty: a self-signed certificate for "
                     "`hostname` is made in data_dir/tls on first start.", "")
    key: str = _doc("PEM private key matching `cert`.", "")


@dataclass
class Limits:
    """Limits that keep one client from hurting the others."""

    message_size: int = _doc("Largest message accepted, in bytes (advertised as SIZE).",
                             50 * 1024 * 1024)
    recipients: int = _doc("Most recipients per message; more get 452 4.5.3.", 100)
    connections_per_ip: int = _doc("Most simultaneous connections from one IP address.", 50)
    failed_logins: int = _doc("Failed logins allowed per IP address (IPv6: per /48) within "
                              "failed_login_window; then logins from it are refused. Each "
                              "attempt counts from its start until it succeeds, so logins "
                              "sent at once cannot pass the limit.", 10)
    failed_logins_per_account: int = _doc("Failed logins per account within failed_login_window, "
                                          "from all addresses, before its logins are slowed "
                                          "(never refused: the right password still logs in).", 30)
    failed_login_window: float = _doc("Seconds over which failed logins are counted.", 600.0)
    failed_login_delay: float = _doc("Seconds each failed login waits before its reply "
                                     "(as Dovecot's auth_failure_delay).", 2.0)
    account_penalty: float = _doc("Seconds a login for an account past failed_logins_per_account "
                                  "waits before its password is checked; doubled for each further "
                                  "failure (as Dovecot's auth penalty). Not for a password "
                                  "verified within auth_cache_ttl.", 2.0)
    account_penalty_max: float = _doc("Longest wait of account_penalty, in seconds "
                                      "(Dovecot's AUTH_PENALTY_MAX_SECS).", 15.0)
    password_workers: int = _doc("Password checks (argon2id, 64 MiB each) run at once; more wait "
                                 "their turn (as Dovecot's auth_worker_max_count). 0: one per "
                                 "core, at most as many as half the available memory holds.", 0)
    errors: int = _doc("Protocol errors in one session before it is closed (SMTP 421, IMAP BYE, POP3 -ERR).", 20)
    idle_timeout: float = _doc("Seconds a session may wait between commands, and the most a client "
                               "may take to read what it was sent. 0: each protocol's own floor, "
                               "SMTP 300 (RFC 5321 §4.5.3.2.7), IMAP 1800 (RFC 9051 §5.4), "
                               "POP3 600 (RFC 1939 §3).", 0.0)
    login_timeout: float = _doc("Seconds from connecting until signed in, on every port that "
                                "has a login (not the MX port).", 60.0)
    command_timeout: float = _doc("Seconds a command line may take from its first octet to its "
                                  "end (Postfix's smtpd_per_request_deadline), and the grace "
                                  "before min_transfer_rate applies to a transfer.", 60.0)
    min_transfer_rate: int = _doc("Octets per second a client must keep up while it sends DATA, "
                                  "a BDAT chunk or a literal (Postfix's smtpd_min_data_rate).", 500)
    max_connections: int = _doc("Most client connections at once, on all listeners. 0: derived "
                                "from the open-file limit (raised to its hard limit at start), "
                                "leaving room for the store and outbound delivery.", 0)
    shutdown_grace: float = _doc("Seconds running transactions get to finish on SIGTERM.", 30.0)
    quota: int = _doc("Storage per account in bytes, reported by IMAP QUOTA (RFC 9208); "
                      "APPEND beyond it gets NO [OVERQUOTA], and mail for a full account "
                      "452 4.2.2 at RCPT. 0 is no limit.", 0)
    auth_cache_ttl: float = _doc("Seconds a verified login is remembered so repeated logins "
                                 "skip the argon2id check; a changed or revoked password "
                                 "misses at once. 0 turns the cache off.", 3600.0)


@dataclass
class Delivery:
    """Delivering users' mail to other domains: DNS, retries, limits, an optional relay."""

    nameservers: list = _doc('DNS servers for MX, TXT and TLSA look-ups, as "host" or "host:port". '
                             "Empty: the system resolver (/etc/resolv.conf).", factory=list)
    mx_port: int = _doc("Port of other domains' mail servers (25; tests point it elsewhere).", 25)
    lifetime: float = _doc("Seconds a message may wait in the queue before it bounces "
                           "(Postfix's maximal_queue_lifetime).", 5 * 86400.0)
    retry_min: float = _doc("Seconds before the first retry after a temporary failure; each later "
                            "wait doubles, with jitter.", 300.0)
    retry_max: float = _doc("Longest wait between two attempts, in seconds.", 4 * 3600.0)
    delay_warning: float = _doc("Seconds after which the sender is told that a message is delayed "
                                "(once; 0: never).", 4 * 3600.0)
    queue_scan_interval: float = _doc("Most seconds between two looks at the queue. New mail, retries "
                                      "coming due and `postar queue retry` or `release` are acted on at "
                                      "once; this catches what nothing announced.", 5.0)
    concurrency: int = _doc("Most outgoing SMTP connections at once.", 50)
    per_destination: int = _doc("Most outgoing connections to one destination (a domain, or the smarthost "
                                "for all mail) at once, as Postfix's default_destination_concurrency_limit.", 20)
    per_destination_rate: float = _doc("Most new messages per second to one destination "
                                       "(0: no limit).", 0.0)
    connect_timeout: float = _doc("Seconds to wait for a remote server to connect and greet.", 30.0)
    command_timeout: float = _doc("Seconds to wait for each reply of a remote server "
                                  "(twice that for the reply to the end of DATA, as RFC 5321 §4.5.3.2 allows).", 300.0)
    smarthost: str = _doc('Relay all outgoing mail through this server, "host:port" (e.g. your '
                          "provider's submission port 587) instead of looking up MX hosts.", "")
    smarthost_user: str = _doc("Login name at the smarthost (empty: no AUTH).", "")
    smarthost_password_file: str = _doc("File holding the smarthost password (mode 0600).", "")
    mta_sts_port: int = _doc("HTTPS port for MTA-STS policy fetches (443; tests point it elsewhere).", 443)
    ca_file: str = _doc("Extra CA certificates (PEM) trusted when a remote server's certificate "
                        "is verified; empty: the system's.", "")
    sent_copy: bool = _doc("Put a copy of each submitted message in the sender's Sent mailbox "
                           "(per account: postar user sent-copy ADDRESS off).", True)


def _default_data_dir() -> str:
    if _running_as_root():
        return "/var/lib/postar"
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(base, "postar")


@dataclass
class Config:
    """The whole configuration."""

    hostname: str = _doc("This server's name in greetings, EHLO and Received headers. "
                         "Default: the system's host name, fully qualified where the system "
                         "knows its domain (as Postfix's myhostname). Set it to the name in "
                         "your MX record; `postar config check` warns when it is not a fully "
                         "qualified domain name.",
                         factory=machine_hostname)
    data_dir: str = _doc("Where the store (SQLite database) and generated keys live. "
                         "Default /var/lib/postar as root, ~/.local/share/postar otherwise.",
                         factory=_default_data_dir)
    log_level: str = _doc("One of debug, info, warning, error.", "info")
    listen: Listen = _doc("Listeners.", factory=Listen)
    tls: TLS = _doc("TLS certificate.", factory=TLS)
    limits: Limits = _doc("Limits.", factory=Limits)
    delivery: Delivery = _doc("Outbound delivery.", factory=Delivery)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    # A [listen] table names exactly what is on: the keys it leaves out are off.
    kwargs: dict[str, Any] = {name: "" for name in fields} if cls is Listen else {}
    for key, value in values.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(f"unknown config key {name!r}")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ConfigError(f"{name!r} must be a table")
            kwargs[key] = _build(type(default), value, name)
            continue
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ConfigError(f"{name!r} must be {expected.__name__}, not {type(value).__name__}")
        kwargs[key] = value
    return cls(**kwargs)


def _check(config: Config) -> None:
    for f in dataclasses.fields(Listen):
        address = getattr(config.listen, f.name)
        if address:
            try:
                split_address(address)
            except ValueError as e:
                raise ConfigError(f"'listen.{f.name}': {e}") from None
    if bool(config.tls.cert) != bool(config.tls.key):
        raise ConfigError("'tls.cert' and 'tls.key' must be given together")
    for server in config.delivery.nameservers:
        if not isinstance(server, str) or not server:
            raise ConfigError("'delivery.nameservers' must be a list of \"host\" or \"host:port\" strings")
    if config.delivery.smarthost:
        try:
            split_address(config.delivery.smarthost)
        except ValueError as e:
            raise ConfigError(f"'delivery.smarthost': {e}") from None
    if config.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError("'log_level' must be one of debug, info, warning, error")


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read the config file at ``path``; ``None`` gives the defaults.

    Raises ConfigError for an unreadable file, bad TOML, unknown keys or bad values.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                values = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    config = _build(Config, values, "")
    _check(config)
    return config


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"`` to (host, port); raises ValueError."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def sample() -> str:
    """A commented TOML file holding every key with its default."""
    lines: list[str] = ["# postar configuration; every key is optional.", ""]
    config = Config()
    tables = []
    for f in dataclasses.fields(Config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            tables.append((f.name, value))
            continue
        lines += [f"# {f.metadata['doc']}", f"{f.name} = {_toml_value(value)}", ""]
    for name, table in tables:
        lines += [f"[{name}]", f"# {_one_line(type(table).__doc__)}"]
        for sub in dataclasses.fields(table):
            lines += [f"# {sub.metadata['doc']}", f"{sub.name} = {_toml_value(getattr(table, sub.name))}"]
        lines.append("")
    return "\n".join(lines)


def reference() -> str:
    """Markdown reference of every key, for docs/configuration.md."""
    out = ["# Configuration", "",
           "One TOML file, given with `postar --config FILE`. Every key is optional;",
           "unknown keys are an error. Generated by `postar config doc`.", ""]
    top = [f for f in dataclasses.fields(Config) if not dataclasses.is_dataclass(getattr(Config(), f.name))]
    out += ["## Top level", "", "| key | meaning |", "| --- | --- |"]
    out += [f"| `{f.name}` | {f.metadata['doc']} |" for f in top]
    for f in dataclasses.fields(Config):
        table = getattr(Config(), f.name)
        if not dataclasses.is_dataclass(table):
            continue
        out += ["", f"## [{f.name}]", "", _one_line(type(table).__doc__), "",
                "| key | default | meaning |", "| --- | --- | --- |"]
        for sub in dataclasses.fields(table):
            default = _toml_value(getattr(table, sub.name))
            out.append(f"| `{sub.name}` | `{default}` | {sub.metadata['doc']} |")
    return "\n".join(out) + "\n"
