"""``postar queue``: the outbound queue, as Postfix's mailq/postqueue/postsuper offer it.

    postar queue list | show ID | retry [ID|--all] | delete ID | hold ID|--all | release ID|--all

A retry or release made here is committed to the store, then the running server
is told through its control FIFO (``store/control.py``) and looks at once.
"""

from __future__ import annotations

import time
from datetime import datetime

import click

from postar.cli.common import load_config, new_table, show, with_store
from postar.store import QueueEntry, RecipientStatus, control


@click.group()
def queue() -> None:
    """The outbound queue: mail waiting for other domains."""


def _age(created: float) -> str:
    seconds = max(0, int(time.time() - created))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _when(moment: float) -> str:
    if moment <= time.time():
        return "now"
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


@queue.command("list")
@click.pass_context
def queue_list(ctx: click.Context) -> None:
    """Messages waiting for delivery to other domains."""
    entries = with_store(ctx, lambda s: s.queue())
    table = new_table("queue id", "age", "size", "sender", "recipients", "state")
    for entry in entries:
        waiting = [r for r in entry.recipients if r.status is RecipientStatus.QUEUED]
        state = "held" if entry.held else (f"next {_when(min(r.next_attempt for r in waiting))}" if waiting else "")
        table.add_row(entry.queue_id, _age(entry.created), str(entry.size), entry.sender or "<>",
                      ", ".join(r.address for r in waiting), state)
    show(table)
    click.echo(f"{len(entries)} message{'s' if len(entries) != 1 else ''} in the queue")


@queue.command("show")
@click.argument("queue_id")
@click.pass_context
def queue_show(ctx: click.Context, queue_id: str) -> None:
    """One message's recipients, attempts and last replies."""
    entry: QueueEntry | None = with_store(ctx, lambda s: s.queue_entry(queue_id))
    if entry is None:
        raise click.ClickException(f"no queued message {queue_id}")
    click.echo(f"queue id: {entry.queue_id}{' (held)' if entry.held else ''}")
    click.echo(f"sender: <{entry.sender}>, size {entry.size}, queued {_age(entry.created)} ago"
               + (f", ENVID {entry.envid}" if entry.envid else "") + (f", RET {entry.ret}" if entry.ret else ""))
    table = new_table("recipient", "status", "attempts", "next attempt", "last reply")
    for r in entry.recipients:
        table.add_row(r.address, r.status.value, str(r.attempts),
                      _when(r.next_attempt) if r.status is RecipientStatus.QUEUED else "", r.last_reply)
    show(table)


def _which(queue_id: str | None, everything: bool) -> str | None:
    if bool(queue_id) == everything:
        raise click.UsageError("give a queue id or --all")
    return queue_id


@queue.command("retry")
@click.argument("queue_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Every queued message.")
@click.pass_context
def queue_retry(ctx: click.Context, queue_id: str | None, everything: bool) -> None:
    """Try again now (like postqueue -f / -i)."""
    which = _which(queue_id, everything)
    count = with_store(ctx, lambda s: s.retry_queue_entry(which))
    click.echo(f"{count} recipient{'s' if count != 1 else ''} to be tried now")
    _wake_server(ctx)


def _wake_server(ctx: click.Context) -> None:
    """Tell the running server to look at its queue now (the change is already stored)."""
    data_dir = load_config(ctx).data_path
    try:
        running = control.request_wake(data_dir)
    except OSError as e:
        click.echo(f"warning: could not tell the server ({e}); it looks at the queue within "
                   "queue_scan_interval seconds", err=True)
        return
    if not running:
        click.echo("postar is not running: the queue is looked at when it starts")


@queue.command("delete")
@click.argument("queue_id")
@click.pass_context
def queue_delete(ctx: click.Context, queue_id: str) -> None:
    """Remove a message from the queue without a bounce (like postsuper -d)."""
    with_store(ctx, lambda s: s.delete_queue_entry(queue_id))
    click.echo(f"{queue_id} deleted")


def _hold(ctx: click.Context, queue_id: str | None, everything: bool, held: bool) -> None:
    which = _which(queue_id, everything)
    count = with_store(ctx, lambda s: s.hold_queue_entry(which, held))
    click.echo(f"{count} message{'s' if count != 1 else ''} {'held' if held else 'released'}")
    if not held:
        _wake_server(ctx)


@queue.command("hold")
@click.argument("queue_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Every queued message.")
@click.pass_context
def queue_hold(ctx: click.Context, queue_id: str | None, everything: bool) -> None:
    """Keep a message in the queue without trying it (like postsuper -h)."""
    _hold(ctx, queue_id, everything, True)


@queue.command("release")
@click.argument("queue_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Every held message.")
@click.pass_context
def queue_release(ctx: click.Context, queue_id: str | None, everything: bool) -> None:
    """Let a held message be tried again (like postsuper -H)."""
    _hold(ctx, queue_id, everything, False)
