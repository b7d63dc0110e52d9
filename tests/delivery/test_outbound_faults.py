"""Outbound delivery when the other side misbehaves, against scripted SMTP servers found
through the real DNS server: "try later" then success, a server that stalls or drops
the connection in the middle of DATA, a 421 greeting, EHLO refused, a slow destination
beside a fast one, a kill -9 while a message is on the wire, and the smarthost.
"""

from __future__ import annotations

import signal
import ssl

import pytest

from tests.conftest import PASSWORD
from tests.delivery.outbound import SENDER, reports, submit, wait_until
from tests.delivery.scripted_smtp import DROP, STALL, Behaviour

ZONES = {
    "flaky.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.6"]},
    "two.test": {"@": ["MX 10 mx1", "MX 20 mx2"], "mx1": ["A 127.0.0.6"], "mx2": ["A 127.0.0.7"]},
    "slow.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.8"]},
    "fast.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.9"]},
}
QUICK = "retry_min = 0.3\nretry_max = 0.6\ncommand_timeout = 2\nconnect_timeout = 2"


def delivered(fake) -> list[bytes]:
    return [m for s in fake.sessions for m in s.messages if any(t.final and t.final.startswith("250")
                                                                    for t in s.transactions)]


def test_try_later_then_success_with_pipelining(world):
    fake = world.scripted("127.0.0.6", Behaviour(rcpt_default="450 4.2.0 Mailbox busy, try later"), Behaviour())
    postar = world.postar(QUICK)
    raw = submit(postar, ["kim@flaky.test", "lee@flaky.test"])
    sessions = fake.wait_for(lambda s: len(s) >= 2 and s[1].messages)
    first, second = sessions[0], sessions[1]
    assert [r.reply[:3] for r in first.transactions[0].recipients] == ["450", "450"]
    assert second.transactions[0].accepted == ["kim@flaky.test", "lee@flaky.test"]
    assert second.messages[0].endswith(raw) and second.tls is False
    assert any(len(batch) >= 3 for batch in second.batches), second.batches  # MAIL, RCPTs, DATA at once
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    log = postar.log()
    assert "status=deferred (450 4.2.0 Mailbox busy" in log and "attempt=2, status=sent" in log


@pytest.mark.parametrize("fault", [STALL, DROP])
def test_a_server_that_stalls_or_drops_mid_data_gets_the_message_again(world, fault):
    fake = world.scripted("127.0.0.6", Behaviour(cut_data_after=20, final=fault), Behaviour())
    postar = world.postar(QUICK)
    raw = submit(postar, ["max@flaky.test"], body="line\r\n" * 200)
    wait_until(lambda: postar.queue() == [], what="the message to be delivered")
    assert [m for m in delivered(fake)] and delivered(fake)[0].endswith(raw)
    assert fake.sessions[0].transactions[0].complete is False or fault is STALL
    assert "status=deferred" in postar.log() and reports(postar) == []


def test_a_421_greeting_moves_on_to_the_next_mx(world):
    world.scripted("127.0.0.6", Behaviour(greeting="421 4.3.2 Too busy, closing"))
    backup = world.scripted("127.0.0.7", Behaviour())
    postar = world.postar(QUICK)
    submit(postar, ["ned@two.test"])
    backup.wait_for(lambda s: s and s[0].messages)
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "421 4.3.2 Too busy" in postar.log() and "relay=mx2.two.test[127.0.0.7]" in postar.log()


def test_ehlo_refused_falls_back_to_helo(world):
    fake = world.scripted("127.0.0.6", Behaviour(ehlo="502 5.5.1 EHLO not implemented"))
    postar = world.postar(QUICK)
    submit(postar, ["olga@flaky.test"])
    [session] = fake.wait_for(lambda s: s and s[0].messages)
    assert any(c.startswith("HELO ") for c in session.commands)
    assert all(not t.params for t in session.transactions)  # no ESMTP parameters after HELO


def test_a_slow_destination_does_not_hold_up_the_others(world):
    slow = world.scripted("127.0.0.8", Behaviour(greeting=STALL))
    fast = world.scripted("127.0.0.9", Behaviour())
    postar = world.postar("concurrency = 3\nper_destination = 2\ncommand_timeout = 60\nconnect_timeout = 60")
    for n in range(4):
        submit(postar, [f"stuck{n}@slow.test"])
    slow.wait_for(lambda s: len(s) >= 2)  # both connections to slow.test are hanging
    submit(postar, ["quick@fast.test"])
    fast.wait_for(lambda s: s and s[0].messages)
    assert slow.connections == 2 and all(s.open for s in slow.sessions)


def test_kill_9_while_a_message_is_on_the_wire_loses_nothing(world):
    fake = world.scripted("127.0.0.6", Behaviour(final=STALL))
    postar = world.postar("command_timeout = 60\nretry_min = 0.3")
    raw = submit(postar, ["pat@flaky.test"])
    fake.wait_for(lambda s: s and s[0].transactions and s[0].transactions[0].complete)
    postar.stop(signal.SIGKILL)
    fake.script(Behaviour())
    postar.start()
    wait_until(lambda: postar.queue() == [], what="the queue to empty after the restart")
    got = delivered(fake)
    assert got and got[-1].endswith(raw) and len(got) == 1  # the stalled copy was never acknowledged
    assert postar.store_problems() == []


def test_the_smarthost_takes_everything(world):
    relay = world.scripted("127.0.0.9", Behaviour())
    postar = world.postar(f'smarthost = "127.0.0.9:{world.port}"\n' + QUICK)
    submit(postar, ["a@nowhere-in-dns.test", "b@flaky.test"])
    sessions = relay.wait_for(lambda s: sum(len(x.messages) for x in s) >= 2)
    recipients = sorted(a for s in sessions for t in s.transactions for a in t.accepted)
    assert recipients == ["a@nowhere-in-dns.test", "b@flaky.test"]
    assert all(t.sender == SENDER for s in sessions for t in s.transactions)


