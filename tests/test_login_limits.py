"""Login limits under a burst, over real sockets (issue 17, item 4).

Attempts are counted as they start, so logins sent all at once cannot pass the
per-address limit (those beyond it wait for the checks before them, so a burst of
right passwords all get in); the per-account limit only slows logins (a doubling wait, as
Dovecot's auth penalty) and never refuses the owner's right password from an
address that has not been failing; argon2id checks run in a bounded pool, so a
burst waits its turn instead of multiplying memory. Other client addresses are
other loopback addresses (127.0.0.2 and up), which Linux routes to 127.0.0.1.
No test measures elapsed time: counts, log lines and their order show the rest.
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
from pathlib import Path

import pytest

from postar.auth.pool import MiB, pool_size
from tests.conftest import PASSWORD, USERS
from tests.imap.wire import Wire, quote

BOB = USERS[1]
ARGON2_MEMORY = 64 * MiB  # argon2-cffi's RFC 9106 low-memory profile, the hashes the tests store


@pytest.fixture
def wires():
    """Opens IMAPS connections from a given loopback address; closes them all afterwards."""
    opened: list[Wire] = []

    def connect(server, source: str = "127.0.0.1") -> Wire:
        sock = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=60,
                                        source_address=(source, 0))
        wire = Wire(server.client_tls().wrap_socket(sock, server_hostname="127.0.0.1"))
        opened.append(wire)
        return wire

    yield connect
    for wire in opened:
        wire.close()


def tagged_reply(wire: Wire, tag: str) -> bytes:
    while not (response := wire.response()).startswith(tag.encode() + b" "):
        pass
    return response[len(tag) + 1:]


def burst(wires, server, count: int, user: str = BOB) -> list[bytes]:
    """``count`` wrong LOGINs (each a different password, so no two share a check) sent
    at once on as many connections from 127.0.0.1; their tagged replies."""
    connections = [wires(server) for _ in range(count)]
    for n, wire in enumerate(connections):
        wire.send(f"b{n} LOGIN {user} {quote(f'wrong {n}')}\r\n")
    return [tagged_reply(wire, f"b{n}") for n, wire in enumerate(connections)]


def proc_status(pid: int) -> dict[str, int]:
    """The VmRSS and VmHWM of a process, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def delays(log: str, user: str = BOB) -> list[float]:
    return [float(d) for d in re.findall(rf"login for {re.escape(user)} delayed ([\d.]+) s", log)]


def test_a_burst_of_wrong_logins_is_checked_only_up_to_the_limit(start_server, wires):
    private = start_server(extra_limits="failed_logins = 10\nfailed_logins_per_account = 5\n"
                                        "account_penalty = 0.01\naccount_penalty_max = 0.05")
    replies = burst(wires, private, 40)
    failed = [r for r in replies if r.startswith(b"NO [AUTHENTICATIONFAILED]")]
    refused = [r for r in replies if r.startswith(b"NO [UNAVAILABLE]")]
    # the first ten to start hold the address's ten attempts; the other thirty are refused unchecked
    assert (len(failed), len(refused)) == (10, 30), replies
    log = private.log()
    assert log.count(f"login failed for {BOB}, client=127.0.0.1") == 10
    assert log.count(f"login refused for {BOB}, client=127.0.0.1: too many failed logins from 127.0.0.1") == 30
    # bob's account is past its limit of five: its logins wait, but bob gets in from elsewhere
    owner = wires(private, "127.0.0.2")
    owner.expect("OK", f"LOGIN {BOB} {quote(PASSWORD)}")
    with smtplib.SMTP_SSL("127.0.0.1", private.ports["submissions"], local_hostname="client.test",
                          context=private.client_tls(), timeout=60, source_address=("127.0.0.3", 0)) as smtp:
        smtp.login(BOB, PASSWORD)
    # a stranger's wrong password from a new address is a plain failure, not a lock-out
    wires(private, "127.0.0.4").expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {BOB} wrong")
    # the failing address stays refused, even with the right password, for any account
    blocked = wires(private)
    blocked.expect("NO [UNAVAILABLE]", f"LOGIN {BOB} {quote(PASSWORD)}")
    blocked.expect("NO [UNAVAILABLE]", f"LOGIN {USERS[0]} {quote(PASSWORD)}")


