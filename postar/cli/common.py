"""What the ``postar`` admin commands share: the config, the store, addresses, passwords, tables."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Awaitable, Callable

import click
from rich.console import Console
from rich.table import Table

from postar import config as config_module
from postar.smtp.parser import parse_mailbox
from postar.store import StoreError
from postar.store.sqlite import SQLiteStore

DEFAULT_CONFIG = "/etc/postar/postar.toml"


def config_path_of(given: str | None) -> str | None:
    if given:
        return given
    from_env = os.environ.get("POSTAR_CONFIG")
    if from_env:
        return from_env
    return DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None


def load_config(ctx: click.Context) -> config_module.Config:
    try:
        return config_module.load(ctx.obj["config_path"])
    except config_module.ConfigError as e:
        raise click.ClickException(str(e)) from None


def with_store(ctx: click.Context, work: Callable[[SQLiteStore], Awaitable[Any]]) -> Any:
    config = load_config(ctx)

    async def main() -> Any:
        store = await SQLiteStore.open(config.data_path)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except StoreError as e:
        raise click.ClickException(str(e)) from None


def parse_address(text: str) -> str:
    mailbox = parse_mailbox(text.strip())
    if mailbox is None or mailbox.domain.startswith("["):
        raise click.BadParameter(f"{text!r} is not an e-mail address like alice@example.org")
    return f"{mailbox.local}@{mailbox.domain}".lower()


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        raise click.UsageError("no terminal to ask for the password: use --password-stdin")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    return password


def show(table: Table) -> None:
    """Print a table; piped or in a script, as wide as it needs (ids never cut)."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)
    console.print(table)


def new_table(*columns: str) -> Table:
    table = Table(*columns)
    return table
