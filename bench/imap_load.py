"""IMAP side by side: postar against Dovecot, same mailboxes, same clients, both over TLS.

Both servers run on loopback with implicit TLS (postar's imaps listener, Dovecot
with `ssl = required`) and the same self-signed RSA-2048 certificate; postar
refuses LOGIN without TLS, so TLS is how both are compared. Each has the same
users with the same password and the same messages, put there by IMAP APPEND
(--messages-per-mailbox 4 KiB messages in each user's INBOX).

1. Load: --clients client processes (imaplib), one user each, run cycles of
   connect (imaplib asks CAPABILITY), LOGIN, SELECT INBOX, FETCH 1:* (FLAGS),
   FETCH of a few bodies (BODY.PEEK[]), STORE +FLAGS (\\Seen), APPEND,
   UID STORE +FLAGS (\\Deleted) on the appended message, EXPUNGE, LOGOUT.
   Reported: IMAP commands per second (wall time of the whole run), with the
   servers taking turns for --rounds rounds, the order flipping every round.
2. A --big message mailbox in each server: the first SELECT and FETCH 1:*
   (FLAGS) after filling (Dovecot indexes its Maildir then), and the median and
   fastest of the next --big-repeats, each on a new connection.
3. Memory with --idle connections logged in, INBOX selected and in IDLE:
   postar's RSS, Dovecot's RSS and PSS summed over all its processes.

Every answer is checked: a NO or BAD stops the run with the command and the
reply; FETCH 1:* must return one line per message, bodies must be the bytes
appended, EXPUNGE must remove exactly the appended message.

Run as root (Dovecot switches users): python3 bench/imap_load.py [--only dovecot]
"""

import argparse
import asyncio
import contextlib
import imaplib
import multiprocessing
import os
import random
import re
import signal
import socket
import ssl
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from benchnet import (make_workdir, 
    LOOPBACK, format_table, free_port, machine_busy_seconds, make_certificate,
    process_cpu_seconds, process_memory_kib, raise_open_file_limit,
)
from dovecot_instance import MAIL_GID, MAIL_UID, DovecotInstance
from postar_instance import PostarInstance

DOMAIN = "bench.test"
PASSWORD = "secret-password"
BIG_USER = f"big@{DOMAIN}"
MESSAGE_SIZE = 4096
BODIES_PER_CYCLE = 3
# What one cycle sends; "connect" is TCP + TLS + greeting + the CAPABILITY imaplib asks.
CYCLE_STEPS = ("connect", "LOGIN", "SELECT", "FETCH FLAGS", "FETCH BODY", "STORE \\Seen", "APPEND",
               "UID STORE \\Deleted", "EXPUNGE", "LOGOUT")
COMMANDS_PER_CYCLE = len(CYCLE_STEPS) - 1 + BODIES_PER_CYCLE  # CAPABILITY counted, BODY 3 times
APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
IDLE_SETTLE_SECONDS = 2.0
CORES = os.cpu_count() or 1
IDLE_CONCURRENCY = 50  # connections each idle client process sets up at once
CLIENT_TIMEOUT = 120.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent load clients (processes)")
    parser.add_argument("--rounds", type=int, default=3, help="load runs per server")
    parser.add_argument("--cycles", type=int, default=25, help="cycles per client in one load run")
    parser.add_argument("--messages-per-mailbox", type=int, default=200,
                        help="4 KiB messages APPENDed to each client's INBOX")
    parser.add_argument("--big", type=int, default=100_000,
                        help="messages in the large mailbox (0: skip that part)")
    parser.add_argument("--big-repeats", type=int, default=8,
                        help="timed SELECT + FETCH after the first, on the large mailbox")
    parser.add_argument("--idle", type=int, default=10_000,
                        help="connections in IDLE while memory is read (0: skip that part)")
    parser.add_argument("--idle-processes", type=int, default=4,
                        help="client processes holding the idle connections")
    parser.add_argument("--client-nodelay", action="store_true",
                        help="set TCP_NODELAY on the imaplib clients' sockets (imaplib does not)")
    parser.add_argument("--dovecot-reuse", action="store_true",
                        help="let Dovecot's imap processes serve one connection after another "
                             "(service_count = 0, --clients kept ready); default: a new process "
                             "per connection, Dovecot's default")
    parser.add_argument("--only", choices=("postar", "dovecot"), help="benchmark one server alone")
    parser.add_argument("--workdir", type=Path,
                        help="where the throwaway instances live (default: system temp dir)")
    return parser.parse_args()


def user_name(index: int) -> str:
    return f"user{index}@{DOMAIN}"


def make_message(owner: str, number: int, size: int = MESSAGE_SIZE) -> bytes:
    """Message `number` of `owner`'s mailbox: exactly `size` bytes, CRLF line ends."""
    header = (f"From: Bench Sender <sender@{DOMAIN}>\r\n"
              f"To: {owner}\r\n"
              f"Subject: Bench message {number} for {owner}\r\n"
              f"Date: Thu, 26 Nov 2026 12:{number // 60 % 60:02d}:{number % 60:02d} +0000\r\n"
              f"Message-ID: <{number}.{owner}>\r\n"
              "MIME-Version: 1.0\r\n"
              "Content-Type: text/plain; charset=us-ascii\r\n"
              "\r\n").encode()
    line = (f"Line of message {number} for {owner}. " * 3)[:70].encode() + b"\r\n"
    body = bytearray()
    while size - len(header) - len(body) >= 2 * len(line):
        body += line
    body += b"x" * (size - len(header) - len(body) - 2) + b"\r\n"  # the last line, 70 to 141 x
    message = header + bytes(body)
    assert len(message) == size, (len(message), size)
    return message


_client_tls: ssl.SSLContext | None = None


def client_tls() -> ssl.SSLContext:
    """TLS for the clients: any certificate (ours, self-signed), the same for both servers.

    One context per process, made without loading the system's CA store (which
    costs milliseconds of client CPU, and no certificate is verified anyway).
    """
    global _client_tls
    if _client_tls is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _client_tls = context
    return _client_tls


# Servers ------------------------------------------------------------------------------

@dataclass
class Target:
    """One server under test, as the load sees it."""
    name: str
    port: int
    instance: object

    def check_alive(self) -> None:
        self.instance.check_alive()

    def cpu_seconds(self) -> float:
        if isinstance(self.instance, DovecotInstance):
            return self.instance.cpu_seconds()
        return process_cpu_seconds(self.instance.pid)

    def memory(self) -> tuple[int, int, str]:
        """(RSS KiB, PSS KiB, what was counted)."""
        if isinstance(self.instance, DovecotInstance):
            by_name = self.instance.memory_kib()
            rss = sum(rss for _, rss, _ in by_name.values())
            pss = sum(pss for _, _, pss in by_name.values())
            processes = ", ".join(f"{count} {name}" for name, (count, _, _) in
                                  sorted(by_name.items(), key=lambda item: -item[1][0]))
            return rss, pss, processes
        rss, pss = process_memory_kib(self.instance.pid)
        return rss, pss, "1 process"

    def log_tail(self) -> str:
        return self.instance.log_tail()


# One client's work --------------------------------------------------------------------

class IMAPFailure(RuntimeError):
    """A server answered NO or BAD, or something other than what was stored."""


def expect_ok(answer: tuple, command: str) -> list:
    status, data = answer
    if status != "OK":
        raise IMAPFailure(f"{command} answered {status} {data!r}")
    return data


def imap_call(command: str, call, *args) -> list:
    try:
        return expect_ok(call(*args), command)
    except imaplib.IMAP4.error as error:  # imaplib raises on BAD (and NO for LOGIN)
        raise IMAPFailure(f"{command} failed: {error}") from None


class NoDelayIMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib with TCP_NODELAY: a small write is not held back until the last one is ACKed."""

    def _create_socket(self, timeout):
        sock = super()._create_socket(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def connect(port: int, nodelay: bool = False) -> imaplib.IMAP4_SSL:
    """imaplib over TLS, as it comes (Nagle on), or with TCP_NODELAY."""
    kind = NoDelayIMAP4_SSL if nodelay else imaplib.IMAP4_SSL
    return kind(LOOPBACK, port, ssl_context=client_tls(), timeout=CLIENT_TIMEOUT)


def fill_mailbox(port: int, user: str, count: int, nodelay: bool) -> None:
    """APPEND messages 1..count to the user's INBOX, then check it holds just those."""
    connection = connect(port, nodelay)
    try:
        imap_call("LOGIN", connection.login, user, PASSWORD)
        for number in range(1, count + 1):
            imap_call("APPEND", connection.append, "INBOX", None, None, make_message(user, number))
        exists = int(imap_call("SELECT INBOX", connection.select, "INBOX")[0])
        if exists != count:
            raise IMAPFailure(f"{user}: INBOX holds {exists} messages after {count} APPENDs")
        connection.logout()
    except BaseException:
        abandon(connection)
        raise


