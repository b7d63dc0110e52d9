"""MX, address, TXT and TLSA look-ups against a real resolver (unbound on loopback)."""

from __future__ import annotations

import socket
from collections import Counter

import dns.flags
import pytest

from postar.delivery.dns import (DNSFailure, TLSARecord, host_addresses, lookup_host, lookup_mx,
                                 mail_hosts, make_resolver, tlsa_records, txt_records)
from tests.delivery.dnsserver import DNSServer

HASH = "ab" * 32

EXAMPLE = {
    "@": ["MX 10 mx1", "MX 10 mx2", "MX 20 mx3"],
    "mx1": ["A 127.0.0.2"],
    "mx2": ["A 127.0.0.3", "AAAA ::1"],
    "mx3": ["A 127.0.0.4"],
    "implicit": ["A 127.0.0.5"],
    "noaddress": ['TXT "nothing to see"'],
    "nullmx": ["MX 0 ."],
    "nullbeside": ["MX 0 .", "MX 10 mx1"],
    "partial": ["MX 10 ghost", "MX 20 mx1"],
    "allghosts": ["MX 10 ghost", "MX 20 ghost2"],
    "tempmx": ["MX 10 mx.broken.test.", "MX 20 ghost"],
    "alias": ["CNAME mx1"],
    "_mta-sts": ['TXT "v=STSv1; " "id=20240101"'],
    "_25._tcp.mx1": [f"TLSA 3 1 1 {HASH}"],
}

SIGNED = {
    "@": ["MX 10 mx"],
    "mx": ["A 127.0.0.6"],
    "_25._tcp.mx": [f"TLSA 3 1 1 {HASH}", f"TLSA 2 0 1 {'cd' * 32}"],
    "_2525._tcp.mx": [f"TLSA 3 0 1 {HASH}"],
    "broken": ["A 127.0.0.7"],
    "_25._tcp.broken": [f"TLSA 3 1 1 {HASH}"],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = DNSServer(tmp_path_factory.mktemp("dns"))
    server.zone("example.test", EXAMPLE)
    server.zone("signed.test", SIGNED, broken={("_25._tcp.broken", "TLSA")})
    server.zone("bogus.test", {"@": ["MX 10 mx"], "mx": ["A 127.0.0.8"]}, bogus=True)
    server.start()
    server.servfail("broken.test")
    yield server
    server.stop()


@pytest.fixture
def resolver(server):
    return make_resolver([server.nameserver])


async def expect_failure(call, temporary: bool) -> str:
    with pytest.raises(DNSFailure) as caught:
        await call
    assert caught.value.temporary is temporary, caught.value.reason
    return caught.value.reason


# -- the resolver --

def test_resolver_asks_for_dnssec_and_honours_ports():
    resolver = make_resolver(["127.0.0.1:5353", "[::1]:5354", "::1", "192.0.2.1"])
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353), ("::1", 5354), ("::1", 53), ("192.0.2.1", 53)]
    assert resolver.ednsflags & dns.flags.DO
    assert resolver.flags & dns.flags.AD
    assert resolver.lifetime <= 30


def test_server_sets_ad_only_for_signed_zones(server):
    assert server.query("mx.signed.test", "A").flags & dns.flags.AD
    assert not server.query("mx1.example.test", "A").flags & dns.flags.AD


# -- MX --

async def test_mx_by_preference_equal_ones_shuffled(resolver):
    orders = Counter()
    for _ in range(200):
        hosts = await mail_hosts("example.test", resolver)
        assert sorted(hosts[:2]) == ["mx1.example.test", "mx2.example.test"]
        assert hosts[2] == "mx3.example.test"
        orders[hosts[0]] += 1
    # each order has probability 1/2: below 40 of 200 happens with odds of about 1e-18
    assert orders["mx1.example.test"] > 40 and orders["mx2.example.test"] > 40, orders


async def test_mx_secure_only_from_signed_zone(resolver):
    assert (await lookup_mx("signed.test", resolver)).secure
    result = await lookup_mx("example.test", resolver)
    assert not result.secure and not result.implicit


async def test_no_mx_means_the_domain_itself(resolver):
    result = await lookup_mx("implicit.example.test", resolver)
    assert result.hosts == ["implicit.example.test"] and result.implicit


async def test_no_mx_and_no_address_is_permanent(resolver):
    reason = await expect_failure(mail_hosts("noaddress.example.test", resolver), temporary=False)
    assert "no MX records and no address" in reason


async def test_null_mx_is_permanent(resolver):
    reason = await expect_failure(mail_hosts("nullmx.example.test", resolver), temporary=False)
    assert reason == "null MX: the domain accepts no mail (RFC 7505)"


async def test_null_mx_beside_real_ones_is_skipped(resolver):
    assert await mail_hosts("nullbeside.example.test", resolver) == ["mx1.example.test"]


async def test_no_such_domain_is_permanent(resolver):
    assert await expect_failure(mail_hosts("nosuch.example.test", resolver), False) == \
        "no such domain nosuch.example.test"
    # unbound's own RFC 6761 zone
    assert await expect_failure(mail_hosts("example.invalid", resolver), False) == "no such domain example.invalid"


