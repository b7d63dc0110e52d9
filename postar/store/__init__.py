"""The store: the only place postar's state lives.

A small typed async interface (``Store``) with dataclasses for what it holds,
grouped by who uses it: the admin CLI, login, mail routing and delivery. The
embedded implementation is ``postar.store.sqlite`` (SQLite in WAL mode, message
bytes kept verbatim as blobs in the same database so one fsync covers a whole
group commit). No SQL and no file paths exist outside this package, so another
backend (PostgreSQL) can be added without touching protocol code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from typing import Callable, Collection, Mapping, Sequence

    from postar.store.events import Watch

SPECIAL_MAILBOXES = (
    # (name, RFC 6154 special-use attribute); made for each new account.
    ("INBOX", ""),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
)


class StoreError(Exception):
    """Base of the errors the store raises for a request it refuses."""


class NotFound(StoreError):
    """The named domain, account, alias or app password does not exist."""


class AlreadyExists(StoreError):
    """The domain, account, alias or app password exists already."""


@dataclass(frozen=True)
class Account:
    id: int
    address: str
    disabled: bool
    imap_enabled: bool


@dataclass(frozen=True)
class Credentials:
    """What a login is checked against: the password hash and app password hashes."""

    account: Account
    password_hash: str
    app_password_hashes: tuple[str, ...]


@dataclass(frozen=True)
class AppPassword:
    name: str
    created: float


@dataclass(frozen=True)
class Alias:
    address: str
    target: str


@dataclass(frozen=True)
class OutboundRecipient:
    """A recipient on another domain, with its RFC 3461 DSN parameters."""

    address: str
    notify: str = ""
    orcpt: str = ""


@dataclass
class Delivery:
    """One accepted message: its exact bytes, where it goes, and what IMAP will need.

    ``header_prefix`` holds the lines the server adds for local delivery
    (Return-Path, Received), ``relay_prefix`` those for the outbound queue
    (Received only); each is stored beside the verbatim ``data`` and prepended
    on read.
    """

    queue_id: str
    sender: str
    data: bytes
    header_prefix: bytes
    relay_prefix: bytes
    internal_date: float
    summary: str  # JSON: envelope and body structure cached at delivery
    local_accounts: tuple[int, ...] = ()
    outbound: tuple[OutboundRecipient, ...] = ()
    submitter: int | None = None  # account id that submitted it, for outbound mail
    envid: str = ""
    ret: str = ""
    smtputf8: bool = False
    message_id: str = ""  # the Message-ID field, for matching the Sent copy
    sent_copy: int | None = None  # account whose Sent mailbox gets a copy (flagged \Seen)


@dataclass(frozen=True)
class StoredMessage:
    mailbox: str
    uid: int
    size: int
    flags: str
    internal_date: float
    modseq: int
    summary: str
    content: bytes = field(repr=False)  # header_prefix + data


@dataclass(frozen=True)
class MailboxInfo:
    name: str
    special_use: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    messages: int


class RecipientStatus(Enum):
    QUEUED = "queued"  # to be tried at next_attempt
    SENT = "sent"      # accepted by the remote server
    FAILED = "failed"  # bounced (permanent failure or expired)


@dataclass(frozen=True)
class QueuedRecipient:
    """A recipient of a queued message and where its delivery stands."""

    id: int
    address: str
    notify: str = ""
    orcpt: str = ""
    status: RecipientStatus = RecipientStatus.QUEUED
    attempts: int = 0
    next_attempt: float = 0.0
    last_reply: str = ""


@dataclass(frozen=True)
class QueueEntry:
    """A message in the outbound queue, with the recipients it still has."""

    entry_id: int
    queue_id: str
    sender: str
    created: float
    size: int
    recipients: tuple[QueuedRecipient, ...]
    envid: str = ""
    ret: str = ""
    submitter: int | None = None
    smtputf8: bool = False
    held: bool = False
    warned: bool = False


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt did for one recipient."""

    recipient_id: int
    status: RecipientStatus
    reply: str
    next_attempt: float = 0.0


@dataclass(frozen=True)
class Mailbox:
    id: int
    name: str
    special_use: str
    subscribed: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int


class MessageState(NamedTuple):
    """What a session tracks of each message in the selected mailbox.

    A named tuple, not a dataclass: SELECT makes one per message, 100,000 at a time.
    """

    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True)
class MessageInfo:
    """What FETCH needs of a message besides its bytes."""

    uid: int
    flags: tuple[str, ...]
    modseq: int
    size: int
    internal_date: float
    summary: str
    prefix_length: int  # octets of server-added header lines before the client's bytes

    @classmethod
    def of_state(cls, state: "MessageState") -> "MessageInfo":
        """Only what a MessageState knows (size, date and summary left empty)."""
        return cls(state.uid, state.flags, state.modseq, 0, 0.0, "", 0)


