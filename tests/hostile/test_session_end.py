"""Every session ends and gives back what it holds, however its peer goes away
(issue 17, item 8): the connection counts, POP3's maildrop lock, its task."""

from __future__ import annotations

import poplib
import smtplib
import time

from tests.conftest import PASSWORD, USERS
from tests.hostile.clients import Flood, connect, read_line, wait_until


def blocked_then_gone(private) -> None:
    """One client per protocol that floods without reading until the server stops
    serving it, then vanishes with a reset."""
    floods = []
    smtp = connect(private.ports["smtp"])
    assert read_line(smtp).startswith(b"220 ")
    floods.append(Flood(smtp, b"NOOP\r\n", 3_000_000, b"", read=False))
    imap = private.client_tls().wrap_socket(connect(private.ports["imaps"]), server_hostname="127.0.0.1")
    assert read_line(imap).startswith(b"* OK")
    imap.sendall(f"l LOGIN {USERS[0]} \"{PASSWORD}\"\r\n".encode())
    assert read_line(imap).startswith(b"l OK")
    floods.append(Flood(imap, b"a CAPABILITY\r\n", 1_500_000, b"", read=False))
    pop = private.client_tls().wrap_socket(connect(private.ports["pop3s"]), server_hostname="127.0.0.1")
    assert read_line(pop).startswith(b"+OK")
    pop.sendall(f"USER {USERS[1]}\r\nPASS {PASSWORD}\r\n".encode())
    assert read_line(pop).startswith(b"+OK") and read_line(pop).startswith(b"+OK")
    floods.append(Flood(pop, b"CAPA\r\n", 3_000_000, b"", read=False))
    for flood in floods:
        flood.start()
    for flood in floods:  # each stalls: the server stopped reading it
        last = -1
        while flood.sent != last:
            last = flood.sent
            wait_until(lambda: flood.sent > 0, "the flood starts")
            probe = smtplib.SMTP("127.0.0.1", private.ports["smtp"], source_address=("127.0.0.2", 0))
            assert probe.noop()[0] == 250
            probe.quit()
        assert not flood.done.is_set()
    for flood in floods:
        flood.close()


def test_clients_that_stop_reading_and_vanish_give_everything_back(start_server):
    private = start_server(extra_limits="connections_per_ip = 4")
    blocked_then_gone(private)

    def pop3_login_works() -> bool:
        try:
            client = private.pop3(USERS[1])
        except poplib.error_proto:
            return False  # [IN-USE] until the vanished session has ended
        client.quit()
        return True
    wait_until(pop3_login_works, "the maildrop lock is released")

    def all_places_free() -> bool:  # the four connections' places come back as each is noticed gone
        held = [connect(private.ports["smtp"]) for _ in range(4)]
        greeted = all(read_line(sock).startswith(b"220 ") for sock in held)
        for sock in held:
            sock.close()
        if not greeted:
            time.sleep(0.2)  # the refused and the probes' own places are given back too
        return greeted
    wait_until(all_places_free, "every connection's place is given back")
    assert private.stop() == 0
    log = private.log()
    assert "Task was destroyed" not in log and "Traceback" not in log, log[-3000:]
