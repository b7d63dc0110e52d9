"""LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9), with LIST-EXTENDED (RFC 5258),
LIST-STATUS (RFC 5819) and the SPECIAL-USE selection option (RFC 6154 §3).

``list_request`` reads the arguments, BAD for whatever RFC 5258 §3 says is BAD;
``listing`` picks the names to list from the account's mailboxes and
subscriptions, pure; ``do_list`` writes the responses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from postar.imap.grammar import Token, decode_mutf7
from postar.imap.mailbox_commands import status_items, status_line
from postar.imap.mailbox_names import DELIMITER, encode_name
from postar.imap.parser import BadArguments, Command, astring, atom, parenthesized
from postar.imap.session import Result, Session
from postar.store import Mailbox

SELECTION_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})
# The selection options that select; REMOTE (there are no remote mailboxes) and
# RECURSIVEMATCH only change how.
CRITERIA = ("SUBSCRIBED", "SPECIAL-USE")


@dataclass(frozen=True)
class ListRequest:
    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()  # RETURN (STATUS (...)), RFC 5819
    extended: bool = False  # RFC 5258 syntax: selection options, a list of patterns or RETURN


@dataclass(frozen=True)
class Entry:
    name: str
    box: Mailbox | None  # None: no such mailbox (a subscription outlived it, or a parent of one)
    subscribed: bool
    selected: bool  # meets the selection criteria; False: listed for a descendant that does
    childinfo: bool  # RECURSIVEMATCH: a descendant meets the criteria (RFC 5258 §3.5)


def _selection_options(tokens: list[Token]) -> frozenset[str]:
    options = frozenset(atom(t).upper() for t in tokens)
    unknown = sorted(options - SELECTION_OPTIONS)
    if unknown:  # RFC 5258 §3: "the server MUST return a tagged BAD response"
        raise BadArguments(f"unknown selection option {unknown[0][:40]}")
    if "RECURSIVEMATCH" in options and not options.intersection(CRITERIA):
        raise BadArguments("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3.1, a MUST
    return options


def _return_options(tokens: list[Token]) -> tuple[frozenset[str], tuple[str, ...]]:
    options: set[str] = set()
    items: tuple[str, ...] = ()
    position = 0
    while position < len(tokens):
        option = atom(tokens[position]).upper()
        position += 1
        if option not in RETURN_OPTIONS:  # RFC 5258 §3, as for selection options
            raise BadArguments(f"unknown return option {option[:40]}")
        if option == "STATUS":
            if position >= len(tokens):
                raise BadArguments("expected RETURN (STATUS (items))")
            items = status_items(tokens[position])
            position += 1
        options.add(option)
    return frozenset(options), items


def list_request(args: list[Token], lsub: bool) -> ListRequest:
    """LIST [(selection)] reference pattern-or-(patterns) [RETURN (options)]; LSUB reference pattern."""
    args = list(args)
    selection: frozenset[str] = frozenset()
    extended = False
    if not lsub and args and isinstance(args[0], list):
        selection, extended = _selection_options(args.pop(0)), True
    if len(args) < 2 or (lsub and len(args) != 2):
        raise BadArguments(f"{'LSUB' if lsub else 'LIST'} needs a reference and a pattern")
    reference = astring(args[0])
    if isinstance(args[1], list) and not lsub:
        patterns, extended = tuple(astring(t) for t in args[1]), True
        if not patterns:
            raise BadArguments("empty list of patterns")
    else:
        patterns = (astring(args[1]),)
    returns: frozenset[str] = frozenset()
    items: tuple[str, ...] = ()
    if len(args) > 2:
        if len(args) != 4 or not isinstance(args[2], str) or args[2].upper() != "RETURN":
            raise BadArguments("expected RETURN (options)")
        (returns, items), extended = _return_options(parenthesized(args[3])), True
    return ListRequest(reference, patterns, selection, returns, items, extended)


def pattern_regex(reference: str, pattern: str) -> re.Pattern:
    """LIST wildcards (§6.3.9): '*' matches anything, '%' anything but the delimiter."""
    full = reference + pattern if not pattern.startswith(DELIMITER) else pattern
    parts = []
    for char in full:
        parts.append(".*" if char == "*" else "[^/]*" if char == "%" else re.escape(char))
    regex = "".join(parts)
    if full.upper().startswith("INBOX"):
        regex = "(?i:INBOX)" + "".join(parts[5:])
    return re.compile(regex + r"\Z", re.DOTALL)


def _parents(name: str) -> list[str]:
    parts = name.split(DELIMITER)
    return [DELIMITER.join(parts[:depth]) for depth in range(1, len(parts))]


def listing(boxes: dict[str, Mailbox], subscribed: set[str], selection: frozenset[str],
            matches: Callable[[str], bool]) -> list[Entry]:
    """What to list, INBOX first, then by name.

    The names meeting the selection criteria that match a pattern; a subscription counts
    even when its mailbox is gone (§6.3.7). With RECURSIVEMATCH (RFC 5258 §3.1, §3.5; LSUB's
    "%" rule of RFC 3501 §6.3.9 is the same) also a name that matches a pattern but not the
    criteria, when a descendant meets them and is not listed itself, as RFC 5258's example 9
    and Dovecot have it: with "*" the descendant is listed and the parent is not, with "%"
    the parent is. Every listed name meeting the criteria with a descendant that does too
    has CHILDINFO.
    """
    def meets(name: str) -> bool:
        box = boxes.get(name)
        if "SUBSCRIBED" in selection and name not in subscribed:
            return False
        if "SPECIAL-USE" in selection and not (box and box.special_use):
            return False
        return box is not None or "SUBSCRIBED" in selection

    candidates = boxes.keys() | subscribed if "SUBSCRIBED" in selection else boxes.keys()
    chosen = {name for name in candidates if meets(name)}
    shown = {name for name in chosen if matches(name)}
    found = {name: False for name in shown}  # name: CHILDINFO
    if "RECURSIVEMATCH" in selection:
        for name in chosen:
            for parent in _parents(name):
                if parent in shown:
                    found[parent] = True
                elif parent not in chosen and name not in shown and matches(parent):
                    found[parent] = True
    return [Entry(name, boxes.get(name), name in subscribed, name in chosen, childinfo)
            for name, childinfo in sorted(found.items(), key=lambda item: (item[0] != "INBOX", item[0]))]


def _list_attributes(entry: Entry, request: ListRequest, has_children: set[str]) -> list[str]:
    wants_subscribed = "SUBSCRIBED" in request.selection or "SUBSCRIBED" in request.returns
    if entry.box is None:  # RFC 5258 §3.4: \NonExistent, which implies \Noselect
        return ["\\NonExistent"] + (["\\Subscribed"] if entry.subscribed and wants_subscribed else [])
    attributes = ["\\HasChildren" if entry.name in has_children else "\\HasNoChildren"]
    if entry.subscribed and wants_subscribed:
        attributes.append("\\Subscribed")
    special = entry.box.special_use
    if special and ("SPECIAL-USE" in request.returns or not request.returns or "SPECIAL-USE" in request.selection):
        attributes.append(special)
    return attributes


def _decode_pattern(text: str) -> str:
    decoded = decode_mutf7(text)
    if decoded is None:
        raise BadArguments("pattern is not valid modified UTF-7")
    return decoded


async def do_list(session: Session, command: Command) -> Result:
    """LIST (§6.3.9) with LIST-EXTENDED, LIST-STATUS and SPECIAL-USE; and LSUB (RFC 3501 §6.3.9)."""
    lsub = command.name == "LSUB"
    request = list_request(command.args, lsub)
    done = Result(text=f"{command.name} completed")
    if not request.extended and request.patterns == ("",):  # §6.3.9: the delimiter and root
        session.send(f'* {command.name} (\\Noselect) "{DELIMITER}" ""\r\n')
        return done
    patterns = [p for p in request.patterns if p]  # RFC 5258 §3: "" is no special request here
    reference = request.reference
    if not session.utf8:
        reference, patterns = _decode_pattern(reference), [_decode_pattern(p) for p in patterns]
    regexes = [pattern_regex(reference, p) for p in patterns]
    selection = frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}) if lsub else request.selection
    boxes = {b.name: b for b in await session.store.list_mailboxes(session.account.id)}
    subscribed = {name for name, box in boxes.items() if box.subscribed}
    if "SUBSCRIBED" in selection:
        subscribed.update(await session.store.subscriptions(session.account.id))
    has_children = {parent for name in boxes for parent in _parents(name)}
    for entry in listing(boxes, subscribed, selection, lambda name: any(r.match(name) for r in regexes)):
        if lsub:  # a parent listed for "%" and a subscription without its mailbox cannot be selected
            attributes = [] if entry.selected and entry.box is not None else ["\\Noselect"]
        else:
            attributes = _list_attributes(entry, request, has_children)
        extra = b""
        if entry.childinfo and not lsub:
            criteria = " ".join(f'"{c}"' for c in CRITERIA if c in selection)
            extra = f' ("CHILDINFO" ({criteria}))'.encode()  # RFC 5258 §3.5, as its examples write it
        session.send(f"* {command.name} ({' '.join(attributes)}) \"{DELIMITER}\" ".encode()
                     + encode_name(session, entry.name) + extra + b"\r\n")
        if request.status_items and entry.box is not None:
            session.send(await status_line(session, entry.box, request.status_items))
    return done