def abandon(connection: imaplib.IMAP4_SSL) -> None:
    """Close a connection left in the middle of something (the error is what matters)."""
    with contextlib.suppress(OSError):
        connection.shutdown()


def run_cycle(port: int, nodelay: bool, user: str, mailbox_size: int, cycle_number: int,
              rng: random.Random, timings: dict[str, list[float]]) -> None:
    """One connect..LOGOUT cycle; the time of each step is added to `timings`."""
    def step(name: str, command: str, call, *args) -> list:
        started = time.perf_counter()
        data = imap_call(command, call, *args)
        timings[name].append(time.perf_counter() - started)
        return data

    started = time.perf_counter()
    connection = connect(port, nodelay)
    timings["connect"].append(time.perf_counter() - started)
    try:
        step("LOGIN", "LOGIN", connection.login, user, PASSWORD)
        exists = int(step("SELECT", "SELECT INBOX", connection.select, "INBOX")[0])
        if exists != mailbox_size:
            raise IMAPFailure(f"{user}: SELECT says {exists} EXISTS, expected {mailbox_size}")
        lines = step("FETCH FLAGS", "FETCH 1:* (FLAGS)", connection.fetch, "1:*", "(FLAGS)")
        if len(lines) != exists or not all(b"FLAGS" in line for line in lines):
            raise IMAPFailure(f"{user}: FETCH 1:* (FLAGS) gave {len(lines)} lines for {exists} messages")
        picks = sorted(rng.sample(range(1, exists + 1), BODIES_PER_CYCLE))
        for number in picks:
            data = step("FETCH BODY", f"FETCH {number} (BODY.PEEK[])", connection.fetch,
                        str(number), "(BODY.PEEK[])")
            body = data[0][1] if isinstance(data[0], tuple) else None
            if body != make_message(user, number):
                raise IMAPFailure(f"{user}: FETCH {number} BODY.PEEK[] is not the message appended "
                                  f"({len(body or b'')} bytes)")
        step("STORE \\Seen", "STORE +FLAGS (\\Seen)", connection.store,
             ",".join(map(str, picks)), "+FLAGS", "(\\Seen)")
        answer = step("APPEND", "APPEND", connection.append, "INBOX", None, None,
                      make_message(user, 1_000_000 + cycle_number))
        uid_match = APPENDUID.search(answer[0] or b"")
        if uid_match is None:
            raise IMAPFailure(f"{user}: APPEND answer without APPENDUID: {answer!r}")
        uid = uid_match.group(1).decode()
        step("UID STORE \\Deleted", f"UID STORE {uid} +FLAGS (\\Deleted)", connection.uid,
             "STORE", uid, "+FLAGS", "(\\Deleted)")
        expunged = step("EXPUNGE", "EXPUNGE", connection.expunge)
        if expunged != [str(exists + 1).encode()]:
            raise IMAPFailure(f"{user}: EXPUNGE removed {expunged!r}, expected [{exists + 1}]")
        started = time.perf_counter()
        status, _ = connection.logout()
        if status != "BYE":
            raise IMAPFailure(f"{user}: LOGOUT answered {status}")
        timings["LOGOUT"].append(time.perf_counter() - started)
    except BaseException:
        abandon(connection)
        raise


@dataclass
class ClientOutcome:
    commands: int = 0
    cycles: int = 0
    finished: float = 0.0  # time.monotonic() at the end of the last cycle
    cpu_seconds: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""


def load_client(port: int, nodelay: bool, user: str, mailbox_size: int, cycles: int, seed: int,
                start, results) -> None:
    """A client process: wait for the start, run `cycles` cycles, report."""
    outcome = ClientOutcome(timings={name: [] for name in CYCLE_STEPS})
    try:
        rng = random.Random(seed)
        results.put(("ready", None))
        start.wait()
        cpu_started = time.process_time()
        for cycle in range(cycles):
            run_cycle(port, nodelay, user, mailbox_size, cycle, rng, outcome.timings)
            outcome.cycles += 1
            outcome.commands += COMMANDS_PER_CYCLE
        outcome.finished = time.monotonic()
        outcome.cpu_seconds = time.process_time() - cpu_started
    except BaseException as error:
        outcome.error = f"{user}: {error}\n{traceback.format_exc(limit=3)}"
    results.put(("done", outcome))


