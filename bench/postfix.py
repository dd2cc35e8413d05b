"""A private Postfix instance: what organisations run today as their outbound relay.

Its own config_directory, queue_directory and data_directory under the bench's temp dir;
smtpd on a loopback port; everything relayed to ``[127.0.0.1]:<sink>``; no local delivery, no
DNS, no chroot. The system's Postfix (if any) is never touched: every command names this
instance's config directory with ``-c``, and the default instance is never started.

Settings are Postfix's defaults except what a relay-only host on loopback needs, so the
figure is "stock Postfix as a smarthost relay": cleanup fsyncs each queue file, qmgr
schedules, smtp caches its connections to the relayhost, in_flow_delay applies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.tools import LOOPBACK, free_port, need, wait_smtp

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-relay.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = {address}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject
relayhost = [{address}]:{sink_port}
smtp_dns_support_level = disabled
smtp_tls_security_level = none
smtpd_tls_security_level = none
message_size_limit = 52428800
biff = no
append_dot_mydomain = no
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
# The bench sends 200 sessions at once from one client; the defaults would throttle it
# (client_connection_count_limit 50) or cap it (default_process_limit 100).
smtpd_client_connection_count_limit = 0
default_process_limit = 250
"""

# Debian's master.cf without the chroot (which would need a populated jail) and without the
# pipe services that name users and programs this machine does not have.
_MASTER_CF = """\
{address}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""


# The TLS instance (the TLS scenarios' baseline): smtpd offers STARTTLS with the bench's
# certificate; mail for the direct-delivery domain goes to its MX host (the TLS sink) over TLS
# that must verify against the bench CA and name that host ("secure", RFC 7672 §1.3's
# verified TLS without DANE); the rest goes to the plain sink as before. Postfix's own
# defaults otherwise (no TLS connection reuse), with Debian's TLS session caches.
_TLS_CF = """\
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_session_cache_database = btree:${{data_directory}}/smtpd_scache
smtp_tls_CAfile = {ca}
smtp_tls_session_cache_database = btree:${{data_directory}}/smtp_scache
transport_maps = inline:{{ {{{domain} = smtp:[{mx_address}]:{mx_port}}} }}
smtp_tls_policy_maps = inline:{{ {{[{mx_address}]:{mx_port} = secure match={mx_name}}} }}
"""


@dataclass(frozen=True)
class PostfixTls:
    cert: Path  # smtpd's certificate chain and key
    key: Path
    ca: Path  # the CA the MX host's certificate must verify against
    domain: str  # mail for this domain goes to the MX host over verified TLS
    mx_name: str
    mx_address: str
    mx_port: int


class Postfix:
    def __init__(self, workdir: Path, sink_port: int, tls: PostfixTls | None = None) -> None:
        self.dir = workdir
        self.port = free_port()
        self.sink_port = sink_port
        self.tls = tls
        self._started = False

    def _postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [need("postfix"), "-c", str(self.dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def start(self) -> Postfix:
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("queue", "data"):
            (self.dir / sub).mkdir(exist_ok=True)
        fields = {"dir": self.dir, "address": LOOPBACK, "sink_port": self.sink_port}
        main_cf = _MAIN_CF.format(**fields)
        if self.tls is not None:
            main_cf = main_cf.replace(
                "smtpd_tls_security_level = none", "smtpd_tls_security_level = may"
            )
            main_cf += _TLS_CF.format(**dataclasses.asdict(self.tls))
        (self.dir / "main.cf").write_text(main_cf)
        (self.dir / "master.cf").write_text(_MASTER_CF.format(port=self.port, **fields))
        # Creates the queue's subdirectories with the owners Postfix wants (postfix, postdrop).
        subprocess.run(["chown", "postfix", str(self.dir / "data")], check=True)
        self._postfix("set-permissions", check=False)
        done = self._postfix("start", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"postfix -c {self.dir} start failed:\n{self._diagnose()}")
        self._started = True
        wait_smtp(self.port)
        return self

    def _diagnose(self) -> str:
        # Before postlogd runs, Postfix reports to syslog, or to a terminal: give it one.
        done = subprocess.run(
            ["script", "-qc", f"{need('postfix')} -c {self.dir} check", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return (done.stdout + done.stderr)[-2000:]

    @property
    def master_pid(self) -> int:
        deadline = time.monotonic() + 10
        pid_file = self.dir / "queue" / "pid" / "master.pid"
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(pid_file.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError(f"no {pid_file}")

    def queue_empty(self) -> bool:
        """No message left in the incoming, active or deferred queue."""
        queue = self.dir / "queue"
        for sub in ("incoming", "active", "deferred", "maildrop"):
            folder = queue / sub
            if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
                return False
        return True

    def deferred(self) -> int:
        folder = self.dir / "queue" / "deferred"
        return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "maillog").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self._started:
            self._postfix("stop", check=False)
            self._started = False
