"""A throwaway Postfix on loopback that delivers one domain to a Maildir.

Its configuration, queue, data directory, Maildir and log all live under one
directory, so a system Postfix, if any, is never touched. `postfix -c DIR` starts
and stops it; as root no `alternate_config_directories` entry is needed.

Durability is Postfix's normal one: cleanup(8) fsyncs the queue file before smtpd
answers 250, and virtual(8) fsyncs each Maildir file before it renames it into
`new/`. Only the throttles that would slow a single loopback client are lifted.
"""

import os
import shutil
import subprocess
import time
from pathlib import Path

from benchnet import LOOPBACK, Instance, find_tool

# virtual(8) refuses to deliver as a uid below virtual_minimum_uid (100).
MAILBOX_UID = 65534  # nobody
MAILBOX_GID = 65534  # nogroup

# Services a Postfix that receives by SMTP and delivers with virtual(8) needs; no
# chroot, so the instance works from any directory. Columns as in master(5).
MASTER_SERVICES = """\
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
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
virtual   unix  - n n -     - virtual
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


class PostfixInstance(Instance):
    """Postfix listening on LOOPBACK:`port`, delivering `domain` to one Maildir."""

    def __init__(self, root: Path, port: int, domain: str, sessions: int):
        self.root = root
        self.port = port
        self.domain = domain
        self.sessions = sessions
        self.config_dir = root / "etc"
        self.mail_base = root / "mail"
        self.log_file = root / "maillog"
        # The static virtual_mailbox_maps entry below sends every recipient here.
        self.maildir = self.mail_base / domain / "user"

    def start(self) -> None:
        """Write the configuration and start the instance; raise with its log on failure."""
        self._make_directories()
        (self.config_dir / "main.cf").write_text(self._main_cf())
        (self.config_dir / "master.cf").write_text(self._master_cf())
        self._postfix("check")
        self._postfix("start")

    def stop(self) -> None:
        """Stop the instance if it runs; `postfix stop` waits for the master to exit."""
        if (self.root / "spool" / "pid" / "master.pid").exists():
            subprocess.run(
                [find_tool("postfix"), "-c", str(self.config_dir), "stop"],
                capture_output=True,
            )

    def delivered_count(self) -> int:
        """How many messages virtual(8) has delivered into the Maildir."""
        return sum(
            len(os.listdir(self.maildir / sub))
            for sub in ("new", "cur")
            if (self.maildir / sub).is_dir()
        )

    def wait_for_deliveries(self, expected: int, timeout: float) -> float:
        """Poll until `expected` messages are in the Maildir; return that moment.

        The moment is a `time.perf_counter()` value. Raises RuntimeError with the
        count seen when the deadline passes or when more mail than expected arrived.
        """
        deadline = time.perf_counter() + timeout
        while (count := self.delivered_count()) < expected:
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"Postfix delivered {count} of {expected} messages in {timeout:.0f} s; "
                    f"log tail:\n{self.log_tail()}"
                )
            time.sleep(0.01)
        if count > expected:
            raise RuntimeError(f"Postfix delivered {count} messages, expected {expected}")
        return time.perf_counter()

    def clear_maildir(self) -> None:
        """Remove delivered messages, so each run starts from an empty Maildir."""
        for sub in ("new", "cur"):
            for entry in os.scandir(self.maildir / sub):
                os.unlink(entry.path)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the instance's mail log (Postfix writes it itself)."""
        if not self.log_file.exists():
            return "(no log written)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _make_directories(self) -> None:
        # The postfix user must be able to walk down to its queue and data dirs.
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for path in (self.config_dir, self.root / "spool", self.root / "data", self.mail_base):
            path.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "data", "postfix", "postfix")
        os.chown(self.mail_base, MAILBOX_UID, MAILBOX_GID)

    def _postfix(self, command: str) -> None:
        # postfix(1) reports to stderr only when it is a terminal; the log has the rest.
        result = subprocess.run(
            [find_tool("postfix"), "-c", str(self.config_dir), command],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"postfix {command} failed ({result.returncode}): {result.stderr.strip()}\n"
                f"log tail:\n{self.log_tail()}"
            )

    def _main_cf(self) -> str:
        return "\n".join([
            "compatibility_level = 3.6",
            f"config_directory = {self.config_dir}",
            f"queue_directory = {self.root / 'spool'}",
            f"data_directory = {self.root / 'data'}",
            f"maillog_file_prefixes = {self.root}",
            f"maillog_file = {self.log_file}",
            "myhostname = postfix.bench.invalid",
            "mydomain = bench.invalid",
            "mydestination =",
            "alias_maps =",
            "alias_database =",
            "local_recipient_maps =",
            f"inet_interfaces = {LOOPBACK}",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            # Delivery: every recipient in the domain goes to one Maildir (trailing /).
            f"virtual_mailbox_domains = {self.domain}",
            f"virtual_mailbox_base = {self.mail_base}",
            f"virtual_mailbox_maps = static:{self.domain}/user/",
            f"virtual_uid_maps = static:{MAILBOX_UID}",
            f"virtual_gid_maps = static:{MAILBOX_GID}",
            # Throttles that would hold back one busy loopback client. Clients in
            # mynetworks are exempt from the anvil limits already; zero says it twice.
            f"default_process_limit = {max(100, 2 * self.sessions)}",
            "smtpd_client_connection_count_limit = 0",
            "smtpd_client_connection_rate_limit = 0",
            "smtpd_client_message_rate_limit = 0",
            "smtpd_client_recipient_rate_limit = 0",
            # Otherwise smtpd sleeps up to 1 s per message while delivery lags behind.
            "in_flow_delay = 0s",
            "",
        ])

    def _master_cf(self) -> str:
        return f"{LOOPBACK}:{self.port} inet n - n - - smtpd\n" + MASTER_SERVICES
