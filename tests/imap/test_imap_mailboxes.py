"""IMAP mailbox commands over real sockets: LIST, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS, NAMESPACE.

Tests that need an exact mailbox list use a fresh account (``new_user``);
the others use uniquely named mailboxes of the shared accounts. Compared with
Dovecot 2.3.19 (sdbox): postar quotes every mailbox name, lists INBOX first,
subscribes a mailbox when it is created (Dovecot does not; RFC 9051 asks
neither) and refuses to DELETE a mailbox with children where Dovecot makes it
\\Noselect (RFC 9051 §6.3.5 allows both).
"""

from __future__ import annotations

import re

from imapclient import IMAPClient

from tests.conftest import PASSWORD, USERS
from tests.imap.wire import (
    Wire,
    append,
    deliver,
    imapclient,
    new_user,
    quote,
    unique,
)

SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk", "Archive": "\\Archive"}
LIST_LINE = re.compile(rb'\* (LIST|LSUB) \(([^)]*)\) "/" (.*)')


def listed(untagged: list[bytes]) -> dict[str, set[str]]:
    """{name: attributes} of LIST/LSUB responses; names unquoted."""
    out = {}
    for line in untagged:
        match = LIST_LINE.fullmatch(line)
        if match:
            name = match.group(3).decode()
            out[name[1:-1] if name.startswith('"') else name] = set(match.group(2).decode().split())
    return out


def status_of(untagged: list[bytes]) -> dict[str, int]:
    [line] = [u for u in untagged if u.startswith(b"* STATUS ")]
    items = line[line.rindex(b"(") + 1:-1].decode().split()
    return {items[i]: int(items[i + 1]) for i in range(0, len(items), 2)}


# LIST ---------------------------------------------------------------------------------

def test_new_account_lists_inbox_and_special_use_folders(server):
    wire = Wire.login(server, new_user(server))
    untagged = wire.expect("OK", 'LIST "" "*"')
    assert untagged[0] == b'* LIST (\\HasNoChildren) "/" "INBOX"'
    boxes = listed(untagged)
    assert set(boxes) == {"INBOX", *SPECIAL}
    for name, use in SPECIAL.items():
        assert use in boxes[name], (name, boxes[name])
    assert not any(a.startswith("\\") and a not in ("\\HasNoChildren",) for a in boxes["INBOX"])
    special_only = listed(wire.expect("OK", 'LIST (SPECIAL-USE) "" "*"'))
    assert set(special_only) == set(SPECIAL)
    assert listed(wire.expect("OK", 'LIST "" "*" RETURN (SPECIAL-USE)'))["Sent"] >= {"\\Sent"}
    wire.close()


def test_list_empty_pattern_gives_delimiter_and_percent_stops_at_it(server):
    wire = Wire.login(server, new_user(server))
    assert wire.expect("OK", 'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""']
    wire.expect("OK", "CREATE top/mid/leaf")
    assert set(listed(wire.expect("OK", 'LIST "" "%"'))) == {"INBOX", "top", *SPECIAL}
    assert set(listed(wire.expect("OK", 'LIST "" "*"'))) == {"INBOX", "top", "top/mid", "top/mid/leaf", *SPECIAL}
    assert set(listed(wire.expect("OK", 'LIST "" "top/%"'))) == {"top/mid"}
    assert set(listed(wire.expect("OK", 'LIST "top/" "%"'))) == {"top/mid"}
    assert set(listed(wire.expect("OK", 'LIST "" "top/*"'))) == {"top/mid", "top/mid/leaf"}
    assert set(listed(wire.expect("OK", 'LIST "" "inbox"'))) == {"INBOX"}  # INBOX in any case
    assert set(listed(wire.expect("OK", 'LIST "" ("Sent" "Trash")'))) == {"Sent", "Trash"}
    assert wire.expect("OK", 'LIST "" "nosuch*"') == []
    wire.close()


