"""``postar queue``: the outbound queue."""

from __future__ import annotations

import click
from rich.console import Console

from postar.cli.common import new_table, with_store


# Queue ---------------------------------------------------------------------------

@click.group()
def queue() -> None:
    """The outbound queue."""


@queue.command("list")
@click.pass_context
def queue_list(ctx: click.Context) -> None:
    """Messages waiting for delivery to other domains."""
    entries = with_store(ctx, lambda s: s.queue())
    table = new_table("queue id", "size", "sender", "recipients")
    for entry in entries:
        table.add_row(entry.queue_id, str(entry.size), entry.sender or "<>",
                      ", ".join(r.address for r in entry.recipients))
    Console().print(table)
