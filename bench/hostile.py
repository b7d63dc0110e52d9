"""Hostile clients against postar and, side by side, Dovecot (IMAP, POP3) and Postfix (SMTP).

For each attack, one attacking client on loopback (127.0.0.1) does its worst while
a well-behaved client from another address (127.0.0.2) sends NOOPs to the same
server, one at a time; the table gives that client's p50/p99 round trip, the
server's memory before, at its peak and after (VmRSS of postar's one process; the
sum over the process tree for Dovecot and Postfix), and what the attacker got.
Every attack is bounded in volume and in time (--seconds), on loopback only.

Attacks:
- imap-noop-flood, pop3-flood, smtp-noop-flood: 6 MB of pipelined NOOP (POP3: CAPA),
  replies read as fast as they come.
- imap-unread-flood: 16 MB of NOOP from a client that never reads its replies.
- imap-login-literal: `a LOGIN {40000000+}` and the 40 MB after it, before login.
- imap-half-open-tls: 300 TCP connections to the IMAPS port that never start TLS;
  then a new client from the same address (refused is right) and from another.
- imap-wrong-logins: 40 simultaneous LOGINs with a wrong password for the user.
Last, postar alone: --idle connections (default 10,000) from 100 addresses (postar runs
with connections_per_ip = 100 for that) sit idle
after the greeting, then the time a new client waits for its greeting.

Run as root (Dovecot and Postfix switch users): python3 bench/hostile.py [--only postar]
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import signal
import ssl
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchnet import (
    LOOPBACK, descendants, format_table, free_port, make_certificate, make_workdir,
    process_memory_kib, raise_open_file_limit,
)
from dovecot_instance import DovecotInstance
from postar_instance import PostarInstance
from postfix_instance import PostfixInstance
from tests.hostile.clients import connect, read_line  # the tests' hostile clients (REPO is on sys.path)

DOMAIN = "bench.test"
USER = f"user@{DOMAIN}"
PASSWORD = "secret-password"
ATTACKER, VICTIM = "127.0.0.1", "127.0.0.2"


@dataclass
class Target:
    """One server under attack: where its protocols listen and how to read its memory."""
    name: str
    pid_of: object
    ports: dict[str, int]
    tree: bool  # memory summed over the process tree (Dovecot, Postfix)

    def memory_kib(self) -> int:
        pid = self.pid_of()
        pids = [pid, *descendants(pid)] if self.tree else [pid]
        total = 0
        for one in pids:
            with contextlib.suppress(OSError):
                total += process_memory_kib(one)[0]
        return total


@dataclass
class Outcome:
    round_trips: list[float] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)
    attacker: str = ""


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Victim(threading.Thread):
    """NOOP round trips from VICTIM until stopped: SMTP NOOP for postar and Postfix (another
    port than the IMAP and POP3 attacks on postar), IMAP NOOP for Dovecot."""

    def __init__(self, target: Target, outcome: Outcome, stop: threading.Event):
        super().__init__(daemon=True)
        self.target, self.outcome, self.stop = target, outcome, stop

    def run(self) -> None:
        if "smtp" in self.target.ports:
            sock = connect(self.target.ports["smtp"], VICTIM)
            read_line(sock)
            command, ok = b"NOOP\r\n", b"250"
        else:
            sock = tls_context().wrap_socket(connect(self.target.ports["imaps"], VICTIM))
            read_line(sock)
            sock.sendall(f"l LOGIN {USER} {PASSWORD}\r\n".encode())
            while not read_line(sock).startswith(b"l "):
                pass
            command, ok = b"n NOOP\r\n", b"n OK"
        with sock:
            while not self.stop.is_set():
                start = time.perf_counter()
                sock.sendall(command)
                line = read_line(sock)
                while not line.startswith(ok):
                    if not line:
                        return
                    line = read_line(sock)
                self.outcome.round_trips.append(time.perf_counter() - start)
                time.sleep(0.005)


def sample_memory(target: Target, outcome: Outcome, stop: threading.Event) -> None:
    while not stop.is_set():
        outcome.memory.append(target.memory_kib())
        time.sleep(0.05)


# Attacks: each returns what the attacker got ---------------------------------------

def flood(sock, command: bytes, count: int, reply: bytes, read: bool, seconds: float) -> str:
    counted = [0]
    done = threading.Event()

    def reader() -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while not done.is_set():
                data = sock.recv(65536)
                if not data:
                    return
                pending += data
                lines = pending.split(b"\r\n")
                pending = lines.pop()
                counted[0] += sum(1 for line in lines if line.startswith(reply))
    if read:
        threading.Thread(target=reader, daemon=True).start()
    payload, sent, end = memoryview(command * count), 0, time.monotonic() + seconds
    sock.settimeout(0.5)
    while sent < len(payload) and time.monotonic() < end:
        try:
            sent += sock.send(payload[sent:sent + 65536])
        except TimeoutError:
            continue
        except OSError:
            break
    while read and counted[0] < count and time.monotonic() < end:
        time.sleep(0.05)
    done.set()
    sock.close()
    return f"sent {sent / 1e6:.1f} MB, {counted[0]} replies" if read else f"sent {sent / 1e6:.1f} MB before the server stopped reading"


def imap_noop_flood(target: Target, seconds: float) -> str:
    sock = tls_context().wrap_socket(connect(target.ports["imaps"]))
    read_line(sock)
    return flood(sock, b"a NOOP\r\n", 750_000, b"a OK", True, seconds)


def imap_unread_flood(target: Target, seconds: float) -> str:
    sock = tls_context().wrap_socket(connect(target.ports["imaps"]))
    read_line(sock)
    return flood(sock, b"a NOOP\r\n", 2_000_000, b"", False, min(seconds, 5.0))


def pop3_flood(target: Target, seconds: float) -> str:
    sock = tls_context().wrap_socket(connect(target.ports["pop3s"]))
    read_line(sock)
    return flood(sock, b"CAPA\r\n", 1_000_000, b".", True, seconds)


def smtp_noop_flood(target: Target, seconds: float) -> str:
    sock = connect(target.ports["smtp"])
    read_line(sock)
    return flood(sock, b"NOOP\r\n", 1_000_000, b"250", True, seconds)


def imap_login_literal(target: Target, seconds: float) -> str:
    sock = tls_context().wrap_socket(connect(target.ports["imaps"]))
    read_line(sock)
    sock.sendall(b"a LOGIN {40000000+}\r\n")
    chunk, sent, end = b"x" * 65536, 0, time.monotonic() + seconds
    sock.settimeout(0.5)
    with contextlib.suppress(OSError):
        while sent < 40_000_000 and time.monotonic() < end:
            try:
                sent += sock.send(chunk)
            except TimeoutError:
                continue
    sock.settimeout(2)
    answer = b""
    with contextlib.suppress(OSError):
        answer = read_line(sock)
    sock.close()
    return f"sent {sent / 1e6:.0f} MB; {answer.strip().decode(errors='replace')[:50] or 'closed'}"


def imap_half_open_tls(target: Target, seconds: float) -> str:
    held = []
    with contextlib.suppress(OSError):
        for _ in range(300):
            held.append(connect(target.ports["imaps"]))
    time.sleep(min(seconds, 2.0))
    results = []
    for source in (ATTACKER, "127.0.0.3"):
        try:
            with tls_context().wrap_socket(connect(target.ports["imaps"], source, timeout=5)) as sock:
                results.append(read_line(sock).strip().decode(errors="replace")[:40] or "closed")
        except OSError as e:
            results.append(type(e).__name__)
    for sock in held:
        sock.close()
    return f"{len(held)} held; next from .1: {results[0]}; from .3: {results[1]}"


def imap_wrong_logins(target: Target, seconds: float) -> str:
    answers: list[str] = []

    def one() -> None:
        try:
            client = imaplib.IMAP4_SSL(LOOPBACK, target.ports["imaps"], ssl_context=tls_context(), timeout=seconds)
            try:
                client.login(USER, "wrong password")
                answers.append("OK")
            except imaplib.IMAP4.error as e:
                answers.append(str(e)[:30])
            client.shutdown()
        except OSError as e:
            answers.append(type(e).__name__)
    threads = [threading.Thread(target=one) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kinds = sorted({a for a in answers})
    return "; ".join(f"{answers.count(k)}x {k}" for k in kinds)[:90]


ATTACKS = {
    "imap-noop-flood": ("imaps", imap_noop_flood),
    "imap-unread-flood": ("imaps", imap_unread_flood),
    "imap-login-literal": ("imaps", imap_login_literal),
    "imap-half-open-tls": ("imaps", imap_half_open_tls),
    "imap-wrong-logins": ("imaps", imap_wrong_logins),
    "pop3-flood": ("pop3s", pop3_flood),
    "smtp-noop-flood": ("smtp", smtp_noop_flood),
}


def run_attack(target: Target, victim_target: Target, attack, seconds: float) -> Outcome:
    outcome = Outcome()
    stop = threading.Event()
    before = target.memory_kib()
    victim = Victim(victim_target, outcome, stop)
    sampler = threading.Thread(target=sample_memory, args=(target, outcome, stop), daemon=True)
    victim.start()
    sampler.start()
    time.sleep(0.3)
    try:
        outcome.attacker = attack(target, seconds)
    except Exception as e:  # the attack itself failed: say so in the table
        outcome.attacker = f"attack failed: {type(e).__name__}: {e}"[:90]
    time.sleep(1.0)
    stop.set()
    victim.join(10)
    sampler.join(10)
    outcome.memory = [before, max(outcome.memory or [before]), target.memory_kib()]
    return outcome


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def idle_connections(postar: PostarInstance, port: int, count: int) -> str:
    """`count` idle connections from 100 addresses, then a new client's wait for its greeting."""
    held = []
    for n in range(count):
        sock = connect(port, f"127.0.1.{n % 100 + 1}")
        held.append(sock)
    for sock in held[:: max(1, count // 50)]:  # they have all been greeted
        read_line(sock)
    waits = []
    for _ in range(20):
        start = time.perf_counter()
        with connect(port, "127.0.0.4") as sock:
            read_line(sock)
        waits.append(time.perf_counter() - start)
    rss = postar.rss_kib()
    for sock in held:
        sock.close()
    return (f"{count} idle connections from 100 addresses: a new client greeted in "
            f"p50 {statistics.median(waits) * 1000:.1f} ms, max {max(waits) * 1000:.1f} ms; RSS {rss / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("postar",), help="postar alone, without Dovecot and Postfix")
    parser.add_argument("--attacks", nargs="*", choices=sorted(ATTACKS), help="a subset of the attacks")
    parser.add_argument("--seconds", type=float, default=20.0, help="most time per attack")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the last figure (0: skip)")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    raise_open_file_limit(args.idle + 2000)
    with contextlib.ExitStack() as stack:
        workdir = make_workdir(stack, args.workdir, "postar-hostile-")
        cert, key = make_certificate(workdir / "tls", DOMAIN)
        ports = {"smtp": free_port(), "imaps": free_port(), "pop3s": free_port()}
        postar = stack.enter_context(PostarInstance(
            workdir / "postar", ports["smtp"], DOMAIN, USER, PASSWORD, imaps_port=ports["imaps"],
            pop3s_port=ports["pop3s"], tls_cert=cert, tls_key=key, connections_per_ip=100))
        postar_target = Target("postar", lambda: postar.process.pid, ports, tree=False)
        peers: dict[str, Target] = {}
        if args.only is None:
            dovecot_ports = {"imaps": free_port(), "pop3s": free_port()}
            dovecot = stack.enter_context(DovecotInstance(
                workdir / "dovecot", dovecot_ports["imaps"], [USER], PASSWORD, cert, key, 1000,
                pop3s_port=dovecot_ports["pop3s"]))
            dovecot_target = Target("dovecot", lambda: dovecot.pid, dovecot_ports, tree=True)
            postfix_port = free_port()
            postfix = stack.enter_context(PostfixInstance(workdir / "postfix", postfix_port, DOMAIN, 20))
            postfix_target = Target("postfix", lambda: postfix.process.pid, {"smtp": postfix_port}, tree=True)
            peers = {"imaps": dovecot_target, "pop3s": dovecot_target, "smtp": postfix_target}
        rows = []
        for name in args.attacks or ATTACKS:
            port_name, attack = ATTACKS[name]
            for target in [postar_target] + ([peers[port_name]] if port_name in peers else []):
                outcome = run_attack(target, target, attack, args.seconds)
                before, peak, after = (m / 1024 for m in outcome.memory)
                rows.append([name, target.name, str(len(outcome.round_trips)),
                             f"{percentile(outcome.round_trips, 0.5) * 1000:.2f}",
                             f"{percentile(outcome.round_trips, 0.99) * 1000:.2f}",
                             f"{before:.0f} / {peak:.0f} / {after:.0f}", outcome.attacker])
                print(" | ".join(rows[-1]), flush=True)
        print()
        print(format_table(["attack", "server", "NOOPs", "p50 ms", "p99 ms", "memory MiB before/peak/after",
                            "what the attacker got"], rows))
        if args.idle:
            print()
            print(idle_connections(postar, ports["smtp"], args.idle))


if __name__ == "__main__":
    main()