@dataclass(frozen=True)
class MailboxChanges:
    """Everything that changed in a mailbox after a modseq."""

    highestmodseq: int
    uidnext: int
    changed: tuple[MessageState, ...]  # new or re-flagged, in UID order
    vanished: tuple[int, ...]          # expunged UIDs
    exists: bool = True                # False: the mailbox itself was deleted


@dataclass(frozen=True)
class MailboxStatus:
    messages: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


class PopAccess(Enum):
    OFF = "off"
    ALL = "all"  # every message in the INBOX
    NEW = "new"  # only mail that arrives after POP was turned on this way


class PopAction(Enum):
    """What a POP download does to the message in the store (at QUIT), as Gmail offers."""

    KEEP = "keep"        # leave it in the INBOX as it is
    READ = "read"        # leave it, marked \Seen
    ARCHIVE = "archive"  # move it to Archive
    TRASH = "trash"      # move it to Trash


@dataclass(frozen=True)
class PopSettings:
    access: PopAccess
    on_retrieve: PopAction
    from_uid: int = 0  # with NEW: INBOX messages below this UID are not offered


class PopMessage(NamedTuple):
    uid: int
    size: int  # octets as POP3 sends the message (CRLF line endings), before byte-stuffing


class FlagMode(Enum):
    SET = "set"
    ADD = "add"
    REMOVE = "remove"


# DKIM ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DKIMKey:
    """A domain's DKIM signing key (RFC 6376), published at ``selector._domainkey.domain``."""

    domain: str
    selector: str
    algorithm: str  # "rsa" or "ed25519": the k= tag of the key record
    private_key: str = field(repr=False)  # as postar.delivery.dkim.generate_key makes it; never shown
    public_key: str  # base64, the p= tag
    created: float


