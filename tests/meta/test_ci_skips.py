"""Under CI=true a skipped test fails the run; without CI it stays a skip.

Runs a small test file through pytest itself (a real second pytest process with
this suite's conftest hook), once as CI and once as a developer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent

SAMPLE = '''
import shutil
import pytest

@pytest.mark.skipif(shutil.which("no-such-tool-anywhere") is None, reason="no-such-tool is not installed")
def test_needs_a_tool():
    pass

def test_skips_inside():
    pytest.skip("needs root")

@pytest.mark.xfail(reason="known", strict=False)
def test_expected_failure():
    assert False

def test_plain():
    assert True
'''


def run_sample(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(TESTS / "conftest.py", tests / "conftest.py")
    (tests / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tests)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_skip_fails_the_run_under_ci(tmp_path):
    result = run_sample(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    # A skipif mark skips in setup, so pytest counts that one as an error.
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in result.stdout
    assert "skipped under CI=true, which must not happen: Skipped: no-such-tool is not installed" in result.stdout
    assert "needs root" in result.stdout


def test_a_skip_is_a_skip_for_a_developer(tmp_path):
    result = run_sample(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout
