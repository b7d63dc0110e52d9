"""BINARY of a quoted-printable part: padding after a soft break's "=" and before a line end (issue 10, item 6).

RFC 2045 §6.7 rule 3: white space at the end of an encoded line is transport
padding and goes, so "=" SP TAB CRLF is a soft line break and "spaces   " CRLF
is "spaces" CRLF. postar used binascii.a2b_qp, which keeps both: BINARY.SIZE[1]
was 93 here, not 83, and every partial after the first padded line was off.

The message (APPENDed to both), part 1 quoted-printable, part 2 7bit::

    Caf=C3=A9 soft break with padding=  <TAB><CRLF>
    continues here, trailing spaces   <CRLF>
    hard line=<CRLF>
     ends=3D<TAB><CRLF>
    last

Dovecot 2.3.19, timings cut::

    FETCH 1 (BINARY.SIZE[1])       * 1 FETCH (BINARY.SIZE[1] 83)
    FETCH 1 (BINARY.PEEK[1])       * 1 FETCH (BINARY[1] ~{83}
                                   Café soft break with paddingcontinues here, trailing spaces<CRLF>
                                   hard line ends=<CRLF>last)
    FETCH 1 (BINARY.PEEK[1]<0.10>)   * 1 FETCH (BINARY[1]<0> ~{10} Café soft)
    FETCH 1 (BINARY.PEEK[1]<30.20>)  * 1 FETCH (BINARY[1]<30> ~{20} ontinues here, trail)
    FETCH 1 (BINARY.PEEK[1]<60.30>)  * 1 FETCH (BINARY[1]<60> ~{23} <CRLF>hard line ends=<CRLF>last)
    FETCH 1 (BINARY.PEEK[1]<83.5>)   * 1 FETCH (BINARY[1]<83> ~{0})
    FETCH 1 (BODY.PEEK[1])         the 102 octets as stored
    SEARCH BODY "paddingcontinues"   * SEARCH 1
    SEARCH BODY "spaces hard"        * SEARCH
    SEARCH BODY "ends="              * SEARCH 1

postar sends the same octets; as a literal, not a literal8, since there is no
NUL (RFC 3516 §4.3 allows either). Dovecot answers NO [PARSE] for an "=" that
starts no escape and ends the session ("Invalid quoted-printable input
trailer") for a body ending in "=", padded or not; postar keeps such an "="
as text and takes a last "=" as a soft break (tests/imap/test_fetch_rendering.py).
"""

from __future__ import annotations

import pytest

from tests.imap.wire import Wire, append, new_user, examined

QP = (b"Caf=C3=A9 soft break with padding=  \t\r\n"
      b"continues here, trailing spaces   \r\n"
      b"hard line=\r\n"
      b" ends=3D\t\r\n"
      b"last")
DECODED = "Café soft break with paddingcontinues here, trailing spaces\r\nhard line ends=\r\nlast".encode()
MESSAGE = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: qp test\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
           + QP + b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--XX--\r\n")


@pytest.fixture(scope="module")
def user(server) -> str:
    user = new_user(server)
    wire = Wire.login(server, user)
    append(wire, "INBOX", MESSAGE)
    wire.close()
    return user


@pytest.fixture
def wire(server, user):
    return examined(server, user)


def test_binary_size_and_binary_of_a_padded_quoted_printable_part(wire):
    assert len(DECODED) == 83
    assert wire.expect("OK", "FETCH 1 (BINARY.SIZE[1])") == [b"* 1 FETCH (BINARY.SIZE[1] 83)"]
    assert wire.expect("OK", "FETCH 1 (BINARY.PEEK[1])") == [b"* 1 FETCH (BINARY[1] {83}\r\n" + DECODED + b")"]
    assert wire.expect("OK", "FETCH 1 (BODY.PEEK[1])") == [b"* 1 FETCH (BODY[1] {102}\r\n" + QP + b")"]


@pytest.mark.parametrize("origin, length, octets", [
    (0, 10, "Café soft".encode()),
    (30, 20, b"ontinues here, trail"),
    (60, 30, b"\r\nhard line ends=\r\nlast"),  # 23 left from 60
    (83, 5, b""),
])
def test_partial_binary_counts_decoded_octets(wire, origin, length, octets):
    assert octets == DECODED[origin:origin + length]
    [response] = wire.expect("OK", f"FETCH 1 (BINARY.PEEK[1]<{origin}.{length}>)")
    assert response == f"* 1 FETCH (BINARY[1]<{origin}> {{{len(octets)}}}\r\n".encode() + octets + b")"


def test_search_body_reads_the_decoded_text(wire):
    assert wire.expect("OK", 'SEARCH BODY "paddingcontinues"') == [b"* SEARCH 1"]
    assert wire.expect("OK", 'SEARCH BODY "spaces hard"') == [b"* SEARCH"]
    assert wire.expect("OK", 'SEARCH BODY "ends="') == [b"* SEARCH 1"]
