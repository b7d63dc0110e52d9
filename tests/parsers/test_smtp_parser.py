"""The pure parsers, without a socket: postar.smtp.parser and postar.auth.sasl.

``parse_command`` for every verb, ESMTP parameters, quoted local parts, source
routes, ``<postmaster>`` and bad syntax (an ``Invalid`` carrying the right
reply); ``unstuff`` and ``decode_xtext``; SASL PLAIN and LOGIN responses. The
hypothesis properties: ``parse_command`` never raises, whatever the bytes, and
generated addresses survive ``str(Address)`` and back.
"""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from postar.auth import sasl
from postar.smtp import replies
from postar.smtp.parser import (
    Address, Auth, Bdat, Command, Data, Hello, Invalid, MailFrom, RcptTo, Simple,
    decode_xtext, parse_command, parse_mailbox, unstuff,
)
from postar.smtp.replies import Reply


def parse(line: str | bytes) -> Command:
    return parse_command(line.encode() if isinstance(line, str) else line)


def codes(reply: Reply) -> tuple[int, str]:
    return reply.code, reply.enhanced


def refused(line: str | bytes) -> tuple[int, str]:
    """The basic and enhanced code of the reply to a line that must not parse."""
    command = parse(line)
    assert isinstance(command, Invalid), command
    return codes(command.reply)


# HELO / EHLO -------------------------------------------------------------------------

def test_helo_and_ehlo():
    assert parse("HELO client.test") == Hello(False, "client.test")
    assert parse("ehlo client.test") == Hello(True, "client.test")
    assert parse("EHLO [192.0.2.1]") == Hello(True, "[192.0.2.1]")
    assert parse("EHLO  client.test ") == Hello(True, "client.test")


@pytest.mark.parametrize("line", ["EHLO", "HELO ", "EHLO two words"])
def test_hello_without_one_domain_is_501(line):
    assert refused(line) == codes(replies.BAD_SYNTAX)


# MAIL FROM ---------------------------------------------------------------------------

@pytest.mark.parametrize("line, sender", [
    ("MAIL FROM:<bob@remote.test>", Address("bob", "remote.test")),
    ("mail from:<bob@remote.test>", Address("bob", "remote.test")),
    ("MAIL FROM: <bob@remote.test>", Address("bob", "remote.test")),     # Postfix-style leniency
    ("MAIL FROM:bob@remote.test", Address("bob", "remote.test")),        # no angle brackets
    ("MAIL FROM:<Bob.Smith+tag@Remote.Test>", Address("Bob.Smith+tag", "Remote.Test")),
    ("MAIL FROM:<a@[192.0.2.1]>", Address("a", "[192.0.2.1]")),
    ("MAIL FROM:<a@[IPv6:2001:db8::1]>", Address("a", "[IPv6:2001:db8::1]")),
    ("MAIL FROM:<>", None),
])
def test_mail_from(line, sender):
    assert parse(line) == MailFrom(sender, {})


def test_mail_parameters_are_upper_cased_keywords_with_values():
    command = parse("MAIL FROM:<bob@remote.test> size=1000 BODY=8BITMIME SMTPUTF8 ENVID=a+2Bb RET=HDRS")
    assert command == MailFrom(Address("bob", "remote.test"),
                               {"SIZE": "1000", "BODY": "8BITMIME", "SMTPUTF8": "", "ENVID": "a+2Bb", "RET": "HDRS"})
    assert parse("MAIL FROM:<> SIZE=0") == MailFrom(None, {"SIZE": "0"})
    assert parse("MAIL FROM:<a@b.test>  SIZE=1 ") == MailFrom(Address("a", "b.test"), {"SIZE": "1"})


def test_utf8_address_parses_and_is_not_ascii():
    command = parse("MAIL FROM:<jörg@bücher.test> SMTPUTF8")
    assert command == MailFrom(Address("jörg", "bücher.test"), {"SMTPUTF8": ""})
    assert not command.sender.is_ascii and Address("a", "b.test").is_ascii


