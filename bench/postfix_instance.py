"""A throwaway Postfix on loopback that delivers one domain to a Maildir.

The instance itself (configuration, queue, data directory and log under one
directory; master started and stopped directly) is the test suite's
`PostfixServer` from tests/delivery/receivers.py, which the delivery tests use
as a receiving MX; this file adds the benchmark's delivery and limits. A system
Postfix, if any, is never touched.

Durability is Postfix's normal one: cleanup(8) fsyncs the queue file before smtpd
answers 250, and virtual(8) fsyncs each Maildir file before it renames it into
`new/`. Only the throttles that would slow a single loopback client are lifted.
"""

import os
import sys
import time
from pathlib import Path

from benchnet import LOOPBACK

# The checkout this bench/ belongs to, for `tests.delivery.receivers`.
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.delivery.receivers import PostfixServer  # noqa: E402

# virtual(8) refuses to deliver as a uid below virtual_minimum_uid (100).
MAILBOX_UID = 65534  # nobody
MAILBOX_GID = 65534  # nogroup


class PostfixInstance(PostfixServer):
    """Postfix listening on LOOPBACK:`port`, delivering `domain` to one Maildir."""

    def __init__(self, root: Path, port: int, domain: str, sessions: int):
        super().__init__(root, LOOPBACK, port, hostname="postfix.bench.invalid")
        self.domain = domain
        self.sessions = sessions
        self.mail_base = root / "mail"
        # The static virtual_mailbox_maps entry below sends every recipient here.
        self.maildir = self.mail_base / domain / "user"

    def settings(self) -> dict[str, str]:
        return {
            **super().settings(),
            # Delivery: every recipient in the domain goes to one Maildir (trailing /).
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail_base),
            "virtual_mailbox_maps": f"static:{self.domain}/user/",
            "virtual_uid_maps": f"static:{MAILBOX_UID}",
            "virtual_gid_maps": f"static:{MAILBOX_GID}",
            "default_process_limit": str(max(100, 2 * self.sessions)),
        }

    def services(self) -> str:
        return super().services() + "virtual   unix  - n n -     - virtual\n"

    def make_directories(self) -> None:
        super().make_directories()
        self.mail_base.mkdir(exist_ok=True)
        os.chown(self.mail_base, MAILBOX_UID, MAILBOX_GID)

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
