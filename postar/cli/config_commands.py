"""``postar config``: the configuration file."""

from __future__ import annotations

import click

from postar import config as config_module
from postar.cli.common import load_config


# Config --------------------------------------------------------------------------

@click.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("sample")
def config_sample() -> None:
    """Print a config file with every key and its default."""
    click.echo(config_module.sample())


@config_group.command("doc")
def config_doc() -> None:
    """Print the configuration reference (docs/configuration.md)."""
    click.echo(config_module.reference(), nl=False)


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Read the config file and report the first problem; warn about a hostname
    that other mail servers would not accept."""
    config = load_config(ctx)
    problem = config_module.hostname_problem(config.hostname)
    if problem:
        click.echo(f"warning: {problem}; set hostname = \"mail.example.org\" "
                   "(the name your MX record points to)", err=True)
    click.echo("config ok")
