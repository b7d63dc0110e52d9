"""``postar domain``, ``postar user`` (with ``user pop``) and ``postar alias``."""

from __future__ import annotations

import click

from postar.auth.passwords import app_password_key, hash_password, make_app_password
from postar.cli.common import new_table, parse_address, read_password, show, with_store
from postar.smtp.parser import parse_mailbox
from postar.store import PopAccess, PopAction, PopSettings, StoreError
from postar.store.sqlite import SQLiteStore


# Domains -------------------------------------------------------------------------

@click.group()
def domain() -> None:
    """Mail domains served here."""


@domain.command("add")
@click.argument("name")
@click.pass_context
def domain_add(ctx: click.Context, name: str) -> None:
    """Serve mail for domain NAME."""
    name = name.strip().lower().rstrip(".")
    if parse_mailbox(f"x@{name}") is None or name.startswith("["):
        raise click.BadParameter(f"{name!r} is not a domain name")
    with_store(ctx, lambda s: s.add_domain(name))
    click.echo(f"domain {name} added")


@domain.command("list")
@click.pass_context
def domain_list(ctx: click.Context) -> None:
    """List the domains."""
    for name in with_store(ctx, lambda s: s.list_domains()):
        click.echo(name)


@domain.command("del")
@click.argument("name")
@click.pass_context
def domain_del(ctx: click.Context, name: str) -> None:
    """Stop serving domain NAME (it must have no accounts left)."""
    with_store(ctx, lambda s: s.delete_domain(name.lower()))
    click.echo(f"domain {name} deleted")


# Users ---------------------------------------------------------------------------

@click.group()
def user() -> None:
    """Accounts; the login name is always the full e-mail address."""


