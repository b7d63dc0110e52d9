"""Interoperability with real IMAP synchronisation clients: Debian's isync (mbsync)
and offlineimap3, each syncing a private server's mailbox to a local Maildir.

Both clients log in over implicit TLS and verify the server certificate against
the test CA. Each test delivers mail over SMTP, syncs it down, then changes the
Maildir the way a mail reader would (set flags by renaming a file, move a file
to another folder under a new name, delete a file) and checks, through IMAP and
through the store, that every change reached the server; a final sync with
nothing changed must leave server and Maildir exactly as they were.

Maildir holds messages with LF line endings and both clients convert CRLF on the
way down and back up, and mbsync adds an X-TUID header to every copy it makes,
so contents are compared with line endings normalised and X-TUID dropped;
everything else must be byte for byte what the store holds.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import HOSTNAME, PASSWORD, USERS, message

ALICE = USERS[0]
SYNC_TIMEOUT = 120
FOLDERS = ("INBOX", "Archive")


# --- helpers shared by both clients -------------------------------------------------------------

def unique() -> str:
    return uuid.uuid4().hex[:12]


def deliver(private, subjects: list[str]) -> None:
    with private.smtp() as client:
        for subject in subjects:
            client.sendmail("bob@remote.test", [ALICE], message(subject, body=f"Body of {subject}.\r\n"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stored = {subject_of(m.content) for m in private.messages(ALICE, "INBOX")}
        if set(subjects) <= stored:
            return
        time.sleep(0.1)
    raise AssertionError(f"messages were not delivered: {private.log()[-4000:]}")


def subject_of(content: bytes) -> str | None:
    found = re.search(rb"^Subject: (.*?)\r?$", content, re.MULTILINE)
    return found.group(1).decode() if found else None


def lf(content: bytes) -> bytes:
    """``content`` as a Maildir holds it: LF line endings, and without the X-TUID header mbsync
    adds to every copy it makes (to find a copy again after an interrupted run)."""
    content = content.replace(b"\r\n", b"\n")
    head, sep, body = content.partition(b"\n\n")
    head = re.sub(rb"^X-TUID: [^\n]*\n?", b"", head + b"\n", flags=re.MULTILINE).rstrip(b"\n")
    return head + sep + body


def server_messages(private, mailbox: str) -> dict[str, object]:
    """The store's messages in ``mailbox`` by subject."""
    return {subject_of(m.content): m for m in private.messages(ALICE, mailbox)}


