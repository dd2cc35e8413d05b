"""nginx: one TLS port for every MTA-STS policy host, the virtual host chosen by SNI."""

import socket
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path

from rig.binaries import require
from rig.pki import Leaf
from rig.ports import LOOPBACK
from rig.process import ServerProcess
from rig.zones import POLICY_PATH, Domain, Policy

_MAIN = """\
# Root runs the workers too: the policy files sit in a 0700 temp dir.
user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 64;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    server_tokens off;
    # No extension-based types: each location states its Content-Type.
    types {{ }}
    default_type application/octet-stream;

    # Any name without a server block of its own: a valid certificate, and 404.
    server {{
        listen {address}:{port} ssl default_server;
        server_name _;
        ssl_certificate {default_cert};
        ssl_certificate_key {default_key};
        location / {{
            return 404;
        }}
    }}

{servers}
}}
"""

_SERVER = """\
    server {{
        listen {address}:{port} ssl;
        server_name {host};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = {path} {{
{policy}
        }}
        location / {{
            return 404;
        }}
    }}
"""


def _policy_location(policy: Policy, body_file: Path) -> str:
    indent = " " * 12
    if policy.redirect_to is not None:
        return f"{indent}return {policy.status} {policy.redirect_to};"
    if policy.status != 200:
        return f"{indent}return {policy.status};"
    return f"{indent}default_type {policy.content_type};\n{indent}alias {body_file};"


class Nginx:
    """nginx on 127.0.0.1:`port` serving the policy of every row that has one."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        rows: Iterable[Domain],
        cert_for: Callable[[Domain], Leaf],
        default_cert: Leaf,
        ca_file: Path,
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.rows = [row for row in rows if row.policy is not None]
        self.cert_for = cert_for
        self.default_cert = default_cert
        self.ca_file = ca_file
        self.conf = workdir / "nginx.conf"
        self.error_log = workdir / "error.log"
        self.process = ServerProcess(
            "nginx",
            [
                require("nginx"),
                "-p",
                workdir,
                "-c",
                self.conf,
                "-e",
                self.error_log,
                "-g",
                "daemon off;",
            ],
            workdir,
            extra_logs=[self.error_log],
        )

    def _write(self) -> None:
        (self.workdir / "tmp").mkdir(parents=True, exist_ok=True)
        policies = self.workdir / "policies"
        policies.mkdir(exist_ok=True)
        servers = []
        for row in self.rows:
            assert row.policy is not None
            body_file = policies / f"{row.name}.policy"
            body_file.write_text(row.policy.body)
            leaf = self.cert_for(row)
            servers.append(
                _SERVER.format(
                    address=LOOPBACK,
                    port=self.port,
                    host=row.mta_sts_host,
                    cert=leaf.cert_file,
                    key=leaf.key_file,
                    path=POLICY_PATH,
                    policy=_policy_location(row.policy, body_file),
                )
            )
        self.conf.write_text(
            _MAIN.format(
                dir=self.workdir,
                address=LOOPBACK,
                port=self.port,
                default_cert=self.default_cert.cert_file,
                default_key=self.default_cert.key_file,
                servers="\n".join(servers),
            )
        )

    def _handshakes(self) -> bool:
        # A TLS handshake verified against the rig's CA: a plain TCP connect could be answered
        # by whatever else grabbed the port, and would pass before nginx fails to bind.
        context = ssl.create_default_context(cafile=str(self.ca_file))
        host = self.default_cert.names[0]
        try:
            with (
                socket.create_connection((LOOPBACK, self.port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname=host),
            ):
                return True
        except OSError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        self._write()
        self.process.start()
        self.process.wait_ready(
            self._handshakes, timeout, f"TLS handshake with {LOOPBACK}:{self.port}"
        )

    def stop(self) -> None:
        self.process.stop()
