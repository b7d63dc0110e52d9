"""The store's mailbox and message API: the IMAP semantics IMAP and POP3 rely on.

Each test opens a real ``SQLiteStore`` in a temporary directory, with one
account (and its six special mailboxes), and ends by asking the store's own
consistency check. What is checked is what the RFCs require of a server:
UIDs that only grow and are never reused (RFC 9051 §2.3.1.1), a UIDVALIDITY
that differs for a mailbox made again under an old name, modseqs that rise
with every change and tell exactly what changed or vanished (RFC 7162 §3.1,
§3.2.10), STORE UNCHANGEDSINCE (RFC 7162 §3.1.3), EXPUNGE and UID EXPUNGE
(RFC 9051 §6.4.3, §6.4.9), COPY/MOVE with COPYUID pairs (RFC 4315, RFC 6851),
RENAME of a hierarchy and of INBOX (RFC 9051 §6.3.6), and change notices.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

import postar.store.sqlite as sqlite_module
import postar.store.sqlite_mail as sqlite_mail_module
from postar.message import summarize_json
from postar.store import (
    SPECIAL_MAILBOXES, AlreadyExists, Delivery, FlagMode, MailboxStatus, NotFound, OutboundRecipient,
    StoreError,
)
from postar.store.sqlite import SQLiteStore

ALICE = "alice@example.test"
BOB = "bob@example.test"
NOT_WOKEN = 0.2  # seconds: a bound on waiting for a notice that must not come, not a timing claim

_queue_ids = itertools.count(1)


def message_bytes(subject: str, body: str = "Hello.") -> bytes:
    return (f"From: Carol <carol@elsewhere.test>\r\nTo: <{ALICE}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@elsewhere.test>\r\n\r\n{body}\r\n").encode()


def prefix_for(recipient: str) -> bytes:
    return (f"Return-Path: <carol@elsewhere.test>\r\n"
            f"Received: from client.elsewhere.test ([192.0.2.1])\r\n\tby mx.example.test (postar) "
            f"with ESMTP id Q1\r\n\tfor <{recipient}>; Mon, 1 Jan 2024 00:00:00 +0000\r\n").encode()


def delivery(data: bytes, *accounts: int, outbound: tuple[OutboundRecipient, ...] = (),
             internal_date: float = 1_700_000_000.0, recipient: str = ALICE) -> Delivery:
    prefix = prefix_for(recipient)
    return Delivery(queue_id=f"TEST{next(_queue_ids):06d}", sender="carol@elsewhere.test", data=data,
                    header_prefix=prefix, relay_prefix=prefix.split(b"\r\n", 1)[1],
                    internal_date=internal_date, summary=summarize_json(data),
                    local_accounts=accounts, outbound=outbound)


def blob_count(store: SQLiteStore) -> int:
    """Blobs left in the database, read on a connection of the test's own (check() does not look)."""
    connection = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT count(*) FROM blobs").fetchone()[0]
    finally:
        connection.close()


@pytest.fixture
async def store(tmp_path: Path):
    opened = await SQLiteStore.open(tmp_path)
    try:
        yield opened
        assert await opened.check() == []
    finally:
        await opened.close()


@pytest.fixture
async def alice(store: SQLiteStore) -> int:
    await store.add_domain("example.test")
    return (await store.add_account(ALICE, "not-a-real-hash")).id


class Helper:
    """Short names for what most tests do: look a mailbox up, put messages in it."""

    def __init__(self, store: SQLiteStore, account_id: int):
        self.store = store
        self.account_id = account_id

    async def box(self, name: str):
        mailbox = await self.store.find_mailbox(self.account_id, name)
        assert mailbox is not None, f"no mailbox {name}"
        return mailbox

    async def box_id(self, name: str) -> int:
        return (await self.box(name)).id

    async def highestmodseq(self, name: str) -> int:
        return (await self.box(name)).highestmodseq

    async def append(self, name: str, subject: str, flags: tuple[str, ...] = (),
                     internal_date: float = 1_600_000_000.0) -> int:
        data = message_bytes(subject)
        return await self.store.append(await self.box_id(name), data, flags, internal_date, summarize_json(data))

    async def deliver(self, subject: str) -> None:
        await self.store.deliver(delivery(message_bytes(subject), self.account_id))

    async def uids(self, name: str) -> list[int]:
        return [s.uid for s in await self.store.message_states(await self.box_id(name))]

    async def flags(self, name: str, uid: int) -> tuple[str, ...]:
        states = {s.uid: s for s in await self.store.message_states(await self.box_id(name))}
        return states[uid].flags


@pytest.fixture
def h(store: SQLiteStore, alice: int) -> Helper:
    return Helper(store, alice)


# Mailboxes ------------------------------------------------------------------------------------


async def test_new_account_has_the_special_mailboxes(store, alice):
    boxes = {b.name: b for b in await store.list_mailboxes(alice)}
    assert set(boxes) == {name for name, _ in SPECIAL_MAILBOXES}
    for name, use in SPECIAL_MAILBOXES:
        box = boxes[name]
        assert box.special_use == use
        assert box.subscribed
        assert box.uidnext == 1
        assert box.uidvalidity > 0
        assert await store.message_states(box.id) == []
    assert [b.name for b in await store.list_mailboxes(alice)] == sorted(boxes)


async def test_create_find_and_create_twice(store, alice):
    made = await store.create_mailbox(alice, "Projects")
    assert made.name == "Projects" and made.uidnext == 1 and made.special_use == ""
    assert made.uidvalidity > 0
    assert await store.find_mailbox(alice, "Projects") == made
    assert await store.find_mailbox(alice, "Nothing") is None
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice, "Projects")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(alice, "INBOX")
    assert [b.name for b in await store.list_mailboxes(alice)].count("Projects") == 1


