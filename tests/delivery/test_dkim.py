"""DKIM: ``postar dkim keygen/show`` on a running server, and signatures that dkimpy verifies.

The records are taken from what the CLI printed, parsed as a zone file would
be, and served to dkimpy's verifier by a ``dnsfunc``; the keys are read back
through the store, as the outbound queue reads them. (Verification through a
real DNS server is part of the outbound end-to-end tests.)
"""

from __future__ import annotations

import asyncio
import os
import re

import dkim
import pytest

from postar.delivery.dkim import TXT_STRING_MAX, Signer
from postar.store import DKIMKey
from postar.store.sqlite import SQLiteStore
from tests.conftest import DOMAIN, USERS, make_server

ZONE_LINE = re.compile(r'^(?P<name>\S+)\.\s+IN\s+TXT\s+(?P<strings>(?:"(?:[^"\\]|\\.)*"\s*)+)$')
TXT_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')

MESSAGE = (f"From: Alice <{USERS[0]}>\r\nTo: carol@remote.test\r\nCc: dave@remote.test\r\n"
           "Subject: quarterly figures\r\nDate: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
           f"Message-ID: <figures.1@{DOMAIN}>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nReceived: from client.test by mx.example.test\r\n"
           "\r\n" + "The figures are attached in spirit.\r\n" * 100).encode()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, ca):
    """A private running server (keys are made in it) and the stdout of ``dkim keygen``."""
    server = make_server(tmp_path_factory.mktemp("dkim"), ca)
    server.start()
    made = server.cli("dkim", "keygen", DOMAIN)
    yield server, made.stdout
    server.stop()


def records(output: str) -> dict[str, str]:
    """TXT records by name (no final dot), from zone-file lines; the strings joined (RFC 6376 §3.6.2.2)."""
    found = {}
    for line in output.splitlines():
        if not line or line.startswith(";"):
            continue
        match = ZONE_LINE.match(line)
        assert match, f"not a zone-file TXT line: {line!r}"
        strings = [re.sub(r"\\(.)", r"\1", s) for s in TXT_STRING.findall(match["strings"])]
        assert all(len(s) <= TXT_STRING_MAX for s in strings)
        found[match["name"].lower()] = "".join(strings)
    return found


def resolver(published: dict[str, str]):
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        value = published.get(name.decode().rstrip(".").lower())
        return value.encode() if value is not None else None
    return dnsfunc


def stored_keys(server, domain: str = DOMAIN) -> list[DKIMKey]:
    async def read() -> list[DKIMKey]:
        store = await SQLiteStore.open(server.data_dir)
        try:
            return await store.dkim_keys(domain)
        finally:
            await store.close()
    return asyncio.run(read())


def verified(message: bytes, published: dict[str, str], index: int = 0) -> bool:
    try:
        return dkim.DKIM(message).verify(idx=index, dnsfunc=resolver(published))
    except dkim.DKIMException:
        return False


# The CLI --------------------------------------------------------------------------

def test_keygen_prints_the_records_to_publish(keyed):
    server, output = keyed
    keys = stored_keys(server)
    assert sorted(k.algorithm for k in keys) == ["ed25519", "rsa"]
    published = records(output)
    assert set(published) == {f"{k.selector}._domainkey.{DOMAIN}" for k in keys}
    for key in keys:
        value = published[f"{key.selector}._domainkey.{DOMAIN}"]
        assert value == f"v=DKIM1; k={key.algorithm}; p={key.public_key}"
        assert f";   value: {value}\n" in output  # the plain value too, for a provider's web form
        dkim.evaluate_pk(b"", value.encode())  # dkimpy reads it as a key record
        assert key.private_key not in output
    rsa_line = next(line for line in output.splitlines() if "k=rsa" in line and not line.startswith(";"))
    assert rsa_line.count('" "') == 1  # a 2048-bit key's record needs two strings

    shown = server.cli("dkim", "show", DOMAIN.upper())
    assert records(shown.stdout) == published
    for key in keys:
        assert key.private_key not in shown.stdout + shown.stderr


def test_keygen_refuses_a_domain_not_served_here(keyed):
    server, _ = keyed
    refused = server.cli("dkim", "keygen", "elsewhere.test", check=False)
    assert refused.returncode != 0
    assert "elsewhere.test is not one of ours" in refused.stderr and "postar domain add" in refused.stderr
    assert stored_keys(server, "elsewhere.test") == []
    assert server.cli("dkim", "show", "elsewhere.test", check=False).returncode != 0


def test_keygen_refuses_a_selector_in_use(keyed):
    server, _ = keyed
    before = stored_keys(server)
    rsa_selector = next(k.selector for k in before if k.algorithm == "rsa")
    for args in (("--selector", rsa_selector, "--algorithm", "ed25519"), ()):  # again with the defaults too
        refused = server.cli("dkim", "keygen", DOMAIN, *args, check=False)
        assert refused.returncode != 0
        assert f"selector {rsa_selector} already" in refused.stderr and "--selector" in refused.stderr
    assert stored_keys(server) == before  # "both" made neither key