@pytest.mark.parametrize("line, reply", [
    ("MAIL TO:<a@b.test>", replies.BAD_SYNTAX),
    ("MAIL", replies.BAD_SYNTAX),
    ("MAIL FROM:<a@b.test", replies.BAD_SYNTAX),                # unclosed path
    ("MAIL FROM:<a@b.test>SIZE=1", replies.BAD_SYNTAX),        # no space before the parameter
    ("MAIL FROM:<a@b.test> SIZE=", replies.BAD_SYNTAX),        # '=' without a value
    ("MAIL FROM:<a@b.test> -X=1", replies.BAD_SYNTAX),          # keyword must start alphanumeric
    ("MAIL FROM:<a@b.test> X=a=b", replies.BAD_SYNTAX),         # '=' is not allowed in a value
    ("MAIL FROM:<not an address>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<a@>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<@b.test>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<a..b@c.test>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<.a@c.test>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<a@-c.test>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<a@c..test>", replies.BAD_SENDER_ADDRESS),
    ("MAIL FROM:<a@b.test>>", replies.BAD_SYNTAX),
    ("MAIL FROM:a<b@c.test>", replies.BAD_SENDER_ADDRESS),
    (f"MAIL FROM:<{'a' * 65}@b.test>", replies.BAD_SENDER_ADDRESS),   # RFC 5321 §4.5.3.1.1
    (f"MAIL FROM:<a@{'b' * 251}.test>", replies.BAD_SENDER_ADDRESS),  # 256 octets, RFC 5321 §4.5.3.1.2
])
def test_bad_mail_from(line, reply):
    assert refused(line) == codes(reply)


def test_local_part_of_64_and_domain_of_255_octets_are_fine():
    assert parse(f"MAIL FROM:<{'a' * 64}@b.test>") == MailFrom(Address("a" * 64, "b.test"), {})
    domain = ".".join(["b" * 62] * 3 + ["b" * 61]) + ".test"  # 255 octets, no label over 63
    assert len(domain) == 255
    assert parse(f"MAIL FROM:<a@{domain}>") == MailFrom(Address("a", domain), {})


def test_domain_label_over_63_octets_is_refused():
    assert parse(f"MAIL FROM:<a@{'b' * 64}.test>") == Invalid(replies.BAD_SENDER_ADDRESS)


# Quoted local parts ---------------------------------------------------------------------

@pytest.mark.parametrize("path, local", [
    ('"john doe"@b.test', "john doe"),
    ('"a\\"b"@b.test', 'a"b'),
    ('"a\\\\b"@b.test', "a\\b"),
    ('"a>b"@b.test', "a>b"),           # the '>' inside quotes does not end the path
    ('"x@y.test"@b.test', "x@y.test"),
    ('""@b.test', ""),
])
def test_quoted_local_part_is_unquoted(path, local):
    assert parse(f"MAIL FROM:<{path}> SIZE=5") == MailFrom(Address(local, "b.test"), {"SIZE": "5"})
    assert str(Address(local, "b.test")) == path


def test_dot_atom_local_part_is_not_quoted_again():
    assert parse('RCPT TO:<"alice"@example.test>') == RcptTo(Address("alice", "example.test"), {})
    assert str(Address("alice.smith", "example.test")) == "alice.smith@example.test"


@pytest.mark.parametrize("path", ['<"unterminated@b.test>', '<"a"b@c.test>', '<"a"@>'])
def test_broken_quoted_local_part(path):
    assert refused(f"RCPT TO:{path}")[0] == 501


# RCPT TO -----------------------------------------------------------------------------

