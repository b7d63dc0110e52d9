"""How fast postar delivers a queued backlog to another server, side by side with Postfix.

Both servers get the same backlog (--messages - 1 messages for other domains,
submitted while the sink is down, so the first attempt defers each of them),
then the sink, Postfix's `smtp-sink`, starts on loopback and the backlog is
released as an admin would: `postqueue -f`; for postar what `postar queue retry
--all` does (the store call, then the wake-up through the server's control FIFO),
made in-process so that the CLI's start-up is not timed. One more message follows
the release to each server. Measured: from the release until the sink's own counter reaches
--messages, as messages per second, and the CPU of the servers, of postar's DNS
server (unbound) and of the sink, from /proc.

postar relays as `smarthost` (or `--postar-route mx`), Postfix as `relayhost`;
both open at most min(concurrency, per_destination x domains) connections to the
sink. Scenarios: one recipient per message over R domains, for each R in
--domains; servers take turns, the order flipping every round. See bench/README.md.

Run as root (Postfix and smtp-sink need it): python3 bench/delivery_load.py
"""

import argparse
import asyncio
import contextlib
import os
import re
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

from benchnet import (make_workdir, LOOPBACK, descendants, find_tool, format_table, free_port, machine_busy_seconds,
                      process_cpu_seconds)
# Before tests.delivery: importing postar_instance puts the checkout on sys.path.
from postar_instance import PostarInstance
from tests.delivery.dnsserver import DNSServer
from tests.delivery.receivers import PostfixServer, is_listening

DOMAIN = "bench.test"
USER = f"user@{DOMAIN}"
PASSWORD = "secret-password"
CORES = os.cpu_count() or 1
RETRY_LATER = 3600  # seconds: neither server retries the deferred backlog on its own
POLL = 0.02


def sink_domain(index: int) -> str:
    return f"sink{index}.test"


# -- the sink --

COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class Sink:
    """smtp-sink on LOOPBACK:`port`, counting what arrives.

    With -c it writes "sess=S quit=Q mesg=M" each time a counter changes (CR
    between them); a thread reads that and notes when the first and the
    `expected`-th message arrived (time.perf_counter()).
    """

    def __init__(self, port: int, expected: int):
        self.port = port
        self.expected = expected
        self.messages = self.sessions = 0
        self.first_at: float | None = None
        self.done_at: float | None = None
        self.done = threading.Event()
        self.other_output = b""
        self.process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [find_tool("smtp-sink"), "-c", "-u", "postfix", f"{LOOPBACK}:{self.port}", "1000"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not is_listening(LOOPBACK, self.port):  # from /proc: a probe would count as a session
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"smtp-sink does not listen on port {self.port}: {self.other_output!r}")
            time.sleep(POLL)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait()
        self._reader.join()
        self.process.stdout.close()
        self.process = None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def wait(self, timeout: float) -> float:
        """The moment the expected count was reached; RuntimeError after `timeout`."""
        if not self.done.wait(timeout):
            raise RuntimeError(f"the sink received {self.messages} of {self.expected} messages "
                               f"in {timeout:.0f} s")
        return self.done_at

    def _read(self) -> None:
        pending = b""
        while chunk := os.read(self.process.stdout.fileno(), 65536):
            now = time.perf_counter()
            *complete, pending = re.split(rb"[\r\n]", pending + chunk)
            for piece in complete:
                if (found := COUNTERS.fullmatch(piece)) is None:
                    self.other_output += piece + b"\n"
                    continue
                self.sessions, self.messages = int(found[1]), int(found[3])
                if self.messages and self.first_at is None:
                    self.first_at = now
                if self.messages >= self.expected and self.done_at is None:
                    self.done_at = now
                    self.done.set()


# -- the servers --

