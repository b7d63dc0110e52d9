"""An HTTPS server for MTA-STS policies (RFC 8461 §3.3), shared by the delivery tests.

One server stands for the ``mta-sts.<domain>`` hosts of many domains: it answers
``GET /.well-known/mta-sts.txt`` by the Host header from ``sites`` (status, headers,
body; 404 for a host it does not know), counts the requests per host in
``requests``, and presents one certificate from the test CA for the ``names`` given
(leave a host out of them to have its certificate not valid for it)::

    server = PolicyServer("127.0.0.1", ca, ["mta-sts.sts1.test"],
                          {"mta-sts.sts1.test": (200, {}, policy("enforce", "mx.sts1.test"))})
    server.start()          # postar's [delivery] mta_sts_port = server.port
    server.stop()
"""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import trustme

Site = tuple[int, dict[str, str], bytes]


def policy(mode: str, *mx: str, max_age: int = 86400) -> bytes:
    """A policy file (RFC 8461 §3.2), CRLF line ends."""
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


class PolicyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PolicyServer

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        self.server.requests[host] += 1
        status, headers, body = self.server.sites.get(host, (404, {}, b"no policy here\n"))
        if self.path != "/.well-known/mta-sts.txt":
            status, headers, body = 404, {}, b"not found\n"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        chunked = headers.get("Transfer-Encoding") == "chunked"
        if not chunked:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if chunked:
            for start in range(0, len(body), 10):
                piece = body[start:start + 10]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class PolicyServer(ThreadingHTTPServer):
    """HTTPS on ``address``, a free port; ``start()`` serves from a thread, ``stop()`` ends it."""

    daemon_threads = True

    def __init__(self, address: str, ca: trustme.CA, names: list[str], sites: dict[str, Site] | None = None):
        super().__init__((address, 0), PolicyHandler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(*names).configure_cert(context)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.sites: dict[str, Site] = dict(sites or {})
        self.requests: Counter[str] = Counter()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
