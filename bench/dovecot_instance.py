"""A throwaway Dovecot on loopback serving IMAP (and POP3) over implicit TLS to Maildirs.

Everything lives under one directory: the config (no file of /etc/dovecot is
read), base_dir, state_dir, the log, the passwd-file and the Maildirs. A system
Dovecot, if any, is untouched; the instance has its own instance_name. The master
runs in the foreground (`dovecot -F`) as a child of the bench, so stopping it is
a SIGTERM to a pid we hold; any process of its tree still there after it is
killed by pid.

What is not Dovecot's default, and why:

- `ssl = required`, only the imaps listener (port given, on LOOPBACK), and the
  pop3s listener when a `pop3s_port` is given, the certificate given: the same
  TLS work as postar's imaps and pop3s listeners.
- `auth_cache_size = 10M`: postar remembers verified logins (limits.auth_cache_ttl,
  on by default), so Dovecot gets its auth cache too; the hash is SHA512-CRYPT.
- imap-login (and pop3-login) in "high-performance mode" (`service_count = 0`,
  one process per core kept, each serving many clients): Dovecot's default forks
  a login process per connection, and as the login process also proxies TLS for
  the whole session that would be two processes per connection.
- Limits sized for `max_connections` connections from one address to a few
  users: `mail_max_userip_connections`, the imap (pop3) `process_limit`, the login,
  auth, anvil and stats `client_limit`s (every imap process talks to auth and
  stats), and a larger `vsz_limit` for the login processes, which hold the TLS
  state of all their clients.

The imap and pop3 processes keep Dovecot's default: one process per connection
(`client_limit = 1`), a new one for each connection (`service_count = 1`).
With `reuse_imap_processes = N` an imap process serves one connection after
another instead (`service_count = 0`) and N are kept ready (`process_min_avail`),
a tuning Dovecot allows when all users share one system uid, as here;
`reuse_pop3_processes = N` does the same for pop3.
Durability is Dovecot's default, `mail_fsync = optimized`: a saved message is
fsync'd before the save is reported. POP3 keeps its defaults too: no session
lock (`pop3_lock_session = no`), RETR marks the message `\\Seen` at QUIT
(`pop3_no_flag_updates = no`), UIDL `%08Xu%08Xv` (UID, UIDVALIDITY).
"""

import math
import os
import signal
import subprocess
from pathlib import Path
from typing import Sequence

from benchnet import (
    LOOPBACK, Instance, descendants, find_tool, process_cpu_seconds, process_memory_kib,
    wait_for_port,
)

STARTUP_TIMEOUT = 30.0
SHUTDOWN_TIMEOUT = 15.0
LOGIN_PROCESSES = 2  # one per core of the bench machine

# The mail user: the imap and pop3 processes run as it and own the Maildirs.
MAIL_UID = 65534  # nobody
MAIL_GID = 65534  # nogroup


# Where Debian's dovecot-pop3d puts the pop3 service's programs.
POP3_PROGRAM = Path("/usr/lib/dovecot/pop3")


