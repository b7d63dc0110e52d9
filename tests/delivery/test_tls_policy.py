"""TLS requirements for outbound connections: MTA-STS over a real HTTPS server, DANE over a
real validating resolver, certificate checks with trustme certificates."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from postar.delivery.dns import DNSFailure, TLSARecord, make_resolver
from postar.delivery.mta_sts import STSPolicies, STSPolicy, mx_allowed, parse_policy, sts_id
from postar.delivery.tls_policy import (OPPORTUNISTIC, TLSPolicies, TLSPolicyError, TLSRequirement, check_peer,
                                        client_context, peer_chain, requirement, usable)
from tests.delivery.dnsserver import DNSServer, free_port, tlsa_rdata
from tests.delivery.mta_sts_server import PolicyServer, policy

POLICY_HOST = "127.0.0.2"
MX_ADDRESS = "127.0.0.3"


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


SITES = ["enforce", "testing", "none", "bad", "missing", "redirect", "notxt", "cached", "big",
         "chunked", "twotxt", "nohost"]


@pytest.fixture(scope="module")
def https(ca):
    names = [f"mta-sts.{site}.sts.test" for site in SITES] + ["mta-sts.dane.test"]
    server = PolicyServer(POLICY_HOST, ca, names, {  # mta-sts.wrongcert.sts.test is not among the names
        "mta-sts.enforce.sts.test": (200, {"Content-Type": "text/plain"},
                                     policy("enforce", "mx1.enforce.sts.test", "*.mx.enforce.sts.test")),
        "mta-sts.testing.sts.test": (200, {}, policy("testing", "mx1.testing.sts.test")),
        "mta-sts.none.sts.test": (200, {}, policy("none")),
        "mta-sts.bad.sts.test": (200, {}, b"version: STSv2\nmode: enforce\nmx: mx\nmax_age: 100\n"),
        "mta-sts.redirect.sts.test": (301, {"Location": "https://mta-sts.enforce.sts.test/"}, b""),
        "mta-sts.notxt.sts.test": (200, {}, policy("enforce", "nowhere.test")),
        "mta-sts.cached.sts.test": (200, {}, policy("enforce", "first.test", max_age=600)),
        "mta-sts.big.sts.test": (200, {}, policy("enforce", "mx.big.sts.test") + b"x: " + b"y" * 70000 + b"\n"),
        "mta-sts.chunked.sts.test": (200, {"Transfer-Encoding": "chunked"}, policy("enforce", "*.chunked.sts.test")),
        "mta-sts.twotxt.sts.test": (200, {}, policy("enforce", "nowhere.test")),
        "mta-sts.wrongcert.sts.test": (200, {}, policy("enforce", "nowhere.test")),
        "mta-sts.dane.test": (200, {}, policy("enforce", "elsewhere.test")),
    })
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.issue_cert("mx.dane.test", "ta.dane.test")


def sts_zone(ids: dict[str, str] | None = None) -> dict[str, list[str]]:
    ids = ids or {}
    records: dict[str, list[str]] = {}
    for site in SITES + ["wrongcert"]:
        records[site] = [f"MX 10 mx1.{site}"]
        records[f"mx1.{site}"] = [f"A {MX_ADDRESS}"]
        if site != "notxt":
            records[f"_mta-sts.{site}"] = [f'TXT "v=STSv1; id={ids.get(site, "1")};"']
        if site != "nohost":
            records[f"mta-sts.{site}"] = [f"A {POLICY_HOST}"]
    records["_mta-sts.twotxt"].append('TXT "v=STSv1; id=2"')
    records["a.mx.enforce"] = [f"A {MX_ADDRESS}"]
    records["plainmx"] = [f"A {MX_ADDRESS}"]
    records["_25._tcp.plainmx"] = [f"TLSA 3 1 1 {'ab' * 32}"]
    return records


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory, ca, leaf):
    leaf_der, ca_der = der(leaf.cert_chain_pems[0].bytes()), der(ca.cert_pem.bytes())
    server = DNSServer(tmp_path_factory.mktemp("dns"))
    server.zone("sts.test", sts_zone())
    server.zone("dane.test", {
        "@": ["MX 10 mx"],
        "_mta-sts": ['TXT "v=STSv1; id=1"'],
        "mta-sts": [f"A {POLICY_HOST}"],
        "mx": [f"A {MX_ADDRESS}"], "_25._tcp.mx": [tlsa_rdata(3, 1, 1, leaf_der)],
        "_2525._tcp.mx": [tlsa_rdata(3, 0, 1, leaf_der)],
        "ta": [f"A {MX_ADDRESS}"], "_25._tcp.ta": [tlsa_rdata(2, 0, 1, ca_der)],
        "alias": ["CNAME mx"],
        "pkix": [f"A {MX_ADDRESS}"], "_25._tcp.pkix": [tlsa_rdata(1, 1, 1, leaf_der), tlsa_rdata(0, 0, 1, ca_der)],
        "plain": [f"A {MX_ADDRESS}"],
        "broken": [f"A {MX_ADDRESS}"], "_25._tcp.broken": [tlsa_rdata(3, 1, 1, leaf_der)],
    }, broken={("_25._tcp.broken", "TLSA")})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def resolver(dns_server):
    return make_resolver([dns_server.nameserver])


@pytest.fixture
def policies(https, ca_file):
    return STSPolicies(port=https.server_address[1], ca_file=ca_file, timeout=10)


# -- MTA-STS: parsing --

def test_sts_txt_record():
    assert sts_id(["v=STSv1; id=20160831085700Z;"]) == "20160831085700Z"
    assert sts_id(["v=STSv1 ; id=abc", "v=spf1 -all"]) == "abc"
    assert sts_id(["v=STSv1; id=1", "v=STSv1; id=2"]) is None      # RFC 8461 §3.1: exactly one
    assert sts_id(["v=STSv1; id=not-alnum"]) is None
    assert sts_id(["v=STSv1;"]) is None
    assert sts_id([]) is None


def test_parse_policy():
    parsed = parse_policy("version: STSv1\nmode: enforce\nmx: MX1.Example.com.\nmx: *.example.net\nmax_age:86400\n")
    assert parsed == STSPolicy("enforce", ("mx1.example.com", "*.example.net"), 86400)
    assert parse_policy(policy("none").decode()).mx == ()
    assert parse_policy(policy("testing", "a.test", max_age=9999999999).decode()).max_age == 31557600
    for bad, why in [("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1", "version"),
                     ("version: STSv1\nmode: strict\nmx: a\nmax_age: 1", "mode"),
                     ("version: STSv1\nmode: enforce\nmax_age: 1", "mx"),
                     ("version: STSv1\nmode: enforce\nmx: a\nmax_age: soon", "max_age"),
                     ("version: STSv1\nmode: enforce\nmx: a.*.test\nmax_age: 1", "mx"),
                     ("<html>", "colon")]:
        with pytest.raises(ValueError, match=why):
            parse_policy(bad)


def test_mx_patterns():
    sts = STSPolicy("enforce", ("mail.example.com", "*.example.net"), 1)
    assert mx_allowed(sts, "MAIL.example.com.")
    assert mx_allowed(sts, "mx1.example.net")
    assert not mx_allowed(sts, "example.net")           # a wildcard stands for one label
    assert not mx_allowed(sts, "a.b.example.net")
    assert not mx_allowed(sts, "other.example.com")


# -- MTA-STS: fetched over HTTPS --

async def test_enforce(resolver, policies):
    req = await requirement("enforce.sts.test", "mx1.enforce.sts.test", resolver, policies)
    assert req == TLSRequirement(True, ("mx1.enforce.sts.test",), (), "mta-sts")
    req = await requirement("enforce.sts.test", "a.mx.enforce.sts.test", resolver, policies)
    assert req.mandatory and req.verify_names == ("a.mx.enforce.sts.test",)
    with pytest.raises(TLSPolicyError, match="not an MX host the MTA-STS policy"):
        await requirement("enforce.sts.test", "mx1.testing.sts.test", resolver, policies)


async def test_testing_mode_never_refuses(resolver, policies):
    req = await requirement("testing.sts.test", "mx1.testing.sts.test", resolver, policies)
    assert req == TLSRequirement(False, ("mx1.testing.sts.test",), (), "mta-sts-testing")
    assert (await requirement("testing.sts.test", "mx1.enforce.sts.test", resolver, policies)).source == "mta-sts-testing"


async def test_mode_none(resolver, policies):
    assert await requirement("none.sts.test", "mx1.none.sts.test", resolver, policies) == OPPORTUNISTIC
    assert (await policies.get("none.sts.test", resolver)).mode == "none"


@pytest.mark.parametrize("site, reason", [
    ("bad", "bad policy at mta-sts.bad.sts.test: version is not STSv1"),
    ("missing", "HTTP status 404"),
    ("redirect", "HTTP status 301 (redirects are not followed"),
    ("big", "larger than 65536 bytes"),
    ("wrongcert", "certificate of mta-sts.wrongcert.sts.test not valid"),
    ("nohost", "no such host mta-sts.nohost.sts.test"),
])
async def test_unusable_policy_means_opportunistic(resolver, policies, site, reason):
    domain = f"{site}.sts.test"
    assert await requirement(domain, f"mx1.{domain}", resolver, policies) == OPPORTUNISTIC
    assert reason in policies.failures[domain][2]


async def test_untrusted_ca_is_refused(resolver, https):
    untrusting = STSPolicies(port=https.server_address[1], timeout=10)  # the system CAs only
    assert await untrusting.get("enforce.sts.test", resolver) is None
    assert "certificate of mta-sts.enforce.sts.test not valid" in untrusting.failures["enforce.sts.test"][2]


async def test_no_txt_no_fetch(resolver, policies, https):
    before = https.requests["mta-sts.notxt.sts.test"]
    assert await requirement("notxt.sts.test", "mx1.notxt.sts.test", resolver, policies) == OPPORTUNISTIC
    assert https.requests["mta-sts.notxt.sts.test"] == before


async def test_two_sts_records_mean_none(resolver, policies):
    assert await policies.get("twotxt.sts.test", resolver) is None
    assert "twotxt.sts.test" not in policies.failures


async def test_chunked_response(resolver, policies):
    assert (await policies.get("chunked.sts.test", resolver)).mx == ("*.chunked.sts.test",)


async def test_cache_by_id(resolver, https, ca_file, dns_server):
    now = [1_000_000.0]
    cache = STSPolicies(port=https.server_address[1], ca_file=ca_file, timeout=10, clock=lambda: now[0])
    host = "mta-sts.cached.sts.test"
    try:
        first = await cache.get("cached.sts.test", resolver)
        assert first.mx == ("first.test",) and first.id == "1"
        fetched = https.requests[host]
        https.sites[host] = (200, {}, policy("enforce", "second.test", max_age=600))
        assert await cache.get("cached.sts.test", resolver) == first          # same id: no fetch
        assert https.requests[host] == fetched

        dns_server.zone("sts.test", sts_zone({"cached": "2"}))                # a new id: fetched
        assert (await cache.get("cached.sts.test", resolver)).mx == ("second.test",)
        assert https.requests[host] == fetched + 1

        # the server gone and the TXT record too: the cached policy holds until max_age
        https.sites[host] = (500, {}, b"")
        dns_server.zone("sts.test", {k: v for k, v in sts_zone().items() if k != "_mta-sts.cached"})
        now[0] += 599
        assert (await cache.get("cached.sts.test", resolver)).mx == ("second.test",)
        now[0] += 2
        assert await cache.get("cached.sts.test", resolver) is None
    finally:
        https.sites[host] = (200, {}, policy("enforce", "first.test", max_age=600))
        dns_server.zone("sts.test", sts_zone())


async def test_failed_fetch_keeps_cached_policy(resolver, https, ca_file, dns_server):
    host = "mta-sts.cached.sts.test"
    cache = STSPolicies(port=https.server_address[1], ca_file=ca_file, timeout=10)
    try:
        assert (await cache.get("cached.sts.test", resolver)).mx == ("first.test",)
        https.sites[host] = (404, {}, b"")
        dns_server.zone("sts.test", sts_zone({"cached": "3"}))
        assert (await cache.get("cached.sts.test", resolver)).mx == ("first.test",)
        assert "HTTP status 404" in cache.failures["cached.sts.test"][2]
    finally:
        https.sites[host] = (200, {}, policy("enforce", "first.test", max_age=600))
        dns_server.zone("sts.test", sts_zone())


async def test_allowed_hosts(resolver, https, ca_file):
    tls = TLSPolicies(resolver, mta_sts_port=https.server_address[1], ca_file=ca_file)
    hosts = ["mx1.enforce.sts.test", "evil.test", "b.mx.enforce.sts.test"]
    assert await tls.allowed_hosts("enforce.sts.test", hosts) == ["mx1.enforce.sts.test", "b.mx.enforce.sts.test"]
    assert await tls.allowed_hosts("testing.sts.test", ["evil.test"]) == ["evil.test"]
    # dane.test's policy names neither, but DANE covers mx.dane.test (RFC 8461 §2)
    assert await tls.allowed_hosts("dane.test", ["mx.dane.test", "plain.dane.test"]) == ["mx.dane.test"]


# -- DANE: through the validating resolver --

async def test_dane_ee(resolver, policies, leaf):
    req = await requirement("dane.test", "mx.dane.test", resolver, policies)
    assert req.source == "dane" and req.mandatory
    assert req.tlsa == (TLSARecord(3, 1, 1, bytes.fromhex(tlsa_rdata(3, 1, 1, der(leaf.cert_chain_pems[0].bytes()))
                                                         .split()[-1])),)
    assert req.verify_names == ("mx.dane.test",)
    port = await requirement("dane.test", "mx.dane.test", resolver, policies, port=2525, mx_secure=True)
    assert [r.selector for r in port.tlsa] == [0] and port.verify_names == ("mx.dane.test", "dane.test")


async def test_dane_through_cname(resolver, policies):
    req = await requirement("dane.test", "alias.dane.test", resolver, policies)
    assert req.source == "dane" and req.verify_names == ("mx.dane.test", "alias.dane.test")


async def test_dane_beats_mta_sts(resolver, policies):
    assert (await requirement("dane.test", "ta.dane.test", resolver, policies)).source == "dane"
    with pytest.raises(TLSPolicyError):  # no TLSA there: the enforce policy applies
        await requirement("dane.test", "plain.dane.test", resolver, policies)


async def test_pkix_usages_unusable_yet_tls_mandatory(resolver, policies):
    assert await requirement("dane.test", "pkix.dane.test", resolver, policies) == \
        TLSRequirement(True, (), (), "dane")


async def test_tlsa_in_unsigned_zone_ignored(resolver, policies):
    assert await requirement("sts.test", "plainmx.sts.test", resolver, policies) == OPPORTUNISTIC


async def test_tlsa_servfail_means_not_now(resolver, policies):
    with pytest.raises(DNSFailure) as caught:
        await requirement("dane.test", "broken.dane.test", resolver, policies)
    assert caught.value.temporary and "SERVFAIL" in caught.value.reason


# -- DANE: certificate checks --

def dane(*records: tuple[int, int, int, bytes], names: tuple[str, ...] = ("mx.dane.test",)) -> TLSRequirement:
    tlsa = tuple(TLSARecord(u, s, m, bytes.fromhex(tlsa_rdata(u, s, m, d).split()[-1])) for u, s, m, d in records)
    return TLSRequirement(True, names, tlsa, "dane")


def test_dane_ee_matches(ca, leaf):
    chain = [der(leaf.cert_chain_pems[0].bytes()), der(ca.cert_pem.bytes())]
    for selector, matching in [(1, 1), (0, 0), (0, 1), (1, 2), (1, 0)]:
        assert check_peer(chain, dane((3, selector, matching, chain[0])), "mx.dane.test") is None
    # DANE-EE ignores names (RFC 7672 §3.1.1)
    assert check_peer(chain[:1], dane((3, 1, 1, chain[0]), names=("other.test",)), "mx.dane.test") is None


def test_dane_ee_mismatch(ca, leaf):
    chain = [der(leaf.cert_chain_pems[0].bytes())]
    other = der(ca.issue_cert("mx.dane.test").cert_chain_pems[0].bytes())
    assert check_peer(chain, dane((3, 1, 1, other)), "mx.dane.test") == \
        "no TLSA record of mx.dane.test matches its certificate chain"
    assert check_peer(chain, dane((3, 0, 1, other)), "mx.dane.test") is not None
    assert check_peer([], dane((3, 1, 1, other)), "mx.dane.test") == "mx.dane.test presented no certificate"


def test_dane_ta(ca, leaf):
    chain = [der(leaf.cert_chain_pems[0].bytes()), der(ca.cert_pem.bytes())]
    assert check_peer(chain, dane((2, 0, 1, chain[1])), "mx.dane.test") is None
    assert check_peer(chain, dane((2, 1, 1, chain[1])), "mx.dane.test") is None
    assert check_peer(chain, dane((2, 0, 1, chain[1]), names=("ta.dane.test",)), "ta.dane.test") is None
    # the name counts with DANE-TA
    assert "do not include other.test" in check_peer(chain, dane((2, 0, 1, chain[1]), names=("other.test",)),
                                                     "other.test")
    # the anchor must be presented, and must have signed the leaf
    assert check_peer(chain[:1], dane((2, 0, 1, chain[1])), "mx.dane.test") is not None
    stranger = trustme.CA()
    forged = [der(stranger.issue_cert("mx.dane.test").cert_chain_pems[0].bytes()), chain[1]]
    assert check_peer(forged, dane((2, 0, 1, chain[1])), "mx.dane.test") is not None
    assert check_peer(chain, dane((2, 0, 1, der(stranger.cert_pem.bytes()))), "mx.dane.test") is not None


def test_dane_ta_through_an_intermediate(ca):
    intermediate = ca.create_child_ca()
    cert = intermediate.issue_cert("mx.dane.test")
    chain = [der(pem.bytes()) for pem in cert.cert_chain_pems] + [der(ca.cert_pem.bytes())]
    assert len(chain) == 3
    assert check_peer(chain, dane((2, 0, 1, chain[2])), "mx.dane.test") is None
    assert check_peer(chain, dane((2, 1, 1, chain[1])), "mx.dane.test") is None
    assert check_peer([chain[0], chain[2], chain[1]], dane((2, 0, 1, chain[2])), "mx.dane.test") is None


def test_dane_ta_expired_leaf(ca):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    old = ca.issue_cert("mx.dane.test", not_before=past, not_after=past + datetime.timedelta(days=1))
    chain = [der(old.cert_chain_pems[0].bytes()), der(ca.cert_pem.bytes())]
    assert "expired" in check_peer(chain, dane((2, 0, 1, chain[1])), "mx.dane.test")
    assert check_peer(chain, dane((3, 1, 1, chain[0])), "mx.dane.test") is None  # EE: dates do not matter


def test_pkix_usages_are_unusable(leaf):
    leaf_der = der(leaf.cert_chain_pems[0].bytes())
    assert not usable(TLSARecord(0, 0, 1, bytes(32)))
    assert not usable(TLSARecord(1, 1, 1, bytes(32)))
    assert not usable(TLSARecord(3, 1, 1, bytes(31)))     # a digest of the wrong size
    assert not usable(TLSARecord(3, 2, 1, bytes(32)))
    assert not usable(TLSARecord(3, 1, 3, bytes(32)))
    assert usable(TLSARecord(3, 0, 0, leaf_der)) and usable(TLSARecord(2, 1, 2, bytes(64)))


def test_mta_sts_names_checked(ca, leaf):
    chain = [der(leaf.cert_chain_pems[0].bytes())]
    assert check_peer(chain, TLSRequirement(True, ("mx.dane.test",), (), "mta-sts"), "mx.dane.test") is None
    assert "do not include mx.other.test" in check_peer(
        chain, TLSRequirement(False, ("mx.other.test",), (), "mta-sts-testing"), "mx.other.test")
    assert check_peer(chain, OPPORTUNISTIC, "mx.other.test") is None


# -- real handshakes: what the client gets from ssl, and the contexts it uses --

@pytest.fixture
async def tls_server(ca, leaf, tmp_path):
    pem = tmp_path / "server.pem"
    pem.write_bytes(leaf.private_key_and_cert_chain_pem.bytes() + ca.cert_pem.bytes())  # the anchor sent too
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pem))

    async def handle(reader, writer):
        writer.close()

    server = await asyncio.start_server(handle, MX_ADDRESS, free_port(), ssl=context)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def handshake(port: int, context: ssl.SSLContext, name: str = "mx.dane.test") -> ssl.SSLObject:
    reader, writer = await asyncio.open_connection(MX_ADDRESS, port, ssl=context, server_hostname=name)
    ssl_object = writer.get_extra_info("ssl_object")
    writer.close()
    return ssl_object


async def test_dane_after_a_real_handshake(tls_server, ca, leaf):
    requirement_ta = dane((2, 0, 1, der(ca.cert_pem.bytes())))
    ssl_object = await handshake(tls_server, client_context(requirement_ta))
    chain = peer_chain(ssl_object)
    assert chain == [der(leaf.cert_chain_pems[0].bytes()), der(ca.cert_pem.bytes())]
    assert check_peer(ssl_object, requirement_ta, "mx.dane.test") is None
    assert check_peer(ssl_object, dane((3, 1, 1, chain[0])), "mx.dane.test") is None
    assert check_peer(ssl_object, dane((3, 1, 1, chain[1])), "mx.dane.test") is not None


async def test_contexts(tls_server, ca_file):
    sts = TLSRequirement(True, ("mx.dane.test",), (), "mta-sts")
    assert (await handshake(tls_server, client_context(sts, ca_file))).version() in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(tls_server, client_context(sts, ca_file), name="mx.other.test")
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(tls_server, client_context(sts))                      # the test CA not trusted
    context = client_context(OPPORTUNISTIC)
    assert context.verify_mode == ssl.CERT_NONE and context.minimum_version == ssl.TLSVersion.TLSv1_2
    await handshake(tls_server, context, name="anything.test")
