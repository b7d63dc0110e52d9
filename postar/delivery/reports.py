"""Delivery status notifications (RFC 3464, RFC 3461 §6): bounces, delay warnings,
"relayed" and "delivered" notices, as multipart/report messages from MAILER-DAEMON.

A report goes back to the message's envelope sender with an empty envelope
sender of its own, so a report can never cause another one (RFC 5321 §4.5.5).
The human part says what happened in plain words, as Postfix's bounces do;
the machine part gives each recipient's action, status and the remote
server's reply; the third part returns the original headers or the whole
message, as RET asked (RFC 3461 §4.3; default: the whole message).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from email.utils import formatdate

from postar.message import summarize_json
from postar.store import Delivery, OutboundRecipient, QueueEntry

MAX_RETURNED = 10 * 1024 * 1024  # a larger original is returned as headers only


@dataclass(frozen=True)
class RecipientReport:
    address: str
    orcpt: str
    action: str            # "failed", "delayed", "relayed", "delivered"
    status: str            # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""   # the remote server's reply, e.g. "550 5.1.1 <x@y>: no such user"
    remote_mta: str = ""   # the host that gave it


_SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "relayed": "Successful Mail Relay Report",
    "delivered": "Successful Mail Delivery Report",
}

_INTRO = {
    "failed": ("This is the mail system at host {host}.\r\n\r\n"
               "I'm sorry to have to inform you that your message could not\r\n"
               "be delivered to one or more recipients. It's attached below.\r\n"),
    "delayed": ("This is the mail system at host {host}.\r\n\r\n"
                "Your message could not be delivered for {hours:.1f} hours.\r\n"
                "It will be retried until it is {days:.1f} days old.\r\n"),
    "relayed": ("This is the mail system at host {host}.\r\n\r\n"
                "Your message was successfully delivered to the destination(s)\r\n"
                "listed below, whose mail servers do not send delivery notices themselves.\r\n"),
    "delivered": ("This is the mail system at host {host}.\r\n\r\n"
                  "Your message was delivered to the mailbox of the recipient(s)\r\n"
                  "listed below. No further notice will come for them.\r\n"),
}

_DONE = {"delivered": "delivered to mailbox"}  # what the human part says when there is no reply to quote


def status_of(reply: str, default: str) -> str:
    """The enhanced status code in a reply ("550 5.1.1 ..." → "5.1.1"), else ``default``."""
    parts = reply.split()
    if len(parts) > 1 and parts[1].count(".") == 2 and parts[1][0] in "245":
        return parts[1]
    if parts and parts[0].isdigit() and len(parts[0]) == 3:
        return f"{parts[0][0]}.0.0"
    return default


def build_report(hostname: str, entry: QueueEntry, recipients: list[RecipientReport], original: bytes,
                 lifetime: float = 0.0, now: float | None = None) -> bytes:
    """The whole report message (CRLF lines), ready to store or queue."""
    now = time.time() if now is None else now
    action = recipients[0].action
    boundary = f"{os.urandom(8).hex()}.{int(now)}/{hostname}"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: {entry.sender}",
        f"Subject: {_SUBJECTS[action]}",
        f"Date: {formatdate(now, localtime=False)}",
        f"Message-ID: <{entry.queue_id}.{os.urandom(4).hex()}.{action}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Description: Notification",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        _INTRO[action].format(host=hostname, hours=(now - entry.created) / 3600, days=lifetime / 86400),
    ]
    for r in recipients:
        lines.append(f"<{r.address}>: " + (f"host {r.remote_mta} said: {r.diagnostic}" if r.remote_mta
                                             else r.diagnostic or _DONE.get(r.action, r.action)))
    lines += ["", f"--{boundary}", "Content-Description: Delivery report", "Content-Type: message/delivery-status",
              "", f"Reporting-MTA: dns; {hostname}", f"X-Postar-Queue-ID: {entry.queue_id}"]
    if entry.envid:
        lines.append(f"Original-Envelope-Id: {entry.envid}")
    lines.append(f"Arrival-Date: {formatdate(entry.created, localtime=False)}")
    for r in recipients:
        lines += ["", f"Final-Recipient: rfc822; {r.address}"]
        if r.orcpt:
            lines.append(f"Original-Recipient: {r.orcpt}")
        lines += [f"Action: {r.action}", f"Status: {r.status}"]
        if r.remote_mta:
            lines.append(f"Remote-MTA: dns; {r.remote_mta}")
        if r.diagnostic:
            lines.append(f"Diagnostic-Code: smtp; {r.diagnostic}")
        lines.append(f"Last-Attempt-Date: {formatdate(now, localtime=False)}")
        if r.action == "delayed":
            lines.append(f"Will-Retry-Until: {formatdate(entry.created + lifetime, localtime=False)}")
    lines.append("")
    # RFC 3461 §4.3: RET asks for the message in failure reports; success reports give its header
    headers_only = (entry.ret.upper() == "HDRS" or len(original) > MAX_RETURNED
                    or action in ("relayed", "delivered"))
    if headers_only:
        end = original.find(b"\r\n\r\n")
        returned = original if end < 0 else original[:end + 2]
        what = "Undelivered Message Headers" if action in ("failed", "delayed") else "Message Headers"
        lines += [f"--{boundary}", f"Content-Description: {what}", "Content-Type: text/rfc822-headers", ""]
    else:
        returned = original
        lines += [f"--{boundary}", "Content-Description: Undelivered Message", "Content-Type: message/rfc822", ""]
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    return head + returned + f"\r\n--{boundary}--\r\n".encode()


def report_delivery(queue_id: str, entry: QueueEntry, report: bytes, now: float) -> Delivery:
    """A report as mail to store, from the null sender: into the INBOX of the account that
    submitted the message, else queued to its envelope sender."""
    local = (entry.submitter,) if entry.submitter is not None else ()
    return Delivery(
        queue_id=queue_id, sender="", data=report, header_prefix=b"Return-Path: <>\r\n",
        relay_prefix=b"", internal_date=now, summary=summarize_json(report), local_accounts=local,
        outbound=() if local else (OutboundRecipient(entry.sender),))