async def test_mailboxes_belong_to_their_account(store, alice):
    bob = (await store.add_account(BOB, "hash")).id
    await store.create_mailbox(alice, "Private")
    assert await store.find_mailbox(bob, "Private") is None
    await store.create_mailbox(bob, "Private")  # the same name in another account is fine
    assert (await store.find_mailbox(alice, "Private")).id != (await store.find_mailbox(bob, "Private")).id


async def test_uidvalidity_of_a_recreated_mailbox_differs(store, alice):
    """RFC 9051 §2.3.1.1: a mailbox made again under a deleted one's name needs a new UIDVALIDITY."""
    first = await store.create_mailbox(alice, "Reused")
    await store.delete_mailbox(alice, "Reused")
    second = await store.create_mailbox(alice, "Reused")
    assert second.uidvalidity != first.uidvalidity


async def test_uidvalidity_of_a_recreated_mailbox_differs_within_one_clock_second(store, monkeypatch):
    """The same, with the clock held still: delete and create again within one second happens."""
    frozen = SimpleNamespace(time=lambda: 1_700_000_000.0)
    monkeypatch.setattr(sqlite_module, "time", frozen)
    monkeypatch.setattr(sqlite_mail_module, "time", frozen)
    await store.add_domain("example.test")
    account = (await store.add_account(ALICE, "hash")).id
    seen = set()
    for _ in range(3):
        made = await store.create_mailbox(account, "Reused")
        assert made.uidvalidity not in seen
        seen.add(made.uidvalidity)
        await store.delete_mailbox(account, "Reused")


async def test_uidvalidity_after_rename_and_create_under_old_name(store, alice):
    """RFC 9051 §2.3.1.1: the same holds for a name freed by RENAME."""
    old = await store.create_mailbox(alice, "Old")
    await store.rename_mailbox(alice, "Old", "New")
    again = await store.create_mailbox(alice, "Old")
    assert again.uidvalidity != (await store.find_mailbox(alice, "New")).uidvalidity
    assert again.uidvalidity != old.uidvalidity


async def test_mailbox_ids_are_not_reused(store, h):
    """A session holds the id of its selected mailbox; once that mailbox is deleted, the id
    must not start to mean a mailbox made afterwards (it would show that one's messages)."""
    gone = await h.store.create_mailbox(h.account_id, "Gone")
    await h.store.delete_mailbox(h.account_id, "Gone")
    fresh = await h.store.create_mailbox(h.account_id, "Fresh")
    assert fresh.id != gone.id
    await h.append("Fresh", "for the fresh mailbox")
    assert await h.store.message_states(gone.id) == []
    with pytest.raises(NotFound):
        await h.store.append(gone.id, b"Subject: x\r\n\r\nx\r\n", (), 0.0, summarize_json(b"Subject: x\r\n\r\nx\r\n"))


async def test_delete_mailbox_removes_its_messages(store, h):
    box = await store.create_mailbox(h.account_id, "Doomed")
    for n in range(3):
        await h.append("Doomed", f"doomed {n}")
    await h.deliver("stays")
    usage = await store.account_usage(h.account_id)
    doomed_size = (await store.mailbox_status(box.id)).size
    blobs = blob_count(store)
    await store.delete_mailbox(h.account_id, "Doomed")
    assert await store.find_mailbox(h.account_id, "Doomed") is None
    assert "Doomed" not in [b.name for b in await store.list_mailboxes(h.account_id)]
    assert await store.message_states(box.id) == []
    assert await store.account_usage(h.account_id) == usage - doomed_size
    assert blob_count(store) == blobs - 3
    assert len(await h.uids("INBOX")) == 1
    with pytest.raises(NotFound):
        await store.delete_mailbox(h.account_id, "Doomed")


async def test_changes_since_of_a_deleted_mailbox_says_it_is_gone(store, h):
    """A session that has the mailbox selected learns from changes_since that the mailbox
    itself is gone (IMAP then ends the session, as Dovecot does)."""
    box = await store.create_mailbox(h.account_id, "Selected")
    for n in range(3):
        await h.append("Selected", f"m{n}")
    modseq = await h.highestmodseq("Selected")
    assert (await store.changes_since(box.id, modseq)).exists
    await store.delete_mailbox(h.account_id, "Selected")
    changes = await store.changes_since(box.id, modseq)
    assert changes.changed == () and changes.vanished == ()
    assert changes.exists is False


async def test_rename_renames_children_but_not_siblings_with_the_same_prefix(store, h):
    for name in ("a", "a/x", "a/x/y", "ab", "b2"):
        await store.create_mailbox(h.account_id, name)
    uid = await h.append("a/x", "in a child")
    child_id = await h.box_id("a/x")
    await store.rename_mailbox(h.account_id, "a", "b")
    names = {b.name for b in await store.list_mailboxes(h.account_id)}
    assert {"b", "b/x", "b/x/y", "ab", "b2"} <= names
    assert not {"a", "a/x", "a/x/y"} & names
    assert await h.uids("b/x") == [uid]
    assert (await h.box("b/x")).id == child_id


async def test_rename_keeps_the_messages(store, h):
    await store.create_mailbox(h.account_id, "Before")
    uids = [await h.append("Before", f"m{n}", flags=("\\Flagged",)) for n in range(2)]
    data = await store.message_content(await h.box_id("Before"), uids[0])
    await store.rename_mailbox(h.account_id, "Before", "After")
    after = await h.box_id("After")
    assert await h.uids("After") == uids
    assert await store.message_content(after, uids[0]) == data
    assert await h.flags("After", uids[1]) == ("\\Flagged",)


async def test_rename_refusals(store, h):
    await store.create_mailbox(h.account_id, "One")
    await store.create_mailbox(h.account_id, "Two")
    with pytest.raises(NotFound):
        await store.rename_mailbox(h.account_id, "Missing", "Three")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(h.account_id, "One", "Two")
    assert await store.find_mailbox(h.account_id, "One") is not None