class Store(Protocol):
    # Admin (CLI) --------------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        """Raises AlreadyExists."""

    async def list_domains(self) -> list[str]: ...

    async def delete_domain(self, name: str) -> None:
        """Raises NotFound, or StoreError while accounts remain in it."""

    async def add_account(self, address: str, password_hash: str) -> Account:
        """Also makes the special mailboxes. Raises NotFound (no such domain), AlreadyExists."""

    async def list_accounts(self) -> list[Account]: ...

    async def delete_account(self, address: str) -> None:
        """Deletes its mail and aliases too. Raises NotFound."""

    async def set_password(self, address: str, password_hash: str) -> None:
        """Raises NotFound."""

    async def set_disabled(self, address: str, disabled: bool) -> None:
        """Raises NotFound."""

    async def set_imap_enabled(self, address: str, enabled: bool) -> None:
        """Raises NotFound."""

    async def add_app_password(self, address: str, name: str, password_hash: str) -> None:
        """Raises NotFound, AlreadyExists."""

    async def list_app_passwords(self, address: str) -> list[AppPassword]:
        """Raises NotFound."""

    async def revoke_app_password(self, address: str, name: str) -> None:
        """Raises NotFound."""

    async def add_alias(self, address: str, target: str) -> None:
        """Raises NotFound (alias domain not local), AlreadyExists."""

    async def list_aliases(self) -> list[Alias]: ...

    async def delete_alias(self, address: str, target: str | None = None) -> None:
        """Raises NotFound."""

    # Login ---------------------------------------------------------------------
    async def credentials(self, address: str) -> Credentials | None:
        """The account's hashes, or None when there is no such account."""

    # Routing -------------------------------------------------------------------
    async def is_local_domain(self, domain: str) -> bool: ...

    async def find_account(self, address: str) -> Account | None: ...

    async def alias_targets(self, address: str) -> list[str]:
        """Targets of an alias address (exact, else the domain's catch-all ``@domain``)."""

    async def addresses_of(self, account_id: int) -> set[str]:
        """The account's own address and every alias that leads to it directly."""

    # Delivery ------------------------------------------------------------------
    async def deliver(self, delivery: Delivery) -> None:
        """Store durably (fsync'd before returning) into each local INBOX and the queue."""

    # Reading -------------------------------------------------------------------
    async def mailboxes(self, account_id: int) -> list[MailboxInfo]: ...

    async def messages(self, account_id: int, mailbox: str) -> list[StoredMessage]:
        """Raises NotFound."""

    async def queue(self) -> list[QueueEntry]: ...

    # Outbound queue (delivery/) --------------------------------------------------------
    async def due_entries(self, now: float, limit: int, skip: "Collection[int]" = ()) -> list[QueueEntry]:
        """Up to ``limit`` entries not held, not in ``skip``, with recipients due by ``now``; only those."""

    async def next_due(self) -> float | None:
        """When the next queued recipient of an entry not held is due (None: nothing queued)."""

    async def queue_entry(self, queue_id: str) -> QueueEntry | None:
        """The entry with all its recipients, whatever their status."""

    async def queue_content(self, entry_id: int) -> bytes | None:
        """The message as it is relayed: the Received line added here + the submitted bytes."""

    async def record_attempt(self, entry_id: int, results: "Sequence[AttemptResult]",
                             reports: "Sequence[Delivery]" = (), warned: bool = False) -> None:
        """In one durable transaction: each recipient's outcome (attempts counted), the reports
        (bounces, delay warnings) delivered, and the entry removed once no recipient is queued."""

    async def delete_queue_entry(self, queue_id: str) -> None:
        """Raises NotFound."""

    async def hold_queue_entry(self, queue_id: str | None, held: bool) -> int:
        """Hold or release one entry (None: all); how many changed. Raises NotFound."""

    async def retry_queue_entry(self, queue_id: str | None) -> int:
        """Make the queued recipients of one entry (None: all) due now; how many."""

    async def set_sent_copy(self, address: str, enabled: bool) -> None:
        """Raises NotFound."""

    async def sent_copy_enabled(self, account_id: int) -> bool: ...

    # Mailboxes and messages (IMAP, POP3) -------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]: ...

    async def find_mailbox(self, account_id: int, name: str) -> Mailbox | None: ...

    async def create_mailbox(self, account_id: int, name: str) -> Mailbox:
        """Raises AlreadyExists."""

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """Deletes its messages too. Raises NotFound."""

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """Renames the children ("old/x") too. Renaming INBOX moves its messages into
        a new mailbox and leaves INBOX empty (RFC 9051 §6.3.6). Raises NotFound, AlreadyExists."""

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        """Subscribing needs the mailbox (else NotFound); a subscription outlives it."""

    async def subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names, whether or not the mailboxes still exist."""

    async def message_states(self, mailbox_id: int) -> list[MessageState]:
        """Every message of the mailbox in UID order."""

    async def changes_since(self, mailbox_id: int, modseq: int) -> MailboxChanges: ...

    async def message_infos(self, mailbox_id: int, uids: list[int]) -> list[MessageInfo]:
        """Those of ``uids`` that exist, in UID order."""

    async def message_content(self, mailbox_id: int, uid: int) -> bytes | None:
        """The whole message as clients see it: server-added header lines + exact bytes."""

    async def update_flags(self, mailbox_id: int, uids: list[int], flags: tuple[str, ...], mode: FlagMode,
                           unchanged_since: int | None = None) -> tuple[list[MessageState], list[int]]:
        """Returns (messages whose flags changed, UIDs refused by UNCHANGEDSINCE)."""

    async def expunge(self, mailbox_id: int, uids: list[int] | None = None) -> list[int]:
        """Removes the messages flagged \\Deleted (only those in ``uids`` when given)."""

    async def copy_messages(self, source_id: int, uids: list[int], target_id: int,
                            move: bool = False) -> list[tuple[int, int]]:
        """Copies (or moves) into another mailbox; returns (source UID, new UID) pairs."""

    async def append(self, mailbox_id: int, data: bytes, flags: tuple[str, ...], internal_date: float,
                     summary: str) -> int:
        """Stores a message a client uploads; returns its UID. Raises NotFound."""

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus: ...

    async def account_usage(self, account_id: int) -> int:
        """Octets of all the account's messages (for QUOTA)."""

    async def settle(self, mailbox_id: int, *, seen: "Sequence[int]" = (),
                     moves: "Mapping[int, Sequence[int]] | None" = None, remove: "Sequence[int]" = ()) -> None:
        """In one durable transaction: flag ``seen`` \\Seen, move ``moves`` (target mailbox id to
        UIDs) and remove ``remove``; UIDs no longer there are skipped."""

    # POP3 ------------------------------------------------------------------------
    async def pop_settings(self, account_id: int) -> PopSettings:
        """Raises NotFound."""

    async def set_pop_settings(self, address: str, access: PopAccess | None = None,
                               on_retrieve: PopAction | None = None) -> PopSettings:
        """Changes what is given; NEW (set again or anew) offers mail arriving from now on. Raises NotFound."""

    async def pop_messages(self, mailbox_id: int, from_uid: int = 0) -> list[PopMessage]:
        """The mailbox's messages from ``from_uid`` on, in UID order, with their POP3 sizes."""

    def watch(self, mailbox_id: int, on_change: "Callable[[], None] | None" = None) -> "Watch":
        """Be told when the mailbox changes (delivery, another session); ``on_change`` is called too."""

    async def check(self) -> list[str]:
        """Problems found in the stored data (an empty list when it is consistent)."""

    async def close(self) -> None: ...

    # DKIM --------------------------------------------------------------------------
    async def add_dkim_key(self, domain: str, selector: str, algorithm: str, private_key: str,
                           public_key: str) -> None:
        """Raises NotFound (domain not local), AlreadyExists (the domain has that selector)."""

    async def dkim_keys(self, domain: str | None = None) -> list[DKIMKey]:
        """The keys of ``domain`` (None: of every domain), by domain, algorithm and age."""
