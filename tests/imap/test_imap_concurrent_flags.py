"""Sessions storing new keywords and expunging while others FETCH: what every session is told.

Six connections of alice on one fresh mailbox, each driven by its own thread:
two add a new keyword at each step (and take older ones off), one flags
``\\Deleted``, expunges and appends messages that carry a new keyword, two with
CONDSTORE on fetch and store over the whole mailbox, one has it EXAMINEd. Every
untagged response each session receives, from its SELECT on, is checked in
order:

- a keyword in a FETCH FLAGS must have been in a FLAGS response the session
  received before it (RFC 9051 §7.3.5, RFC 3501 §7.2.6: the FLAGS response
  says which flags the mailbox has; a client records it and may reject a
  keyword it never saw), and in a read-write session the PERMANENTFLAGS that
  follows each FLAGS lists the same keywords and ``\\*``, as Dovecot's does;
- every mod-sequence is at least 1 (RFC 7162 §3.1.1; issue 10: ``MODSEQ (0)``
  for messages another session had just expunged).

Compared with Dovecot 2.3.19 (bench/dovecot_instance.py), whose sessions pass
the same checks: it sends ``* FLAGS`` and ``* OK [PERMANENTFLAGS ...]`` before
the first FETCH that uses a new keyword, whichever session stored it.
"""

from __future__ import annotations

import random
import re
import threading

from tests.imap.wire import Wire, append, unique

STEPS = 25  # per session; enough for the races to show in every run seen so far
START = 20  # messages at the start; the expunger appends one for each it expunges

FETCH = re.compile(rb"\* (\d+) FETCH \((.*)\)")
FLAGS_ITEM = re.compile(rb"FLAGS \(([^)]*)\)")
MODSEQ_ITEM = re.compile(rb"MODSEQ \((\d+)\)")
PERMANENT = re.compile(rb"\* OK \[PERMANENTFLAGS \(([^)]*)\)\]")


def message(n: int | str) -> bytes:
    return f"From: a@remote.test\r\nSubject: keywords {n}\r\n\r\nbody {n}\r\n".encode()


def keywords(flag_list: bytes) -> set[bytes]:
    return {flag for flag in flag_list.split() if not flag.startswith(b"\\")}


class Checked:
    """One session whose untagged responses are all checked as they come (see the module docstring)."""

    def __init__(self, server, role: str):
        self.role = role
        self.wire = Wire.login(server)
        self.readonly = False
        self.announced: set[bytes] | None = None  # the keywords of the last FLAGS response
        self.problems: dict[str, list[str]] = {"keyword": [], "permanentflags": [], "modseq": []}
        self.fetches = 0  # untagged FETCH responses seen, to show the test saw some

    def run(self, command: str | bytes, status: str = "OK") -> list[bytes]:
        untagged = self.wire.expect(status, command)
        self.check(command, untagged)
        return untagged

    def check(self, command: str | bytes, untagged: list[bytes]) -> None:
        shown = command if isinstance(command, str) else command[:60].decode(errors="replace")
        for position, line in enumerate(untagged):
            if line.startswith(b"* FLAGS ("):
                self.announced = keywords(line[len(b"* FLAGS ("):-1])
                following = untagged[position + 1] if position + 1 < len(untagged) else b""
                permanent = PERMANENT.match(following)
                if permanent is None:
                    self.problems["permanentflags"].append(f"{self.role} {shown}: none after {line!r}")
                elif not self.readonly and (keywords(permanent.group(1)) != self.announced
                                            or b"\\*" not in permanent.group(1).split()):
                    self.problems["permanentflags"].append(f"{self.role} {shown}: {following!r} vs {line!r}")
            elif (fetch := FETCH.fullmatch(line)) is not None:
                self.fetches += 1
                flags = FLAGS_ITEM.search(fetch.group(2))
                if flags is not None:
                    unknown = keywords(flags.group(1)) - (self.announced or set())
                    if unknown:
                        self.problems["keyword"].append(f"{self.role} {shown}: {line!r} uses {sorted(unknown)} "
                                                        f"before any FLAGS listed them")
                modseq = MODSEQ_ITEM.search(fetch.group(2))
                if modseq is not None and int(modseq.group(1)) < 1:
                    self.problems["modseq"].append(f"{self.role} {shown}: {line!r}")


def storer(session: Checked, name: str, rng: random.Random) -> None:
    session.run(f"SELECT {name}")
    for step in range(STEPS):
        session.run(f"STORE {rng.randint(1, START - 2)} +FLAGS ($K{session.role}s{step})")
        if step % 3 == 2:
            session.run(f"STORE {rng.randint(1, START - 2)}:* -FLAGS ($K{session.role}s{step - 1})")
        if step % 4 == 3:
            session.run("FETCH 1:* FLAGS")


def expunger(session: Checked, name: str, rng: random.Random) -> None:
    session.run(f"SELECT {name}")
    for step in range(STEPS):
        session.run(f"STORE {rng.randint(1, 3)} +FLAGS.SILENT (\\Deleted $Gone{step})")
        session.run("EXPUNGE")
        data = message(f"appended {step}")
        session.run(f"APPEND {name} ($New{step}) {{{len(data)}+}}\r\n".encode() + data)


def fetcher(session: Checked, name: str, rng: random.Random) -> None:
    if session.role == "fetcher0":
        session.run("ENABLE CONDSTORE")
        session.run(f"SELECT {name}")
    else:  # its first FETCH MODSEQ turns CONDSTORE on (RFC 7162 §3.1)
        session.run(f"SELECT {name}")
    for step in range(STEPS):
        session.run("FETCH 1:* (FLAGS MODSEQ)")
        session.run(f"STORE {rng.randint(1, 5)}:* +FLAGS (\\Seen)")  # expunges held back since the FETCH
        session.run("FETCH 1:* (FLAGS RFC822.SIZE)")
        session.run("UID FETCH 1:* FLAGS" if step % 2 else "NOOP")


def examiner(session: Checked, name: str, rng: random.Random) -> None:
    session.readonly = True
    session.run(f"EXAMINE {name}")
    for step in range(STEPS):
        session.run("FETCH 1:* FLAGS")
        session.run("NOOP")


def test_every_session_hears_of_new_keywords_before_their_use_and_no_modseq_is_zero(server):
    name = unique("keywords-")
    setup = Wire.login(server)
    setup.expect("OK", f"CREATE {name}")
    for n in range(START):
        append(setup, name, message(n))
    roles = [("storer0", storer), ("storer1", storer), ("expunger", expunger), ("fetcher0", fetcher),
             ("fetcher1", fetcher), ("examiner", examiner)]
    sessions = [Checked(server, role) for role, _ in roles]
    errors: list[BaseException] = []
    start = threading.Barrier(len(roles))

    def drive(session: Checked, work, seed: int) -> None:
        try:
            start.wait(timeout=30)
            work(session, name, random.Random(seed))
            session.run("NOOP")
        except Exception as e:  # noqa: BLE001 (reported below, on the test's thread)
            errors.append(e)

    threads = [threading.Thread(target=drive, args=(session, work, seed))
               for seed, (session, (_, work)) in enumerate(zip(sessions, roles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    report = []
    for kind in ("keyword", "permanentflags", "modseq"):
        found = [p for s in sessions for p in s.problems[kind]]
        if found:
            report += [f"{len(found)} {kind} problems, the first ones:"] + found[:5]
    assert not report, "\n".join(report)
    assert all(s.fetches for s in sessions), [(s.role, s.fetches) for s in sessions]
    for session in sessions:
        session.wire.close()
    setup.close()