async def test_rename_onto_a_taken_child_name_is_already_exists(store, h):
    """"a" -> "b" while "a/x" and "b/x" both exist: refused as AlreadyExists, nothing renamed."""
    for name in ("a", "a/x", "b/x"):
        await store.create_mailbox(h.account_id, name)
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(h.account_id, "a", "b")
    names = {b.name for b in await store.list_mailboxes(h.account_id)}
    assert {"a", "a/x", "b/x"} <= names and "b" not in names


async def test_rename_inbox_moves_its_messages_and_leaves_it_empty(store, h):
    """RFC 9051 §6.3.6: renaming INBOX moves all its messages to a new mailbox, INBOX stays
    (empty), and INBOX's inferior names are unaffected."""
    await store.create_mailbox(h.account_id, "INBOX/child")
    for n in range(3):
        await h.deliver(f"inbox {n}")
    inbox = await h.box("INBOX")
    old_uids = await h.uids("INBOX")
    await store.update_flags(inbox.id, [old_uids[1]], ("\\Seen", "$Work"), FlagMode.SET)
    contents = [await store.message_content(inbox.id, u) for u in old_uids]
    modseq = await h.highestmodseq("INBOX")

    await store.rename_mailbox(h.account_id, "INBOX", "Old Inbox")

    after = await h.box("INBOX")
    assert after.id == inbox.id and after.uidvalidity == inbox.uidvalidity
    assert await store.message_states(inbox.id) == []
    assert after.uidnext >= inbox.uidnext  # UIDs of INBOX are still never reused
    assert (await store.changes_since(inbox.id, modseq)).vanished == tuple(old_uids)
    moved = await h.box("Old Inbox")
    states = await store.message_states(moved.id)
    assert len(states) == 3
    assert [await store.message_content(moved.id, s.uid) for s in states] == contents
    assert set(states[1].flags) == {"\\Seen", "$Work"}
    assert await store.find_mailbox(h.account_id, "INBOX/child") is not None
    assert await store.find_mailbox(h.account_id, "Old Inbox/child") is None

    await h.deliver("after the rename")
    new_uids = await h.uids("INBOX")
    assert len(new_uids) == 1 and new_uids[0] > max(old_uids)
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(h.account_id, "INBOX", "Old Inbox")


async def test_inbox_cannot_be_deleted(store, h):
    """RFC 9051 §6.3.4: deleting INBOX is an error; delivery depends on it existing."""
    await h.deliver("keep me")
    with pytest.raises(StoreError):
        await store.delete_mailbox(h.account_id, "INBOX")
    assert await store.find_mailbox(h.account_id, "INBOX") is not None
    await h.deliver("still deliverable")
    assert len(await h.uids("INBOX")) == 2


async def test_set_subscribed(store, h):
    await store.create_mailbox(h.account_id, "News")
    assert not (await h.box("News")).subscribed  # CREATE does not subscribe, as in Dovecot
    await store.set_subscribed(h.account_id, "News", True)
    assert (await h.box("News")).subscribed
    await store.set_subscribed(h.account_id, "News", False)
    assert not (await h.box("News")).subscribed
    with pytest.raises(NotFound):
        await store.set_subscribed(h.account_id, "Missing", True)
    await store.set_subscribed(h.account_id, "News", False)  # unsubscribing twice is fine


async def test_a_subscription_outlives_its_mailbox_and_follows_a_rename(store, h):
    await store.create_mailbox(h.account_id, "Old")
    await store.create_mailbox(h.account_id, "Old/Child")
    await store.set_subscribed(h.account_id, "Old/Child", True)
    await store.rename_mailbox(h.account_id, "Old", "New")
    assert "New/Child" in await store.subscriptions(h.account_id)
    await store.delete_mailbox(h.account_id, "New/Child")
    assert "New/Child" in await store.subscriptions(h.account_id)  # RFC 9051 §6.3.7


# UIDs -----------------------------------------------------------------------------------------


async def test_uids_strictly_increase_and_uidnext_follows(store, h):
    inbox = await h.box_id("INBOX")
    got = []
    for n in range(3):
        await h.deliver(f"d{n}")
        got.append(await h.append("INBOX", f"a{n}"))
    uids = await h.uids("INBOX")
    assert uids == sorted(uids) and len(set(uids)) == 6
    assert uids == list(range(1, 7))
    assert set(got) <= set(uids)
    assert (await h.box("INBOX")).uidnext == 7
    assert (await store.mailbox_status(inbox)).uidnext == 7


async def test_uids_are_not_reused_after_expunging_the_highest(store, h):
    inbox = await h.box_id("INBOX")
    first = await h.append("INBOX", "one")
    top = await h.append("INBOX", "two", flags=("\\Deleted",))
    assert await store.expunge(inbox) == [top]
    after = await h.append("INBOX", "three")
    assert after > top > first
    await h.deliver("four")
    assert max(await h.uids("INBOX")) > after


async def test_uids_survive_reopening_the_store(tmp_path, store, h):
    await h.append("INBOX", "one", flags=("\\Deleted",))
    await h.append("INBOX", "two", flags=("\\Deleted",))
    await store.expunge(await h.box_id("INBOX"))
    before = await h.box("INBOX")
    again = await SQLiteStore.open(tmp_path)
    try:
        reopened = await again.find_mailbox(h.account_id, "INBOX")
        assert reopened == before
        data = message_bytes("three")
        uid = await again.append(reopened.id, data, (), 0.0, summarize_json(data))
        assert uid == before.uidnext
        assert await again.check() == []
    finally:
        await again.close()


