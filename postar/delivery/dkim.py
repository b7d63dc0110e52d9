"""DKIM signing of outbound mail (RFC 6376), with RSA and Ed25519 keys (RFC 8463).

Pure: making keys, writing their DNS records, and computing DKIM-Signature
fields; the keys themselves live in the store.
A domain with both an RSA and an Ed25519 key signs with each (RFC 8463 §4 "dual
signing"): receivers that do not know ed25519-sha256 ignore that signature and
check the RSA one (RFC 6376 §6.1).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

if TYPE_CHECKING:
    from collections.abc import Iterable

    from postar.store import DKIMKey

ALGORITHMS = ("rsa", "ed25519")  # the k= tag of the key record, and the order signatures are made in

# RFC 8301 §3.2: at least 1024 bits, 2048 recommended (and what receivers expect now).
RSA_BITS = 2048

_SIGNATURE_ALGORITHMS = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}

# RFC 6376 §5.4.1's recommended fields, plus List-Unsubscribe-Post, which RFC 8058 §4
# requires a DKIM signature to cover. Every instance present is signed.
SIGNED_FIELDS = frozenset((
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-id", "content-description", "resent-date", "resent-from", "resent-sender",
    "resent-to", "resent-cc", "resent-message-id", "list-id", "list-help", "list-unsubscribe",
    "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner", "list-archive",
))

# Listed once more in h= than they occur, so that adding another instance breaks the
# signature (RFC 6376 §5.4.2, §8.15); From as OpenDKIM's OversignHeaders and rspamd do.
OVERSIGNED = ("from",)

# RFC 1035 §3.3.14: a TXT record is a list of strings of at most 255 octets each;
# DKIM joins them without spaces (RFC 6376 §3.6.2.2).
TXT_STRING_MAX = 255


def generate_key(algorithm: str) -> tuple[str, str]:
    """A new key pair: (private key as dkimpy reads it, public key for the p= tag).

    RSA: PKCS#1 PEM and the base64 DER SubjectPublicKeyInfo (RFC 6376 §3.6.1).
    Ed25519: the base64 32-octet seed and the base64 raw public key (RFC 8463 §4).
    """
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption()).decode("ascii")
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return private, base64.b64encode(public).decode("ascii")
    if algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        seed, public = key.private_bytes_raw(), key.public_key().public_bytes_raw()
        return base64.b64encode(seed).decode("ascii"), base64.b64encode(public).decode("ascii")
    raise ValueError(f"unknown DKIM algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")


def valid_selector(selector: str) -> bool:
    """RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ), here in ASCII."""
    labels = selector.split(".")
    return len(selector) <= 63 * 4 and all(
        0 < len(label) <= 63 and label.isascii() and label.replace("-", "").isalnum()
        and not label.startswith("-") and not label.endswith("-") for label in labels)


def dns_record(selector: str, domain: str, algorithm: str, public: str) -> tuple[str, str]:
    """The TXT record to publish: its name and its value as one string (RFC 6376 §3.6.2.1)."""
    return f"{selector}._domainkey.{domain}", f"v=DKIM1; k={algorithm}; p={public}"


def txt_strings(value: str) -> list[str]:
    """``value`` cut into the character-strings of a TXT record (the value is ASCII)."""
    return [value[i:i + TXT_STRING_MAX] for i in range(0, len(value), TXT_STRING_MAX)] or [""]


def zone_line(name: str, value: str) -> str:
    """The record as a zone-file line (RFC 1035 §5.1), long values as several quoted strings."""
    quoted = " ".join('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in txt_strings(value))
    return f"{name.rstrip('.')}. IN TXT {quoted}"


_WSP = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


def _fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """(name, whole field with its folds, no final CRLF) for each field of a header section."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + b"\r\n" + line)
        elif b":" in line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
        elif line:
            raise ValueError("not a header field")
    return fields


