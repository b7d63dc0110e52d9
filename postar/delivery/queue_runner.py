"""The outbound queue's workers: take due messages, deliver them, record the outcome.

Each queued message is split by recipient domain; each (message, domain) pair
is one attempt (``attempt.py``), run under a global limit of connections and a
limit per destination domain, so one slow or dead destination never holds up
the others. Outcomes follow Postfix: accepted recipients are done; a 5xx is
final and bounces; anything else is retried with exponential back-off and
jitter until ``delivery.lifetime``, then bounces. The sender hears of a delay
once (``delivery.delay_warning``) and of every failure, as NOTIFY allows
(RFC 3461 §4.1); reports are stored in the same transaction as the outcome.

Keeping the connections busy: due entries are loaded in bulk (twice ``concurrency``,
more when half of them are done, never once per message), each attempt waits for its
destination's turn, and the moment one transaction ends, its connection (kept in the
``ConnectionCache``) carries the next waiting message while the outcome is committed;
an outcome counts, and is logged, only once it is on disk.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from email.utils import getaddresses

from postar.config import Config
from postar.delivery.accept import new_queue_id
from postar.delivery.attempt import Answer, MailHosts, attempt, smarthost_route
from postar.delivery.connections import ConnectionCache
from postar.delivery.dkim import Signer
from postar.delivery.reports import RecipientReport, build_report, report_delivery, status_of
from postar.delivery.smtp_client import Envelope
from postar.delivery.tls_policy import TLSPolicies
from postar.message import header_fields, split_header
from postar.store import (
    AttemptResult, Delivery, DKIMKey, QueuedRecipient, QueueEntry, RecipientStatus, Store,
)

log = logging.getLogger("postar.delivery")

_KEYS_CHECKED_EVERY = 5.0  # seconds; a key made with `postar dkim keygen` is used this soon


class StoreSigners:
    """The DKIM signer for the keys the store holds now (``postar dkim keygen`` adds keys while we run)."""

    def __init__(self, store: Store):
        self.store = store
        self._keys: list[DKIMKey] | None = None
        self._signer = Signer([])
        self._checked = float("-inf")

    async def current(self) -> Signer:
        """The keys are read again at most every few seconds, not for every message."""
        now = time.monotonic()
        if now - self._checked >= _KEYS_CHECKED_EVERY:
            self._checked = now
            keys = await self.store.dkim_keys()
            if keys != self._keys:
                self._keys, self._signer = keys, Signer(keys)
        return self._signer


def from_domain(content: bytes) -> str:
    """The domain of the (first) From address, lower-case; "" when there is none."""
    value = header_fields(content[:split_header(content)], ("from",)).get("from", "")
    address = getaddresses([value])[0][1] if value else ""
    return address.rpartition("@")[2].lower().rstrip(">")


class QueueRunner:
    def __init__(self, config: Config, store: Store, hosts: MailHosts, policies: TLSPolicies):
        self.config = config
        self.settings = config.delivery
        self.store = store
        self.hosts = hosts
        self.policies = policies
        self.signers = StoreSigners(store)
        self.connections = ConnectionCache()
        self._wake = asyncio.Event()
        self._in_flight: dict[int, set[str]] = defaultdict(set)  # entry id -> domains being tried
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._per_domain: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()
        # entries in memory at once, their attempts waiting for a destination's turn or working;
        # the store is asked for more when half are done
        self._loaded = 2 * max(1, self.settings.concurrency)
        self._low_water = self._loaded // 2

    def wake(self) -> None:
        """New mail in the queue (or an admin's retry): look now."""
        self._wake.set()

    async def run(self) -> None:
        """Until cancelled; running attempts are cancelled with it (their messages stay queued)."""
        try:
            while True:
                self._wake.clear()
                await self._dispatch()
                await self._sleep()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)
            await self.connections.close()

    async def _sleep(self) -> None:
        """Until woken (new mail, an admin's change, the attempts loaded running low or all done),
        until the next retry is due, or ``queue_scan_interval`` at most."""
        wait = max(self.settings.queue_scan_interval, 1.0)  # 0 would be a busy loop
        if len(self._in_flight) <= self._low_water and (next_due := await self.store.next_due()) is not None:
            due_in = next_due - time.time()
            wait = min(wait, due_in if due_in > 0 else 1.0)  # due now: in flight; look again soon
        try:
            # not wait_for: a wake at the moment of a cancel could swallow the cancel (Python 3.11)
            async with asyncio.timeout(wait):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _dispatch(self) -> None:
        """Load due entries, up to ``_loaded`` waiting or working: each (entry, domain) a task that
        waits for its destination's turn. Finished attempts ask for more only when half are done
        (new mail and admin changes wake us at once, to what room there is), and the store is read
        in pieces the size of ``concurrency``: the first attempts connect while the rest is read."""
        now = time.time()
        piece = max(1, self.settings.concurrency)
        while (room := self._loaded - len(self._in_flight)) > 0:
            entries = await self.store.due_entries(now, min(room, piece), skip=self._in_flight)
            self._start(entries)
            if len(entries) < min(room, piece):
                return  # nothing more is due
            await asyncio.sleep(0)  # let the attempts just started go first

    def _start(self, entries: list[QueueEntry]) -> None:
        for entry in entries:
            by_domain: dict[str, list[QueuedRecipient]] = defaultdict(list)
            for recipient in entry.recipients:
                by_domain[recipient.address.rpartition("@")[2].lower()].append(recipient)
            for domain, recipients in by_domain.items():
                self._in_flight[entry.entry_id].add(domain)
                task = asyncio.get_running_loop().create_task(self._deliver(entry, domain, recipients))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, entry: QueueEntry, domain: str, recipients: list[QueuedRecipient]) -> None:
        try:
            # the destination is the next hop: the domain, or the one smarthost for all (as Postfix counts)
            destination = f"[{self.settings.smarthost}]" if self.settings.smarthost else domain
            semaphore = self._per_domain.setdefault(destination, asyncio.Semaphore(self.settings.per_destination))
            async with semaphore, self._slots:  # waiting for a busy destination holds no global slot
                await self._pace(destination)
                tried = await self._attempt(entry, domain, recipients)
            # the connection is free for the next message while this outcome is committed
            if tried is not None:
                await self._record(entry, recipients, *tried)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: delivery to %s failed unexpectedly; it stays queued", entry.queue_id, domain)
            await self._defer(entry, recipients, "451 4.3.0 local error in delivery; see the server log")
        finally:
            domains = self._in_flight[entry.entry_id]
            domains.discard(domain)
            if not domains:
                del self._in_flight[entry.entry_id]
                if len(self._in_flight) in (self._low_water, 0):
                    self.wake()  # half of what was loaded is done, or all: look for more

    async def _defer(self, entry: QueueEntry, recipients: list[QueuedRecipient], reason: str) -> None:
        """After a bug in an attempt: try again later, as after a temporary failure, not at once."""
        retry_at = time.time() + self._backoff(max(r.attempts for r in recipients))
        try:
            await self.store.record_attempt(entry.entry_id, [
                AttemptResult(r.id, RecipientStatus.QUEUED, reason, retry_at) for r in recipients])
        except Exception:
            log.exception("%s: could not record the deferral", entry.queue_id)

    async def _pace(self, domain: str) -> None:
        """``per_destination_rate``: new messages to one domain no closer together than 1/rate."""
        rate = self.settings.per_destination_rate
        if rate <= 0:
            return
        now = time.monotonic()
        start = max(now, self._next_start.get(domain, now))
        self._next_start[domain] = start + 1.0 / rate
        if start > now:
            await asyncio.sleep(start - now)

    async def _attempt(self, entry: QueueEntry, domain: str,
                       recipients: list[QueuedRecipient]) -> tuple[dict[str, Answer], bytes] | None:
        """Each recipient's answer, and the message as sent; None when it is no longer queued."""
        content = await self.store.queue_content(entry.entry_id)
        if content is None:
            return None  # deleted meanwhile by an admin
        content = await self._signed(entry, content)
        envelope = Envelope(entry.sender, tuple((r.address, r.notify, r.orcpt) for r in recipients),
                            entry.envid, entry.ret, entry.smtputf8)
        route = smarthost_route(self.settings)
        if route is None:
            route = await self.hosts.route(domain)
        if route.hosts:
            answers = await attempt(self.settings, self.config.hostname, domain, route, envelope, content,
                                    self.hosts, self.policies, self.connections)
        else:  # the DNS said no (route.error): final or temporary for every recipient
            answers = {r.address: Answer(route.final, False, route.error) for r in recipients}
        return answers, content

    async def _record(self, entry: QueueEntry, recipients: list[QueuedRecipient], answers: dict[str, Answer],
                      content: bytes) -> None:
        """The outcomes and the reports they cause in one durable transaction; logged once stored."""
        now = time.time()
        results, reports, warned = self._settle(entry, recipients, answers, content, now)
        await self.store.record_attempt(entry.entry_id, results, reports, warned)
        for recipient, result in zip(recipients, results):
            answer = answers[recipient.address]
            log.info("%s: to=<%s>, relay=%s, tls=%s, delay=%.1f, attempt=%d, status=%s (%s)%s", entry.queue_id,
                     recipient.address, answer.host or "none", answer.tls or "none", now - entry.created,
                     recipient.attempts + 1, _STATUS_WORDS[result.status], answer.reply,
                     f", next attempt in {result.next_attempt - now:.0f} s"
                     if result.status is RecipientStatus.QUEUED else "")

    async def _signed(self, entry: QueueEntry, content: bytes) -> bytes:
        """DKIM-signed for the From domain (what DMARC aligns with), else the sender's domain."""
        signer = await self.signers.current()
        if not signer.domains():
            return content
        candidates = [from_domain(content), entry.sender.rpartition("@")[2].lower()]
        domain = next((d for d in candidates if d in signer.domains()), "")
        signature = signer.sign(content, domain) if domain else b""
        if domain and not signature:
            log.warning("%s: could not DKIM-sign for %s; sent unsigned", entry.queue_id, domain)
        return signature + content

    def _settle(self, entry: QueueEntry, recipients: list[QueuedRecipient], answers: dict[str, Answer],
                content: bytes, now: float) -> tuple[list[AttemptResult], list[Delivery], bool]:
        results = []
        failed, relayed, delayed = [], [], []
        expired = now - entry.created >= self.settings.lifetime
        # one retry time for the recipients that wait, so they go together again (as Postfix defers a message)
        retry_at = now + self._backoff(max(r.attempts for r in recipients))
        for recipient in recipients:
            answer = answers[recipient.address]
            notify = {n.strip().upper() for n in recipient.notify.split(",") if n.strip()}
            if answer.delivered:
                results.append(AttemptResult(recipient.id, RecipientStatus.SENT, answer.reply))
                if "SUCCESS" in notify and not answer.dsn_passed_on:
                    relayed.append(_report(recipient, answer, "relayed", "2.0.0"))
            elif answer.final or expired:
                reply = answer.reply if answer.final else (
                    f"message expired after {self.settings.lifetime / 86400:g} days in the queue; "
                    f"last error: {answer.reply}")
                results.append(AttemptResult(recipient.id, RecipientStatus.FAILED, reply))
                if "NEVER" not in notify and (not notify or "FAILURE" in notify):
                    status = status_of(answer.reply, "5.0.0") if answer.final else "4.4.7"
                    failed.append(_report(recipient, answer, "failed", status, reply))
            else:
                results.append(AttemptResult(recipient.id, RecipientStatus.QUEUED, answer.reply, retry_at))
                if not notify or "DELAY" in notify:
                    delayed.append(_report(recipient, answer, "delayed", status_of(answer.reply, "4.0.0")))
        reports = []
        warn = (bool(delayed) and not entry.warned and self.settings.delay_warning > 0
                and now - entry.created >= self.settings.delay_warning)
        if entry.sender:  # reports never go to the null sender (RFC 5321 §4.5.5)
            for group in (failed, relayed, delayed if warn else []):
                if group:
                    reports.append(self._report_delivery(entry, group, content, now))
        return results, reports, warn

    def _backoff(self, attempts: int) -> float:
        wait = min(self.settings.retry_max, self.settings.retry_min * 2 ** min(attempts, 30))
        return wait * random.uniform(0.8, 1.2)

    def _report_delivery(self, entry: QueueEntry, group: list[RecipientReport], content: bytes,
                         now: float) -> Delivery:
        data = build_report(self.config.hostname, entry, group, content, self.settings.lifetime, now)
        return report_delivery(new_queue_id(), entry, data, now)


_STATUS_WORDS = {RecipientStatus.SENT: "sent", RecipientStatus.FAILED: "bounced", RecipientStatus.QUEUED: "deferred"}


def _report(recipient: QueuedRecipient, answer: Answer, action: str, status: str,
            diagnostic: str | None = None) -> RecipientReport:
    return RecipientReport(recipient.address, recipient.orcpt, action, status,
                           diagnostic if diagnostic is not None else answer.reply, answer.host)