async def test_concurrent_writes_get_distinct_uids_and_modseqs(store, h):
    inbox = await h.box_id("INBOX")
    data = [message_bytes(f"c{n}") for n in range(20)]
    uids = await asyncio.gather(*(store.append(inbox, d, (), 0.0, summarize_json(d)) for d in data),
                                *(store.deliver(delivery(message_bytes(f"d{n}"), h.account_id)) for n in range(10)))
    states = await store.message_states(inbox)
    assert [s.uid for s in states] == list(range(1, 31))
    assert set(uids[:20]) <= {s.uid for s in states}
    assert len({s.modseq for s in states}) == 30
    assert (await h.box("INBOX")).uidnext == 31


async def test_one_refused_write_does_not_undo_the_others_in_its_batch(store, h):
    results = await asyncio.gather(store.create_mailbox(h.account_id, "Twin"),
                                   store.create_mailbox(h.account_id, "Twin"),
                                   h.append("INBOX", "alongside"),
                                   return_exceptions=True)
    assert sum(isinstance(r, AlreadyExists) for r in results) == 1
    assert await store.find_mailbox(h.account_id, "Twin") is not None
    assert len(await h.uids("INBOX")) == 1


# Modseqs and changes ----------------------------------------------------------------------------


async def test_every_change_raises_highestmodseq_and_the_changed_messages_carry_it(store, h):
    inbox = await h.box_id("INBOX")
    archive = await h.box_id("Archive")
    seen = [await h.highestmodseq("INBOX")]

    async def rose(name: str = "INBOX") -> int:
        now = await h.highestmodseq(name)
        assert now > seen[-1] if name == "INBOX" else True
        if name == "INBOX":
            seen.append(now)
        return now

    await h.deliver("delivered")
    modseq = await rose()
    assert (await store.message_states(inbox))[-1].modseq == modseq

    uid = await h.append("INBOX", "appended")
    modseq = await rose()
    assert {s.uid: s.modseq for s in await store.message_states(inbox)}[uid] == modseq

    updated, refused = await store.update_flags(inbox, [uid], ("\\Seen",), FlagMode.ADD)
    modseq = await rose()
    assert refused == [] and [s.modseq for s in updated] == [modseq]
    assert {s.uid: s.modseq for s in await store.message_states(inbox)}[uid] == modseq
    assert (await store.message_infos(inbox, [uid]))[0].modseq == modseq

    before_archive = await h.highestmodseq("Archive")
    [(_, copied)] = await store.copy_messages(inbox, [uid], archive)
    archive_modseq = await h.highestmodseq("Archive")
    assert archive_modseq > before_archive
    assert {s.uid: s.modseq for s in await store.message_states(archive)}[copied] == archive_modseq
    assert await h.highestmodseq("INBOX") == seen[-1]  # a copy leaves its source alone

    await store.update_flags(inbox, [uid], ("\\Deleted",), FlagMode.ADD)
    await rose()
    await store.expunge(inbox)
    await rose()

    await store.copy_messages(archive, [copied], inbox, move=True)
    await rose()
    assert await h.highestmodseq("Archive") > archive_modseq
    assert (await store.mailbox_status(inbox)).highestmodseq == seen[-1]


async def test_changes_since_returns_exactly_what_changed_and_vanished(store, h):
    inbox = await h.box_id("INBOX")
    uids = [await h.append("INBOX", f"m{n}") for n in range(5)]
    mark = await h.highestmodseq("INBOX")
    nothing = await store.changes_since(inbox, mark)
    assert nothing.changed == () and nothing.vanished == ()
    assert nothing.highestmodseq == mark and nothing.uidnext == uids[-1] + 1

    await store.update_flags(inbox, [uids[1]], ("\\Answered",), FlagMode.ADD)
    await store.update_flags(inbox, [uids[2]], ("\\Deleted",), FlagMode.ADD)
    await store.expunge(inbox)
    new_uid = await h.append("INBOX", "new")
    await h.deliver("delivered")
    sent = await h.box_id("Sent")
    sent_uid = await h.append("Sent", "in sent")
    [(_, copied)] = await store.copy_messages(sent, [sent_uid], inbox)

    changes = await store.changes_since(inbox, mark)
    states = {s.uid: s for s in await store.message_states(inbox)}
    assert [s.uid for s in changes.changed] == [uids[1], new_uid, new_uid + 1, copied]
    assert list(changes.changed) == [states[s.uid] for s in changes.changed]
    assert all(s.modseq > mark for s in changes.changed)
    assert changes.vanished == (uids[2],)
    assert changes.highestmodseq == await h.highestmodseq("INBOX")
    assert changes.uidnext == (await h.box("INBOX")).uidnext == copied + 1

    # Only what came after a later mark.
    mark2 = changes.highestmodseq
    await store.update_flags(inbox, [uids[0]], ("\\Seen",), FlagMode.ADD)
    later = await store.changes_since(inbox, mark2)
    assert [s.uid for s in later.changed] == [uids[0]] and later.vanished == ()
    everything = await store.changes_since(inbox, 0)
    assert [s.uid for s in everything.changed] == sorted(states) == [s.uid for s in
                                                                     await store.message_states(inbox)]
    assert everything.vanished == (uids[2],)


# Flags ------------------------------------------------------------------------------------------


async def test_flag_modes(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "flags", flags=("\\Seen",))
    assert await h.flags("INBOX", uid) == ("\\Seen",)
    await store.update_flags(inbox, [uid], ("\\Flagged", "$Work"), FlagMode.ADD)
    assert set(await h.flags("INBOX", uid)) == {"\\Seen", "\\Flagged", "$Work"}
    await store.update_flags(inbox, [uid], ("\\Flagged",), FlagMode.REMOVE)
    assert set(await h.flags("INBOX", uid)) == {"\\Seen", "$Work"}
    await store.update_flags(inbox, [uid], ("\\Answered",), FlagMode.SET)
    assert await h.flags("INBOX", uid) == ("\\Answered",)
    await store.update_flags(inbox, [uid], (), FlagMode.SET)
    assert await h.flags("INBOX", uid) == ()


