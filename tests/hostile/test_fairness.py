"""Every session gets its turn (issue 17, item 1): while one client floods, another
client's round trips go on; the flooding client is read no faster than it is served.

Order, not time, is asserted: the other client's commands are all answered before
the flooding client has seen a tenth of its replies. Memory is the server's own
VmHWM from /proc."""

from __future__ import annotations

import ssl
import threading
import zlib

from tests.conftest import PASSWORD, USERS
from tests.hostile.clients import Flood, connect, read_line, status, wait_until

COUNT = 750_000  # 6 MB of NOOPs, as in the issue
MiB = 1024


def other_client_round_trips(server, count: int = 20) -> None:
    other = server.smtp()
    for _ in range(count):
        assert other.noop()[0] == 250
    other.quit()


def test_a_noop_flood_on_imap_does_not_hold_up_smtp(server):
    flooder = connect(server.ports["imap"])
    assert read_line(flooder).startswith(b"* OK")
    flood = Flood(flooder, b"a NOOP\r\n", COUNT, b"a OK").start()
    wait_until(lambda: flood.replies > 0, "the flood is answered")
    other_client_round_trips(server)
    seen = flood.replies
    flood.close()
    assert seen < COUNT / 10


def test_a_noop_flood_on_smtp_does_not_hold_up_imap(server):
    flooder = connect(server.ports["smtp"])
    assert read_line(flooder).startswith(b"220 ")
    flood = Flood(flooder, b"NOOP\r\n", COUNT, b"250 ").start()
    wait_until(lambda: flood.replies > 0, "the flood is answered")
    other = server.imap()
    for _ in range(20):
        assert other.noop()[0] == "OK"
    seen = flood.replies
    other.logout()
    flood.close()
    assert seen < COUNT / 10


def test_a_flood_that_never_reads_is_not_buffered_for(start_server):
    private = start_server()
    pid = private.process.pid
    before = status(pid, "VmHWM")
    count = 2_000_000  # 16 MB: more than the kernel's socket buffers on both sides hold
    flooder = connect(private.ports["imap"])
    assert read_line(flooder).startswith(b"* OK")
    flood = Flood(flooder, b"a NOOP\r\n", count, b"a OK", read=False).start()
    wait_until(lambda: flood.sent > 0, "the flood starts")
    # The server stops reading once its replies are not taken: the sender stalls, and
    # stays stalled while other clients are served.
    last = -1
    while flood.sent != last:
        last = flood.sent
        other_client_round_trips(private)
    assert not flood.done.is_set() and flood.sent < count * 8 / 2, flood.sent
    assert status(pid, "VmHWM") - before < 16 * MiB
    flood.close()


class _DeflateReader(threading.Thread):
    def __init__(self, sock: ssl.SSLSocket):
        super().__init__(daemon=True)
        self.sock, self.replies = sock, 0
        self._inflate = zlib.decompressobj(-15)

    def run(self) -> None:
        pending = b""
        try:
            while data := self.sock.recv(65536):
                pending += self._inflate.decompress(data)
                lines = pending.split(b"\r\n")
                pending = lines.pop()
                self.replies += sum(1 for line in lines if line.startswith(b"a OK"))
        except (OSError, zlib.error):
            return


def test_a_compressed_flood_is_inflated_no_faster_than_served(start_server):
    private = start_server()
    pid = private.process.pid
    count = 2_000_000  # 15 MiB of NOOPs deflate to about 20 KB
    sock = private.client_tls().wrap_socket(connect(private.ports["imaps"]), server_hostname="127.0.0.1")
    assert read_line(sock).startswith(b"* OK")
    sock.sendall(f"l LOGIN {USERS[0]} \"{PASSWORD}\"\r\n".encode())
    while not read_line(sock).startswith(b"l OK"):
        pass
    sock.sendall(b"z COMPRESS DEFLATE\r\n")
    assert read_line(sock).startswith(b"z OK")
    before = status(pid, "VmHWM")
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = deflate.compress(b"a NOOP\r\n" * count) + deflate.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 64 * 1024
    reader = _DeflateReader(sock)
    reader.start()
    sock.sendall(bomb)
    wait_until(lambda: reader.replies > 0, "the compressed flood is answered")
    other_client_round_trips(private)
    seen = reader.replies
    sock.close()
    assert seen < count / 10
    assert status(pid, "VmHWM") - before < 64 * MiB
