"""How fast postar accepts mail over SMTP, side by side with Postfix.

What is measured: the wall time Postfix's own load generator, `smtp-source`, takes
to hand N messages of --size bytes to a server on loopback, as messages per
second. Both servers say 250 only once the message is on disk: postar after its
fsync'd SQLite (WAL) commit, Postfix after cleanup(8) fsyncs the queue file.
Postfix then delivers to a Maildir asynchronously (another fsync per message); the
time until the last message lands there is reported separately, and each Postfix
run waits for it so runs never overlap.

Four scenarios: --sessions parallel sessions and one session, each with a new
connection per message and with connection reuse (`smtp-source -d`). The servers
take turns scenario by scenario, the order flipping every round, for --rounds
rounds; the table gives medians and every figure. Delivered counts are checked
after every run (Maildir files for Postfix; postar through `stored_count`).

Last, postar's resident memory (VmRSS) is read with --idle-connections plain TCP
connections that have read the greeting and sit idle.

Run as root (Postfix needs it): python3 bench/smtp_accept.py [--only postfix]
"""

import argparse
import contextlib
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchnet import make_workdir, LOOPBACK, find_tool, free_port, raise_open_file_limit
from postar_instance import PostarInstance
from postfix_instance import PostfixInstance

DOMAIN = "bench.test"
USER = f"user@{DOMAIN}"
PASSWORD = "secret-password"
IDLE_SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Scenario:
    name: str
    sessions: int
    reuse_connection: bool


@dataclass
class Figures:
    """Messages per second of every run of one scenario, by server."""
    postar: list[float] = field(default_factory=list)
    postfix: list[float] = field(default_factory=list)
    postfix_delivered: list[float] = field(default_factory=list)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and scenario")
    parser.add_argument("--size", type=int, default=4096, help="message body bytes")
    parser.add_argument("--sessions", type=int, default=20, help="parallel sessions")
    parser.add_argument("--idle-connections", type=int, default=1000,
                        help="idle connections held open while postar's RSS is read")
    parser.add_argument("--only", choices=("postar", "postfix"),
                        help="benchmark one server alone")
    parser.add_argument("--workdir", type=Path,
                        help="where the throwaway instances live (default: system temp dir)")
    return parser.parse_args()


def scenarios(sessions: int) -> list[Scenario]:
    return [
        Scenario(f"{sessions} sessions, new connection per message", sessions, False),
        Scenario(f"{sessions} sessions, connection reuse (-d)", sessions, True),
        Scenario("1 session, new connection per message", 1, False),
        Scenario("1 session, connection reuse (-d)", 1, True),
    ]


def run_smtp_source(server, scenario: Scenario, messages: int, size: int) -> float:
    """Send `messages` to `server` with smtp-source; return its wall time in seconds.

    smtp-source exits non-zero on the first reply that is not the expected 2xx/3xx,
    so a zero exit means every message got its 250. On failure the error carries
    the server's log tail too.
    """
    command = [find_tool("smtp-source"), "-s", str(scenario.sessions), "-m", str(messages),
               "-l", str(size), "-f", USER, "-t", USER]
    if scenario.reuse_connection:
        command.append("-d")
    command.append(f"{LOOPBACK}:{server.port}")
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=60 + 0.05 * messages)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n"
                           f"{result.stdout}{result.stderr}\nserver log tail:\n{server.log_tail()}")
    return elapsed


def run_postfix(postfix: PostfixInstance, scenario: Scenario, messages: int,
                size: int) -> tuple[float, float]:
    """One run against Postfix: (accepted msg/s, delivered msg/s), Maildir emptied after."""
    started = time.perf_counter()
    run_smtp_source(postfix, scenario, messages, size)
    accepted = time.perf_counter()
    delivered = postfix.wait_for_deliveries(messages, timeout=60 + 0.05 * messages)
    postfix.clear_maildir()
    return messages / (accepted - started), messages / (delivered - started)


def run_postar(postar: PostarInstance, scenario: Scenario, messages: int, size: int) -> float:
    """One run against postar: accepted msg/s, after checking the stored count grew."""
    before = postar.stored_count()
    seconds = run_smtp_source(postar, scenario, messages, size)
    postar.check_alive()
    after = postar.stored_count()
    if after - before != messages:
        raise RuntimeError(f"postar stored {after - before} messages, expected {messages}")
    return messages / seconds


def run_once(server, scenario: Scenario, args, figures: Figures) -> None:
    """One run of `scenario` against `server`, its figures added to `figures`."""
    if isinstance(server, PostarInstance):
        figures.postar.append(run_postar(server, scenario, args.messages, args.size))
    else:
        accepted, delivered = run_postfix(server, scenario, args.messages, args.size)
        figures.postfix.append(accepted)
        figures.postfix_delivered.append(delivered)


