"""DKIM signing of outbound mail (RFC 6376), with RSA and Ed25519 keys (RFC 8463).

Pure: making keys, writing their DNS records, and computing DKIM-Signature
fields; the keys themselves live in the store. Signing is done by ``dkimpy``.
A domain with both an RSA and an Ed25519 key signs with each (RFC 8463 §4 "dual
signing"): receivers that do not know ed25519-sha256 ignore that signature and
check the RSA one (RFC 6376 §6.1).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import dkim
from cryptography.hazmat.primitives import serialization
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


def _headers_to_sign(names: Iterable[bytes]) -> list[bytes]:
    present = [name.lower() for name in names if name.lower().decode("ascii", "replace") in SIGNED_FIELDS]
    return present + [name.encode() for name in OVERSIGNED if name.encode() in present]


class Signer:
    """Signs outbound messages with the keys of their domain; built once from the store's keys."""

    def __init__(self, keys: Iterable[DKIMKey]):
        self._keys: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
        for key in sorted(keys, key=lambda k: (ALGORITHMS.index(k.algorithm), k.created, k.selector)):
            self._keys.setdefault(key.domain.lower(), []).append(
                (key.selector.encode("ascii"), _SIGNATURE_ALGORITHMS[key.algorithm], key.private_key.encode("ascii")))

    def domains(self) -> set[str]:
        return set(self._keys)

    def sign(self, message: bytes, domain: str) -> bytes:
        """DKIM-Signature fields to prepend to ``message``, each ending in CRLF, one per key
        of ``domain``; b"" when it has none or the message cannot be signed (no From, not
        a header section). Never raises: a message goes out unsigned rather than not at all.
        """
        keys = self._keys.get(domain.lower().rstrip("."))
        if not keys:
            return b""
        try:
            signing = dkim.DKIM(message)
            include = _headers_to_sign(name for name, _ in signing.headers)
            fields = [signing.sign(selector, domain.lower().encode("ascii"), private, signature_algorithm=algorithm,
                                   canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
                      for selector, algorithm, private in keys]
        except Exception:  # dkimpy's own errors, and whatever its parser trips on in junk
            return b""
        return b"".join(fields)
