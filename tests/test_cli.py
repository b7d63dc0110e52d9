"""The admin CLI: domains, users, aliases, app passwords and config files.

Each change is checked through the CLI's own listings, through the store, and,
on a running private server, through SMTP: a new alias or account works at
once, and a changed password, revoked app password or disabled account is
refused at once although the server remembers verified logins. Passwords are
stored only as argon2id hashes and never written in clear to any file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import smtplib
import subprocess
import sys
import tomllib

import pytest

from postar import config as config_module
from postar.smtp import replies
from postar.store.sqlite import SQLiteStore
from tests.conftest import PASSWORD, USERS, free_port, make_server, message

NEW_PASSWORD = "tr0ub4dor and 3 more"
APP_PASSWORD = re.compile(r"[a-z]{4}( [a-z]{4}){3}")


def postar(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "postar", *args], capture_output=True, text=True, timeout=60)


def code_of(reply: replies.Reply) -> tuple[int, str]:
    return reply.code, reply.enhanced


def login(server, user: str, password: str) -> tuple[int, str]:
    """One AUTH PLAIN attempt on submission after STARTTLS: (code, enhanced code)."""
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    client.user, client.password = user, password
    try:
        code, text = client.auth("PLAIN", client.auth_plain)
    except smtplib.SMTPAuthenticationError as error:
        code, text = error.smtp_code, error.smtp_error
    client.quit()
    return code, text.split()[0].decode()


def rcpt(server, address: str) -> tuple[int, str]:
    client = server.smtp()
    client.mail("bob@remote.test")
    code, text = client.rcpt(address)
    client.quit()
    return code, text.split()[0].decode()


def store_call(server, work):
    async def run():
        store = await SQLiteStore.open(server.data_dir)
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(run())


def failed(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0, result.stdout
    for word in words:
        assert word in result.stderr, result.stderr


def row_of(listing: str, address: str) -> str:
    [row] = [line for line in listing.splitlines() if f" {address} " in line]
    return row


# Domains, users and aliases --------------------------------------------------------

def test_domain_add_list_del(tmp_path, ca):
    server = make_server(tmp_path, ca)
    assert server.cli("domain", "add", "Other.Test").stdout == "domain other.test added\n"
    assert server.cli("domain", "list").stdout.split() == ["example.test", "other.test"]
    failed(server.cli("domain", "add", "other.test", check=False), "exists already")
    failed(server.cli("domain", "add", "not a domain", check=False))

    server.cli("user", "add", "carol@other.test", "--password-stdin", input=PASSWORD + "\n")
    failed(server.cli("domain", "del", "other.test", check=False), "accounts")
    failed(server.cli("domain", "del", "example.test", check=False), "accounts")
    assert server.cli("domain", "list").stdout.split() == ["example.test", "other.test"]

    server.cli("user", "del", "carol@other.test")
    server.cli("domain", "del", "other.test")
    assert server.cli("domain", "list").stdout.split() == ["example.test"]
    failed(server.cli("domain", "del", "other.test", check=False), "other.test")


def test_user_add_list_disable_enable_del(tmp_path, ca):
    server = make_server(tmp_path, ca)
    carol = "carol@example.test"
    assert server.cli("user", "add", carol, "--password-stdin", input=PASSWORD + "\n").stdout == \
        f"user {carol} added\n"
    listing = server.cli("user", "list").stdout
    for address in (*USERS, carol):
        assert "enabled" in row_of(listing, address)

    failed(server.cli("user", "add", carol, "--password-stdin", input=PASSWORD + "\n", check=False),
           "exists already")
    failed(server.cli("user", "add", "dave@nowhere.test", "--password-stdin", input=PASSWORD + "\n",
                      check=False), "nowhere.test")
    failed(server.cli("user", "add", "dave@example.test", "--password-stdin", input="short\n", check=False),
           "8 characters")
    failed(server.cli("user", "add", "not-an-address", "--password-stdin", input=PASSWORD + "\n", check=False))
    assert "dave@example.test" not in server.cli("user", "list").stdout

    server.cli("user", "disable", carol)
    assert "disabled" in row_of(server.cli("user", "list").stdout, carol)
    assert "enabled" in row_of(server.cli("user", "list").stdout, USERS[0])
    assert store_call(server, lambda s: s.find_account(carol)).disabled
    server.cli("user", "enable", carol)
    assert "enabled" in row_of(server.cli("user", "list").stdout, carol)
    assert not store_call(server, lambda s: s.find_account(carol)).disabled

    server.cli("alias", "add", "sales@example.test", carol)
    server.cli("user", "del", carol)
    assert carol not in server.cli("user", "list").stdout
    assert store_call(server, lambda s: s.find_account(carol)) is None
    assert "sales@example.test" not in server.cli("alias", "list").stdout  # its aliases went with it
    for verb in ("del", "disable", "enable"):
        failed(server.cli("user", verb, carol, check=False), carol)


def test_alias_add_list_del(tmp_path, ca):
    server = make_server(tmp_path, ca)
    server.cli("alias", "add", "sales@Example.Test", USERS[1])
    server.cli("alias", "add", "@example.test", USERS[0])
    listing = server.cli("alias", "list").stdout.splitlines()
    assert "sales@example.test -> bob@example.test" in listing
    assert "@example.test -> alice@example.test" in listing
    assert "team@example.test -> alice@example.test" in listing
    assert "team@example.test -> bob@example.test" in listing
    failed(server.cli("alias", "add", "sales@example.test", USERS[1], check=False), "exists already")
    failed(server.cli("alias", "add", "sales@other.test", USERS[1], check=False), "other.test")

    server.cli("alias", "del", "team@example.test", USERS[1])
    listing = server.cli("alias", "list").stdout.splitlines()
    assert "team@example.test -> alice@example.test" in listing
    assert "team@example.test -> bob@example.test" not in listing
    server.cli("alias", "del", "sales@example.test")
    server.cli("alias", "del", "@example.test")
    assert not [line for line in server.cli("alias", "list").stdout.splitlines()
                if line.startswith(("sales@", "@"))]
    failed(server.cli("alias", "del", "sales@example.test", check=False), "sales@example.test")


def test_changes_reach_the_running_server_at_once(start_server):
    server = start_server()
    carol = "carol@example.test"
    assert rcpt(server, "sales@example.test") == code_of(replies.USER_UNKNOWN)
    server.cli("alias", "add", "sales@example.test", USERS[1])
    assert rcpt(server, "sales@example.test") == code_of(replies.RECIPIENT_OK)
    client = server.smtp()
    client.sendmail("bob@remote.test", ["sales@example.test"], message(subject="for sales", to="sales@example.test"))
    client.quit()
    assert [m for m in server.messages(USERS[1]) if b"Subject: for sales" in m.content]
    server.cli("alias", "del", "sales@example.test")
    assert rcpt(server, "sales@example.test") == code_of(replies.USER_UNKNOWN)

    server.cli("user", "add", carol, "--password-stdin", input=PASSWORD + "\n")
    assert rcpt(server, carol) == code_of(replies.RECIPIENT_OK)
    assert login(server, carol, PASSWORD) == code_of(replies.AUTH_OK)
    server.cli("user", "del", carol)
    assert rcpt(server, carol) == code_of(replies.USER_UNKNOWN)
    assert login(server, carol, PASSWORD) == code_of(replies.AUTH_FAILED)


# Passwords -----------------------------------------------------------------------

def test_app_password_is_shown_once_works_and_revocation_is_immediate(start_server):
    server = start_server()
    result = server.cli("user", "app-password", USERS[0], "--name", "tb")
    password = result.stdout.splitlines()[-1]
    assert APP_PASSWORD.fullmatch(password), result.stdout
    listing = server.cli("user", "app-passwords", USERS[0]).stdout
    assert listing.split() == ["tb"]
    failed(server.cli("user", "app-password", USERS[0], "--name", "tb", check=False), "tb")

    spaced, unspaced = password, password.replace(" ", "")
    assert login(server, USERS[0], spaced) == code_of(replies.AUTH_OK)
    assert login(server, USERS[0], unspaced) == code_of(replies.AUTH_OK)
    assert login(server, USERS[1], spaced) == code_of(replies.AUTH_FAILED)  # it is alice's only
    client = server.smtp("submission")
    client.starttls(context=server.client_tls())
    client.ehlo()
    client.login(USERS[0], unspaced)
    assert client.sendmail(USERS[0], [USERS[1]], message(subject="via app password", sender=USERS[0])) == {}
    client.quit()

    # Both forms were just verified, so the server remembers them; revoking must still win.
    server.cli("user", "app-password-revoke", USERS[0], "--name", "tb")
    assert login(server, USERS[0], spaced) == code_of(replies.AUTH_FAILED)
    assert login(server, USERS[0], unspaced) == code_of(replies.AUTH_FAILED)
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_OK)
    assert server.cli("user", "app-passwords", USERS[0]).stdout.split() == []
    failed(server.cli("user", "app-password-revoke", USERS[0], "--name", "tb", check=False), "tb")


def test_passwd_refuses_the_old_password_at_once(start_server):
    server = start_server()
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_OK)  # now remembered
    server.cli("user", "passwd", USERS[0], "--password-stdin", input=NEW_PASSWORD + "\n")
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_FAILED)
    assert login(server, USERS[0], NEW_PASSWORD) == code_of(replies.AUTH_OK)
    assert login(server, USERS[1], PASSWORD) == code_of(replies.AUTH_OK)  # only alice's changed
    failed(server.cli("user", "passwd", "nobody@example.test", "--password-stdin",
                      input=NEW_PASSWORD + "\n", check=False), "nobody@example.test")


def test_disabled_account_cannot_log_in_but_still_receives(start_server):
    server = start_server()
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_OK)  # now remembered
    server.cli("user", "disable", USERS[0])
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_FAILED)
    assert [line for line in server.log().splitlines()
            if f"login failed for {USERS[0]}" in line and line.endswith("account disabled")]
    client = server.smtp()
    client.sendmail("bob@remote.test", [USERS[0]], message(subject="while disabled"))
    client.quit()
    assert [m for m in server.messages(USERS[0]) if b"Subject: while disabled" in m.content]
    server.cli("user", "enable", USERS[0])
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_OK)


def test_passwords_are_argon2id_hashes_and_never_written_in_clear(start_server):
    server = start_server()
    app = server.cli("user", "app-password", USERS[0], "--name", "phone").stdout.splitlines()[-1]
    wrong = "a wrong guess 12345"
    assert login(server, USERS[0], PASSWORD) == code_of(replies.AUTH_OK)
    assert login(server, USERS[0], app) == code_of(replies.AUTH_OK)
    assert login(server, USERS[0], wrong) == code_of(replies.AUTH_FAILED)
    server.stop()

    for address in USERS:
        credentials = store_call(server, lambda s: s.credentials(address))
        assert credentials.password_hash.startswith("$argon2id$")
        assert all(h.startswith("$argon2id$") for h in credentials.app_password_hashes)
    assert len(store_call(server, lambda s: s.credentials(USERS[0])).app_password_hashes) == 1

    secrets = [PASSWORD, app, app.replace(" ", ""), wrong]
    files = [path for path in server.root.rglob("*") if path.is_file()]  # the data dir and the log
    assert any(path.name.startswith("postar.sqlite3") for path in files)
    for path in files:
        content = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in content, f"{secret!r} in clear in {path}"
    database = server.data_dir / "postar.sqlite3"
    assert database.stat().st_mode & 0o077 == 0, "the database holding password hashes is readable by others"


# Config files --------------------------------------------------------------------

@pytest.mark.parametrize("text, key", [
    ("[limits]\nbogus = 1\n", "limits.bogus"),
    ("bogus_top = 1\n", "bogus_top"),
    ('[listen]\nimapp = "127.0.0.1:1430"\n', "listen.imapp"),
    ('[limits]\nrecipients = "many"\n', "limits.recipients"),
])
def test_config_check_names_the_bad_key(tmp_path, text, key):
    path = tmp_path / "postar.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n' + text)
    result = postar("--config", str(path), "config", "check")
    failed(result, f"'{key}'")
    assert "config ok" not in result.stdout


def test_run_refuses_a_config_with_an_unknown_key(tmp_path):
    path = tmp_path / "postar.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[listen]\nsmtp = "127.0.0.1:{free_port()}"\n'
                    f'submission = ""\nsubmissions = ""\n[limits]\nbogus = 1\n')
    failed(postar("--config", str(path), "run"), "'limits.bogus'")


def test_config_sample_parses_holds_every_key_and_passes_check(tmp_path):
    result = postar("config", "sample")
    assert result.returncode == 0, result.stderr
    sample = tomllib.loads(result.stdout)
    defaults = config_module.Config()
    for f in dataclasses.fields(config_module.Config):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            assert sample[f.name] == dataclasses.asdict(value), f"[{f.name}] differs from the defaults"
        else:
            assert sample[f.name] == value, f"{f.name} differs from the default"

    data_dir = tmp_path / "data"
    text, count = re.subn(r"(?m)^data_dir = .*$", f'data_dir = "{data_dir}"', result.stdout)
    assert count == 1
    path = tmp_path / "postar.toml"
    path.write_text(text)
    checked = postar("--config", str(path), "config", "check")
    assert (checked.returncode, checked.stdout) == (0, "config ok\n"), checked.stderr
