"""Real receiving mail servers for outbound-delivery tests: throwaway Postfix instances.

``PostfixServer`` is the common part, shared with ``bench/postfix_instance.py``:
configuration, queue, data directory and log all live under one root directory,
so the system Postfix (not running here, and never configured) is untouched.
The master daemon runs as a child of this process, started directly instead of
through ``postfix start``, whose integrity checks take about three seconds; it
is stopped with SIGTERM, which master(8) passes on to its whole process group.

``PostfixReceiver`` is a domain's MX: it listens on one ``(ip, port)``, accepts
any local part in the domains it is given, offers STARTTLS with the certificate
it is given, and hands every message to a pipe(8) script that writes the
envelope and the message, exactly as Postfix delivers it, to a file that
``received()`` reads back. What Postfix adds is its Received header alone (see
``Received``). Bounces and DSN notices it sends are captured the same way
(``notifications()``), so it never looks up or reaches another host.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

MAIL_OWNER = "postfix"
SETGID_GROUP = "postdrop"
DAEMON_DIRECTORY = Path("/usr/lib/postfix/sbin")  # Debian's; `postconf -d daemon_directory`
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0

# The queue directories post-install(1) would create (/etc/postfix/postfix-files):
# name, group (None: the owner's own), mode. pid/ belongs to root.
QUEUE_DIRECTORIES = [
    *((name, None, 0o700) for name in ("active", "bounce", "corrupt", "defer", "deferred", "flush",
                                       "hold", "incoming", "private", "saved", "trace")),
    ("maildrop", SETGID_GROUP, 0o730),
    ("public", SETGID_GROUP, 0o710),
]

# Services a Postfix that receives by SMTP and delivers locally needs; no chroot,
# so the instance works from any directory. Columns as in master(5).
MASTER_SERVICES = """\
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixServer:
    """A throwaway Postfix under ``root`` whose smtpd listens on ``ip``:``port``.

    Subclasses add to ``settings()`` (main.cf) and ``services()`` (master.cf) and
    may extend ``make_directories()``. Use it as a context manager or call
    ``start()`` and ``stop()``.
    """

    def __init__(self, root: Path, ip: str, port: int, hostname: str):
        self.root = root
        self.ip = ip
        self.port = port
        self.hostname = hostname
        self.config_dir = root / "etc"
        self.queue_dir = root / "spool"
        self.log_file = root / "maillog"
        self.process: subprocess.Popen | None = None

    def settings(self) -> dict[str, str]:
        """main.cf, as parameter -> value."""
        return {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.root / "data"),
            "maillog_file_prefixes": str(self.root),
            "maillog_file": str(self.log_file),
            "myhostname": self.hostname,
            "mydomain": self.hostname.partition(".")[2] or "invalid",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            # Postfix refuses an inet_interfaces address that no interface carries,
            # as 127.0.0.2 is not (the kernel routes all of 127/8 to lo all the same);
            # the smtpd line in master.cf names the address to listen on instead.
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            # Throttles that would hold back a busy loopback client. Clients in
            # mynetworks are exempt from the anvil limits already; zero says it twice.
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            # Otherwise smtpd sleeps up to 1 s per message while delivery lags behind.
            "in_flow_delay": "0s",
        }

    def services(self) -> str:
        """master.cf: the smtpd listener, then MASTER_SERVICES."""
        return f"{self.ip}:{self.port} inet n - n - - smtpd\n" + MASTER_SERVICES

    def start(self) -> None:
        """Write the configuration, start master(8), return once smtpd's port listens.

        Raises RuntimeError, with the log's tail, when master exits or the port does
        not listen within STARTUP_TIMEOUT.
        """
        self.make_directories()
        self.write_config("main.cf", "".join(f"{name} = {value}\n"
                                             for name, value in self.settings().items()))
        self.write_config("master.cf", self.services())
        # master does not detach without -w; it makes itself a process group leader.
        self.process = subprocess.Popen(
            [str(DAEMON_DIRECTORY / "master"), "-c", str(self.config_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not is_listening(self.ip, self.port):
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace")
                self.process = None
                raise RuntimeError(f"Postfix master exited: {stderr}\nlog tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Postfix does not listen on {self.ip}:{self.port}; "
                                   f"log tail:\n{self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop master and wait until every process of its group has gone."""
        if self.process is None:
            return
        master, self.process = self.process, None
        group = master.pid  # master calls setsid(), so its pid is its process group's id
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        master.stderr.close()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        while process_group_alive(group):
            if time.monotonic() > deadline:
                os.killpg(group, signal.SIGKILL)
                break
            time.sleep(0.01)

    def write_config(self, name: str, text: str) -> None:
        path = self.config_dir / name
        path.write_text(text)
        # Postfix reads a table file only once its mtime is over a second old (in
        # case it is being written), waiting 300 ms at a time; backdate to start at once.
        backdated = time.time() - 10
        os.utime(path, (backdated, backdated))

    def make_directories(self) -> None:
        """Everything Postfix expects under root, owned as post-install(1) would."""
        # Postfix's unprivileged daemons must be able to walk down to their directories.
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for parent in self.root.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise RuntimeError(f"{parent} is not searchable by others, so Postfix's daemons "
                                   f"cannot reach {self.root}; chmod it 755 or use another root")
        self.config_dir.mkdir(exist_ok=True)
        for path in (self.queue_dir, self.queue_dir / "pid"):
            path.mkdir(mode=0o755, exist_ok=True)
        for name, group, mode in QUEUE_DIRECTORIES:
            path = self.queue_dir / name
            path.mkdir(exist_ok=True)
            shutil.chown(path, MAIL_OWNER, group or MAIL_OWNER)
            path.chmod(mode)
        data = self.root / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(data, MAIL_OWNER, MAIL_OWNER)

    def log(self) -> str:
        """The instance's mail log (postlogd writes it), or "" before it exists."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the mail log, for error messages."""
        return "\n".join(self.log().splitlines()[-lines:]) or "(no log written)"

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def is_listening(ip: str, port: int) -> bool:
    """Whether a TCP socket listens on ip:port, read from /proc without connecting."""
    wanted = f"{int.from_bytes(bytes(map(int, ip.split('.'))), 'little'):08X}:{port:04X}"
    with open("/proc/net/tcp") as table:
        next(table)
        return any(fields[1] == wanted and fields[3] == "0A"  # 0A: TCP_LISTEN
                   for fields in map(str.split, table))


def process_group_alive(group: int) -> bool:
    """Whether a process of the group still runs; zombies do not count.

    Postfix's daemons outlive master by a moment and are then reparented to
    PID 1, which may take a second to reap them; a zombie holds no socket.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, _parent, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
        if int(pgrp) == group and state != "Z":
            return True
    return False


# pipe(8) runs this as nobody with: nexthop, queue id, client address, HELO name, sender,
# recipients...
# It writes the envelope as "name value" lines, a blank line, then the message
# from standard input, into tmp/ and then renames the file into new/. The file
# names sort as the long queue ids do: in the order Postfix accepted the messages.
CAPTURE_SCRIPT = """\
#!/bin/sh
set -e
name=$2.$(date +%s%N)
{
    printf 'nexthop %s\\nqueue_id %s\\nclient %s\\nhelo %s\\nsender %s\\n' "$1" "$2" "$3" "$4" "$5"
    shift 5
    for recipient; do printf 'recipient %s\\n' "$recipient"; done
    printf '\\n'
    cat
} > "$CAPTURE_DIR/tmp/$name"
mv "$CAPTURE_DIR/tmp/$name" "$CAPTURE_DIR/new/$name"
"""
CAPTURE_USER = "nobody"
INBOUND, NOTIFICATION = "inbound", "notification"  # the capture transport's nexthops

# Postfix's Received header comes first: a header line, then folded lines (RFC 5322 §2.2.3).
TRACE_HEADER = re.compile(rb"Received: [^\n]*\n(?:[ \t][^\n]*\n)*")
# "with" names the protocol (RFC 3848: ESMTPS is ESMTP with TLS, UTF8SMTPS adds SMTPUTF8);
# smtpd_tls_received_header adds "(using TLSv1.3 with cipher ...)".
PROTOCOL = re.compile(rb"\swith (\S+) id ")
TLS_VERSION = re.compile(rb"\(using (TLSv[\d.]+) with cipher ")


@dataclass(frozen=True)
class Received:
    """One delivery by a PostfixReceiver: one message to all its recipients."""

    nexthop: str  # INBOUND, or NOTIFICATION for what Postfix itself sent
    queue_id: str
    client: str  # the client's IP address; "" for what Postfix itself sent
    helo: str
    sender: str  # "" for the null sender
    recipients: tuple[str, ...]
    protocol: str  # from the Received header: ESMTP, ESMTPS, UTF8SMTPS, ...
    tls_version: str | None  # from the Received header: "TLSv1.3", None without TLS
    trace_header: bytes  # the Received header Postfix prepended, folded, LF line ends
    data: bytes  # everything as delivered: trace_header, then the client's message, LF line ends

    @property
    def tls(self) -> bool:
        return self.protocol.removesuffix("A").endswith("S")

    @property
    def smtputf8(self) -> bool:
        return self.protocol.startswith("UTF8SMTP")

    @property
    def message(self) -> bytes:
        """The message as the client sent it (unstuffed): after trace_header, CRLF line ends.

        Exact for a message whose lines all end in CRLF; Postfix itself turns a bare CR
        into a space and drops a CR before CRLF, and a bare LF comes back as CRLF.
        """
        return self.data[len(self.trace_header):].replace(b"\n", b"\r\n")


class PostfixReceiver(PostfixServer):
    """An MX for ``domains`` on ``ip``:``port``: any local part, every message captured.

    With ``cert`` and ``key`` (PEM paths; the certificate file may hold the chain)
    it offers STARTTLS and logs each TLS session. PIPELINING, SIZE 10240000,
    ENHANCEDSTATUSCODES, 8BITMIME, DSN, SMTPUTF8 and CHUNKING (and VRFY, ETRN) are
    Postfix's defaults. It refuses to relay for
    other domains (554 5.7.1). ``settings`` adds or overrides main.cf parameters,
    e.g. ``{"message_size_limit": "10000"}``.
    """

    def __init__(self, root: Path, ip: str, port: int, domains: list[str], *,
                 cert: Path | None = None, key: Path | None = None, hostname: str | None = None,
                 settings: dict[str, str] | None = None):
        super().__init__(root, ip, port, hostname or f"mx.{domains[0]}")
        self.domains = list(domains)
        self.cert = cert
        self.key = key
        self.extra_settings = dict(settings or {})
        self.capture_dir = root / "received"

    def settings(self) -> dict[str, str]:
        tls = {
            "smtpd_tls_security_level": "may",
            "smtpd_tls_chain_files": f"{self.key}, {self.cert}",
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
        } if self.cert else {"smtpd_tls_security_level": "none"}
        return {
            **super().settings(),
            # A real MX's decisions only: mail for other domains is relay, refused.
            "smtpd_relay_restrictions": "reject_unauth_destination",
            # Clients connect from 127.0.0.x, which DNS must not be asked about.
            "smtpd_peername_lookup": "no",
            # Add no Message-ID, Date or From to what a client sends, wherever it connects from.
            "local_header_rewrite_clients": "",
            # Long queue ids start with the arrival time in seconds and microseconds,
            # in fixed-width base 52 whose digits ascend in ASCII: they sort by arrival.
            "enable_long_queue_ids": "yes",
            "virtual_mailbox_domains": ", ".join(self.domains),
            "virtual_mailbox_maps": "static:any",  # every local part exists
            # One nexthop for all domains, so one delivery carries all a message's recipients.
            "virtual_transport": f"capture:{INBOUND}",
            "capture_destination_recipient_limit": "1000",
            # What Postfix itself sends (bounces, DSN success notices) is captured too,
            # never looked up in the DNS nor sent anywhere.
            "default_transport": f"capture:{NOTIFICATION}",
            **tls,
            **self.extra_settings,
        }

    def services(self) -> str:
        return super().services() + (
            f"capture unix - n n - - pipe flags= user={CAPTURE_USER} null_sender=\n"
            f"  argv=/bin/sh {self.root / 'capture.sh'} ${{nexthop}} ${{queue_id}} ${{client_address}}"
            " ${client_helo} ${sender} ${recipient}\n")

    def make_directories(self) -> None:
        super().make_directories()
        for sub in ("tmp", "new"):
            (self.capture_dir / sub).mkdir(parents=True, exist_ok=True)
            shutil.chown(self.capture_dir / sub, CAPTURE_USER)
        script = self.root / "capture.sh"
        script.write_text(CAPTURE_SCRIPT.replace("$CAPTURE_DIR", str(self.capture_dir)))
        script.chmod(0o755)

    def received(self) -> list[Received]:
        """Every message delivered for the domains so far, in the order Postfix accepted them."""
        return [capture for capture in self.captured() if capture.nexthop == INBOUND]

    def notifications(self) -> list[Received]:
        """What Postfix itself sent so far, oldest first: bounces, delay warnings and
        delivery notices (RFC 3461 NOTIFY=SUCCESS), addressed to the envelope sender."""
        return [capture for capture in self.captured() if capture.nexthop == NOTIFICATION]

    def captured(self) -> list[Received]:
        return [parse_capture((self.capture_dir / "new" / name).read_bytes())
                for name in sorted(os.listdir(self.capture_dir / "new"))]

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """``received()`` once it holds at least ``count`` messages.

        Postfix answers 250 when the message is queued; delivery follows within
        tens of milliseconds. Raises AssertionError with the log's tail on timeout.
        """
        return self._wait(self.received, count, timeout)

    def wait_for_notifications(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """``notifications()`` once it holds at least ``count`` messages."""
        return self._wait(self.notifications, count, timeout)

    def _wait(self, read: Callable[[], list[Received]], count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(found := read()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.ip}:{self.port}: {len(found)} of {count} {read.__name__}; "
                                     f"log tail:\n{self.log_tail()}")
            time.sleep(0.02)
        return found

    def tls_log(self) -> list[str]:
        """smtpd's log lines about TLS sessions ("... TLS connection established ...")."""
        return [line for line in self.log().splitlines() if "TLS connection established" in line]


def parse_capture(content: bytes) -> Received:
    """A capture file: "name value" envelope lines, a blank line, the message."""
    envelope, _, data = content.partition(b"\n\n")
    fields: dict[str, list[str]] = {}
    for line in envelope.decode().split("\n"):
        name, _, value = line.partition(" ")
        fields.setdefault(name, []).append(value)
    trace = TRACE_HEADER.match(data)
    assert trace, f"the message does not start with Postfix's Received header: {data[:300]!r}"
    protocol = PROTOCOL.search(trace.group())
    tls_version = TLS_VERSION.search(trace.group())
    return Received(nexthop=fields["nexthop"][0], queue_id=fields["queue_id"][0], client=fields["client"][0],
                    helo=fields["helo"][0], sender=fields["sender"][0],
                    recipients=tuple(fields.get("recipient", ())),
                    protocol=protocol.group(1).decode() if protocol else "",
                    tls_version=tls_version.group(1).decode() if tls_version else None,
                    trace_header=trace.group(), data=data)