def test_rcpt_to_with_parameters():
    assert parse("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test") == \
        RcptTo(Address("alice", "example.test"), {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;alice@example.test"})
    assert parse("rcpt to: alice@example.test") == RcptTo(Address("alice", "example.test"), {})


@pytest.mark.parametrize("path", ["<@hop.test:carol@other.test>", "<@hop.test,@hop2.test:carol@other.test>"])
def test_source_route_is_dropped_but_noted(path):
    assert parse(f"RCPT TO:{path}") == RcptTo(Address("carol", "other.test"), {}, source_route=True)


@pytest.mark.parametrize("path", ["<postmaster>", "<Postmaster>", "<POSTMASTER>"])
def test_postmaster_without_domain(path):
    assert parse(f"RCPT TO:{path}") == RcptTo(Address("postmaster", ""), {})


@pytest.mark.parametrize("line, reply", [
    ("RCPT FROM:<a@b.test>", replies.BAD_SYNTAX),
    ("RCPT TO:<>", replies.BAD_ADDRESS),
    ("RCPT TO:<postmaster", replies.BAD_SYNTAX),
    ("RCPT TO:<someone>", replies.BAD_ADDRESS),
    ("RCPT TO:<@hop.test carol@other.test>", replies.BAD_ADDRESS),
    ("RCPT TO:<a@b.test> NOTIFY", None),  # a keyword without value is syntactically fine
])
def test_bad_rcpt_to(line, reply):
    if reply is None:
        assert parse(line) == RcptTo(Address("a", "b.test"), {"NOTIFY": ""})
    else:
        assert refused(line) == codes(reply)


# DATA, BDAT, AUTH and the simple verbs ---------------------------------------------------

def test_data():
    assert parse("DATA") == Data() and parse("data") == Data()
    assert refused("DATA now") == codes(replies.BAD_SYNTAX)


@pytest.mark.parametrize("line, command", [
    ("BDAT 100", Bdat(100, False)),
    ("BDAT 0 LAST", Bdat(0, True)),
    ("bdat 7 last", Bdat(7, True)),
    ("BDAT 999999999999999 LAST", Bdat(999_999_999_999_999, True)),
])
def test_bdat(line, command):
    assert parse(line) == command


@pytest.mark.parametrize("line", ["BDAT", "BDAT x", "BDAT -1", "BDAT +1", "BDAT 1 FIRST", "BDAT 1 LAST more",
                                  "BDAT 1000000000000000", "BDAT ١٢", "BDAT ²", "BDAT 1²"])
def test_bad_bdat(line):
    """RFC 3030 chunk-size is 1*DIGIT, ASCII digits only (str.isdigit also takes '١' and '²')."""
    assert refused(line) == codes(replies.BAD_SYNTAX)


def test_auth():
    assert parse("AUTH plain") == Auth("PLAIN", None)
    assert parse("AUTH PLAIN AGFsaWNlAHg=") == Auth("PLAIN", "AGFsaWNlAHg=")
    assert parse("AUTH LOGIN =") == Auth("LOGIN", "=")
    assert refused("AUTH") == codes(replies.BAD_SYNTAX)
    assert refused("AUTH PLAIN a b") == codes(replies.BAD_SYNTAX)


@pytest.mark.parametrize("line, verb", [
    ("RSET", "RSET"), ("noop", "NOOP"), ("NOOP anything at all", "NOOP"), ("QUIT", "QUIT"),
    ("HELP", "HELP"), ("HELP MAIL", "HELP"), ("STARTTLS", "STARTTLS"),
    ("VRFY alice", "VRFY"), ("EXPN team", "EXPN"),
])
def test_simple_verbs(line, verb):
    assert parse(line) == Simple(verb)


@pytest.mark.parametrize("line", ["RSET now", "QUIT please", "STARTTLS x", "VRFY", "EXPN "])
def test_simple_verbs_with_wrong_arguments_are_501(line):
    assert refused(line) == codes(replies.BAD_SYNTAX)


@pytest.mark.parametrize("line, reply", [
    (b"FOO", replies.UNRECOGNIZED),
    (b"", replies.UNRECOGNIZED),
    (b" NOOP", replies.UNRECOGNIZED),
    (b"MAILFROM:<a@b.test>", replies.UNRECOGNIZED),
    (b"NOOP\rRSET", replies.UNRECOGNIZED),
    (b"NOOP\nRSET", replies.UNRECOGNIZED),
    (b"NOOP\x00", replies.UNRECOGNIZED),
    (b"MAIL FROM:<a@b.test>\x00", replies.UNRECOGNIZED),
    (b"\xff\xfe", replies.BAD_SYNTAX),
    (b"EHLO \xc3\x28", replies.BAD_SYNTAX),
])
def test_unknown_or_broken_lines(line, reply):
    assert refused(line) == codes(reply)


# unstuff, decode_xtext ---------------------------------------------------------------------

@pytest.mark.parametrize("payload, expected", [
    (b"plain\r\n", b"plain\r\n"),
    (b"..first line\r\n", b".first line\r\n"),
    (b"a\r\n..\r\nb\r\n", b"a\r\n.\r\nb\r\n"),
    (b"a\r\n...b\r\n", b"a\r\n..b\r\n"),
    (b"a.\r\nb..\r\n", b"a.\r\nb..\r\n"),       # only a leading dot is stuffing
    (b"", b""),
])
def test_unstuff(payload, expected):
    assert unstuff(payload) == expected


def stuff(content: bytes) -> bytes:
    """What an SMTP client sends (RFC 5321 §4.5.2)."""
    return b"".join(b"." + line if line.startswith(b".") else line for line in content.splitlines(keepends=True))


@given(st.lists(st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b), max_size=12))
def test_unstuff_undoes_stuffing(lines):
    content = b"".join(line + b"\r\n" for line in lines)
    assert unstuff(stuff(content)) == content


@pytest.mark.parametrize("xtext, text", [
    ("abc", "abc"), ("", ""), ("a+2Bb", "a+b"), ("+3D", "="), ("+20x+7E", " x~"),
    ("+", None), ("+2", None), ("a+2", None), ("+2b", None), ("+ZZ", None), ("+-1", None),
])
def test_decode_xtext(xtext, text):
    assert decode_xtext(xtext) == text


def encode_xtext(text: str) -> str:
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text)


