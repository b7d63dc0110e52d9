"""Every session ends (issue 17, item 5): signing in, each command line, each transfer
and each write have a deadline; the tests set them to a few seconds.

No test measures time: each shows that a session in one phase is ended with the
protocol's own reply (and the log says which deadline), and that a session that
keeps to the rules is not."""

from __future__ import annotations

import time

from tests.conftest import PASSWORD, USERS
from tests.hostile.clients import Flood, connect, read_line, wait_until

FAST = "login_timeout = 2\ncommand_timeout = 2\nidle_timeout = 4\nmin_transfer_rate = 1000"


def keep_talking(sock, command: bytes, until: bytes, rounds: int = 200, last: bytes = b"") -> list[bytes]:
    """Send ``command`` every 0.1 s, reading its reply (up to a line ``last``, when given),
    until a reply line starts with ``until``."""
    replies = []
    for _ in range(rounds):
        sock.sendall(command)
        while True:
            line = read_line(sock)
            replies.append(line)
            if line.startswith(until) or not line:
                return replies
            if not last or line == last:
                break
        time.sleep(0.1)
    raise AssertionError(f"never ended: {replies[-3:]}")


def test_imap_before_login_ends_at_the_login_deadline_however_busy(start_server):
    private = start_server(extra_limits=FAST)
    sock = connect(private.ports["imap"])
    assert read_line(sock).startswith(b"* OK")
    replies = keep_talking(sock, b"a NOOP\r\n", b"* BYE")
    assert replies[0].startswith(b"a OK") and replies[-1].startswith(b"* BYE")
    assert read_line(sock) == b""
    wait_until(lambda: "login deadline passed" in private.log(), "the log names the deadline")


def test_pop3_and_submission_before_login_end_at_the_login_deadline(start_server):
    private = start_server(extra_limits=FAST)
    pop = connect(private.ports["pop3"])
    assert read_line(pop).startswith(b"+OK")
    replies = keep_talking(pop, b"CAPA\r\n", b"-ERR", last=b".\r\n")
    assert replies[-1] == b"-ERR Disconnected for inactivity.\r\n"
    smtp = connect(private.ports["submission"])
    assert read_line(smtp).startswith(b"220 ")
    assert keep_talking(smtp, b"NOOP\r\n", b"421")[-1] == b"421 4.4.2 Error: timeout exceeded\r\n"


def test_an_open_imap_sasl_exchange_ends_at_the_login_deadline(start_server):
    private = start_server(extra_limits=FAST)
    tls = private.client_tls().wrap_socket(connect(private.ports["imaps"]), server_hostname="127.0.0.1")
    assert read_line(tls).startswith(b"* OK")
    tls.sendall(b"a AUTHENTICATE PLAIN\r\n")
    assert read_line(tls).startswith(b"+")
    rest = tls.recv(1000)  # nothing more is sent: the server ends it
    while rest and not rest.endswith(b"\r\n"):
        rest += tls.recv(1000)
    assert rest == b"" or b"BYE" in rest or rest.startswith(b"a ")
    wait_until(lambda: "login deadline passed" in private.log(), "the log names the deadline")


def test_signed_in_sessions_and_the_mx_port_have_no_login_deadline(start_server):
    private = start_server(extra_limits=FAST)
    imap = private.imap()
    mx = connect(private.ports["smtp"])
    assert read_line(mx).startswith(b"220 ")
    for _ in range(30):  # 3 s and more: past the login deadline
        assert imap.noop()[0] == "OK"
        mx.sendall(b"NOOP\r\n")
        assert read_line(mx).startswith(b"250 ")
        time.sleep(0.1)
    imap.logout()
    mx.close()
    assert "login deadline passed" not in private.log()


def trickle(sock, reply: bytes) -> bytes:
    """Send a command line an octet at a time, never ending it; what the server answers."""
    sock.settimeout(0.5)
    for octet in b"NOOP" * 100:
        try:
            sock.sendall(bytes([octet]))
            return sock.recv(100)
        except TimeoutError:
            continue
    raise AssertionError("the server never answered")


def test_a_command_line_sent_an_octet_at_a_time_ends_at_the_command_deadline(start_server):
    private = start_server(extra_limits=FAST)
    mx = connect(private.ports["smtp"])  # no login on the MX port: only the command deadline
    assert read_line(mx).startswith(b"220 ")
    assert trickle(mx, b"421") == b"421 4.4.2 Error: timeout exceeded\r\n"
    imap = connect(private.ports["imap"])
    assert read_line(imap).startswith(b"* OK")
    imap.sendall(b"a STARTTLS\r\n")
    assert read_line(imap).startswith(b"a OK")
    imap = private.client_tls().wrap_socket(imap, server_hostname="127.0.0.1")
    imap.sendall(f"l LOGIN {USERS[0]} \"{PASSWORD}\"\r\n".encode())
    assert read_line(imap).startswith(b"l OK")
    assert trickle(imap, b"* BYE").startswith(b"* BYE")
    pop = private.client_tls().wrap_socket(connect(private.ports["pop3s"]), server_hostname="127.0.0.1")
    assert read_line(pop).startswith(b"+OK")
    pop.sendall(f"USER {USERS[1]}\r\nPASS {PASSWORD}\r\n".encode())
    assert read_line(pop).startswith(b"+OK") and read_line(pop).startswith(b"+OK")
    assert trickle(pop, b"-ERR") == b"-ERR Disconnected for inactivity.\r\n"
    wait_until(lambda: private.log().count("command deadline passed") == 3, "the log names the deadline")
    assert "login deadline passed" not in private.log()


def test_data_below_the_minimum_rate_ends_the_session(start_server):
    private = start_server(extra_limits=FAST)
    sock = connect(private.ports["smtp"])
    assert read_line(sock).startswith(b"220 ")
    sock.sendall(f"EHLO client.test\r\nMAIL FROM:<x@remote.test>\r\nRCPT TO:<{USERS[0]}>\r\nDATA\r\n".encode())
    while not read_line(sock).startswith(b"354"):
        pass
    sock.settimeout(0.2)
    answer = b""
    for _ in range(300):  # 50 octets/s, well under 1000
        try:
            sock.sendall(b"Subject: slow\r\n"[:10])
            answer = sock.recv(100)
            break
        except TimeoutError:
            continue
    assert answer == b"421 4.4.2 Error: timeout exceeded\r\n"
    wait_until(lambda: "transfer deadline passed" in private.log(), "the log names the deadline")
    assert private.messages(USERS[0]) == []


def test_a_fast_transfer_is_not_cut(start_server):
    private = start_server(extra_limits=FAST)
    with private.smtp() as client:
        client.sendmail("x@remote.test", [USERS[0]], b"Subject: big\r\n\r\n" + b"y" * 500_000 + b"\r\n")
    assert len(private.messages(USERS[0])) == 1


def test_a_client_that_never_reads_is_closed_at_the_write_deadline(start_server):
    private = start_server(extra_limits=FAST)
    tls = private.client_tls().wrap_socket(connect(private.ports["imaps"]), server_hostname="127.0.0.1")
    assert read_line(tls).startswith(b"* OK")
    tls.sendall(f"l LOGIN {USERS[0]} \"{PASSWORD}\"\r\n".encode())
    assert read_line(tls).startswith(b"l OK") or read_line(tls).startswith(b"l OK")
    flood = Flood(tls, b"a CAPABILITY\r\n", 2_000_000, b"", read=False).start()
    wait_until(lambda: "write deadline passed" in private.log(), "the session is ended")
    flood.close()
    again = private.imap()  # the server goes on
    assert again.noop()[0] == "OK"
    again.logout()
