"""Connections are counted when accepted, before TLS, per address and in total
(issue 17, item 2); over a limit the protocol's busy reply, and accept goes on."""

from __future__ import annotations

import re
from pathlib import Path

from tests.hostile.clients import connect, read_line, wait_until


def greeting(port: int, source: str = "127.0.0.1") -> bytes:
    with connect(port, source) as sock:
        return read_line(sock)


def tls_greeting(server, name: str, source: str = "127.0.0.1") -> bytes:
    with server.client_tls().wrap_socket(connect(server.ports[name], source), server_hostname="127.0.0.1") as tls:
        return read_line(tls)


def test_half_open_tls_connections_count_against_their_address(start_server):
    private = start_server(extra_limits="connections_per_ip = 5")
    held = [connect(private.ports["imaps"]) for _ in range(5)]
    # No TLS handshake on any of them, yet the sixth connection from 127.0.0.1 is refused.
    # One listener accepts in order, so the sixth is counted after the five.
    assert tls_greeting(private, "imaps") == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert greeting(private.ports["smtp"]) == b"421 4.7.0 Error: too many connections from your address\r\n"
    assert greeting(private.ports["imap"]).startswith(b"* BYE [UNAVAILABLE] Too many connections")
    assert greeting(private.ports["smtp"], "127.0.0.2").startswith(b"220 ")  # other addresses go on
    for sock in held:
        sock.close()
    wait_until(lambda: greeting(private.ports["smtp"]).startswith(b"220 "), "the count goes down")


def test_a_refused_tls_client_is_told_over_tls(start_server):
    private = start_server(extra_limits="connections_per_ip = 1")
    held = connect(private.ports["smtp"])
    assert read_line(held).startswith(b"220 ")
    assert tls_greeting(private, "imaps") == b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
    assert tls_greeting(private, "submissions") == b"421 4.7.0 Error: too many connections from your address\r\n"
    held.close()


def test_the_total_limit_gives_each_protocol_its_busy_reply(start_server):
    private = start_server(extra_limits="max_connections = 4")
    held = [connect(private.ports["pop3s"], f"127.0.0.{n}") for n in range(2, 6)]
    assert tls_greeting(private, "pop3s", "127.0.0.9") == b"-ERR [SYS/TEMP] Server busy, try again later.\r\n"
    assert greeting(private.ports["smtp"], "127.0.0.9") == b"421 4.7.0 Error: server busy, try again later\r\n"
    assert greeting(private.ports["imap"], "127.0.0.9") == b"* BYE [UNAVAILABLE] Server busy, try again later\r\n"
    assert greeting(private.ports["pop3"], "127.0.0.9") == b"-ERR [SYS/TEMP] Server busy, try again later.\r\n"
    assert "server busy (4 connections) on smtp, client=127.0.0.9 refused" in private.log()
    for sock in held:
        sock.close()
    wait_until(lambda: greeting(private.ports["smtp"], "127.0.0.9").startswith(b"220 "), "room again")


def test_the_open_file_limit_is_raised_and_the_total_derived_from_it(start_server):
    private = start_server()
    limits = Path(f"/proc/{private.process.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\S+)\s+(\S+)", limits).groups()
    assert soft == hard
    expected = int(soft) - 256 if soft != "unlimited" else (1 << 20) - 256
    assert f"at most {expected} client connections at once, 50 from one address" in private.log()


def test_a_handshake_that_never_comes_gives_its_place_back(start_server):
    private = start_server(extra_limits="connections_per_ip = 2")
    junk = connect(private.ports["imaps"])
    junk.sendall(b"this is not TLS\r\n")
    wait_until(lambda: junk.recv(100) == b"", "the server drops a bad handshake")
    junk.close()
    first = connect(private.ports["smtp"])
    assert read_line(first).startswith(b"220 ")
    wait_until(lambda: greeting(private.ports["smtp"]).startswith(b"220 "), "both places are free")
    first.close()