def run_rounds(args, servers: list) -> dict[Scenario, Figures]:
    """Every scenario, --rounds times, servers taking turns; warm each server up first."""
    all_scenarios = scenarios(args.sessions)
    for server in servers:
        run_once(server, all_scenarios[0], args, Figures())

    results = {scenario: Figures() for scenario in all_scenarios}
    for round_number in range(args.rounds):
        order = servers if round_number % 2 == 0 else servers[::-1]
        for scenario in all_scenarios:
            for server in order:
                run_once(server, scenario, args, results[scenario])
            print(f"round {round_number + 1}/{args.rounds}: {scenario.name} done", flush=True)
    return results


def open_idle_connections(port: int, count: int) -> list[socket.socket]:
    """Open `count` connections that each read the 220 greeting and then sit."""
    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection((LOOPBACK, port), timeout=10)
            connections.append(connection)
            greeting = connection.recv(512)
            if not greeting.startswith(b"220"):
                raise RuntimeError(f"connection {len(connections)} got {greeting!r}, not 220")
    except BaseException:
        close_all(connections)
        raise
    return connections


def close_all(connections: list[socket.socket]) -> None:
    for connection in connections:
        connection.close()


def measure_idle_rss(postar: PostarInstance, count: int) -> tuple[int, int]:
    """postar's VmRSS in KiB before and while `count` idle connections are open."""
    before = postar.rss_kib()
    connections = open_idle_connections(postar.port, count)
    try:
        time.sleep(IDLE_SETTLE_SECONDS)
        postar.check_alive()
        during = postar.rss_kib()
    finally:
        close_all(connections)
    return before, during


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths))
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def median_cell(figures: list[float]) -> str:
    return f"{statistics.median(figures):.0f}" if figures else "-"


def runs_cell(figures: list[float]) -> str:
    return " ".join(f"{figure:.0f}" for figure in figures) or "-"


def ratio_cell(figures: Figures) -> str:
    if not figures.postar or not figures.postfix:
        return "-"
    return f"{statistics.median(figures.postar) / statistics.median(figures.postfix):.2f}"


def report(args, results: dict[Scenario, Figures]) -> None:
    print(f"\nSMTP accept rate, msg/s (smtp-source wall time): {args.messages} messages "
          f"of {args.size} bytes per run, {args.rounds} rounds\n")
    print(format_table(
        ["scenario", "postar median", "postfix median", "postar/postfix",
         "postar runs", "postfix runs"],
        [[scenario.name, median_cell(fig.postar), median_cell(fig.postfix), ratio_cell(fig),
          runs_cell(fig.postar), runs_cell(fig.postfix)] for scenario, fig in results.items()],
    ))
    if any(fig.postfix_delivered for fig in results.values()):
        print("\nPostfix delivery completion, msg/s (from smtp-source start until the last "
              "message is in the Maildir)\n")
        print(format_table(
            ["scenario", "median", "runs"],
            [[scenario.name, median_cell(fig.postfix_delivered),
              runs_cell(fig.postfix_delivered)] for scenario, fig in results.items()],
        ))


def report_rss(count: int, startup_kib: int, before_kib: int, during_kib: int) -> None:
    per_connection = (during_kib - before_kib) / count
    print(f"\npostar VmRSS: {startup_kib / 1024:.1f} MiB after start, "
          f"{before_kib / 1024:.1f} MiB after the load rounds, "
          f"{during_kib / 1024:.1f} MiB with {count} idle connections open "
          f"(+{per_connection:.1f} KiB per connection)")


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds the with-blocks below like Ctrl-C does, so cleanup still runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    raise_open_file_limit(args.idle_connections + args.sessions + 1024)
    with contextlib.ExitStack() as stack:
        workdir = make_workdir(stack, args.workdir)
        servers = []
        if args.only != "postfix":
            postar = stack.enter_context(
                PostarInstance(workdir / "postar", free_port(), DOMAIN, USER, PASSWORD))
            startup_rss = postar.rss_kib()
            servers.append(postar)
        if args.only != "postar":
            servers.append(stack.enter_context(
                PostfixInstance(workdir / "postfix", free_port(), DOMAIN, args.sessions)))
        report(args, run_rounds(args, servers))
        if args.only != "postfix":
            before, during = measure_idle_rss(postar, args.idle_connections)
            report_rss(args.idle_connections, startup_rss, before, during)


if __name__ == "__main__":
    main()
