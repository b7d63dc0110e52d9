"""``postar dkim``: the keys that sign a domain's outgoing mail, and their DNS records.

``keygen`` makes the keys, stores them (private keys stay in the store) and
prints the TXT records to publish; ``show`` prints the records again. The
output pastes into a zone file as it is: the name, type and plain value (for a
DNS provider's web form) are in comments, followed by the record line.
"""

from __future__ import annotations

import time

import click

from postar.cli.common import with_store
from postar.delivery.dkim import ALGORITHMS, dns_record, generate_key, valid_selector, zone_line
from postar.store import AlreadyExists, DKIMKey, NotFound
from postar.store.sqlite import SQLiteStore

# Short names in the default selectors: postar-rsa-202506, postar-ed-202506.
_SELECTOR_TAGS = {"rsa": "rsa", "ed25519": "ed"}


def default_selector(algorithm: str, now: float | None = None) -> str:
    """``postar-<rsa|ed>-YYYYMM`` (UTC): a new one each month, so a rotated key gets a new name."""
    return f"postar-{_SELECTOR_TAGS[algorithm]}-{time.strftime('%Y%m', time.gmtime(now))}"


def _domain_of(text: str) -> str:
    return text.strip().lower().rstrip(".")


def print_records(keys: list[DKIMKey]) -> None:
    for key in sorted(keys, key=lambda k: (ALGORITHMS.index(k.algorithm), k.created, k.selector)):
        name, value = dns_record(key.selector, key.domain, key.algorithm, key.public_key)
        made = time.strftime("%Y-%m-%d", time.gmtime(key.created))
        click.echo(f"; DKIM {key.algorithm} key of {key.domain}, selector {key.selector}, made {made}\n"
                   f";   name:  {name}\n;   type:  TXT\n;   value: {value}\n{zone_line(name, value)}")


@click.group()
def dkim() -> None:
    """DKIM keys that sign the domains' outgoing mail (RFC 6376, RFC 8463)."""


@dkim.command("keygen")
@click.argument("domain")
@click.option("--selector", metavar="NAME", help="Selector of the new key (with --algorithm rsa or "
              "ed25519; default postar-rsa-YYYYMM or postar-ed-YYYYMM, this month).")
@click.option("--algorithm", type=click.Choice([*ALGORITHMS, "both"]), default="both", show_default=True,
              help="Key type; both: an RSA and an Ed25519 key, and mail is signed with each.")
@click.pass_context
def dkim_keygen(ctx: click.Context, domain: str, selector: str | None, algorithm: str) -> None:
    """Make DKIM keys for local DOMAIN and print the DNS TXT records to publish."""
    domain = _domain_of(domain)
    algorithms = ALGORITHMS if algorithm == "both" else (algorithm,)
    if selector is not None:
        if len(algorithms) > 1:
            raise click.UsageError("--selector names one key: give --algorithm rsa or ed25519 with it")
        if not valid_selector(selector):
            raise click.BadParameter(f"{selector!r} is not a selector (letters, digits, '-', '.')",
                                     param_hint="--selector")
    plan = [(a, selector or default_selector(a)) for a in algorithms]

    async def make(store: SQLiteStore) -> list[DKIMKey]:
        if not await store.is_local_domain(domain):
            raise NotFound(f"domain {domain} is not one of ours; add it first with: postar domain add {domain}")
        taken = {key.selector.lower() for key in await store.dkim_keys(domain)}
        for _, name in plan:  # checked first, so that "both" makes both keys or none
            if name.lower() in taken:
                raise AlreadyExists(f"domain {domain} has a DKIM key with selector {name} already; "
                                    "choose another with --selector")
        for alg, name in plan:
            await store.add_dkim_key(domain, name, alg, *generate_key(alg))
        return [key for key in await store.dkim_keys(domain) if key.selector in {name for _, name in plan}]

    keys = with_store(ctx, make)
    for key in keys:
        click.echo(f"made DKIM {key.algorithm} key {key.selector} for {domain}", err=True)
    print_records(keys)


@dkim.command("show")
@click.argument("domain")
@click.pass_context
def dkim_show(ctx: click.Context, domain: str) -> None:
    """Print the DNS TXT records of DOMAIN's DKIM keys (public keys only)."""
    domain = _domain_of(domain)

    async def read(store: SQLiteStore) -> list[DKIMKey]:
        if not await store.is_local_domain(domain):
            raise NotFound(f"domain {domain} is not one of ours")
        return await store.dkim_keys(domain)

    keys = with_store(ctx, read)
    if not keys:
        raise click.ClickException(f"domain {domain} has no DKIM keys; make them with: postar dkim keygen {domain}")
    print_records(keys)
