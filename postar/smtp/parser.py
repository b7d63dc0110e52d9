"""SMTP command lines to command values (RFC 5321 §4.1), pure and total.

``parse_command`` never raises: a line it cannot read becomes ``Invalid``
carrying the reply to send. Functions are named after the ABNF rules they read.
Leniency where real clients need it, as Postfix allows: a space after
``FROM:``/``TO:`` and a bare address without angle brackets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from postar.smtp import replies
from postar.smtp.replies import Reply


@dataclass(frozen=True)
class Address:
    """A mailbox: ``local`` is the local part unquoted, ``domain`` as sent."""

    local: str
    domain: str

    def __str__(self) -> str:
        local = self.local
        if not _DOT_STRING.fullmatch(local):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"

    @property
    def is_ascii(self) -> bool:
        return self.local.isascii() and self.domain.isascii()


@dataclass(frozen=True)
class Hello:
    extended: bool
    domain: str


@dataclass(frozen=True)
class MailFrom:
    sender: Address | None  # None is the null reverse-path <>
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RcptTo:
    recipient: Address
    params: dict[str, str] = field(default_factory=dict)
    source_route: bool = False


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class Bdat:
    size: int
    last: bool


@dataclass(frozen=True)
class Auth:
    mechanism: str
    initial_response: str | None


@dataclass(frozen=True)
class Simple:
    """A command without arguments that matter: RSET NOOP QUIT HELP STARTTLS VRFY EXPN."""

    verb: str


@dataclass(frozen=True)
class Invalid:
    reply: Reply


Command = Hello | MailFrom | RcptTo | Data | Bdat | Auth | Simple | Invalid

# RFC 5321 §4.1.2 and RFC 6531 §3.3 (UTF-8 allowed in atoms and sub-domains).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010FFFF]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_QUOTED_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*)"')
_SUB_DOMAIN = r"[A-Za-z0-9\u0080-\U0010FFFF](?:[A-Za-z0-9\-\u0080-\U0010FFFF]*[A-Za-z0-9\u0080-\U0010FFFF])?"
_DOMAIN = re.compile(rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*")
_ADDRESS_LITERAL = re.compile(r"\[[A-Za-z0-9:.\-]+\]")
_AT_DOMAIN_LIST = re.compile(rf"@{_DOMAIN.pattern}(?:,@{_DOMAIN.pattern})*:")
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_ESMTP_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e\u0080-\U0010FFFF]+")

_SIMPLE_VERBS = {"RSET", "NOOP", "QUIT", "HELP", "STARTTLS", "VRFY", "EXPN"}


def parse_command(line: bytes) -> Command:
    """Read one command line (its CRLF already removed)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Invalid(replies.BAD_SYNTAX("Error: command is not valid UTF-8"))
    if "\r" in text or "\n" in text or "\0" in text:
        return Invalid(replies.UNRECOGNIZED("Error: bare CR, LF or NUL in command"))
    verb, _, argument = text.partition(" ")
    verb = verb.upper()
    if verb in ("HELO", "EHLO"):
        return parse_hello(verb, argument.strip())
    if verb == "MAIL":
        return parse_mail(argument)
    if verb == "RCPT":
        return parse_rcpt(argument)
    if verb == "DATA":
        return Data() if not argument.strip() else Invalid(replies.BAD_SYNTAX("Syntax: DATA"))
    if verb == "BDAT":
        return parse_bdat(argument)
    if verb == "AUTH":
        return parse_auth(argument)
    if verb in _SIMPLE_VERBS:
        if argument.strip() and verb in ("RSET", "QUIT", "STARTTLS"):
            return Invalid(replies.BAD_SYNTAX(f"Syntax: {verb}"))
        if not argument.strip() and verb in ("VRFY", "EXPN"):
            return Invalid(replies.BAD_SYNTAX(f"Syntax: {verb} address"))
        return Simple(verb)
    return Invalid(replies.UNRECOGNIZED)


def parse_hello(verb: str, domain: str) -> Command:
    if not domain or " " in domain:
        return Invalid(replies.BAD_SYNTAX(f"Syntax: {verb} hostname"))
    return Hello(verb == "EHLO", domain)


def parse_mailbox(text: str) -> Address | None:
    """Mailbox = Local-part "@" ( Domain / address-literal )."""
    quoted = _QUOTED_STRING.match(text)
    if quoted:
        local = re.sub(r"\\(.)", r"\1", quoted.group(1))
        rest = text[quoted.end():]
    else:
        local, at, domain = text.rpartition("@")
        if not at or not _DOT_STRING.fullmatch(local):
            return None
        rest = "@" + domain
    if not rest.startswith("@"):
        return None
    domain = rest[1:]
    if not (_DOMAIN.fullmatch(domain) or _ADDRESS_LITERAL.fullmatch(domain)):
        return None
    if len(local) > 64 or len(domain) > 255:  # RFC 5321 §4.5.3.1.1, §4.5.3.1.2
        return None
    if not domain.startswith("[") and any(len(label) > 63 for label in domain.split(".")):
        return None  # RFC 1035 §2.3.4
    return Address(local, domain)