def test_the_account_delay_doubles_with_failures_and_never_refuses(start_server, wires):
    private = start_server(extra_limits="failed_logins_per_account = 2\n"
                                        "account_penalty = 0.05\naccount_penalty_max = 0.3")
    for n in range(6):  # one wrong password from each of six addresses: no address is over its limit
        wire = wires(private, f"127.0.0.{10 + n}")
        wire.expect("NO [AUTHENTICATIONFAILED]", f"LOGIN {BOB} {quote(f'wrong {n}')}")
    # two failures free, then 0.05 s doubling for each further one, up to 0.3 s
    assert delays(private.log()) == [0.05, 0.1, 0.2, 0.3]
    owner = wires(private, "127.0.0.50")
    owner.expect("OK", f"LOGIN {BOB} {quote(PASSWORD)}")
    log = private.log()
    assert delays(log) == [0.05, 0.1, 0.2, 0.3, 0.3]
    # the wait came before the check and the login after it
    assert log.index("delayed 0.30 s, client=127.0.0.50") < log.index(f"login {BOB}, client=127.0.0.50")
    # a password verified a moment ago is a cache hit: no check, so no wait
    wires(private, "127.0.0.51").expect("OK", f"LOGIN {BOB} {quote(PASSWORD)}")
    assert delays(private.log()) == [0.05, 0.1, 0.2, 0.3, 0.3]
    # another account is not slowed by bob's failures
    wires(private, "127.0.0.52").expect("OK", f"LOGIN {USERS[0]} {quote(PASSWORD)}")
    assert delays(private.log(), USERS[0]) == []


@pytest.mark.parametrize("workers", [1, 0], ids=["one-worker", "automatic"])
def test_a_burst_of_checks_queues_in_the_pool_and_memory_stays_bounded(start_server, wires, workers):
    private = start_server(extra_limits=f"password_workers = {workers}\nfailed_logins = 100\n"
                                        "failed_logins_per_account = 1000")
    size = int(re.search(r"password checks: (\d+) at a time", private.log()).group(1))
    if workers:
        assert size == workers
    else:
        assert 1 <= size <= len(os.sched_getaffinity(0))
    pid = private.process.pid
    try:  # "5" resets the peak to the current RSS (proc(5), clear_refs), so startup's own hash is not counted
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass
    before = proc_status(pid)["VmRSS"]
    replies = burst(wires, private, 40)
    assert all(r.startswith(b"NO [AUTHENTICATIONFAILED]") for r in replies), replies  # all 40 were checked
    grown = proc_status(pid)["VmHWM"] - before
    # one argon2id memory cost per worker, and a margin for 40 TLS sessions; the unbounded
    # default executor would have held six at once on two cores (+384 MiB, issue 17)
    assert grown < size * ARGON2_MEMORY + 40 * MiB, f"peak grew {grown // MiB} MiB with {size} workers"


@pytest.mark.parametrize("configured, cores, available, expected", [
    (0, 2, 23 * 1024 * MiB, 2),   # plenty of memory: one per core
    (0, 8, 300 * MiB, 2),         # memory-bound: 300 MiB holds two checks at twice their cost
    (0, 4, 50 * MiB, 1),          # never fewer than one
    (0, 4, None, 4),              # memory unknown: one per core
    (3, 2, 50 * MiB, 3),          # configured wins
])
def test_pool_size(configured, cores, available, expected):
    assert pool_size(configured, cores, available, ARGON2_MEMORY) == expected


def test_a_burst_of_right_logins_from_one_address_all_get_in(start_server, wires):
    """Twenty people behind one address, all logging in at once (failed_logins is 10):
    the attempts beyond the limit wait for the checks before them, none is refused."""
    private = start_server(extra_limits="auth_cache_ttl = 0")
    users = [f"user{n}@example.test" for n in range(20)]
    for user in users:
        private.cli("user", "add", user, "--password-stdin", input=PASSWORD + "\n")
    connections = [wires(private) for _ in users]
    for n, (wire, user) in enumerate(zip(connections, users)):
        wire.send(f"r{n} LOGIN {user} {quote(PASSWORD)}\r\n")
    replies = [tagged_reply(wire, f"r{n}") for n, wire in enumerate(connections)]
    assert all(reply.startswith(b"OK") for reply in replies), replies
    assert "login refused" not in private.log()
