"""SORT and THREAD: order and group the messages a search found (RFC 5256, RFC 5957).

Pure code: ``parse_sort_criteria`` reads the criteria list, ``sort_messages``
orders ``Sortable`` messages, ``ordered_subject`` and ``references`` build
thread trees, and ``sort_response`` / ``thread_response`` render the replies.
The caller reads the References header (which is not in the envelope) only for
THREAD=REFERENCES.

Strings compare under i;ascii-casemap (RFC 5256 §1 and §7, RFC 4790 §9.2): ASCII
letters folded to upper case, then code point order, which is UTF-8 octet order.
Ties are broken by sequence number (§3), also for the sent-date sorts of THREAD.

Choices where the RFCs leave room: a subject blob (§2.1 BLOBCHAR) and a base
subject may hold any character but "[" and "]", not only 7-bit ones, since the
subject has been decoded to UTF-8 by then (Dovecot does the same); an address
sort key is the first address of the ENVELOPE the client sees, so a group's
name when the field starts with a group; a Message-ID must be ``<...@...>``.
Trees may be as deep as the mailbox is long, so nothing here recurses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_tz

from postar.imap.fetch import addresses
from postar.message.text import decode_words

SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO",  # RFC 5256 §3
             "DISPLAYFROM", "DISPLAYTO")                                 # RFC 5957 §4
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


@dataclass(frozen=True)
class Sortable:
    """What SORT and THREAD know of one message the search found."""

    msn: int              # ties are broken by sequence number (RFC 5256 §3)
    number: int           # what the reply names: the msn, or the UID for UID SORT / UID THREAD
    internal_date: float  # epoch seconds
    size: int
    envelope: dict        # the summary's envelope: lower-case field name to raw unfolded value
    references: str = ""  # the References header, read only for THREAD=REFERENCES


@dataclass(frozen=True)
class Criterion:
    key: str       # one of SORT_KEYS
    reverse: bool


@dataclass
class Thread:
    """A node of a thread tree; ``message`` None is a dummy (RFC 5256 §3, REFERENCES)."""

    message: Sortable | None
    children: list[Thread] = field(default_factory=list)


# Sort keys (RFC 5256 §2) ---------------------------------------------------------------------

_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def casemap(text: str) -> str:
    """The i;ascii-casemap form of ``text`` (RFC 4790 §9.2): compare these with ``<``."""
    return text.translate(_UPPER)


_BLOB = re.compile(r"\[[^\[\]]*\] *")  # subj-blob: "[" *BLOBCHAR "]" *WSP
_LEADER = re.compile(r"(?:\[[^\[\]]*\] *)*(?:re|fwd?) *(?:\[[^\[\]]*\] *)?:"  # *subj-blob subj-refwd
                     r"| ", re.IGNORECASE | re.ASCII)                          # / WSP


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 §2.1: the base subject, and whether the message is a reply or forward.

    A reply or forward is a subject from which the extraction removed a subj-refwd,
    a "(fwd)" trailer or a "[fwd: ...]" wrapper (§3, REFERENCES step 5). The work is
    done on positions so that a hostile subject costs time linear in its length.
    """
    text = re.sub(r"[ \t\r\n]+", " ", decode_words(subject))  # (1) decoded, WSP and folds to one space
    start, end, reply = 0, len(text), False
    while True:
        while end > start:  # (2)
            if text[end - 1] == " ":
                end -= 1
            elif end - start >= 5 and text[end - 5:end].lower() == "(fwd)":
                end, reply = end - 5, True
            else:
                break
        while True:  # (5): repeat (3) and (4)
            leader = _LEADER.match(text, start, end)  # (3)
            if leader:
                reply = reply or leader.group() != " "
                start = leader.end()
                continue
            after = _after_blobs(text, start, end)  # (4), each blob; none of them can begin a leader
            if after == start:
                break
            start = after
        if end - start >= 6 and text[start:start + 5].lower() == "[fwd:" and text[end - 1] == "]":  # (6)
            start, end, reply = start + 5, end - 1, True
            continue
        return text[start:end], reply  # (7)


def _after_blobs(text: str, start: int, end: int) -> int:
    """Where the base begins once leading blobs are gone, keeping a last blob that is all there is."""
    while True:
        blob = _BLOB.match(text, start, end)
        if not blob or blob.end() >= end:
            return start
        start = blob.end()


def sent_date(message: Sortable) -> float:
    """RFC 5256 §2.2: the Date header in UTC, else (missing or unreadable) the internal date."""
    value = message.envelope.get("date")
    try:
        parsed = parsedate_tz(value) if isinstance(value, str) else None
        if parsed:
            when = datetime(*parsed[:6], tzinfo=UTC).timestamp()
            return when - (parsed[9] or 0)
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    return message.internal_date


def _first_address(message: Sortable, name: str) -> tuple | None:
    value = message.envelope.get(name)
    found = addresses(value) if isinstance(value, str) else []
    return found[0] if found else None