def imap_flags(private, mailbox: str) -> dict[str, set[str]]:
    """FLAGS of every message in ``mailbox`` by subject, as an IMAP client sees them."""
    client = private.imap()
    try:
        typ, _ = client.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", mailbox
        typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK", data
    finally:
        client.logout()
    flags: dict[str, set[str]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        found = re.search(rb"FLAGS \(([^)]*)\)", item[0])
        assert found, item[0]
        flags[subject_of(item[1])] = set(found.group(1).decode().split())
    return flags


def server_state(private) -> dict:
    """Everything a sync could change on the server: UIDs, flags, mod-sequences, contents."""
    return {mailbox: sorted((m.uid, m.flags, m.modseq, m.content) for m in private.messages(ALICE, mailbox))
            for mailbox in FOLDERS}


class Maildir:
    """A Maildir folder as a mail reader sees it (maildir(5): new/, cur/, name:2,FLAGS)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def files(self) -> list[Path]:
        return sorted(p for sub in ("new", "cur") if (self.path / sub).is_dir()
                      for p in (self.path / sub).iterdir() if p.is_file())

    def by_subject(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for path in self.files():
            subject = subject_of(path.read_bytes())
            assert subject not in found, f"{subject} twice in {self.path}: {self.files()}"
            found[subject] = path
        return found

    @staticmethod
    def flags(path: Path) -> str:
        return path.name.split(":2,", 1)[1] if ":2," in path.name else ""

    def set_flags(self, path: Path, add: str) -> Path:
        """What a reader does to flag a message: move it to cur/ with the letters in its info."""
        base = path.name.split(":2,", 1)[0]
        letters = "".join(sorted(set(self.flags(path)) | set(add)))
        target = self.path / "cur" / f"{base}:2,{letters}"
        path.rename(target)
        return target

    def move_to(self, path: Path, other: Maildir) -> Path:
        """Move a message to another folder under a fresh unique name, as mutt does."""
        name = f"{int(time.time())}.M{uuid.uuid4().hex}P1.client.test:2,{self.flags(path)}"
        target = other.path / "cur" / name
        path.rename(target)
        return target


def snapshot(*folders: Maildir) -> dict:
    return {str(f.path): [(p.parent.name, p.name, p.read_bytes()) for p in f.files()] for f in folders}


def run(args: list[str], what: str, logs: Path) -> subprocess.CompletedProcess:
    """Run a sync client once; its whole output is also kept in ``logs``/<what>-<n>.log."""
    logs.mkdir(exist_ok=True)
    log = logs / f"{what}-{len(list(logs.iterdir())) + 1}.log"
    try:
        result = subprocess.run(args, check=False, capture_output=True, text=True, timeout=SYNC_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        log.write_text(f"timed out\n{e.stdout}\n{e.stderr}")
        raise AssertionError(f"{what} timed out:\n{e.stdout}\n{e.stderr}") from None
    log.write_text(f"$ {' '.join(args)}\nexit {result.returncode}\n{result.stdout}\n--- stderr ---\n{result.stderr}")
    return result


def report(result: subprocess.CompletedProcess, private, limit: int = 20000) -> str:
    output = (result.stdout or "") + (result.stderr or "")
    return (f"exit {result.returncode}\n--- client output (tail) ---\n{output[-limit:]}"
            f"\n--- server log (tail) ---\n{private.log()[-limit:]}")


def write_ca(private, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    private.ca.cert_pem.write_to_path(str(path))
    return path


def check_round_trip(private, sync, inbox: Maildir, archive: Maildir) -> None:
    """The scenario both clients go through; ``sync()`` runs the client once and must succeed."""
    subjects = [f"sync {n} {unique()}" for n in range(4)]
    flagged, moved, deleted, untouched = subjects
    deliver(private, subjects)

    # 1. first sync: every message arrives with the bytes the store holds
    sync()
    local = inbox.by_subject()
    stored = server_messages(private, "INBOX")
    assert set(local) == set(subjects) == set(stored)
    for subject in subjects:
        assert lf(local[subject].read_bytes()) == lf(stored[subject].content), subject
    assert archive.path.is_dir() and archive.files() == []

    # 2. flag one locally (Flagged and Seen), sync: the server has both flags, the rest have none
    inbox.set_flags(local[flagged], "FS")
    sync()
    flags = imap_flags(private, "INBOX")
    assert {"\\Flagged", "\\Seen"} <= flags[flagged], flags
    for subject in (moved, deleted, untouched):
        assert not flags[subject] & {"\\Flagged", "\\Seen", "\\Deleted"}, flags

    # 3. move one locally from INBOX to Archive, sync: on the server it is in Archive, not INBOX
    local = inbox.by_subject()
    inbox.move_to(local[moved], archive)
    sync()
    in_inbox, in_archive = server_messages(private, "INBOX"), server_messages(private, "Archive")
    assert moved not in in_inbox, sorted(in_inbox)
    assert list(in_archive) == [moved], sorted(in_archive)
    assert lf(in_archive[moved].content) == lf(stored[moved].content)
    assert set(archive.by_subject()) == {moved}
    assert set(inbox.by_subject()) == {flagged, deleted, untouched}

    # 4. delete one locally, sync: it is gone from the server
    inbox.by_subject()[deleted].unlink()
    sync()
    assert set(server_messages(private, "INBOX")) == {flagged, untouched}
    assert set(imap_flags(private, "INBOX")) == {flagged, untouched}
    assert {"\\Flagged", "\\Seen"} <= imap_flags(private, "INBOX")[flagged]

    # 5. a sync with nothing to do changes nothing on either side
    before_server, before_local = server_state(private), snapshot(inbox, archive)
    sync()
    assert server_state(private) == before_server
    assert snapshot(inbox, archive) == before_local


# --- mbsync --------------------------------------------------------------------------------------

def mbsync_version() -> tuple[int, ...]:
    out = subprocess.run(["mbsync", "--version"], check=False, capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    assert found, out
    return tuple(int(part or 0) for part in found.groups())


@pytest.mark.skipif(shutil.which("mbsync") is None, reason="isync (mbsync) is not installed")
def test_mbsync_round_trip(start_server, tmp_path):
    private = start_server()
    ca = write_ca(private, tmp_path)
    mail = tmp_path / "mbsync-mail"
    mail.mkdir()
    # isync 1.5 renamed SSLType to TLSType (the old name still works there, with a warning)
    tls_type = "TLSType" if mbsync_version() >= (1, 5) else "SSLType"
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""\
IMAPAccount alice
Host localhost
Port {private.ports['imaps']}
User {ALICE}
Pass "{PASSWORD}"
{tls_type} IMAPS
CertificateFile {ca}
PipelineDepth 1

IMAPStore remote
Account alice

MaildirStore local
Path {mail}/
Inbox {mail}/INBOX
SubFolders Verbatim

Channel alice
Far :remote:
Near :local:
Patterns INBOX Archive
Create Near
Expunge Both
SyncState *
Sync All
""")

    def sync() -> None:
        # -D: debug output with the whole IMAP exchange, shown if anything fails
        result = run(["mbsync", "-c", str(config), "-D", "alice"], "mbsync", tmp_path / "logs")
        assert result.returncode == 0, report(result, private)
        # mbsync may carry on past a refused command; -D shows server replies as "F: <tag> NO ..."
        bad = [line for line in result.stdout.splitlines() + result.stderr.splitlines()
               if re.match(r"^F: (\*|\d+) (NO|BAD)\b", line) or re.search(r"error|warning", line, re.IGNORECASE)]
        assert not bad, "\n".join(bad) + "\n" + report(result, private)

    check_round_trip(private, sync, Maildir(mail / "INBOX"), Maildir(mail / "Archive"))
    # postar logged no exception while serving mbsync
    assert "Traceback" not in private.log(), private.log()


