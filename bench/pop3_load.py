"""POP3 side by side: postar against Dovecot, same mailboxes, same clients, both over TLS.

Both servers run on loopback with POP3 over implicit TLS (postar's pop3s
listener, Dovecot's pop3s with `ssl = required`) and the same self-signed
RSA-2048 certificate; postar refuses USER/PASS without TLS, so TLS is how both
are compared. Each has the same users with the same password and the same
messages, put there the same way: IMAP APPEND over each server's imaps listener
(as bench/imap_load.py fills its mailboxes), --messages-per-mailbox 4 KiB
messages in each user's INBOX.

Load: --clients client processes (poplib), one user each (postar locks a
maildrop for one session at a time, RFC 1939 §8), run cycles of connect, USER,
PASS, STAT, UIDL, RETR of every message in turn (nothing deleted: the mailbox
stays as it is), QUIT. Reported: messages retrieved per second and MB/s over
the wall time of a run, the servers' CPU per cycle (from /proc), the clients'
CPU per cycle, and the time per step; one untimed warm-up run per server,
then --rounds runs each, the servers taking turns, the order flipping every
round; medians over the runs.

Every answer is checked: an -ERR stops the run with the command and the
reply; STAT must count the messages and octets put in, UIDL must give one
distinct id per message, every RETR must give the appended message byte for
byte.

Run as root (Dovecot switches users): python3 bench/pop3_load.py [--only postar]
"""

import argparse
import contextlib
import os
import poplib
import signal
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from benchnet import (make_workdir, 
    LOOPBACK, format_table, free_port, machine_busy_seconds, make_certificate,
)
from dovecot_instance import DovecotInstance
from imap_load import (
    CLIENT_TIMEOUT, CORES, DOMAIN, MESSAGE_SIZE, PASSWORD, Target, client_tls, fill_all,
    make_message, median, ratio, report_dovecot_warnings, run_processes, user_name,
)
from postar_instance import PostarInstance

# What one cycle does; "connect" is TCP + TLS + the greeting. RETR is timed per message.
CYCLE_STEPS = ("connect", "USER", "PASS", "STAT", "UIDL", "RETR", "QUIT")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20,
                        help="concurrent load clients (processes), one user each")
    parser.add_argument("--rounds", type=int, default=3, help="load runs per server")
    parser.add_argument("--cycles", type=int, default=10, help="cycles per client in one load run")
    parser.add_argument("--messages-per-mailbox", type=int, default=200,
                        help=f"{MESSAGE_SIZE}-byte messages APPENDed to each client's INBOX")
    parser.add_argument("--dovecot-reuse", action="store_true",
                        help="let Dovecot's pop3 processes serve one connection after another "
                             "(service_count = 0, --clients kept ready); default: a new process "
                             "per connection, Dovecot's default")
    parser.add_argument("--only", choices=("postar", "dovecot"), help="benchmark one server alone")
    parser.add_argument("--workdir", type=Path,
                        help="where the throwaway instances live (default: system temp dir)")
    return parser.parse_args()


# One client's work --------------------------------------------------------------------

class POP3Failure(RuntimeError):
    """A server answered -ERR, or something other than what was stored."""


def pop_call(command: str, call, *args):
    try:
        return call(*args)
    except poplib.error_proto as error:  # poplib raises on -ERR and on a closed connection
        raise POP3Failure(f"{command} failed: {error}") from None