def test_dsn_parameters_are_passed_on_to_a_server_that_offers_dsn(world):
    fake = world.scripted("127.0.0.6", Behaviour())
    postar = world.postar(QUICK)
    submit(postar, ["quinn@flaky.test"], mail_options=("RET=HDRS", "ENVID=env-7"),
           rcpt_options=("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;quinn@flaky.test"))
    [session] = fake.wait_for(lambda s: s and s[0].messages)
    transaction = session.transactions[0]
    assert transaction.params["RET"] == "HDRS" and transaction.params["ENVID"] == "env-7"
    assert transaction.recipients[0].params == {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;quinn@flaky.test"}
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert reports(postar) == []  # the remote server reports success itself


def test_notify_success_to_a_server_without_dsn_gets_a_relayed_notice(world):
    fake = world.scripted("127.0.0.6", Behaviour(extensions=("PIPELINING", "8BITMIME")))
    postar = world.postar(QUICK)
    submit(postar, ["ruth@flaky.test"], rcpt_options=("NOTIFY=SUCCESS",))
    [session] = fake.wait_for(lambda s: s and s[0].messages)
    assert session.transactions[0].recipients[0].params == {}
    [notice] = wait_until(lambda: reports(postar), what="the relayed notice")
    assert notice["Subject"] == "Successful Mail Relay Report"
    assert "Action: relayed" in notice.as_string()


def test_the_smarthost_login_goes_only_over_verified_tls(world, tmp_path):
    issued = world.ca.issue_cert("relay.provider.test", "127.0.0.9")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issued.configure_cert(context)
    relay = world.scripted("127.0.0.9", Behaviour(tls=context, logins={"me@provider.test": "s3cret pw"}))
    secret = tmp_path / "smarthost-password"
    secret.write_text("s3cret pw\n")
    secret.chmod(0o600)
    postar = world.postar(f'smarthost = "127.0.0.9:{world.port}"\nsmarthost_user = "me@provider.test"\n'
                          f'smarthost_password_file = "{secret}"\n' + QUICK)
    submit(postar, ["tom@far.test"])
    [session] = relay.wait_for(lambda s: s and s[0].messages)
    assert session.tls and session.login == "me@provider.test"
    assert not any(c.startswith("AUTH") for c in session.commands[:session.commands.index("STARTTLS")])
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "s3cret" not in postar.log()


def test_the_smarthost_without_starttls_gets_no_password(world, tmp_path):
    relay = world.scripted("127.0.0.9", Behaviour())  # no STARTTLS offered
    secret = tmp_path / "smarthost-password"
    secret.write_text("s3cret pw\n")
    postar = world.postar(f'smarthost = "127.0.0.9:{world.port}"\nsmarthost_user = "me@provider.test"\n'
                          f'smarthost_password_file = "{secret}"\n' + QUICK)
    submit(postar, ["uma@far.test"])
    wait_until(lambda: "does not offer STARTTLS; the password is not sent" in postar.log(), what="the refusal")
    assert not any(c.startswith("AUTH") for s in relay.sessions for c in s.commands)
    assert postar.queue()[0].recipients[0].status.value == "queued"


def test_per_destination_rate_spaces_out_new_messages(world):
    """``per_destination_rate = 4``: new messages to one domain at least 1/4 s apart (submitted
    over one connection within milliseconds of each other; delivered on one cached connection)."""
    fake = world.scripted("127.0.0.6", Behaviour())
    postar = world.postar("per_destination_rate = 4\n" + QUICK)
    client = postar.submission(SENDER, PASSWORD)
    for n in range(4):
        client.sendmail(SENDER, [f"v{n}@flaky.test"], f"From: {SENDER}\r\nSubject: {n}\r\n\r\nHi.\r\n".encode())
    client.quit()
    sessions = fake.wait_for(lambda s: sum(len(x.messages) for x in s) >= 4)
    starts = sorted(t.started for s in sessions for t in s.transactions)
    assert len(starts) == 4 and all(b - a >= 0.2 for a, b in zip(starts, starts[1:])), starts


def test_smtputf8_declared_for_an_ascii_message_is_not_required(world):
    """RFC 6531 §3.4: SMTPUTF8 only when the message needs it; a plain message goes anyway."""
    fake = world.scripted("127.0.0.6", Behaviour(extensions=("PIPELINING", "8BITMIME")))
    postar = world.postar(QUICK)
    submit(postar, ["walt@flaky.test"], mail_options=("SMTPUTF8",))
    [session] = fake.wait_for(lambda s: s and s[0].messages)
    assert "SMTPUTF8" not in session.transactions[0].params


def test_a_burst_to_one_server_shares_one_connection(world):
    """As Postfix's connection cache: the next message to a server goes on the open session."""
    fake = world.scripted("127.0.0.6", Behaviour())
    postar = world.postar("per_destination = 1\n" + QUICK)
    client = postar.submission(SENDER, PASSWORD)
    for n in range(5):
        client.sendmail(SENDER, [f"x{n}@flaky.test"], f"From: {SENDER}\r\nSubject: {n}\r\n\r\nHi.\r\n".encode())
    client.quit()
    sessions = fake.wait_for(lambda s: sum(len(x.messages) for x in s) >= 5)
    assert len(sessions) < 5 and max(len(s.transactions) for s in sessions) >= 2
    fake.wait_closed(len(sessions), timeout=10)  # idle sessions are closed with QUIT after a while
    assert all(s.quit for s in fake.sessions)
