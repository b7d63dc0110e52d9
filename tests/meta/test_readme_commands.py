"""The README opens with the two commands, and .ci/run runs the second and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]


def test_ci_runs_exactly_the_readmes_second_command():
    lines = [line for line in (ROOT / ".ci/run").read_text().splitlines()
             if line.strip() and not line.startswith("#") and line != "set -o pipefail"]
    assert lines == [readme_commands()[1]]


def test_both_commands_install_into_a_virtual_environment():
    # PEP 668: the distribution's python3 refuses pip outside a virtual environment.
    first, second = readme_commands()
    for command in (first, second):
        assert "python3-venv" in command and "python3 -m venv" in command
        assert not re.search(r"(^|&& )pip3? install", command)
    assert first.endswith("&& postar run")