class DovecotInstance(Instance):
    """Dovecot serving IMAPS on LOOPBACK:`port` for `users`, all with `password`;
    POP3S on LOOPBACK:`pop3s_port` too when it is given."""

    def __init__(self, root: Path, port: int, users: Sequence[str], password: str,
                 cert: Path, key: Path, max_connections: int = 1000, reuse_imap_processes: int = 0,
                 pop3s_port: int | None = None, reuse_pop3_processes: int = 0):
        self.root = root
        self.port = port
        self.pop3s_port = pop3s_port
        self.reuse_pop3_processes = reuse_pop3_processes
        self.users = tuple(users)
        self.password = password
        self.cert = cert
        self.key = key
        self.max_connections = max_connections
        self.reuse_imap_processes = reuse_imap_processes
        self.config_file = root / "dovecot.conf"
        self.passwd_file = root / "passwd"
        self.mail_base = root / "mail"
        self.log_file = root / "dovecot.log"
        self.process: subprocess.Popen | None = None

    def maildir(self, user: str) -> Path:
        """The Maildir of `user` (mail_location = maildir:<mail_base>/%u)."""
        return self.mail_base / user

    def start(self) -> None:
        """Write the config and passwd-file, start the master, wait for the listener."""
        for directory in (self.root, self.root / "state"):
            directory.mkdir(parents=True, exist_ok=True)
        self.mail_base.mkdir(exist_ok=True)
        os.chown(self.mail_base, MAIL_UID, MAIL_GID)
        self.passwd_file.write_text(self._passwd())
        self.config_file.write_text(self._config())
        dovecot = find_tool("dovecot", "dovecot-imapd")
        if self.pop3s_port is not None and not POP3_PROGRAM.exists():
            raise RuntimeError(f"{POP3_PROGRAM} not found; install Debian's dovecot-pop3d package")
        check = subprocess.run([find_tool("doveconf", "dovecot-core"), "-c", str(self.config_file)],
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"doveconf rejects {self.config_file}:\n{check.stderr}")
        with (self.root / "dovecot.out").open("wb") as out:
            self.process = subprocess.Popen(
                [dovecot, "-F", "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            for port in (self.port, self.pop3s_port):
                if port is not None:
                    wait_for_port(port, STARTUP_TIMEOUT, is_alive=lambda: self.process.poll() is None)
        except RuntimeError as error:
            raise RuntimeError(f"{error}; Dovecot log:\n{self.log_tail()}") from None

    def stop(self) -> None:
        """SIGTERM the master (it stops its children), then SIGKILL what is left, by pid."""
        if self.process is None or self.process.poll() is not None:
            return
        family = descendants(self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in family:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"Dovecot is not running; log tail:\n{self.log_tail()}")

    def warnings(self) -> list[str]:
        """The warnings and errors Dovecot logged so far (e.g. limits below the load)."""
        if not self.log_file.exists():
            return []
        return [line for line in self.log_file.read_text(errors="replace").splitlines()
                if "Warning:" in line or "Error:" in line or "Fatal:" in line]

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def processes(self) -> dict[int, str]:
        """Every process of the instance, the master included: pid -> name (e.g. "imap")."""
        names = {}
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                names[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                pass
        return names

    def memory_kib(self) -> dict[str, tuple[int, int, int]]:
        """Per process name: (process count, summed RSS KiB, summed PSS KiB)."""
        totals: dict[str, list[int]] = {}
        for pid, name in self.processes().items():
            try:
                rss, pss = process_memory_kib(pid)
            except OSError:
                continue  # exited meanwhile
            entry = totals.setdefault(name, [0, 0, 0])
            entry[0] += 1
            entry[1] += rss
            entry[2] += pss
        return {name: (count, rss, pss) for name, (count, rss, pss) in totals.items()}

    def cpu_seconds(self) -> float:
        """CPU used so far by the master, its living children and the children it reaped."""
        total = process_cpu_seconds(self.process.pid, reaped_children=True)
        for pid in descendants(self.process.pid):
            try:
                total += process_cpu_seconds(pid, reaped_children=True)
            except OSError:
                pass  # exited between the listing and the read; its CPU moves to cutime
        return total

    @staticmethod
    def _reuse(processes: int) -> str:
        """The lines that make a mail service's processes serve one connection after another."""
        if not processes:
            return ""
        return f"\n  service_count = 0\n  process_min_avail = {processes}"

    def _passwd(self) -> str:
        result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=self.password + "\n",
                                check=True, capture_output=True, text=True)
        crypted = result.stdout.strip()
        return "".join(f"{user}:{{SHA512-CRYPT}}{crypted}\n" for user in self.users)

    def _protocol(self, name: str, port: int, reuse: int) -> str:
        """The login and mail services of one protocol: only its implicit-TLS listener."""
        connections = self.max_connections
        per_login = math.ceil(connections / LOGIN_PROCESSES) + 100
        return f"""
protocol {name} {{
  mail_max_userip_connections = {connections}
}}
service {name}-login {{
  inet_listener {name} {{
    port = 0
  }}
  inet_listener {name}s {{
    address = {LOOPBACK}
    port = {port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = {LOGIN_PROCESSES}
  process_limit = {LOGIN_PROCESSES}
  client_limit = {per_login}
  vsz_limit = 2G
}}
service {name} {{
  process_limit = {connections + 100}{self._reuse(reuse)}
}}
"""

    def _config(self) -> str:
        connections = self.max_connections
        per_login = math.ceil(connections / LOGIN_PROCESSES) + 100
        protocols = self._protocol("imap", self.port, self.reuse_imap_processes)
        if self.pop3s_port is not None:
            protocols += self._protocol("pop3", self.pop3s_port, self.reuse_pop3_processes)
        return f"""\
# Throwaway Dovecot of postar's bench/imap_load.py and pop3_load.py; see bench/dovecot_instance.py.
instance_name = postar-bench-{self.port}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_file}
protocols = imap{" pop3" if self.pop3s_port is not None else ""}
listen = {LOOPBACK}

ssl = required
ssl_cert = <{self.cert}
ssl_key = <{self.key}

auth_mechanisms = plain
auth_cache_size = 10M
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {self.passwd_file}
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_GID}
}}
mail_location = maildir:{self.mail_base}/%u

default_client_limit = {per_login}
{protocols}
service auth {{
  client_limit = {connections + 1000}
}}
service anvil {{
  client_limit = {connections + 1000}
}}
service stats {{
  client_limit = {connections + 1000}
}}
"""