@given(st.text(alphabet=st.characters(max_codepoint=0x7f)))
def test_xtext_round_trips(text):
    assert decode_xtext(encode_xtext(text)) == text


# Properties of parse_command and addresses -----------------------------------------------------

PREFIXES = [b"", b"MAIL FROM:", b"MAIL FROM:<", b'MAIL FROM:<"', b"RCPT TO:<@", b"RCPT TO:<", b"EHLO ",
            b"BDAT ", b"AUTH ", b"VRFY ", b"MAIL FROM:<a@b.test> "]
ASCII_LINE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=80)


@given(st.sampled_from(PREFIXES),
       st.one_of(st.binary(max_size=300), ASCII_LINE.map(str.encode), st.text(max_size=80).map(str.encode),
                 st.text(alphabet=st.characters(categories=("Nd", "No", "Zs")), max_size=6).map(str.encode)))
@example(b"BDAT ", "²".encode())  # isdigit() is true, int() raises
def test_parse_command_never_raises(prefix, rest):
    command = parse_command(prefix + rest)
    assert isinstance(command, Command)
    if isinstance(command, Invalid):
        assert 500 <= command.reply.code < 600 and command.reply.enhanced.startswith("5.")


@given(st.text(alphabet=st.characters(categories=("Nd", "No")), min_size=1, max_size=4), st.booleans())
def test_bdat_size_is_ascii_digits_only(size, last):
    command = parse(f"BDAT {size}{' LAST' if last else ''}")
    if size.isascii():
        assert command == Bdat(int(size), last)
    else:
        assert refused(f"BDAT {size}") == codes(replies.BAD_SYNTAX)


ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
atoms = st.lists(st.text(alphabet=ATEXT, min_size=1, max_size=10), min_size=1, max_size=5).map(".".join)
utf8_atoms = st.lists(st.text(alphabet=st.sampled_from(ATEXT + "äöüßéñжλ中文"), min_size=1, max_size=8),
                      min_size=1, max_size=4).map(".".join)
