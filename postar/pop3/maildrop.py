"""One POP3 session's view of the INBOX, and the lock that makes it exclusive.

RFC 1939 §8: the maildrop is fixed while a session holds it (message numbers
never change, deleted messages only marked); nothing changes in the store
until QUIT, when ``settlement`` says what to do in one transaction. What a
download does follows the account's Gmail-style setting (``PopAction``):
retrieved messages are kept, marked read, archived or moved to Trash; a
message the client deleted leaves the INBOX: into Archive or Trash when the
setting says so, otherwise it is deleted for good, as RFC 1939 asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postar.message.lines import dot_stuffed, with_crlf
from postar.store import PopAction, PopMessage


class MaildropLocks:
    """Accounts with a POP3 session open, shared by the service's POP3 listeners."""

    def __init__(self) -> None:
        self._held: set[int] = set()

    def acquire(self, account_id: int) -> bool:
        if account_id in self._held:
            return False
        self._held.add(account_id)
        return True

    def release(self, account_id: int) -> None:
        self._held.discard(account_id)


@dataclass
class Settlement:
    """What QUIT changes in the store."""

    seen: list[int] = field(default_factory=list)
    to_archive: list[int] = field(default_factory=list)
    to_trash: list[int] = field(default_factory=list)
    remove: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.seen or self.to_archive or self.to_trash or self.remove)


class Maildrop:
    def __init__(self, messages: list[PopMessage], uidvalidity: int, on_retrieve: PopAction):
        self.messages = messages
        self.uidvalidity = uidvalidity
        self.on_retrieve = on_retrieve
        self.deleted: set[int] = set()    # message numbers, from 1
        self.retrieved: set[int] = set()

    def find(self, number: int) -> PopMessage | None:
        """The message, or None when there is no such number or it is marked deleted."""
        if not 1 <= number <= len(self.messages) or number in self.deleted:
            return None
        return self.messages[number - 1]

    def exists(self, number: int) -> bool:
        return 1 <= number <= len(self.messages)

    def listing(self) -> list[tuple[int, PopMessage]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if n not in self.deleted]

    def totals(self) -> tuple[int, int]:
        """(messages, octets) not marked deleted: STAT's answer."""
        present = self.listing()
        return len(present), sum(m.size for _, m in present)

    def unique_id(self, message: PopMessage) -> str:
        """Stable for as long as the message stays in the INBOX (Dovecot's %08Xu%08Xv)."""
        return f"{message.uid:08X}{self.uidvalidity:08X}"

    def reset(self) -> None:
        self.deleted.clear()

    def settlement(self) -> Settlement:
        result = Settlement()
        action = self.on_retrieve
        for number, message in enumerate(self.messages, 1):
            retrieved, deleted = number in self.retrieved, number in self.deleted
            if retrieved and action is not PopAction.KEEP:
                result.seen.append(message.uid)
            if action is PopAction.ARCHIVE and (retrieved or deleted):
                result.to_archive.append(message.uid)
            elif action is PopAction.TRASH and (retrieved or deleted):
                result.to_trash.append(message.uid)
            elif deleted:
                result.remove.append(message.uid)
        return result


def top_payload(content: bytes, lines: int) -> bytes:
    """The header, the blank line and the first ``lines`` lines of the body (RFC 1939 §7, TOP)."""
    content = with_crlf(content)
    blank = 0 if content.startswith(b"\r\n") else content.find(b"\r\n\r\n")
    if blank < 0:
        return dot_stuffed(content)
    body_start = blank + 2 if blank == 0 else blank + 4
    end = body_start
    for _ in range(lines):
        next_end = content.find(b"\r\n", end)
        if next_end < 0:
            break
        end = next_end + 2
    return dot_stuffed(content[:end])