@user.command("add")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def user_add(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Add an account with its INBOX, Sent, Drafts, Trash, Junk and Archive."""
    address = parse_address(address)
    password_hash = hash_password(read_password(password_stdin))
    with_store(ctx, lambda s: s.add_account(address, password_hash))
    click.echo(f"user {address} added")


@user.command("list")
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """List the accounts."""
    accounts = with_store(ctx, lambda s: s.list_accounts())
    table = new_table("address", "state", "IMAP")
    for account in accounts:
        table.add_row(account.address, "disabled" if account.disabled else "enabled",
                      "on" if account.imap_enabled else "off")
    show(table)


@user.command("del")
@click.argument("address")
@click.pass_context
def user_del(ctx: click.Context, address: str) -> None:
    """Delete an account and all its mail."""
    address = parse_address(address)
    with_store(ctx, lambda s: s.delete_account(address))
    click.echo(f"user {address} deleted")


@user.command("passwd")
@click.argument("address")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
def user_passwd(ctx: click.Context, address: str, password_stdin: bool) -> None:
    """Change an account's password."""
    address = parse_address(address)
    password_hash = hash_password(read_password(password_stdin))
    with_store(ctx, lambda s: s.set_password(address, password_hash))
    click.echo(f"password of {address} changed")


@user.command("disable")
@click.argument("address")
@click.pass_context
def user_disable(ctx: click.Context, address: str) -> None:
    """Refuse all logins of an account (its mail is still received)."""
    _set_disabled(ctx, address, True)


@user.command("enable")
@click.argument("address")
@click.pass_context
def user_enable(ctx: click.Context, address: str) -> None:
    """Allow logins of a disabled account again."""
    _set_disabled(ctx, address, False)


def _set_disabled(ctx: click.Context, address: str, disabled: bool) -> None:
    address = parse_address(address)
    with_store(ctx, lambda s: s.set_disabled(address, disabled))
    click.echo(f"user {address} {'disabled' if disabled else 'enabled'}")


@user.command("imap")
@click.argument("address")
@click.argument("switch", type=click.Choice(["on", "off"]))
@click.pass_context
def user_imap(ctx: click.Context, address: str, switch: str) -> None:
    """Turn IMAP access of an account on or off (on by default)."""
    address = parse_address(address)
    with_store(ctx, lambda s: s.set_imap_enabled(address, switch == "on"))
    click.echo(f"IMAP access of {address} {switch}")


@user.command("sent-copy")
@click.argument("address")
@click.argument("switch", type=click.Choice(["on", "off"]))
@click.pass_context
def user_sent_copy(ctx: click.Context, address: str, switch: str) -> None:
    """Whether mail the account sends is also put in its Sent mailbox (on by default, as Gmail does).

    Turn it off for a client that uploads its own copy to Sent after a long delay."""
    address = parse_address(address)
    with_store(ctx, lambda s: s.set_sent_copy(address, switch == "on"))
    click.echo(f"Sent copy for {address} {switch}")


_ACCESS_TEXT = {PopAccess.OFF: "off", PopAccess.ALL: "on for all mail",
                PopAccess.NEW: "on for mail that arrives from now on"}
_ACTION_TEXT = {PopAction.KEEP: "keep it in the INBOX", PopAction.READ: "keep it, marked read",
                PopAction.ARCHIVE: "archive it", PopAction.TRASH: "move it to Trash"}


@user.group("pop")
def user_pop() -> None:
    """See and change an account's POP settings (as Gmail offers them)."""


def _show_pop(address: str, settings: PopSettings) -> None:
    click.echo(f"POP access of {address}: {_ACCESS_TEXT[settings.access]}")
    click.echo(f"when a message is downloaded with POP: {_ACTION_TEXT[settings.on_retrieve]}")


@user_pop.command("show")
@click.argument("address")
@click.pass_context
def user_pop_show(ctx: click.Context, address: str) -> None:
    """Show the POP settings."""
    address = parse_address(address)

    async def read(store: SQLiteStore) -> PopSettings:
        account = await store.find_account(address)
        if account is None:
            raise StoreError(f"no account {address}")
        return await store.pop_settings(account.id)
    _show_pop(address, with_store(ctx, read))


@user_pop.command("access")
@click.argument("address")
@click.argument("access", type=click.Choice([a.value for a in PopAccess]))
@click.pass_context
def user_pop_access(ctx: click.Context, address: str, access: str) -> None:
    """POP access: off, all (all mail), new (only mail that arrives from now on)."""
    address = parse_address(address)
    _show_pop(address, with_store(ctx, lambda s: s.set_pop_settings(address, access=PopAccess(access))))


@user_pop.command("on-retrieve")
@click.argument("address")
@click.argument("action", type=click.Choice([a.value for a in PopAction]))
@click.pass_context
def user_pop_on_retrieve(ctx: click.Context, address: str, action: str) -> None:
    """What a POP download does: keep, read (mark read), archive, trash.

    A message the client deletes leaves the INBOX: into Archive or Trash with
    archive or trash, deleted for good with keep or read."""
    address = parse_address(address)
    _show_pop(address, with_store(ctx, lambda s: s.set_pop_settings(address, on_retrieve=PopAction(action))))


@user.command("app-password")
@click.argument("address")
@click.option("--name", required=True, help="What the password is for, e.g. thunderbird.")
@click.pass_context
def user_app_password(ctx: click.Context, address: str, name: str) -> None:
    """Make an app password for one mail client; it is shown once."""
    address = parse_address(address)
    password = make_app_password()
    with_store(ctx, lambda s: s.add_app_password(address, name, hash_password(app_password_key(password))))
    click.echo(f"app password {name!r} for {address} (shown once, spaces optional):")
    click.echo(password)


@user.command("app-passwords")
@click.argument("address")
@click.pass_context
def user_app_passwords(ctx: click.Context, address: str) -> None:
    """List an account's app passwords (names only)."""
    address = parse_address(address)
    for entry in with_store(ctx, lambda s: s.list_app_passwords(address)):
        click.echo(entry.name)


@user.command("app-password-revoke")
@click.argument("address")
@click.option("--name", required=True, help="The app password's name.")
@click.pass_context
def user_app_password_revoke(ctx: click.Context, address: str, name: str) -> None:
    """Revoke an app password; clients using it are refused at once."""
    address = parse_address(address)
    with_store(ctx, lambda s: s.revoke_app_password(address, name))
    click.echo(f"app password {name!r} of {address} revoked")


# Aliases -------------------------------------------------------------------------

@click.group()
def alias() -> None:
    """Addresses that deliver to other addresses."""


@alias.command("add")
@click.argument("address")
@click.argument("target")
@click.pass_context
def alias_add(ctx: click.Context, address: str, target: str) -> None:
    """Deliver mail for ADDRESS (or @domain, a catch-all) to TARGET."""
    source = address.strip().lower() if address.startswith("@") else parse_address(address)
    target = parse_address(target)
    with_store(ctx, lambda s: s.add_alias(source, target))
    click.echo(f"alias {source} -> {target} added")


@alias.command("list")
@click.pass_context
def alias_list(ctx: click.Context) -> None:
    """List the aliases."""
    for entry in with_store(ctx, lambda s: s.list_aliases()):
        click.echo(f"{entry.address} -> {entry.target}")


@alias.command("del")
@click.argument("address")
@click.argument("target", required=False)
@click.pass_context
def alias_del(ctx: click.Context, address: str, target: str | None) -> None:
    """Delete an alias (only the one TARGET when given)."""
    with_store(ctx, lambda s: s.delete_alias(address.strip().lower(), target and parse_address(target)))
    click.echo(f"alias {address} deleted")
