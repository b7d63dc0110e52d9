"""COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are raw DEFLATE streams."""

from __future__ import annotations

import socket
import zlib

from tests.conftest import PASSWORD, USERS


class DeflateClient:
    def __init__(self, server):
        raw = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=30)
        self.sock = server.client_tls().wrap_socket(raw, server_hostname="localhost")
        self.inflate = None
        self.deflate = None
        self.pending = b""
        assert self.line().startswith(b"* OK")

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.pending:
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            self.pending += self.inflate.decompress(chunk) if self.inflate else chunk
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line

    def command(self, tag: str, text: str) -> list[bytes]:
        self.send(f"{tag} {text}\r\n".encode())
        lines = []
        while not (line := self.line()).startswith(tag.encode() + b" "):
            lines.append(line)
        return lines + [line]


def test_compress_deflate_then_commands_work_compressed(server):
    client = DeflateClient(server)
    assert client.command("a", f'LOGIN {USERS[0]} "{PASSWORD}"')[-1].startswith(b"a OK")
    assert client.command("b", "COMPRESS DEFLATE")[-1] == b"b OK DEFLATE active"
    client.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    client.inflate = zlib.decompressobj(-15)
    reply = client.command("c", "LIST \"\" \"*\"")
    assert reply[-1] == b"c OK LIST completed"
    assert any(line.endswith(b'"INBOX"') for line in reply)
    assert client.command("d", "COMPRESS DEFLATE")[-1] == b"d NO [COMPRESSIONACTIVE] Compression is already on"
    assert client.command("e", "LOGOUT")[-1] == b"e OK LOGOUT completed"


def test_compress_before_login_is_refused(server):
    client = DeflateClient(server)
    assert client.command("a", "COMPRESS DEFLATE")[-1].startswith(b"a BAD")
    assert client.command("b", "NOOP")[-1] == b"b OK NOOP completed"
