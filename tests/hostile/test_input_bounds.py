"""Input a client may make the server hold (issue 17, items 3, 6 and 9): IMAP literals
before login, a command's literals in total, BDAT chunks over SIZE, log lines."""

from __future__ import annotations

import socket

from tests.conftest import PASSWORD, USERS
from tests.hostile.clients import connect, read_line, status, wait_until

MiB = 1024


def imap_plain(server) -> socket.socket:
    sock = connect(server.ports["imap"])
    assert read_line(sock).startswith(b"* OK")
    return sock


def mail_transaction(server) -> socket.socket:
    """A connection to the MX port with MAIL and RCPT accepted."""
    sock = connect(server.ports["smtp"])
    assert read_line(sock).startswith(b"220 ")
    sock.sendall(f"EHLO client.test\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{USERS[0]}>\r\n".encode())
    while not read_line(sock).startswith(b"250 2.1.5"):
        pass
    return sock


def test_a_huge_literal_before_login_is_refused_before_any_of_it_is_read(start_server):
    private = start_server()
    pid = private.process.pid
    before = status(pid, "VmHWM")
    sock = imap_plain(private)
    sock.sendall(b"a LOGIN {40000000+}\r\n")  # and not one octet of it
    assert read_line(sock) == b"* BYE [TOOBIG] Literal over the limit\r\n"
    assert read_line(sock) == b""
    sync = imap_plain(private)
    sync.sendall(b"a LOGIN {9000}\r\n")
    assert read_line(sync) == b"a BAD Literal of 9000 octets is too large before login\r\n"
    sync.sendall(b"b NOOP\r\n")
    assert read_line(sync).startswith(b"b OK")
    assert status(pid, "VmHWM") - before < 16 * MiB


def test_chained_literals_before_login_are_bounded_together(server):
    sock = imap_plain(server)
    sock.sendall(b"a LOGIN {5000+}\r\n" + b"u" * 5000 + b" {5000+}\r\n")
    assert read_line(sock) == b"* BYE [TOOBIG] Literal over the limit\r\n"
    assert read_line(sock) == b""


def test_small_literals_still_log_in(server):
    sock = imap_plain(server)
    sock.sendall(b"a STARTTLS\r\n")
    assert read_line(sock).startswith(b"a OK")
    tls = server.client_tls().wrap_socket(sock, server_hostname="127.0.0.1")
    user, password = USERS[0].encode(), PASSWORD.encode()
    tls.sendall(b"b LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(user), user, len(password), password))
    assert read_line(tls).startswith(b"b OK")
    tls.close()


def test_the_literals_of_one_command_are_bounded_in_total_after_login(server):
    # The test server's message_size is 1 MiB: two literals of 600 KB cannot both be taken.
    tls = server.client_tls().wrap_socket(connect(server.ports["imaps"]), server_hostname="127.0.0.1")
    assert read_line(tls).startswith(b"* OK")
    tls.sendall(f"l LOGIN {USERS[1]} \"{PASSWORD}\"\r\n".encode())
    while not read_line(tls).startswith(b"l OK"):
        pass
    message = b"Subject: part\r\n\r\n" + b"x" * 600_000 + b"\r\n"
    tls.sendall(b"a APPEND INBOX {%d}\r\n" % len(message))
    assert read_line(tls).startswith(b"+ ")
    tls.sendall(message + b" {%d}\r\n" % len(message))
    assert read_line(tls).startswith(b"a NO [TOOBIG]")
    tls.sendall(b"b NOOP\r\n")
    assert read_line(tls).startswith(b"b OK")
    tls.close()


def test_a_bdat_chunk_over_size_is_refused_at_once_and_closed(server):
    sock = mail_transaction(server)
    sock.sendall(b"BDAT 999999999999999 LAST\r\n")  # none of it follows
    assert read_line(sock) == b"552 5.3.4 Error: message size exceeds fixed limit, closing connection\r\n"
    assert read_line(sock) == b""


def test_chunks_adding_up_to_over_size_are_refused(server):
    sock = mail_transaction(server)
    chunk = b"x" * 700_000
    sock.sendall(b"BDAT %d\r\n" % len(chunk) + chunk)
    assert read_line(sock).startswith(b"250 ")
    sock.sendall(b"BDAT %d LAST\r\n" % len(chunk))
    assert read_line(sock).startswith(b"552 5.3.4")
    assert read_line(sock) == b""


def test_client_values_in_the_log_are_cut_and_escaped(start_server):
    private = start_server()
    before = len(private.log())
    sock = imap_plain(private)
    value = "v" * 60_000
    for n in range(100):
        sock.sendall(f'a{n} ID ("name" "{value}")\r\n'.encode())
        while not read_line(sock).startswith(f"a{n} ".encode()):
            pass
    wait_until(lambda: "client id" in private.log()[before:], "the ID is logged")
    grown = private.log()[before:]
    assert len(grown) < 16 * 1024, len(grown)  # 6 MB of ID values sent
    assert grown.count("client id") == 1 and "...[" in grown and "more]" in grown


def test_control_characters_in_logged_values_come_out_escaped():
    from postar.log import clip
    assert clip("evil\r\n2026-12-06 postar: forged\x1b[31m") == "evil\\r\\n2026-12-06 postar: forged\\x1b[31m"
    assert clip("é" * 300).startswith("é" * 256) and clip("é" * 300).endswith("...[44 more]")


def test_a_command_of_endless_empty_literals_is_bounded(server):
    sock = imap_plain(server)
    sock.sendall(b"a LOGIN " + b"x {0+}\r\n" * 20_000)
    line = read_line(sock)
    while line.startswith(b"+"):
        line = read_line(sock)
    assert line == b"* BYE Command too long\r\n"
