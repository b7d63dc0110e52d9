"""`postar queue retry` and `release`, each a process of its own, wake the running server's
queue runner (the control FIFO, postar/store/control.py).

The server retries after an hour and looks at its queue on its own once an hour
(``queue_scan_interval``): without the wake nothing would be tried again while the test
runs, so that the message arrives at all is what shows it. No timing is asserted.
"""

from __future__ import annotations

from tests.delivery.outbound import submit, wait_until
from tests.delivery.scripted_smtp import Behaviour

ZONES = {"later.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.6"]}}
HOURLY = "retry_min = 3600\nretry_max = 7200\nqueue_scan_interval = 3600"
BUSY = Behaviour(rcpt_default="450 4.2.0 Mailbox busy, try later")


def arrived(fake, address: str) -> bool:
    return any(address in t.accepted and t.complete for s in fake.sessions for t in s.transactions)


def deferred_once(postar):
    """The queued entry, once its first attempt (refused with 450) is recorded."""
    [entry] = wait_until(lambda: [e for e in postar.queue() if e.recipients[0].attempts == 1],
                         what="the first attempt")
    return entry


def test_queue_retry_wakes_the_running_server(world):
    fake = world.scripted("127.0.0.6", BUSY, Behaviour())
    postar = world.postar(HOURLY)
    submit(postar, ["pat@later.test"])
    entry = deferred_once(postar)
    assert "1 recipient to be tried now" in postar.cli("queue", "retry", entry.queue_id).stdout
    fake.wait_for(lambda sessions: arrived(fake, "pat@later.test"))
    wait_until(lambda: postar.queue() == [], what="the queue to empty")
    assert "attempt=2, status=sent" in postar.log()


def test_queue_release_wakes_the_running_server(world):
    fake = world.scripted("127.0.0.6", BUSY, Behaviour())
    postar = world.postar(HOURLY)
    submit(postar, ["pat@later.test"])
    entry = deferred_once(postar)
    postar.cli("queue", "hold", entry.queue_id)
    postar.cli("queue", "retry", entry.queue_id)  # due now, but held
    # New mail wakes the runner too: once it is delivered, the runner has looked after the
    # retry and passed over the held message, so only the release can bring it.
    submit(postar, ["quinn@later.test"])
    fake.wait_for(lambda sessions: arrived(fake, "quinn@later.test"))
    wait_until(lambda: [e.queue_id for e in postar.queue()] == [entry.queue_id], what="the other message sent")
    assert not arrived(fake, "pat@later.test")
    assert "1 message released" in postar.cli("queue", "release", entry.queue_id).stdout
    fake.wait_for(lambda sessions: arrived(fake, "pat@later.test"))
    wait_until(lambda: postar.queue() == [], what="the queue to empty")


def test_the_commands_say_when_no_server_runs(world):
    postar = world.postar(HOURLY)
    submit(postar, ["pat@later.test"])  # nobody listens on 127.0.0.6: deferred
    entry = deferred_once(postar)
    postar.stop()
    retried = postar.cli("queue", "retry", entry.queue_id).stdout
    assert "1 recipient to be tried now" in retried and "postar is not running" in retried
    fake = world.scripted("127.0.0.6", Behaviour())
    postar.start()  # a start looks at the queue: what was retried meanwhile goes now
    fake.wait_for(lambda sessions: arrived(fake, "pat@later.test"))