async def test_update_flags_reports_what_changed_and_skips_missing_uids(store, h):
    inbox = await h.box_id("INBOX")
    a = await h.append("INBOX", "a", flags=("\\Seen",))
    b = await h.append("INBOX", "b")
    updated, refused = await store.update_flags(inbox, [a, b, 999], ("\\Seen",), FlagMode.ADD)
    assert refused == []
    assert [s.uid for s in updated] == [b]  # a had it already; 999 does not exist
    assert updated[0].flags == ("\\Seen",)
    assert updated[0].modseq == await h.highestmodseq("INBOX")


async def test_update_flags_of_several_messages_shares_one_modseq(store, h):
    inbox = await h.box_id("INBOX")
    uids = [await h.append("INBOX", f"m{n}") for n in range(3)]
    before = await h.highestmodseq("INBOX")
    updated, _ = await store.update_flags(inbox, uids, ("\\Seen",), FlagMode.ADD)
    assert len(updated) == 3 and len({s.modseq for s in updated}) == 1
    assert updated[0].modseq > before


async def test_flag_remove_is_case_insensitive(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "cases", flags=("\\Seen", "$Label", "\\Flagged"))
    updated, _ = await store.update_flags(inbox, [uid], ("\\SEEN", "$label"), FlagMode.REMOVE)
    assert [s.uid for s in updated] == [uid]
    assert await h.flags("INBOX", uid) == ("\\Flagged",)


async def test_flag_add_is_case_insensitive(store, h):
    """Like REMOVE (above) and like postar.imap.flags.normalize_flags, ADD treats flag names without
    regard to case: adding $WORK to a message that has $Work changes nothing and makes no
    duplicate. (System flags reach the store canonically spelt already; keywords keep their case.)"""
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "cases", flags=("\\Seen", "$Work"))
    before = await h.highestmodseq("INBOX")
    updated, _ = await store.update_flags(inbox, [uid], ("$WORK",), FlagMode.ADD)
    assert updated == []
    assert await h.flags("INBOX", uid) == ("\\Seen", "$Work")
    assert await h.highestmodseq("INBOX") == before


async def test_setting_identical_flags_changes_nothing(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "same", flags=("\\Seen", "$Work"))
    before = await h.highestmodseq("INBOX")
    state_before = await store.message_states(inbox)
    for flags, mode in [(("$Work", "\\Seen"), FlagMode.SET), (("\\Seen",), FlagMode.ADD),
                        (("\\Draft",), FlagMode.REMOVE), ((), FlagMode.ADD)]:
        updated, refused = await store.update_flags(inbox, [uid], flags, mode)
        assert (updated, refused) == ([], [])
    assert await h.highestmodseq("INBOX") == before
    assert await store.message_states(inbox) == state_before
    assert (await store.changes_since(inbox, before)).changed == ()


async def test_duplicate_flags_are_kept_once(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "dups", flags=("\\Seen", "\\Seen"))
    assert await h.flags("INBOX", uid) == ("\\Seen",)
    await store.update_flags(inbox, [uid], ("$A", "$A", "\\Seen"), FlagMode.ADD)
    assert sorted(await h.flags("INBOX", uid)) == ["$A", "\\Seen"]


async def test_unchangedsince_refuses_messages_modified_later(store, h):
    """RFC 7162 §3.1.3: a message whose modseq is above UNCHANGEDSINCE is left alone and reported."""
    inbox = await h.box_id("INBOX")
    old = await h.append("INBOX", "old")
    mark = await h.highestmodseq("INBOX")
    newer = await h.append("INBOX", "newer")
    touched = await h.append("INBOX", "touched")
    await store.update_flags(inbox, [old], ("$Other",), FlagMode.ADD)  # old is now modified after mark too
    untouched = await h.append("INBOX", "untouched")
    await store.update_flags(inbox, [touched], ("\\Flagged",), FlagMode.ADD)
    states_before = {s.uid: s for s in await store.message_states(inbox)}

    mark2 = states_before[untouched].modseq
    updated, refused = await store.update_flags(inbox, [old, newer, touched, untouched], ("\\Seen",),
                                                FlagMode.ADD, unchanged_since=mark2)
    assert sorted(refused) == [touched]
    assert sorted(s.uid for s in updated) == [old, newer, untouched]
    after = {s.uid: s for s in await store.message_states(inbox)}
    assert after[touched] == states_before[touched]
    assert all("\\Seen" in after[u].flags for u in (old, newer, untouched))

    updated, refused = await store.update_flags(inbox, [old, newer], ("\\Answered",), FlagMode.ADD,
                                                unchanged_since=mark)
    assert (updated, sorted(refused)) == ([], [old, newer])


async def test_unchangedsince_zero_always_fails(store, h):
    """RFC 7162 §3.1.3: UNCHANGEDSINCE 0 fails for every existing message."""
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "any")
    before = await h.highestmodseq("INBOX")
    assert await store.update_flags(inbox, [uid], ("\\Seen",), FlagMode.ADD, unchanged_since=0) == ([], [uid])
    assert await h.highestmodseq("INBOX") == before


async def test_unchangedsince_at_the_current_modseq_succeeds(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "any")
    current = await h.highestmodseq("INBOX")
    updated, refused = await store.update_flags(inbox, [uid], ("\\Seen",), FlagMode.ADD, unchanged_since=current)
    assert refused == [] and [s.uid for s in updated] == [uid]


# Expunge ----------------------------------------------------------------------------------------


async def test_expunge_removes_only_deleted_messages(store, h):
    inbox = await h.box_id("INBOX")
    keep = await h.append("INBOX", "keep", flags=("\\Seen",))
    gone1 = await h.append("INBOX", "gone1", flags=("\\Deleted",))
    keep2 = await h.append("INBOX", "keep2", flags=("$Deleted", "Deleted"))
    gone2 = await h.append("INBOX", "gone2", flags=("\\Seen", "\\Deleted"))
    mark = await h.highestmodseq("INBOX")
    assert await store.expunge(inbox) == [gone1, gone2]
    assert await h.uids("INBOX") == [keep, keep2]
    assert await store.message_content(inbox, gone1) is None
    assert await store.message_infos(inbox, [gone1, keep, gone2]) == await store.message_infos(inbox, [keep])
    changes = await store.changes_since(inbox, mark)
    assert changes.vanished == (gone1, gone2) and changes.changed == ()
    assert changes.highestmodseq > mark


async def test_uid_expunge_removes_only_the_given_uids(store, h):
    """RFC 9051 §6.4.9: UID EXPUNGE removes only those of the given UIDs that are \\Deleted."""
    inbox = await h.box_id("INBOX")
    a = await h.append("INBOX", "a", flags=("\\Deleted",))
    b = await h.append("INBOX", "b", flags=("\\Deleted",))
    c = await h.append("INBOX", "c")
    d = await h.append("INBOX", "d", flags=("\\Deleted",))
    assert await store.expunge(inbox, [b, c, 999]) == [b]
    assert await h.uids("INBOX") == [a, c, d]
    assert await store.expunge(inbox, []) == []
    assert await h.uids("INBOX") == [a, c, d]
    assert await store.expunge(inbox) == [a, d]


async def test_expunge_with_nothing_to_do_changes_nothing(store, h):
    inbox = await h.box_id("INBOX")
    await h.append("INBOX", "keep")
    before = await h.highestmodseq("INBOX")
    assert await store.expunge(inbox) == []
    assert await h.highestmodseq("INBOX") == before


# Copy and move ----------------------------------------------------------------------------------


async def test_copy_keeps_flags_date_and_bytes_and_gives_new_uids_in_order(store, h):
    inbox = await h.box_id("INBOX")
    archive = await h.box_id("Archive")
    await h.append("Archive", "already there")  # so the target's UIDs do not start at 1
    await h.deliver("delivered")
    a = (await h.uids("INBOX"))[0]
    b = await h.append("INBOX", "appended", flags=("\\Seen", "$Work"), internal_date=1_500_000_000.5)
    c = await h.append("INBOX", "third", flags=("\\Answered",))
    target_next = (await h.box("Archive")).uidnext

    pairs = await store.copy_messages(inbox, [c, a, b, 999], archive)
    assert pairs == [(a, target_next), (b, target_next + 1), (c, target_next + 2)]
    source = {i.uid: i for i in await store.message_infos(inbox, [a, b, c])}
    copies = {i.uid: i for i in await store.message_infos(archive, [n for _, n in pairs])}
    for old, new in pairs:
        assert copies[new].flags == source[old].flags
        assert copies[new].internal_date == source[old].internal_date
        assert copies[new].size == source[old].size
        assert copies[new].summary == source[old].summary
        assert copies[new].prefix_length == source[old].prefix_length
        assert await store.message_content(archive, new) == await store.message_content(inbox, old)
    assert await h.uids("INBOX") == [a, b, c]  # the source keeps its messages
    assert (await h.box("Archive")).uidnext == target_next + 3


async def test_move_removes_from_source_and_reports_pairs(store, h):
    """RFC 6851: MOVE is copy + expunge of the originals; the source sees them vanish."""
    inbox = await h.box_id("INBOX")
    junk = await h.box_id("Junk")
    uids = [await h.append("INBOX", f"m{n}", flags=("\\Seen",) if n else ()) for n in range(4)]
    data = {u: await store.message_content(inbox, u) for u in uids}
    mark = await h.highestmodseq("INBOX")
    pairs = await store.copy_messages(inbox, [uids[1], uids[3]], junk, move=True)
    assert [old for old, _ in pairs] == [uids[1], uids[3]]
    assert [new for _, new in pairs] == [1, 2]
    assert await h.uids("INBOX") == [uids[0], uids[2]]
    assert await h.uids("Junk") == [1, 2]
    for old, new in pairs:
        assert await store.message_content(junk, new) == data[old]
        assert await h.flags("Junk", new) == ("\\Seen",)
    changes = await store.changes_since(inbox, mark)
    assert changes.vanished == (uids[1], uids[3]) and changes.changed == ()


async def test_copy_into_a_deleted_mailbox_is_not_found(store, h):
    """Like append, a copy whose target mailbox is gone is refused with NotFound (IMAP: NO [TRYCREATE])."""
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "m")
    target = await store.create_mailbox(h.account_id, "Short-lived")
    await store.delete_mailbox(h.account_id, "Short-lived")
    with pytest.raises(NotFound):
        await store.copy_messages(inbox, [uid], target.id)
    assert await h.uids("INBOX") == [uid]


async def test_copied_bytes_survive_expunging_the_original_and_blobs_go_with_the_last_copy(store, h):
    inbox = await h.box_id("INBOX")
    archive = await h.box_id("Archive")
    trash = await h.box_id("Trash")
    await h.deliver("shared")
    [uid] = await h.uids("INBOX")
    original = await store.message_content(inbox, uid)
    assert blob_count(store) == 1
    [(_, in_archive)] = await store.copy_messages(inbox, [uid], archive)
    [(_, in_trash)] = await store.copy_messages(archive, [in_archive], trash)
    assert blob_count(store) == 1  # copies share the bytes

    await store.update_flags(inbox, [uid], ("\\Deleted",), FlagMode.ADD)
    assert await store.expunge(inbox) == [uid]
    assert await store.message_content(archive, in_archive) == original
    assert await store.message_content(trash, in_trash) == original
    assert blob_count(store) == 1
    assert await store.check() == []

    await store.update_flags(archive, [in_archive], ("\\Deleted",), FlagMode.ADD)
    await store.expunge(archive)
    assert await store.message_content(trash, in_trash) == original
    await store.delete_mailbox(h.account_id, "Trash")
    assert blob_count(store) == 0
    assert await store.check() == []