def address_key(message: Sortable, name: str) -> str:
    """RFC 5256 §3 CC, FROM, TO: the addr-mailbox of the field's first address, "" when none."""
    first = _first_address(message, name)
    return casemap(first[2] or "") if first else ""


def display_key(message: Sortable, name: str) -> str:
    """RFC 5957 §3: the decoded display name, else mailbox@host, else the mailbox, else ""."""
    first = _first_address(message, name)
    if first is None:
        return ""
    display_name, _, mailbox, host = first
    shown = decode_words(display_name) if display_name else ""
    if not shown:
        shown = f"{mailbox}@{host}" if mailbox is not None and host is not None else mailbox or ""
    return casemap(shown)


_KEYS = {
    "ARRIVAL": lambda m: m.internal_date,
    "CC": lambda m: address_key(m, "cc"),
    "DATE": sent_date,
    "FROM": lambda m: address_key(m, "from"),
    "SIZE": lambda m: m.size,
    "SUBJECT": lambda m: casemap(base_subject(m.envelope.get("subject") or "")[0]),
    "TO": lambda m: address_key(m, "to"),
    "DISPLAYFROM": lambda m: display_key(m, "from"),
    "DISPLAYTO": lambda m: display_key(m, "to"),
}


# SORT (RFC 5256 §3) ---------------------------------------------------------------------------

def parse_sort_criteria(token: object) -> tuple[Criterion, ...] | str:
    """``(REVERSE DATE SUBJECT)`` to criteria; a string is the text of a BAD."""
    if not isinstance(token, list) or not token:
        return "SORT needs a parenthesized list of sort criteria"
    criteria: list[Criterion] = []
    reverse = False
    for item in token:
        name = item.upper() if isinstance(item, str) else ""
        if name == "REVERSE" and not reverse:
            reverse = True
        elif name in SORT_KEYS:
            criteria.append(Criterion(name, reverse))
            reverse = False
        else:
            return f"unknown sort criterion {str(item)[:40]}"
    if reverse:
        return "REVERSE must be followed by a sort criterion"
    return tuple(criteria)


def sort_messages(messages: Iterable[Sortable], criteria: tuple[Criterion, ...]) -> list[Sortable]:
    """Ordered by the criteria, each key computed once; exact ties in sequence number order.

    REVERSE reverses its own criterion only, not the sequence number tie-break (§3).
    """
    rows = sorted(((tuple(_KEYS[c.key](m) for c in criteria), m) for m in messages), key=lambda r: r[1].msn)
    for position in reversed(range(len(criteria))):  # stable sorts, the least significant first
        rows.sort(key=lambda r: r[0][position], reverse=criteria[position].reverse)
    return [m for _, m in rows]


def sort_response(numbers: list[int], modseq: int | None = None) -> bytes:
    """``* SORT 2 3 6``, with ``(MODSEQ n)`` after a search that used MODSEQ (RFC 7162 §3.1.5)."""
    line = b"* SORT" + b"".join(b" %d" % n for n in numbers)
    if modseq is not None and numbers:
        line += b" (MODSEQ %d)" % modseq
    return line + b"\r\n"


# THREAD=ORDEREDSUBJECT (RFC 5256 §3) -----------------------------------------------------------

def _date_order(message: Sortable) -> tuple[float, int]:
    return sent_date(message), message.msn


def ordered_subject(messages: Iterable[Sortable]) -> list[Thread]:
    """One thread per base subject: the earliest message, the others its children, by sent date."""
    groups: dict[str, list[Sortable]] = {}
    for message in sorted(messages, key=_date_order):
        groups.setdefault(casemap(base_subject(message.envelope.get("subject") or "")[0]), []).append(message)
    threads = [Thread(group[0], [Thread(m) for m in group[1:]]) for group in groups.values()]
    return sorted(threads, key=lambda t: _date_order(t.message))


# THREAD=REFERENCES (RFC 5256 §3) ---------------------------------------------------------------

_MESSAGE_ID = re.compile(r"<([^<>]*)>")


def message_ids(value: str | None) -> list[str]:
    """The valid ``<id@host>`` message IDs in a header value, in order, folding whitespace removed."""
    found = []
    for match in _MESSAGE_ID.finditer(value or ""):
        inner = re.sub(r"\s+", "", match.group(1))
        left, at, right = inner.partition("@")
        if left and at and right:
            found.append(f"<{inner}>")
    return found


class _Container:
    __slots__ = ("children", "message", "parent", "reply", "top")

    def __init__(self, message: Sortable | None = None):
        self.message = message
        self.parent: _Container | None = None
        self.children: list[_Container] = []
        self.reply = False  # the message's subject marks a reply or forward
        self.top = False    # a child of the root (steps 2-5)


def _loops(parent: _Container, child: _Container) -> bool:
    """Whether making ``parent`` the parent of ``child`` would close a loop: it is ``child`` or below it."""
    if not child.children:  # the common case, without walking up a long thread
        return parent is child
    node: _Container | None = parent
    while node is not None:
        if node is child:
            return True
        node = node.parent
    return False


