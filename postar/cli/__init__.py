"""The ``postar`` command: run the service, and noun-verb admin commands on the store.

    postar [--config FILE] run
    postar domain add|list|del
    postar user add|list|del|passwd|disable|enable|imap|sent-copy|app-password|app-passwords|app-password-revoke
    postar user pop show|access|on-retrieve
    postar alias add|list|del
    postar queue list|show|retry|delete|hold|release
    postar dkim keygen|show
    postar config sample|doc|check
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import click

from postar.cli import accounts, config_commands, dkim, queue
from postar.cli.common import DEFAULT_CONFIG, config_path_of, load_config


@click.group()
@click.option("--config", "config_path", metavar="FILE", help=f"Config file (default {DEFAULT_CONFIG} "
              "if it exists, or $POSTAR_CONFIG; else built-in defaults).")
@click.version_option(package_name="postar")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """postar: mail on your own domain."""
    ctx.obj = {"config_path": config_path_of(config_path)}


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run every configured listener in the foreground until SIGTERM/SIGINT."""
    from postar import log, service

    config = load_config(ctx)
    log.configure(config.log_level)
    try:
        import uvloop
        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(service.run(config, ctx.obj["config_path"]))
    except service.StartupError as e:
        raise click.ClickException(str(e)) from None


for group in (accounts.domain, accounts.user, accounts.alias, queue.queue, dkim.dkim, config_commands.config_group):
    main.add_command(group)