# Running processes --------------------------------------------------------------------

FORK = multiprocessing.get_context("fork")


def run_processes(target: Target, jobs: list[tuple], work) -> tuple[float, list]:
    """Start one process per job running work(*job, start, results); once all say ready,
    start them together. Returns (wall seconds until the last one finished, outcomes).

    `work` puts ("ready", None) then ("done", outcome) on `results`; an outcome with
    an `error` stops the bench with it and the server's log tail.
    """
    start, results = FORK.Event(), FORK.Queue()
    processes = [FORK.Process(target=work, args=(*job, start, results), daemon=True) for job in jobs]
    try:
        for process in processes:
            process.start()
        outcomes = []
        ready = 0
        while ready + len(outcomes) < len(processes):  # a client that failed sends no "ready"
            kind, outcome = results.get(timeout=CLIENT_TIMEOUT)
            if kind == "ready":
                ready += 1
            else:
                outcomes.append(outcome)
        started = time.monotonic()
        start.set()
        while len(outcomes) < len(processes):
            kind, outcome = results.get(timeout=CLIENT_TIMEOUT * 10)
            outcomes.append(outcome)
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    errors = [outcome.error for outcome in outcomes if outcome.error]
    if errors:
        raise RuntimeError(f"{target.name}: {len(errors)} of {len(jobs)} clients failed; first:\n"
                           f"{errors[0]}\n{target.name} log tail:\n{target.log_tail()}")
    return max(outcome.finished for outcome in outcomes) - started, outcomes


def fill_client(port: int, nodelay: bool, user: str, count: int, start, results) -> None:
    outcome = ClientOutcome()
    try:
        results.put(("ready", None))
        start.wait()
        fill_mailbox(port, user, count, nodelay)
        outcome.finished = time.monotonic()
    except BaseException as error:
        outcome.error = f"{user}: {error}\n{traceback.format_exc(limit=3)}"
    results.put(("done", outcome))


def fill_all(target: Target, users: list[str], count: int, nodelay: bool) -> float:
    """APPEND `count` messages to each user's INBOX, users in parallel; messages/s."""
    seconds, _ = run_processes(target, [(target.port, nodelay, user, count) for user in users],
                               fill_client)
    return len(users) * count / seconds


@dataclass
class LoadRun:
    commands_per_second: float
    cycles: int
    wall: float
    server_cpu: float
    client_cpu: float
    other_cpu: float  # busy CPU of the machine outside the server and the clients
    step_means: dict[str, float]  # seconds per step


def run_load(target: Target, users: list[str], args, seed: int) -> LoadRun:
    jobs = [(target.port, args.client_nodelay, user, args.messages_per_mailbox, args.cycles,
             seed * 1000 + index)
            for index, user in enumerate(users)]
    cpu_before, busy_before = target.cpu_seconds(), machine_busy_seconds()
    wall, outcomes = run_processes(target, jobs, load_client)
    server_cpu = target.cpu_seconds() - cpu_before
    busy = machine_busy_seconds() - busy_before
    target.check_alive()
    steps = {name: [t for outcome in outcomes for t in outcome.timings[name]] for name in CYCLE_STEPS}
    client_cpu = sum(outcome.cpu_seconds for outcome in outcomes)
    return LoadRun(
        commands_per_second=sum(outcome.commands for outcome in outcomes) / wall,
        cycles=sum(outcome.cycles for outcome in outcomes),
        wall=wall,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=max(0.0, busy - server_cpu - client_cpu),
        step_means={name: statistics.fmean(times) for name, times in steps.items()},
    )


def run_rounds(targets: list[Target], users: list[str], args) -> dict[str, list[LoadRun]]:
    for target in targets:  # warm-up: processes forked, caches filled; not counted
        run_load(target, users, args, seed=0)
    runs: dict[str, list[LoadRun]] = {target.name: [] for target in targets}
    for round_number in range(args.rounds):
        order = targets if round_number % 2 == 0 else targets[::-1]
        for target in order:
            run = run_load(target, users, args, seed=round_number + 1)
            runs[target.name].append(run)
            print(f"round {round_number + 1}/{args.rounds}: {target.name} {run.commands_per_second:.0f} "
                  f"commands/s ({run.cycles} cycles in {run.wall:.1f} s)", flush=True)
    return runs


