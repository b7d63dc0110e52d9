"""The config file: typed values, unknown keys named, generated docs kept in step."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from postar import config

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postar.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file():
    loaded = config.load(None)
    assert loaded.listen.smtp == "0.0.0.0:2525"
    assert loaded.listen.imap == "0.0.0.0:1430"
    assert (loaded.listen.pop3, loaded.listen.pop3s) == ("0.0.0.0:1100", "0.0.0.0:9950")
    assert loaded.listen.web == ""
    assert loaded.limits.message_size > 0


@pytest.mark.parametrize("text, named", [
    ('hostnme = "x"', "'hostnme'"),
    ("[limits]\nmessage_sise = 5", "'limits.message_sise'"),
    ("[listen]\nsmtp = 25", "'listen.smtp' must be str"),
    ('[listen]\nsmtp = "nowhere"', "'listen.smtp'"),
    ('[limits]\nrecipients = "many"', "'limits.recipients' must be int"),
    ('[tls]\ncert = "/x.pem"', "'tls.cert' and 'tls.key'"),
    ("listen = 3", "'listen' must be a table"),
])
def test_bad_config_is_an_error_naming_the_key(tmp_path, text, named):
    with pytest.raises(config.ConfigError) as error:
        config.load(write(tmp_path, text))
    assert named in str(error.value)


def test_integers_are_accepted_where_seconds_are_floats(tmp_path):
    loaded = config.load(write(tmp_path, "[limits]\nidle_timeout = 60"))
    assert loaded.limits.idle_timeout == 60.0


def test_sample_round_trips(tmp_path):
    sample = config.sample()
    assert tomllib.loads(sample)["limits"]["recipients"] == config.Limits().recipients
    assert config.load(write(tmp_path, sample)) == config.Config(
        hostname=config.Config().hostname, data_dir=config.Config().data_dir)


def test_configuration_doc_is_generated_from_the_code():
    generated = subprocess.run([sys.executable, "-m", "postar", "config", "doc"],
                               capture_output=True, text=True, check=True).stdout
    assert (ROOT / "docs" / "configuration.md").read_text() == generated, \
        "docs/configuration.md is stale: run `postar config doc > docs/configuration.md`"


def test_a_listen_table_names_exactly_what_is_on(tmp_path):
    loaded = config.load(write(tmp_path, '[listen]\nsmtp = "127.0.0.1:2525"'))
    assert loaded.listen.smtp == "127.0.0.1:2525"
    assert (loaded.listen.submission, loaded.listen.imap, loaded.listen.imaps) == ("", "", "")


# The default hostname, read on a machine whose name the test sets: a UTS namespace
# of its own (unshare, as root) gives the process another host name, so the test
# depends on neither this machine's name nor its /etc/hosts.

def _as_host(name: str, *command: str, config_path: Path | None = None) -> subprocess.CompletedProcess:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and util-linux's unshare to give the process its own host name")
    inner = " ".join(shlex.quote(part) for part in command)
    return subprocess.run(["unshare", "--uts", "sh", "-c", f"hostname {shlex.quote(name)} && exec {inner}"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def _default_hostname(name: str) -> str:
    result = _as_host(name, sys.executable, "-c", "from postar.config import Config; print(Config().hostname)")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_default_hostname_is_the_systems_fully_qualified_name():
    assert _default_hostname("mx7.example.net") == "mx7.example.net"


def test_default_hostname_is_never_localhost():
    # /etc/hosts does not list this name: socket.getfqdn() gives the name back or,
    # where the loopback address maps to localhost, "localhost". The system name wins.
    name = _default_hostname("postarhost")
    assert name == "postarhost" and "localhost" not in name


@pytest.mark.parametrize("name, warned", [
    ("mx7.example.net", None),
    ("postarhost", "'postarhost' is not a fully qualified domain name"),
])
def test_config_check_warns_about_a_hostname_that_is_not_fully_qualified(tmp_path, name, warned):
    path = write(tmp_path, f'data_dir = "{tmp_path / "data"}"\n')
    result = _as_host(name, sys.executable, "-m", "postar", "--config", str(path), "config", "check")
    assert result.returncode == 0 and result.stdout.strip() == "config ok", result.stderr
    if warned is None:
        assert result.stderr == ""
    else:
        assert warned in result.stderr and "warning:" in result.stderr


@pytest.mark.parametrize("name", ["localhost", "localhost.localdomain", "", "mail"])
def test_hostname_problem_names_what_other_servers_reject(name):
    assert config.hostname_problem(name) is not None
    assert config.hostname_problem("mail.example.org") is None
