"""Taking an accepted message into the store: trace headers, summary, one durable write.

RFC 5321 §4.4: the receiving server prepends a ``Received:`` line, and at
final delivery ``Return-Path:``. Both are kept apart from the client's exact
bytes (``Delivery.header_prefix``), never spliced into them.

A message stored in a local INBOX has had its final delivery here: for a recipient
that asked for NOTIFY=SUCCESS (RFC 3461 §4.1) its sender gets a report with the
action "delivered" (RFC 3464 §2.3.3), stored once the message is; never the null sender.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from dataclasses import dataclass
from email.utils import formatdate
from typing import Sequence

from postar.delivery.reports import RecipientReport, build_report, report_delivery
from postar.message import message_id, summarize_json
from postar.store import Delivery, OutboundRecipient, QueueEntry, Store

log = logging.getLogger("postar.delivery")

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


@dataclass(frozen=True)
class LocalRecipient:
    """A RCPT TO address whose mail is stored here, with its DSN parameters (RFC 3461 §4)."""

    address: str
    notify: str = ""
    orcpt: str = ""


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
                 envid: str = "", ret: str = "", smtputf8: bool = False, sent_copy: int | None = None,
                 local_recipients: Sequence[LocalRecipient] = ()) -> bool:
    """Store ``data`` durably for every destination; returns once it is on disk, saying whether
    anything now waits in the outbound queue (the message, or a report to a remote sender)."""
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
    succeeded = [r for r in local_recipients if "SUCCESS" in r.notify.upper().split(",")]
    notice_queued = False
    if succeeded and sender:  # reports never go to the null sender (RFC 5321 §4.5.5)
        entry = QueueEntry(0, queue_id, sender, now, len(data), (), envid, ret, submitter, smtputf8)
        notice_queued = await _notify_delivered(store, hostname, entry, succeeded, received + data)
    return bool(outbound) or notice_queued


async def _notify_delivered(store: Store, hostname: str, entry: QueueEntry, recipients: list[LocalRecipient],
                            content: bytes) -> bool:
    """The "delivered" report, stored after the message (a crash in between loses the report, never
    the message); True when it was queued for a remote sender. A failure is logged: the message
    is stored, so the client must still hear 250."""
    group = [RecipientReport(r.address, r.orcpt, "delivered", "2.0.0") for r in recipients]
    try:
        report = build_report(hostname, entry, group, content, now=entry.created)
        notice = report_delivery(new_queue_id(), entry, report, entry.created)
        await store.deliver(notice)
    except Exception:
        log.exception("%s: could not store the delivery notice for <%s>", entry.queue_id, entry.sender)
        return False
    log.info("%s: delivery notice %s to <%s> for %s", entry.queue_id, notice.queue_id, entry.sender,
             ",".join(f"<{r.address}>" for r in recipients))
    return bool(notice.outbound)