class PostfixRelay(PostfixServer):
    """Postfix relaying everything from loopback clients to the sink, as `relayhost`."""

    name = "postfix"

    def __init__(self, root: Path, port: int, sink_port: int, connections: int, connection_cache: bool):
        super().__init__(root, LOOPBACK, port, hostname="postfix.bench.invalid")
        self.sink_port = sink_port
        self.connections = connections
        self.connection_cache = connection_cache
        self._kick: smtplib.SMTP | None = None

    def settings(self) -> dict[str, str]:
        return {
            **super().settings(),
            "relayhost": f"[{LOOPBACK}]:{self.sink_port}",
            # The relayhost is one next hop for every domain: its limit is the total.
            "smtp_destination_concurrency_limit": str(self.connections),
            "default_process_limit": str(max(100, 2 * self.connections)),
            "smtp_connection_cache_on_demand": "yes" if self.connection_cache else "no",
            "smtp_tls_security_level": "none",  # smtp-sink offers no STARTTLS anyway
            "minimal_backoff_time": f"{RETRY_LATER}s",
            "maximal_backoff_time": f"{2 * RETRY_LATER}s",
            "queue_run_delay": f"{RETRY_LATER}s",
        }

    def begin(self, connections: int) -> None:
        """Before a run: the scenario's concurrency limit, if it is another one.

        main.cf is rewritten and master told with SIGHUP, as `postfix reload` does.
        """
        if connections == self.connections:
            return
        self.connections = connections
        main_cf = "".join(f"{name} = {value}\n" for name, value in self.settings().items())
        self.write_config("main.cf", main_cf)
        self.process.send_signal(signal.SIGHUP)

    def submit(self, recipients: list[str], size: int, sessions: int) -> None:
        submit_all(lambda: smtplib.SMTP(LOOPBACK, self.port, timeout=60), recipients, size, sessions)

    def queued(self, name: str) -> int:
        return sum(len(files) for _, _, files in os.walk(self.queue_dir / name))

    def wait_deferred(self, count: int, timeout: float) -> None:
        """Until `count` messages wait in the deferred queue and none anywhere else."""
        deadline = time.monotonic() + timeout
        busy = ("incoming", "active", "maildrop")
        while self.queued("deferred") < count or any(self.queued(name) for name in busy):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix deferred {self.queued('deferred')} of {count}; "
                                   f"log tail:\n{self.log_tail()}")
            time.sleep(POLL)

    def prepare_release(self) -> None:
        self._kick = smtplib.SMTP(LOOPBACK, self.port, timeout=60)
        self._kick.ehlo()

    def release(self, kick_recipient: str, size: int) -> None:
        """postqueue -f (the dead next hop is forgotten, the deferred queue scanned now); one more message."""
        subprocess.run([find_tool("postqueue"), "-c", str(self.config_dir), "-f"], check=True)
        send_one(self._kick, kick_recipient, size)

    def wait_done(self, count: int, timeout: float) -> None:
        """Until the queue is empty: every message's queue file removed."""
        deadline = time.monotonic() + timeout
        while any(self.queued(q) for q in ("incoming", "active", "deferred")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix's queue is not empty; log tail:\n{self.log_tail()}")
            time.sleep(POLL)

    def finish_release(self) -> None:
        if self._kick is not None:
            self._kick.quit()
            self._kick = None

    def resolver_cpu_seconds(self) -> float:
        return 0.0  # a relayhost in brackets: no DNS look-up at all

    def cpu_seconds(self) -> float:
        """CPU used so far by master, its living children and the children it reaped."""
        pid = self.process.pid
        total = process_cpu_seconds(pid, reaped_children=True)
        for child in descendants(pid):
            with contextlib.suppress(OSError):  # gone meanwhile: its CPU moved to cutime
                total += process_cpu_seconds(child, reaped_children=True)
        return total


class PostarSender(PostarInstance):
    """postar with a submission listener, relaying to the sink (smarthost or MX look-ups)."""

    name = "postar"

    def __init__(self, root: Path, sink_port: int, dns: DNSServer, route: str, concurrency: int,
                 per_destination: int):
        self.dns = dns
        delivery = {"nameservers": [dns.nameserver], "concurrency": concurrency,
                    "per_destination": per_destination,
                    "retry_min": float(RETRY_LATER), "retry_max": float(2 * RETRY_LATER)}
        if route == "smarthost":
            delivery["smarthost"] = f"{LOOPBACK}:{sink_port}"
        else:
            delivery["mx_port"] = sink_port
        super().__init__(root, free_port(), DOMAIN, USER, PASSWORD, submission_port=free_port(),
                         tables={"delivery": delivery})
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store = None
        self._kick: smtplib.SMTP | None = None
        self._log_offset = 0  # where the current step's log lines begin

    def begin(self, connections: int) -> None:
        """Before a run; `connections` is Postfix's business (postar's limits are per domain)."""
        self._log_offset = self.log_file.stat().st_size

    def submit(self, recipients: list[str], size: int, sessions: int) -> None:
        submit_all(self._login, recipients, size, sessions)

    def _login(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed
        client = smtplib.SMTP(LOOPBACK, self.submission_port, timeout=60)
        client.starttls(context=context)
        client.login(USER, PASSWORD)
        return client

    def wait_deferred(self, count: int, timeout: float) -> None:
        """Until postar has logged a failed first attempt of each message (one line per recipient)."""
        self._wait_log("status=deferred", count, timeout)

    def wait_done(self, count: int, timeout: float) -> None:
        """Until postar has logged every delivery, i.e. recorded it in its store."""
        self._wait_log("status=sent", count, timeout)

    def _wait_log(self, text: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (seen := self._log_count(text)) < count:
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"postar logged {seen} of {count} {text}; log tail:\n{self.log_tail()}")
            time.sleep(POLL)
        self._log_offset = self.log_file.stat().st_size

    def _log_count(self, text: str) -> int:
        with self.log_file.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().count(text.encode())

    def prepare_release(self) -> None:
        # this checkout's (see postar_instance), imported here so that --only postfix needs no postar
        from postar.store.control import request_wake
        from postar.store.sqlite import SQLiteStore

        self._request_wake = request_wake
        self._loop = asyncio.new_event_loop()
        self._store = self._loop.run_until_complete(SQLiteStore.open(self.data_dir))
        self._kick = self._login()

    def release(self, kick_recipient: str, size: int) -> None:
        """What `postar queue retry --all` does, then one more message."""
        self._loop.run_until_complete(self._store.retry_queue_entry(None))
        if not self._request_wake(self.data_dir):
            raise RuntimeError("postar's control FIFO has no reader: is the server running?")
        send_one(self._kick, kick_recipient, size)

    def finish_release(self) -> None:
        if self._kick is not None:
            self._kick.quit()
            self._kick = None
        if self._loop is not None:
            self._loop.run_until_complete(self._store.close())
            self._loop.close()
            self._loop = self._store = None

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def resolver_cpu_seconds(self) -> float:
        """unbound's CPU: it answers postar's look-ups and nothing else."""
        return process_cpu_seconds(self.dns.process.pid)


# -- the load --

def message(recipient: str, size: int) -> bytes:
    """A plain-text message of about `size` bytes, CRLF line ends, lines of 76 characters."""
    header = (f"From: <{USER}>\r\nTo: <{recipient}>\r\nSubject: delivery bench\r\n"
              f"Date: {formatdate()}\r\nMessage-ID: <{time.time_ns()}.{recipient}>\r\n\r\n")
    line = b"x" * 76 + b"\r\n"
    body_lines = max(1, (size - len(header)) // len(line))
    return header.encode() + line * body_lines


def send_one(client: smtplib.SMTP, recipient: str, size: int) -> None:
    refused = client.sendmail(USER, [recipient], message(recipient, size))
    if refused:
        raise RuntimeError(f"{recipient} refused: {refused}")


def submit_all(connect, recipients: list[str], size: int, sessions: int) -> None:
    """Send one message to each recipient over `sessions` connections in parallel, each reused."""
    def session(share: list[str]) -> None:
        client = connect()
        try:
            for recipient in share:
                send_one(client, recipient, size)
        finally:
            client.quit()

    shares = [recipients[i::sessions] for i in range(sessions) if recipients[i::sessions]]
    with ThreadPoolExecutor(len(shares)) as pool:
        for done in [pool.submit(session, share) for share in shares]:
            done.result()


@dataclass
class Run:
    rate: float            # messages/s from the release to the last message at the sink
    first_ms: float        # from the release to the first message at the sink
    server_cpu: float      # seconds, from the release until the server has recorded every delivery
    resolver_cpu: float    # the DNS server's
    sink_cpu: float
    other_cpu: float       # the machine's busy CPU outside the server, resolver, sink and this process
    wall: float
    connections: int       # SMTP sessions the sink saw


def run_once(server, sink_port: int, domains: int, messages: int, args) -> Run:
    """Queue `messages` - 1 with the sink down, start it, release, time until the last one arrives."""
    recipients = [f"r{i}@{sink_domain(i % domains)}" for i in range(messages)]
    *held, kick = recipients
    timeout = 60 + 0.1 * messages
    server.begin(connection_limit(args, domains))
    server.submit(held, args.size, args.sessions)
    server.wait_deferred(len(held), timeout)
    sink = Sink(sink_port, messages)
    try:
        sink.start()
        server.prepare_release()
        cpu, resolver_cpu, sink_cpu = server.cpu_seconds(), server.resolver_cpu_seconds(), sink.cpu_seconds()
        busy, own = machine_busy_seconds(), time.process_time()
        released = time.perf_counter()
        server.release(kick, args.size)
        last = sink.wait(timeout)
        server.wait_done(messages, timeout)
        wall = time.perf_counter() - released
        cpu, sink_cpu = server.cpu_seconds() - cpu, sink.cpu_seconds() - sink_cpu
        resolver_cpu = server.resolver_cpu_seconds() - resolver_cpu
        busy, own = machine_busy_seconds() - busy, time.process_time() - own
        time.sleep(0.2)  # anything sent twice would show up now
        if sink.messages != messages:
            raise RuntimeError(f"the sink received {sink.messages} messages, expected {messages}")
    finally:
        server.finish_release()
        sink.stop()
    return Run(rate=messages / (last - released), first_ms=1000 * (sink.first_at - released),
               server_cpu=cpu, resolver_cpu=resolver_cpu, sink_cpu=sink_cpu,
               other_cpu=max(0.0, busy - cpu - resolver_cpu - sink_cpu - own),
               wall=wall, connections=sink.sessions)


def run_rounds(args, servers: list, sink_port: int) -> dict[int, dict[str, list[Run]]]:
    """Runs by scenario (number of domains) and server name."""
    for server in servers:  # warm-up, untimed: Postfix forks its daemons, postar fills its caches
        run_once(server, sink_port, args.domains[0], min(args.messages, 200), args)
    results = {domains: {"postar": [], "postfix": []} for domains in args.domains}
    for round_number in range(args.rounds):
        order = servers if round_number % 2 == 0 else servers[::-1]
        for domains in args.domains:
            for server in order:
                run = run_once(server, sink_port, domains, args.messages, args)
                results[domains][server.name].append(run)
            print(f"round {round_number + 1}/{args.rounds}: {domains} domain(s) done", flush=True)
    return results


# -- the report --

MEASURES = [
    ("messages/s", lambda run, n: run.rate, 0),
    ("server CPU ms/msg", lambda run, n: 1000 * run.server_cpu / n, 3),
    ("resolver CPU ms/msg", lambda run, n: 1000 * run.resolver_cpu / n, 3),
    ("sink CPU ms/msg", lambda run, n: 1000 * run.sink_cpu / n, 3),
    ("first message, ms", lambda run, n: run.first_ms, 0),
    ("sink connections", lambda run, n: run.connections, 0),
    ("other busy CPU, %", lambda run, n: 100 * run.other_cpu / run.wall / CORES, 0),
]


def cell(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def report(args, results: dict[int, dict[str, list[Run]]]) -> None:
    connections = [connection_limit(args, domains) for domains in args.domains]
    print(f"\nDelivery of a backlog of {args.messages} messages of {args.size} bytes to smtp-sink, "
          f"from the release to the last message at the sink; {args.rounds} rounds; postar route: "
          f"{args.postar_route}; Postfix's connection cache "
          f"{'off' if args.no_postfix_connection_cache else 'on'}; at most "
          f"{'/'.join(map(str, connections))} connections at once\n")
    rows = []
    for domains, runs in results.items():
        for number, (measure, value, digits) in enumerate(MEASURES):
            postar = [value(run, args.messages) for run in runs["postar"]]
            postfix = [value(run, args.messages) for run in runs["postfix"]]
            ratio = (f"{statistics.median(postar) / statistics.median(postfix):.2f}"
                     if postar and postfix and statistics.median(postfix) else "-")
            rows.append([
                f"{domains} domain{'s' if domains > 1 else ''}" if number == 0 else "", measure,
                cell(statistics.median(postar), digits) if postar else "-",
                cell(statistics.median(postfix), digits) if postfix else "-", ratio,
                " ".join(cell(v, digits) for v in postar) or "-",
                " ".join(cell(v, digits) for v in postfix) or "-",
            ])
    print(format_table(["scenario", "measure", "postar median", "postfix median", "postar/postfix",
                        "postar runs", "postfix runs"], rows))


# -- set-up --

def connection_limit(args, domains: int) -> int:
    """The most connections postar opens to the sink at once: Postfix gets the same."""
    return min(args.concurrency, args.per_destination * domains)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run (the backlog and one)")
    parser.add_argument("--size", type=int, default=4096, help="message bytes")
    parser.add_argument("--domains", default="1,10",
                        help="comma-separated numbers of recipient domains, one scenario each")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and scenario")
    parser.add_argument("--sessions", type=int, default=10, help="parallel sessions submitting the backlog")
    parser.add_argument("--concurrency", type=int, default=50, help="postar's [delivery] concurrency")
    parser.add_argument("--per-destination", type=int, default=5,
                        help="postar's [delivery] per_destination (connections per recipient domain)")
    parser.add_argument("--postar-route", choices=("smarthost", "mx"), default="smarthost",
                        help="postar relays to the sink as its smarthost, or finds it by MX look-ups")
    parser.add_argument("--no-postfix-connection-cache", action="store_true",
                        help="smtp_connection_cache_on_demand = no: one connection per message, as postar")
    parser.add_argument("--only", choices=("postar", "postfix"), help="benchmark one server alone")
    parser.add_argument("--workdir", type=Path,
                        help="where the throwaway instances live (default: system temp dir)")
    args = parser.parse_args()
    args.domains = [int(number) for number in args.domains.split(",")]
    return args


def start_dns(stack: contextlib.ExitStack, workdir: Path, domains: int) -> DNSServer:
    """unbound with a zone per sink domain: MX mx, mx A 127.0.0.1, no MTA-STS record."""
    server = DNSServer(workdir / "dns")
    for index in range(domains):
        server.zone(sink_domain(index), {"@": ["MX 10 mx"], "mx": [f"A {LOOPBACK}"]})
    server.start()
    stack.callback(server.stop)
    return server


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds the with-blocks below like Ctrl-C does, so cleanup still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    with contextlib.ExitStack() as stack:
        workdir = make_workdir(stack, args.workdir)
        sink_port = free_port()
        servers = []
        if args.only != "postfix":
            dns = start_dns(stack, workdir, max(args.domains))
            servers.append(stack.enter_context(PostarSender(
                workdir / "postar", sink_port, dns, args.postar_route, args.concurrency,
                args.per_destination)))
        if args.only != "postar":
            postfix = PostfixRelay(workdir / "postfix", free_port(), sink_port,
                                   connection_limit(args, args.domains[0]),
                                   not args.no_postfix_connection_cache)
            servers.append(stack.enter_context(postfix))
        report(args, run_rounds(args, servers, sink_port))


if __name__ == "__main__":
    main()
