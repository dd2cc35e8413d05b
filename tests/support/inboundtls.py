"""Certificates and TLS clients for the tests of TLS on the way in (tests/e2e/test_serve_tls*).

``Pki`` is a test CA (rig.pki.RigCA) with the gateway's own certificate; ``client_context``
is what a sending MTA uses: it verifies the gateway's chain against the test CA (not the name:
smtplib names the server by its address), optionally presents a client certificate, and can
be held to one TLS version.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.cli import clean_env, gateway_script
from rig.gatewayproc import CLIENT_TIMEOUT, HOSTNAME, Gateway, RawSession
from rig.pki import Leaf, RigCA
from rig.ports import LOOPBACK

PASSWORD = "a long submit password 1"


@dataclass(frozen=True)
class Pki:
    ca: RigCA
    server: Leaf

    def smtp(self, **more: object) -> dict[str, object]:
        """[smtp] keys giving the gateway its certificate, plus `more`."""
        return {
            "tls_cert": str(self.server.cert_file),
            "tls_key": str(self.server.key_file),
            **more,
        }


def make_pki(folder: Path) -> Pki:
    ca = RigCA(folder)
    return Pki(ca, ca.issue((HOSTNAME,), stem="gateway"))


def client_context(
    ca_file: Path,
    cert: Leaf | None = None,
    version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False  # the chain is verified; smtplib names the address only
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


@contextlib.contextmanager
def starttls(
    gw: Gateway, context: ssl.SSLContext, source: str | None = None
) -> Iterator[smtplib.SMTP]:
    """An smtplib session after EHLO, STARTTLS and EHLO again."""
    with gw.smtp(source=source) as client:
        assert client.has_extn("starttls"), client.esmtp_features
        client.starttls(context=context)
        client.ehlo()
        yield client


@contextlib.contextmanager
def implicit(port: int, context: ssl.SSLContext) -> Iterator[smtplib.SMTP_SSL]:
    """An smtplib session over implicit TLS (RFC 8314), after EHLO."""
    client = smtplib.SMTP_SSL(
        LOOPBACK, port, local_hostname="client.school.test", timeout=CLIENT_TIMEOUT, context=context
    )
    try:
        client.ehlo()
        yield client
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        client.close()


def raw_starttls(session: RawSession, context: ssl.SSLContext) -> None:
    """Wrap a raw session's socket in TLS once the server said 220 to STARTTLS."""
    assert session.buffer == b"", "the server answered more than STARTTLS"
    session.sock = context.wrap_socket(session.sock, server_hostname=HOSTNAME)


def server_certificate(client: smtplib.SMTP) -> bytes:
    """The DER certificate the gateway presented to this session."""
    sock = client.sock
    assert isinstance(sock, ssl.SSLSocket)
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def add_account(config: Path, name: str, role: str, password: str = PASSWORD) -> None:
    done = subprocess.run(
        [str(gateway_script()), "users", "add", name, "--role", role, "--config", str(config)],
        input=password + "\n",
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def wait_events(gw: Gateway, name: str, count: int, timeout: float = 10.0) -> None:
    """Wait for `count` log lines `name` (one from each worker, say)."""
    gw.proc.wait_event(name, timeout, count=count)