def run_cycle(port: int, user: str, expected: list[bytes], timings: dict[str, list[float]]) -> None:
    """One connect..QUIT cycle, every message retrieved; step times are added to `timings`."""
    def step(name: str, command: str, call, *args):
        started = time.perf_counter()
        answer = pop_call(command, call, *args)
        timings[name].append(time.perf_counter() - started)
        return answer

    started = time.perf_counter()
    connection = poplib.POP3_SSL(LOOPBACK, port, context=client_tls(), timeout=CLIENT_TIMEOUT)
    timings["connect"].append(time.perf_counter() - started)
    try:
        step("USER", "USER", connection.user, user)
        step("PASS", "PASS", connection.pass_, PASSWORD)
        count, octets = step("STAT", "STAT", connection.stat)
        if (count, octets) != (len(expected), sum(map(len, expected))):
            raise POP3Failure(f"{user}: STAT says {count} {octets}, expected "
                              f"{len(expected)} {sum(map(len, expected))}")
        _, lines, _ = step("UIDL", "UIDL", connection.uidl)
        if len(lines) != count or len({line.split()[1] for line in lines}) != count:
            raise POP3Failure(f"{user}: UIDL gave {len(lines)} lines, not {count} distinct ids")
        for number, message in enumerate(expected, 1):
            _, lines, _ = step("RETR", f"RETR {number}", connection.retr, number)
            if b"\r\n".join(lines) + b"\r\n" != message:
                raise POP3Failure(f"{user}: RETR {number} is not the message appended "
                                  f"({sum(map(len, lines)) + 2 * len(lines)} bytes)")
        step("QUIT", "QUIT", connection.quit)
    except BaseException:
        with contextlib.suppress(OSError):
            connection.close()
        raise


@dataclass
class ClientOutcome:
    cycles: int = 0
    messages: int = 0
    octets: int = 0
    finished: float = 0.0  # time.monotonic() at the end of the last cycle
    cpu_seconds: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""


def load_client(port: int, user: str, mailbox_size: int, cycles: int, start, results) -> None:
    """A client process: wait for the start, run `cycles` cycles, report."""
    outcome = ClientOutcome(timings={name: [] for name in CYCLE_STEPS})
    try:
        expected = [make_message(user, number) for number in range(1, mailbox_size + 1)]
        results.put(("ready", None))
        start.wait()
        cpu_started = time.process_time()
        for _ in range(cycles):
            run_cycle(port, user, expected, outcome.timings)
            outcome.cycles += 1
            outcome.messages += len(expected)
            outcome.octets += sum(map(len, expected))
        outcome.finished = time.monotonic()
        outcome.cpu_seconds = time.process_time() - cpu_started
    except BaseException as error:
        outcome.error = f"{user}: {error}\n{traceback.format_exc(limit=3)}"
    results.put(("done", outcome))


# Runs ---------------------------------------------------------------------------------

@dataclass
class LoadRun:
    cycles: int
    messages: int
    octets: int
    wall: float
    server_cpu: float
    client_cpu: float
    other_cpu: float  # busy CPU of the machine outside the server and the clients
    step_means: dict[str, float]  # seconds per step (per message for RETR)


def run_load(target: Target, users: list[str], args) -> LoadRun:
    jobs = [(target.port, user, args.messages_per_mailbox, args.cycles) for user in users]
    cpu_before, busy_before = target.cpu_seconds(), machine_busy_seconds()
    wall, outcomes = run_processes(target, jobs, load_client)
    server_cpu = target.cpu_seconds() - cpu_before
    busy = machine_busy_seconds() - busy_before
    target.check_alive()
    client_cpu = sum(outcome.cpu_seconds for outcome in outcomes)
    return LoadRun(
        cycles=sum(outcome.cycles for outcome in outcomes),
        messages=sum(outcome.messages for outcome in outcomes),
        octets=sum(outcome.octets for outcome in outcomes),
        wall=wall,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        other_cpu=max(0.0, busy - server_cpu - client_cpu),
        step_means={name: statistics.fmean(t for outcome in outcomes for t in outcome.timings[name])
                    for name in CYCLE_STEPS},
    )


def run_rounds(targets: list[Target], users: list[str], args) -> dict[str, list[LoadRun]]:
    for target in targets:  # warm-up: auth caches, Dovecot's indexes and \Seen flags; not counted
        run_load(target, users, args)
    runs: dict[str, list[LoadRun]] = {target.name: [] for target in targets}
    for round_number in range(args.rounds):
        order = targets if round_number % 2 == 0 else targets[::-1]
        for target in order:
            run = run_load(target, users, args)
            runs[target.name].append(run)
            print(f"round {round_number + 1}/{args.rounds}: {target.name} "
                  f"{run.messages / run.wall:.0f} messages/s ({run.cycles} cycles in {run.wall:.1f} s)",
                  flush=True)
    return runs


# Report -------------------------------------------------------------------------------

