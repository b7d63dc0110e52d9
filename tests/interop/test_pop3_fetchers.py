"""Interoperability with real POP3 fetchers: Debian's fetchmail and getmail6, each
downloading a private server's INBOX over real sockets into local files.

Both verify the server certificate against the test CA. Each scenario delivers
mail over SMTP, runs the fetcher, and checks that every message arrived exactly
once with the bytes the store holds; a second run with nothing new must fetch
nothing, and a run after one more delivery must fetch only that one.

Neither fetcher hands over the message untouched, so each comparison first takes
off exactly what the fetcher added, and nothing else:

- fetchmail writes one Received field of its own (three lines, "... with POP3
  (fetchmail-VERSION)") just before the message's first Received field
  (transact() in fetchmail's transact.c). With ``no stripcr`` it passes CRLF line
  ends through to the MDA, and ``no rewrite`` leaves addresses alone, so the rest
  is byte for byte what the store holds.
- getmail re-writes the message with Python's email package in native (LF) line
  ends, removes its Return-Path and puts a Return-Path, a "Delivered-To: unknown"
  and a Received field ("... getmail6 msgid:UIDL; DATE") on top
  (Message.flatten() in getmailcore/message.py). Contents are compared with line
  ends normalised; everything else must be byte for byte.
"""

from __future__ import annotations

import configparser
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import HOSTNAME, PASSWORD, USERS, message

ALICE = USERS[0]
SENDER = "bob@remote.test"
RUN_TIMEOUT = 120

# fetchmail exit codes (fetchmail(1), EXIT CODES)
FETCHED = 0
NO_MAIL = 1
AUTH_FAILED = 3


# --- helpers shared by both clients -------------------------------------------------------------

def unique() -> str:
    return uuid.uuid4().hex[:12]


def subject_of(content: bytes) -> str | None:
    found = re.search(rb"^Subject: (.*?)\r?$", content, re.MULTILINE)
    return found.group(1).decode() if found else None


def deliver(private, mails: dict[str, bytes], smtputf8: bool = False) -> None:
    """Send each message (by its subject) to alice over SMTP; return once the store has them all."""
    options = ["BODY=8BITMIME", "SMTPUTF8"] if smtputf8 else ["BODY=8BITMIME"]
    with private.smtp() as client:
        for content in mails.values():
            client.sendmail(SENDER, [ALICE], content, mail_options=options)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if set(mails) <= set(stored_by_subject(private)):
            return
        time.sleep(0.1)
    raise AssertionError(f"messages were not delivered: {private.log()[-4000:]}")


def simple_mails(count: int, what: str) -> dict[str, bytes]:
    subjects = [f"{what} {n} {unique()}" for n in range(count)]
    return {s: message(s, body=f"Body of {s}.\r\n", sender=SENDER) for s in subjects}


def stored_by_subject(private, mailbox: str = "INBOX") -> dict[str, object]:
    """The store's messages in alice's ``mailbox`` by subject."""
    return {subject_of(m.content): m for m in private.messages(ALICE, mailbox)}


def by_subject(contents: list[bytes]) -> dict[str, bytes]:
    """Local copies by subject; a subject found twice means a message arrived twice."""
    found: dict[str, bytes] = {}
    for content in contents:
        subject = subject_of(content)
        assert subject not in found, f"{subject!r} arrived twice"
        found[subject] = content
    return found