labels = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=1, max_size=5).map(".".join)
quoted_locals = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=64)


@given(st.one_of(atoms, utf8_atoms).filter(lambda s: len(s) <= 64), domains)
def test_dot_atom_addresses_round_trip(local, domain):
    address = Address(local, domain)
    assert str(address) == f"{local}@{domain}"
    assert parse_mailbox(str(address)) == address
    assert parse(f"MAIL FROM:<{address}> SMTPUTF8") == MailFrom(address, {"SMTPUTF8": ""})


@given(quoted_locals, domains)
def test_any_printable_local_part_round_trips_quoted(local, domain):
    address = Address(local, domain)
    assert parse_mailbox(str(address)) == address
    assert parse(f"RCPT TO:<{address}> NOTIFY=NEVER") == RcptTo(address, {"NOTIFY": "NEVER"})


# SASL (postar.auth.sasl) -----------------------------------------------------------------------

def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("raw, login", [
    (b"\0alice@example.test\0secret", sasl.Login("alice@example.test", "secret")),
    (b"alice@example.test\0alice@example.test\0secret", sasl.Login("alice@example.test", "secret")),
    (b"Alice@Example.Test\0alice@example.test\0secret", sasl.Login("alice@example.test", "secret")),
    ("\0jörg@example.test\0pässword with spaces".encode(), sasl.Login("jörg@example.test", "pässword with spaces")),
])
def test_parse_plain(raw, login):
    assert sasl.parse_plain(b64(raw)) == login


@pytest.mark.parametrize("response, reason", [
    ("not base64!", "invalid base64"),
    ("YWJj\n", "invalid base64"),
    ("YW Jj", "invalid base64"),
    ("YWJ", "invalid base64"),
    ("ÿÿÿÿ", "invalid base64"),
    ("=", "PLAIN response must be authzid NUL user NUL password"),
    (b64(b"alice\0secret"), "PLAIN response must be authzid NUL user NUL password"),
    (b64(b"\0alice\0sec\0ret"), "PLAIN response must be authzid NUL user NUL password"),
    (b64(b"\0alice\0"), "empty user name or password"),
    (b64(b"\0\0secret"), "empty user name or password"),
    (b64(b"\0alice\0\xff\xfe"), "PLAIN response is not UTF-8"),
    (b64(b"bob@example.test\0alice@example.test\0secret"), "logging in as another user is not allowed"),
])
def test_parse_plain_refusals(response, reason):
    assert sasl.parse_plain(response) == sasl.SASLError(reason)


def test_parse_login_field():
    assert sasl.parse_login_field(b64(b"alice@example.test"), "user name") == "alice@example.test"
    assert sasl.parse_login_field("=", "password") == ""
    assert sasl.parse_login_field("%%%", "password") == sasl.SASLError("invalid base64")
    assert sasl.parse_login_field(b64(b"\xff"), "password") == sasl.SASLError("password is not UTF-8")
    assert base64.b64decode(sasl.LOGIN_USERNAME_CHALLENGE) == b"Username:"
    assert base64.b64decode(sasl.LOGIN_PASSWORD_CHALLENGE) == b"Password:"


no_nul = st.text(min_size=1).filter(lambda s: "\0" not in s)


@given(no_nul, no_nul)
def test_plain_round_trips(user, password):
    assert sasl.parse_plain(b64(f"\0{user}\0{password}".encode())) == sasl.Login(user, password)


@given(st.text())
def test_parse_plain_never_raises(response):
    assert isinstance(sasl.parse_plain(response), (sasl.Login, sasl.SASLError))
