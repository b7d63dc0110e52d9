"""A backlog larger than the queue runner loads at once (twice ``concurrency``: 20 here) goes
out whole, several messages over each connection. The runner's own scan is an hour away
(``queue_scan_interval``), so the rest of the backlog can only come from the runner loading
more when half of what it holds is done; no timing is asserted.
"""

from __future__ import annotations

from tests.conftest import PASSWORD
from tests.delivery.outbound import SENDER, wait_until
from tests.delivery.scripted_smtp import Behaviour

ZONES = {"bulk.test": {"@": ["MX 10 mx"], "mx": ["A 127.0.0.9"]}}
BACKLOG = 75


def test_a_backlog_beyond_one_load_is_delivered_whole(world):
    postar = world.postar("retry_min = 3600\nretry_max = 7200\nqueue_scan_interval = 3600\n"
                          "concurrency = 10\nper_destination = 4")
    client = postar.submission(SENDER, PASSWORD)
    for number in range(BACKLOG):  # nobody listens on 127.0.0.9 yet: each is deferred for an hour
        client.sendmail(SENDER, [f"r{number}@bulk.test"], f"Subject: {number}\r\n\r\nHi.\r\n".encode())
    client.quit()
    wait_until(lambda: postar.log().count("status=deferred") == BACKLOG, what="every first attempt")
    fake = world.scripted("127.0.0.9", Behaviour())
    postar.cli("queue", "retry", "--all")
    wait_until(lambda: postar.queue() == [], what="the backlog to be delivered")
    sessions = fake.sessions
    arrived = sorted(r for s in sessions for t in s.transactions if t.complete for r in t.accepted)
    assert arrived == sorted(f"r{number}@bulk.test" for number in range(BACKLOG))
    assert len(sessions) <= 4 < BACKLOG / len(sessions)  # the connections carried many messages each
