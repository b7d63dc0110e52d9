"""TLS enforcement in outbound delivery, end to end: a real postar delivering to real receiving
Postfix instances found through a real DNS server (unbound), with MTA-STS policies fetched
over HTTPS (``mta_sts_server.py``) and DANE TLSA records in DNSSEC-signed zones.

Covered here: MTA-STS enforce (delivered over verified TLS; a certificate for another name or
no STARTTLS keeps the message queued until the receiver is fixed; an MX host the policy does
not name is never used), MTA-STS testing (delivered whatever the certificate), DANE-EE (a
matching TLSA record delivers, a mismatching one or a TLSA look-up that SERVFAILs keeps the
message queued), and opportunistic TLS without any policy (plain when the receiver has no
STARTTLS, encrypted and unverified when it has).
"""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from postar.store import QueueEntry, RecipientStatus
from tests.delivery.dnsserver import DNSServer, tlsa_rdata
from tests.delivery.mta_sts_server import PolicyServer, policy
from tests.delivery.outbound import World, submit, wait_until
from tests.delivery.receivers import PostfixReceiver

POLICY_ADDRESS = "127.0.0.1"  # where every mta-sts.<domain> points

# each domain's policy: its mode and the MX hosts it names (one test each, so none shares a cache)
POLICIES = {
    "sts1.test": ("enforce", ["mx.sts1.test"]),
    "sts2cert.test": ("enforce", ["mx.sts2cert.test"]),
    "sts2plain.test": ("enforce", ["mx.sts2plain.test"]),
    "sts3.test": ("enforce", ["mx2.sts3.test"]),
    "sts4.test": ("enforce", ["elsewhere.sts4.test"]),
    "sts5.test": ("testing", ["mx.sts5.test"]),
    "sts6.test": ("testing", ["mx.sts6.test"]),
}
# MX records (preference, host, address); the others have one, mx.<domain> on 127.0.0.2
MX = {
    "sts3.test": [(10, "mx1", "127.0.0.3"), (20, "mx2", "127.0.0.2")],  # mx1 preferred, but not in the policy
}


def sts_zone(domain: str) -> dict[str, list[str]]:
    hosts = MX.get(domain, [(10, "mx", "127.0.0.2")])
    records = {"@": [f"MX {preference} {host}" for preference, host, _ in hosts],
               "_mta-sts": ['TXT "v=STSv1; id=20240101;"'],
               "mta-sts": [f"A {POLICY_ADDRESS}"]}
    for _, host, address in hosts:
        records[host] = [f"A {address}"]
    return records


@pytest.fixture(scope="module")
def dns_server(tmp_path_factory):
    server = DNSServer(tmp_path_factory.mktemp("dns"))
    for domain in POLICIES:
        server.zone(domain, sts_zone(domain))
    server.zone("plain.test", {"@": ["MX 10 mx"], "mx": ["A 127.0.0.2"]})
    server.zone("tlsonly.test", {"@": ["MX 10 mx"], "mx": ["A 127.0.0.2"]})
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def policy_server(ca):
    names = [f"mta-sts.{domain}" for domain in POLICIES]
    server = PolicyServer(POLICY_ADDRESS, ca, names, {
        f"mta-sts.{domain}": (200, {"Content-Type": "text/plain"}, policy(mode, *mx))
        for domain, (mode, mx) in POLICIES.items()})
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postar(world, policy_server):
    """A postar fetching MTA-STS policies from ``policy_server`` (it trusts the test CA)."""
    return world.postar(delivery=f"mta_sts_port = {policy_server.port}")


def first_attempt(postar) -> QueueEntry:
    """The one queued message, once its first attempt has been made (and recorded)."""
    def recorded() -> QueueEntry | None:
        # an attempt that raised is a bug in postar: show its traceback rather than the deferral
        assert "failed unexpectedly" not in postar.log(), postar.log()[-3000:]
        return next((e for e in postar.queue() if e.recipients[0].attempts >= 1), None)
    return wait_until(recorded, what="the first delivery attempt")