async def test_mx_without_address_skipped_when_others_exist(resolver):
    assert await mail_hosts("partial.example.test", resolver) == ["mx1.example.test"]


async def test_no_mx_with_an_address_is_permanent(resolver):
    reason = await expect_failure(mail_hosts("allghosts.example.test", resolver), temporary=False)
    assert reason.startswith("no MX host of allghosts.example.test has an address")
    assert "ghost2.example.test" in reason


async def test_mx_whose_address_fails_for_now_is_kept(resolver):
    assert await mail_hosts("tempmx.example.test", resolver) == ["mx.broken.test"]


async def test_servfail_is_temporary(resolver):
    reason = await expect_failure(mail_hosts("broken.test", resolver), temporary=True)
    assert reason == "DNS server failure looking up MX of broken.test (SERVFAIL)"


async def test_bogus_signatures_are_temporary(resolver):
    reason = await expect_failure(mail_hosts("bogus.test", resolver), temporary=True)
    assert "SERVFAIL" in reason


async def test_timeout_is_temporary():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        resolver = make_resolver([f"127.0.0.1:{silent.getsockname()[1]}"])
        resolver.timeout = resolver.lifetime = 0.5
        reason = await expect_failure(mail_hosts("example.test", resolver), temporary=True)
    assert reason == "DNS timeout looking up MX of example.test"


async def test_bad_name_is_permanent(resolver):
    await expect_failure(mail_hosts("a" * 64 + ".test", resolver), temporary=False)


async def test_records_changed_between_look_ups(server, resolver):
    server.zone("changing.test", {"@": ["MX 10 one"], "one": ["A 127.0.0.2"], "two": ["A 127.0.0.3"]})
    assert await mail_hosts("changing.test", resolver) == ["one.changing.test"]
    server.zone("changing.test", {"@": ["MX 10 two"], "one": ["A 127.0.0.2"], "two": ["A 127.0.0.3"]})
    assert await mail_hosts("changing.test", resolver) == ["two.changing.test"]
    server.remove_zone("changing.test")


# -- addresses --

async def test_addresses_ipv4_then_ipv6(resolver):
    assert await host_addresses("mx2.example.test", resolver) == ["127.0.0.3", "::1"]


async def test_address_through_cname(resolver):
    result = await lookup_host("alias.example.test", resolver)
    assert result.addresses == ["127.0.0.2"] and result.canonical == "mx1.example.test"


async def test_ip_literals_are_their_own_address(resolver):
    assert await host_addresses("192.0.2.1", resolver) == ["192.0.2.1"]
    assert await host_addresses("[IPv6:2001:db8::1]", resolver) == ["2001:db8::1"]
    assert await host_addresses("[192.0.2.1]", resolver) == ["192.0.2.1"]


async def test_address_failures(resolver):
    assert await expect_failure(host_addresses("ghost.example.test", resolver), False) == \
        "no such host ghost.example.test"
    assert "has no address" in await expect_failure(host_addresses("noaddress.example.test", resolver), False)
    assert "SERVFAIL" in await expect_failure(host_addresses("mx.broken.test", resolver), True)


async def test_addresses_secure_only_in_signed_zone(resolver):
    assert (await lookup_host("mx.signed.test", resolver)).secure
    assert not (await lookup_host("mx1.example.test", resolver)).secure


# -- TXT --

async def test_txt_strings_joined(resolver):
    assert await txt_records("_mta-sts.example.test", resolver) == ["v=STSv1; id=20240101"]
    assert await txt_records("_mta-sts.nosuch.example.test", resolver) == []
    assert await txt_records("mx1.example.test", resolver) == []
    await expect_failure(txt_records("_mta-sts.broken.test", resolver), temporary=True)


# -- TLSA --

async def test_tlsa_validated(resolver):
    records = await tlsa_records("mx.signed.test", 25, resolver)
    assert sorted(records, key=str) == [TLSARecord(2, 0, 1, bytes.fromhex("cd" * 32)),
                                        TLSARecord(3, 1, 1, bytes.fromhex(HASH))]
    assert await tlsa_records("mx.signed.test", 2525, resolver) == [TLSARecord(3, 0, 1, bytes.fromhex(HASH))]


async def test_tlsa_in_unsigned_zone_ignored(resolver):
    assert await tlsa_records("mx1.example.test", 25, resolver) is None


async def test_tlsa_absent(resolver):
    assert await tlsa_records("mx.signed.test", 587, resolver) is None   # NXDOMAIN, validated
    assert await tlsa_records("nosuch.signed.test", 25, resolver) is None


async def test_tlsa_servfail_is_temporary(resolver):
    # the addresses validate; only the TLSA signatures are broken: "do not deliver now"
    assert (await lookup_host("broken.signed.test", resolver)).secure
    reason = await expect_failure(tlsa_records("broken.signed.test", 25, resolver), temporary=True)
    assert reason == "DNS server failure looking up TLSA of _25._tcp.broken.signed.test (SERVFAIL)"