def relaxed_field(field: bytes) -> bytes:
    """RFC 6376 §3.4.2: lower-case name, unfolded, runs of WSP as one SP, none around the colon or at the end."""
    name, _, value = _FOLD.sub(b"", field).partition(b":")
    return name.strip().lower() + b":" + _WSP.sub(b" ", value).strip(b" \t")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4: runs of WSP as one SP, none at line ends, no empty lines at the end."""
    lines = [_WSP.sub(b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def _sign_one(header_fields: list[tuple[bytes, bytes]], body_hash: str, domain: str, selector: str,
              algorithm: str, key, now: int) -> bytes:
    """One DKIM-Signature field (RFC 6376 §3.5, §5.4), relaxed/relaxed, From over-signed."""
    names = [name for name, _ in header_fields if name.decode("ascii", "replace") in SIGNED_FIELDS]
    names += [name.encode() for name in OVERSIGNED if name.encode() in names]
    signed, used = [], {}
    for name in names:  # RFC 6376 §5.4.2: instances are taken from the bottom up
        instances = [text for n, text in header_fields if n == name]
        taken = used.get(name, 0)
        used[name] = taken + 1
        if taken < len(instances):
            signed.append(relaxed_field(instances[-1 - taken]) + b"\r\n")
    tags = [f"v=1; a={_SIGNATURE_ALGORITHMS[algorithm].decode()}; c=relaxed/relaxed; d={domain};",
            f"s={selector}; t={now};", "h=" + ":".join(n.decode() for n in names) + ";", f"bh={body_hash};", "b="]
    unsigned = ("DKIM-Signature: " + "\r\n\t".join(tags)).encode("ascii")
    data = b"".join(signed) + relaxed_field(unsigned)
    if algorithm == "rsa":
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:  # RFC 8463 §3: Ed25519 over the SHA-256 hash
        signature = key.sign(hashlib.sha256(data).digest())
    text = base64.b64encode(signature).decode("ascii")
    return unsigned + "\r\n\t ".join(text[i:i + 72] for i in range(0, len(text), 72)).encode() + b"\r\n"


def _load_key(algorithm: str, private: str):
    if algorithm == "rsa":
        return serialization.load_pem_private_key(private.encode("ascii"), password=None)
    return ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(private))


class Signer:
    """Signs outbound messages with the keys of their domain; built once from the store's keys.

    Signing is done here with ``cryptography`` (OpenSSL, outside the GIL) rather than by
    dkimpy, whose pure-Python RSA takes milliseconds; dkimpy verifies our signatures in
    the tests.
    """

    def __init__(self, keys: Iterable[DKIMKey]):
        self._keys: dict[str, list[tuple[str, str, object]]] = {}
        for key in sorted(keys, key=lambda k: (ALGORITHMS.index(k.algorithm), k.created, k.selector)):
            self._keys.setdefault(key.domain.lower(), []).append(
                (key.selector, key.algorithm, _load_key(key.algorithm, key.private_key)))

    def domains(self) -> set[str]:
        return set(self._keys)

    def sign(self, message: bytes, domain: str) -> bytes:
        """DKIM-Signature fields to prepend to ``message``, each ending in CRLF, one per key
        of ``domain``; b"" when it has none or the message cannot be signed (no From, not
        a header section). Never raises: a message goes out unsigned rather than not at all.
        """
        domain = domain.lower().rstrip(".")
        keys = self._keys.get(domain)
        if not keys:
            return b""
        try:
            end = message.find(b"\r\n\r\n")
            header, body = (message, b"") if end < 0 else (message[:end], message[end + 4:])
            fields = _fields(header)
            if not any(name == b"from" for name, _ in fields):
                return b""
            body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode("ascii")
            now = int(time.time())
            return b"".join(_sign_one(fields, body_hash, domain, selector, algorithm, key, now)
                            for selector, algorithm, key in keys)
        except Exception:  # junk that is no header section, a key that will not load
            return b""