def _link(parent: _Container, child: _Container) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _post_order(roots: list[_Container]) -> Iterator[_Container]:
    """Every container below ``roots`` (included), children before their parents."""
    stack = [(node, False) for node in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            yield node
        else:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.children))


def _first(node: _Container) -> Sortable:
    """The message a container sorts and is named by: a dummy's first child (steps 4-6)."""
    return node.message if node.message is not None else node.children[0].message


def _subject(node: _Container) -> str:
    return casemap(base_subject(_first(node).envelope.get("subject") or "")[0])


def _sort(nodes: list[_Container]) -> None:
    nodes.sort(key=lambda n: _date_order(_first(n)))


def references(messages: Iterable[Sortable]) -> list[Thread]:
    """The REFERENCES algorithm of RFC 5256 §3, step by step."""
    by_id: dict[str, _Container] = {}
    unnamed: list[_Container] = []
    for message in sorted(messages, key=lambda m: m.msn):
        # (1) link by Message-ID, References (or else the first In-Reply-To ID)
        own = next(iter(message_ids(message.envelope.get("message-id"))), None)
        if own is None or (own in by_id and by_id[own].message is not None):
            container = _Container(message)  # no ID, or a later duplicate: a unique ID of its own
            unnamed.append(container)
        else:
            container = by_id.setdefault(own, _Container())  # perhaps the dummy an earlier reference made
            container.message = message
        container.reply = base_subject(message.envelope.get("subject") or "")[1]
        refs = message_ids(message.references) or message_ids(message.envelope.get("in-reply-to"))[:1]
        previous = None
        for ref in refs:  # (1.A) each reference the parent of the next, unless already parented or a loop
            node = by_id.get(ref)
            if node is None:
                node = by_id[ref] = _Container()
            if previous is not None and node.parent is None and not _loops(previous, node):
                _link(previous, node)
            previous = node
        # (1.B) the last reference is the parent: this message's own word beats others' References
        if container.parent is not previous:
            if container.parent is not None:
                container.parent.children.remove(container)
                container.parent = None
            if previous is not None and not _loops(previous, container):
                _link(previous, container)
    top = [c for c in (*by_id.values(), *unnamed) if c.parent is None]  # (2) the root's children
    for node in _post_order(top):  # (3) prune dummies: none left below the top level
        kept: list[_Container] = []
        for child in node.children:
            kept.extend(child.children if child.message is None else [child])
        node.children = kept
    pruned: list[_Container] = []
    for node in top:  # ... and at the top, a dummy stays only to hold two or more threads
        if node.message is not None or len(node.children) > 1:
            pruned.append(node)
        elif node.children:
            pruned.append(node.children[0])
    for node in pruned:
        node.top = True
        if node.message is None:
            _sort(node.children)
    _sort(pruned)  # (4)
    _group_by_subject(pruned)  # (5)
    top = [node for node in pruned if node.top]
    for node in _post_order(top):  # (6) every set of siblings by sent date, the youngest first
        _sort(node.children)
    _sort(top)
    return _threads(top)


def _group_by_subject(top: list[_Container]) -> None:
    """Step 5: threads whose subjects match join one (a dummy appended to ``top`` when needed)."""
    table: dict[str, _Container] = {}
    for node in top:  # (5.B) one thread per subject: a dummy rather than a message, an original rather than a reply
        subject = _subject(node)
        if not subject:
            continue
        held = table.get(subject)
        if held is None or (held.message is not None and (node.message is None or (held.reply and not node.reply))):
            table[subject] = node
    for node in list(top):  # (5.C) merge the others into it
        subject = _subject(node) if node.top else ""
        held = table.get(subject) if subject else None
        if held is None or held is node:
            continue
        node.top = False
        if held.message is None and node.message is None:
            held.children.extend(node.children)
        elif held.message is None or (node.reply and not held.reply):
            held.children.append(node)
        else:
            dummy = _Container()
            dummy.children = [held, node]
            held.top, dummy.top = False, True
            top.append(dummy)
            table[subject] = dummy


def _threads(top: list[_Container]) -> list[Thread]:
    made: dict[int, Thread] = {}
    for node in _post_order(top):
        made[id(node)] = Thread(node.message, [made[id(child)] for child in node.children])
    return [made[id(node)] for node in top]


def thread_response(threads: list[Thread]) -> bytes:
    """``* THREAD (2)(3 6 (4 23)(44 7 96))`` (RFC 5256 §4; thread-data in §5), without recursion."""
    out: list[str] = []
    pending: list[str | Thread] = []
    for thread in reversed(threads):
        pending += [")", thread, "("]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        children = item.children
        parts: list[str | Thread] = []
        if item.message is not None:
            parts.append(str(item.message.number))
            if children:
                parts.append(" ")
        if len(children) == 1:  # thread-members: a single child follows on the same level
            parts.append(children[0])
        else:  # thread-nested: two or more, each in parentheses
            for child in children:
                parts += ["(", child, ")"]
        pending.extend(reversed(parts))
    return ("* THREAD " + "".join(out) if out else "* THREAD").encode() + b"\r\n"