def report(args, runs: dict[str, list[LoadRun]]) -> None:
    names = list(runs)
    both = len(names) == 2
    print(f"\nPOP3 load over TLS: {args.clients} clients x {args.cycles} cycles, each cycle "
          f"connect, USER, PASS, STAT, UIDL, {args.messages_per_mailbox} x RETR "
          f"({MESSAGE_SIZE} bytes each), QUIT; {args.rounds} rounds, poplib\n")

    def figure_row(label: str, pick, digits: int) -> list[str]:
        medians = {name: median([pick(run) for run in runs[name]]) for name in names}
        row = [label, *(f"{medians[name]:.{digits}f}" for name in names)]
        if both:
            row.append(ratio(medians["postar"], medians["dovecot"]))
        row += [" ".join(f"{pick(run):.{digits}f}" for run in runs[name]) for name in names]
        return row

    header = ["measure", *(f"{name} median" for name in names)]
    header += (["postar/dovecot"] if both else []) + [f"{name} runs" for name in names]
    print(format_table(header, [
        figure_row("messages/s", lambda run: run.messages / run.wall, 0),
        figure_row("MB/s", lambda run: run.octets / run.wall / 1e6, 1),
        figure_row("cycles/s", lambda run: run.cycles / run.wall, 2),
        figure_row("server CPU ms/cycle", lambda run: 1000 * run.server_cpu / run.cycles, 1),
        figure_row("client CPU ms/cycle", lambda run: 1000 * run.client_cpu / run.cycles, 1),
        figure_row("other busy CPU, %", lambda run: 100 * run.other_cpu / run.wall / CORES, 0),
    ]))
    print("\nMean time per step as a client sees it, ms (median over the runs; "
          "RETR is one message)\n")
    rows = []
    for step in CYCLE_STEPS:
        medians = {name: 1000 * median([run.step_means[step] for run in runs[name]]) for name in names}
        rows.append([step, *(f"{medians[name]:.2f}" for name in names),
                     *([ratio(medians["postar"], medians["dovecot"])] if both else [])])
    print(format_table(["step", *names, *(["postar/dovecot"] if both else [])], rows))


# Main ---------------------------------------------------------------------------------

def main() -> None:
    args = parse_args()
    if os.geteuid() != 0 and args.only != "postar":
        sys.exit("Dovecot needs root (it switches users); run as root or with --only postar")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    users = [user_name(index) for index in range(1, args.clients + 1)]
    connections = 2 * args.clients + 100
    with contextlib.ExitStack() as stack:
        workdir = make_workdir(stack, args.workdir, "postar-pop3-bench-")
        cert, key = make_certificate(workdir / "tls", DOMAIN)
        fillers, targets = [], []  # the same servers: by IMAP to fill, by POP3 to measure
        if args.only != "dovecot":
            imaps, pop3s = free_port(), free_port()
            postar = stack.enter_context(PostarInstance(
                workdir / "postar", free_port(), DOMAIN, users[0], PASSWORD, imaps_port=imaps,
                pop3s_port=pop3s, extra_users=users[1:], tls_cert=cert, tls_key=key,
                connections_per_ip=connections))
            fillers.append(Target("postar", imaps, postar))
            targets.append(Target("postar", pop3s, postar))
        if args.only != "postar":
            imaps, pop3s = free_port(), free_port()
            dovecot = stack.enter_context(DovecotInstance(
                workdir / "dovecot", imaps, users, PASSWORD, cert, key, connections,
                pop3s_port=pop3s, reuse_pop3_processes=args.clients if args.dovecot_reuse else 0))
            fillers.append(Target("dovecot", imaps, dovecot))
            targets.append(Target("dovecot", pop3s, dovecot))
        print("servers (pop3s): " + ", ".join(f"{t.name} on {LOOPBACK}:{t.port}" for t in targets),
              flush=True)

        for filler in fillers:
            rate = fill_all(filler, users, args.messages_per_mailbox, True)
            print(f"{filler.name}: {len(users)} INBOXes filled by IMAP APPEND, {rate:.0f} messages/s "
                  f"({len(users)} clients in parallel)", flush=True)
        runs = run_rounds(targets, users, args)
        report(args, runs)

        for target in targets:
            if isinstance(target.instance, DovecotInstance):
                report_dovecot_warnings(target.instance)


if __name__ == "__main__":
    main()