# The large mailbox --------------------------------------------------------------------

class RawIMAP:
    """A minimal blocking IMAP client that times commands without parsing much."""

    def __init__(self, port: int):
        self.sock = client_tls().wrap_socket(socket.create_connection((LOOPBACK, port), timeout=600))
        self.reader = self.sock.makefile("rb", buffering=1 << 16)
        self.greeting = self.reader.readline()
        if not self.greeting.startswith(b"* OK"):
            raise IMAPFailure(f"greeting {self.greeting!r}")
        self.tag = 0

    def command(self, text: str) -> list[bytes]:
        """Send one command; its untagged lines (literals inline). Raises unless OK."""
        self.tag += 1
        tag = b"r%d " % self.tag
        self.sock.sendall(tag + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.reader.readline()
            if not line:
                raise IMAPFailure(f"{text.split()[0]}: connection closed")
            if line.startswith(tag):
                if not line.startswith(tag + b"OK"):
                    raise IMAPFailure(f"{text.split()[0]} answered {line!r}")
                return lines
            while line.endswith(b"}\r\n") and b"{" in line:  # a literal follows
                size = int(line[line.rindex(b"{") + 1:-3].rstrip(b"+"))
                line += self.reader.read(size) + self.reader.readline()
            lines.append(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class BigFigures:
    fill_seconds: float
    select: list[float] = field(default_factory=list)  # the first, then the repeats
    fetch: list[float] = field(default_factory=list)


def fill_postar_store(postar: PostarInstance, user: str, count: int) -> float:
    """Put messages 1..count in the user's INBOX through postar's store API (postar stopped)."""
    async def fill() -> None:
        from postar.message import summarize_json
        from postar.store.sqlite import SQLiteStore

        store = await SQLiteStore.open(postar.data_dir)
        try:
            account = await store.find_account(user)
            inbox = await store.find_mailbox(account.id, "INBOX")
            now = time.time()
            for first in range(1, count + 1, 2000):  # batches: the group commit shares the fsync
                batch = [make_message(user, n) for n in range(first, min(first + 2000, count + 1))]
                await asyncio.gather(*(store.append(inbox.id, data, (), now, summarize_json(data))
                                       for data in batch))
        finally:
            await store.close()

    started = time.perf_counter()
    postar.stop()
    asyncio.run(fill())
    postar.launch()
    return time.perf_counter() - started


def fill_maildir(dovecot: DovecotInstance, user: str, count: int) -> float:
    """Write messages 1..count into the user's Maildir cur/ as Dovecot would store them.

    Dovecot keeps LF line ends in Maildir files (mail_save_crlf = no) and names
    them with S=<file size> and W=<size with CRLF>, so it need not stat or read
    them for RFC822.SIZE. No dovecot-uidlist or index: the first SELECT makes them.
    """
    started = time.perf_counter()
    maildir = dovecot.maildir(user)
    for sub in ("", "cur", "new", "tmp"):
        (maildir / sub).mkdir(mode=0o700, exist_ok=True)
        os.chown(maildir / sub, MAIL_UID, MAIL_GID)
    base = int(time.time()) - count
    for number in range(1, count + 1):
        data = make_message(user, number)
        stored = data.replace(b"\r\n", b"\n")
        path = maildir / "cur" / f"{base + number}.M{number}P1.bench,S={len(stored)},W={len(data)}:2,"
        path.write_bytes(stored)
        os.chown(path, MAIL_UID, MAIL_GID)
    return time.perf_counter() - started


def time_big_mailbox(target: Target, count: int, repeats: int, figures: BigFigures) -> None:
    """SELECT and FETCH 1:* (FLAGS) on the large INBOX, each time on a new connection."""
    for _ in range(1 + repeats):
        connection = RawIMAP(target.port)
        try:
            connection.command(f'LOGIN "{BIG_USER}" "{PASSWORD}"')
            started = time.perf_counter()
            lines = connection.command("SELECT INBOX")
            figures.select.append(time.perf_counter() - started)
            exists = [int(line.split()[1]) for line in lines if line.rstrip().endswith(b" EXISTS")]
            if exists != [count]:
                raise IMAPFailure(f"{target.name}: SELECT of the large INBOX says {exists} EXISTS, "
                                  f"expected {count}")
            started = time.perf_counter()
            lines = connection.command("FETCH 1:* (FLAGS)")
            figures.fetch.append(time.perf_counter() - started)
            fetched = sum(1 for line in lines if b" FETCH (" in line)
            if fetched != count:
                raise IMAPFailure(f"{target.name}: FETCH 1:* (FLAGS) gave {fetched} of {count} messages")
            connection.command("LOGOUT")
        finally:
            connection.close()
    target.check_alive()


# Idle connections ---------------------------------------------------------------------

async def _hold_idle(port: int, users: list[str], count: int, pipe) -> None:
    context = client_tls()
    limit = asyncio.Semaphore(IDLE_CONCURRENCY)

    async def until_tagged(reader, tag: bytes, what: str) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise IMAPFailure(f"{what}: connection closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise IMAPFailure(f"{what} answered {line!r}")
                return

    async def open_one(index: int):
        async with limit:
            reader, writer = await asyncio.open_connection(LOOPBACK, port, ssl=context)
            greeting = await reader.readline()
            if not greeting.startswith(b"* OK"):
                raise IMAPFailure(f"greeting {greeting!r}")
            writer.write(f'a LOGIN "{users[index % len(users)]}" "{PASSWORD}"\r\n'.encode())
            await until_tagged(reader, b"a", "LOGIN")
            writer.write(b"b SELECT INBOX\r\n")
            await until_tagged(reader, b"b", "SELECT")
            writer.write(b"c IDLE\r\n")
            while not (line := await reader.readline()).startswith(b"+"):
                if not line or line.startswith(b"c "):
                    raise IMAPFailure(f"IDLE answered {line!r}")
            return writer

    writers = await asyncio.gather(*(open_one(index) for index in range(count)))
    pipe.send(("ready", len(writers)))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to close
    for writer in writers:
        writer.transport.abort()


def idle_client(port: int, users: list[str], count: int, offset: int, pipe) -> None:
    try:
        asyncio.run(_hold_idle(port, users[offset % len(users):] + users[:offset % len(users)],
                               count, pipe))
    except BaseException as error:
        pipe.send(("error", f"{error!r}\n{traceback.format_exc(limit=3)}"))


@dataclass
class IdleFigures:
    connections: int
    before: tuple[int, int, str]
    during: tuple[int, int, str]
    setup_seconds: float


def warm_logins(target: Target, users: list[str]) -> None:
    """One LOGIN per user, one after the other, so that both auth caches hold them.

    Without it, the many first LOGINs that arrive together all miss the cache: for
    postar each then costs an argon2id verification (~120 ms of CPU here).
    """
    for user in users:
        connection = RawIMAP(target.port)
        try:
            connection.command(f'LOGIN "{user}" "{PASSWORD}"')
            connection.command("LOGOUT")
        finally:
            connection.close()


def measure_idle(target: Target, users: list[str], count: int, processes: int) -> IdleFigures:
    """Memory before and with `count` connections in IDLE, spread over client processes."""
    warm_logins(target, users)
    before = target.memory()
    shares = [count // processes + (1 if index < count % processes else 0) for index in range(processes)]
    pipes, children = [], []
    started = time.monotonic()
    try:
        offset = 0
        for share in shares:
            ours, theirs = FORK.Pipe()
            child = FORK.Process(target=idle_client, args=(target.port, users, share, offset, theirs),
                                 daemon=True)
            child.start()
            pipes.append(ours)
            children.append(child)
            offset += share
        for pipe in pipes:
            if not pipe.poll(CLIENT_TIMEOUT * 10):
                raise RuntimeError(f"{target.name}: idle connections not set up in time")
            kind, detail = pipe.recv()
            if kind != "ready":
                raise RuntimeError(f"{target.name}: idle client failed: {detail}\n"
                                   f"{target.name} log tail:\n{target.log_tail()}")
        setup_seconds = time.monotonic() - started
        time.sleep(IDLE_SETTLE_SECONDS)
        target.check_alive()
        during = target.memory()
    finally:
        for pipe in pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join()
    return IdleFigures(count, before, during, setup_seconds)


# Report -------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if a == a and b == b and b else "-"


def report_load(args, runs: dict[str, list[LoadRun]]) -> None:
    names = list(runs)
    print(f"\nIMAP load, IMAP commands/s over TLS: {args.clients} clients x {args.cycles} cycles of "
          f"{COMMANDS_PER_CYCLE} commands, INBOX of {args.messages_per_mailbox} messages of "
          f"{MESSAGE_SIZE} bytes, {args.rounds} rounds, imaplib "
          f"{'with TCP_NODELAY' if args.client_nodelay else 'as it comes (Nagle on)'}\n")

    def figure_row(label: str, pick, digits: int) -> list[str]:
        medians = {name: median([pick(run) for run in runs[name]]) for name in names}
        row = [label, *(f"{medians[name]:.{digits}f}" for name in names)]
        if len(names) == 2:
            row.append(ratio(medians["postar"], medians["dovecot"]))
        row += [" ".join(f"{pick(run):.{digits}f}" for run in runs[name]) for name in names]
        return row

    header = ["measure", *(f"{name} median" for name in names)]
    if len(names) == 2:
        header.append("postar/dovecot")
    header += [f"{name} runs" for name in names]
    print(format_table(header, [
        figure_row("commands/s", lambda run: run.commands_per_second, 0),
        figure_row("cycles/s", lambda run: run.cycles / run.wall, 1),
        figure_row("server CPU ms/cycle", lambda run: 1000 * run.server_cpu / run.cycles, 2),
        figure_row("client CPU ms/cycle", lambda run: 1000 * run.client_cpu / run.cycles, 2),
        figure_row("other busy CPU, %", lambda run: 100 * run.other_cpu / run.wall / CORES, 0),
    ]))
    print("\nMean time per step as a client sees it, ms (median over the runs; "
          f"FETCH BODY is one of {BODIES_PER_CYCLE} single-message fetches)\n")
    rows = []
    for step in CYCLE_STEPS:
        medians = {name: 1000 * median([run.step_means[step] for run in runs[name]]) for name in names}
        row = [step, *(f"{medians[name]:.2f}" for name in names)]
        if len(names) == 2:
            row.append(ratio(medians["postar"], medians["dovecot"]))
        rows.append(row)
    print(format_table(["step", *names, *(["postar/dovecot"] if len(names) == 2 else [])], rows))


def report_big(count: int, big: dict[str, BigFigures]) -> None:
    names = list(big)
    repeats = len(next(iter(big.values())).select) - 1
    print(f"\nMailbox of {count} messages, seconds: SELECT and FETCH 1:* (FLAGS), each time on a "
          f"new connection; the first after filling, then {repeats} more\n")

    def row(label: str, values: dict[str, float]) -> list[str]:
        cells = [label, *(f"{values[name]:.3f}" for name in names)]
        return cells + ([ratio(values["postar"], values["dovecot"])] if len(names) == 2 else [])

    print(format_table(["measure", *names, *(["postar/dovecot"] if len(names) == 2 else [])], [
        row("SELECT, first", {name: fig.select[0] for name, fig in big.items()}),
        row("SELECT, median of the rest", {name: median(fig.select[1:]) for name, fig in big.items()}),
        row("SELECT, fastest", {name: min(fig.select) for name, fig in big.items()}),
        row("FETCH 1:* (FLAGS), first", {name: fig.fetch[0] for name, fig in big.items()}),
        row("FETCH 1:* (FLAGS), median of the rest",
            {name: median(fig.fetch[1:]) for name, fig in big.items()}),
        row("FETCH 1:* (FLAGS), fastest", {name: min(fig.fetch) for name, fig in big.items()}),
    ]))
    print("\nruns: " + "; ".join(
        f"{name} SELECT {' '.join(f'{s:.3f}' for s in fig.select)}, "
        f"FETCH {' '.join(f'{s:.3f}' for s in fig.fetch)}" for name, fig in big.items()))
    how = {"postar": "store API, postar stopped", "dovecot": "Maildir files written"}
    print("filled in: " + ", ".join(f"{name} {fig.fill_seconds:.0f} s ({how[name]})"
                                    for name, fig in big.items()))


def report_idle(idle: dict[str, IdleFigures]) -> None:
    names = list(idle)
    count = next(iter(idle.values())).connections
    print(f"\nMemory with {count} TLS connections logged in, INBOX selected, in IDLE (MiB)\n")

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f}"

    rows = []
    for name, fig in idle.items():
        rss_before, pss_before, _ = fig.before
        rss_during, pss_during, processes = fig.during
        rows.append([name, mib(rss_before), mib(rss_during), mib(pss_before), mib(pss_during),
                     f"{(pss_during - pss_before) / count:.1f}", f"{count / fig.setup_seconds:.0f}",
                     processes])
    print(format_table(["server", "RSS before", "RSS with", "PSS before", "PSS with",
                        "PSS KiB/conn", "conn set up/s", "processes"], rows))
    if len(names) == 2:
        grown = {name: fig.during[1] - fig.before[1] for name, fig in idle.items()}
        print(f"\npostar/dovecot PSS with the connections: "
              f"{ratio(idle['postar'].during[1], idle['dovecot'].during[1])}, "
              f"growth per connection: {ratio(grown['postar'], grown['dovecot'])}")


# Main ---------------------------------------------------------------------------------

def main() -> None:
    args = parse_args()
    if os.geteuid() != 0 and args.only != "postar":
        sys.exit("Dovecot needs root (it switches users); run as root or with --only postar")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    # The bench's clients and both servers inherit it. postar holds one descriptor per
    # connection; each of Dovecot's 2 login processes two per connection it holds
    # (client and imap process); each idle client process its share.
    needed = args.idle + 4 * args.clients + 2048
    limit = raise_open_file_limit(needed)
    if limit < needed:
        sys.exit(f"RLIMIT_NOFILE is {limit} and cannot be raised to {needed} here: "
                 f"lower --idle to {max(0, limit - 4 * args.clients - 2048)} or less")
    users = [user_name(index) for index in range(1, args.clients + 1)]
    all_users = [*users, BIG_USER]
    connections = args.idle + args.clients + 100
    with contextlib.ExitStack() as stack:
        workdir = make_workdir(stack, args.workdir, "postar-imap-bench-")
        cert, key = make_certificate(workdir / "tls", DOMAIN)
        targets = []
        if args.only != "dovecot":
            imaps = free_port()
            postar = stack.enter_context(PostarInstance(
                workdir / "postar", free_port(), DOMAIN, all_users[0], PASSWORD, imaps_port=imaps,
                extra_users=all_users[1:], tls_cert=cert, tls_key=key,
                connections_per_ip=connections))
            targets.append(Target("postar", imaps, postar))
        if args.only != "postar":
            port = free_port()
            dovecot = stack.enter_context(DovecotInstance(
                workdir / "dovecot", port, all_users, PASSWORD, cert, key, connections,
                reuse_imap_processes=args.clients if args.dovecot_reuse else 0))
            targets.append(Target("dovecot", port, dovecot))
        print("servers: " + ", ".join(f"{t.name} on {LOOPBACK}:{t.port}" for t in targets), flush=True)

        for target in targets:
            rate = fill_all(target, users, args.messages_per_mailbox, args.client_nodelay)
            print(f"{target.name}: {len(users)} INBOXes filled by APPEND, {rate:.0f} messages/s "
                  f"({len(users)} clients in parallel)", flush=True)
        runs = run_rounds(targets, users, args)
        report_load(args, runs)

        if args.big:
            big = {}
            for target in targets:
                if target.name == "postar":
                    seconds = fill_postar_store(target.instance, BIG_USER, args.big)
                else:
                    seconds = fill_maildir(target.instance, BIG_USER, args.big)
                print(f"{target.name}: large mailbox filled in {seconds:.0f} s", flush=True)
                big[target.name] = BigFigures(seconds)
                time_big_mailbox(target, args.big, args.big_repeats, big[target.name])
            report_big(args.big, big)

        if args.idle:
            idle = {}
            for target in targets:
                idle[target.name] = measure_idle(target, users, args.idle, args.idle_processes)
                print(f"{target.name}: {args.idle} idle connections held", flush=True)
            report_idle(idle)

        for target in targets:
            if isinstance(target.instance, DovecotInstance):
                report_dovecot_warnings(target.instance)


def report_dovecot_warnings(dovecot: DovecotInstance) -> None:
    """Dovecot's warnings and errors, each distinct text once with how often it came."""
    counts: dict[str, int] = {}
    for line in dovecot.warnings():
        text = re.sub(r"^.*?: (Warning|Error|Fatal): ", r"\1: ", line)
        counts[text] = counts.get(text, 0) + 1
    if counts:
        print("\nDovecot logged:")
        for text, count in counts.items():
            print(f"  {count} x {text}")


if __name__ == "__main__":
    main()