def parse_path(text: str) -> tuple[Address | None, bool] | None:
    """Path = "<" [ A-d-l ":" ] Mailbox ">"; also a bare mailbox. Returns (mailbox, had_route)."""
    if text.startswith("<") and text.endswith(">"):
        inner = text[1:-1]
    elif "<" in text or ">" in text:
        return None
    else:
        inner = text
    route = _AT_DOMAIN_LIST.match(inner)
    if route:
        inner = inner[route.end():]  # RFC 5321 §4.1.2: the source route is ignored
    mailbox = parse_mailbox(inner)
    return None if mailbox is None else (mailbox, route is not None)


def _split_path_and_params(argument: str, keyword: str) -> tuple[str, str] | None:
    if argument[:len(keyword)].upper() != keyword:
        return None
    rest = argument[len(keyword):].lstrip(" ")
    if rest.startswith("<"):
        end = _end_of_angle_path(rest)
        if end < 0:
            return None
        return rest[:end + 1], rest[end + 1:]
    path, _, params = rest.partition(" ")
    return path, " " + params if params else ""


def _end_of_angle_path(text: str) -> int:
    """Index of the '>' closing the path, skipping a quoted local part."""
    in_quotes = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == ">" and not in_quotes:
            return i
    return -1


def parse_esmtp_params(text: str) -> dict[str, str] | None:
    """Mail-parameters = esmtp-param *(SP esmtp-param); keywords upper-cased."""
    params: dict[str, str] = {}
    if text and not text.startswith(" "):
        return None
    for item in text.split(" "):
        if not item:
            continue
        keyword, equals, value = item.partition("=")
        if not _ESMTP_KEYWORD.fullmatch(keyword) or (equals and not _ESMTP_VALUE.fullmatch(value)):
            return None
        params[keyword.upper()] = value
    return params


def parse_mail(argument: str) -> Command:
    split = _split_path_and_params(argument, "FROM:")
    if split is None:
        return Invalid(replies.BAD_SYNTAX("Syntax: MAIL FROM:<address>"))
    path, param_text = split
    params = parse_esmtp_params(param_text)
    if params is None:
        return Invalid(replies.BAD_SYNTAX("Error: bad MAIL parameters"))
    if path == "<>":
        return MailFrom(None, params)
    parsed = parse_path(path)
    if parsed is None:
        return Invalid(replies.BAD_SENDER_ADDRESS)
    return MailFrom(parsed[0], params)


def parse_rcpt(argument: str) -> Command:
    split = _split_path_and_params(argument, "TO:")
    if split is None:
        return Invalid(replies.BAD_SYNTAX("Syntax: RCPT TO:<address>"))
    path, param_text = split
    params = parse_esmtp_params(param_text)
    if params is None:
        return Invalid(replies.BAD_SYNTAX("Error: bad RCPT parameters"))
    if path.upper() == "<POSTMASTER>":  # RFC 5321 §4.1.1.3: postmaster without domain
        return RcptTo(Address("postmaster", ""), params)
    parsed = parse_path(path)
    if parsed is None:
        return Invalid(replies.BAD_ADDRESS)
    return RcptTo(parsed[0], params, source_route=parsed[1])


def is_digits(text: str) -> bool:
    """1*DIGIT in the ABNF sense: ASCII 0-9 only (str.isdigit also takes '²' and '١')."""
    return text.isascii() and text.isdigit()


def parse_bdat(argument: str) -> Command:
    """RFC 3030: BDAT chunk-size [ SP end-marker ]."""
    parts = argument.split()
    if not 1 <= len(parts) <= 2 or not is_digits(parts[0]) or len(parts[0]) > 15:
        return Invalid(replies.BAD_SYNTAX("Syntax: BDAT size [LAST]"))
    if len(parts) == 2 and parts[1].upper() != "LAST":
        return Invalid(replies.BAD_SYNTAX("Syntax: BDAT size [LAST]"))
    return Bdat(int(parts[0]), len(parts) == 2)


def parse_auth(argument: str) -> Command:
    """RFC 4954 §4: AUTH mechanism [initial-response]."""
    parts = argument.split()
    if not 1 <= len(parts) <= 2:
        return Invalid(replies.BAD_SYNTAX("Syntax: AUTH mechanism [initial-response]"))
    return Auth(parts[0].upper(), parts[1] if len(parts) == 2 else None)


def decode_xtext(text: str) -> str | None:
    """RFC 3461 §4: xtext, where "+XX" is a hexadecimal octet."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "+":
            pair = text[i + 1:i + 3]
            if len(pair) != 2 or not all(c in "0123456789ABCDEF" for c in pair):
                return None
            out.append(chr(int(pair, 16)))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unstuff(payload: bytes) -> bytes:
    """Undo dot-stuffing (RFC 5321 §4.5.2): a line's leading '.' is removed."""
    if b"\r\n." not in payload and not payload.startswith(b"."):
        return payload
    return (b"\r\n" + payload).replace(b"\r\n.", b"\r\n")[2:]