def header_fields(content: bytes, eol: bytes) -> tuple[list[bytes], bytes]:
    """The header fields of ``content``, each with its continuation lines and line ends, and the
    rest from the blank line on (RFC 5322 §2.2.3 folding)."""
    end = content.index(eol + eol) + len(eol)
    fields: list[bytes] = []
    for line in content[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            fields[-1] += line
        else:
            fields.append(line)
    return fields, content[end:]


def run(args: list[str], what: str, logs: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a fetcher once; its whole output is also kept in ``logs``/<what>-<n>.log."""
    logs.mkdir(exist_ok=True)
    log = logs / f"{what}-{len(list(logs.iterdir())) + 1}.log"
    try:
        result = subprocess.run(args, check=False, capture_output=True, text=True, errors="replace",
                                timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL, env={**os.environ, **env})
    except subprocess.TimeoutExpired as e:
        log.write_text(f"timed out\n{e.stdout}\n{e.stderr}")
        raise AssertionError(f"{what} timed out:\n{e.stdout}\n{e.stderr}") from None
    log.write_text(f"$ {shlex.join(args)}\nexit {result.returncode}\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return result


def output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def report(result: subprocess.CompletedProcess, private, limit: int = 20000) -> str:
    return (f"exit {result.returncode}\n--- client output (tail) ---\n{output(result)[-limit:]}"
            f"\n--- server log (tail) ---\n{private.log()[-limit:]}")


def write_ca(private, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    private.ca.cert_pem.write_to_path(str(path))
    return path


def current_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


# --- fetchmail -----------------------------------------------------------------------------------

fetchmail_installed = pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail is not installed")


# The MDA fetchmail runs once per message: stdin into the next numbered file of a directory.
# fetchmail delivers one message at a time, so counting the files gives the next number.
MDA_SCRIPT = """\
import os, sys
directory = sys.argv[1]
with open(os.path.join(directory, "%06d.eml" % (len(os.listdir(directory)) + 1)), "xb") as f:
    f.write(sys.stdin.buffer.read())
"""


def use_certificate_with_common_name(private) -> None:
    """Restart ``private`` with a certificate from the same test CA that also has a subject CN.

    fetchmail (6.4.37) with sslcertck refuses any certificate without a subject commonName
    ("Server name not specified in certificate!") before it looks at the subjectAltNames;
    trustme's certificates have none. The certificate is still verified against the test CA.
    """
    cert = private.ca.issue_cert(HOSTNAME, "localhost", "127.0.0.1", common_name=HOSTNAME)
    private.stop()
    cert.private_key_pem.write_to_path(str(private.root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(private.root / "cert.pem"))
    private.start()


def fetchmail_server(start_server):
    private = start_server()
    use_certificate_with_common_name(private)
    return private


def implicit_tls(private, ca: Path) -> tuple[str, str]:
    """(server options, user options) for pop3s: TLS from the first byte, certificate checked."""
    # "via 127.0.0.1" connects there; sslcommonname is the name the certificate must carry
    # (without it fetchmail checks against the "via" address)
    return (f"with proto POP3 port {private.ports['pop3s']} uidl",
            f'ssl sslcertck sslcertfile "{ca}" sslcommonname "{HOSTNAME}"')


def stls(private, ca: Path) -> tuple[str, str]:
    """(server options, user options) for pop3 with STLS required, TLS 1.2 or newer."""
    return (f"with proto POP3 port {private.ports['pop3']} uidl",
            f'sslproto "tls1.2+" sslcertck sslcertfile "{ca}" sslcommonname "{HOSTNAME}"')


class Fetchmail:
    """One fetchmail setup in ``home``: rcfile, id file, pid file, and its MDA's directory."""

    def __init__(self, home: Path, private, server_options: str, user_options: str) -> None:
        self.home = home
        self.private = private
        self.mail = home / "delivered"
        self.mail.mkdir(parents=True)
        mda = home / "mda.py"
        mda.write_text(MDA_SCRIPT)
        self.rcfile = home / "fetchmailrc"
        # no bouncemail: a failed delivery must not make fetchmail send mail anywhere
        self.rcfile.write_text(f"""\
set no bouncemail
poll {HOSTNAME} via 127.0.0.1 {server_options}
  user "{ALICE}" there with password "{PASSWORD}"
  options {user_options} no rewrite no stripcr
  mda "{shlex.join([sys.executable, str(mda), str(self.mail)])}"
""")
        self.rcfile.chmod(0o600)  # fetchmail refuses an rcfile others can read (exit 6)

    def run(self) -> subprocess.CompletedProcess:
        # -v: the POP3 exchange, shown if anything fails; no daemon set, so one poll and exit
        args = ["fetchmail", "--nodetach", "--nosyslog", "-v", "-f", str(self.rcfile),
                "--idfile", str(self.home / "fetchids"), "--pidfile", str(self.home / "fetchmail.pid")]
        # FETCHMAILUSER: run as root, fetchmail runs the MDA as this user; LC_ALL: untranslated output
        env = {"HOME": str(self.home), "FETCHMAILHOME": str(self.home), "FETCHMAILUSER": current_user(),
               "LC_ALL": "C"}
        result = run(args, "fetchmail", self.home / "logs", env)
        # fetchmail compares each message with its LIST size
        assert "not the expected length" not in output(result), report(result, self.private)
        return result

    def delivered(self) -> list[bytes]:
        """Every message the MDA wrote so far, in delivery order."""
        return [path.read_bytes() for path in sorted(self.mail.iterdir())]

    def fetch(self) -> dict[str, bytes]:
        """Run once, expecting new mail; the messages this run delivered, by subject."""
        before = len(self.delivered())
        result = self.run()
        assert result.returncode == FETCHED, report(result, self.private)
        return by_subject(self.delivered()[before:])

    def fetch_nothing(self) -> None:
        before = self.delivered()
        result = self.run()
        assert result.returncode == NO_MAIL, report(result, self.private)
        assert self.delivered() == before


def without_fetchmail_received(delivered: bytes) -> bytes:
    """fetchmail's copy less the one Received field fetchmail wrote into it."""
    fields, rest = header_fields(delivered, b"\r\n")
    ours = [n for n, field in enumerate(fields) if field.startswith(b"Received: ") and b"(fetchmail-" in field]
    assert len(ours) == 1, delivered
    n = ours[0]
    # transact.c puts it just before the first Received field the message brought
    assert fields[n + 1].startswith(b"Received: ") and not any(f.startswith(b"Received:") for f in fields[:n]), \
        delivered
    return b"".join(fields[:n] + fields[n + 1:]) + rest


def assert_fetchmail_copies(private, copies: dict[str, bytes], subjects) -> None:
    """Exactly ``subjects`` arrived, each byte for byte as stored but for fetchmail's Received field."""
    stored = stored_by_subject(private)
    assert set(copies) == set(subjects), sorted(copies)
    for subject in subjects:
        assert without_fetchmail_received(copies[subject]) == stored[subject].content, subject


def check_fetch_new_only(private, fetchmail: Fetchmail) -> None:
    """Fetch all, then nothing, then only a newly delivered message, keeping mail on the server."""
    first = simple_mails(3, "fetch")
    deliver(private, first)
    assert_fetchmail_copies(private, fetchmail.fetch(), first)

    # the id file remembers the UIDLs: nothing is new, nothing is delivered
    fetchmail.fetch_nothing()

    later = simple_mails(1, "later")
    deliver(private, later)
    assert_fetchmail_copies(private, fetchmail.fetch(), later)
    # keep: the server still has everything, and nothing fetched since
    assert set(stored_by_subject(private)) == set(first) | set(later)
    fetchmail.fetch_nothing()
    assert "Traceback" not in private.log(), private.log()


@fetchmail_installed
def test_fetchmail_pop3s_keep_uidl(start_server, tmp_path):
    private = fetchmail_server(start_server)
    server_options, tls_options = implicit_tls(private, write_ca(private, tmp_path))
    fetchmail = Fetchmail(tmp_path / "fetchmail", private, server_options, f"{tls_options} keep")
    check_fetch_new_only(private, fetchmail)


@fetchmail_installed
def test_fetchmail_stls_keep_uidl(start_server, tmp_path):
    private = fetchmail_server(start_server)
    server_options, tls_options = stls(private, write_ca(private, tmp_path))
    fetchmail = Fetchmail(tmp_path / "fetchmail", private, server_options, f"{tls_options} keep")
    check_fetch_new_only(private, fetchmail)
    log = (tmp_path / "fetchmail" / "logs" / "fetchmail-1.log").read_text()
    assert "POP3> STLS" in log and "upgrade to TLS succeeded" in log, log


@fetchmail_installed
def test_fetchmail_without_tls_cannot_log_in(start_server, tmp_path):
    private = start_server()
    mails = simple_mails(2, "plaintext")
    deliver(private, mails)
    before = private.messages(ALICE)
    # sslproto '': no STLS; no sslcertck, which would otherwise make fetchmail insist on TLS
    fetchmail = Fetchmail(tmp_path / "fetchmail", private, f"with proto POP3 port {private.ports['pop3']} uidl",
                          'sslproto "" no sslcertck keep')
    result = fetchmail.run()
    assert result.returncode == AUTH_FAILED, report(result, private)
    text = output(result)
    assert "Plaintext authentication disallowed" in text, report(result, private)
    # refused at USER: the password never crossed the wire
    assert "POP3> USER" in text and "POP3> PASS" not in text, report(result, private)
    assert fetchmail.delivered() == []
    assert private.messages(ALICE) == before
    assert "plaintext login attempt refused" in private.log()


def dotted_mails() -> dict[str, bytes]:
    """Bodies that POP3's byte-stuffing (RFC 1939 §3) and 8-bit transport must carry unchanged.

    smtplib dot-stuffs DATA, so a lone "." line reaches the store as it is; a message can even
    end with one, which RETR then sends as ".." followed by the terminating ".".
    """
    lines = [".hidden", "..double", "...triple", ".", ". ", ".\t", "a . in the middle", "",
             "Grüße aus Köln, naïve café ☃ 日本語", ".ümlaut after a dot", "."]
    large = "".join(f".line {n} ñ {'x' * (n % 70)}\r\n" for n in range(6000)) + ".\r\n"
    mails = {}
    for what, body, header in [("dots", "\r\n".join(lines) + "\r\n", ""),
                               ("utf8 header", "Ein Körper.\r\n.\r\n", " Grüße ☃"),
                               ("large", large, ""),
                               ("one dot only", ".\r\n", "")]:
        subject = f"{what} {unique()}{header}"
        mails[subject] = (f"From: {SENDER}\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
                          f"Message-ID: <{unique()}@remote.test>\r\nMIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                          f"\r\n{body}").encode()
    return mails


@fetchmail_installed
def test_fetchmail_dot_lines_and_8bit(start_server, tmp_path):
    private = fetchmail_server(start_server)
    ca = write_ca(private, tmp_path)
    mails = dotted_mails()
    deliver(private, mails, smtputf8=True)
    stored = stored_by_subject(private)
    for subject, content in mails.items():  # the store holds what was sent, after its own trace fields
        assert stored[subject].content.endswith(content), subject

    # keep + uidl: fetchmail reads with "TOP n 99999999" so as not to mark messages read
    server_options, tls_options = implicit_tls(private, ca)
    peek = Fetchmail(tmp_path / "peek", private, server_options, f"{tls_options} keep")
    assert_fetchmail_copies(private, peek.fetch(), mails)
    assert re.search(r"POP3> TOP \d+ 99999999", (tmp_path / "peek" / "logs" / "fetchmail-1.log").read_text())

    # fetchall without keep: RETR, then DELE; at QUIT the INBOX is emptied
    retr = Fetchmail(tmp_path / "retr", private, server_options, f"{tls_options} fetchall")
    copies = retr.fetch()
    log = (tmp_path / "retr" / "logs" / "fetchmail-1.log").read_text()
    assert re.search(r"POP3> RETR \d+", log) and re.search(r"POP3> DELE \d+", log), log
    assert set(copies) == set(mails)
    for subject in mails:
        assert without_fetchmail_received(copies[subject]) == stored[subject].content, subject
    assert private.messages(ALICE) == []
    assert "Traceback" not in private.log(), private.log()


# --- getmail6 ------------------------------------------------------------------------------------

getmail_installed = pytest.mark.skipif(shutil.which("getmail") is None, reason="getmail6 is not installed")


class Maildir(NamedTuple):
    path: Path
    user: str | None  # whom getmail delivers as, when not as itself


@pytest.fixture
def maildir():
    """An empty Maildir getmail can deliver into.

    getmail refuses to deliver into a Maildir as root ("refuse to deliver mail as root"); run as
    root, it delivers as the user ``nobody`` instead, so the Maildir is nobody's, outside the
    test's tmp_path (which only root can enter).
    """
    path = Path(tempfile.mkdtemp(prefix="postar-getmail-"))
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir()
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        nobody = pwd.getpwnam(user)
        for directory in (path, path / "tmp", path / "new", path / "cur"):
            os.chown(directory, nobody.pw_uid, nobody.pw_gid)
    yield Maildir(path, user)
    shutil.rmtree(path)


class Getmail:
    """One getmail setup: getmailrc and state directory in ``home``, delivering into a Maildir."""

    def __init__(self, home: Path, private, ca: Path, maildir: Maildir, delete: bool) -> None:
        self.home = home
        self.private = private
        self.maildir = maildir.path
        home.mkdir()
        (home / "state").mkdir()
        config = configparser.ConfigParser(interpolation=None)
        # the server's name is checked against the certificate (ssl_cert_hostname) while
        # the connection goes to the loopback address the server listens on
        config["retriever"] = {"type": "SimplePOP3SSLRetriever", "server": "127.0.0.1",
                               "port": str(private.ports["pop3s"]), "username": ALICE, "password": PASSWORD,
                               "ca_certs": str(ca), "ssl_cert_hostname": HOSTNAME}
        config["destination"] = {"type": "Maildir", "path": f"{self.maildir}/"}
        if maildir.user:
            config["destination"]["user"] = maildir.user
        config["options"] = {"read_all": "false", "delete": str(delete).lower(), "verbose": "2"}
        self.rcfile = home / "getmailrc"
        with self.rcfile.open("w") as f:
            config.write(f)

    def run(self) -> subprocess.CompletedProcess:
        # -g: the oldmail file (UIDLs seen) lives in home/state; -r: this rcfile only
        args = ["getmail", "--getmaildir", str(self.home / "state"), "--rcfile", str(self.rcfile)]
        result = run(args, "getmail", self.home / "logs", {"HOME": str(self.home), "LC_ALL": "C"})
        assert result.returncode == 0, report(result, self.private)
        assert "error" not in output(result).lower(), report(result, self.private)
        return result

    def files(self) -> set[Path]:
        return {p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir()}

    def fetch(self) -> dict[str, bytes]:
        """Run once; the messages this run delivered, by subject."""
        before = self.files()
        self.run()
        return by_subject([path.read_bytes() for path in sorted(self.files() - before)])


def lf(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"\n")


def assert_getmail_copies(copies: dict[str, bytes], stored: dict[str, object], subjects) -> None:
    """Exactly ``subjects`` arrived, each as stored but for what getmail changed (see the top)."""
    assert set(copies) == set(subjects), sorted(copies)
    for subject in subjects:
        fields, rest = header_fields(copies[subject], b"\n")
        return_path, delivered_to, received, *others = fields
        original, original_rest = header_fields(lf(stored[subject].content), b"\n")
        # getmail's Return-Path carries the address of the one it removed
        assert original[0] == return_path == f"Return-Path: <{SENDER}>\n".encode(), copies[subject]
        assert delivered_to == b"Delivered-To: unknown\n", copies[subject]
        # where getmail folds its Received line depends on the host name and port: unfold it
        unfolded = re.sub(rb"\n[ \t]+", b" ", received)
        assert received.startswith(b"Received: ") and b" getmail6 msgid:" in unfolded, copies[subject]
        assert others == original[1:] and rest == original_rest, subject


@getmail_installed
def test_getmail_keeps_mail_and_fetches_only_new(start_server, tmp_path, maildir):
    private = start_server()
    getmail = Getmail(tmp_path / "getmail", private, write_ca(private, tmp_path), maildir, delete=False)
    first = simple_mails(3, "getmail")
    deliver(private, first)
    assert_getmail_copies(getmail.fetch(), stored_by_subject(private), first)

    # read_all = false: the oldmail file remembers the UIDLs, so nothing is new
    assert getmail.fetch() == {}

    later = simple_mails(1, "later")
    deliver(private, later)
    assert_getmail_copies(getmail.fetch(), stored_by_subject(private), later)
    # delete = false: the server still has everything, none of it marked read (on-retrieve keep)
    stored = stored_by_subject(private)
    assert set(stored) == set(first) | set(later)
    assert not any("\\Seen" in m.flags.split() for m in stored.values())
    assert getmail.fetch() == {}
    assert "Traceback" not in private.log(), private.log()


@getmail_installed
def test_getmail_delete_with_on_retrieve_archive(start_server, tmp_path, maildir):
    private = start_server()
    private.cli("user", "pop", "on-retrieve", ALICE, "archive")
    mails = simple_mails(3, "archived")
    deliver(private, mails)
    stored = stored_by_subject(private)
    getmail = Getmail(tmp_path / "getmail", private, write_ca(private, tmp_path), maildir, delete=True)
    assert_getmail_copies(getmail.fetch(), stored, mails)

    # DELE'd and QUIT: with on-retrieve archive they left the INBOX for Archive, read
    assert private.messages(ALICE, "INBOX") == []
    archived = stored_by_subject(private, "Archive")
    assert set(archived) == set(mails)
    for subject, m in archived.items():
        assert "\\Seen" in m.flags.split(), (subject, m.flags)
        assert m.content == stored[subject].content, subject
    assert getmail.fetch() == {}
    assert "Traceback" not in private.log(), private.log()