# --- offlineimap3 --------------------------------------------------------------------------------

def use_certificate_with_common_name(private) -> None:
    """Restart ``private`` with a certificate from the same test CA that also has a subject CN.

    offlineimap3 (8.0.0) checks the host name itself after OpenSSL has verified the chain, and
    refuses any certificate without a subject commonName ("CA Cert verifying failed: no
    commonName found in certificate") even when a subjectAltName matches; trustme's
    certificates have none. The certificate is still verified against the test CA.
    """
    cert = private.ca.issue_cert(HOSTNAME, "localhost", "127.0.0.1", common_name="localhost")
    private.stop()
    cert.private_key_pem.write_to_path(str(private.root / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(private.root / "cert.pem"))
    private.start()


@pytest.mark.skipif(shutil.which("offlineimap") is None, reason="offlineimap3 is not installed")
def test_offlineimap_round_trip(start_server, tmp_path):
    private = start_server()
    use_certificate_with_common_name(private)
    ca = write_ca(private, tmp_path)
    mail = tmp_path / "offlineimap-mail"
    metadata = tmp_path / "offlineimap-metadata"
    config = configparser.ConfigParser(interpolation=None)
    config["general"] = {"accounts": "alice", "metadata": str(metadata), "ui": "basic",
                         "maxsyncaccounts": "1", "fsync": "false"}
    config["Account alice"] = {"localrepository": "local", "remoterepository": "remote",
                               "autorefresh": "0"}
    config["Repository local"] = {"type": "Maildir", "localfolders": str(mail)}
    config["Repository remote"] = {
        "type": "IMAP",
        "remotehost": "localhost",
        "remoteport": str(private.ports["imaps"]),
        "remoteuser": ALICE,
        "remotepass": PASSWORD,
        "ssl": "yes",
        "starttls": "no",
        "sslcacertfile": str(ca),
        "maxconnections": "1",
        "holdconnectionopen": "no",
        "expunge": "yes",
        "folderfilter": f"lambda folder: folder in {list(FOLDERS)!r}",
        "createfolders": "yes",
    }
    path = tmp_path / "offlineimaprc"
    with path.open("w") as f:
        config.write(f)

    def sync() -> None:
        # -o: one run; -d imap,maildir: the IMAP exchange, shown if anything fails
        result = run(["offlineimap", "-c", str(path), "-o", "-u", "basic", "-d", "imap,maildir"], "offlineimap",
                     tmp_path / "logs")
        assert result.returncode == 0, report(result, private)
        output = result.stdout + result.stderr
        problems = [line for line in output.splitlines() if re.search(r"\bERROR\b|Traceback|WARNING", line)]
        assert not problems, "\n".join(problems[:50]) + "\n" + report(result, private)

    check_round_trip(private, sync, Maildir(mail / "INBOX"), Maildir(mail / "Archive"))
    # postar logged no exception while serving offlineimap
    assert "Traceback" not in private.log(), private.log()