def flat(table: str) -> str:
    """A table as printed, without its lines and with cells wrapped over rows put back together."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", table).split())


def cert_der(receiver: PostfixReceiver) -> bytes:
    return x509.load_pem_x509_certificate(receiver.cert.read_bytes()).public_bytes(Encoding.DER)


def assert_delivered_over_tls(receiver: PostfixReceiver, postar, address: str, mx: str = "") -> None:
    """Postfix got it over TLS, and postar logged it as sent with TLS to ``mx`` (mx.<domain>)."""
    mx = mx or "mx." + address.partition("@")[2]
    [got] = receiver.wait_for(1, timeout=30)  # a retry is noticed within five seconds
    assert got.recipients == (address,)
    assert got.tls and got.tls_version in ("TLSv1.2", "TLSv1.3")
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert f"to=<{address}>, relay={mx}[{receiver.ip}]:{receiver.port}, tls=TLSv1" in postar.log()


# -- MTA-STS (RFC 8461) --

def test_enforce_delivers_over_verified_tls(world, postar, policy_server):
    receiver = world.receiver("127.0.0.2", ["sts1.test"])
    fetched = policy_server.requests["mta-sts.sts1.test"]
    submit(postar, ["ann@sts1.test"])
    assert_delivered_over_tls(receiver, postar, "ann@sts1.test")
    assert policy_server.requests["mta-sts.sts1.test"] == fetched + 1


@pytest.mark.parametrize("domain, broken, reason", [
    ("sts2cert.test", dict(name="other.example"),
     "TLS handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch"),
    ("sts2plain.test", dict(tls=False), "TLS required by mta-sts, but mx.sts2plain.test does not offer STARTTLS"),
], ids=["certificate-for-another-name", "no-starttls"])
def test_enforce_keeps_mail_queued_until_the_mx_has_valid_tls(world, postar, domain, broken, reason):
    receiver = world.receiver("127.0.0.2", [domain], **broken)
    submit(postar, [f"ben@{domain}"])
    entry = first_attempt(postar)
    [recipient] = entry.recipients
    assert recipient.status is RecipientStatus.QUEUED
    assert reason in recipient.last_reply and f"mx.{domain}[127.0.0.2]" in recipient.last_reply
    shown = postar.cli("queue", "show", entry.queue_id).stdout
    assert f"ben@{domain} queued 1" in flat(shown) and reason in flat(shown)
    assert "status=deferred" in postar.log() and "status=sent" not in postar.log()
    assert receiver.received() == []

    receiver.stop()  # the remote admin installs the right certificate
    fixed = world.receiver("127.0.0.2", [domain])
    assert "1 recipient to be tried now" in postar.cli("queue", "retry", entry.queue_id).stdout
    assert_delivered_over_tls(fixed, postar, f"ben@{domain}")


def test_enforce_skips_an_mx_the_policy_does_not_name(world, postar):
    unlisted = world.receiver("127.0.0.3", ["sts3.test"], name="mx1.sts3.test")  # valid TLS, preferred
    listed = world.receiver("127.0.0.2", ["sts3.test"], name="mx2.sts3.test")
    submit(postar, ["cat@sts3.test"])
    assert_delivered_over_tls(listed, postar, "cat@sts3.test", "mx2.sts3.test")
    assert unlisted.received() == [] and "127.0.0.3" not in postar.log()
    assert "mx1.sts3.test" not in postar.log()


def test_enforce_with_no_mx_the_policy_names_keeps_mail_queued(world, postar):
    receiver = world.receiver("127.0.0.2", ["sts4.test"])
    submit(postar, ["dan@sts4.test"])
    [recipient] = first_attempt(postar).recipients
    assert recipient.status is RecipientStatus.QUEUED
    assert recipient.last_reply == "451 4.7.5 no MX host of sts4.test is allowed by its MTA-STS policy"
    assert receiver.received() == []


def test_testing_mode_delivers_despite_a_certificate_for_another_name(world, postar, policy_server):
    receiver = world.receiver("127.0.0.2", ["sts5.test"], name="other.example")
    fetched = policy_server.requests["mta-sts.sts5.test"]
    submit(postar, ["eve@sts5.test"])
    assert_delivered_over_tls(receiver, postar, "eve@sts5.test")
    assert policy_server.requests["mta-sts.sts5.test"] == fetched + 1


def test_testing_mode_logs_the_certificate_problem(world, postar):
    world.receiver("127.0.0.2", ["sts6.test"], name="other.example")
    submit(postar, ["fox@sts6.test"])
    wait_until(lambda: "status=sent" in postar.log(), what="the delivery")
    assert "certificate names other.example do not include mx.sts6.test" in postar.log()


# -- DANE (RFC 7672): TLSA records at _PORT._tcp.<mx>, PORT being postar's mx_port --

def dane_zone(world: World, tlsa: str) -> dict[str, list[str]]:
    return {"@": ["MX 10 mx"], "mx": ["A 127.0.0.2"], f"_{world.port}._tcp.mx": [tlsa]}


def test_dane_ee_match_delivers_over_tls(world, postar):
    # DANE-EE does not look at names (RFC 7672 §3.1.1): a certificate for another name will do
    receiver = world.receiver("127.0.0.2", ["dane1.test"], name="other.example")
    world.dns.zone("dane1.test", dane_zone(world, tlsa_rdata(3, 1, 1, cert_der(receiver))), signed=True)
    submit(postar, ["fay@dane1.test"])
    assert_delivered_over_tls(receiver, postar, "fay@dane1.test")


def test_dane_ee_mismatch_keeps_mail_queued(world, postar, ca):
    receiver = world.receiver("127.0.0.2", ["dane2.test"])
    other = ca.issue_cert("mx.dane2.test").cert_chain_pems[0].bytes()  # the same name, another key
    other_der = x509.load_pem_x509_certificate(other).public_bytes(Encoding.DER)
    world.dns.zone("dane2.test", dane_zone(world, tlsa_rdata(3, 1, 1, other_der)), signed=True)
    submit(postar, ["gus@dane2.test"])
    [recipient] = first_attempt(postar).recipients
    assert recipient.status is RecipientStatus.QUEUED
    assert "TLS required by dane: no TLSA record of mx.dane2.test matches its certificate chain" \
        in recipient.last_reply
    assert receiver.received() == []


def test_dane_tlsa_servfail_means_not_now(world, postar):
    receiver = world.receiver("127.0.0.2", ["dane3.test"])
    records = dane_zone(world, tlsa_rdata(3, 1, 1, cert_der(receiver)))
    world.dns.zone("dane3.test", records, broken={(f"_{world.port}._tcp.mx", "TLSA")})
    submit(postar, ["hal@dane3.test"])
    entry = first_attempt(postar)
    [recipient] = entry.recipients
    assert recipient.status is RecipientStatus.QUEUED  # RFC 7672 §2.2: not delivered now, not bounced
    assert f"TLSA of _{world.port}._tcp.mx.dane3.test (SERVFAIL)" in recipient.last_reply
    assert receiver.received() == []

    world.dns.zone("dane3.test", records, signed=True)  # the zone's signatures repaired
    postar.cli("queue", "retry", entry.queue_id)
    assert_delivered_over_tls(receiver, postar, "hal@dane3.test")


# -- no policy: opportunistic TLS (RFC 7435) --

def test_opportunistic_without_starttls_delivers_in_plain(world, postar):
    receiver = world.receiver("127.0.0.2", ["plain.test"], tls=False)
    submit(postar, ["ida@plain.test"])
    [got] = receiver.wait_for(1)
    assert got.recipients == ("ida@plain.test",) and got.protocol == "ESMTP" and got.tls_version is None
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "to=<ida@plain.test>, relay=mx.plain.test[127.0.0.2]" in postar.log()
    assert "tls=none" in postar.log() and "status=sent" in postar.log()


def test_opportunistic_tls_verifies_nothing(world, postar):
    receiver = world.receiver("127.0.0.2", ["tlsonly.test"], name="other.example")
    submit(postar, ["jon@tlsonly.test"])
    assert_delivered_over_tls(receiver, postar, "jon@tlsonly.test")