def test_create_makes_parents_with_children_attributes(server):
    wire = Wire.login(server)
    top = unique()
    wire.expect("OK", f"CREATE {top}/a/b")
    boxes = listed(wire.expect("OK", f'LIST "" "{top}*"'))
    assert boxes == {top: {"\\HasChildren"}, f"{top}/a": {"\\HasChildren"}, f"{top}/a/b": {"\\HasNoChildren"}}
    wire.expect("NO [ALREADYEXISTS]", f"CREATE {top}/a/b")
    wire.expect("NO [ALREADYEXISTS]", f"CREATE {top}")
    wire.expect("NO [ALREADYEXISTS]", "CREATE INBOX")
    wire.expect("NO [ALREADYEXISTS]", "CREATE inbox")
    wire.expect("OK", f"CREATE {top}/c/")  # a trailing delimiter is dropped (§6.3.4)
    assert listed(wire.expect("OK", f'LIST "" "{top}/c*"')) == {f"{top}/c": {"\\HasNoChildren"}}
    wire.expect("OK", f"SELECT {top}/a")  # a superior made on the way is a real mailbox
    wire.close()


def test_delete_refuses_inbox_and_mailboxes_with_children(server):
    wire = Wire.login(server)
    top = unique()
    wire.expect("OK", f"CREATE {top}/child")
    wire.expect("NO", "DELETE INBOX")
    wire.expect("NO", "DELETE inbox")
    wire.expect("NO", f"DELETE {top}")
    wire.expect("NO [NONEXISTENT]", f"DELETE {top}/nosuch")
    wire.expect("OK", f"DELETE {top}/child")
    wire.expect("OK", f"DELETE {top}")
    assert wire.expect("OK", f'LIST "" "{top}*"') == []
    wire.expect("NO [NONEXISTENT]", f"SELECT {top}")
    wire.expect("OK", "SELECT INBOX")
    wire.close()


def test_delete_with_children_says_haschildren(server):
    # RFC 9051 §6.3.5: a server that will not delete a mailbox with inferiors "SHOULD disallow the
    # DELETE command by returning a tagged NO response. The NO response SHOULD include the
    # HASCHILDREN response code." (Dovecot deletes it and leaves a \Noselect name instead.)
    wire = Wire.login(server)
    top = unique()
    wire.expect("OK", f"CREATE {top}/child")
    wire.expect("NO [HASCHILDREN]", f"DELETE {top}")
    wire.close()


def test_delete_then_create_does_not_reuse_uids(server):
    # §6.3.5: a new mailbox of the same name must not reuse UIDs unless UIDVALIDITY changed.
    wire = Wire.login(server)
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    append(wire, name, b"Subject: one\r\n\r\n1\r\n")
    append(wire, name, b"Subject: two\r\n\r\n2\r\n")
    before = status_of(wire.expect("OK", f"STATUS {name} (UIDVALIDITY UIDNEXT)"))
    wire.expect("OK", f"DELETE {name}")
    wire.expect("OK", f"CREATE {name}")
    uid = append(wire, name, b"Subject: three\r\n\r\n3\r\n")
    after = status_of(wire.expect("OK", f"STATUS {name} (UIDVALIDITY MESSAGES)"))
    assert after["MESSAGES"] == 1
    assert after["UIDVALIDITY"] != before["UIDVALIDITY"] or uid >= before["UIDNEXT"]
    wire.close()


# RENAME -------------------------------------------------------------------------------

def test_rename_takes_children_and_messages_along(server):
    wire = Wire.login(server)
    old, new = unique(), unique()
    wire.expect("OK", f"CREATE {old}/kid/grandkid")
    append(wire, f"{old}/kid/grandkid", b"Subject: deep\r\n\r\nbody\r\n")
    append(wire, old, b"Subject: top\r\n\r\nbody\r\n")
    wire.expect("OK", f"RENAME {old} {new}/moved")
    assert wire.expect("OK", f'LIST "" "{old}*"') == []
    assert set(listed(wire.expect("OK", f'LIST "" "{new}*"'))) == {
        new, f"{new}/moved", f"{new}/moved/kid", f"{new}/moved/kid/grandkid"}
    assert status_of(wire.expect("OK", f"STATUS {new}/moved/kid/grandkid (MESSAGES)"))["MESSAGES"] == 1
    assert status_of(wire.expect("OK", f"STATUS {new}/moved (MESSAGES)"))["MESSAGES"] == 1
    wire.close()