async def test_moved_bytes_survive_and_blob_is_kept_once(store, h):
    inbox = await h.box_id("INBOX")
    sent = await h.box_id("Sent")
    uid = await h.append("INBOX", "moving")
    data = await store.message_content(inbox, uid)
    [(_, new)] = await store.copy_messages(inbox, [uid], sent, move=True)
    assert await store.message_content(sent, new) == data
    assert blob_count(store) == 1


async def test_one_delivery_to_two_accounts_shares_bytes_until_both_are_gone(store, alice):
    bob = (await store.add_account(BOB, "hash")).id
    data = message_bytes("to both")
    await store.deliver(delivery(data, alice, bob))
    alice_inbox = (await store.find_mailbox(alice, "INBOX")).id
    bob_inbox = (await store.find_mailbox(bob, "INBOX")).id
    assert blob_count(store) == 1
    [a] = [s.uid for s in await store.message_states(alice_inbox)]
    [b] = [s.uid for s in await store.message_states(bob_inbox)]
    await store.update_flags(alice_inbox, [a], ("\\Deleted",), FlagMode.ADD)
    await store.expunge(alice_inbox)
    assert (await store.message_content(bob_inbox, b)).endswith(data)
    assert blob_count(store) == 1
    await store.delete_account(BOB)
    assert blob_count(store) == 0


async def test_queued_copy_keeps_its_bytes_when_the_local_copy_is_expunged(store, h):
    data = message_bytes("local and remote")
    await store.deliver(delivery(data, h.account_id, outbound=(OutboundRecipient("dave@remote.test"),)))
    inbox = await h.box_id("INBOX")
    [uid] = await h.uids("INBOX")
    await store.update_flags(inbox, [uid], ("\\Deleted",), FlagMode.ADD)
    await store.expunge(inbox)
    [entry] = await store.queue()
    assert [r.address for r in entry.recipients] == ["dave@remote.test"]
    assert blob_count(store) == 1


# Append and content -----------------------------------------------------------------------------


async def test_message_content_of_delivered_and_appended_messages(store, h):
    inbox = await h.box_id("INBOX")
    delivered = message_bytes("delivered")
    await store.deliver(delivery(delivered, h.account_id))
    [d_uid] = await h.uids("INBOX")
    assert await store.message_content(inbox, d_uid) == prefix_for(ALICE) + delivered

    appended = b"Subject: appended\r\n\r\nexact bytes, \x00 and all\r\nno final newline"
    a_uid = await store.append(inbox, appended, ("\\Seen",), 1_234_567_890.0, summarize_json(appended))
    assert await store.message_content(inbox, a_uid) == appended
    assert await store.message_content(inbox, 999) is None


async def test_message_infos(store, h):
    inbox = await h.box_id("INBOX")
    delivered = message_bytes("delivered")
    await store.deliver(delivery(delivered, h.account_id, internal_date=1_700_000_123.0))
    [d_uid] = await h.uids("INBOX")
    appended = message_bytes("appended")
    a_uid = await store.append(inbox, appended, ("\\Draft", "$X"), 1_234_567_890.0, summarize_json(appended))

    infos = await store.message_infos(inbox, [a_uid, 999, d_uid])
    assert [i.uid for i in infos] == [d_uid, a_uid]
    d, a = infos
    assert d.prefix_length == len(prefix_for(ALICE))
    assert d.size == len(prefix_for(ALICE)) + len(delivered)
    assert d.internal_date == 1_700_000_123.0
    assert d.summary == summarize_json(delivered)
    assert d.flags == ()
    assert a.prefix_length == 0
    assert a.size == len(appended)
    assert a.internal_date == 1_234_567_890.0
    assert a.flags == ("\\Draft", "$X")
    assert a.summary == summarize_json(appended)
    content = await store.message_content(inbox, d_uid)
    assert content[d.prefix_length:] == delivered and len(content) == d.size
    assert await store.message_infos(inbox, []) == []


async def test_message_infos_of_many_uids(store, h):
    inbox = await h.box_id("INBOX")
    uids = [await h.append("INBOX", f"m{n}") for n in range(3)]
    asked = list(range(1200, 0, -1))  # more than one query's worth of parameters
    assert [i.uid for i in await store.message_infos(inbox, asked)] == uids


async def test_append_to_a_missing_mailbox_is_not_found(store, h):
    box = await store.create_mailbox(h.account_id, "Temp")
    await store.delete_mailbox(h.account_id, "Temp")
    with pytest.raises(NotFound):
        await store.append(box.id, b"Subject: x\r\n\r\n", (), 0.0, "{}")


# Status and usage -------------------------------------------------------------------------------


async def test_mailbox_status_counts(store, h):
    inbox = await h.box_id("INBOX")
    empty = await store.mailbox_status(inbox)
    box = await h.box("INBOX")
    assert empty == MailboxStatus(0, 0, 0, 0, 1, box.uidvalidity, box.highestmodseq)

    delivered = message_bytes("delivered")
    await store.deliver(delivery(delivered, h.account_id))
    sizes = [len(prefix_for(ALICE)) + len(delivered)]
    for subject, flags in [("seen", ("\\Seen",)), ("deleted", ("\\Deleted",)),
                           ("both", ("\\Seen", "\\Deleted")), ("keyword", ("$Seen",))]:
        await h.append("INBOX", subject, flags=flags)
        sizes.append(len(message_bytes(subject)))
    status = await store.mailbox_status(inbox)
    box = await h.box("INBOX")
    assert status == MailboxStatus(messages=5, unseen=3, deleted=2, size=sum(sizes), uidnext=6,
                                   uidvalidity=box.uidvalidity, highestmodseq=box.highestmodseq)
    with pytest.raises(NotFound):
        await store.mailbox_status(10_000)