def test_keygen_options(keyed):
    server, _ = keyed
    server.cli("domain", "add", "other.test")
    made = server.cli("dkim", "keygen", "other.test", "--selector", "mail2025", "--algorithm", "ed25519")
    assert list(records(made.stdout)) == ["mail2025._domainkey.other.test"]
    assert [(k.selector, k.algorithm) for k in stored_keys(server, "other.test")] == [("mail2025", "ed25519")]
    assert server.cli("dkim", "keygen", "other.test", "--selector", "x", check=False).returncode != 0  # two keys
    assert server.cli("dkim", "keygen", "other.test", "--selector", "no_underscore", "--algorithm", "rsa",
                      check=False).returncode != 0
    server.cli("domain", "del", "other.test")
    assert stored_keys(server, "other.test") == []  # the keys go with their domain


# Signing ----------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_signature_verifies(keyed, algorithm):
    server, output = keyed
    signer = Signer([k for k in stored_keys(server) if k.algorithm == algorithm])
    field = signer.sign(MESSAGE, DOMAIN)
    assert field.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode() + b"-sha256; c=relaxed/relaxed;")
    assert field.endswith(b"\r\n") and field.count(b"DKIM-Signature:") == 1
    tags = dkim.util.parse_tag_value(field.split(b":", 1)[1])
    assert tags[b"d"] == DOMAIN.encode()
    signed = [h.strip() for h in tags[b"h"].split(b":")]
    assert signed.count(b"from") == 2  # over-signed: no second From can be added
    assert b"received" not in signed and {b"to", b"cc", b"subject", b"message-id"} <= set(signed)
    assert dkim.verify(field + MESSAGE, dnsfunc=resolver(records(output)))


def test_both_keys_sign(keyed):
    server, output = keyed
    fields = Signer(stored_keys(server)).sign(MESSAGE, DOMAIN.upper())
    assert re.findall(rb"a=([\w-]+);", fields) == [b"rsa-sha256", b"ed25519-sha256"]
    assert verified(fields + MESSAGE, records(output), 0) and verified(fields + MESSAGE, records(output), 1)


@pytest.mark.parametrize("change", [
    (b"Subject: quarterly figures", b"Subject: quarterly figures!"),
    (b"To: carol@remote.test", b"To: mallory@remote.test"),
    (b"From: Alice", b"From: Mallory <mallory@remote.test>\r\nFrom: Alice"),  # a second From
    (b"attached in spirit.", b"attached in spirit!"),  # the body
])
def test_a_change_after_signing_fails(keyed, change):
    server, output = keyed
    for algorithm in ("rsa", "ed25519"):
        signed = Signer([k for k in stored_keys(server) if k.algorithm == algorithm]).sign(MESSAGE, DOMAIN) + MESSAGE
        assert verified(signed, records(output))
        assert not verified(signed.replace(change[0], change[1], 1), records(output))


def test_relaxed_canonicalization_survives_refolding(keyed):
    """RFC 6376 §3.4.2, §3.4.4: header names' case, folding, runs of white space and
    trailing white space in the body do not matter."""
    server, output = keyed
    published = records(output)
    for key in stored_keys(server):
        signed = Signer([key]).sign(MESSAGE, DOMAIN) + MESSAGE
        refolded = (signed.replace(b"Subject: quarterly figures", b"SUBJECT:   quarterly\r\n\t figures ")
                    .replace(b"Cc: dave@remote.test", b"Cc:\r\n dave@remote.test")
                    .replace(b"attached in spirit.", b"attached  in\tspirit.  "))
        assert refolded != signed
        assert verified(refolded, published)
        signature_refolded = re.sub(rb"; ", b";\r\n\t", signed[:signed.index(b"\r\nFrom:")], count=2)
        assert verified(signature_refolded + signed[signed.index(b"\r\nFrom:"):], published)


@pytest.mark.parametrize("message", [
    b"To: carol@remote.test\r\nSubject: no From\r\n\r\nbody\r\n",
    b"",
    b"\r\n\r\njust a body",
    b" folded first line\r\nFrom: x@example.test\r\n\r\n",
    b"no colon in this header line\r\n\r\n",
    b"\x00\xff\xfe\x80" * 1000,
    os.urandom(4096),
])
def test_an_unsignable_message_gives_no_signature(keyed, message):
    server, _ = keyed
    assert Signer(stored_keys(server)).sign(message, DOMAIN) == b""


def test_a_domain_without_keys_is_not_signed(keyed):
    server, _ = keyed
    signer = Signer(stored_keys(server))
    assert signer.sign(MESSAGE, "remote.test") == b""
    assert signer.sign(MESSAGE, "bücher.test") == b""
