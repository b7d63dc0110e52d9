"""Durability: a 250 to DATA means the message is on disk, whatever happens next.

The server is killed with SIGKILL under concurrent load and right after a 250;
every acknowledged message must then be stored exactly once with its exact
bytes, the store's own check must find nothing wrong, and the restarted server
must go on assigning UIDs above the old ones. SIGTERM must let a transaction in
flight finish and be stored, tell every other session 421 4.3.2 and exit 0.
"""

from __future__ import annotations

import signal
import smtplib
import socket
import threading
import uuid

from postar.smtp import replies
from tests.conftest import USERS, message

THREADS = 8
MOST_MESSAGES = 5000     # the load stops by itself after this many, if the kill never came
KILL_AFTER = 150         # acknowledged messages before the SIGKILL


def unique() -> str:
    return uuid.uuid4().hex


def reply_line(reply) -> tuple[int, str]:
    """(code, "enhanced text") as smtplib returns them, for comparison with a Reply."""
    code, text = reply
    return code, text.decode()


def expected(reply: replies.Reply) -> tuple[int, str]:
    return reply.code, f"{reply.enhanced} {reply.text}"


def body_for(marker: str) -> str:
    # A few kilobytes, so a message torn by the crash could not pass for a whole one.
    return "".join(f"{marker} line {n:03d} of the body\r\n" for n in range(120))


class Load:
    """Threads sending distinct messages to alice over port 25, recording each 250."""

    def __init__(self, server):
        self.server = server
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent: dict[str, bytes] = {}      # every marker attempted -> its raw message
        self.acknowledged: set[str] = set()
        self.failures = 0
        self.enough = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a load thread hung"

    def _next(self) -> tuple[str, bytes] | None:
        with self.lock:
            if self.stop.is_set() or len(self.sent) >= MOST_MESSAGES:
                self.enough.set()
                return None
            marker = unique()
            raw = message(subject=marker, body=body_for(marker))
            self.sent[marker] = raw
            return marker, raw

    def _run(self) -> None:
        client = None
        while not self.stop.is_set():
            if self.server.process is None or self.server.process.poll() is not None:
                return
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", self.server.ports["smtp"],
                                          local_hostname="client.test", timeout=30)
                    client.ehlo()
                item = self._next()
                if item is None:
                    return
                marker, raw = item
                client.sendmail("bob@remote.test", [USERS[0]], raw)
            except (smtplib.SMTPException, OSError):
                # Expected once the server is killed: counted as not acknowledged.
                with self.lock:
                    self.failures += 1
                client = None
                continue
            with self.lock:
                self.acknowledged.add(marker)
                if len(self.acknowledged) >= KILL_AFTER:
                    self.enough.set()


def test_sigkill_under_load_loses_no_acknowledged_message(start_server):
    server = start_server()
    load = Load(server)
    load.start()
    assert load.enough.wait(timeout=120), "the load never got going"
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=60)
    load.finish()
    server.process = None
    acknowledged = set(load.acknowledged)
    print(f"sent {len(load.sent)}, acknowledged {len(acknowledged)}, failed {load.failures}")
    assert len(acknowledged) >= KILL_AFTER

    stored = server.messages(USERS[0])
    by_marker: dict[str, list] = {}
    for stored_message in stored:
        subject = stored_message.content.split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0].decode()
        by_marker.setdefault(subject, []).append(stored_message)
    assert set(by_marker) <= set(load.sent), "a message nobody sent is in the store"
    for marker in acknowledged:
        assert marker in by_marker, f"acknowledged message {marker} was lost"
    for marker, copies in by_marker.items():
        assert len(copies) == 1, f"message {marker} stored {len(copies)} times"
        [copy] = copies
        assert copy.content.endswith(load.sent[marker]), f"message {marker} stored torn"
        assert copy.size == len(copy.content)
    uids = [m.uid for m in stored]
    assert len(set(uids)) == len(uids)
    assert server.store_problems() == []

    server.start()
    marker = unique()
    client = server.smtp()
    client.sendmail("bob@remote.test", [USERS[0]], message(subject=marker))
    client.quit()
    [new] = [m for m in server.messages(USERS[0]) if marker.encode() in m.content]
    assert new.uid > max(uids)
    assert server.store_problems() == []


def test_sigkill_right_after_250_keeps_the_message(start_server):
    server = start_server()
    for _ in range(3):
        marker = unique()
        raw = message(subject=marker, body=body_for(marker))
        client = server.smtp()
        assert client.sendmail("bob@remote.test", [USERS[1]], raw) == {}
        server.process.send_signal(signal.SIGKILL)  # before QUIT, before anything else
        server.process.wait(timeout=60)
        server.process = None
        client.close()
        [stored] = [m for m in server.messages(USERS[1]) if marker.encode() in m.content]
        assert stored.content.endswith(raw)
        assert server.store_problems() == []
        server.start()


def test_sigterm_lets_the_transaction_in_flight_finish(start_server):
    server = start_server()
    marker = unique()
    raw = message(subject=marker, body=body_for(marker))
    half = len(raw) // 2
    busy = server.smtp()
    assert busy.mail("bob@remote.test")[0] == 250
    assert busy.rcpt(USERS[0])[0] == 250
    busy.putcmd("DATA")
    assert busy.getreply()[0] == 354
    busy.send(raw[:half])
    idle = server.smtp()
    idle_submission = server.smtp("submission")

    server.process.send_signal(signal.SIGTERM)
    # Sessions between transactions are told at once, without being asked.
    assert reply_line(idle.getreply()) == expected(replies.SHUTTING_DOWN)
    assert reply_line(idle_submission.getreply()) == expected(replies.SHUTTING_DOWN)

    busy.send(raw[half:] + b".\r\n")
    code, text = busy.getreply()
    assert code == 250 and b"queued as" in text
    busy.putcmd("NOOP")
    assert reply_line(busy.getreply()) == expected(replies.SHUTTING_DOWN)
    assert server.process.wait(timeout=60) == 0
    server.process = None
    for client in (busy, idle, idle_submission):
        client.close()

    [stored] = [m for m in server.messages(USERS[0]) if marker.encode() in m.content]
    assert stored.content.endswith(raw)
    assert server.store_problems() == []


def test_sigterm_closes_the_listeners(start_server):
    server = start_server()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0
    server.process = None
    for port in server.ports.values():
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