async def test_account_usage(store, alice):
    bob = (await store.add_account(BOB, "hash")).id
    helper = Helper(store, alice)
    assert await store.account_usage(alice) == 0
    delivered = message_bytes("delivered")
    await store.deliver(delivery(delivered, alice, bob))
    await helper.append("Sent", "sent")
    await store.create_mailbox(alice, "Extra")
    await helper.append("Extra", "xtra")
    expected = len(prefix_for(ALICE)) + len(delivered) + len(message_bytes("sent")) + len(message_bytes("xtra"))
    assert await store.account_usage(alice) == expected
    assert await store.account_usage(bob) == len(prefix_for(ALICE)) + len(delivered)
    # A copy counts again: it is another message of the account's, whatever the storage shares.
    inbox = await helper.box_id("INBOX")
    await store.copy_messages(inbox, await helper.uids("INBOX"), await helper.box_id("Archive"))
    assert await store.account_usage(alice) == expected + len(prefix_for(ALICE)) + len(delivered)


# Change notices ---------------------------------------------------------------------------------


async def not_woken(watch) -> bool:
    try:
        await asyncio.wait_for(watch.changed(), NOT_WOKEN)
    except TimeoutError:
        return True
    return False


async def test_watch_is_woken_by_a_delivery(store, h):
    with store.watch(await h.box_id("INBOX")) as watch:
        waiter = asyncio.ensure_future(watch.changed())
        await asyncio.sleep(0)
        assert not waiter.done()
        await h.deliver("wake up")
        await asyncio.wait_for(waiter, 5)


async def test_watch_is_woken_by_update_flags_and_expunge_from_another_call(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "m")
    with store.watch(inbox) as watch:
        waiter = asyncio.ensure_future(watch.changed())
        await store.update_flags(inbox, [uid], ("\\Deleted",), FlagMode.ADD)
        await asyncio.wait_for(waiter, 5)
        await store.expunge(inbox)
        await asyncio.wait_for(watch.changed(), 5)


async def test_watch_is_not_woken_by_another_mailbox(store, h):
    inbox = await h.box_id("INBOX")
    sent = await h.box_id("Sent")
    uid = await h.append("Sent", "elsewhere")
    with store.watch(inbox) as watch:
        await h.append("Sent", "elsewhere again")
        await store.update_flags(sent, [uid], ("\\Seen",), FlagMode.ADD)
        await store.create_mailbox(h.account_id, "Other")
        assert await not_woken(watch)


async def test_watch_is_not_woken_by_a_store_that_changes_nothing(store, h):
    inbox = await h.box_id("INBOX")
    uid = await h.append("INBOX", "m", flags=("\\Seen",))
    with store.watch(inbox) as watch:
        await store.update_flags(inbox, [uid], ("\\Seen",), FlagMode.ADD)
        assert await not_woken(watch)


async def test_watch_of_both_mailboxes_is_woken_by_a_move(store, h):
    inbox = await h.box_id("INBOX")
    trash = await h.box_id("Trash")
    uid = await h.append("INBOX", "m")
    with store.watch(inbox) as source, store.watch(trash) as target:
        await store.copy_messages(inbox, [uid], trash, move=True)
        await asyncio.wait_for(source.changed(), 5)
        await asyncio.wait_for(target.changed(), 5)


async def test_watch_is_woken_by_a_copy_into_it_but_the_source_is_not(store, h):
    inbox = await h.box_id("INBOX")
    archive = await h.box_id("Archive")
    uid = await h.append("INBOX", "m")
    with store.watch(inbox) as source, store.watch(archive) as target:
        await store.copy_messages(inbox, [uid], archive)
        await asyncio.wait_for(target.changed(), 5)
        assert await not_woken(source)


async def test_every_watcher_is_woken_and_a_closed_watch_no_more(store, h):
    inbox = await h.box_id("INBOX")
    with store.watch(inbox) as first, store.watch(inbox) as second:
        await h.deliver("one")
        await asyncio.wait_for(first.changed(), 5)
        await asyncio.wait_for(second.changed(), 5)
    await h.deliver("two")
    assert await not_woken(first)


async def test_a_notice_comes_after_the_commit(store, h):
    """When the watcher wakes, changes_since already shows the change."""
    inbox = await h.box_id("INBOX")
    mark = await h.highestmodseq("INBOX")
    seen: list[int] = []

    async def session() -> None:
        with store.watch(inbox) as watch:
            ready.set()
            await watch.changed()
            seen.extend(s.uid for s in (await store.changes_since(inbox, mark)).changed)

    ready = asyncio.Event()
    task = asyncio.ensure_future(session())
    await ready.wait()
    await h.deliver("news")
    await asyncio.wait_for(task, 5)
    assert seen == [1]


# The whole -------------------------------------------------------------------------------------


async def test_check_is_clean_after_a_mixed_workload(store, h):
    inbox = await h.box_id("INBOX")
    for n in range(5):
        await h.deliver(f"d{n}")
    await store.create_mailbox(h.account_id, "Work")
    await store.create_mailbox(h.account_id, "Work/Old")
    work = await h.box_id("Work")
    uids = await h.uids("INBOX")
    await store.copy_messages(inbox, uids[:3], work)
    await store.copy_messages(inbox, uids[3:], await h.box_id("Work/Old"), move=True)
    await store.update_flags(work, await h.uids("Work"), ("\\Deleted",), FlagMode.ADD)
    await store.expunge(work, (await h.uids("Work"))[:1])
    await store.rename_mailbox(h.account_id, "Work", "Job")
    await store.rename_mailbox(h.account_id, "INBOX", "Inbox Archive")
    await store.delete_mailbox(h.account_id, "Job/Old")
    await h.deliver("after it all")
    assert await store.check() == []
    assert (await store.mailbox_status(inbox)).messages == 1
    sizes = [(await store.mailbox_status(b.id)).size for b in await store.list_mailboxes(h.account_id)]
    assert await store.account_usage(h.account_id) == sum(sizes)
