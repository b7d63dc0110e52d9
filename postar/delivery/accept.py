"""Taking an accepted message into the store: trace headers, summary, one durable write.

RFC 5321 §4.4: the receiving server prepends a ``Received:`` line, and at
final delivery ``Return-Path:``. Both are kept apart from the client's exact
bytes (``Delivery.header_prefix``), never spliced into them.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from email.utils import formatdate

from postar.message import message_id, summarize_json
from postar.store import Delivery, OutboundRecipient, Store

_counter = itertools.count()


def new_queue_id() -> str:
    """A short unique id to grep for, like Postfix's queue ids."""
    return f"{time.time_ns() // 1000:X}{os.getpid() % 256:02X}{next(_counter) % 4096:03X}"


@dataclass(frozen=True)
class Trace:
    """What the Received line tells about the SMTP session."""

    helo: str
    client_ip: str
    protocol: str        # RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA (UTF8 forms per RFC 6531)
    tls: str = ""        # e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)"


def received_header(hostname: str, queue_id: str, trace: Trace, recipient: str | None, now: float) -> str:
    lines = [f"Received: from {trace.helo} ([{trace.client_ip}])",
             f"\tby {hostname} (postar) with {trace.protocol} id {queue_id}"]
    if trace.tls:
        lines.append(f"\t(using {trace.tls})")
    date = formatdate(now, localtime=False)
    lines.append(f"\tfor <{recipient}>; {date}" if recipient else f"\t; {date}")
    return "\r\n".join(lines) + "\r\n"


async def accept(store: Store, hostname: str, *, queue_id: str, trace: Trace, sender: str,
                 recipients: list[str], data: bytes, local_accounts: set[int],
                 outbound: list[OutboundRecipient], submitter: int | None = None,
                 envid: str = "", ret: str = "", smtputf8: bool = False, sent_copy: int | None = None) -> None:
    """Store ``data`` durably for every destination; returns once it is on disk."""
    now = time.time()
    only = recipients[0] if len(recipients) == 1 else None
    received = received_header(hostname, queue_id, trace, only, now).encode("utf-8")
    return_path = f"Return-Path: <{sender}>\r\n".encode("utf-8")
    await store.deliver(Delivery(
        queue_id=queue_id, sender=sender, data=data,
        header_prefix=return_path + received, relay_prefix=received, internal_date=now,
        summary=summarize_json(data), local_accounts=tuple(sorted(local_accounts)),
        outbound=tuple(outbound), submitter=submitter, envid=envid, ret=ret, smtputf8=smtputf8,
        message_id=message_id(data), sent_copy=sent_copy))