def test_rename_refusals(server):
    wire = Wire.login(server)
    a, b = unique(), unique()
    wire.expect("OK", f"CREATE {a}")
    wire.expect("OK", f"CREATE {b}")
    wire.expect("NO [ALREADYEXISTS]", f"RENAME {a} {b}")
    wire.expect("NO [NONEXISTENT]", f"RENAME {unique()} {unique()}")
    wire.expect("NO", f"RENAME {a} INBOX")
    wire.expect("NO", f"RENAME {a} {a}/under")  # not into itself
    assert set(listed(wire.expect("OK", f'LIST "" "{a}*"'))) == {a}
    wire.close()


def test_rename_inbox_moves_its_messages_and_inbox_stays_empty(server):
    user = new_user(server)
    wire = Wire.login(server, user)
    for n in range(2):
        append(wire, "INBOX", f"Subject: inbox {n}\r\n\r\nbody\r\n".encode(), flags="\\Flagged")
    uidvalidity = status_of(wire.expect("OK", "STATUS INBOX (UIDVALIDITY)"))["UIDVALIDITY"]
    wire.expect("OK", "RENAME INBOX old-inbox")
    assert status_of(wire.expect("OK", "STATUS old-inbox (MESSAGES)"))["MESSAGES"] == 2
    inbox = status_of(wire.expect("OK", "STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY)"))
    assert inbox["MESSAGES"] == 0
    assert inbox["UIDVALIDITY"] != uidvalidity or inbox["UIDNEXT"] >= 3
    assert {"INBOX", "old-inbox"} <= set(listed(wire.expect("OK", 'LIST "" "*"')))
    untagged = wire.expect("OK", "SELECT old-inbox")
    assert b"* 2 EXISTS" in untagged
    fetched = wire.expect("OK", "FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert all(b"\\Flagged" in f for f in fetched) and b"inbox 1" in fetched[1]
    wire.expect("OK", "SELECT INBOX")
    wire.close()


# SUBSCRIBE, LSUB, LIST-EXTENDED --------------------------------------------------------

def test_subscribe_unsubscribe_and_lsub(server):
    wire = Wire.login(server)
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    wire.expect("OK", f"UNSUBSCRIBE {name}")  # not subscribed yet: still OK
    assert wire.expect("OK", f'LSUB "" "{name}"') == []
    assert wire.expect("OK", f'LIST (SUBSCRIBED) "" "{name}"') == []
    assert "\\Subscribed" not in listed(wire.expect("OK", f'LIST "" "{name}" RETURN (SUBSCRIBED)'))[name]
    wire.expect("OK", f"SUBSCRIBE {name}")
    assert listed(wire.expect("OK", f'LSUB "" "{name}"')) == {name: set()}
    assert "\\Subscribed" in listed(wire.expect("OK", f'LIST (SUBSCRIBED) "" "{name}"'))[name]
    assert "\\Subscribed" in listed(wire.expect("OK", f'LIST "" "{name}" RETURN (SUBSCRIBED)'))[name]
    wire.expect("OK", f"UNSUBSCRIBE {name}")
    assert wire.expect("OK", f'LSUB "" "{name}"') == []
    wire.close()


def test_list_return_status(server):
    wire = Wire.login(server)
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    append(wire, name, b"Subject: a\r\n\r\nunseen\r\n")
    append(wire, name, b"Subject: b\r\n\r\nseen\r\n", flags="\\Seen")
    untagged = wire.expect("OK", f'LIST "" "{name}" RETURN (STATUS (MESSAGES UNSEEN))')
    assert untagged == [f'* LIST (\\HasNoChildren) "/" "{name}"'.encode(),
                        f'* STATUS "{name}" (MESSAGES 2 UNSEEN 1)'.encode()]
    wire.expect("OK", f"SUBSCRIBE {name}")
    subscribed = wire.expect("OK", f'LIST (SUBSCRIBED) "" "{name}" RETURN (STATUS (MESSAGES))')
    assert subscribed[1] == f'* STATUS "{name}" (MESSAGES 2)'.encode()
    wire.expect("BAD", f'LIST "" "{name}" RETURN (STATUS (BOGUS))')
    wire.close()


# STATUS -------------------------------------------------------------------------------

def test_status_counts_size_and_modseq(server):
    wire = Wire.login(server)
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    empty = status_of(wire.expect("OK", f"STATUS {name} (MESSAGES UIDNEXT UNSEEN DELETED SIZE HIGHESTMODSEQ)"))
    assert empty["MESSAGES"] == 0 and empty["SIZE"] == 0 and empty["UIDNEXT"] >= 1
    first, second = b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nthe second one\r\n"
    append(wire, name, first, flags="\\Seen")
    append(wire, name, second, flags="\\Deleted")
    status = status_of(wire.expect("OK", f"STATUS {name} (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
                                         "HIGHESTMODSEQ RECENT)"))
    assert status["MESSAGES"] == 2 and status["UNSEEN"] == 1 and status["DELETED"] == 1
    assert status["SIZE"] == len(first) + len(second)
    assert status["UIDNEXT"] == empty["UIDNEXT"] + 2
    assert status["HIGHESTMODSEQ"] > empty["HIGHESTMODSEQ"]
    assert status["RECENT"] == 0
    wire.expect("BAD", f"STATUS {name} (MESSAGES BOGUS)")
    wire.expect("BAD", f"STATUS {name} ()")
    wire.expect("NO [NONEXISTENT]", f"STATUS {unique()} (MESSAGES)")
    wire.close()


# Names beyond ASCII --------------------------------------------------------------------

def test_modified_utf7_names(server):
    wire = Wire.login(server)
    tag = unique()
    encoded = f"{tag}-Entw&APw-rfe/&ZeVnLIqe-"  # Entwürfe/日本語
    wire.expect("OK", f"CREATE {quote(encoded)}")
    boxes = listed(wire.expect("OK", f'LIST "" "{tag}*"'))
    assert set(boxes) == {f"{tag}-Entw&APw-rfe", encoded}
    wire.expect("OK", f"SELECT {quote(encoded)}")
    wire.expect("BAD", f'CREATE "{tag}-&Jjo"')  # not valid modified UTF-7 (unterminated)
    wire.close()
    client = imapclient(server)  # imapclient encodes and decodes folder names itself
    assert client.folder_exists(f"{tag}-Entwürfe/日本語")
    client.create_folder(f"{tag}-Čtení")
    assert f"{tag}-Čtení" in [name for _, _, name in client.list_folders(pattern=f"{tag}*")]
    client.logout()
    wire = Wire.login(server)
    assert f"{tag}-&AQw-ten&AO0-" in listed(wire.expect("OK", f'LIST "" "{tag}*"'))
    wire.close()


def test_utf8_names_after_enable(server):
    tag = unique()
    wire = Wire.login(server)
    assert wire.expect("OK", "ENABLE UTF8=ACCEPT") == [b"* ENABLED UTF8=ACCEPT"]
    assert wire.expect("OK", "ENABLE UTF8=ACCEPT") == [b"* ENABLED"]  # only what is newly on
    name = f"{tag}-Grüße ✓"
    wire.expect("OK", f"CREATE {quote(name)}")
    assert wire.expect("OK", f'LIST "" "{tag}*"') == [f'* LIST (\\HasNoChildren) "/" "{name}"'.encode()]
    wire.expect("OK", f"SELECT {quote(name)}")
    assert status_of(wire.expect("OK", f"STATUS {quote(name)} (MESSAGES)")) == {"MESSAGES": 0}
    wire.close()
    plain = Wire.login(server)  # without ENABLE the same mailbox comes as modified UTF-7
    assert listed(plain.expect("OK", f'LIST "" "{tag}*"')) == {f"{tag}-Gr&APwA3w-e &JxM-": {"\\HasNoChildren"}}
    plain.close()


def test_enable_ignores_unknown_and_needs_an_argument(server):
    wire = Wire.login(server)
    assert wire.expect("OK", "ENABLE X-NOSUCH") == [b"* ENABLED"]
    wire.expect("BAD", "ENABLE")
    assert wire.expect("OK", "ENABLE CONDSTORE X-NOSUCH") == [b"* ENABLED CONDSTORE"]
    wire.close()


def test_namespace(server):
    wire = Wire.login(server)
    assert wire.expect("OK", "NAMESPACE") == [b'* NAMESPACE (("" "/")) NIL NIL']
    wire.close()


# Accounts are separate ----------------------------------------------------------------

def test_one_account_cannot_see_or_touch_anothers_mailboxes(server):
    name = unique()
    alice = Wire.login(server, USERS[0])
    alice.expect("OK", f"CREATE {name}")
    append(alice, name, b"Subject: alice only\r\n\r\nsecret\r\n")
    bob = Wire.login(server, USERS[1])
    assert bob.expect("OK", f'LIST "" "{name}*"') == []
    assert bob.expect("OK", f'LIST "" "*{name}*"') == []
    bob.expect("NO [NONEXISTENT]", f"SELECT {name}")
    bob.expect("NO [NONEXISTENT]", f"EXAMINE {name}")
    bob.expect("NO [NONEXISTENT]", f"STATUS {name} (MESSAGES)")
    bob.expect("NO [NONEXISTENT]", f"DELETE {name}")
    bob.expect("NO [NONEXISTENT]", f"RENAME {name} {unique()}")
    bob.expect("NO [TRYCREATE]", f"APPEND {name} {{3+}}\r\nbob")
    for other in (f"{USERS[0]}/{name}", f"../{USERS[0]}/{name}", f"#shared/{name}", f"~alice/{name}"):
        bob.expect("NO", f"SELECT {quote(other)}")
    bob.expect("OK", f"CREATE {name}")  # bob's own, of the same name, is his and empty
    assert status_of(bob.expect("OK", f"STATUS {name} (MESSAGES)")) == {"MESSAGES": 0}
    bob.expect("OK", "SELECT INBOX")
    bob.expect("OK", f"DELETE {name}")
    assert status_of(alice.expect("OK", f"STATUS {name} (MESSAGES)")) == {"MESSAGES": 1}
    alice.close()
    bob.close()


def test_each_account_has_its_own_inbox(server):
    subject = unique("only-bob-")
    deliver(server, USERS[1], subject)
    bob, alice = Wire.login(server, USERS[1]), Wire.login(server, USERS[0])
    bob.expect("OK", "EXAMINE INBOX")
    alice.expect("OK", "EXAMINE INBOX")
    assert re.fullmatch(rb"\* SEARCH \d+", bob.expect("OK", f"SEARCH SUBJECT {subject}")[0])
    assert alice.expect("OK", f"SEARCH SUBJECT {subject}") == [b"* SEARCH"]
    bob.close()
    alice.close()


def test_imapclient_folder_round_trip(server):
    client = imapclient(server, USERS[1])
    name = unique("ic-") + "/Ünter"
    client.create_folder(name)
    assert client.folder_exists(name)
    client.select_folder(name)
    client.rename_folder(name, name + "2")
    assert not client.folder_exists(name) and client.folder_exists(name + "2")
    client.unselect_folder()
    client.delete_folder(name + "2")
    assert not client.folder_exists(name + "2")
    status = client.folder_status("INBOX", ["MESSAGES", "UIDNEXT"])
    assert status[b"UIDNEXT"] > status[b"MESSAGES"]
    client.logout()


def test_imapclient_with_a_wrong_folder_name_gets_an_error(server):
    client = IMAPClient("127.0.0.1", port=server.ports["imaps"], ssl=True, ssl_context=server.client_tls(), timeout=30)
    client.login(USERS[1], PASSWORD)
    try:
        client.select_folder(unique("missing-"))
    except IMAPClient.Error as e:
        assert "NONEXISTENT" in str(e) or "does not exist" in str(e)
    else:
        raise AssertionError("SELECT of a missing folder succeeded")
    client.logout()


def test_a_subscription_outlives_its_mailbox(server):
    """RFC 9051 §6.3.7: the server does not remove a subscription when the mailbox goes."""
    wire = Wire.login(server)
    name = unique()
    wire.expect("OK", f"CREATE {name}")
    wire.expect("OK", f"SUBSCRIBE {name}")
    wire.expect("OK", f"DELETE {name}")
    assert listed(wire.expect("OK", f'LSUB "" "{name}"')) == {name: {"\\Noselect"}}
    assert listed(wire.expect("OK", f'LIST (SUBSCRIBED) "" "{name}"')) == {name: {"\\NonExistent", "\\Subscribed"}}
    assert wire.expect("OK", f'LIST "" "{name}"') == []
    wire.expect("OK", f"UNSUBSCRIBE {name}")
    assert wire.expect("OK", f'LSUB "" "{name}"') == []
