"""The parser properties of tests/parsers/fuzz.py, run for longer than the test suite does.

Every parser that reads client input (SMTP commands and parameters, SASL, IMAP
with literals, SEARCH, FETCH attributes and SORT criteria, POP3, the MIME
summary with FETCH and SEARCH over it, addresses, RFC 2047 words) must answer
with its protocol's error or a result, never another exception, in memory
linear in its input. The suite runs a few hundred examples of each; this runs
as many as asked, one property after another, and stops at the first failure
with hypothesis' shrunk example.

    .venv/bin/python bench/fuzz_parsers.py --examples 20000
    .venv/bin/python bench/fuzz_parsers.py --examples 5000 --only imap mime

It uses one core; on a shared machine run it under ``flock /tmp/heavy.lock``.
Found examples are kept in hypothesis' database (.hypothesis/ in the working
directory), so the test suite replays them afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.parsers.fuzz import PROPERTIES  # noqa: E402


def main() -> int:
    names = [p.name for p in PROPERTIES]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=10000, help="examples per property (10000)")
    parser.add_argument("--only", nargs="+", choices=names, default=names, help="the properties to run")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run")
    args = parser.parse_args()
    failed = []
    for prop in PROPERTIES:
        if prop.name not in args.only:
            continue
        run = settings(max_examples=args.examples, deadline=None, derandomize=False,
                       suppress_health_check=list(HealthCheck))(given(prop.inputs)(prop.check))
        if args.seed is not None:
            from hypothesis import seed
            run = seed(args.seed)(run)
        started = time.monotonic()
        try:
            run()
        except Exception as e:  # the falsifying example is printed by hypothesis above
            failed.append(prop.name)
            print(f"{prop.name}: FAILED after {time.monotonic() - started:.1f} s: {type(e).__name__}: {e}")
            continue
        print(f"{prop.name}: {args.examples} examples passed in {time.monotonic() - started:.1f} s", flush=True)
    if failed:
        print("failed:", " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
